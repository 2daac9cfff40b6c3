/**
 * Forwarded single-key writes gathered into one POST /batch per leader and credentials per
 * event-loop turn, as etcd batches the MsgProps a follower forwards. A follower taking 64
 * writes at once sends the leader one request instead of 64; each write still gets its own
 * answer, exactly what its own forward would have got (the batch route answers every
 * operation with the status and body of its single-key route, and a leader that is no
 * longer one answers each `not_leader`, which the router retries as before).
 *
 * Idempotency is unchanged: each operation carries its own clientId and seq. The batch's
 * deadline is the earliest of its writes', so none waits past its own.
 *
 * Must never: hold a write past the turn it arrived in, put more than `opsMax` operations or
 * about `bytesMax` bytes in one batch, or answer one write with another's result.
 */

import type { KvCommand } from '../kv/types.js';
import type { BatchOpBody, BatchResultItem, LeaderInfo } from '../wire/types.js';
import { batchRoute } from '../wire/types.js';
import { QkvError } from '../wire/errors.js';
import type { ForwardedResponse, ForwardSpec } from './forward-types.js';
import { jsonValue } from '../wire/values.js';

export interface ForwardBatchLimits {
  /** Operations per POST /batch at most (the route takes 1,000). */
  readonly opsMax: number;
  /** JSON bytes per POST /batch, about; a larger write goes alone. */
  readonly bytesMax: number;
}

export const defaultForwardBatchLimits: ForwardBatchLimits = { opsMax: 256, bytesMax: 1024 * 1024 };

interface Waiting {
  readonly op: BatchOpBody;
  readonly json: string;
  readonly spec: ForwardSpec;
  readonly resolve: (response: ForwardedResponse) => void;
  readonly reject: (error: unknown) => void;
}

interface Queue {
  readonly leader: LeaderInfo;
  readonly token: string | null;
  readonly items: Waiting[];
  bytes: number;
}

/** Sends one request to the leader as the router would (headers, pool, failure mapping). */
export type SendToLeader = (leader: LeaderInfo, spec: ForwardSpec) => Promise<ForwardedResponse>;

export class ForwardBatcher {
  private readonly queues = new Map<string, Queue>();
  private scheduled = false;

  constructor(
    private readonly send: SendToLeader,
    private readonly limits: ForwardBatchLimits = defaultForwardBatchLimits,
  ) {}

  /** The leader's answer to `op` as if it had been forwarded alone. */
  forward(leader: LeaderInfo, spec: ForwardSpec, op: BatchOpBody): Promise<ForwardedResponse> {
    const json = JSON.stringify(op);
    if (json.length >= this.limits.bytesMax) return this.send(leader, spec);
    const token = spec.token ?? null;
    const queueKey = `${leader.id}\u0000${leader.http ?? ''}\u0000${token ?? ''}`;
    let queue = this.queues.get(queueKey);
    if (queue !== undefined && (queue.items.length >= this.limits.opsMax || queue.bytes + json.length > this.limits.bytesMax)) {
      this.queues.delete(queueKey);
      void this.flushQueue(queue);
      queue = undefined;
    }
    if (queue === undefined) {
      queue = { leader, token, items: [], bytes: 0 };
      this.queues.set(queueKey, queue);
    }
    const target = queue;
    const answer = new Promise<ForwardedResponse>((resolve, reject) => target.items.push({ op, json, spec, resolve, reject }));
    target.bytes += json.length + 1;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
    return answer;
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const queues = [...this.queues.values()];
    this.queues.clear();
    for (const queue of queues) void this.flushQueue(queue);
  };

  private async flushQueue(queue: Queue): Promise<void> {
    const { items } = queue;
    const only = items.length === 1 ? items[0] : undefined;
    if (only !== undefined) {
      // One write this turn: its own request, as before (no batch to unpack).
      this.send(queue.leader, only.spec).then(only.resolve, only.reject);
      return;
    }
    let deadlineMs = Infinity;
    for (const item of items) deadlineMs = Math.min(deadlineMs, item.spec.deadlineMs);
    const body = Buffer.from(`{"ops":[${items.map((i) => i.json).join(',')}]}`, 'utf8');
    const spec: ForwardSpec = { method: 'POST', url: batchRoute, body, requestId: null, isWrite: true, servedByFollower: false, forwardedIn: false, deadlineMs, token: queue.token };
    let response: ForwardedResponse;
    try {
      response = await this.send(queue.leader, spec);
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    const results = response.statusCode === 200 ? resultsOf(response.body, items.length) : null;
    if (response.statusCode === 200 && results === null) {
      const error = new QkvError('internal', `Leader ${queue.leader.id} answered a forwarded batch of ${items.length} without one result per write`);
      for (const item of items) item.reject(error);
      return;
    }
    items.forEach((item, i) => {
      const result = results?.[i];
      // A refusal of the whole batch (401, 503 shutting_down, …) is each write's answer.
      item.resolve(result === undefined ? response : itemResponse(result, response));
    });
  }
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
function itemResponse(item: BatchResultItem, batch: ForwardedResponse): ForwardedResponse {
  const { status, retryAfterMs, servedBy, ...rest } = item;
  return {
    statusCode: status,
    contentType: 'application/json; charset=utf-8',
    retryAfter: typeof retryAfterMs === 'number' ? String(Math.max(1, Math.ceil(retryAfterMs / 1_000))) : null,
    body: Buffer.from(JSON.stringify(rest), 'utf8'),
    leaderId: batch.leaderId,
    servedBy: typeof servedBy === 'string' ? servedBy : batch.servedBy,
  };
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
