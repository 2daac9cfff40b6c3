/**
 * Sequence and size bookkeeping for an incoming snapshot, shared by both storage
 * implementations: chunks must come in order from seq 0, and the staged total must stay
 * within `snapshotBytesMax`. Where the staged records are kept is each implementation's
 * business.
 *
 * Must never: store chunk data, or accept a chunk it then refuses: every check runs before
 * the caller writes anything.
 */

import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import { checkDedupRecord, checkRecord } from './checks.js';
import { chunkBytes } from './sizes.js';
import type { SnapshotChunk } from './types.js';

/** Expected failure of snapshot staging (input from a peer): bad order or too large. */
export class SnapshotStagingError extends Error {
  override readonly name = 'SnapshotStagingError';
}

/**
 * Sequence and size bookkeeping for one incoming snapshot. `accept` throws before anything
 * is written when the chunk is out of order or would exceed `snapshotBytesMax`.
 */
export class StagingTracker {
  private nextSeq = 0;
  private bytes = 0;
  private done = false;
  private started = false;

  constructor(private readonly snapshotBytesMax: number) {
    assert(isIndex(snapshotBytesMax) && snapshotBytesMax > 0, () => `snapshotBytesMax must be a positive integer, got ${snapshotBytesMax}`);
  }

  get complete(): boolean {
    return this.done;
  }

  /** Validates `chunk`; returns true when it starts a new staging (seq 0). */
  accept(chunk: SnapshotChunk): boolean {
    assert(isIndex(chunk.seq), () => `snapshot chunk seq must be a safe index, got ${chunk.seq}`);
    const restart = chunk.seq === 0;
    if (!restart) {
      if (!this.started) throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: no staging in progress (expected seq 0)`);
      if (this.done) throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: chunk ${this.nextSeq - 1} was the last`);
      if (chunk.seq !== this.nextSeq) {
        throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: expected chunk ${this.nextSeq}`);
      }
    }
    for (const item of chunk.items) checkRecord(item.key, item);
    for (const record of chunk.dedup) checkDedupRecord(record);
    const total = (restart ? 0 : this.bytes) + chunkBytes(chunk);
    if (total > this.snapshotBytesMax) {
      this.reset();
      throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: staged snapshot would be ${total} bytes, snapshotBytesMax is ${this.snapshotBytesMax}`);
    }
    this.started = true;
    this.bytes = total;
    this.nextSeq = chunk.seq + 1;
    this.done = chunk.last;
    return restart;
  }

  /** Forgets the staging (after an install, or when it failed). */
  reset(): void {
    this.nextSeq = 0;
    this.bytes = 0;
    this.done = false;
    this.started = false;
  }
}
