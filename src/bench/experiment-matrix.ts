/**
 * `quorumkv experiment matrix`: the chain seed's parameter study, one factor at a time
 * from a baseline (1,000 keys of 16 B, 128 B values, 16 clients, 50/50 get/put, uniform
 * keys): value sizes, key sizes, client counts 2–32, store sizes, get/put mixes, and
 * uniform vs hot-cold vs zipfian keys, on one cluster (default 3 nodes, majority; node
 * flags pass through). Short points by default (2 s after 0.5 s warm-up); a point equal
 * to one already measured is not run twice.
 *
 * Must never: measure a read workload on keys that were not written (each key set is
 * preloaded before its first point with reads).
 */

import { barChart, lineChart } from './charts.js';
import { LocalCluster } from './cluster.js';
import { csvHeader, csvRows, htmlHeader, htmlRows } from './bench.js';
import { finishReport } from './report.js';
import type { Report, ReportChart, ReportFiles, ReportTable } from './report.js';
import { preload, runPoint } from './runner.js';
import type { PointResult } from './runner.js';
import type { OpSummary } from './stats.js';
import { quorumKvTarget } from './target.js';
import { makeKeys, makeValue } from './workload.js';
import type { KeyDistribution, WorkloadSpec } from './workload.js';
import { createPrng } from '../stdx/prng.js';

export interface MatrixSetting {
  readonly keys: number;
  readonly keyBytes: number;
  readonly valueBytes: number;
  readonly concurrency: number;
  readonly readFraction: number;
  readonly distribution: KeyDistribution;
}

export interface MatrixDimensions {
  readonly valueBytes: readonly number[];
  readonly keyBytes: readonly number[];
  readonly concurrency: readonly number[];
  readonly keys: readonly number[];
  readonly readFraction: readonly number[];
  readonly distribution: readonly KeyDistribution[];
}

export const matrixDefaults: MatrixDimensions = {
  valueBytes: [16, 128, 1024, 8192],
  keyBytes: [16, 128, 512],
  concurrency: [2, 4, 8, 16, 32],
  keys: [100, 1000, 10_000],
  readFraction: [0, 0.5, 0.9, 1],
  distribution: ['uniform', 'hot-cold', 'zipf'],
};

export const matrixBaseline: MatrixSetting = { keys: 1000, keyBytes: 16, valueBytes: 128, concurrency: 16, readFraction: 0.5, distribution: 'uniform' };

export interface MatrixOptions {
  readonly dimensions: MatrixDimensions;
  /** Only these dimensions (names of MatrixDimensions); default all. */
  readonly only: readonly (keyof MatrixDimensions)[];
  readonly nodes: number;
  readonly nodeFlags: readonly string[];
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly outDir: string | null;
  readonly command: string;
  readonly seed: number;
  readonly progress: boolean;
  readonly print?: (text: string) => void;
}

export interface MatrixPoint {
  readonly dimension: keyof MatrixDimensions;
  readonly setting: MatrixSetting;
  readonly result: PointResult;
}

const dimensionLabels: Readonly<Record<keyof MatrixDimensions, string>> = {
  valueBytes: 'value size (bytes)',
  keyBytes: 'key size (bytes)',
  concurrency: 'concurrent clients',
  keys: 'store size (keys)',
  readFraction: 'share of gets',
  distribution: 'key distribution',
};

function allOf(p: PointResult): OpSummary {
  return p.byOp[p.byOp.length - 1] as OpSummary;
}

export async function runMatrixExperiment(o: MatrixOptions): Promise<{ points: MatrixPoint[]; report: Report; files: ReportFiles | null }> {
  const print = o.print ?? ((t: string) => void process.stdout.write(t));
  const startedAt = new Date().toISOString();
  const dims = (Object.keys(o.dimensions) as (keyof MatrixDimensions)[]).filter((d) => o.only.length === 0 || o.only.includes(d));
  const plan: { dimension: keyof MatrixDimensions; setting: MatrixSetting }[] = [];
  for (const d of dims) for (const v of o.dimensions[d]) plan.push({ dimension: d, setting: { ...matrixBaseline, [d]: v } });
  const distinct = new Set(plan.map((p) => JSON.stringify(p.setting))).size;
  print(`experiment matrix: ${dims.join(', ')} around ${JSON.stringify(matrixBaseline)}; ${distinct} points of ${o.durationMs / 1000} s on ${o.nodes} nodes${o.nodeFlags.length > 0 ? ` (${o.nodeFlags.join(' ')})` : ''}\n`);
  const cluster = await LocalCluster.start({ nodes: o.nodes, nodeFlags: o.nodeFlags });
  const points: MatrixPoint[] = [];
  try {
    const target = await quorumKvTarget({ endpoints: cluster.endpoints, connectionsPerEndpoint: Math.max(64, ...o.dimensions.concurrency), readConsistency: 'linearizable', deadlineMs: 10_000 });
    try {
      const measured = new Map<string, PointResult>();
      let loaded = '';
      const rng = createPrng(o.seed);
      for (const { dimension, setting } of plan) {
        const id = JSON.stringify(setting);
        const known = measured.get(id);
        if (known !== undefined) {
          points.push({ dimension, setting, result: known });
          continue;
        }
        const keys = makeKeys(setting.keys, setting.keyBytes);
        const value = makeValue(setting.valueBytes, rng);
        const loadId = `${setting.keys}/${setting.keyBytes}/${setting.valueBytes}`;
        if (setting.readFraction > 0 && loaded !== loadId) {
          await preload(target, keys, value, 64, o.progress);
          loaded = loadId;
        }
        const spec: WorkloadSpec = { name: `${Math.round(setting.readFraction * 100)}% gets ${setting.distribution}`, readFraction: setting.readFraction, distribution: setting.distribution };
        // The first point also warms a fresh cluster up (JIT, connections): a longer warm-up.
        const warmupMs = measured.size === 0 ? Math.max(o.warmupMs, 2000) : o.warmupMs;
        const result = await runPoint({ target, workload: spec, keys, value, concurrency: setting.concurrency, durationMs: o.durationMs, opsTotal: null, warmupMs, serverPids: cluster.pids, metricsUrls: cluster.endpoints, seed: o.seed, progress: o.progress, label: `${dimension}=${String(setting[dimension])}` });
        measured.set(id, result);
        points.push({ dimension, setting, result });
        const a = allOf(result);
        print(`${dimension.padEnd(13)} ${String(setting[dimension]).padStart(8)}  ${result.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${a.p50Ms.toFixed(2)} ms  p99 ${a.p99Ms.toFixed(2)} ms  errors ${result.errors}\n`);
      }
    } finally {
      await target.close();
    }
  } finally {
    await cluster.destroy();
  }

  const charts: ReportChart[] = [];
  for (const d of dims) {
    const ps = points.filter((p) => p.dimension === d);
    if (d === 'distribution' || d === 'readFraction') {
      const categories = ps.map((p) => (d === 'readFraction' ? `${Math.round(p.setting.readFraction * 100)}% gets` : p.setting.distribution));
      charts.push({ name: `matrix-${d}-throughput`, svg: barChart({ title: `Throughput by ${dimensionLabels[d]}`, yLabel: 'operations / s', categories, series: [{ name: 'ops/s', values: ps.map((p) => p.result.opsPerSec) }] }) });
      charts.push({ name: `matrix-${d}-latency`, svg: barChart({ title: `Latency by ${dimensionLabels[d]}`, yLabel: 'latency (ms)', categories, series: [{ name: 'p50', values: ps.map((p) => allOf(p.result).p50Ms), color: '#2ca02c' }, { name: 'p99', values: ps.map((p) => allOf(p.result).p99Ms), color: '#ff7f0e' }] }) });
    } else {
      const x = (p: MatrixPoint): number => p.setting[d] as number;
      charts.push({ name: `matrix-${d}-throughput`, svg: lineChart({ title: `Throughput vs ${dimensionLabels[d]}`, xLabel: dimensionLabels[d], yLabel: 'operations / s', series: [{ name: 'ops/s', points: ps.map((p) => [x(p), p.result.opsPerSec] as const) }], xLog: true }) });
      charts.push({
        name: `matrix-${d}-latency`,
        svg: lineChart({ title: `Latency vs ${dimensionLabels[d]}`, xLabel: dimensionLabels[d], yLabel: 'latency (ms)', xLog: true, series: [{ name: 'p50', points: ps.map((p) => [x(p), allOf(p.result).p50Ms] as const), color: '#2ca02c' }, { name: 'p99', points: ps.map((p) => [x(p), allOf(p.result).p99Ms] as const), color: '#ff7f0e' }] }),
      });
    }
  }
  const tables: ReportTable[] = [
    {
      title: 'One factor at a time',
      header: ['dimension', 'value', 'ops/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'client CPU', 'server CPU'],
      rows: points.map((p) => {
        const a = allOf(p.result);
        return [dimensionLabels[p.dimension], String(p.setting[p.dimension]), p.result.opsPerSec.toFixed(0), a.p50Ms.toFixed(2), a.p95Ms.toFixed(2), a.p99Ms.toFixed(2), String(p.result.errors), `${(p.result.clientCpuCores * 100).toFixed(0)}%`, p.result.serverCpuCores?.toFixed(2) ?? '?'];
      }),
      note: `Baseline: ${JSON.stringify(matrixBaseline)}; each row changes one factor.`,
    },
    { title: 'Every figure', header: htmlHeader, rows: htmlRows(points.map((p) => p.result)) },
  ];
  const { print: _print, ...config } = o;
  const { report, files } = await finishReport({
    kind: 'experiment matrix',
    title: 'Parameter matrix: sizes, clients, store size, mixes, key distributions',
    command: o.command,
    config: { ...config, baseline: matrixBaseline },
    startedAt,
    results: { points },
    csv: { header: [...csvHeader, 'dimension'], rows: points.flatMap((p) => csvRows([p.result], () => [p.dimension])) },
    tables,
    charts,
    notes: [],
  }, o.outDir);
  if (files !== null) print(`report: ${files.html}\n`);
  return { points, report, files };
}
