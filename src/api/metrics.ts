/**
 * Prometheus metrics of the HTTP API: requests by route, method and status, their latency,
 * and what happened to requests forwarded to the leader. Owns the metric names and the
 * cache of labelled children that keeps recording cheap on the hot path.
 *
 * Must never: put unbounded values in labels (keys, URLs, client ids): routes are the
 * route patterns ("/kv/*"), so the label sets stay small and fixed.
 */

import { Counter, Histogram } from 'prom-client';
import type { CounterConfiguration, HistogramConfiguration, Registry } from 'prom-client';

/** Route label for requests that matched no route (404/405, bad URLs, parser errors). */
export const unmatchedRoute = '(unmatched)';

/** What became of one attempt to forward a request to the leader. */
export type ForwardOutcome =
  /** The leader answered (any status). */
  | 'answered'
  /** The leader said it no longer leads; the request was sent once more. */
  | 'retried'
  /** No connection could be made: the request never left this node. */
  | 'unreachable'
  /** The connection failed or timed out after the request may have been sent. */
  | 'failed_after_send';

export interface HttpMetrics {
  /** One finished request; `durationMs` null when the framework did not time it. */
  observeRequest(route: string, method: string, statusCode: number, durationMs: number | null): void;
  observeForward(outcome: ForwardOutcome): void;
}

const requestsName = 'qkv_http_requests_total';
const durationName = 'qkv_http_request_duration_seconds';
const forwardsName = 'qkv_http_forwards_total';

/** Latency buckets in seconds: from a loopback read (~0.2 ms) to a slow quorum (10 s). */
const durationBucketsSeconds = [
  0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Distinct (route, method, status) triples whose children are cached. Routes and statuses
 * are few; methods are whatever Node's parser accepts (about 35), so the product is
 * bounded, but a cap keeps the promise explicit: past it, recording still works, uncached.
 */
const cachedChildrenMax = 1024;

interface RequestChildren {
  readonly count: { inc(): void };
  readonly duration: { observe(value: number): void };
}

/**
 * Registers (or, when another server already registered them in `registry`, reuses) the
 * HTTP metrics.
 */
export function createHttpMetrics(registry: Registry): HttpMetrics {
  const requests =
    registeredCounter<'route' | 'method' | 'status'>(registry, {
      name: requestsName,
      help: 'HTTP requests answered, by route pattern, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
    });
  const duration =
    registeredHistogram<'route' | 'method'>(registry, {
      name: durationName,
      help: 'Time from routing a request to its response being handed to the OS, by route pattern and method.',
      labelNames: ['route', 'method'] as const,
      buckets: durationBucketsSeconds,
    });
  const forwards =
    registeredCounter<'outcome'>(registry, {
      name: forwardsName,
      help: 'Requests this node forwarded to the leader, by outcome.',
      labelNames: ['outcome'] as const,
    });

  // prom-client hashes the label object on every inc(); caching the labelled children per
  // triple turns recording into a Map lookup.
  const children = new Map<string, RequestChildren>();

  function childrenFor(route: string, method: string, statusCode: number): RequestChildren {
    const cacheKey = `${route} ${method} ${statusCode}`;
    let found = children.get(cacheKey);
    if (found === undefined) {
      found = {
        count: requests.labels(route, method, String(statusCode)),
        duration: duration.labels(route, method),
      };
      if (children.size < cachedChildrenMax) children.set(cacheKey, found);
    }
    return found;
  }

  return {
    observeRequest(route, method, statusCode, durationMs) {
      const child = childrenFor(route, method, statusCode);
      child.count.inc();
      if (durationMs !== null) child.duration.observe(durationMs / 1000);
    },
    observeForward(outcome) {
      forwards.inc({ outcome });
    },
  };
}

export interface GrpcMetrics {
  /** One finished call: its method (Put, Get, …), its wire error code or `ok`, and its time. */
  observeCall(method: string, outcome: string, durationMs: number): void;
}

const grpcCallsName = 'qkv_grpc_requests_total';
const grpcDurationName = 'qkv_grpc_request_duration_seconds';

/** Registers (or reuses) the gRPC API's metrics: calls by method and outcome, and their time. */
export function createGrpcMetrics(registry: Registry): GrpcMetrics {
  const calls =
    registeredCounter<'method' | 'outcome'>(registry, {
      name: grpcCallsName,
      help: 'gRPC calls answered, by method and outcome (ok, or the wire error code).',
      labelNames: ['method', 'outcome'] as const,
    });
  const duration =
    registeredHistogram<'method'>(registry, {
      name: grpcDurationName,
      help: 'Time from receiving a gRPC call to answering it, by method.',
      labelNames: ['method'] as const,
      buckets: durationBucketsSeconds,
    });
  return {
    observeCall(method, outcome, durationMs) {
      calls.inc({ method, outcome });
      duration.observe({ method }, durationMs / 1000);
    },
  };
}

/** The counter named in `config` already in `registry` (another server of this node made it), or a new one there. */
function registeredCounter<L extends string>(registry: Registry, config: CounterConfiguration<L>): Counter<L> {
  return (registry.getSingleMetric(config.name) as Counter<L> | undefined) ?? new Counter({ ...config, registers: [registry] });
}

function registeredHistogram<L extends string>(registry: Registry, config: HistogramConfiguration<L>): Histogram<L> {
  return (registry.getSingleMetric(config.name) as Histogram<L> | undefined) ?? new Histogram({ ...config, registers: [registry] });
}
