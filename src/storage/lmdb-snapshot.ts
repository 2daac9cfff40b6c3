/**
 * A snapshot of the LMDB storage's kv state, read in chunks: an LMDB read transaction
 * pinned at open (committed writes) merged with a copy of the overlay taken at the same
 * moment (queued writes), plus the dedup table as it was then.
 *
 * Must never: hold an LMDB cursor open between chunks, or keep the read transaction after
 * the last chunk or `close()` (a pinned transaction stops LMDB from reusing pages).
 */

import type { Transaction } from 'lmdb';
import type { SnapshotMeta } from '../core/types.js';
import { ArrayCursor, assembleChunk } from './chunks.js';
import { MergedCursor, overlayUpperBound } from './lmdb-cursor.js';
import type { CursorView, OverlayItem } from './lmdb-cursor.js';
import type { BinaryDb } from './lmdb-slot.js';
import { encodeRecord } from './record-codec.js';
import { itemsChunk, type RawRecord } from './snapshot-records.js';
import type { DedupRecord, ItemsChunk, SnapshotChunk, SnapshotSource } from './types.js';

/** Records as LMDB holds them: committed ones as read, queued ones encoded the same way. */
const rawRecords: CursorView<RawRecord> = {
  fromBase: (key, value) => ({ key, record: value }),
  fromOverlay: (item, record) => ({ key: item.keyBytes, record: encodeRecord(record) }),
};

/**
 * Chunks of a consistent state: an LMDB read transaction (committed writes) merged with a
 * copy of the overlay taken at open (queued writes). Each chunk opens and closes its own
 * cursor on the pinned transaction, so a chunk's work is bounded and nothing is held open
 * between chunks except the transaction itself.
 */
export class LmdbSnapshotSource implements SnapshotSource {
  private seq = 0;
  private finished = false;
  private released = false;
  private resumeAfter: Buffer | undefined;
  private overlayPosition = 0;
  private readonly dedup: ArrayCursor<DedupRecord>;

  constructor(
    readonly meta: SnapshotMeta,
    private readonly kvDb: BinaryDb,
    private readonly txn: Transaction | null,
    private readonly overlay: readonly OverlayItem[],
    dedup: readonly DedupRecord[],
    private readonly onClose: (source: LmdbSnapshotSource) => void,
  ) {
    this.dedup = new ArrayCursor(dedup);
  }

  readChunk(bytesMax: number): SnapshotChunk | null {
    if (this.finished) return null;
    let base: Iterator<{ key: Buffer; value: Buffer }> | null = null;
    if (this.txn !== null) {
      const start = this.resumeAfter;
      base = this.kvDb.getRange(start === undefined ? { transaction: this.txn } : { start, transaction: this.txn })[Symbol.iterator]();
    }
    const cursor = new MergedCursor(base, this.overlay, this.overlayPosition, this.resumeAfter, false, rawRecords);
    let chunk: SnapshotChunk;
    try {
      chunk = assembleChunk(this.seq, bytesMax, cursor, this.dedup);
    } finally {
      cursor.close();
    }
    this.seq++;
    if (cursor.lastKey !== undefined) {
      this.resumeAfter = cursor.lastKey;
      // Resume the overlay right after the last key handed out: a peek past it may have
      // skipped deletions whose shadowed LMDB keys the next chunk's cursor will meet again.
      this.overlayPosition = overlayUpperBound(this.overlay, cursor.lastKey);
    }
    if (chunk.last) this.close();
    return chunk;
  }

  readItems(bytesMax: number): ItemsChunk | null {
    return itemsChunk(this.readChunk(bytesMax));
  }

  close(): void {
    this.finished = true;
    if (this.released) return;
    this.released = true;
    this.txn?.done();
    this.onClose(this);
  }
}
