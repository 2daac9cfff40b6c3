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
import type { BenchTarget } from './target.js';

export type PlainTo = 'leader' | 'follower' | 'any';

export interface PlainTargetOptions {
  readonly endpoints: readonly string[];
  readonly to: PlainTo;
  /** Keep-alive connections per node: at least the run's concurrency. */
  readonly connectionsPerEndpoint: number;
  readonly deadlineMs: number;
}

/** An HTTP error as the runner counts it: `code` is the wire error code. */
class PlainError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const jsonHeaders = { 'content-type': 'application/json' };

export async function plainTarget(options: PlainTargetOptions): Promise<BenchTarget> {
  const chosen = await chooseNodes(options.endpoints, options.to, options.deadlineMs);
  const pools = chosen.map((url) => new Pool(url, { connections: options.connectionsPerEndpoint, pipelining: 1, headersTimeout: options.deadlineMs, bodyTimeout: options.deadlineMs }));
  let next = 0;
  const pool = (): Pool => pools[next++ % pools.length] as Pool;
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, body: string | null): Promise<unknown> => {
    const res = await pool().request(body === null ? { method, path } : { method, path, headers: jsonHeaders, body });
    const text = await res.body.text();
    if (res.statusCode === 200) return JSON.parse(text) as unknown;
    if (res.statusCode === 404 && method === 'GET') return undefined;
    let code = `http_${res.statusCode}`;
    try {
      code = String((JSON.parse(text) as { error?: unknown }).error ?? code);
    } catch {
      // not our JSON: the status names it
    }
    throw new PlainError(code, `${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
  };
  return {
    system: `quorumkv (plain HTTP to ${options.to === 'any' ? 'every node' : `the ${options.to}`})`,
    put: (key, value) => call('PUT', `/kv/${encodeURIComponent(key)}`, JSON.stringify({ value })),
    get: (key) => call('GET', `/kv/${encodeURIComponent(key)}`, null),
    txn: (a, b, value) =>
      call('POST', '/txn', JSON.stringify({ compare: [{ key: a, exists: true }], success: [{ op: 'put', key: a, value }, { op: 'put', key: b, value }], failure: [{ op: 'get', key: a }] })),
    close: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

/** The node URLs `to` asks for, from the nodes' own /status (the leader as the highest term says). */
async function chooseNodes(endpoints: readonly string[], to: PlainTo, timeoutMs: number): Promise<string[]> {
  if (to === 'any') return [...endpoints];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const roles = await Promise.all(
      endpoints.map(async (url) => {
        try {
          const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2_000) });
          return { url, role: ((await res.json()) as { role?: string }).role ?? 'unknown' };
        } catch {
          return { url, role: 'unreachable' };
        }
      }),
    );
    const leader = roles.find((r) => r.role === 'leader');
    const follower = roles.find((r) => r.role === 'follower');
    if (leader !== undefined && (to === 'leader' || follower !== undefined)) return [to === 'leader' ? leader.url : (follower as { url: string }).url];
    if (Date.now() > deadline) throw new Error(`no ${to} among ${endpoints.join(', ')} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
