/**
 * The simulated network: per-link base delay plus an exponential-like tail, loss,
 * duplication, FIFO per link except for rare reconnects (a message overtakes others),
 * one-way and two-way partitions (checked at delivery), clogging of node subsets (messages
 * held until the clog lifts) and stale leaders (nothing sent, everything to it held, then
 * delivered in order). Also each node's end of it, `SimTransport`.
 *
 * Owns the links and their state. Must never decide when a fault starts (faults.ts draws
 * that and calls in here), draw from any generator but the network's own, or deliver
 * anything to a node that is down (the world drops events of down nodes).
 */

import type { NodeId } from '../core/types.js';
import type { PeerMessage } from '../node/messages.js';
import type { Prng } from '../stdx/prng.js';
import { chunkBytes } from '../storage/sizes.js';
import type { PeerLinkState } from '../transport/types.js';
import { formatUs } from './checkers.js';
import type { DeliveringTransport, SimEnv } from './environment.js';

/** Per-link limit of messages in flight: send() refuses beyond it (bounded, like TCP's queue). */
const linkMessagesMax = 4096;

interface PartitionRule {
  readonly id: number;
  /** Directed links (from * n + to) that deliver nothing while the rule holds. */
  readonly links: readonly number[];
}

export class SimNetwork {
  private readonly n: number;
  private readonly indexOf = new Map<NodeId, number>();
  private readonly linkBaseUs: number[];
  private readonly inflightMessages: number[];
  private readonly inflightBytes: number[];
  private readonly droppedOnLink: number[];
  private readonly blocked: number[];
  private readonly clogUntilUs: number[];
  /** A stale leader sends nothing and receives only when this time comes (staleLeaderRate). */
  private readonly staleUntilUs: number[];
  /** Latest arrival time scheduled on each link (FIFO delivery). */
  private readonly lastArrivalUs: number[];
  private reorderRate: number;
  private rules: PartitionRule[] = [];
  private nextRuleId = 1;
  private lossRate: number;
  private duplicateRate: number;
  private burstToken = 0;
  private burstLoss = 0;
  private burstDuplicate = 0;
  /** Told when a node sends the heartbeats of a read round (where stale-leader faults start). */
  onReadRound: ((from: number, term: number, readRound: number) => void) | null = null;
  /** Told when a leader sends TimeoutNow, handing over (where hand-over faults start). */
  onTimeoutNow: ((from: number, term: number) => void) | null = null;

  /** Draws each link's base delay from `prng` (the network's generator), link by link. */
  constructor(
    private readonly env: SimEnv,
    private readonly prng: Prng,
  ) {
    const c = env.config;
    const n = env.nodeIds.length;
    this.n = n;
    env.nodeIds.forEach((id, i) => this.indexOf.set(id, i));
    this.linkBaseUs = Array.from({ length: n * n }, () => prng.intBetween(c.linkDelayUsMin, Math.max(c.linkDelayUsMin, c.linkDelayUsMax)));
    this.inflightMessages = new Array<number>(n * n).fill(0);
    this.inflightBytes = new Array<number>(n * n).fill(0);
    this.droppedOnLink = new Array<number>(n * n).fill(0);
    this.blocked = new Array<number>(n * n).fill(0);
    this.clogUntilUs = new Array<number>(n).fill(0);
    this.staleUntilUs = new Array<number>(n).fill(0);
    this.lastArrivalUs = new Array<number>(n * n).fill(0);
    this.reorderRate = c.reorderRate;
    this.lossRate = c.lossRate;
    this.duplicateRate = c.duplicateRate;
  }

  /** Node `index`'s end of the network. */
  transport(index: number): SimTransport {
    return new SimTransport(this, index);
  }

  send(from: number, toId: NodeId, m: PeerMessage): boolean {
    const to = this.indexOf.get(toId);
    if (to === undefined || to === from) return false;
    const env = this.env;
    env.stats.messages++;
    const link = from * this.n + to;
    if (m.type === 'heartbeat' && m.readRound > 0) this.onReadRound?.(from, m.term, m.readRound);
    if (m.type === 'timeoutNow') this.onTimeoutNow?.(from, m.term);
    if ((this.staleUntilUs[from] ?? 0) > env.nowUs()) {
      env.stats.messagesLost++;
      this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
      return true;
    }
    if ((this.inflightMessages[link] ?? 0) >= linkMessagesMax) {
      this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
      return false;
    }
    const loss = this.lossRate + this.burstLoss;
    if (loss > 0 && this.prng.chance(loss)) {
      env.stats.messagesLost++;
      this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
      return true;
    }
    this.deliverLater(from, to, m, '');
    const dup = this.duplicateRate + this.burstDuplicate;
    if (dup > 0 && this.prng.chance(dup)) this.deliverLater(from, to, m, ' (dup)');
    return true;
  }

  linkState(from: number, toId: NodeId): PeerLinkState {
    const to = this.indexOf.get(toId);
    if (to === undefined) return { connected: false, queuedMessages: 0, queuedBytes: 0, droppedMessages: 0 };
    const link = from * this.n + to;
    return {
      connected: (this.blocked[link] ?? 0) === 0 && this.env.node(to).status !== 'down',
      queuedMessages: this.inflightMessages[link] ?? 0,
      queuedBytes: this.inflightBytes[link] ?? 0,
      droppedMessages: this.droppedOnLink[link] ?? 0,
    };
  }

  hasPeer(id: NodeId): boolean {
    return this.indexOf.has(id);
  }

  /** Cuts the directed `links` (from * n + to) for `durUs`. */
  addRule(links: number[], durUs: number, what: string): void {
    const env = this.env;
    const id = this.nextRuleId++;
    this.rules.push({ id, links });
    this.applyRules();
    env.stats.partitions++;
    env.trace.note(`${env.nowUs()} * ${what} for ${formatUs(durUs)}`);
    env.at(durUs, `heal rule ${id}`, () => {
      const before = this.rules.length;
      this.rules = this.rules.filter((r) => r.id !== id);
      if (this.rules.length !== before) this.applyRules();
    });
  }

  /** Holds every message to or from node `x` until `untilUs` (at least). */
  clog(x: number, untilUs: number): void {
    this.clogUntilUs[x] = Math.max(this.clogUntilUs[x] ?? 0, untilUs);
  }

  /** Node `x` sends nothing and receives only once `untilUs` comes (at least). */
  holdStale(x: number, untilUs: number): void {
    this.staleUntilUs[x] = Math.max(this.staleUntilUs[x] ?? 0, untilUs);
  }

  /** Extra loss and duplication on every link for `durUs`. */
  lossBurst(loss: number, duplicate: number, durUs: number): void {
    const env = this.env;
    const token = ++this.burstToken;
    this.burstLoss = loss;
    this.burstDuplicate = duplicate;
    env.trace.note(`${env.nowUs()} * loss burst ${this.burstLoss} dup ${this.burstDuplicate} for ${formatUs(durUs)}`);
    env.at(durUs, 'loss burst ends', () => {
      if (this.burstToken === token) {
        this.burstLoss = 0;
        this.burstDuplicate = 0;
      }
    });
  }

  /** Partitions, clogs, stale holds, loss, duplication and reordering end for good. */
  heal(): void {
    this.rules = [];
    this.applyRules();
    this.clogUntilUs.fill(0);
    this.staleUntilUs.fill(0);
    this.lossRate = 0;
    this.duplicateRate = 0;
    this.reorderRate = 0;
    this.burstToken++;
    this.burstLoss = 0;
    this.burstDuplicate = 0;
  }

  private deliverLater(from: number, to: number, m: PeerMessage, suffixIn: string): void {
    const env = this.env;
    let suffix = suffixIn;
    const c = env.config;
    const link = from * this.n + to;
    const nowUs = env.nowUs();
    let delayUs = (this.linkBaseUs[link] ?? 0) + this.tailUs(c.delayTailUsMean);
    const clogUs = Math.max(this.clogUntilUs[from] ?? 0, this.clogUntilUs[to] ?? 0);
    if (clogUs > nowUs) delayUs = clogUs - nowUs + delayUs;
    if (this.reorderRate > 0 && this.prng.chance(this.reorderRate)) {
      // A reconnect: this message may overtake or be overtaken by others on the link.
      delayUs += this.prng.intBetween(0, c.reorderDelayUsMax);
      suffix += ' (reordered)';
    } else {
      // A connection is FIFO (the transport contract): never arrive before an earlier message.
      delayUs = Math.max(delayUs, (this.lastArrivalUs[link] ?? 0) - nowUs);
      this.lastArrivalUs[link] = nowUs + delayUs;
    }
    const bytes = messageBytes(m);
    this.inflightMessages[link] = (this.inflightMessages[link] ?? 0) + 1;
    this.inflightBytes[link] = (this.inflightBytes[link] ?? 0) + bytes;
    const release = (): void => {
      this.inflightMessages[link] = (this.inflightMessages[link] ?? 0) - 1;
      this.inflightBytes[link] = (this.inflightBytes[link] ?? 0) - bytes;
    };
    const fromId = env.nodeIds[from] as NodeId;
    const fromMember = env.node(from).memberId;
    const toMember = env.node(to).memberId;
    const label = `${fromId}>${env.nodeIds[to] ?? '?'} ${describeMessage(m)}${suffix}`;
    const deliver = (held: boolean): void => {
      const staleUs = this.staleUntilUs[to] ?? 0;
      const atUs = env.nowUs();
      // Held, in arrival order, until the receiver is no longer stale. A message arriving
      // just as it ends queues behind the held ones (FIFO), which then go at once.
      if (staleUs > atUs || (staleUs === atUs && !held)) {
        env.push(staleUs - atUs, to, -1, `${label} (held)`, () => deliver(true), release);
        return;
      }
      release();
      // A message to a member that is gone (its slot holds a new member now) is lost with it.
      if ((this.blocked[link] ?? 0) > 0 || env.node(to).memberId !== toMember) {
        env.stats.messagesLost++;
        this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
        return;
      }
      env.node(to).transport?.deliver(fromId, m, fromMember);
    };
    env.push(delayUs, to, -1, label, () => deliver(false), release);
  }

  /** Exponential-like tail without transcendental functions: geometric octave plus a uniform fraction. */
  private tailUs(meanUs: number): number {
    if (meanUs <= 0) return 0;
    const octave = Math.min(Math.clz32(this.prng.nextU32()), 20);
    return Math.floor((octave + this.prng.nextFloat()) * meanUs * 0.6931471805599453);
  }

  private applyRules(): void {
    this.blocked.fill(0);
    for (const r of this.rules) for (const l of r.links) this.blocked[l] = (this.blocked[l] ?? 0) + 1;
  }
}

/** The simulated network as one node's PeerTransport. */
export class SimTransport implements DeliveringTransport {
  private handler: ((from: NodeId, message: PeerMessage, fromMemberId: string | null) => void) | null = null;

  constructor(
    private readonly network: SimNetwork,
    private readonly node: number,
  ) {}

  send(to: NodeId, message: PeerMessage): boolean {
    return this.network.send(this.node, to, message);
  }

  onMessage(handler: (from: NodeId, message: PeerMessage, fromMemberId: string | null) => void): void {
    this.handler = handler;
  }

  deliver(from: NodeId, message: PeerMessage, fromMemberId: string): void {
    this.handler?.(from, message, fromMemberId);
  }

  peerState(id: NodeId): PeerLinkState {
    return this.network.linkState(this.node, id);
  }

  peerMeta(id: NodeId): Readonly<Record<string, string>> | null {
    return this.network.hasPeer(id) ? { http: `sim://${id}` } : null;
  }

  close(): Promise<void> {
    this.handler = null;
    return Promise.resolve();
  }
}

function messageBytes(m: PeerMessage): number {
  if (m.type === 'append') {
    let bytes = 64;
    for (const e of m.entries) bytes += e.data.byteLength + 24;
    return bytes;
  }
  if (m.type === 'snapshotChunk') return 64 + chunkBytes(m.chunk);
  return 64;
}

/** One short line per message, for the trace. */
export function describeMessage(m: PeerMessage): string {
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return `${m.type} t${m.term} last ${m.lastIndex}/${m.lastTerm}${m.type === 'vote' && m.transfer ? ' transfer' : ''}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${m.type} t${m.term} ${m.granted ? 'granted' : 'refused'}`;
    case 'append': {
      const first = m.entries[0];
      const last = m.entries[m.entries.length - 1];
      const range = first === undefined || last === undefined ? '[]' : `[${first.index}/${first.term}..${last.index}/${last.term}]`;
      return `append t${m.term} prev ${m.prevIndex}/${m.prevTerm} ${range} commit ${m.commit}${m.quiet === true ? ' quiet' : ''}`;
    }
    case 'appendResp':
      return m.reject ? `appendResp t${m.term} reject ${m.rejectedIndex} hint ${m.lastIndexHint}` : `appendResp t${m.term} match ${m.matchIndex}`;
    case 'heartbeat':
      return `heartbeat t${m.term} commit ${m.commit}${m.readRound !== 0 ? ` read ${m.readRound}` : ''}`;
    case 'heartbeatResp':
      return `heartbeatResp t${m.term}${m.readRound !== 0 ? ` read ${m.readRound}` : ''}`;
    case 'snapshot':
      return `snapshot t${m.term} at ${m.meta.index}/${m.meta.term}`;
    case 'snapshotChunk':
      return `snapshotChunk t${m.term} at ${m.meta.index}/${m.meta.term} #${m.chunk.seq}${m.chunk.last ? ' last' : ''}`;
    case 'readIndex':
      return `readIndex t${m.term} reads ${m.requestIds.length} from #${m.requestIds[0] ?? '-'}`;
    case 'readIndexResp':
      return `readIndexResp t${m.term} reads ${m.requestIds.length} from #${m.requestIds[0] ?? '-'} ${m.refusal === null ? `index ${m.index}` : `refused ${m.refusal}`}`;
    case 'timeoutNow':
      return `timeoutNow t${m.term}`;
    case 'forwardBatch':
      return `forwardBatch #${m.id} ${m.ops.length} ops`;
    case 'forwardReply':
      return `forwardReply #${m.id} ${m.results.length} results`;
  }
}
