/**
 * Snapshot chunking shared by both storage implementations: walks kv records (in key
 * order, as LMDB holds them) and then dedup records, cutting chunks at the same records
 * for the same `bytesMax` whatever holds the data.
 *
 * Must never: read storage itself (callers hand in cursors) or return an empty chunk while
 * records remain.
 */

import { assert } from '../stdx/assert.js';
import { dedupRecordBytes } from './sizes.js';
import { packedRecordBytes, packRecords, type RawRecord } from './snapshot-records.js';
import type { DedupRecord, SnapshotChunk } from './types.js';

/** A cursor that can look at its next element before consuming it. */
export interface Peekable<T> {
  peek(): T | undefined;
  advance(): void;
}

export class ArrayCursor<T> implements Peekable<T> {
  private position = 0;
  constructor(private readonly items: readonly T[]) {}
  peek(): T | undefined {
    return this.items[this.position];
  }
  advance(): void {
    this.position++;
  }
}

/**
 * Cuts the next snapshot chunk: kv items first, then dedup records, at least one record if
 * any remain, stopping before `bytesMax` would be exceeded.
 */
export function assembleChunk(seq: number, bytesMax: number, items: Peekable<RawRecord>, dedup: Peekable<DedupRecord>): SnapshotChunk {
  assert(Number.isFinite(bytesMax) ? bytesMax >= 0 : bytesMax === Infinity, () => `bytesMax must be >= 0, got ${bytesMax}`);
  const outItems: RawRecord[] = [];
  const outDedup: DedupRecord[] = [];
  let bytes = 0;
  let full = false;
  for (let item = items.peek(); item !== undefined; item = items.peek()) {
    const size = packedRecordBytes(item.key.byteLength, item.record.byteLength);
    if (outItems.length > 0 && bytes + size > bytesMax) {
      full = true;
      break;
    }
    outItems.push(item);
    bytes += size;
    items.advance();
  }
  if (!full) {
    for (let record = dedup.peek(); record !== undefined; record = dedup.peek()) {
      const size = dedupRecordBytes(record);
      if (outItems.length + outDedup.length > 0 && bytes + size > bytesMax) break;
      outDedup.push(record);
      bytes += size;
      dedup.advance();
    }
  }
  const last = items.peek() === undefined && dedup.peek() === undefined;
  return { seq, records: packRecords(outItems), dedup: outDedup, last };
}
