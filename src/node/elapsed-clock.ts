/**
 * A clock of elapsed real time for timing leases, in ms: it never goes backwards and never
 * runs slower than real time, even when the machine sleeps.
 *
 * The monotonic clock (performance.now) is immune to wall-clock steps but stops while the
 * machine is suspended, and some hypervisors freeze it while a guest is paused; a lease
 * timed by it alone would outlive itself by the sleep. The wall clock goes on through a
 * sleep but may be stepped either way. So each reading advances by the larger of the two
 * clocks' advances since the last one: a step of the wall clock forward only ends the
 * current leases early, a step back is ignored, and a sleep is counted.
 */

export function createElapsedClockMs(monotonicMs: () => number = () => performance.now(), wallMs: () => number = () => Date.now()): () => number {
  let lastMonotonic = monotonicMs();
  let lastWall = wallMs();
  let elapsed = 0;
  return () => {
    const monotonic = monotonicMs();
    const wall = wallMs();
    elapsed += Math.max(monotonic - lastMonotonic, wall - lastWall, 0);
    lastMonotonic = monotonic;
    lastWall = wall;
    return elapsed;
  };
}
