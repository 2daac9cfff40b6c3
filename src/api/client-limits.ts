/**
 * What one client address may hold at once: the per-client limits of both APIs (HTTP
 * connections and requests in flight in http.ts, gRPC calls in flight in grpc.ts), each a
 * count per address against one maximum.
 *
 * A client address is the TCP peer's IP, never a header (fastify's trustProxy is off: a
 * header could be forged). Behind a NAT or a proxy, every client there shares one budget;
 * so do a follower's forwarded requests on the leader's HTTP API (forward.ts: at most
 * connectionsPerLeaderMax per API server, checked against the limit at start-up in
 * cli/config.ts).
 *
 * Must never: grow without bound (an address is forgotten when its count returns to 0, so
 * the map holds only addresses with something open), or release one taking twice.
 */

import { QkvError } from '../wire/errors.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';

/**
 * Requests in flight per client address, by default: as many as it may hold HTTP connections
 * (--connections-per-ip-max, 1,024), so a client that does not pipeline and stays within its
 * connections is never refused, and one that pipelines gets the same budget, not one per
 * request it manages to queue on a socket. On gRPC, about one connection's worth of streams
 * (1,000). Far above what a follower forwards at once (2 x 64), and 20 such clients still fit
 * under the leader's --pending-writes-max (20,000).
 */
export const defaultRequestsPerClientMax = 1024;

/** How long a refused client is told to wait (Retry-After: 1, qkv-retry-after-ms: 1000). */
export const perClientRetryAfterMs = 1_000;

export class PerClientLimit {
  private readonly held = new Map<string, number>();

  constructor(
    /** What one address may hold at once. */
    readonly max: number,
    /** The flag that sets `max`, named in refusals and errors. */
    readonly flag: string,
  ) {
    checkPositiveSafeInt(max, flag);
  }

  /** Counts one more for `address` and returns its release (safe to call more than once), or null when `address` already holds `max`. */
  take(address: string): (() => void) | null {
    const count = this.held.get(address) ?? 0;
    if (count >= this.max) return null;
    this.held.set(address, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(address) ?? 1) - 1;
      if (left === 0) this.held.delete(address);
      else this.held.set(address, left);
    };
  }

  /** What `address` holds now. */
  holding(address: string): number {
    return this.held.get(address) ?? 0;
  }

  /** The 429 / RESOURCE_EXHAUSTED answer for an address at its limit; `what` names what it holds ("requests in flight"). */
  refusal(what: string, advice: string): QkvError {
    return new QkvError('too_many_requests', `This client address already has ${this.max} ${what} (${this.flag}): ${advice}`, { limit: this.max }, perClientRetryAfterMs);
  }
}
