import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseKeeper } from './leases.js';

const tickMs = 100;
const keeper = (): LeaseKeeper => new LeaseKeeper({ tickMs, clockFastPermilleMax: 0, revokeRetryTicks: 5 });

test('a lease is due once its TTL (plus a tick) has passed since the leader took office, granted it, or last confirmed a keep-alive', () => {
  const k = keeper();
  k.becameLeader(10, [{ id: 1, ttlMs: 1000 }]);
  k.granted(2, 500, 12);
  assert.deepEqual(k.due(17, 10), []);
  assert.equal(k.keptAlive(1, 15), 1000);
  assert.deepEqual(k.due(18, 10), [2], 'granted at 12: 500 ms = 5 ticks, plus one');
  k.ended(2);
  assert.deepEqual(k.due(25, 10), [], 'taking office at 10 gave lease 1 until 21; the keep-alive at 15 moved it to 26');
  assert.deepEqual(k.due(26, 10), [1]);
  // Once it is due, a keep-alive can no longer save it: its revoke is on its way.
  assert.equal(k.keptAlive(1, 26), null);
  // A revoke in flight is not proposed again until it had time to apply.
  assert.deepEqual(k.due(27, 10), []);
  assert.deepEqual(k.due(31, 10), [1]);
  k.ended(1);
  k.ended(2);
  assert.deepEqual(k.due(100, 10), []);
  assert.equal(k.keptAlive(1, 100), null, 'an ended lease cannot be kept alive');
});

test('a new leader restarts every TTL; a follower times nothing', () => {
  const k = keeper();
  k.granted(1, 300, 0);
  assert.deepEqual(k.due(1000, 10), [], 'not leading: nothing is due');
  assert.equal(k.keptAlive(1, 5), null);
  k.becameLeader(50, [{ id: 1, ttlMs: 300 }]);
  assert.deepEqual(k.due(53, 10), []);
  assert.deepEqual(k.due(54, 10), [1]);
  k.steppedDown();
  assert.deepEqual(k.due(1000, 10), []);
});

test('deadlines stretch for a clock that may run fast', () => {
  const k = new LeaseKeeper({ tickMs, clockFastPermilleMax: 60, revokeRetryTicks: 5 });
  k.becameLeader(0, [{ id: 1, ttlMs: 1000 }]);
  assert.deepEqual(k.due(11, 10), [], '1000 ms * 1.06 = 10.6 ticks, rounded up, plus one');
  assert.deepEqual(k.due(12, 10), [1]);
});

test('planted bug: on its own follower clock a new leader keeps the grant-time deadline and ends the lease early', () => {
  const k = keeper();
  k.followerClock = true;
  k.granted(1, 500, 0);
  k.becameLeader(4, [{ id: 1, ttlMs: 500 }]);
  assert.deepEqual(k.due(6, 10), [1], 'a correct leader would wait until tick 10');
});
