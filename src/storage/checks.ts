/**
 * Input checks shared by both storage implementations: keys, records, dedup records, hard
 * state, identity, persist batches against the log they extend, and log read ranges. Both
 * run the same checks so that whatever one accepts the other accepts too.
 *
 * Must never: change state or return an error value. A failed check is a programmer error
 * in the caller (the driver or the state machine), so it throws an AssertionError before
 * anything is written.
 */

import type { Entry, EntryKind, HardState, SnapshotMeta } from '../core/types.js';
import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import { isWellFormed, utf8Length } from '../stdx/utf8.js';
import { isEncodedRecord } from './record-codec.js';
import { KV_KEY_BYTES_MAX } from './sizes.js';
import type { DedupRecord, KvRecord, NodeIdentity, PersistBatch } from './types.js';

const ENTRY_KINDS: ReadonlySet<EntryKind> = new Set<EntryKind>(['normal', 'noop', 'config']);

export function checkKey(key: string, what: string): void {
  assert(typeof key === 'string' && key.length > 0, () => `${what} must be a non-empty string`);
  // Keys are stored (and ordered) as UTF-8, which cannot represent a lone surrogate.
  assert(isWellFormed(key), () => `${what} ${JSON.stringify(key)} contains a lone surrogate (not valid Unicode)`);
  const bytes = utf8Length(key);
  assert(bytes <= KV_KEY_BYTES_MAX, () => `${what} is ${bytes} bytes of UTF-8, at most ${KV_KEY_BYTES_MAX} allowed`);
}

export function checkRecord(key: string, record: KvRecord): void {
  checkKey(key, 'key');
  assert(
    isEncodedRecord(record) || typeof record.value === 'string' || record.value instanceof Uint8Array,
    () => `value of key ${JSON.stringify(key)} must be a string or a Uint8Array`,
  );
  assert(isIndex(record.version), () => `version of key ${JSON.stringify(key)} must be a safe index, got ${record.version}`);
}

export function checkDedupRecord(record: DedupRecord): void {
  checkKey(record.clientId, 'dedup client id');
  assert(isIndex(record.seq), () => `dedup seq of ${record.clientId} must be a safe index, got ${record.seq}`);
  assert(isIndex(record.index), () => `dedup index of ${record.clientId} must be a safe index, got ${record.index}`);
  assert(record.reply instanceof Uint8Array, () => `dedup reply of ${record.clientId} must be a Uint8Array`);
}

export function checkHardState(hardState: HardState, current: HardState): void {
  assert(isIndex(hardState.term) && isIndex(hardState.commit), () => `hard state ${JSON.stringify(hardState)} has an invalid term or commit`);
  assert(hardState.vote === null || typeof hardState.vote === 'string', 'hard state vote must be a node id or null');
  assert(hardState.term >= current.term, () => `hard state term went back from ${current.term} to ${hardState.term}`);
}

export function checkSnapshotMeta(meta: SnapshotMeta): void {
  assert(isIndex(meta.index) && isIndex(meta.term), () => `snapshot meta index ${meta.index} / term ${meta.term} invalid`);
  assert(meta.config.members.length > 0, 'snapshot meta config has no members');
}

/** The shape of a log, enough to validate a batch against it. */
export interface LogBounds {
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  term(index: number): number | undefined;
}

/**
 * Checks a persist batch against the log it will be applied to: entries contiguous and of
 * valid shape, starting inside (snapshot, last + 1], terms never decreasing.
 */
export function checkPersistBatch(batch: PersistBatch, log: LogBounds, hardState: HardState, stagingComplete: boolean): void {
  let snapshotIndex = log.snapshotIndex;
  let lastIndex = log.lastIndex;
  let termBefore = (index: number): number | undefined => log.term(index);
  if (batch.snapshot !== null) {
    const meta = batch.snapshot;
    checkSnapshotMeta(meta);
    assert(stagingComplete, () => `Cannot install snapshot at index ${meta.index}: no complete staged snapshot (stage chunks up to last first)`);
    snapshotIndex = meta.index;
    lastIndex = meta.index;
    termBefore = (index) => (index === meta.index ? meta.term : undefined);
  }
  const entries = batch.entries;
  const first = entries[0];
  if (first !== undefined) {
    assert(
      first.index > snapshotIndex,
      () => `Cannot append entry ${first.index}: entries up to ${snapshotIndex} are compacted into the snapshot`,
    );
    assert(first.index <= lastIndex + 1, () => `Cannot append entry ${first.index}: log ends at ${lastIndex}`);
    let previousTerm = termBefore(first.index - 1) ?? 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as Entry;
      assert(entry.index === first.index + i, () => `Cannot append entry ${entry.index} at position ${i}: expected ${first.index + i}`);
      assert(isIndex(entry.term), () => `entry ${entry.index} has invalid term ${entry.term}`);
      assert(entry.term >= previousTerm, () => `entry ${entry.index} has term ${entry.term} below the previous entry's ${previousTerm}`);
      assert(ENTRY_KINDS.has(entry.kind), () => `entry ${entry.index} has unknown kind ${String(entry.kind)}`);
      assert(entry.data instanceof Uint8Array, () => `entry ${entry.index} data must be a Uint8Array`);
      previousTerm = entry.term;
    }
  }
  if (batch.hardState !== null) checkHardState(batch.hardState, hardState);
}

export function checkIdentity(identity: NodeIdentity, current: NodeIdentity | null): void {
  assert(typeof identity.nodeId === 'string' && identity.nodeId.length > 0, 'identity nodeId must be a non-empty string');
  assert(typeof identity.clusterId === 'string' && identity.clusterId.length > 0, 'identity clusterId must be a non-empty string');
  assert(
    current === null || (current.nodeId === identity.nodeId && current.clusterId === identity.clusterId && current.memberId === identity.memberId),
    () => `identity is already ${JSON.stringify(current)}; cannot change it to ${JSON.stringify(identity)}`,
  );
}

export function checkEntriesRange(lo: number, hi: number, firstIndex: number, lastIndex: number): void {
  assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), () => `entries(${lo}, ${hi}): bounds must be safe integers`);
  assert(lo >= firstIndex, () => `entries(${lo}, ${hi}): entries before ${firstIndex} are compacted`);
  assert(hi <= lastIndex + 1 || hi <= lo, () => `entries(${lo}, ${hi}): log ends at ${lastIndex}`);
}
