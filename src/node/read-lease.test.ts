import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readLeaseTicksFor } from './read-lease.js';

test('the default settings (50 ms ticks, 1 s election timeout, 10 per mille of drift) give a lease of about 860 ms', () => {
  const ticks = readLeaseTicksFor({ electionTimeoutTicks: 20, tickMs: 50, clockDriftPermilleMax: 10 });
  assert.ok(ticks * 50 > 840 && ticks * 50 < 880, `${ticks * 50} ms`);
});

test('the lease stays below the shortest vote refusal a follower can give, and shrinks with drift', () => {
  for (const electionTimeoutTicks of [3, 5, 10, 20, 40]) {
    for (const tickMs of [2, 10, 50, 100]) {
      let last = Infinity;
      for (const clockDriftPermilleMax of [0, 10, 60, 200]) {
        const lease = readLeaseTicksFor({ electionTimeoutTicks, tickMs, clockDriftPermilleMax });
        const d = clockDriftPermilleMax / 1000;
        // The lease in real time (the leader's clock slow) against the refusal in real time (the follower's fast, periods short by 1 ms).
        assert.ok(lease * tickMs * (1 + d) <= (electionTimeoutTicks - 1) * (tickMs - 1) * (1 - d), `${electionTimeoutTicks} ticks of ${tickMs} ms, ${clockDriftPermilleMax}‰`);
        assert.ok(lease >= 0 && lease <= last);
        last = lease;
      }
    }
  }
});

test('too short an election timeout leaves no lease at all', () => {
  assert.equal(readLeaseTicksFor({ electionTimeoutTicks: 2, tickMs: 10, clockDriftPermilleMax: 60 }), 0);
});
