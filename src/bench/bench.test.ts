import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compare, insideRow, loopRow, pointWarmupsMs, serverCpuUsPerOp } from './bench.js';
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
  const point = (system: string, round: number | undefined, opsPerSec: number, p50Ms: number, serverCpuCores: number | null = null): PointResult =>
    ({ system, workload: 'write', concurrency: 64, opsPerSec, serverCpuCores, byOp: [{ op: 'all', p50Ms, p99Ms: p50Ms * 4 }], ...(round === undefined ? {} : { round }) }) as unknown as PointResult;
  // Round 2 is slow for both (a noisy machine): its ratio is the middle one. The servers'
  // CPU per operation (cores / ops/s): quorumkv 200, 250, 220 µs; etcd 500, 500, 400 µs.
  const points = [
    point('quorumkv', 1, 9000, 5, 1.8), point('etcd', 1, 3000, 15, 1.5),
    point('quorumkv', 2, 6000, 8, 1.5), point('etcd', 2, 2400, 20, 1.2),
    point('quorumkv', 3, 8000, 6, 1.76), point('etcd', 3, 4000, 12, 1.6),
  ];
  const [c, ...more] = compare(points);
  assert.equal(more.length, 0);
  const { quorumkvServerCpuUsPerOp, otherServerCpuUsPerOp, ...rest } = c ?? assert.fail('no comparison');
  assert.deepEqual(
    { ...rest },
    { system: 'etcd', workload: 'write', concurrency: 64, quorumkvOpsPerSec: 8000, otherOpsPerSec: 3000, ratio: 2.5, ratioMin: 2, ratioMax: 3, rounds: 3, quorumkvP50Ms: 6, otherP50Ms: 15, quorumkvP99Ms: 24, otherP99Ms: 60 },
  );
  assert.ok(Math.abs((quorumkvServerCpuUsPerOp ?? NaN) - 220) < 1e-6, `quorumkv's median CPU per operation: ${quorumkvServerCpuUsPerOp}`);
  assert.ok(Math.abs((otherServerCpuUsPerOp ?? NaN) - 500) < 1e-6, `etcd's median CPU per operation: ${otherServerCpuUsPerOp}`);
  // One round: the plain ratio of the two runs; servers the bench did not measure have no CPU figure.
  const [one] = compare([point('quorumkv', undefined, 5000, 5, 1), point('etcd', undefined, 4000, 6)]);
  assert.equal(one?.ratio, 1.25);
  assert.equal(one?.ratioMin, 1.25);
  assert.equal(one?.rounds, 1);
  assert.equal(one?.quorumkvServerCpuUsPerOp, 200);
  assert.equal(one?.otherServerCpuUsPerOp, null);
  assert.equal(median([3, 1, 2, 10]), 2.5);
});

test("a point's server CPU per operation: the servers' cores over its throughput, unknown without either", () => {
  const point = (serverCpuCores: number | null, opsPerSec: number): PointResult => ({ serverCpuCores, opsPerSec }) as unknown as PointResult;
  assert.equal(serverCpuUsPerOp(point(1.5, 6000)), 250);
  assert.equal(serverCpuUsPerOp(point(null, 6000)), null);
  assert.equal(serverCpuUsPerOp(point(1.5, 0)), null);
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
