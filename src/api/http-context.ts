/**
 * What every HTTP route handler shares: the node, the limits, the leader router, the
 * metrics, the closing flag, and the few request rules that are not schema shapes (key
 * rules, page size, the request's deadline, its forwarding spec). One instance per server.
 */

import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import type { KvNode } from '../node/types.js';
import { bearerToken } from './access.js';
import type { AccessControl, Principal } from './access.js';
import type { KvCommand, RequestId } from '../kv/types.js';
import { QkvError } from '../wire/errors.js';
import { forwardedHeader, timeoutHeader } from './forward.js';
import type { ForwardSpec, LeaderRouter } from './forward.js';
import { parseDecimal } from './http-input.js';
import type { HttpMetrics } from './metrics.js';
import type { InputValidator } from './validation.js';

export interface HttpLimits {
  /** Largest request body; larger is 413 body_too_large (checked while reading). */
  readonly bodyBytesMax: number;
  /** Largest request line plus headers (Node's maxHeaderSize); larger is 431. */
  readonly headerBytesMax: number;
  /** Largest page of GET /kv and GET /debug/store. */
  readonly listLimitMax: number;
  /** Per-request deadline when the client sets none (`x-qkv-timeout-ms` may shorten it). */
  readonly requestTimeoutMs: number;
  /** How long a leader-bound request waits for an election before 503 no_leader. */
  readonly leaderWaitMs: number;
}

/** The fault-injection switchboard (transport faults); present only with faults enabled. */
export interface FaultsAdmin {
  /** Throws (any Error) when the rules are invalid; nothing changes then. */
  setRules(rules: Readonly<Record<string, unknown>>): void;
  rules(): object;
}

/** How a request reaches the node: its own forwarding facts, named (no positional flags). */
export interface SpecOptions {
  readonly method: ForwardSpec['method'];
  /** The raw JSON body to forward as received, or null. */
  readonly body?: Buffer | null;
  readonly requestId?: RequestId | null;
  readonly isWrite: boolean;
  readonly servedByFollower?: boolean;
  /** The single-key write the request stands for (ForwardSpec.write). */
  readonly write?: KvCommand | null;
}

/**
 * Longest encoded key in a `/kv/{key}` path that the router (find-my-way's maxParamLength)
 * and the fast path take. A key of keyBytesMax UTF-8 bytes is up to 3x that percent-encoded.
 * The URL cannot outgrow maxHeaderSize, so tying the two keeps the router from ever being the
 * limit that answers; the key validator decides (413 key_too_large).
 */
export function keyParamCharsMax(limits: HttpLimits): number {
  return limits.headerBytesMax;
}

/**
 * What the request rules read of a request: its URL and headers. Fastify's requests have
 * both; the fast path (kv-fast-path.ts) makes one of Node's request.
 */
export interface RequestFacts {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** The request decoration that memoizes its principal (declared on the server, so requests keep one shape). */
export const principalField = 'qkvPrincipal';
type PrincipalHolder = RequestFacts & { [principalField]?: Principal | null };

/** Default list page size (lowered to listLimitMax when that is smaller). */
const listLimitDefault = 100;

export class HttpContext {
  closing = false;

  constructor(
    readonly node: KvNode,
    readonly limits: HttpLimits,
    readonly validate: InputValidator,
    readonly router: LeaderRouter,
    readonly metrics: HttpMetrics,
    readonly registry: Registry,
    readonly access: AccessControl,
  ) {}

  /** Who sent `request` for the data routes: null while auth is off; 401 without valid credentials (at most once per request). */
  principal(request: RequestFacts): Principal | null {
    const holder = request as PrincipalHolder;
    let who = holder[principalField];
    if (who === undefined) {
      who = this.access.dataPrincipal(bearerToken(request.headers.authorization));
      holder[principalField] = who;
    }
    return who;
  }

  /** Throws 401/403 unless the request may `mode` `key` (or every key under a prefix). */
  permit(request: RequestFacts, key: string, mode: 'read' | 'write', what: 'key' | 'prefix' = 'key'): void {
    this.access.permit(this.principal(request), key, mode, what);
  }

  refuseIfClosing(): void {
    if (this.closing) {
      throw new QkvError('shutting_down', 'This node is stopping; send the request to another node', {}, 1_000);
    }
  }

  /** Every kv answer names the node whose state answered (or refused). */
  serveHere(reply: FastifyReply): void {
    this.refuseIfClosing();
    reply.header('x-qkv-served-by', this.node.id);
  }

  checkKey(key: string, what: 'key' | 'prefix' | 'after' = 'key'): string {
    const problem = this.validate.key(key);
    if (problem !== null) {
      throw new QkvError(problem.code, what === 'key' ? problem.message : `Query parameter ${what}: ${problem.message}`);
    }
    return key;
  }

  /** An `after` cursor: absent or empty means from the start. */
  optionalKey(value: string | undefined, name: 'after'): string | undefined {
    if (value === undefined || value.length === 0) return undefined;
    return this.checkKey(value, name);
  }

  /** The page size asked for (the schema checked its form), at most listLimitMax. */
  pageLimit(text: string | undefined): number {
    if (text === undefined) return Math.min(listLimitDefault, this.limits.listLimitMax);
    const limit = parseDecimal(text);
    if (limit === null || limit < 1) throw new QkvError('bad_request', `Query parameter limit must be an integer >= 1, got ${JSON.stringify(text)}`);
    return Math.min(limit, this.limits.listLimitMax);
  }

  /** The request's time budget: the server default, or less if the sender asks. */
  timeoutMs(request: RequestFacts): number {
    const header = request.headers[timeoutHeader];
    if (header === undefined) return this.limits.requestTimeoutMs;
    const asked = typeof header === 'string' ? parseDecimal(header) : null;
    if (asked === null || asked < 1) {
      throw new QkvError('bad_request', `Header ${timeoutHeader} must be an integer >= 1 (milliseconds)`);
    }
    return Math.min(asked, this.limits.requestTimeoutMs);
  }

  spec(request: RequestFacts, o: SpecOptions): ForwardSpec {
    return {
      method: o.method,
      url: request.url,
      body: o.body ?? null,
      requestId: o.requestId ?? null,
      isWrite: o.isWrite,
      servedByFollower: o.servedByFollower ?? false,
      forwardedIn: request.headers[forwardedHeader] !== undefined,
      deadlineMs: performance.now() + this.timeoutMs(request),
      token: bearerToken(request.headers.authorization),
      write: o.write ?? null,
    };
  }
}
