/**
 * Leases in the simulator: each client holds at most one lease at a time — grants it,
 * attaches a key, keeps it alive for a while, then revokes or abandons it (an abandoned
 * lease must expire). The ledger records, per lease, the TTL and the invoke time of the
 * last keep-alive (or the grant) the client saw acknowledged; the world reports every
 * expiry it sees applied, and `lease-early-expiry` fires when a lease ended before its TTL
 * had passed since then, in virtual time.
 *
 * Leased keys live under `lease/` and are never recorded in the linearizability history:
 * an expiry deletes them without a client operation.
 *
 * Must never: measure anything on a node's clock, or record what the client did not see.
 */

import type { Command, CommandResult } from '../kv/types.js';
import type { Prng } from '../stdx/prng.js';

export interface LeaseAck {
  readonly ttlMs: number;
  /** Invoke time (µs) of the last keep-alive, or the grant, whose answer the client saw. */
  lastAckedInvokeUs: number;
}

/**
 * Every acknowledged lease of the run, by id. Ids are log indexes: unique under a majority,
 * but a weak quorum's rollback can lose a grant and a new leader's log reuse its index for
 * another grant (seed 91102), so the id names the lease granted last under it.
 */
export class LeaseLedger {
  private readonly acks = new Map<number, LeaseAck>();
  expiries = 0;

  granted(id: number, ttlMs: number, invokeUs: number): void {
    this.acks.set(id, { ttlMs, lastAckedInvokeUs: invokeUs });
  }

  /** A keep-alive of `id` acknowledged with the TTL of the lease that holds that id now. */
  keptAlive(id: number, ttlMs: number, invokeUs: number): void {
    const a = this.acks.get(id);
    if (a === undefined) return this.granted(id, ttlMs, invokeUs);
    this.acks.set(id, { ttlMs, lastAckedInvokeUs: Math.max(a.lastAckedInvokeUs, invokeUs) });
  }

  /** Why an expiry of lease `id` applied at `nowUs` is too early, or null. Each lease is checked at its first expiry seen. */
  expired(id: number, nowUs: number): string | null {
    const a = this.acks.get(id);
    if (a === undefined) return null;
    this.acks.delete(id);
    this.expiries++;
    const earliestUs = a.lastAckedInvokeUs + a.ttlMs * 1000;
    if (nowUs >= earliestUs) return null;
    return `lease ${id} (TTL ${a.ttlMs} ms) expired at ${(nowUs / 1000).toFixed(3)} ms, ${((earliestUs - nowUs) / 1000).toFixed(3)} ms before its TTL had passed since the keep-alive acknowledged last (sent at ${(a.lastAckedInvokeUs / 1000).toFixed(3)} ms)`;
  }
}

/** The lease ids whose expiry (a revoke with reason `expired` that found the lease) `entries` apply. */
export function expiriesIn(commands: readonly (Command | null)[], results: readonly (CommandResult | undefined)[]): number[] {
  const out: number[] = [];
  commands.forEach((c, i) => {
    const r = results[i];
    if (c?.op === 'lease-revoke' && c.reason === 'expired' && r?.ok === true && r.op === 'lease-revoke' && r.found) out.push(c.id);
  });
  return out;
}

export type LeaseAction =
  | { readonly kind: 'grant'; readonly command: Command }
  | { readonly kind: 'attach'; readonly command: Command; readonly id: number }
  | { readonly kind: 'keepAlive'; readonly id: number }
  | { readonly kind: 'revoke'; readonly command: Command; readonly id: number };

interface Held {
  readonly id: number;
  readonly ttlMs: number;
  readonly holdUntilUs: number;
  attached: boolean;
}

/** One client's lease: what to do next, and what an answer means for it. */
export class LeaseHolder {
  private held: Held | null = null;

  constructor(
    private readonly clientId: string,
    private readonly prng: Prng,
    private readonly ledger: LeaseLedger,
  ) {}

  next(nowUs: number): LeaseAction {
    const h = this.held;
    if (h === null) return { kind: 'grant', command: { op: 'lease-grant', ttlMs: this.prng.intBetween(150, 1200) } };
    if (!h.attached) return { kind: 'attach', id: h.id, command: { op: 'put', key: `lease/${this.clientId}/${h.id}`, value: `${this.clientId}@${nowUs}`, lease: h.id } };
    if (nowUs < h.holdUntilUs) return { kind: 'keepAlive', id: h.id };
    // Done with it: revoke, or walk away and let it expire.
    if (this.prng.chance(0.5)) return { kind: 'revoke', id: h.id, command: { op: 'lease-revoke', id: h.id, reason: 'revoked' } };
    this.held = null;
    return this.next(nowUs);
  }

  granted(id: number, ttlMs: number, invokeUs: number): void {
    this.ledger.granted(id, ttlMs, invokeUs);
    this.held = { id, ttlMs, holdUntilUs: invokeUs + this.prng.intBetween(ttlMs, ttlMs * 6) * 1000, attached: false };
  }

  attached(id: number, ok: boolean): void {
    if (this.held?.id !== id) return;
    if (ok) this.held.attached = true;
    else this.held = null; // lease_not_found: it ended already
  }

  keptAlive(id: number, ttlMs: number, invokeUs: number): void {
    this.ledger.keptAlive(id, ttlMs, invokeUs);
  }

  /** The lease is gone (revoked, or the node said lease_not_found). */
  dropped(id: number): void {
    if (this.held?.id === id) this.held = null;
  }
}
