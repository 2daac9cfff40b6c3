/**
 * How long a leader's read lease may last (the core's `readLeaseTicks`), from how long a
 * follower is sure to refuse votes after hearing it.
 *
 * A follower that heard from its leader (or a node that has just started) refuses votes
 * until its `electionTimeoutTicks`-th tick after that; the first of those ticks may come at
 * once, so the refusal lasts at least `electionTimeoutTicks - 1` tick periods. A period may
 * come short by the timer's granularity (Node's timers count whole milliseconds) and by the
 * follower's clock running fast, while the leader's clock, which times the lease, may run
 * slow by as much. The lease is that refusal in the leader's ticks, less one tick more for
 * what the bound does not model; 0 (no lease) when nothing is left.
 */

import { clockFastPermilleMaxDefault, type DriverOptions } from './driver-options.js';

/** The granularity of a node's tick timer, in ms (libuv's loop time is in whole ms). */
const timerGranularityMs = 1;

export interface ReadLeaseSizing {
  readonly electionTimeoutTicks: number;
  readonly tickMs: number;
  /** How far any node's clock rate may be from real time, per mille (either way). */
  readonly clockDriftPermilleMax: number;
}

export function readLeaseTicksFor(s: ReadLeaseSizing): number {
  const drift = s.clockDriftPermilleMax / 1000;
  const shortestPeriod = Math.max(0, (s.tickMs - timerGranularityMs) / s.tickMs) * (1 - drift);
  const refusalTicks = (s.electionTimeoutTicks - 1) * shortestPeriod;
  return Math.max(0, refusalTicks / (1 + drift) - 1);
}

/** The core's read lease: its length in ticks and the clock that times it (none without a clock, or when turned off). */
export function coreReadLease(
  options: Pick<DriverOptions, 'readLease' | 'checkQuorum' | 'electionTimeoutTicks' | 'tickMs' | 'clockFastPermilleMax'>,
  clockMs: (() => number) | undefined,
): { readonly readLeaseTicks: number; readonly clockTicks: () => number } {
  const tickMs = options.tickMs;
  if (clockMs === undefined || options.readLease === false || !options.checkQuorum) return { readLeaseTicks: 0, clockTicks: () => 0 };
  const readLeaseTicks = readLeaseTicksFor({ electionTimeoutTicks: options.electionTimeoutTicks, tickMs, clockDriftPermilleMax: options.clockFastPermilleMax ?? clockFastPermilleMaxDefault });
  return { readLeaseTicks, clockTicks: () => clockMs() / tickMs };
}
