import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotBytesMaxFor } from './node.js';

test('a node stages snapshots as large as its quota lets its stores grow, never below 4 GiB', () => {
  const gib = 1024 ** 3;
  // A 20 GiB quota: a store of 8 GiB must still reach a joining node (4 GiB refused it).
  assert.ok(snapshotBytesMaxFor(20 * gib) >= 8 * gib);
  assert.equal(snapshotBytesMaxFor(20 * gib), 20 * gib);
  assert.equal(snapshotBytesMaxFor(gib), 4 * gib);
  assert.equal(snapshotBytesMaxFor(0), Number.MAX_SAFE_INTEGER, 'no quota: no limit of its own');
});
