/**
 * Committed kv records kept in memory, so that reading a key that was read or written a
 * moment ago does not descend LMDB's B-tree again. Every put reads its key on every node
 * (the version it checks, the record the history keeps) and then asks whether the key
 * exists; under load each such descent cost 3–6 µs of the apply path, mostly cache misses
 * in the memory map, against ≈ 0.1 µs for a map lookup.
 *
 * An entry is exactly what LMDB holds for its key as of the slot's read transaction, a record
 * or nothing (null: a key every request asks about may well be absent, such as the auth
 * document of a cluster without users): it is set from a read of LMDB, and refreshed by a
 * write to a key it holds once that write has committed (lmdb-slot.ts, `release`); a key
 * only ever written (a history record: one per apply batch, rarely read) takes no place.
 * Everything is dropped when LMDB is written behind the overlay's back (snapshot chunks,
 * clears). Bounded by records and by bytes; the oldest set goes first.
 *
 * Must never: hold a record LMDB no longer holds, or grow past its bounds.
 */

import type { KvRecord } from './types.js';

/** Records kept at most. */
export const RECENT_RECORDS_MAX = 100_000;
/** Bytes kept at most (an estimate: UTF-16 key length + encoded record + a fixed overhead). */
export const RECENT_BYTES_MAX = 16 << 20;
/**
 * A record longer than this (as stored) is not kept: such values are decoded lazily and large
 * ones live in value rows, and the history's records (one per apply batch, rarely read) are
 * mostly longer; kept, they would crowd out the small records every put and GET reads.
 */
export const RECENT_VALUE_BYTES_MAX = 1024;
/** Whether a record `encodedBytes` long as stored is one to keep (decide before copying it for keeps). */
export function isKept(encodedBytes: number): boolean {
  return encodedBytes <= RECENT_VALUE_BYTES_MAX;
}

/** What a map entry and a record object cost beyond the key and the value, roughly. */
const ENTRY_OVERHEAD_BYTES = 96;

export interface RecentRecordsLimits {
  readonly recordsMax: number;
  readonly bytesMax: number;
}

export class RecentRecords {
  /** Each record with the bytes it was counted as. */
  private readonly records = new Map<string, { readonly record: KvRecord | null; readonly bytes: number }>();
  private bytes = 0;

  constructor(private readonly limits: RecentRecordsLimits = { recordsMax: RECENT_RECORDS_MAX, bytesMax: RECENT_BYTES_MAX }) {}

  get size(): number {
    return this.records.size;
  }

  get bytesHeld(): number {
    return this.bytes;
  }

  /** What LMDB holds for `key` (null: nothing), or undefined when that is not known here. */
  get(key: string): KvRecord | null | undefined {
    return this.records.get(key)?.record;
  }

  /**
   * `key` holds `record` in LMDB now (null: it holds nothing), `encodedBytes` long as stored
   * (its value is not read here: a large one may be decoded only on use).
   */
  set(key: string, record: KvRecord | null, encodedBytes: number): void {
    this.delete(key);
    if (!isKept(encodedBytes)) return;
    const bytes = key.length * 2 + encodedBytes + ENTRY_OVERHEAD_BYTES;
    this.records.set(key, { record, bytes });
    this.bytes += bytes;
    if (this.records.size <= this.limits.recordsMax && this.bytes <= this.limits.bytesMax) return;
    for (const [oldest, held] of this.records) {
      if (this.records.size <= this.limits.recordsMax && this.bytes <= this.limits.bytesMax) break;
      this.records.delete(oldest);
      this.bytes -= held.bytes;
    }
  }

  /** Whether `key` is held (a record or a known absence). */
  has(key: string): boolean {
    return this.records.has(key);
  }

  delete(key: string): void {
    const held = this.records.get(key);
    if (held === undefined) return;
    this.records.delete(key);
    this.bytes -= held.bytes;
  }

  clear(): void {
    this.records.clear();
    this.bytes = 0;
  }
}
