/**
 * A sample of the peer messages this node sends, for the dashboard's animated view of
 * messages between nodes (appends, acks, votes, heartbeats): a learner sees a write travel
 * and a vote happen on the real processes. Each node samples only what it sends, so the
 * union over the nodes has every sampled message once; the dashboard's poller gathers them
 * (GET /ui/messages, api/ui/poller.ts).
 *
 * Bounded: at most `samplesPerKindPerSecondMax` messages of each kind per wall-clock second
 * are kept (the rest only counted, per kind, as skipped), so a busy leader's thousands of
 * appends cost a counter each, and a burst of heartbeats cannot crowd out a vote; the last
 * `samplesKeptMax` samples are kept in a ring. No timer, no queue that grows.
 *
 * Must never: hold a message or its entries (a sample copies a few numbers), change what is
 * sent, or read a clock of its own (the time comes in as `nowMs`).
 */

import type { NodeId } from '../core/types.js';
import type { PeerLinkState, PeerTransport } from '../transport/types.js';
import type { ForwardMessage, PeerMessage } from './messages.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';

/** Raft's messages and snapshot chunks; client operations forwarded to the leader are not drawn. */
export type SampledKind = Exclude<PeerMessage['type'], ForwardMessage['type']>;

/** Every kind a sample can have, in the order the dashboard's legend lists them. */
export const sampledKinds: readonly SampledKind[] = [
  'append',
  'appendResp',
  'heartbeat',
  'heartbeatResp',
  'preVote',
  'preVoteResp',
  'vote',
  'voteResp',
  'snapshot',
  'snapshotChunk',
  'readIndex',
  'readIndexResp',
  'timeoutNow',
];

/** One sent message, as the dashboard draws it. */
export interface MessageSample {
  /** Increases by one per sample over this sampler's life. */
  readonly seq: number;
  /** Wall-clock time it was handed to the transport (ms since the epoch). */
  readonly atMs: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly kind: SampledKind;
  readonly term: number;
  /** Log entries it carries (appends); 0 for every other kind. */
  readonly entries: number;
  /**
   * The log index it is about: an append's last entry, an ack's match index, a heartbeat's
   * commit, a vote's last log index, a snapshot's index; null for the others.
   */
  readonly index: number | null;
  /** A vote granted or an append accepted (true), refused (false); null for requests. */
  readonly ok: boolean | null;
}

export interface MessageSamplerLimits {
  /** Messages of one kind kept per wall-clock second; more are counted as skipped. */
  readonly samplesPerKindPerSecondMax: number;
  /** Samples kept for readers; older ones are overwritten. */
  readonly samplesKeptMax: number;
}

export const defaultMessageSamplerLimits: MessageSamplerLimits = {
  samplesPerKindPerSecondMax: 4,
  samplesKeptMax: 256,
};

/** Messages counted per kind since the sampler started. */
export type KindCounts = Partial<Record<SampledKind, number>>;

/** What a reader gets: the samples after its cursor, and the running totals. */
export interface SampledMessages {
  /** When this sampler started (ms since the epoch): a new value means a new process, whose seqs restart. */
  readonly startedAtMs: number;
  /** The seq the next sample will get: the reader's next cursor. */
  readonly seqNext: number;
  /** Samples with seq > the cursor, oldest first (at most samplesKeptMax). */
  readonly samples: readonly MessageSample[];
  readonly sampledByKind: KindCounts;
  /** Sent but not sampled (over the per-kind rate). */
  readonly skippedByKind: KindCounts;
}

/** What the dashboard's route reads (the sampler itself, or nothing on a node without one). */
export interface MessageSource {
  since(seqAfter: number): SampledMessages;
}

function describe(m: Exclude<PeerMessage, ForwardMessage>): { entries: number; index: number | null; ok: boolean | null } {
  switch (m.type) {
    case 'append':
      return { entries: m.entries.length, index: m.prevIndex + m.entries.length, ok: null };
    case 'appendResp':
      return { entries: 0, index: m.reject ? m.rejectedIndex : m.matchIndex, ok: !m.reject };
    case 'heartbeat':
      return { entries: 0, index: m.commit, ok: null };
    case 'preVote':
    case 'vote':
      return { entries: 0, index: m.lastIndex, ok: null };
    case 'preVoteResp':
    case 'voteResp':
      return { entries: 0, index: null, ok: m.granted };
    case 'snapshot':
    case 'snapshotChunk':
      return { entries: 0, index: m.meta.index, ok: null };
    case 'readIndexResp':
      return { entries: 0, index: m.refusal === null ? m.index : null, ok: m.refusal === null };
    default:
      return { entries: 0, index: null, ok: null };
  }
}

export class MessageSampler implements MessageSource {
  private readonly ring: (MessageSample | undefined)[];
  private seqNext = 1;
  private windowSecond = -1;
  private readonly inWindow = new Map<SampledKind, number>();
  private readonly sampled: Record<string, number> = {};
  private readonly skipped: Record<string, number> = {};
  readonly startedAtMs: number;

  constructor(
    private readonly limits: MessageSamplerLimits,
    /** Wall-clock milliseconds since the epoch (Date.now in production). */
    private readonly nowMs: () => number,
  ) {
    checkPositiveSafeInt(limits.samplesKeptMax, 'samplesKeptMax');
    if (!Number.isSafeInteger(limits.samplesPerKindPerSecondMax) || limits.samplesPerKindPerSecondMax < 0) {
      throw new RangeError(`samplesPerKindPerSecondMax must be an integer >= 0, got ${limits.samplesPerKindPerSecondMax}`);
    }
    this.ring = new Array<MessageSample | undefined>(limits.samplesKeptMax);
    this.startedAtMs = nowMs();
  }

  /** Notes that `message` was handed to the transport: sampled, or counted as skipped. */
  record(message: PeerMessage): void {
    if (message.type === 'forwardBatch' || message.type === 'forwardReply') return;
    const atMs = this.nowMs();
    const second = Math.floor(atMs / 1000);
    if (second !== this.windowSecond) {
      this.windowSecond = second;
      this.inWindow.clear();
    }
    const kind = message.type;
    const taken = this.inWindow.get(kind) ?? 0;
    if (taken >= this.limits.samplesPerKindPerSecondMax) {
      this.skipped[kind] = (this.skipped[kind] ?? 0) + 1;
      return;
    }
    this.inWindow.set(kind, taken + 1);
    this.sampled[kind] = (this.sampled[kind] ?? 0) + 1;
    const seq = this.seqNext++;
    this.ring[seq % this.ring.length] = { seq, atMs, from: message.from, to: message.to, kind, term: message.term, ...describe(message) };
  }

  since(seqAfter: number): SampledMessages {
    const oldest = Math.max(seqAfter + 1, this.seqNext - this.ring.length, 1);
    const samples: MessageSample[] = [];
    for (let seq = oldest; seq < this.seqNext; seq++) {
      const s = this.ring[seq % this.ring.length];
      if (s !== undefined && s.seq === seq) samples.push(s);
    }
    return { startedAtMs: this.startedAtMs, seqNext: this.seqNext, samples, sampledByKind: { ...this.sampled }, skippedByKind: { ...this.skipped } };
  }
}

/**
 * `inner`, with every message it accepts noted in `sampler`. Wrapped under the fault
 * wrapper, it sees what really goes on the wire: not what a partition or a drop removed,
 * and a delayed message when its delay ends.
 */
export function sampledTransport<M extends PeerMessage>(inner: PeerTransport<M>, sampler: MessageSampler): PeerTransport<M> {
  return {
    send(to: NodeId, message: M): boolean {
      const accepted = inner.send(to, message);
      if (accepted) sampler.record(message);
      return accepted;
    },
    onMessage: (handler) => inner.onMessage(handler),
    peerState: (id): PeerLinkState => inner.peerState(id),
    peerMeta: (id) => inner.peerMeta(id),
    close: () => inner.close(),
  };
}
