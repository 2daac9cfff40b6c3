import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compare, insideRow, loopRow, pointWarmupsMs } from './bench.js';
import { median } from '../stdx/median.js';
import type { PointResult } from './runner.js';

test("each system's first timed point warms up longer; fills are not warmed up", () => {
  const write = {};
  const fill = { fill: true };
  assert.deepEqual(pointWarmupsMs([write, write], 2, 1000, 15_000), [15_000, 1000, 1000, 1000]);
  assert.deepEqual(pointWarmupsMs([fill, write], 2, 1000, 15_000), [0, 0, 15_000, 1000]);
  // A first warm-up shorter than the per-point one never shortens it.
  assert.deepEqual(pointWarmupsMs([write], 3, 2000, 500), [2000, 2000, 2000]);
});

test('with several rounds the comparison gives each system its median and the median and range of the rounds\' ratios', () => {
  const point = (system: string, round: number | undefined, opsPerSec: number, p50Ms: number): PointResult =>
    ({ system, workload: 'write', concurrency: 64, opsPerSec, byOp: [{ op: 'all', p50Ms, p99Ms: p50Ms * 4 }], ...(round === undefined ? {} : { round }) }) as unknown as PointResult;
  // Round 2 is slow for both (a noisy machine): its ratio is the middle one.
  const points = [
    point('quorumkv', 1, 9000, 5), point('etcd', 1, 3000, 15),
    point('quorumkv', 2, 6000, 8), point('etcd', 2, 2400, 20),
    point('quorumkv', 3, 8000, 6), point('etcd', 3, 4000, 12),
  ];
  const [c, ...more] = compare(points);
  assert.equal(more.length, 0);
  assert.deepEqual(
    { ...c },
    { system: 'etcd', workload: 'write', concurrency: 64, quorumkvOpsPerSec: 8000, otherOpsPerSec: 3000, ratio: 2.5, ratioMin: 2, ratioMax: 3, rounds: 3, quorumkvP50Ms: 6, otherP50Ms: 15, quorumkvP99Ms: 24, otherP99Ms: 60 },
  );
  // One round: the plain ratio of the two runs.
  const [one] = compare([point('quorumkv', undefined, 5000, 5), point('etcd', undefined, 4000, 6)]);
  assert.equal(one?.ratio, 1.25);
  assert.equal(one?.ratioMin, 1.25);
  assert.equal(one?.rounds, 1);
  assert.equal(median([3, 1, 2, 10]), 2.5);
});

test("a point whose nodes timed their event loops says how busy the busiest one was", () => {
  const point = (busiestLoopShare: number | null | undefined): PointResult => ({ system: 'quorumkv', byOp: [], persist: null, ...(busiestLoopShare === undefined ? {} : { busiestLoopShare }) }) as unknown as PointResult;
  assert.equal(loopRow(point(0.846)), "  quorumkv: the busiest node's event loop was running 85 % of the time (near 100 %, requests queue for it)");
  assert.equal(loopRow(point(null)), null, 'the nodes did not say');
  assert.equal(loopRow(point(undefined)), null, 'etcd and Redis, or results from before');
});

test('a point whose writes the nodes timed says how much of a write\'s latency was inside the cluster', () => {
  const point = (byOp: readonly { op: string; count: number; meanMs: number }[], writeMeanMs: number | null | undefined): PointResult =>
    ({ system: 'quorumkv', byOp, persist: writeMeanMs === undefined ? null : { fsyncsPerSec: 100, entriesPerFsync: 60, meanMs: 2, writeMeanMs } }) as unknown as PointResult;
  const mixed = [{ op: 'read', count: 900, meanMs: 2.5 }, { op: 'write', count: 100, meanMs: 7.5 }, { op: 'all', count: 1000, meanMs: 3 }];
  assert.equal(insideRow(point(mixed, 4.125)), "  quorumkv: a write spent 4.13 ms inside the cluster (from the leader's Raft driver taking it to its result), of 7.50 ms mean as the client saw it");
  assert.equal(insideRow(point(mixed, null)), null, 'the nodes timed no write');
  assert.equal(insideRow(point(mixed, undefined)), null, 'etcd and Redis: no figures');
  assert.equal(insideRow(point([{ op: 'read', count: 900, meanMs: 2.5 }, { op: 'all', count: 900, meanMs: 2.5 }], 4)), null, 'a read-only point');
});
