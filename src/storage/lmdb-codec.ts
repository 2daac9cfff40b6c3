/**
 * How the LMDB storage lays its records out in bytes, and how it reads them back: log
 * entries (`[kind u8][term f64][data]`), kv records (record-codec.ts), dedup records
 * (`[seq f64][index f64][reply]`), keys as UTF-8, and the msgpack meta records (identity,
 * hard state, snapshot meta). Every decoder checks what it reads (STYLE.md 9) and names the
 * record in its error.
 *
 * Must never: hand out a view of a buffer that lmdb-js may reuse (decoders view lmdb-js's
 * private copy of a value; lookup keys are copied by lmdb-js before `get` returns), or
 * accept a term, index or version that is not a safe integer.
 */

import type { Entry, EntryKind, HardState, SnapshotMeta } from '../core/types.js';
import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import { freshHardState } from './meta.js';
import { KV_KEY_BYTES_MAX } from './sizes.js';
import type { DedupRecord, NodeIdentity } from './types.js';

const ENTRY_HEADER_BYTES = 9;
const DEDUP_HEADER_BYTES = 16;
const ENTRY_KINDS: readonly EntryKind[] = ['normal', 'noop', 'config'];
const ENTRY_KIND_CODES: Readonly<Record<EntryKind, number>> = { normal: 0, noop: 1, config: 2 };

export function encodeEntry(entry: Entry): Buffer {
  const buffer = Buffer.allocUnsafe(ENTRY_HEADER_BYTES + entry.data.byteLength);
  buffer[0] = ENTRY_KIND_CODES[entry.kind];
  buffer.writeDoubleLE(entry.term, 1);
  buffer.set(entry.data, ENTRY_HEADER_BYTES);
  return buffer;
}

export function decodeEntry(index: number, buffer: Buffer): Entry {
  assert(buffer.length >= ENTRY_HEADER_BYTES, () => `log entry ${index} is corrupt: ${buffer.length} bytes`);
  const kind = ENTRY_KINDS[buffer[0] as number];
  assert(kind !== undefined, () => `log entry ${index} is corrupt: kind code ${buffer[0]}`);
  const term = buffer.readDoubleLE(1);
  assert(isIndex(term), () => `log entry ${index} is corrupt: term ${term}`);
  // `buffer` is lmdb-js's private copy of the value, so a view of it is safe to hand out.
  const data = new Uint8Array(buffer.buffer, buffer.byteOffset + ENTRY_HEADER_BYTES, buffer.length - ENTRY_HEADER_BYTES);
  return { index, term, kind, data };
}

export function encodeDedup(record: DedupRecord): Buffer {
  const buffer = Buffer.allocUnsafe(DEDUP_HEADER_BYTES + record.reply.byteLength);
  buffer.writeDoubleLE(record.seq, 0);
  buffer.writeDoubleLE(record.index, 8);
  buffer.set(record.reply, DEDUP_HEADER_BYTES);
  return buffer;
}

export function decodeDedup(clientId: string, buffer: Buffer): DedupRecord {
  assert(buffer.length >= DEDUP_HEADER_BYTES, () => `dedup record ${JSON.stringify(clientId)} is corrupt`);
  const seq = buffer.readDoubleLE(0);
  const index = buffer.readDoubleLE(8);
  assert(isIndex(seq) && isIndex(index), () => `dedup record ${JSON.stringify(clientId)} is corrupt: seq ${seq}, index ${index}`);
  const reply = new Uint8Array(buffer.buffer, buffer.byteOffset + DEDUP_HEADER_BYTES, buffer.length - DEDUP_HEADER_BYTES);
  return { clientId, seq, index, reply };
}

export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8');
}

/** Scratch space for lookup keys: lmdb-js copies a key before `get` returns, so reuse is safe. */
const LOOKUP_KEY = Buffer.allocUnsafe(KV_KEY_BYTES_MAX * 3);

/** The UTF-8 bytes of `key` in scratch space (valid until the next call), or null if no such key can exist. */
export function lookupKey(key: string): Buffer | null {
  if (key.length === 0 || key.length > KV_KEY_BYTES_MAX) return null;
  const n = LOOKUP_KEY.write(key, 0, 'utf8'); // at most 3 bytes per UTF-16 unit: never truncated
  return n > KV_KEY_BYTES_MAX ? null : LOOKUP_KEY.subarray(0, n);
}

/** The smallest byte string greater than every string that starts with `prefix`, if any. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] === 0xff) n--;
  if (n === 0) return undefined;
  const end = Buffer.from(prefix.subarray(0, n));
  end[n - 1] = (end[n - 1] as number) + 1;
  return end;
}

/** The term of stored log entry `index`, read from its header without decoding the rest. */
export function decodeEntryTerm(index: number, buffer: Buffer | undefined): number {
  assert(buffer !== undefined && buffer.length >= ENTRY_HEADER_BYTES, () => `log is corrupt: entry ${index} is missing`);
  const term = buffer.readDoubleLE(1);
  assert(isIndex(term), () => `log entry ${index} is corrupt: term ${term}`);
  return term;
}

// --- meta records (msgpack) ----------------------------------------------------------------

export function readIdentity(raw: unknown): NodeIdentity | null {
  if (raw === undefined) return null;
  const r = raw as Partial<NodeIdentity>;
  assert(typeof r.nodeId === 'string' && typeof r.clusterId === 'string', () => `stored identity is corrupt: ${JSON.stringify(raw)}`);
  assert(r.memberId === undefined || typeof r.memberId === 'string', () => `stored identity is corrupt: ${JSON.stringify(raw)}`);
  return { nodeId: r.nodeId, clusterId: r.clusterId, ...(r.memberId !== undefined ? { memberId: r.memberId } : {}) };
}

export function readHardState(raw: unknown): HardState {
  if (raw === undefined) return freshHardState();
  const r = raw as Partial<HardState>;
  assert(isIndex(r.term) && isIndex(r.commit) && (r.vote === null || typeof r.vote === 'string'), () => `stored hard state is corrupt: ${JSON.stringify(raw)}`);
  return { term: r.term, vote: r.vote, commit: r.commit };
}

export function readSnapshotMeta(raw: unknown): SnapshotMeta | null {
  if (raw === undefined) return null;
  const r = raw as Partial<SnapshotMeta>;
  assert(
    isIndex(r.index) && isIndex(r.term) && r.config !== undefined && Array.isArray(r.config.members),
    () => `stored snapshot meta is corrupt: ${JSON.stringify(raw)}`,
  );
  return { index: r.index, term: r.term, config: r.config };
}
