/**
 * Sequence and size bookkeeping for an incoming snapshot, shared by both storage
 * implementations: chunks must come in order from seq 0, and the staged total must stay
 * within `snapshotBytesMax`. Where the staged records are kept is each implementation's
 * business.
 *
 * Must never: store chunk data, or accept a chunk it then refuses: every check runs before
 * the caller writes anything. A chunk comes from a peer or a backup file, so a bad one is
 * an expected failure (SnapshotStagingError), not an assertion.
 */

import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import { checkDedupRecord } from './checks.js';
import { chunkBytes } from './sizes.js';
import { walkRecords } from './snapshot-records.js';
import type { SnapshotChunk } from './types.js';

/** Expected failure of snapshot staging (input from a peer or a file): bad order, malformed records, or too large. */
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
  /** The staged snapshot's greatest key so far: the next chunk's keys must come after it. */
  private lastKey: Uint8Array | undefined;

  constructor(private readonly snapshotBytesMax: number) {
    assert(isIndex(snapshotBytesMax) && snapshotBytesMax > 0, () => `snapshotBytesMax must be a positive integer, got ${snapshotBytesMax}`);
  }

  get complete(): boolean {
    return this.done;
  }

  /**
   * Validates `chunk` and walks its kv records, handing each to `each` as views into the
   * chunk (`each` must only collect them: on a fault this throws after `each` saw the
   * records before it, and the caller drops what it collected). Throws SnapshotStagingError
   * when the chunk is out of order, malformed, or would exceed `snapshotBytesMax`; then the
   * staging is forgotten. Returns true when the chunk starts a new staging (seq 0) and the
   * number of kv records it holds.
   */
  accept(chunk: SnapshotChunk, each: (key: Uint8Array, record: Uint8Array) => void): { restart: boolean; records: number } {
    assert(isIndex(chunk.seq), () => `snapshot chunk seq must be a safe index, got ${chunk.seq}`);
    const restart = chunk.seq === 0;
    if (!restart) {
      if (!this.started) throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: no staging in progress (expected seq 0)`);
      if (this.done) throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: chunk ${this.nextSeq - 1} was the last`);
      if (chunk.seq !== this.nextSeq) {
        throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: expected chunk ${this.nextSeq}`);
      }
    }
    const total = (restart ? 0 : this.bytes) + chunkBytes(chunk);
    if (total > this.snapshotBytesMax) {
      this.reset();
      throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: staged snapshot would be ${total} bytes, snapshotBytesMax is ${this.snapshotBytesMax}`);
    }
    let walked: { count: number; lastKey: Uint8Array | undefined };
    try {
      for (const record of chunk.dedup) checkDedupRecord(record);
      walked = walkRecords(chunk.records, restart ? undefined : this.lastKey, each);
    } catch (error) {
      // Malformed records (PackedRecordsError) or dedup records (a failed check): the peer's
      // or the file's fault either way.
      this.reset();
      throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.started = true;
    this.bytes = total;
    this.nextSeq = chunk.seq + 1;
    this.done = chunk.last;
    // A copy: the view points into the chunk, which the next chunk's check must not depend on.
    if (walked.lastKey !== undefined) this.lastKey = Buffer.from(walked.lastKey);
    else if (restart) this.lastKey = undefined;
    return { restart, records: walked.count };
  }

  /** Forgets the staging (after an install, or when it failed). */
  reset(): void {
    this.nextSeq = 0;
    this.bytes = 0;
    this.done = false;
    this.started = false;
    this.lastKey = undefined;
  }
}
