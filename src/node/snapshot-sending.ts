/**
 * A leader streams a snapshot to a follower beside the core, in chunks on the peer link.
 * Sending is paced by the link: up to SNAPSHOT_CHUNKS_PER_TURN chunks per event-loop turn
 * while the link holds less than SNAPSHOT_QUEUED_BYTES_MAX, then the next turn, and the next
 * tick once the link is full. (Paced by ticks alone, 4 chunks per 50 ms tick, a snapshot
 * travelled at 20 MiB/s whatever the link could take: 81 s for a 10-million-key store.)
 */

import type { NodeId } from '../core/types.js';
import type { SnapshotSource } from '../storage/types.js';
import type { PeerTransport } from '../transport/types.js';
import type { PeerMessage, SnapshotChunkMessage } from './messages.js';

/** Chunks sent per outgoing snapshot and turn: the rest of the turn stays free for requests. */
export const SNAPSHOT_CHUNKS_PER_TURN = 4;
/** Bytes a peer's link may hold queued before chunks wait for the next tick. */
export const SNAPSHOT_QUEUED_BYTES_MAX = 8 * 1024 * 1024;

export interface OutgoingSnapshot {
  readonly source: SnapshotSource;
  readonly term: number;
  readonly commit: number;
  seq: number;
}

/**
 * `sent`: the last chunk is on the link; `more`: this turn's share went, go on next turn;
 * `wait`: the link is full, go on next tick; `dropped`: the link refused a chunk (the
 * follower sees a gap and discards; the core retries after its timeout).
 */
export type SnapshotSendOutcome = 'sent' | 'more' | 'wait' | 'dropped';

export function sendSnapshotChunks(from: NodeId, to: NodeId, out: OutgoingSnapshot, transport: PeerTransport<PeerMessage>, chunkBytes: number): SnapshotSendOutcome {
  const queuedBytesMax = Math.max(SNAPSHOT_QUEUED_BYTES_MAX, chunkBytes * 4);
  for (let sent = 0; sent < SNAPSHOT_CHUNKS_PER_TURN; sent++) {
    if (transport.peerState(to).queuedBytes > queuedBytesMax) return 'wait';
    const chunk = out.source.readChunk(chunkBytes);
    if (chunk === null) return 'wait';
    const msg: SnapshotChunkMessage = { type: 'snapshotChunk', from, to, term: out.term, commit: out.commit, meta: out.source.meta, chunk };
    if (!transport.send(to, msg)) return 'dropped';
    if (chunk.last) return 'sent';
  }
  return 'more';
}
