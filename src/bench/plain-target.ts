/**
 * quorumkv as a user without the client library sees it: one plain HTTP request per
 * operation (PUT/GET /kv/{key}, POST /txn) to one chosen node, over keep-alive connections,
 * with no batching, no leader discovery and no retries. `to` picks the node: the leader, a
 * follower (which forwards writes to the leader and serves linearizable reads by read
 * index), or every node in turn.
 *
 * Must never: retry (a failure is counted, as a user would see it) or allocate more than a
 * request needs on the hot path.
 */

import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { TargetError } from './target.js';
import type { BenchTarget } from './target.js';
import { chooseNodes, toText } from './node-choice.js';
import type { To } from './node-choice.js';

export interface PlainTargetOptions {
  readonly endpoints: readonly string[];
  readonly to: To;
  /** Keep-alive connections per node: at least the run's concurrency. */
  readonly connectionsPerEndpoint: number;
  readonly deadlineMs: number;
}

const jsonHeaders = { 'content-type': 'application/json' };

/** Keep-alive connection pools to the chosen nodes, one per node, taken in turn by `next()`. */
export interface RoundRobinPools {
  next(): Pool;
  close(): Promise<void>;
}

/** One pool per URL (`connectionsPerEndpoint` connections, no pipelining, `deadlineMs` per request), used in turn. */
export function roundRobinPools(urls: readonly string[], connectionsPerEndpoint: number, deadlineMs: number): RoundRobinPools {
  const pools = urls.map((url) => new Pool(url, { connections: connectionsPerEndpoint, pipelining: 1, headersTimeout: deadlineMs, bodyTimeout: deadlineMs }));
  let turn = 0;
  return {
    next: () => pools[turn++ % pools.length] as Pool,
    close: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

/** What one plain request got back: its status and its body as text. */
export interface PlainAnswer {
  readonly statusCode: number;
  readonly text: string;
}

/**
 * Collects one answer for `plainRequest`: a class with its methods on the prototype, so a
 * request costs one small object, not a set of closures.
 */
class AnswerCollector implements Dispatcher.DispatchHandler {
  private statusCode = 0;
  private readonly chunks: Buffer[] = [];
  constructor(
    private readonly resolve: (answer: PlainAnswer) => void,
    private readonly reject: (error: Error) => void,
  ) {}
  /** Present, if empty: a handler without it is taken for undici's older interface, and refused. */
  onRequestStart(): void {}
  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.statusCode = statusCode;
  }
  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }
  onResponseEnd(): void {
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.resolve({ statusCode: this.statusCode, text: body.toString('utf8') });
  }
  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.reject(error);
  }
}

/**
 * One request on `pool` through undici's dispatch interface, the answer read whole. The bench
 * client shares the machine's cores with the servers it measures, so its own cost per
 * request counts: `request()`'s response stream and promises cost a quarter of it more
 * (≈ 37 against 29 µs of client CPU per request, measured against a bare Node server).
 */
export function plainRequest(pool: Pool, method: 'GET' | 'PUT' | 'POST', path: string, body: string | null): Promise<PlainAnswer> {
  return new Promise<PlainAnswer>((resolve, reject) => {
    pool.dispatch(body === null ? { method, path } : { method, path, headers: jsonHeaders, body }, new AnswerCollector(resolve, reject));
  });
}

/**
 * A refused request as the bench counts it: the code the answer's JSON names (`codeOf` says
 * where each system puts it), or `http_<status>` when the body is not JSON or names none.
 */
export function refusalOf(request: string, answer: PlainAnswer, codeOf: (body: Record<string, unknown>) => unknown): TargetError {
  let code = `http_${answer.statusCode}`;
  try {
    const body: unknown = JSON.parse(answer.text);
    if (typeof body === 'object' && body !== null) code = String(codeOf(body as Record<string, unknown>) ?? code);
  } catch {
    // not JSON: the status names it
  }
  return new TargetError(code, `${request}: ${answer.statusCode} ${answer.text.slice(0, 200)}`);
}

export async function plainTarget(options: PlainTargetOptions): Promise<BenchTarget> {
  const chosen = await chooseNodes(options.endpoints, options.to, options.deadlineMs);
  const pools = roundRobinPools(chosen, options.connectionsPerEndpoint, options.deadlineMs);
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, body: string | null): Promise<unknown> => {
    const answer = await plainRequest(pools.next(), method, path, body);
    if (answer.statusCode === 200) return JSON.parse(answer.text) as unknown;
    if (answer.statusCode === 404 && method === 'GET') return undefined;
    throw refusalOf(`${method} ${path}`, answer, (json) => json['error']);
  };
  return {
    system: 'quorumkv',
    path: `plain HTTP (one request per operation) to ${toText(options.to)}: ${chosen.join(' ')}`,
    put: (key, value) => call('PUT', `/kv/${encodeURIComponent(key)}`, JSON.stringify({ value })),
    get: (key) => call('GET', `/kv/${encodeURIComponent(key)}`, null),
    txn: (a, b, value) =>
      call('POST', '/txn', JSON.stringify({ compare: [{ key: a, exists: true }], success: [{ op: 'put', key: a, value }, { op: 'put', key: b, value }], failure: [{ op: 'get', key: a }] })),
    close: () => pools.close(),
  };
}
