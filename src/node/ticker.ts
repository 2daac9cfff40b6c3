/**
 * The one real timer of a node: calls `tick()` every `tickMs`. Everything else counts
 * ticks. It also measures how late each tick fires (event-loop delay), because a
 * blocked event loop starves heartbeats and deposes healthy leaders; the figure is
 * exported as a metric.
 */

export interface Ticker {
  stop(): void;
  /** Largest lateness of a tick, in ms, since the last call (then reset). */
  takeLagMsMax(): number;
}

export function startTicker(tickMs: number, tick: () => void): Ticker {
  let expected = performance.now() + tickMs;
  let lagMsMax = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    lagMsMax = Math.max(lagMsMax, now - expected);
    expected = now + tickMs;
    tick();
  }, tickMs);
  return {
    stop: () => clearInterval(timer),
    takeLagMsMax: () => {
      const v = lagMsMax;
      lagMsMax = 0;
      return v;
    },
  };
}
