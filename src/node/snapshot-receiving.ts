/**
 * A follower stages a leader's snapshot chunk by chunk beside the core (the counterpart of
 * snapshot-sending.ts); once the last chunk is staged, the core is handed the snapshot as
 * one message and decides whether to install it. A gap, a chunk of another snapshot or a
 * chunk storage refuses drops the snapshot being staged: the leader sends it again after its
 * timeout, as it does for a lost message.
 */

import type { NodeId, SnapshotMessage } from '../core/types.js';
import type { SnapshotChunk } from '../storage/types.js';
import type { SnapshotChunkMessage } from './messages.js';

export interface SnapshotReceiverDeps {
  /** storage.stageSnapshotChunk: throws SnapshotStagingError on malformed or out-of-order records. */
  readonly stage: (chunk: SnapshotChunk) => void;
  readonly onChunkStaged?: ((from: NodeId, chunk: SnapshotChunk) => void) | undefined;
  readonly onRefused?: ((from: NodeId, reason: string) => void) | undefined;
}

export class SnapshotReceiver {
  /** Seq expected next of the snapshot being staged, or -1. */
  private seq = -1;
  /** Which snapshot is being staged (sender, term, index, term of index): chunks of another are dropped. */
  private id = '';
  /**
   * A fully staged snapshot was handed to the core: until it is installed (or this tick
   * passes, if the core declined it) no new chunk may overwrite the staging area.
   */
  private lockedUntilTick = -1;

  constructor(private readonly deps: SnapshotReceiverDeps) {}

  /** Stages `m`; returns the message to step into the core once the snapshot is whole, else null. */
  receive(m: SnapshotChunkMessage, currentTerm: number, nowTick: number, lockTicks: number): SnapshotMessage | null {
    if (m.term < currentTerm || nowTick < this.lockedUntilTick) return null;
    const id = `${m.from}/${m.term}/${m.meta.index}/${m.meta.term}`;
    if (m.chunk.seq === 0) {
      this.seq = 0;
      this.id = id;
    }
    if (m.chunk.seq !== this.seq || id !== this.id) {
      this.seq = -1; // a gap: drop this snapshot, the leader will send another
      return null;
    }
    try {
      this.deps.stage(m.chunk);
    } catch (error) {
      if (!(error instanceof Error) || error.name !== 'SnapshotStagingError') throw error;
      this.seq = -1;
      this.deps.onRefused?.(m.from, error.message);
      return null;
    }
    this.seq++;
    this.deps.onChunkStaged?.(m.from, m.chunk);
    if (!m.chunk.last) return null;
    this.seq = -1;
    this.lockedUntilTick = nowTick + lockTicks;
    return { type: 'snapshot', from: m.from, to: m.to, term: m.term, meta: m.meta, commit: m.commit };
  }

  /** The staged snapshot was installed: the staging area is free again. */
  installed(): void {
    this.lockedUntilTick = -1;
  }
}
