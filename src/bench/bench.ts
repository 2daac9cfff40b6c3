/**
 * `quorumkv bench`: one or more workloads at one or more client counts, against a cluster
 * given by its endpoints or one started for the run, optionally the same workload against
 * etcd (`--compare etcd`), with a table on screen and a report directory (results.csv,
 * results.json, report.html, SVG charts).
 *
 * Systems are measured one after the other, never at once: on a small machine an idle
 * cluster still costs CPU (heartbeats, timers), so only the system being measured runs.
 *
 * Must never: measure warm-up or preload operations, or start anything that `stop` does
 * not end (clusters are destroyed in `finally`).
 */

import { lineChart, palette } from './charts.js';
import type { Series } from './charts.js';
import { LocalCluster, nodeStatus } from './cluster.js';
import { EtcdCluster, etcdTarget, findEtcd } from './etcd.js';
import { finishReport } from './report.js';
import type { CsvCell, Report, ReportBody, ReportChart, ReportTable } from './report.js';
import { preload, runPoint } from './runner.js';
import type { PointResult } from './runner.js';
import type { OpSummary } from './stats.js';
import { quorumKvTarget } from './target.js';
import { plainTarget } from './plain-target.js';
import type { PlainTo } from './plain-target.js';
import type { BenchTarget } from './target.js';
import { makeKeys, makeValue, workload } from './workload.js';
import type { WorkloadName } from './workload.js';
import { createPrng } from '../stdx/prng.js';
import type { Consistency } from '../client/index.js';
import { access } from 'node:fs/promises';

export interface BenchOptions {
  readonly workloads: readonly WorkloadName[];
  readonly concurrency: readonly number[];
  readonly durationMs: number;
  readonly opsTotal: number | null;
  readonly warmupMs: number;
  readonly keys: number;
  readonly keyBytes: number;
  readonly valueBytes: number;
  readonly readConsistency: Consistency;
  /** Where the client sends linearizable reads (ConnectOptions.linearizableReadsFrom). */
  readonly linearizableReadsFrom?: 'leader' | 'any';
  /** ConnectOptions.batching (default true). */
  readonly batching?: boolean;
  /** Plain HTTP, no client library, to this node (plain-target.ts); null: the client library. */
  readonly plain?: PlainTo | null;
  /** The client library's transport (default http). */
  readonly transport?: 'http' | 'grpc';
  /** A running cluster; null: start one with `nodes` and `nodeFlags`. */
  readonly endpoints: readonly string[] | null;
  readonly nodes: number;
  readonly nodeFlags: readonly string[];
  readonly compare: readonly 'etcd'[];
  readonly etcdEndpoints: readonly string[] | null;
  readonly etcdBin: string | null;
  readonly installEtcd: boolean;
  readonly preload: boolean;
  /** Report directory; null: no files. */
  readonly outDir: string | null;
  readonly seed: number;
  readonly deadlineMs: number;
  readonly progress: boolean;
  /** Write a V8 CPU profile of every node the bench starts into this directory (`node --cpu-prof`). */
  readonly profileDir: string | null;
  /** The command line, recorded in the report. */
  readonly command: string;
  /** Where lines go (stdout by default). */
  readonly print?: (text: string) => void;
}

export interface BenchRun {
  readonly points: readonly PointResult[];
  readonly report: Report;
  readonly files: { json: string; csv: string; html: string; svgs: string[] } | null;
}

/** Header and rows of the on-screen table. */
export const tableHeader = 'system    workload     clients     ops/s  errors  op        mean    p50     p95     p99   p99.9     max ms  client CPU  server CPU';

export function tableRows(p: PointResult): string[] {
  const rows: OpSummary[] = p.byOp.length === 2 ? p.byOp.slice(0, 1) : [...p.byOp];
  return rows.map((s) => {
    const f = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(2)).padStart(7);
    return (
      `${p.system.padEnd(9)} ${p.workload.padEnd(12)} ${String(p.concurrency).padStart(7)}  ${s.opsPerSec.toFixed(0).padStart(8)}  ${String(s.errors).padStart(6)}  ${s.op.padEnd(5)}  ` +
      `${f(s.meanMs)} ${f(s.p50Ms)} ${f(s.p95Ms)} ${f(s.p99Ms)} ${f(s.p999Ms)} ${f(s.maxMs)}  ` +
      `${`${(p.clientCpuCores * 100).toFixed(0)}% core`.padStart(10)}  ${p.serverCpuCores === null ? '         ?' : `${p.serverCpuCores.toFixed(2)} cores`.padStart(10)}`
    );
  });
}

/** Server pids of a cluster given by endpoints: from /status, when the node runs here. */
async function localPids(endpoints: readonly string[]): Promise<number[]> {
  const pids: number[] = [];
  for (const e of endpoints) {
    try {
      const url = new URL(e.includes('://') ? e : `http://${e}`);
      if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) continue;
      const s = await nodeStatus(url.origin, 2000);
      await access(`/proc/${s.pid}/stat`);
      pids.push(s.pid);
    } catch {
      // not local or not reachable: its CPU is not measured
    }
  }
  return pids;
}

interface SystemRun {
  readonly target: BenchTarget;
  readonly pids: readonly number[];
  /** Nodes whose /metrics give fsync figures (quorumkv's HTTP URLs; none for etcd). */
  readonly metricsUrls: readonly string[];
  readonly describe: Record<string, unknown>;
  stop(): Promise<void>;
}

/** The nodes' gRPC addresses, as their /status names them. */
async function grpcEndpoints(http: readonly string[]): Promise<string[]> {
  // GET /status names the node's own gRPC address beside the document's fields.
  const addresses = await Promise.all(http.map(async (url) => ((await nodeStatus(url, 5_000)) as { grpc?: unknown }).grpc));
  const found = addresses.filter((a): a is string => typeof a === 'string' && a !== '');
  if (found.length === 0) throw new Error('no node serves gRPC (--listen-grpc off?)');
  return found;
}

async function openQuorumKv(o: BenchOptions, print: (t: string) => void): Promise<SystemRun> {
  const connect = async (endpoints: readonly string[]): Promise<BenchTarget> =>
    o.plain !== undefined && o.plain !== null
      ? plainTarget({ endpoints, to: o.plain, connectionsPerEndpoint: Math.max(64, ...o.concurrency), deadlineMs: o.deadlineMs })
      : quorumKvTarget({
      endpoints: o.transport === 'grpc' ? await grpcEndpoints(endpoints) : endpoints,
      transport: o.transport ?? 'http',
      connectionsPerEndpoint: Math.max(64, ...o.concurrency),
      readConsistency: o.readConsistency,
      linearizableReadsFrom: o.linearizableReadsFrom ?? 'leader',
      batching: o.batching ?? true,
      deadlineMs: o.deadlineMs,
    });
  if (o.endpoints !== null) {
    const target = await connect(o.endpoints);
    const pids = await localPids(o.endpoints);
    return { target, pids, metricsUrls: o.endpoints, describe: { endpoints: o.endpoints, mode: await modeOf(o.endpoints) }, stop: () => target.close() };
  }
  print(`starting a ${o.nodes}-node quorumkv cluster on 127.0.0.1${o.nodeFlags.length > 0 ? ` (${o.nodeFlags.join(' ')})` : ''}…\n`);
  const execArgv = o.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`];
  const cluster = await LocalCluster.start({ nodes: o.nodes, nodeFlags: o.nodeFlags, execArgv });
  try {
    const target = await connect(cluster.endpoints);
    return {
      target,
      pids: cluster.pids,
      metricsUrls: cluster.endpoints,
      describe: { nodes: o.nodes, nodeFlags: o.nodeFlags, mode: await modeOf(cluster.endpoints) },
      stop: async () => {
        await target.close();
        await cluster.destroy();
      },
    };
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
}

async function modeOf(endpoints: readonly string[]): Promise<unknown> {
  for (const e of endpoints) {
    try {
      const s = await nodeStatus(e.includes('://') ? e : `http://${e}`, 2000);
      return { writeQuorum: s.mode.writeQuorum, topology: s.mode.topology, members: s.peers.length + 1 };
    } catch {
      // try the next
    }
  }
  return null;
}

async function openEtcd(o: BenchOptions, print: (t: string) => void): Promise<SystemRun> {
  if (o.etcdEndpoints !== null) {
    const target = await etcdTarget(o.etcdEndpoints);
    return { target, pids: [], metricsUrls: [], describe: { endpoints: o.etcdEndpoints }, stop: () => target.close() };
  }
  const binary = await findEtcd(o.etcdBin, o.installEtcd, (l) => print(`${l}\n`));
  print('starting a 3-member etcd cluster on 127.0.0.1…\n');
  const cluster = await EtcdCluster.start(binary, 3);
  try {
    const target = await etcdTarget(cluster.endpoints);
    return {
      target,
      pids: cluster.pids,
      metricsUrls: [],
      describe: { members: 3, binary },
      stop: async () => {
        await target.close();
        await cluster.stop();
      },
    };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

async function runSystem(o: BenchOptions, sys: SystemRun, print: (t: string) => void, printRow: (t: string) => void, points: PointResult[]): Promise<void> {
  const rng = createPrng(o.seed);
  const keys = makeKeys(o.keys, o.keyBytes);
  const value = makeValue(o.valueBytes, rng);
  const specs = o.workloads.map(workload);
  if (o.preload && specs.some((w) => w.readFraction > 0 || w.txn === true)) {
    const t0 = performance.now();
    await preload(sys.target, keys, value, 64, o.progress);
    print(`${sys.target.system}: preloaded ${keys.length} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  for (const spec of specs) {
    for (const c of o.concurrency) {
      const p = await runPoint({
        target: sys.target,
        workload: spec,
        keys,
        value,
        concurrency: c,
        durationMs: o.durationMs,
        opsTotal: o.opsTotal,
        warmupMs: o.warmupMs,
        serverPids: sys.pids,
        metricsUrls: sys.metricsUrls,
        seed: o.seed + c,
        progress: o.progress,
        label: `${sys.target.system} ${spec.name} c=${c}`,
      });
      points.push(p);
      for (const row of tableRows(p)) printRow(`${row}\n`);
    }
  }
}

/** Runs the whole benchmark: every system, workload and client count; writes the report. */
export async function runBench(o: BenchOptions): Promise<BenchRun> {
  const print = o.print ?? ((t: string) => void process.stdout.write(t));
  const startedAt = new Date().toISOString();
  const points: PointResult[] = [];
  const systems: Record<string, unknown> = {};
  const plan = `${o.workloads.join(', ')} at ${o.concurrency.join(', ')} clients, ${o.opsTotal === null ? `${o.durationMs / 1000} s` : `${o.opsTotal} ops`} per point after ${o.warmupMs / 1000} s warm-up; ${o.keys} keys of ${o.keyBytes} B, ${o.valueBytes} B values, ${o.readConsistency} reads${o.linearizableReadsFrom === 'any' ? ' from any node' : ''}${o.batching === false ? ', one request per operation' : ''}${o.plain !== undefined && o.plain !== null ? `, plain HTTP to ${o.plain === 'any' ? 'every node' : `the ${o.plain}`}` : ''}${o.transport === 'grpc' ? ', over gRPC' : ''}`;
  print(`quorumkv bench: ${plan}\n`);
  let headerPrinted = false;
  const printRow = (t: string): void => {
    if (!headerPrinted) print(`${tableHeader}\n`);
    headerPrinted = true;
    print(t);
  };
  for (const system of ['quorumkv', ...o.compare]) {
    const sys = system === 'etcd' ? await openEtcd(o, print) : await openQuorumKv(o, print);
    try {
      systems[system] = sys.describe;
      await runSystem(o, sys, print, printRow, points);
    } finally {
      await sys.stop();
    }
  }
  const comparison = compare(points);
  if (comparison.length > 0) {
    print('\nquorumkv / etcd (same workload, same client):\n');
    print('workload     clients  quorumkv ops/s  etcd ops/s  ratio   quorumkv p99 ms  etcd p99 ms   quorumkv p50 ms  etcd p50 ms\n');
    for (const c of comparison) {
      print(
        `${c.workload.padEnd(12)} ${String(c.concurrency).padStart(7)}  ${c.quorumkvOpsPerSec.toFixed(0).padStart(14)}  ${c.etcdOpsPerSec.toFixed(0).padStart(10)}  ${c.ratio.toFixed(2).padStart(5)}×  ` +
          `${c.quorumkvP99Ms.toFixed(2).padStart(15)}  ${c.etcdP99Ms.toFixed(2).padStart(11)}   ${c.quorumkvP50Ms.toFixed(2).padStart(15)}  ${c.etcdP50Ms.toFixed(2).padStart(11)}\n`,
      );
    }
  }
  const { report, files } = await finishReport(reportBody(o, points, comparison, systems, startedAt), o.outDir);
  if (files !== null) print(`\nreport: ${files.html}\n        ${files.json}\n        ${files.csv}\n`);
  return { points, report, files };
}

export interface Comparison {
  readonly workload: string;
  readonly concurrency: number;
  readonly quorumkvOpsPerSec: number;
  readonly etcdOpsPerSec: number;
  /** quorumkv / etcd throughput. */
  readonly ratio: number;
  readonly quorumkvP50Ms: number;
  readonly etcdP50Ms: number;
  readonly quorumkvP99Ms: number;
  readonly etcdP99Ms: number;
}

function allOf(p: PointResult): OpSummary {
  return p.byOp[p.byOp.length - 1] as OpSummary;
}

export function compare(points: readonly PointResult[]): Comparison[] {
  const out: Comparison[] = [];
  for (const q of points.filter((p) => p.system === 'quorumkv')) {
    const e = points.find((p) => p.system === 'etcd' && p.workload === q.workload && p.concurrency === q.concurrency);
    if (e === undefined) continue;
    out.push({
      workload: q.workload,
      concurrency: q.concurrency,
      quorumkvOpsPerSec: q.opsPerSec,
      etcdOpsPerSec: e.opsPerSec,
      ratio: e.opsPerSec > 0 ? q.opsPerSec / e.opsPerSec : 0,
      quorumkvP50Ms: allOf(q).p50Ms,
      etcdP50Ms: allOf(e).p50Ms,
      quorumkvP99Ms: allOf(q).p99Ms,
      etcdP99Ms: allOf(e).p99Ms,
    });
  }
  return out;
}

export const csvHeader = ['system', 'workload', 'read_fraction', 'distribution', 'concurrency', 'keys', 'key_bytes', 'value_bytes', 'op', 'count', 'errors', 'misses', 'ops_per_s', 'mean_ms', 'p50_ms', 'p95_ms', 'p99_ms', 'p999_ms', 'max_ms', 'elapsed_ms', 'client_cpu_cores', 'server_cpu_cores', 'fsyncs_per_s', 'entries_per_fsync', 'fsync_mean_ms'];

export function csvRows(points: readonly PointResult[], extra: (p: PointResult) => CsvCell[] = () => []): CsvCell[][] {
  return points.flatMap((p) =>
    p.byOp.map((s) => [
      p.system, p.workload, p.readFraction, p.distribution, p.concurrency, p.keyCount, p.keyBytes, p.valueBytes,
      s.op, s.count, s.errors, s.misses, s.opsPerSec, s.meanMs, s.p50Ms, s.p95Ms, s.p99Ms, s.p999Ms, s.maxMs,
      p.elapsedMs, p.clientCpuCores, p.serverCpuCores, p.persist?.fsyncsPerSec ?? null, p.persist?.entriesPerFsync ?? null, p.persist?.meanMs ?? null, ...extra(p),
    ]),
  );
}

/** Rows of the per-point table in report.html. */
export function htmlRows(points: readonly PointResult[]): string[][] {
  return points.flatMap((p) =>
    p.byOp
      .filter((s) => p.byOp.length === 2 ? s.op !== 'all' : true)
      .map((s) => [
        p.system, p.workload, String(p.concurrency), s.op, s.opsPerSec.toFixed(0), String(s.errors),
        s.meanMs.toFixed(2), s.p50Ms.toFixed(2), s.p95Ms.toFixed(2), s.p99Ms.toFixed(2), s.p999Ms.toFixed(2), s.maxMs.toFixed(2),
        `${(p.clientCpuCores * 100).toFixed(0)}%`, p.serverCpuCores === null ? '?' : p.serverCpuCores.toFixed(2),
        p.persist === null ? '' : `${p.persist.fsyncsPerSec.toFixed(0)} × ${p.persist.entriesPerFsync.toFixed(1)} (${p.persist.meanMs.toFixed(1)} ms)`,
      ]),
  );
}

export const htmlHeader = ['system', 'workload', 'clients', 'op', 'ops/s', 'errors', 'mean ms', 'p50 ms', 'p95 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'client CPU (of a core)', 'server CPU (cores)', 'fsyncs/s × entries each (mean wait)'];

const percentileColors: Record<string, string> = { p50: '#2ca02c', p95: '#1f77b4', p99: '#ff7f0e', 'p99.9': '#d62728' };

/** Charts of a concurrency sweep: throughput per workload and system, latency per op. */
export function sweepCharts(points: readonly PointResult[]): ReportChart[] {
  const charts: ReportChart[] = [];
  const systems = [...new Set(points.map((p) => p.system))];
  const workloads = [...new Set(points.map((p) => p.workload))];
  const xLog = (() => {
    const cs = points.map((p) => p.concurrency);
    return Math.min(...cs) > 0 && Math.max(...cs) / Math.min(...cs) >= 8;
  })();
  const tput: Series[] = [];
  workloads.forEach((w, wi) => {
    for (const s of systems) {
      const pts = points.filter((p) => p.system === s && p.workload === w).map((p) => [p.concurrency, p.opsPerSec] as const);
      tput.push({ name: `${s} ${w}`, points: pts, dashed: s !== 'quorumkv', color: palette[wi % palette.length] as string });
    }
  });
  charts.push({ name: 'throughput', svg: lineChart({ title: 'Throughput vs concurrency', xLabel: 'concurrent clients', yLabel: 'operations / s', series: tput, xLog }) });
  for (const w of workloads) {
    for (const op of ['write', 'read'] as const) {
      const series: Series[] = [];
      for (const s of systems) {
        const pts = points.filter((p) => p.system === s && p.workload === w);
        if (!pts.some((p) => p.byOp.some((b) => b.op === op && b.count > 0))) continue;
        const get = (p: PointResult, f: (b: OpSummary) => number): number | null => {
          const b = p.byOp.find((x) => x.op === op);
          return b === undefined || b.count === 0 ? null : f(b);
        };
        const pcts: [string, (b: OpSummary) => number][] = [['p50', (b) => b.p50Ms], ['p95', (b) => b.p95Ms], ['p99', (b) => b.p99Ms], ['p99.9', (b) => b.p999Ms]];
        for (const [name, f] of pcts) {
          series.push({ name: `${s} ${name}`, points: pts.map((p) => [p.concurrency, get(p, f)] as const), dashed: s !== 'quorumkv', color: percentileColors[name] as string });
        }
      }
      if (series.length === 0) continue;
      charts.push({ name: `latency-${w}-${op}`, svg: lineChart({ title: `${w}: ${op} latency percentiles vs concurrency`, xLabel: 'concurrent clients', yLabel: 'latency (ms)', series, xLog }) });
    }
  }
  return charts;
}

function reportBody(o: BenchOptions, points: readonly PointResult[], comparison: readonly Comparison[], systems: Record<string, unknown>, startedAt: string): ReportBody {
  const tables: ReportTable[] = [{ title: 'Results', header: htmlHeader, rows: htmlRows(points), note: 'Closed-loop clients through the quorumkv client library (HTTP, undici keep-alive); latencies of successful operations; errors counted apart. CPU: time used during the measured window / its length.' }];
  if (comparison.length > 0) {
    tables.push({
      title: 'quorumkv vs etcd',
      header: ['workload', 'clients', 'quorumkv ops/s', 'etcd ops/s', 'ratio', 'quorumkv p50 ms', 'etcd p50 ms', 'quorumkv p99 ms', 'etcd p99 ms'],
      rows: comparison.map((c) => [c.workload, String(c.concurrency), c.quorumkvOpsPerSec.toFixed(0), c.etcdOpsPerSec.toFixed(0), `${c.ratio.toFixed(2)}×`, c.quorumkvP50Ms.toFixed(2), c.etcdP50Ms.toFixed(2), c.quorumkvP99Ms.toFixed(2), c.etcdP99Ms.toFixed(2)]),
    });
  }
  const { print: _print, ...config } = o;
  return {
    kind: 'bench',
    title: `quorumkv bench: ${o.workloads.join(', ')}`,
    command: o.command,
    config: { ...config, systems },
    startedAt,
    results: { points, comparison },
    csv: { header: csvHeader, rows: csvRows(points) },
    tables,
    charts: sweepCharts(points),
    notes: [],
  };
}
