/**
 * Leader routing for the HTTP and gRPC APIs: decides whether a leader-bound request (a write,
 * a `linearizable` or `leader` read or list) runs on this node or is forwarded to the leader,
 * waits a bounded time for an election, retries once when leadership moved, and forwards.
 * Single-key writes and `leader` reads go with the others of their turn over the peer link
 * (forward-batch.ts, node/forwarding.ts) when the leader serves forwards there; the rest,
 * and everything when it does not, over keep-alive undici pools (one per leader address,
 * bounded connections).
 *
 * A `linearizable` read or list is never forwarded: once a leader is known, this node runs
 * it whatever its role. On a follower the node asks the leader for a read index and serves
 * its own state once it has applied that index (Raft read-index from followers), so reads
 * at a chain's tail, or any follower, are linearizable and local. Writes and `leader` reads
 * still go to the leader.
 *
 * Owns: the forwarding headers, the per-leader connection pools, and the mapping of
 * transport failures to error codes. The rule that matters: a write whose forwarded request
 * may have reached the leader is `outcome_unknown`, never `no_leader` (which tells a client
 * that nothing happened); only a connection that was never established proves that.
 *
 * Must never: forward a request that was already forwarded (that is how loops start: it
 * answers `not_leader` instead), retry a write on its own after it may have been sent, or
 * wait past the request's deadline.
 */

import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { OutboundTls } from './outbound-tls.js';
import type { KvNode } from '../node/types.js';
import type { KvCommand, RequestId } from '../kv/types.js';
import { QkvError, isErrorCode, requestNotSentCodes } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import { clientIdHeader, requestSeqHeader } from '../wire/types.js';
import type { BatchOpBody, BatchResultItem, LeaderInfo } from '../wire/types.js';
import { ForwardBatcher, batchOpOf, batchReadOf, defaultForwardBatchLimits } from './forward-batch.js';
import type { PeerBatchSink } from './forward-batch.js';
import type { ForwardRead, ForwardSpec, ForwardedResponse } from './forward-types.js';

export type { ForwardSpec, ForwardedResponse } from './forward-types.js';
import type { HttpMetrics } from './metrics.js';

/** Marks a request sent by another node's forwarder: it is never forwarded again. */
export const forwardedHeader = 'x-qkv-forwarded';

/**
 * The time the sender still allows the request, in whole milliseconds. A forwarder sets it
 * to the remaining deadline; clients may set it to shorten the server's default.
 */
export const timeoutHeader = 'x-qkv-timeout-ms';

export interface ForwardLimits {
  /** Open connections per leader address; more concurrent forwards queue in the pool. */
  readonly connectionsPerLeaderMax: number;
  /** Leader addresses with an open pool; the oldest pool is closed past this. */
  readonly leaderPoolsMax: number;
  /** Establishing a connection to the leader; past it the request was never sent. */
  readonly connectTimeoutMs: number;
  /**
   * Added to the remaining deadline for undici's headers timeout, so that the leader's own
   * deadline answer (a typed 503) normally arrives before this node gives up on it.
   */
  readonly answerMarginMs: number;
  /** Longest gap between two chunks of the leader's response body. */
  readonly bodyGapMsMax: number;
  /** Largest response accepted from the leader (a list page of big values is the worst). */
  readonly responseBytesMax: number;
  /**
   * How long an idle connection to the leader is kept. Below the leader's server-side
   * keep-alive timeout, so this side closes first and a request never races a closing socket.
   */
  readonly idleConnectionMs: number;
}

export const defaultForwardLimits: ForwardLimits = Object.freeze({
  connectionsPerLeaderMax: 64,
  leaderPoolsMax: 8,
  connectTimeoutMs: 1_000,
  answerMarginMs: 1_000,
  bodyGapMsMax: 10_000,
  responseBytesMax: 256 * 1024 * 1024,
  idleConnectionMs: 4_000,
});


/**
 * A forward spec whose JSON body is built only if the request is forwarded: an operation
 * served by this node (the leader) never pays for serialising its value.
 */
export interface LazyForwardSpecOptions extends Omit<ForwardSpec, 'body'> {
  /** Builds the JSON body when the request is forwarded; null: no body. */
  readonly makeBody: (() => string) | null;
}

export class LazyForwardSpec implements ForwardSpec {
  readonly method: ForwardSpec['method'];
  readonly url: string;
  readonly requestId: RequestId | null;
  readonly isWrite: boolean;
  readonly servedByFollower: boolean;
  readonly deadlineMs: number;
  readonly forwardedIn: boolean;
  readonly token: string | null;
  readonly write: KvCommand | null;
  readonly read: ForwardRead | null;
  private readonly makeBody: (() => string) | null;
  private bodyBuffer: Buffer | null | undefined;

  constructor(o: LazyForwardSpecOptions) {
    this.method = o.method;
    this.url = o.url;
    this.requestId = o.requestId;
    this.isWrite = o.isWrite;
    this.servedByFollower = o.servedByFollower;
    this.deadlineMs = o.deadlineMs;
    this.forwardedIn = o.forwardedIn;
    this.token = o.token ?? null;
    this.write = o.write ?? null;
    this.read = o.read ?? null;
    this.makeBody = o.makeBody;
  }

  get body(): Buffer | null {
    if (this.bodyBuffer === undefined) this.bodyBuffer = this.makeBody === null ? null : Buffer.from(this.makeBody(), 'utf8');
    return this.bodyBuffer;
  }
}


/** Names the node whose state answered (or which refused) a kv request. */
export const servedByHeader = 'x-qkv-served-by';

/** Runs an operation on this node (the leader); one shared instance per operation kind. */
export interface LocalExec<Op, T> {
  run(node: KvNode, op: Op, timeoutMs: number): Promise<T>;
}

export type RouteOutcome<T> =
  | { readonly via: 'local'; readonly value: T }
  | { readonly via: 'forward'; readonly response: ForwardedResponse };

export interface LeaderRouterOptions {
  readonly node: KvNode;
  /** Longest wait for an election before answering 503 no_leader. */
  readonly leaderWaitMs: number;
  readonly limits: ForwardLimits;
  readonly metrics: HttpMetrics;
  /**
   * The request body limit the leader has (nodes share it): forwarded writes are gathered
   * into batches of at most a quarter of it in JSON characters (at most 3 bytes each).
   */
  readonly bodyBytesMax: number;
  /** TLS for reaching a leader's HTTPS API (the CA that signed it, this node's certificate as a client's; outbound-tls.ts). */
  readonly connect?: OutboundTls;
}

/** Retry-After for a client when no leader is known: elections take about this long. */
const noLeaderRetryAfterMs = 1_000;


const timeoutCodes: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export class LeaderRouter {
  private readonly node: KvNode;
  private readonly leaderWaitMs: number;
  private readonly limits: ForwardLimits;
  private readonly metrics: HttpMetrics;
  /** Keyed by the leader's advertised http address; insertion order is age. */
  private readonly pools = new Map<string, { readonly origin: string; readonly pool: Pool }>();
  private closed = false;

  private readonly connect: OutboundTls | undefined;
  private readonly batcher: ForwardBatcher;

  constructor(options: LeaderRouterOptions) {
    this.node = options.node;
    this.leaderWaitMs = options.leaderWaitMs;
    this.limits = options.limits;
    this.metrics = options.metrics;
    this.connect = options.connect;
    const bytesMax = Math.min(defaultForwardBatchLimits.bytesMax, Math.floor(options.bodyBytesMax / 4));
    this.batcher = new ForwardBatcher((leader, spec) => this.forwardOne(leader, spec), { ...defaultForwardBatchLimits, bytesMax }, this.peerSink);
  }

  /**
   * Batches to a leader over the peer link (node/forwarding.ts), when the node has one (test
   * nodes and the simulator's have none: everything then goes over HTTP).
   */
  private readonly peerSink: PeerBatchSink = {
    reaches: (leaderId) => !this.closed && this.node.forwarding?.reaches(leaderId) === true,
    send: (leader, ops, token, deadlineMs) => this.forwardToPeer(leader, ops, token, deadlineMs),
  };

  private async forwardToPeer(leader: LeaderInfo, ops: readonly BatchOpBody[], token: string | null, deadlineMs: number): Promise<readonly BatchResultItem[]> {
    const channel = this.node.forwarding;
    const timeoutMs = Math.floor(deadlineMs - performance.now());
    if (timeoutMs <= 0) throw new QkvError('timeout', 'The request deadline passed before it was sent to the leader; nothing was written');
    if (channel === undefined) throw new QkvError('no_leader', `No peer link to leader ${leader.id}; the request was not sent`, { leader }, noLeaderRetryAfterMs);
    try {
      const results = await channel.send(leader.id, { ops, token, timeoutMs });
      this.metrics.observeForward('answered');
      return results;
    } catch (error) {
      const sent = error instanceof QkvError && error.code === 'outcome_unknown';
      this.metrics.observeForward(sent ? 'failed_after_send' : 'unreachable');
      throw error instanceof QkvError && sent ? new QkvError(error.code, error.message, { ...error.details, leader }) : error;
    }
  }

  /**
   * Runs `op` here when this node leads (or, for a read served by followers, when any
   * leader is known), else forwards it. At most two attempts: one more after a `not_leader`
   * (leadership moved between looking and acting), and only for requests that were not
   * forwarded to us.
   */
  async run<Op, T>(exec: LocalExec<Op, T>, op: Op, spec: ForwardSpec): Promise<RouteOutcome<T>> {
    let hint: LeaderInfo | null = null;
    for (let attempt = 0; ; attempt++) {
      const mayRetry = attempt === 0 && !spec.forwardedIn;
      let leader = hint ?? this.node.leader();
      hint = null;
      if (leader === null) {
        if (spec.forwardedIn) throw notLeaderError(this.node.id, null);
        leader = await this.waitForLeader(spec);
      }

      if (leader.id === this.node.id || spec.servedByFollower) {
        const timeoutMs = Math.floor(remainingMs(spec));
        if (timeoutMs <= 0) throw deadlineError(spec);
        try {
          return { via: 'local', value: await exec.run(this.node, op, timeoutMs) };
        } catch (error) {
          if (!mayRetry || !(error instanceof QkvError) || error.code !== 'not_leader') throw error;
          // Refused before proposing (KvNode contract), so trying elsewhere cannot apply twice.
          // A follower read refused because leadership moved is retried here, with whichever
          // leader this node knows by then (after a bounded wait if it knows none).
          hint = otherLeader(leaderDetail(error.details), this.node.id, this.node.id);
          this.metrics.observeForward('retried');
          continue;
        }
      }

      if (spec.forwardedIn) throw notLeaderError(this.node.id, leader);
      const response = await this.forward(leader, spec);
      if (mayRetry && response.statusCode === 503) {
        const refusal = refusalOf(response);
        if (refusal.code === 'not_leader') {
          // The leader we knew refused before doing anything (it answers not_leader only
          // then), so sending the request once more cannot apply it twice.
          // A hint naming this node is ignored: only this node's own view says it leads.
          hint = otherLeader(refusal.leader, leader.id, this.node.id);
          this.metrics.observeForward('retried');
          continue;
        }
      }
      return { via: 'forward', response };
    }
  }

  /** Closes every leader pool; in-flight forwards finish first. */
  async close(): Promise<void> {
    this.closed = true;
    const closing = [...this.pools.values()].map((entry) => entry.pool.close());
    this.pools.clear();
    await Promise.all(closing);
  }

  private async waitForLeader(spec: ForwardSpec): Promise<LeaderInfo> {
    const waitMs = Math.min(this.leaderWaitMs, remainingMs(spec));
    const leader = waitMs > 0 ? await this.node.waitForLeader(waitMs) : null;
    if (leader === null) {
      throw new QkvError(
        'no_leader',
        `No leader known after waiting ${Math.max(0, Math.round(waitMs))} ms: an election is under way or a majority is unreachable`,
        {},
        noLeaderRetryAfterMs,
      );
    }
    return leader;
  }

  /** A single-key write or read goes with the others of its turn; anything else on its own. */
  private forward(leader: LeaderInfo, spec: ForwardSpec): Promise<ForwardedResponse> {
    const op = spec.write !== undefined && spec.write !== null ? batchOpOf(spec.write) : spec.read !== undefined && spec.read !== null ? batchReadOf(spec.read) : null;
    return op !== null ? this.batcher.forward(leader, spec, op) : this.forwardOne(leader, spec);
  }

  private async forwardOne(leader: LeaderInfo, spec: ForwardSpec): Promise<ForwardedResponse> {
    if (leader.http === null) {
      throw new QkvError(
        'no_leader',
        `Leader ${leader.id} has no HTTP address to forward to; send the request to it directly`,
        { leader },
        noLeaderRetryAfterMs,
      );
    }
    const pool = this.poolFor(leader, leader.http);
    const timeoutMs = Math.floor(remainingMs(spec));
    if (timeoutMs <= 0) throw deadlineError(spec);

    const headers: Record<string, string> = {
      [forwardedHeader]: '1',
      [timeoutHeader]: String(timeoutMs),
    };
    if (spec.body !== null) headers['content-type'] = 'application/json';
    if (spec.token !== undefined && spec.token !== null) headers['authorization'] = `Bearer ${spec.token}`;
    if (spec.requestId !== null) {
      headers[clientIdHeader] = spec.requestId.clientId;
      headers[requestSeqHeader] = String(spec.requestId.seq);
    }

    let answered = false;
    try {
      const response = await pool.request({
        method: spec.method,
        path: spec.url,
        headers,
        body: spec.body,
        headersTimeout: timeoutMs + this.limits.answerMarginMs,
        bodyTimeout: this.limits.bodyGapMsMax,
      });
      answered = true;
      const body = Buffer.from(await response.body.arrayBuffer());
      this.metrics.observeForward('answered');
      return {
        statusCode: response.statusCode,
        contentType: headerText(response.headers['content-type']) ?? 'application/json; charset=utf-8',
        retryAfter: headerText(response.headers['retry-after']),
        body,
        leaderId: leader.id,
        servedBy: headerText(response.headers[servedByHeader]) ?? leader.id,
      };
    } catch (error) {
      throw this.forwardFailure(error, leader, spec, answered);
    }
  }

  private forwardFailure(error: unknown, leader: LeaderInfo, spec: ForwardSpec, answered: boolean): QkvError {
    const code = errorCode(error);
    const reason = code ?? (error instanceof Error ? error.message : String(error));
    if (!answered && code !== null && requestNotSentCodes.has(code)) {
      this.metrics.observeForward('unreachable');
      return new QkvError(
        'no_leader',
        `Cannot reach leader ${leader.id} at ${String(leader.http)} (${reason}); the request was not sent`,
        { leader },
        noLeaderRetryAfterMs,
      );
    }
    this.metrics.observeForward('failed_after_send');
    if (spec.isWrite) {
      return new QkvError(
        'outcome_unknown',
        `Forwarding the write to leader ${leader.id} failed after it may have been sent (${reason}): it may or may not be applied; retry with the same ${clientIdHeader}/${requestSeqHeader} to find out`,
        { leader },
      );
    }
    if (code !== null && timeoutCodes.has(code)) {
      return new QkvError('timeout', `Leader ${leader.id} did not answer the forwarded read in time (${reason})`, { leader });
    }
    return new QkvError(
      'no_leader',
      `Lost the connection to leader ${leader.id} while forwarding a read (${reason})`,
      { leader },
      noLeaderRetryAfterMs,
    );
  }

  private poolFor(leader: LeaderInfo, http: string): Pool {
    const found = this.pools.get(http);
    if (found !== undefined) return found.pool;
    if (this.closed) {
      throw new QkvError('shutting_down', 'This node is stopping: it forwards no more requests', {}, noLeaderRetryAfterMs);
    }
    let origin: string;
    try {
      const url = new URL(http);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`protocol ${url.protocol}`);
      origin = url.origin;
    } catch (error) {
      throw new QkvError(
        'no_leader',
        `Leader ${leader.id} advertises an unusable HTTP address ${JSON.stringify(http)} (${error instanceof Error ? error.message : String(error)})`,
        { leader },
        noLeaderRetryAfterMs,
      );
    }
    if (this.pools.size >= this.limits.leaderPoolsMax) {
      const oldest = this.pools.keys().next();
      if (oldest.done !== true) {
        const evicted = this.pools.get(oldest.value);
        this.pools.delete(oldest.value);
        // Graceful: requests already queued on it still finish.
        if (evicted !== undefined) void evicted.pool.close().catch(() => undefined);
      }
    }
    const pool = new Pool(origin, {
      connections: this.limits.connectionsPerLeaderMax,
      pipelining: 1,
      connectTimeout: this.limits.connectTimeoutMs,
      keepAliveTimeout: this.limits.idleConnectionMs,
      keepAliveMaxTimeout: this.limits.idleConnectionMs,
      // Per-request values override these; they only bound a request that forgot to.
      headersTimeout: this.limits.answerMarginMs,
      bodyTimeout: this.limits.bodyGapMsMax,
      maxResponseSize: this.limits.responseBytesMax,
      ...(this.connect === undefined ? {} : { connect: this.connect(this.limits.connectTimeoutMs) }),
    });
    this.pools.set(http, { origin, pool });
    return pool;
  }
}

/** Milliseconds left before the request's deadline (may be negative). */
export function remainingMs(spec: { readonly deadlineMs: number }): number {
  return spec.deadlineMs - performance.now();
}

export function notLeaderError(selfId: string, leader: LeaderInfo | null): QkvError {
  return new QkvError(
    'not_leader',
    leader === null
      ? `Node ${selfId} is not the leader and knows no leader; this request was already forwarded once, so it is not forwarded again`
      : `Node ${selfId} is not the leader (the leader is ${leader.id}); this request was already forwarded once, so it is not forwarded again`,
    { leader },
    noLeaderRetryAfterMs,
  );
}

function deadlineError(spec: ForwardSpec): QkvError {
  return new QkvError(
    'timeout',
    spec.isWrite
      ? 'The request deadline passed before the write was sent to the leader; nothing was written'
      : 'The request deadline passed before the read could be served',
  );
}

/** `leader`, unless it is one of the two nodes that cannot be the answer. */
function otherLeader(leader: LeaderInfo | null, refusedId: string, selfId: string): LeaderInfo | null {
  return leader !== null && leader.id !== refusedId && leader.id !== selfId ? leader : null;
}

function leaderDetail(details: Readonly<Record<string, unknown>>): LeaderInfo | null {
  return asLeaderInfo(details['leader']);
}

function asLeaderInfo(value: unknown): LeaderInfo | null {
  if (typeof value !== 'object' || value === null) return null;
  const record = value as Record<string, unknown>;
  const id = record['id'];
  const http = record['http'];
  const grpc = record['grpc'] ?? null;
  if (typeof id !== 'string' || (typeof http !== 'string' && http !== null) || (typeof grpc !== 'string' && grpc !== null)) return null;
  return { id, http, grpc };
}

/**
 * A forwarded answer's fields: as they came when the answer was inside a batch (the peer
 * link, forward-batch.ts), else its JSON body parsed; {} when that is not an object, null
 * when it is not JSON.
 */
export function forwardedFields(response: ForwardedResponse): Readonly<Record<string, unknown>> | null {
  if (response.fields !== undefined) return response.fields;
  try {
    const parsed: unknown = JSON.parse(response.body.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return null;
  }
}

/** Reads a 503 answer from the leader: its error code and any leader it named. */
function refusalOf(response: ForwardedResponse): { readonly code: ErrorCode | null; readonly leader: LeaderInfo | null } {
  const fields = forwardedFields(response) ?? {};
  const code = fields['error'];
  return { code: isErrorCode(code) ? code : null, leader: asLeaderInfo(fields['leader']) };
}

function headerText(value: Dispatcher.ResponseData['headers'][string]): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}

function errorCode(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : null;
}
