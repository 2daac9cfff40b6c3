import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from '../stdx/prng.js';
import { ackCount, indexReachedBy, isWeakerThanMajority, majoritySize } from './quorum.js';

/** The obvious, slow definition: the largest index held by at least `count` replicas. */
function naiveIndexReachedBy(matches: number[], count: number): number {
  let best = 0;
  for (const candidate of matches) {
    if (matches.filter((m) => m >= candidate).length >= count) best = Math.max(best, candidate);
  }
  return best;
}

test('indexReachedBy agrees with the naive definition on random inputs', () => {
  const prng = createPrng(2024);
  for (let round = 0; round < 5000; round++) {
    const n = prng.intBetween(1, 9);
    const matches = Array.from({ length: n }, () => prng.intBetween(0, 20));
    const count = prng.intBetween(1, n);
    assert.equal(indexReachedBy(matches, count), naiveIndexReachedBy(matches, count), `matches ${matches} count ${count}`);
  }
});

test('majorities of 1..7 members are 1,2,2,3,3,4,4', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(majoritySize), [1, 2, 2, 3, 3, 4, 4]);
});

test('write quorums count the leader plus W followers, capped by the members present', () => {
  assert.equal(ackCount('majority', 5), 3);
  assert.equal(ackCount('all', 5), 5);
  assert.equal(ackCount(0, 5), 1);
  assert.equal(ackCount(1, 5), 2);
  assert.equal(ackCount(4, 5), 5);
  assert.equal(ackCount(9, 3), 3);
  assert.equal(isWeakerThanMajority(1, 5), true);
  assert.equal(isWeakerThanMajority(2, 5), false);
  assert.equal(isWeakerThanMajority('all', 3), false);
});
