/**
 * Client operations a follower forwards to the leader over the peer transport, and their
 * answers: the follower's API gathers the single-key writes (and `leader` reads) of one
 * event-loop turn into one `forwardBatch` message, as etcd forwards MsgProp, instead of a
 * new HTTP request; the leader serves it with the API's batch rules (a handler the API
 * registers, since credentials and validation live there) and sends one `forwardReply`.
 * Not Raft: the core never sees these messages; the driver hands them here.
 *
 * Owns: the pending forwards of this node (matched by id and by the node that must answer,
 * bounded, each with a timer at its deadline plus a margin), and the count of forwarded
 * batches this node is serving (bounded).
 *
 * The rule that matters: a forward that may have reached the leader and got no answer is
 * `outcome_unknown`, never a refusal, since the leader may still apply its writes; only a
 * message the transport did not take proves nothing was sent. A leader change or a dropped
 * link fails the pending forwards at once (the driver's tick reports both), rather than
 * making clients wait for the deadline of an answer that cannot come.
 *
 * Must never: answer one forward with another's reply (a reply counts only from the node
 * it was sent to), keep a timer for a forward that was answered, or grow past its limits.
 */

import type { NodeId } from '../core/types.js';
import type { PeerTransport } from '../transport/types.js';
import { QkvError } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import type { BatchOpBody, BatchResultItem } from '../wire/types.js';
import type { ForwardBatchMessage, ForwardMessage, ForwardReplyMessage, PeerMessage } from './messages.js';

/**
 * What a node adds to its peer handshake's meta to say it serves forwarded batches. A node
 * forwards over the peer link only to a leader that said so (an older one gets HTTP).
 */
export const forwardingMeta: Readonly<Record<string, string>> = Object.freeze({ forward: '1' });

/** One forwarded batch as the leader's handler sees it. */
export interface ForwardedBatch {
  /** Checked only for shape at the frame (messages.ts): the handler applies the batch rules. */
  readonly ops: readonly BatchOpBody[];
  readonly token: string | null;
  /** Time the sender still allows, in ms (>= 1). */
  readonly timeoutMs: number;
}

/**
 * Serves a batch forwarded by `from`: one result per operation, in order, with the status
 * and body of its single-key route. A rejection answers every operation `internal`.
 */
export type ForwardedBatchHandler = (from: NodeId, batch: ForwardedBatch) => Promise<readonly BatchResultItem[]>;

/** What the API uses (KvNode.forwarding). */
export interface ForwardChannel {
  /** Whether a batch for `leaderId` can go over the peer link now: it serves forwards and the link is up. */
  reaches(leaderId: NodeId): boolean;
  /**
   * Sends `batch` to `leaderId`; resolves with its results (one per operation). Rejects with
   * busy or no_leader when nothing was sent, with outcome_unknown when it may have reached
   * the leader and no answer came (deadline and margin passed, leadership moved, the link
   * dropped, this node stopped).
   */
  send(leaderId: NodeId, batch: ForwardedBatch): Promise<readonly BatchResultItem[]>;
  /** Sets the one handler that serves the batches followers forward to this node. */
  serve(handler: ForwardedBatchHandler): void;
}

export interface ForwardingLimits {
  /** Batches sent and not yet answered; more are refused (busy) without being sent. */
  readonly pendingBatchesMax: number;
  /** Forwarded batches being served here at once; more are answered busy. */
  readonly servingBatchesMax: number;
  /**
   * Waited past a batch's deadline before it is given up as outcome_unknown, so that the
   * leader's own deadline answer (a typed 503) normally arrives first.
   */
  readonly answerMarginMs: number;
}

export const defaultForwardingLimits: ForwardingLimits = Object.freeze({
  pendingBatchesMax: 1_024,
  servingBatchesMax: 1_024,
  answerMarginMs: 1_000,
});

interface Pending {
  readonly leaderId: NodeId;
  readonly count: number;
  readonly resolve: (results: readonly BatchResultItem[]) => void;
  readonly reject: (error: QkvError) => void;
  readonly timer: NodeJS.Timeout;
}

/** Retry-After for a refusal of a forward that was not sent. */
const retryAfterMs = 1_000;

export class PeerForwarding implements ForwardChannel {
  private transport: PeerTransport<PeerMessage> | null = null;
  private handler: ForwardedBatchHandler | null = null;
  private readonly pending = new Map<number, Pending>();
  private idNext = 1;
  private serving = 0;
  private stopped = false;

  constructor(
    readonly self: NodeId,
    private readonly limits: ForwardingLimits = defaultForwardingLimits,
  ) {}

  /**
   * The driver's transport carries the messages (called by each driver as it starts: a node
   * whose disk filled starts a new one on the same channel once space is back).
   */
  attach(transport: PeerTransport<PeerMessage>): void {
    this.transport = transport;
    this.stopped = false;
  }

  serve(handler: ForwardedBatchHandler): void {
    this.handler = handler;
  }

  reaches(leaderId: NodeId): boolean {
    const t = this.transport;
    if (t === null || this.stopped || leaderId === this.self) return false;
    return t.peerMeta(leaderId)?.['forward'] === forwardingMeta['forward'] && t.peerState(leaderId).connected;
  }

  send(leaderId: NodeId, batch: ForwardedBatch): Promise<readonly BatchResultItem[]> {
    if (this.transport === null || this.stopped) return Promise.reject(new QkvError('shutting_down', 'This node is stopping: it forwards no more requests', {}, retryAfterMs));
    if (this.pending.size >= this.limits.pendingBatchesMax) {
      return Promise.reject(new QkvError('busy', `${this.pending.size} forwarded batches already wait for the leader's answer; nothing was sent`, {}, 100));
    }
    const id = this.idNext++;
    const message: ForwardBatchMessage = { type: 'forwardBatch', from: this.self, to: leaderId, id, ops: batch.ops, token: batch.token, timeoutMs: batch.timeoutMs };
    if (!this.transport.send(leaderId, message)) {
      return Promise.reject(new QkvError('no_leader', `Cannot queue the forwarded batch for leader ${leaderId} (peer link unknown or full); it was not sent`, { leaderId }, retryAfterMs));
    }
    return new Promise((resolve, reject) => {
      const waitMs = batch.timeoutMs + this.limits.answerMarginMs;
      const timer = setTimeout(() => this.lose(id, `leader ${leaderId} did not answer within ${waitMs} ms`), waitMs);
      timer.unref();
      this.pending.set(id, { leaderId, count: batch.ops.length, resolve, reject, timer });
    });
  }

  /** A forward message from a peer (decoded and addressed to this node). */
  receive(from: NodeId, m: ForwardMessage): void {
    if (m.type === 'forwardReply') this.answered(from, m);
    else this.serveBatch(from, m);
  }

  /**
   * The driver's tick: the leader this node knows now. A pending forward to any other node,
   * or over a link that dropped, cannot be answered any more (or may not be): it fails now.
   */
  tick(leader: NodeId | null): void {
    if (this.pending.size === 0 || this.transport === null) return;
    const linkUp = leader !== null && this.transport.peerState(leader).connected;
    for (const [id, p] of this.pending) {
      if (p.leaderId !== leader) this.lose(id, `leadership moved from ${p.leaderId} to ${leader ?? 'nobody yet'} before the answer came`);
      else if (!linkUp) this.lose(id, `the peer link to leader ${p.leaderId} dropped before the answer came`);
    }
  }

  /** Fails every pending forward (outcome_unknown) and serves no more. */
  stop(): void {
    this.stopped = true;
    for (const id of [...this.pending.keys()]) this.lose(id, 'this node stopped before the leader answered');
  }

  private answered(from: NodeId, m: ForwardReplyMessage): void {
    const p = this.pending.get(m.id);
    if (p === undefined || p.leaderId !== from) return; // late (already given up) or not the node asked
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.results.length === p.count) p.resolve(m.results);
    else p.reject(new QkvError('outcome_unknown', `Leader ${from} answered a forwarded batch of ${p.count} with ${m.results.length} results; whether the writes were applied is unknown`, { leaderId: from }));
  }

  private lose(id: number, why: string): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(new QkvError('outcome_unknown', `The forwarded batch may have reached the leader, but ${why}: its writes may or may not be applied; retry with the same clientId/seq to find out`, { leaderId: p.leaderId }));
  }

  private serveBatch(from: NodeId, m: ForwardBatchMessage): void {
    const handler = this.handler;
    if (handler === null || this.stopped) return this.reply(from, m, every(m, 'shutting_down', `Node ${this.self} does not serve forwarded requests (starting or stopping)`));
    if (this.serving >= this.limits.servingBatchesMax) return this.reply(from, m, every(m, 'busy', `Node ${this.self} is serving ${this.serving} forwarded batches already`));
    this.serving++;
    void handler(from, { ops: m.ops, token: m.token, timeoutMs: m.timeoutMs })
      .then(
        (results) => (results.length === m.ops.length ? results : every(m, 'internal', `the batch handler gave ${results.length} results for ${m.ops.length} operations`)),
        (error: unknown) => every(m, 'internal', `serving the forwarded batch failed: ${error instanceof Error ? error.message : String(error)}`),
      )
      .then((results) => {
        this.serving--;
        this.reply(from, m, results);
      });
  }

  /**
   * Sends the answer. An answer the link cannot take (reads of large values past the frame
   * limit) goes again with its reads refused (busy: a read may simply be retried); writes
   * keep their results, since they are applied.
   */
  private reply(to: NodeId, m: ForwardBatchMessage, results: readonly BatchResultItem[]): void {
    const t = this.transport;
    if (t === null) return;
    const message: ForwardReplyMessage = { type: 'forwardReply', from: this.self, to, id: m.id, results };
    if (t.send(to, message)) return;
    const tooBig = errorItem('busy', 'the answer to this read did not fit the peer link with the rest of its batch; retry it');
    t.send(to, { ...message, results: results.map((r, i) => (m.ops[i]?.op === 'get' ? tooBig : r)) });
  }
}

/**
 * An error as one operation's answer in a batch: its status and body, with retryAfterMs on a
 * 503 (1 s unless the error says). The one shape for both sides: the API's batch rules
 * (api/routes/batch.ts) and this module's refusals of a whole forwarded batch.
 */
export function batchErrorItem(error: QkvError): BatchResultItem {
  return error.status === 503 ? { status: error.status, ...error.toBody(), retryAfterMs: error.retryAfterMs ?? retryAfterMs } : { status: error.status, ...error.toBody() };
}

function errorItem(code: ErrorCode, message: string): BatchResultItem {
  return batchErrorItem(new QkvError(code, message, {}, retryAfterMs));
}

function every(m: ForwardBatchMessage, code: ErrorCode, message: string): BatchResultItem[] {
  const item = errorItem(code, message);
  return m.ops.map(() => item);
}
