/**
 * A lease held by this process (`kv.lease(ttlMs)`): granted once, then kept alive in the
 * background until `revoke()`, `release()` or the process exits. Keys put with
 * `{ lease: lease.id }` are deleted by the cluster when the lease ends.
 *
 * Timing. The leader restarts a lease's full TTL when it confirms a keep-alive, and never
 * before it received it; so the lease is alive at least until the moment the confirmed
 * keep-alive was *sent* plus the TTL, by this process's monotonic clock. That is
 * `safeUntilMs`: work that relies on holding the lease (a lock) must stop before it. A
 * keep-alive is sent every TTL/3, each with a deadline of TTL/3, so two can fail in a row
 * and the third still arrives in time.
 *
 * Must never: report a lease alive past `safeUntilMs`, keep the process running (the
 * timer is unref'd), or keep sending keep-alives after the lease is known to be gone.
 */

import type { LeaseInfoResponse, LeaseKeepAliveResponse, LeaseRevokeResponse } from '../wire/types.js';
import { QuorumKvError } from './errors.js';

/** What the lease needs from the client: one call each, with the client's retries inside the deadline. */
export interface LeaseCalls {
  keepAlive(id: number, deadlineMs: number): Promise<LeaseKeepAliveResponse>;
  revoke(id: number, deadlineMs: number): Promise<LeaseRevokeResponse>;
  info(id: number, keysMax: number, deadlineMs: number): Promise<LeaseInfoResponse | undefined>;
}

/**
 * Why a lease is no longer held: `expired` (the cluster no longer has it: it expired or
 * someone revoked it), `unreachable` (no keep-alive was confirmed within the TTL: the
 * cluster may have expired it), `revoked` (this process revoked it), `released` (this
 * process stopped keeping it alive), `closed` (the client was closed).
 */
export type LeaseLostReason = 'expired' | 'unreachable' | 'revoked' | 'released' | 'closed';

export interface LeaseLost {
  readonly reason: LeaseLostReason;
  /** The last failure behind `expired` or `unreachable`. */
  readonly error?: QuorumKvError | Error;
}

export class Lease {
  /** The lease id (the log index of its grant). */
  readonly id: number;
  readonly ttlMs: number;
  /**
   * Settles (never rejects) once the lease is no longer held, with the reason. Await it to
   * learn that keys attached to the lease are gone or may be gone.
   */
  readonly lost: Promise<LeaseLost>;
  private settle: (lost: LeaseLost) => void = () => {};
  private lostWith: LeaseLost | null = null;
  private safeUntil: number;
  private timer: NodeJS.Timeout | null = null;
  private lastError: Error | undefined;

  /** @internal Use `kv.lease()`. `grantSentMs` is when the grant was sent (performance.now()). */
  constructor(
    private readonly calls: LeaseCalls,
    grant: { readonly id: number; readonly ttlMs: number },
    grantSentMs: number,
    keepAlive: boolean,
  ) {
    this.id = grant.id;
    this.ttlMs = grant.ttlMs;
    this.safeUntil = grantSentMs + grant.ttlMs;
    this.lost = new Promise((resolve) => (this.settle = resolve));
    if (keepAlive) this.schedule();
  }

  /** Whether the lease is still held by this process's reckoning (see safeUntilMs). */
  get alive(): boolean {
    if (this.lostWith === null && performance.now() >= this.safeUntil) this.end({ reason: 'unreachable', ...(this.lastError === undefined ? {} : { error: this.lastError }) });
    return this.lostWith === null;
  }

  /** Until when (performance.now() milliseconds) the lease is certainly alive. */
  get safeUntilMs(): number {
    return this.lostWith === null ? this.safeUntil : 0;
  }

  /**
   * Sends one keep-alive now (the background ones go on). Throws a NotFoundError
   * (`lease_not_found`) when the cluster no longer has the lease.
   */
  async keepAlive(deadlineMs = this.ttlMs / 3): Promise<void> {
    if (this.lostWith !== null) throw new QuorumKvError('lease_not_found', `lease ${this.id} is no longer held (${this.lostWith.reason})`, { id: this.id });
    const sentMs = performance.now();
    try {
      await this.calls.keepAlive(this.id, Math.max(1, Math.floor(deadlineMs)));
      this.lastError = undefined;
      this.safeUntil = Math.max(this.safeUntil, sentMs + this.ttlMs);
    } catch (e) {
      this.lastError = e as Error;
      if (e instanceof QuorumKvError && e.code === 'lease_not_found') this.end({ reason: 'expired', error: e });
      throw e;
    }
  }

  /** Ends the lease now: the cluster deletes its keys. Resolves with how many. */
  async revoke(deadlineMs = 10_000): Promise<{ readonly found: boolean; readonly keysDeleted: number; readonly version: number }> {
    this.stopTimer();
    try {
      const r = await this.calls.revoke(this.id, deadlineMs);
      this.end({ reason: 'revoked' });
      return { found: r.found, keysDeleted: r.keysDeleted, version: r.version };
    } catch (e) {
      // No longer kept alive either way: the lease ends by its TTL if the revoke did not land.
      this.end({ reason: 'released', error: e as Error });
      throw e;
    }
  }

  /** Stops keeping the lease alive without revoking it: its keys go when the TTL runs out. */
  release(): void {
    this.stopTimer();
    this.end({ reason: 'released' });
  }

  /** The TTL left by the leader's clock and the keys attached (at most `keysMax`); undefined once the lease is gone. */
  info(keysMax = 1_000, deadlineMs = 10_000): Promise<LeaseInfoResponse | undefined> {
    return this.calls.info(this.id, keysMax, deadlineMs);
  }

  /** @internal The client is closing. */
  closeQuietly(): void {
    this.stopTimer();
    this.end({ reason: 'closed' });
  }

  private schedule(): void {
    if (this.lostWith !== null) return;
    this.timer = setTimeout(() => void this.beat(), Math.max(1, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    this.timer = null;
    if (!this.alive) return;
    try {
      await this.keepAlive();
    } catch {
      // lastError is kept for the `unreachable` report; `expired` already ended the lease.
    }
    if (this.alive) this.schedule();
  }

  private stopTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private end(lost: LeaseLost): void {
    if (this.lostWith !== null) return;
    this.lostWith = lost;
    this.stopTimer();
    this.settle(lost);
  }
}
