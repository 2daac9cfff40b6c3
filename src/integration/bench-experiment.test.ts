/**
 * The experiment runners end to end with tiny settings: `experiment quorum`
 * (fresh cluster per W, latency per W, divergence right after the load and after
 * settling), `experiment modes` (modes side by side, then a leader kill whose lost
 * writes must all be in rollback reports) and `experiment matrix` (one factor at a time
 * around a baseline).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from './harness.js';


test('experiment quorum with small settings measures latency rising with W on fresh clusters and finds every follower identical after settling', { timeout: 150_000 }, async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-exp-quorum-'));
  try {
    const r = await runCli(['experiment', 'quorum', '--nodes', '4', '--w', '1,3', '--writes', '60', '--concurrency', '5', '--keys', '5', '--delay', '0-200', '--settle', '1.5s', '--out', out], 120_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /W=1: 60 writes/);
    assert.match(r.stdout, /W=3: 60 writes/);
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as {
      kind: string;
      results: { points: { w: number; writes: number; errors: number; latency: { meanMs: number; p50Ms: number; p99Ms: number }; samplesMs: number[]; afterLoad: { node: string; entriesNotHeld: number }[]; afterSettle: { node: string; role: string; keysDiffering: number }[] }[] };
    };
    assert.equal(json.kind, 'experiment quorum');
    assert.deepEqual(json.results.points.map((p) => p.w), [1, 3]);
    for (const p of json.results.points) {
      assert.equal(p.writes + p.errors, 60);
      assert.equal(p.samplesMs.length, p.writes);
      assert.ok(p.latency.p50Ms > 0 && p.latency.p50Ms <= p.latency.p99Ms);
      assert.equal(p.afterLoad.length, 4);
      for (const n of p.afterSettle) assert.equal(n.keysDiffering, 0, `W=${p.w}: ${n.node} identical after settling`);
    }
    // Each follower's delay is drawn from 0-200 ms: W=1 waits for the fastest of three
    // followers (about 50 ms expected), W=3 for the slowest (about 150 ms).
    const [w1, w3] = json.results.points as [(typeof json.results.points)[number], (typeof json.results.points)[number]];
    assert.ok(w3.latency.meanMs > w1.latency.meanMs + 20, `latency rises with W: mean ${w1.latency.meanMs} ms at W=1, ${w3.latency.meanMs} ms at W=3`);
    // W = every follower: right after the load each follower's log holds every acknowledged
    // write (its store may still differ: it applies them when it learns the commit index).
    for (const n of w3.afterLoad) assert.equal(n.entriesNotHeld, 0, `W=3: ${n.node} holds every acknowledged write in its log`);
    const csv = (await readFile(path.join(out, 'results.csv'), 'utf8')).trim().split('\n');
    assert.equal(csv.length, 1 + 2 * 4 * 2, 'one row per W, node and snapshot');
    const html = await readFile(path.join(out, 'report.html'), 'utf8');
    assert.match(html, /id="chart-latency-vs-w"/);
    assert.match(await readFile(path.join(out, 'latency-vs-w.svg'), 'utf8'), /<polyline class="series"/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('experiment modes compares async and majority and accounts for every write lost in the leader kill', { timeout: 180_000 }, async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-exp-modes-'));
  try {
    const r = await runCli(['experiment', 'modes', '--modes', 'async,majority', '--nodes', '3', '--duration', '1s', '--warmup', '0.2s', '--keys', '200', '--concurrency', '8', '--kill-after', '0.5s', '--out', out, '--no-progress'], 170_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as {
      results: { modes: { mode: string; point: { opsPerSec: number }; kill: { acked: number; lost: number; lostUnreported: number; converged: boolean } }[] };
    };
    assert.deepEqual(json.results.modes.map((m) => m.mode), ['async', 'majority']);
    for (const m of json.results.modes) {
      assert.ok(m.point.opsPerSec > 0, `${m.mode} throughput`);
      assert.ok(m.kill.acked > 0, `${m.mode}: writes acknowledged around the kill`);
      assert.ok(m.kill.converged, `${m.mode}: stores converged after the old leader rejoined`);
      assert.equal(m.kill.lostUnreported, 0, `${m.mode}: every lost write is in a rollback report`);
    }
    assert.equal(json.results.modes.find((m) => m.mode === 'majority')?.kill.lost, 0, 'majority loses no acknowledged write');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('experiment matrix varies one factor at a time around the baseline, measures a setting met twice once, and charts each dimension', { timeout: 150_000 }, async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-exp-matrix-'));
  try {
    // concurrency 16 and distribution uniform are both the baseline: one point, not two.
    const r = await runCli(['experiment', 'matrix', '--only', 'concurrency,distribution', '--concurrency', '4,16', '--distribution', 'uniform,hot-cold', '--duration', '1s', '--warmup', '0.3s', '--out', out, '--no-progress'], 140_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /experiment matrix: concurrency, distribution around .*; 3 points of 1 s on 3 nodes/);
    type Setting = { keys: number; keyBytes: number; valueBytes: number; concurrency: number; readFraction: number; distribution: string };
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as {
      kind: string;
      config: { baseline: Setting };
      results: { points: { dimension: string; setting: Setting; result: { opsPerSec: number; errors: number; elapsedMs: number } }[] };
      charts: string[];
    };
    assert.equal(json.kind, 'experiment matrix');
    const points = json.results.points;
    assert.deepEqual(points.map((p) => `${p.dimension}=${String(p.setting[p.dimension as keyof Setting])}`), ['concurrency=4', 'concurrency=16', 'distribution=uniform', 'distribution=hot-cold']);
    for (const p of points) {
      // Every other factor stays at the baseline.
      assert.deepEqual({ ...p.setting, [p.dimension]: undefined }, { ...json.config.baseline, [p.dimension]: undefined });
      assert.ok(p.result.opsPerSec > 10 && p.result.errors === 0, `${p.dimension}: ${JSON.stringify(p.result.opsPerSec)} ops/s, ${p.result.errors} errors`);
    }
    const [c4, c16, uniform] = points as [(typeof points)[number], (typeof points)[number], (typeof points)[number]];
    assert.deepEqual(uniform.result, c16.result, 'the baseline was measured once');
    assert.ok(c16.result.opsPerSec > c4.result.opsPerSec, `16 closed-loop clients do more than 4: ${c16.result.opsPerSec} vs ${c4.result.opsPerSec} ops/s`);
    for (const chart of ['matrix-concurrency-throughput.svg', 'matrix-concurrency-latency.svg', 'matrix-distribution-throughput.svg', 'matrix-distribution-latency.svg']) {
      assert.ok(json.charts.includes(chart), `${chart} in ${json.charts.join(', ')}`);
      assert.match(await readFile(path.join(out, chart), 'utf8'), /<svg /);
    }
    const csv = (await readFile(path.join(out, 'results.csv'), 'utf8')).trim().split('\n');
    assert.ok((csv[0] ?? '').endsWith(',dimension'));
    assert.equal(csv.length, 1 + 4 * 3, 'one row per point and operation type (get, put, all)');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
