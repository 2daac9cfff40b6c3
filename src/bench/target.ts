/**
 * What the benchmark runner drives: a system under test reduced to put and get, so the
 * same closed-loop runner, workload and statistics measure quorumkv and etcd alike.
 * quorumkv is driven through its own client library (HTTP transport, undici keep-alive
 * pools), as an application would use it.
 *
 * Must never: wrap each call in extra promises or objects (the runner calls these on the
 * hot path; the benchmark client must not be the bottleneck).
 */

import { connect, QuorumKvError } from '../client/index.js';
import type { Consistency, KvClient } from '../client/index.js';

export interface BenchTarget {
  /** `quorumkv`, `etcd` or `redis`: the system, whichever way it is driven. */
  readonly system: string;
  /** How operations travel and where they go, for the report (no commas: it is also a plain CSV cell). */
  readonly path: string;
  /** Resolves once the write is acknowledged; rejects with the system's error. */
  put(key: string, value: string): Promise<unknown>;
  /** Resolves with the entry, or undefined/null when the key does not exist. */
  get(key: string): Promise<unknown>;
  /** One transaction: if `a` exists, put `value` under `a` and `b` (else read `a`). */
  txn(a: string, b: string, value: string): Promise<unknown>;
  close(): Promise<void>;
}

/** An operation's failure as the runner counts it: `code` names it (a wire error code, `http_503`). */
export class TargetError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** A short, stable name for an error, for the error-count columns. */
export function errorCode(error: unknown): string {
  if (error instanceof QuorumKvError) return error.code;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? code : error.name;
  }
  return 'unknown';
}

export interface QuorumKvTargetOptions {
  readonly endpoints: readonly string[];
  /** HTTP connections per node: at least the highest concurrency of the run. */
  readonly connectionsPerEndpoint: number;
  readonly readConsistency: Consistency;
  /** Default `leader`. */
  readonly linearizableReadsFrom?: 'leader' | 'any';
  /** ConnectOptions.batching; default true. */
  readonly batching?: boolean;
  readonly deadlineMs: number;
  /** Default `http`; with `grpc`, `endpoints` are the nodes' gRPC host:port. */
  readonly transport?: 'http' | 'grpc';
}

export async function quorumKvTarget(options: QuorumKvTargetOptions): Promise<BenchTarget> {
  const kv: KvClient = await connect({
    endpoints: options.endpoints,
    transport: options.transport ?? 'http',
    connectionsPerEndpoint: options.connectionsPerEndpoint,
    deadlineMs: options.deadlineMs,
    clientId: `bench-${process.pid}-${Date.now().toString(36)}`,
    linearizableReadsFrom: options.linearizableReadsFrom ?? 'leader',
    batching: options.batching ?? true,
  });
  // One options object for every read: no per-call allocation.
  const readOptions = { consistency: options.readConsistency };
  const transport = options.transport ?? 'http';
  const reads = options.linearizableReadsFrom === 'any' && options.readConsistency === 'linearizable' ? '; linearizable reads from every node' : '';
  return {
    system: 'quorumkv',
    path: `client library over ${transport === 'grpc' ? 'gRPC' : 'HTTP'}${options.batching === false ? ' (one request per operation)' : ''}; writes to the leader it finds${reads}`,
    put: (key, value) => kv.put(key, value),
    get: (key) => kv.get(key, readOptions),
    txn: (a, b, value) =>
      kv.txn({ compare: [{ key: a, exists: true }], success: [{ op: 'put', key: a, value }, { op: 'put', key: b, value }], failure: [{ op: 'get', key: a }] }),
    close: () => kv.close(),
  };
}
