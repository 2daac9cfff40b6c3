/**
 * The history of changes: for each version (log index) that changed client keys, what it
 * changed, with each key's previous record. Watches replay it from any version still kept,
 * and it is the base of reads at a past version. Kept as records in the state machine's own
 * key space, under reserved keys (leases.ts explains the NUL prefix), so it is replicated,
 * atomic with the writes it describes, carried by snapshots and identical on every node:
 *   \0h/{version, 14 hex digits}  -> [3, [[version, [[key, deleted, prevRecord|null], ...]], ...]]
 *                                    the changes of one apply batch, keyed by its last version
 *                                    (deleted 1: a delete, 0: a put; prevRecord: the record the
 *                                    change replaced, as storage/record-codec.ts lays it out,
 *                                    null when the key was absent)
 *   \0hc                          -> "{compactedBelow}": versions below it are gone
 *   \0n                           -> "{count}" of reserved records (leases' and these), so
 *                                    that keyCount() counts client keys only
 *
 * Reads at a past version find each key's changes through an index held in memory
 * (key-index.ts), so recording a change writes one record, appended in version order.
 *
 * Each value is stored once: a change records the value it replaced, not the one it wrote
 * (format 3). The value a put wrote is the one its key's next change replaced, or, when the
 * key has not changed since, the key's own record; `readChanges` finds it there. So a put
 * writes its value twice on disk (the key's record, the next change's row) instead of three
 * times, and a fill of new keys once. Formats 1 and 2 (value and previous value in each row)
 * are still read: history written before stays valid next to the new records. A large value
 * is not even copied once: it stays in its value row (value-rows.ts), the replaced record
 * only names it, and compaction deletes the row with the change that replaced it.
 *
 * Compaction is a command like any other (`compact`, proposed by the leader when the
 * history outgrows its retention, or by an operator), so every replica drops the same
 * versions at the same index; one entry removes at most `compactRecordsPerEntryMax`.
 *
 * Must never: record a reserved key's change, skip a client key's change, or depend on
 * anything but the entries (retention is the proposer's business).
 */

import { decodeOwnedRecord, encodeRecord } from '../storage/record-codec.js';
import { isInRow, type KvBackend, type KvItem, type KvReader, type KvRecord, type KvValue, type KvWriter } from '../storage/types.js';
import { ByteArena } from '../stdx/byte-arena.js';
import { checkIndex, checkString, checkValue, copyBytes, describe, KvCodecError } from './codec-checks.js';
import { packTuple, unpackTuple } from './codec.js';
import { afterReserved, isReservedKey } from './leases.js';
import { type KeyIndex, utf8Compare } from './key-index.js';
import { belongsInRow, inRowRecord, inRowOnUse, inRowResolved, inRowResolvedItems, valueRowKey } from './value-rows.js';
import type { KeyChange, VersionChanges } from './types.js';

export type { KeyChange, VersionChanges };

const historyPrefix = '\u0000h/';
const compactedKey = '\u0000hc';
const FORMAT_V1 = 1;
const FORMAT_V2 = 2;
const FORMAT_V3 = 3;

/** Records one compact entry removes at most: compaction is many small entries, never one huge one. */
export const compactRecordsPerEntryMax = 10_000;
/** History records a compaction reads at a time (each may hold a whole apply batch's values). */
const compactPageRecords = 16;


/** Where batch records are copied to: each is dropped once its batch's LMDB write commits (LMDB has its own copy). */
const recordBytes = new ByteArena();

const historyKey = (version: number): string => historyPrefix + version.toString(16).padStart(14, '0');

/** A change as it is applied: the record written (undefined: deleted), not read for its value. */
export interface CapturedChange {
  readonly key: string;
  readonly record: KvRecord | undefined;
  readonly prev: KvRecord | undefined;
}

/**
 * A KvWriter that notes every change to a client key as it passes through (with the
 * record the key held before); reserved keys pass unrecorded.
 */
export class ChangeCapture implements KvWriter {
  readonly changes: CapturedChange[] = [];
  /**
   * The records this command read or wrote: a put reads the key once (its version, then the
   * record it replaces), not once per step, which with large values was a decode each time.
   */
  private readonly seen = new Map<string, KvRecord | undefined>();
  /** Reserved records created minus removed (the state machine keeps their count: keyCount is of client keys). */
  reservedDelta = 0;

  constructor(
    private readonly tx: KvWriter,
    private readonly planted: HistoryPlanted = {},
  ) {}

  /** `key` as the command sees it: a value in its row is read from there if it is used. */
  get(key: string): KvRecord | undefined {
    return inRowOnUse(this.tx, key, this.stored(key));
  }
  /** `key` as stored: what a change replaced, its value left in its row (value-rows.ts). */
  private stored(key: string): KvRecord | undefined {
    if (this.seen.has(key)) return this.seen.get(key);
    const record = this.tx.get(key);
    this.seen.set(key, record);
    return record;
  }
  range(prefix: string, after: string | undefined, limit: number, reverse = false): KvItem[] {
    const items = inRowResolvedItems(this.tx, this.tx.range(prefix, after, limit, reverse));
    // A reserved key's item is its record as stored (only client values go to rows): a
    // compaction deleting the history records it just read need not read each one again.
    for (const item of items) if (isReservedKey(item.key) && !this.seen.has(item.key)) this.seen.set(item.key, item);
    return items;
  }
  getDedup(clientId: string): ReturnType<KvWriter['getDedup']> {
    return this.tx.getDedup(clientId);
  }
  appliedIndex(): number {
    return this.tx.appliedIndex();
  }
  keyCount(): number {
    return this.tx.keyCount();
  }
  put(key: string, record: KvRecord): void {
    const prev = this.stored(key);
    if (isReservedKey(key)) {
      if (prev === undefined) this.reservedDelta++;
      this.tx.put(key, record);
      this.seen.set(key, record);
      return;
    }
    this.changes.push({ key, record, prev });
    if (this.planted.valueRowFreedOnChange === true && prev !== undefined && isInRow(prev)) this.delete(valueRowKey(key, prev.version));
    let stored = record;
    // A row already written at this version (the key was put earlier in the same transaction)
    // belongs to that put's change: this value stays in the key's record.
    if (belongsInRow(record) && this.stored(valueRowKey(key, record.version)) === undefined) {
      this.put(valueRowKey(key, record.version), record);
      stored = inRowRecord(record.version);
    }
    this.tx.put(key, stored);
    this.seen.set(key, stored);
  }
  delete(key: string): void {
    const prev = this.stored(key);
    if (prev !== undefined && !isReservedKey(key)) this.changes.push({ key, record: undefined, prev });
    else if (prev !== undefined) this.reservedDelta--;
    this.tx.delete(key);
    this.seen.set(key, undefined);
  }
  putDedup(record: Parameters<KvWriter['putDedup']>[0]): void {
    this.tx.putDedup(record);
  }
  deleteDedup(clientId: string): void {
    this.tx.deleteDedup(clientId);
  }
  dedupCount(): number {
    return this.tx.dedupCount();
  }
  oldestDedup(count: number): ReturnType<KvWriter['oldestDedup']> {
    return this.tx.oldestDedup(count);
  }
}

/**
 * Writes one history record for an apply batch: the changes of each of its versions that
 * changed client keys (nothing when none did), keyed by the last of them. One record per
 * batch, not per entry: a put per entry cost the write path a fifth of its throughput.
 * Returns how many reserved records it created (0 or 1), for the reserved count.
 */
export function recordChanges(tx: KvWriter, batch: readonly { readonly version: number; readonly changes: readonly CapturedChange[] }[]): number {
  const last = batch[batch.length - 1];
  if (last === undefined) return 0;
  // The record replaced goes in as the storage read it: a large value is not decoded to be stored again.
  const versions = batch.map((b) => [b.version, b.changes.map((c) => [c.key, c.record === undefined ? 1 : 0, c.prev === undefined ? null : encodeRecord(c.prev)])]);
  // The record is always a new one: its version is above the applied index (apply skips what
  // it has applied), and the history moves with that index in the same transaction. Not
  // asked of the storage: a lookup of a key that is never there descends LMDB's tree for
  // nothing (≈ 9 µs of a follower's apply on a read-heavy load).
  tx.put(historyKey(last.version), { value: packTuple([FORMAT_V3, versions], 'history record', recordBytes), version: last.version });
  return 1;
}

/** The state of a client key as it was at `version`: outcome `compacted` when the history no longer reaches it. */
export type ReadAt<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly compactedBelow: number };

/**
 * `key` as it was at `version` (which must not be beyond the applied index): the record the
 * first change after `version` replaced, or, when it has not changed since, the current one.
 */
export function readAt(reader: KvBackend, index: KeyIndex, key: string, version: number): ReadAt<KvRecord | undefined> {
  const below = compactedBelow(reader);
  if (version < below - 1) return { ok: false, compactedBelow: below };
  index.sync(reader);
  const next = index.nextChange(key, version);
  if (next === undefined) {
    const current = reader.get(key);
    return { ok: true, value: current !== undefined && current.version <= version ? inRowResolved(reader, key, current) : undefined };
  }
  return { ok: true, value: inRowResolved(reader, key, replacedAt(reader, key, next)) };
}

/**
 * The keys under `prefix` strictly after `after` as they were at `version`, in UTF-8 byte
 * order (descending with `reverse`, `after` then being the cursor in that order), at most
 * `limit`: a page of a scan that every page reads at the same version, so the scan is
 * consistent while writes go on.
 */
export function listAt(reader: KvBackend, index: KeyIndex, page: { readonly prefix: string; readonly after: string | undefined; readonly limit: number; readonly reverse: boolean }, version: number): ReadAt<KvItem[]> {
  const below = compactedBelow(reader);
  if (version < below - 1) return { ok: false, compactedBelow: below };
  index.sync(reader);
  const { prefix, limit, reverse } = page;
  const out: KvItem[] = [];
  let cursor = page.after;
  // Two ordered sources: keys that exist now, and keys the history saw change (deleted
  // ones included). A key in neither did not exist at `version`.
  while (out.length < limit) {
    const now = reverse ? clientKey(reader.range(prefix, cursor, 1, true)[0]?.key) : reader.range(prefix, cursor ?? (prefix === '' ? afterReserved : undefined), 1)[0]?.key;
    const seen = reverse ? index.keyBefore(prefix, cursor) : index.keyAfter(prefix, cursor);
    const nowFirst = seen === undefined || (now !== undefined && (reverse ? utf8Compare(now, seen) >= 0 : utf8Compare(now, seen) <= 0));
    const key = nowFirst ? now : seen;
    if (key === undefined) break;
    cursor = key;
    const at = readAt(reader, index, key, version);
    if (!at.ok) return at;
    if (at.value !== undefined) out.push({ key, ...at.value });
  }
  return { ok: true, value: out };
}


/** `key`, unless it is a reserved one (they sort before every client key: a reverse scan meets them last). */
function clientKey(key: string | undefined): string | undefined {
  return key === undefined || isReservedKey(key) ? undefined : key;
}

const reservedCountKey = '\u0000n';

/** Reserved records (leases, history), not counting this count's own record. */
export function reservedCount(reader: KvReader): number {
  const record = reader.get(reservedCountKey);
  return record === undefined ? 0 : Number(record.value);
}

/** Client keys: every record but the reserved ones. */
export function clientKeyCount(reader: KvReader): number {
  const reserved = reservedCount(reader);
  return reader.keyCount() - reserved - (reader.get(reservedCountKey) === undefined ? 0 : 1);
}

export function addReservedCount(tx: KvWriter, delta: number, version: number): void {
  if (delta !== 0) tx.put(reservedCountKey, { value: String(reservedCount(tx) + delta), version });
}

/** Versions below this are compacted away (1: nothing was). */
export function compactedBelow(reader: KvReader): number {
  const record = reader.get(compactedKey);
  return record === undefined ? 1 : Number(record.value);
}

/** A change as its row stores it: a format-3 put leaves `value` to be found (`readChanges`). */
export interface StoredChange {
  readonly key: string;
  readonly deleted: boolean;
  /** What the put wrote when the row holds it (formats 1 and 2); undefined for a delete or a format-3 put. */
  readonly value: KvValue | undefined;
  readonly prev: KvRecord | undefined;
}

export interface StoredVersion {
  readonly version: number;
  readonly changes: readonly StoredChange[];
}

/** Test-only: bugs planted in the history (the simulator must catch them). */
export interface HistoryPlanted {
  /** Every put's value is taken from its key's current record, even when the key changed since. */
  valueFromCurrent?: boolean;
  /** A value row (value-rows.ts) is deleted when its key is put again, not when that change is compacted. */
  valueRowFreedOnChange?: boolean;
  /** Compaction removes history changes but not the value rows they own. */
  valueRowKeptAtCompaction?: boolean;
}

/**
 * The recorded changes from `fromVersion` on, in version order, at most `versionsMax`
 * versions (versions that changed no client key have no record and are skipped), each put
 * with the value it wrote (`index` finds a key's next change past the versions read).
 */
export function readChanges(reader: KvBackend, index: KeyIndex, fromVersion: number, versionsMax: number, planted: HistoryPlanted = {}): VersionChanges[] {
  index.sync(reader);
  const stored = readStoredChanges(reader, fromVersion, versionsMax);
  const resolved: VersionChanges[] = new Array<VersionChanges>(stored.length);
  // Backwards, so that each key's next change is already at hand when it is in the pages read.
  const replacedByNext = new Map<string, KvRecord | undefined>();
  const other = new Map<number, StoredVersion | undefined>();
  for (let v = stored.length - 1; v >= 0; v--) {
    const { version, changes } = stored[v] as StoredVersion;
    const out = new Array<KeyChange>(changes.length);
    for (let c = changes.length - 1; c >= 0; c--) {
      const change = changes[c] as StoredChange;
      if (!change.deleted && change.value === undefined) {
        const written = planted.valueFromCurrent === true ? reader.get(change.key) : writtenBy(reader, index, change.key, version, replacedByNext, other);
        // Read on use: a reader after versions only (the history retention) decodes no value.
        // A value in its row is read now, while the row is sure to be there.
        const value = inRowResolved(reader, change.key, written);
        out[c] = { key: change.key, get value() { return value?.value; }, prev: inRowResolved(reader, change.key, change.prev) };
      } else {
        out[c] = { key: change.key, value: change.value, prev: inRowResolved(reader, change.key, change.prev) };
      }
      replacedByNext.set(change.key, change.prev);
    }
    resolved[v] = { version, changes: out };
  }
  return resolved;
}

/**
 * The record the put of `key` at `version` wrote: the one its next change replaced (among the
 * pages already read, else found through the index), or the key's current record.
 */
function writtenBy(reader: KvReader, index: KeyIndex, key: string, version: number, replacedByNext: ReadonlyMap<string, KvRecord | undefined>, other: Map<number, StoredVersion | undefined>): KvRecord {
  let written: KvRecord | undefined;
  let where: string;
  if (replacedByNext.has(key)) {
    written = replacedByNext.get(key);
    where = 'its next change in the same read';
  } else {
    const next = index.nextChange(key, version);
    if (next === undefined) {
      written = reader.get(key);
      where = 'its current record';
    } else {
      written = replacedAt(reader, key, next, other);
      where = `its next change, at version ${next}`;
    }
  }
  if (written === undefined || written.version !== version) {
    throw new KvCodecError(`the put of ${JSON.stringify(key)} at version ${version} is not what ${where} replaced (${written === undefined ? 'nothing' : `version ${written.version}`})`);
  }
  return written;
}

/** What the first change of `key` at `version` replaced (`other` caches the versions read). */
function replacedAt(reader: KvReader, key: string, version: number, other?: Map<number, StoredVersion | undefined>): KvRecord | undefined {
  let stored = other?.get(version);
  if (stored === undefined) {
    const first = readStoredChanges(reader, version, 1)[0];
    stored = first?.version === version ? first : undefined;
    other?.set(version, stored);
  }
  const change = stored?.changes.find((c) => c.key === key);
  if (change === undefined) throw new KvCodecError(`the key index names ${JSON.stringify(key)} at version ${version}, whose record does not`);
  return change.prev;
}

/** The changes from `fromVersion` on as their rows store them (what the key index needs). */
export function readStoredChanges(reader: KvReader, fromVersion: number, versionsMax: number): StoredVersion[] {
  // A record is keyed by its last version: the first one after fromVersion - 1 holds it.
  const after = fromVersion <= 1 ? undefined : historyKey(fromVersion - 1);
  const out: StoredVersion[] = [];
  for (const item of reader.range(historyPrefix, after, versionsMax)) {
    for (const v of decodeRecord(item)) {
      if (v.version < fromVersion) continue;
      if (out.length === versionsMax) return out;
      out.push(v);
    }
  }
  return out;
}

/**
 * Drops the history below `beforeVersion` (at most compactRecordsPerEntryMax records) and
 * returns the new compaction point: `beforeVersion`, or less when the bound stopped it.
 */
export function compactHistory(tx: KvWriter, beforeVersion: number, version: number, removedChanges: [string, number][] = [], planted: HistoryPlanted = {}): { readonly compactedBelow: number; readonly removed: number } {
  const current = compactedBelow(tx);
  // Never past the compact entry itself: versions still to come cannot be compacted away.
  const target = Math.min(beforeVersion, version);
  if (target <= current) return { compactedBelow: current, removed: 0 };
  let removed = 0;
  let reached = target;
  // Page by page, stopping at the target: the history beyond it is most of the history (the
  // retention kept), and reading it all, values and all, stalled every node for seconds at
  // each compaction (4 s with 4 KiB values, long enough to lose the leader).
  let after: string | undefined;
  scan: for (;;) {
    const page = tx.range(historyPrefix, after, compactPageRecords);
    for (const item of page) {
      // A record of a batch that straddles the target stays whole (its older versions are
      // below compactedBelow: no reader asks for them).
      if (versionOf(item.key) >= target) break scan;
      const versions = decodeRecord(item);
      if (removed === compactRecordsPerEntryMax) {
        reached = versions[0]?.version ?? versionOf(item.key);
        break scan;
      }
      for (const v of versions) {
        for (const c of v.changes) {
          removedChanges.push([c.key, v.version]);
          // No read reaches below the compaction point: the value this change replaced goes too.
          if (c.prev !== undefined && isInRow(c.prev) && planted.valueRowKeptAtCompaction !== true) tx.delete(valueRowKey(c.key, c.prev.version));
        }
      }
      tx.delete(item.key);
      removed++;
      after = item.key;
    }
    if (page.length < compactPageRecords) break;
  }
  tx.put(compactedKey, { value: String(reached), version });
  return { compactedBelow: reached, removed };
}

function versionOf(key: string): number {
  return Number.parseInt(key.slice(historyPrefix.length), 16);
}

function decodeRecord(item: KvItem): StoredVersion[] {
  const context = `decode history record ${JSON.stringify(item.key)}`;
  if (typeof item.value === 'string') throw new KvCodecError(`Cannot ${context}: not bytes`);
  const tuple = unpackTuple(item.value, 'history record');
  const format = Array.isArray(tuple) ? tuple[0] : undefined;
  if (!Array.isArray(tuple) || tuple.length !== 2 || (format !== FORMAT_V1 && format !== FORMAT_V2 && format !== FORMAT_V3) || !Array.isArray(tuple[1])) {
    throw new KvCodecError(`Cannot ${context}: expected [1, rows] or [2|3, [[version, rows], …]], got ${describe(tuple)}`);
  }
  // Format 1: one version's rows, keyed by that version (records written before batching).
  if (format === FORMAT_V1) return [{ version: versionOf(item.key), changes: decodeRows(tuple[1] as unknown[], false, context) }];
  return (tuple[1] as unknown[]).map((entry): StoredVersion => {
    if (!Array.isArray(entry) || entry.length !== 2 || !Array.isArray(entry[1])) throw new KvCodecError(`Cannot ${context}: a version must be [version, rows], got ${describe(entry)}`);
    return { version: checkIndex(entry[0], 'version', context), changes: decodeRows(entry[1] as unknown[], format === FORMAT_V3, context) };
  });
}

/** Rows of format 1 and 2 hold [key, value|null, prevValue|null, prevVersion]; of format 3, [key, deleted 0|1, prevRecord|null]. */
function decodeRows(rows: readonly unknown[], replacedOnly: boolean, context: string): StoredChange[] {
  return rows.map((row): StoredChange => {
    const fields = replacedOnly ? 3 : 4;
    if (!Array.isArray(row) || row.length !== fields) throw new KvCodecError(`Cannot ${context}: a row must have ${fields} fields, got ${describe(row)}`);
    const key = checkString(row[0], 'key', context);
    if (replacedOnly) {
      if (row[1] !== 0 && row[1] !== 1) throw new KvCodecError(`Cannot ${context}: deleted must be 0 or 1, got ${describe(row[1])}`);
      if (row[2] !== null && !(row[2] instanceof Uint8Array)) throw new KvCodecError(`Cannot ${context}: a replaced record must be bytes, got ${describe(row[2])}`);
      const bytes = row[2] as Uint8Array | null;
      // A view of the history record, which nothing writes to once read.
      const prev = bytes === null ? undefined : decodeOwnedRecord(key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { key, deleted: row[1] === 1, value: undefined, prev };
    }
    const value = row[1] === null ? undefined : ownValue(checkValue(row[1], context));
    const prevVersion = row[3] === 0 ? 0 : checkIndex(row[3], 'prevVersion', context);
    const prev = prevVersion === 0 || row[2] === null ? undefined : { value: ownValue(checkValue(row[2], context)), version: prevVersion };
    return { key, deleted: row[1] === null, value, prev };
  });
}

function ownValue(value: KvValue): KvValue {
  return typeof value === 'string' ? value : copyBytes(value);
}
