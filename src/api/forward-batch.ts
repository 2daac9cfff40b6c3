/**
 * Forwarded single-key writes (and `leader` reads) gathered per leader and credentials per
 * event-loop turn, as etcd batches the MsgProps a follower forwards. A follower taking 64
 * writes at once sends the leader one message instead of 64; each write still gets its own
 * answer, exactly what its own forward would have got (the leader answers every operation
 * with the status and body of its single-key route, and a leader that is no longer one
 * answers each `not_leader`, which the router retries as before).
 *
 * Two ways to the leader. The peer link (node/forwarding.ts), when the leader serves
 * forwards and the link is up: one `forwardBatch` message, no HTTP on either side. Else
 * HTTP: one POST /batch (a lone operation as its own request), for a leader that does not
 * serve forwards over the peer link (an older node during a rolling upgrade) or a link that
 * is down while the leader's HTTP API may still be reachable.
 *
 * Idempotency is unchanged: each operation carries its own clientId and seq. The batch's
 * deadline is the earliest of its operations', so none waits past its own.
 *
 * Must never: hold an operation past the turn it arrived in, put more than `opsMax`
 * operations or about `bytesMax` bytes in one batch, or answer one operation with another's
 * result.
 */

import type { KvCommand } from '../kv/types.js';
import type { BatchOpBody, BatchResultItem, LeaderInfo } from '../wire/types.js';
import { batchRoute } from '../wire/types.js';
import { QkvError } from '../wire/errors.js';
import type { ForwardedResponse, ForwardRead, ForwardSpec } from './forward-types.js';
import { jsonValue } from '../wire/values.js';

export interface ForwardBatchLimits {
  /** Operations per batch at most (the batch rules take 1,000). */
  readonly opsMax: number;
  /** JSON bytes per batch, about; a larger operation goes alone. */
  readonly bytesMax: number;
}

export const defaultForwardBatchLimits: ForwardBatchLimits = { opsMax: 256, bytesMax: 1024 * 1024 };

interface Waiting {
  readonly op: BatchOpBody;
  /** The operation's JSON, for an HTTP batch; null on the peer link, which needs none. */
  readonly json: string | null;
  readonly spec: ForwardSpec;
  readonly resolve: (response: ForwardedResponse) => void;
  readonly reject: (error: unknown) => void;
}

interface Queue {
  readonly leader: LeaderInfo;
  readonly token: string | null;
  /** Chosen when the queue opens: the whole batch takes one way. */
  readonly viaPeer: boolean;
  readonly items: Waiting[];
  bytes: number;
}

/** Sends one request to the leader as the router would (headers, pool, failure mapping). */
export type SendToLeader = (leader: LeaderInfo, spec: ForwardSpec) => Promise<ForwardedResponse>;

/** The peer link to the leader (node/forwarding.ts, through the router, which counts outcomes). */
export interface PeerBatchSink {
  /** Whether the leader serves forwards over the peer link and the link is up. */
  reaches(leaderId: string): boolean;
  /**
   * One result per operation, in order. Rejects with a QkvError: busy or no_leader when
   * nothing was sent, timeout when the deadline passed first, outcome_unknown after sending.
   */
  send(leader: LeaderInfo, ops: readonly BatchOpBody[], token: string | null, deadlineMs: number): Promise<readonly BatchResultItem[]>;
}

export class ForwardBatcher {
  private readonly queues = new Map<string, Queue>();
  private scheduled = false;

  constructor(
    private readonly send: SendToLeader,
    private readonly limits: ForwardBatchLimits = defaultForwardBatchLimits,
    private readonly peer: PeerBatchSink | null = null,
  ) {}

  /** The leader's answer to `op` as if it had been forwarded alone. */
  forward(leader: LeaderInfo, spec: ForwardSpec, op: BatchOpBody): Promise<ForwardedResponse> {
    const token = spec.token ?? null;
    const queueKey = `${leader.id}\u0000${leader.http ?? ''}\u0000${token ?? ''}`;
    let queue = this.queues.get(queueKey);
    const viaPeer = queue?.viaPeer ?? this.peer?.reaches(leader.id) === true;
    const json = viaPeer ? null : JSON.stringify(op);
    const bytes = json === null ? estimatedBytes(op) : json.length;
    if (bytes >= this.limits.bytesMax) {
      if (!viaPeer) return this.send(leader, spec);
      const alone: Queue = { leader, token, viaPeer, items: [], bytes };
      const answer = this.enqueue(alone, op, json, spec);
      void this.flushQueue(alone);
      return answer;
    }
    if (queue !== undefined && (queue.items.length >= this.limits.opsMax || queue.bytes + bytes > this.limits.bytesMax)) {
      this.queues.delete(queueKey);
      void this.flushQueue(queue);
      queue = undefined;
    }
    if (queue === undefined) {
      queue = { leader, token, viaPeer, items: [], bytes: 0 };
      this.queues.set(queueKey, queue);
    }
    queue.bytes += bytes + 1;
    const answer = this.enqueue(queue, op, json, spec);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
    return answer;
  }

  private enqueue(queue: Queue, op: BatchOpBody, json: string | null, spec: ForwardSpec): Promise<ForwardedResponse> {
    return new Promise<ForwardedResponse>((resolve, reject) => queue.items.push({ op, json, spec, resolve, reject }));
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const queues = [...this.queues.values()];
    this.queues.clear();
    for (const queue of queues) void this.flushQueue(queue);
  };

  private async flushQueue(queue: Queue): Promise<void> {
    if (queue.viaPeer && this.peer !== null && this.peer.reaches(queue.leader.id)) return this.flushToPeer(queue, this.peer);
    const { items } = queue;
    const only = items.length === 1 ? items[0] : undefined;
    if (only !== undefined) {
      // One operation this turn: its own request, as before (no batch to unpack).
      this.send(queue.leader, only.spec).then(only.resolve, (error: unknown) => only.reject(error));
      return;
    }
    const body = Buffer.from(`{"ops":[${items.map((i) => i.json ?? JSON.stringify(i.op)).join(',')}]}`, 'utf8');
    const spec: ForwardSpec = { method: 'POST', url: batchRoute, body, requestId: null, isWrite: true, servedByFollower: false, forwardedIn: false, deadlineMs: earliestDeadline(items), token: queue.token };
    let response: ForwardedResponse;
    try {
      response = await this.send(queue.leader, spec);
    } catch (error) {
      for (const item of items) item.reject(failureFor(item, error));
      return;
    }
    const results = response.statusCode === 200 ? resultsOf(response.body, items.length) : null;
    if (response.statusCode === 200 && results === null) {
      const error = new QkvError('internal', `Leader ${queue.leader.id} answered a forwarded batch of ${items.length} without one result per operation`);
      for (const item of items) item.reject(error);
      return;
    }
    items.forEach((item, i) => {
      const result = results?.[i];
      // A refusal of the whole batch (401, 503 shutting_down, …) is each operation's answer.
      item.resolve(result === undefined ? response : itemResponse(result, response.leaderId, response.servedBy));
    });
  }

  private async flushToPeer(queue: Queue, peer: PeerBatchSink): Promise<void> {
    const { items, leader } = queue;
    let results: readonly BatchResultItem[];
    try {
      results = await peer.send(leader, items.map((i) => i.op), queue.token, earliestDeadline(items));
    } catch (error) {
      for (const item of items) item.reject(failureFor(item, error));
      return;
    }
    items.forEach((item, i) => {
      const result = results[i];
      if (result === undefined) item.reject(new QkvError('internal', `Leader ${leader.id} answered a forwarded batch of ${items.length} with ${results.length} results`));
      else item.resolve(itemResponse(result, leader.id, leader.id));
    });
  }
}

function earliestDeadline(items: readonly Waiting[]): number {
  let deadlineMs = Infinity;
  for (const item of items) deadlineMs = Math.min(deadlineMs, item.spec.deadlineMs);
  return deadlineMs;
}

/**
 * A failure of the whole batch as one operation's error: a write's outcome after sending is
 * unknown, but a read changed nothing, so it is a timeout (its deadline passed) or no_leader
 * (retry), never outcome_unknown.
 */
function failureFor(item: Waiting, error: unknown): unknown {
  if (item.op.op !== 'get' || !(error instanceof QkvError) || error.code !== 'outcome_unknown') return error;
  if (performance.now() >= item.spec.deadlineMs) return new QkvError('timeout', `The leader did not answer the forwarded read in time (${error.message})`, error.details);
  return new QkvError('no_leader', `Lost the leader while forwarding a read (${error.message})`, error.details, 1_000);
}

/** About the JSON size of an operation, without building it (the peer link needs no JSON). */
function estimatedBytes(op: BatchOpBody): number {
  return 64 + op.key.length + (op.op === 'put' ? op.value.length : 0) + (op.op !== 'get' ? (op.clientId?.length ?? 0) : 0);
}

/** The results list of a 200 /batch answer, or null when it is not one for `count` operations. */
function resultsOf(body: Buffer, count: number): readonly BatchResultItem[] | null {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { results?: unknown };
    return Array.isArray(parsed.results) && parsed.results.length === count ? (parsed.results as BatchResultItem[]) : null;
  } catch {
    return null;
  }
}

/** One operation's answer inside a batch, as the single-key route would have sent it. */
function itemResponse(item: BatchResultItem, leaderId: string, batchServedBy: string): ForwardedResponse {
  const { status, retryAfterMs, servedBy, ...fields } = item;
  const retryAfter = typeof retryAfterMs === 'number' ? String(Math.max(1, Math.ceil(retryAfterMs / 1_000))) : null;
  return new BatchItemResponse(status, retryAfter, fields, leaderId, typeof servedBy === 'string' ? servedBy : batchServedBy);
}

/**
 * A batch item as a forwarded answer. Its JSON body is made only when read: a single-key
 * route sends it, but a follower's POST /batch puts `fields` in its own answer as they are.
 */
class BatchItemResponse implements ForwardedResponse {
  readonly contentType = 'application/json; charset=utf-8';
  private bodyBuffer: Buffer | undefined;

  constructor(
    readonly statusCode: number,
    readonly retryAfter: string | null,
    readonly fields: Readonly<Record<string, unknown>>,
    readonly leaderId: string,
    readonly servedBy: string,
  ) {}

  get body(): Buffer {
    this.bodyBuffer ??= Buffer.from(JSON.stringify(this.fields), 'utf8');
    return this.bodyBuffer;
  }
}

/**
 * A `leader` read as a batch operation, for forwarding with the writes of its turn; null for
 * what a batch does not take (a read at a past version).
 */
export function batchReadOf(read: ForwardRead): BatchOpBody | null {
  if (read.atVersion !== undefined) return null;
  return { op: 'get', key: read.key, consistency: read.consistency, ...(read.minVersion === undefined ? {} : { minVersion: read.minVersion }) };
}

/**
 * A put or delete as a /batch operation, for forwarding with the others of its turn; null
 * for what /batch does not take (leases).
 */
export function batchOpOf(command: KvCommand): BatchOpBody | null {
  const ids = command.requestId === undefined ? {} : { clientId: command.requestId.clientId, seq: command.requestId.seq };
  const cas = command.ifVersion === undefined ? {} : { ifVersion: command.ifVersion };
  if (command.op === 'delete') return { op: 'delete', key: command.key, ...cas, ...ids };
  if (command.lease !== undefined || command.ttlMs !== undefined) return null;
  return { op: 'put', key: command.key, ...jsonValue(command.value), ...cas, ...ids };
}
