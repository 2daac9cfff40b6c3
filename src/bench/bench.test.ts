import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pointWarmupsMs } from './bench.js';

test("each system's first timed point warms up longer; fills are not warmed up", () => {
  const write = {};
  const fill = { fill: true };
  assert.deepEqual(pointWarmupsMs([write, write], 2, 1000, 15_000), [15_000, 1000, 1000, 1000]);
  assert.deepEqual(pointWarmupsMs([fill, write], 2, 1000, 15_000), [0, 0, 15_000, 1000]);
  // A first warm-up shorter than the per-point one never shortens it.
  assert.deepEqual(pointWarmupsMs([write], 3, 2000, 500), [2000, 2000, 2000]);
});
