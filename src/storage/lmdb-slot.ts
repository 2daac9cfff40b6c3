/**
 * One of the LMDB storage's two kv data sets (the live one, or the one staging an incoming
 * snapshot): its LMDB databases plus what it holds in memory, the overlay of queued but
 * uncommitted writes, the records recently read (recent-records.ts), the key
 * count and the dedup table. Reads consult the overlay first, then those records, then LMDB.
 *
 * Must never: queue LMDB writes itself (the storage does, and tells the slot when they
 * commit through `release` and `baseHiddenUntilSeq`), or drop an overlay entry before the
 * write that made it has committed.
 */

import type { Database } from 'lmdb';
import { assert } from '../stdx/assert.js';
import { compareUtf8 } from '../stdx/utf8.js';
import { DedupTable } from './dedup.js';
import type { UndoableKvState } from './kv-tx.js';
import { keyBytes, lookupKey, prefixEnd } from './lmdb-codec.js';
import { decodeRecordCopy } from './record-codec.js';
import { itemOf, walkRecords } from './snapshot-records.js';
import { MergedCursor } from './lmdb-cursor.js';
import { isKept, RecentRecords } from './recent-records.js';
import type { OverlayItem } from './lmdb-cursor.js';
import { KV_KEY_BYTES_MAX } from './sizes.js';
import type { KvItem, KvRecord } from './types.js';

export type BinaryDb = Database<Buffer, Buffer>;

/** Marks an overlay entry written by a kv write whose LMDB batch is not queued yet. */
export const SEQ_UNASSIGNED = Number.MAX_SAFE_INTEGER;

export interface OverlayEntry {
  readonly seq: number;
  readonly record: KvRecord | null;
}

/**
 * A staged snapshot chunk whose LMDB write has not committed yet. Its records stay packed:
 * a staging slot is not read until it is installed, and only the chunks still uncommitted
 * then are decoded into the overlay (`keys` set), instead of every record of the snapshot.
 */
interface StagedWrite {
  readonly records: Uint8Array;
  keys: string[] | null;
}

/** One of the two kv data sets (live or staging): LMDB databases plus in-memory state. */
export class KvSlot {
  /** Latest queued-but-uncommitted write per key (null: deleted). */
  readonly overlay = new Map<string, OverlayEntry>();
  /** Records LMDB holds as of the read transaction, kept so a hot key is not looked up again. */
  readonly recent = new RecentRecords();
  /** While > 0 the LMDB contents are stale (a clear is queued) and reads ignore them. */
  baseHiddenUntilSeq = 0;
  keyCount = 0;
  dedup = new DedupTable();
  /** Staged chunks by the seq of their LMDB write, until it commits. */
  private readonly stagedWrites = new Map<number, StagedWrite>();

  constructor(
    readonly id: 0 | 1,
    readonly kvDb: BinaryDb,
    readonly dedupDb: BinaryDb,
  ) {}

  get(key: string): KvRecord | undefined {
    const pending = this.overlay.get(key);
    if (pending !== undefined) return pending.record ?? undefined;
    if (this.baseHiddenUntilSeq > 0) return undefined;
    const held = this.recent.get(key);
    if (held !== undefined) return held ?? undefined;
    const lookup = lookupKey(key);
    // A key too long to be stored (lookup null) is not one LMDB could hold: nothing to keep.
    if (lookup === null) return undefined;
    // lmdb-js' reusable buffer, not a copy of its own (making one cost ≈ 2 µs a read): the
    // record is decoded or copied out of it at once. Through a plain view: that buffer has a
    // `length` of its own, and code that met it as well as ordinary buffers ran slower on both
    // (read-heavy lost a third).
    const reused = this.kvDb.getBinaryFast(lookup);
    const storedBytes = reused?.length ?? 0;
    // Only a record that will be kept gets memory of its own; the rest are copied as before.
    const record = reused === undefined ? null : decodeRecordCopy(key, Buffer.from(reused.buffer, reused.byteOffset, reused.length), isKept(storedBytes));
    this.recent.set(key, record, storedBytes);
    return record ?? undefined;
  }

  /** Whether `key` holds a record, without decoding it (a put's key count needs only that). */
  has(key: string): boolean {
    const pending = this.overlay.get(key);
    if (pending !== undefined) return pending.record !== null;
    if (this.baseHiddenUntilSeq > 0) return false;
    const held = this.recent.get(key);
    if (held !== undefined) return held !== null;
    const lookup = lookupKey(key);
    return lookup !== null && this.kvDb.doesExist(lookup);
  }

  range(prefix: string, after: string | undefined, limit: number, reverse = false): KvItem[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, () => `range limit must be a non-negative integer, got ${limit}`);
    const out: KvItem[] = [];
    const prefixBuffer = keyBytes(prefix);
    if (limit === 0 || prefixBuffer.length > KV_KEY_BYTES_MAX) return out; // no stored key is that long
    if (reverse) return this.rangeDown(prefix, prefixBuffer, after, limit);
    const afterInPrefix = after !== undefined && compareUtf8(after, prefix) >= 0;
    // Start at `after` itself and skip it (after + 0x00 could exceed LMDB's key size limit).
    const afterBuffer = afterInPrefix ? keyBytes(after) : undefined;
    const start = afterBuffer === undefined ? prefixBuffer : afterBuffer.subarray(0, KV_KEY_BYTES_MAX);
    const end = prefixEnd(prefixBuffer);
    const overlay: OverlayItem[] = [];
    for (const [key, entry] of this.overlay) {
      if (key.startsWith(prefix) && (!afterInPrefix || compareUtf8(key, after) > 0)) {
        overlay.push({ key, keyBytes: keyBytes(key), record: entry.record });
      }
    }
    overlay.sort((a, b) => Buffer.compare(a.keyBytes, b.keyBytes));
    const base = this.baseHiddenUntilSeq > 0 ? null : this.kvDb.getRange(end === undefined ? { start } : { start, end })[Symbol.iterator]();
    const cursor = new MergedCursor(base, overlay, 0, afterBuffer);
    try {
      for (let item = cursor.peek(); item !== undefined && out.length < limit; item = cursor.peek()) {
        out.push(item);
        cursor.advance();
      }
    } finally {
      cursor.close();
    }
    return out;
  }

  /**
   * `range` in descending order: from the end of the prefix's keys, or from just below
   * `after` when that comes first, down to the first key outside the prefix.
   */
  private rangeDown(prefix: string, prefixBuffer: Buffer, after: string | undefined, limit: number): KvItem[] {
    const out: KvItem[] = [];
    const end = prefixEnd(prefixBuffer);
    const afterBuffer = after === undefined ? undefined : keyBytes(after);
    // Keys at or above this are skipped: the cursor, or the first key past the prefix.
    const above = afterBuffer !== undefined && (end === undefined || Buffer.compare(afterBuffer, end) < 0) ? afterBuffer : end;
    const overlay: OverlayItem[] = [];
    for (const [key, entry] of this.overlay) {
      if (key.startsWith(prefix) && (after === undefined || compareUtf8(key, after) < 0)) {
        overlay.push({ key, keyBytes: keyBytes(key), record: entry.record });
      }
    }
    overlay.sort((a, b) => Buffer.compare(b.keyBytes, a.keyBytes));
    // lmdb-js starts a reverse range at `start` itself when it exists (the cursor skips it).
    // A cursor longer than LMDB keys may be is cut: no stored key lies between the cut and it.
    const start = above?.subarray(0, KV_KEY_BYTES_MAX);
    const base = this.baseHiddenUntilSeq > 0 ? null : this.kvDb.getRange(start === undefined ? { reverse: true } : { start, reverse: true })[Symbol.iterator]();
    const cursor = new MergedCursor(base, overlay, 0, above, true);
    try {
      for (let item = cursor.peek(); item !== undefined && out.length < limit && item.key.startsWith(prefix); item = cursor.peek()) {
        out.push(item);
        cursor.advance();
      }
    } finally {
      cursor.close();
    }
    return out;
  }

  /**
   * Drops overlay entries that the committed write `seq` made (later writes keep theirs). What
   * it wrote is what LMDB now holds: given its encoded records (`committed`), `recent` keeps
   * the keys it held fresh, decoded afresh as a read of LMDB would (the overlay's own records
   * may be views into a log entry, or decode it lazily: kept, they would pin its buffer, and
   * readers that met both kinds ran slower); without, `recent` forgets those keys. (A key a
   * later write holds in the overlay is read from there until that write commits in turn.)
   */
  release(keys: readonly string[], seq: number, committed?: ReadonlyMap<string, { readonly value: Buffer | null }>): void {
    for (const key of keys) {
      if (this.overlay.get(key)?.seq !== seq) continue;
      this.overlay.delete(key);
      // Only a key a read brought in is kept fresh: one only ever written is not worth a place.
      if (!this.recent.has(key)) continue;
      const stored = committed?.get(key)?.value;
      if (stored === null) this.recent.set(key, null, 0);
      // Decoded only when it will be kept (set would drop a longer one anyway).
      else if (stored !== undefined && isKept(stored.length)) this.recent.set(key, decodeRecordCopy(key, stored, true), stored.length);
      else this.recent.delete(key);
    }
  }

  /** A staged chunk's records, written by LMDB write `seq` (not yet committed). */
  staged(seq: number, records: Uint8Array, recordCount: number): void {
    this.stagedWrites.set(seq, { records, keys: null });
    this.keyCount += recordCount;
  }

  /** The staged write `seq` committed: LMDB holds its records now. */
  stagedCommitted(seq: number): void {
    // LMDB was written past the overlay: nothing held about its old contents may stay.
    this.recent.clear();
    const write = this.stagedWrites.get(seq);
    if (write === undefined) return;
    this.stagedWrites.delete(seq);
    if (write.keys !== null) this.release(write.keys, seq);
  }

  /**
   * The slot is about to be read (its snapshot is being installed): the staged records whose
   * write has not committed go into the overlay, to leave it when their write commits.
   */
  materializeStaged(): void {
    for (const [seq, write] of this.stagedWrites) {
      if (write.keys !== null) continue;
      const keys: string[] = [];
      walkRecords(write.records, undefined, (keyView, recordView) => {
        const { key, value, version } = itemOf(keyView, recordView);
        keys.push(key);
        this.overlay.set(key, { seq, record: { value, version } });
      });
      write.keys = keys;
    }
  }

  /** Forgets everything in memory; the caller queues the matching LMDB clear. */
  resetTo(clearSeq: number): void {
    this.overlay.clear();
    this.recent.clear();
    this.stagedWrites.clear();
    this.dedup = new DedupTable();
    this.keyCount = 0;
    this.baseHiddenUntilSeq = clearSeq;
  }
}

/** A slot as a transaction sees it: writes go to the overlay, with the key count kept. */
export function slotState(slot: KvSlot): UndoableKvState {
  return {
    get: (key) => slot.get(key),
    range: (prefix, after, limit, reverse) => slot.range(prefix, after, limit, reverse),
    keyCount: () => slot.keyCount,
    dedup: slot.dedup,
    write: (key, record) => {
      const previous = slot.overlay.get(key);
      const keyCount = slot.keyCount;
      const existed = slot.has(key);
      slot.overlay.set(key, { seq: SEQ_UNASSIGNED, record });
      if (record !== null && !existed) slot.keyCount++;
      if (record === null && existed) slot.keyCount--;
      return () => {
        if (previous === undefined) slot.overlay.delete(key);
        else slot.overlay.set(key, previous);
        slot.keyCount = keyCount;
      };
    },
  };
}
