/**
 * The leader's half of leases: when each lease expires, by this node's ticks. The lease
 * table itself is replicated state (kv/leases.ts); expiry is not: only the leader decides it,
 * and commits it as a revoke entry, so every node deletes the lease's keys at the same
 * version and no follower's clock ever matters.
 *
 * Safety (no lease ends before its TTL has passed since the last keep-alive its holder
 * saw acknowledged):
 *  - a leader starts every lease's full TTL when it takes office, and a lease granted
 *    under it when the grant applies, so a failover can only extend a lease;
 *  - a keep-alive is acknowledged only after a read-index round confirmed this leader
 *    (the driver does that): a newer leader was then elected after the keep-alive arrived,
 *    and restarted the TTL later still;
 *  - a deadline counts `ttlMs` plus a margin for a tick clock running fast, plus one tick.
 *
 * Must never: read a clock (time is the tick count the driver passes), propose anything
 * itself, or keep state across a change of leadership.
 */

export interface LeaseKeeperOptions {
  readonly tickMs: number;
  /** How much faster than `tickMs` a tick may come, per mille (deadlines are stretched by it). */
  readonly clockFastPermilleMax: number;
  /** A revoke not applied within this many ticks is proposed again. */
  readonly revokeRetryTicks: number;
}

interface Deadline {
  readonly ttlMs: number;
  expiresAtTick: number;
  /** Tick at which a revoke was last proposed (null: none in flight). */
  revokeProposedAtTick: number | null;
}

export class LeaseKeeper {
  private readonly deadlines = new Map<number, Deadline>();
  private leading = false;
  /**
   * Planted bug (simulator only): followers time leases too, from the grant on their own
   * clock, and keep those deadlines when they take office: keep-alives they never saw and
   * the TTL restart are lost, so a lease can end early.
   */
  followerClock = false;

  constructor(private readonly opts: LeaseKeeperOptions) {}

  get isLeading(): boolean {
    return this.leading;
  }

  /** Took office at `nowTick`: every existing lease gets its full TTL from now. */
  becameLeader(nowTick: number, leases: Iterable<{ readonly id: number; readonly ttlMs: number }>): void {
    this.leading = true;
    if (!this.followerClock) this.deadlines.clear();
    for (const lease of leases) if (!this.deadlines.has(lease.id)) this.track(lease.id, lease.ttlMs, nowTick);
  }

  steppedDown(): void {
    this.leading = false;
    if (!this.followerClock) this.deadlines.clear();
  }

  /** A grant applied while leading. */
  granted(id: number, ttlMs: number, nowTick: number): void {
    if (this.leading || this.followerClock) this.track(id, ttlMs, nowTick);
  }

  /** A revoke applied (by a client or by expiry). */
  ended(id: number): void {
    this.deadlines.delete(id);
  }

  /**
   * A keep-alive confirmed by a read-index round at `nowTick`: the lease's TTL restarts.
   * Returns its TTL, or null when this leader knows no such lease, or has already decided
   * it expired (its revoke is on its way: a keep-alive must not be acknowledged then).
   */
  keptAlive(id: number, nowTick: number): number | null {
    const d = this.deadlines.get(id);
    if (!this.leading || d === undefined || d.revokeProposedAtTick !== null) return null;
    d.expiresAtTick = this.expiry(d.ttlMs, nowTick);
    return d.ttlMs;
  }

  /**
   * Milliseconds until lease `id` expires here, or null when not tracked: at most the TTL
   * (the deadline's safety margin is ours, not the holder's to count on).
   */
  remainingMs(id: number, nowTick: number): number | null {
    const d = this.deadlines.get(id);
    return d === undefined ? null : Math.min(d.ttlMs, Math.max(0, (d.expiresAtTick - nowTick) * this.opts.tickMs));
  }

  /** Leases past their deadline with no revoke in flight (at most `max`): the driver proposes their revokes. */
  due(nowTick: number, max: number): number[] {
    const out: number[] = [];
    if (!this.leading) return out;
    for (const [id, d] of this.deadlines) {
      if (out.length >= max) break;
      if (d.expiresAtTick > nowTick) continue;
      if (d.revokeProposedAtTick !== null && nowTick - d.revokeProposedAtTick < this.opts.revokeRetryTicks) continue;
      d.revokeProposedAtTick = nowTick;
      out.push(id);
    }
    return out;
  }

  private track(id: number, ttlMs: number, nowTick: number): void {
    this.deadlines.set(id, { ttlMs, expiresAtTick: this.expiry(ttlMs, nowTick), revokeProposedAtTick: null });
  }

  private expiry(ttlMs: number, nowTick: number): number {
    const stretchedMs = (ttlMs * (1000 + this.opts.clockFastPermilleMax)) / 1000;
    return nowTick + Math.ceil(stretchedMs / this.opts.tickMs) + 1;
  }
}
