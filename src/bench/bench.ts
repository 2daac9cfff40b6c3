/**
 * `quorumkv bench`: one or more workloads at one or more client counts, against a cluster
 * given by its endpoints or one started for the run, optionally the same workload against
 * etcd or redis (`--compare etcd,redis`, systems.ts), with a table on screen and a report
 * directory (results.csv, results.json, report.html, SVG charts). After a `fill` point,
 * each server's disk and anonymous memory are measured (footprint.ts).
 *
 * Systems are measured one after the other, never at once: on a small machine an idle
 * cluster still costs CPU (heartbeats, timers), so only the system being measured runs.
 *
 * Must never: measure warm-up or preload operations, or start anything that `stop` does
 * not end (clusters are destroyed in `finally`).
 */

import { lineChart, palette } from './charts.js';
import type { Series } from './charts.js';
import { formatBytes, measureFootprint } from './footprint.js';
import type { NodeFootprint } from './footprint.js';
import { finishReport } from './report.js';
import type { CsvCell, Report, ReportBody, ReportChart, ReportTable } from './report.js';
import { preload, runPoint } from './runner.js';
import type { PointResult } from './runner.js';
import type { OpSummary } from './stats.js';
import { openSystem } from './systems.js';
import type { ComparedSystem, SystemOptions, SystemRun } from './systems.js';
import { makeKeys, makeValue, workload } from './workload.js';
import type { WorkloadName } from './workload.js';
import { median } from '../stdx/median.js';
import { createPrng } from '../stdx/prng.js';

export interface BenchOptions extends SystemOptions {
  readonly workloads: readonly WorkloadName[];
  readonly durationMs: number;
  readonly opsTotal: number | null;
  readonly warmupMs: number;
  /**
   * Warm-up of each system's first timed point, when longer than `warmupMs`: a fresh node
   * process spends its first seconds compiling its hot code (measured: 7–11 % of the
   * machine's CPU on JIT threads 8–13 s after a cluster starts, 1 % after 35 s), so a
   * figure taken right after the start is not the one a running store gives.
   */
  readonly firstWarmupMs: number;
  readonly keys: number;
  readonly keyBytes: number;
  readonly valueBytes: number;
  readonly compare: readonly ComparedSystem[];
  /**
   * Times every system is measured, alternating (quorumkv, then each compared system, then
   * quorumkv again, …), each from a fresh start (a cluster given by its endpoints is reused).
   * One run moves by ±20 % on a small VM; with several, the comparison gives each system's
   * median and the median and range of the rounds' ratios. Default 1.
   */
  readonly rounds?: number;
  readonly preload: boolean;
  /** Report directory; null: no files. */
  readonly outDir: string | null;
  readonly seed: number;
  readonly progress: boolean;
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

/** Values of at least this many bytes get an MB/s column on screen (always in CSV and JSON). */
export const mbColumnFromBytes = 1024;

/** Header and rows of the on-screen table; `mb` adds the MB/s column. */
export function tableHeader(mb = false): string {
  return `system    workload     clients     ops/s${mb ? '      MB/s' : ''}  errors  op        mean    p50     p95     p99   p99.9     max ms  client CPU  server CPU`;
}

export function tableRows(p: PointResult, mb = false): string[] {
  const rows: OpSummary[] = p.byOp.length === 2 ? p.byOp.slice(0, 1) : [...p.byOp];
  return rows.map((s) => {
    const f = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(2)).padStart(7);
    return (
      `${p.system.padEnd(9)} ${p.workload.padEnd(12)} ${String(p.concurrency).padStart(7)}  ${s.opsPerSec.toFixed(0).padStart(8)}${mb ? `  ${s.mbPerSec.toFixed(1).padStart(8)}` : ''}  ${String(s.errors).padStart(6)}  ${s.op.padEnd(5)}  ` +
      `${f(s.meanMs)} ${f(s.p50Ms)} ${f(s.p95Ms)} ${f(s.p99Ms)} ${f(s.p999Ms)} ${f(s.maxMs)}  ` +
      `${`${(p.clientCpuCores * 100).toFixed(0)}% core`.padStart(10)}  ${p.serverCpuCores === null ? '         ?' : `${p.serverCpuCores.toFixed(2)} cores`.padStart(10)}`
    );
  });
}

/**
 * The line under a point whose writes the nodes timed: how much of a write's mean latency the
 * cluster itself took (qkv_write_seconds), the rest being outside it (HTTP or gRPC, the
 * network, the client, waiting for a core). Null when the nodes did not time any.
 */
export function insideRow(p: PointResult): string | null {
  const write = p.byOp.find((s) => s.op === 'write');
  const insideMs = p.persist?.writeMeanMs;
  if (write === undefined || write.count === 0 || insideMs === null || insideMs === undefined) return null;
  return `  ${p.system}: a write spent ${insideMs.toFixed(2)} ms inside the cluster (from the leader's Raft driver taking it to its result), of ${write.meanMs.toFixed(2)} ms mean as the client saw it`;
}

/** The line under a point whose nodes said how busy their event loops were: the busiest one's share of the window. */
export function loopRow(p: PointResult): string | null {
  const share = p.busiestLoopShare;
  if (share === null || share === undefined) return null;
  return `  ${p.system}: the busiest node's event loop was running ${(share * 100).toFixed(0)} % of the time (near 100 %, requests queue for it)`;
}

/** The lines under a fill point: each server's disk and anonymous memory. */
export function footprintRows(system: string, footprint: readonly NodeFootprint[]): string[] {
  if (footprint.length === 0) return [`  ${system}: no server process on this machine: disk and memory not measured`];
  return footprint.map((f) => `  ${system} ${f.name}: data directory ${formatBytes(f.diskBytes)} on disk, anonymous RSS ${formatBytes(f.rssAnonBytes)}`);
}

async function runSystem(o: BenchOptions, sys: SystemRun, round: number | null, print: (t: string) => void, printRow: (t: string) => void, points: PointResult[]): Promise<void> {
  const rng = createPrng(o.seed);
  const keys = makeKeys(o.keys, o.keyBytes);
  const value = makeValue(o.valueBytes, rng);
  const specs = o.workloads.map(workload);
  const serverPids = sys.servers.flatMap((s) => (s.pid === null ? [] : [s.pid]));
  print(`${sys.target.system}: ${sys.target.path}\n`);
  if (o.preload && specs.some((w) => w.readFraction > 0 || w.txn === true)) {
    const t0 = performance.now();
    await preload(sys.target, keys, value, 64, o.progress);
    print(`${sys.target.system}: preloaded ${keys.length} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  const warmups = pointWarmupsMs(specs, o.concurrency.length, o.warmupMs, o.firstWarmupMs).values();
  for (const spec of specs) {
    for (const c of o.concurrency) {
      const warmupMs = warmups.next().value as number;
      const measured = await runPoint({
        target: sys.target,
        workload: spec,
        keys,
        value,
        concurrency: c,
        durationMs: o.durationMs,
        opsTotal: o.opsTotal,
        warmupMs,
        serverPids,
        metricsUrls: sys.metricsUrls,
        seed: o.seed + c,
        progress: o.progress,
        label: `${sys.target.system} ${spec.name} c=${c}`,
      });
      const footprint = spec.fill === true ? await measureFootprint(sys.servers) : null;
      const p: PointResult = { ...measured, ...(footprint === null ? {} : { footprint }), ...(round === null ? {} : { round }) };
      points.push(p);
      for (const row of tableRows(p, o.valueBytes >= mbColumnFromBytes)) printRow(`${row}\n`);
      if (footprint !== null) for (const row of footprintRows(p.system, footprint)) print(`${row}\n`);
      for (const line of [insideRow(p), loopRow(p)]) if (line !== null) print(`${line}\n`);
    }
  }
}

/**
 * The warm-up of each point of one system, in run order (every workload at every client
 * count): `firstWarmupMs` (if longer) for the first timed one, `warmupMs` for the others;
 * none for a fill, which times every operation.
 */
export function pointWarmupsMs(specs: readonly { readonly fill?: boolean }[], concurrencyCount: number, warmupMs: number, firstWarmupMs: number): number[] {
  const out: number[] = [];
  let first = true;
  for (const spec of specs) {
    for (let i = 0; i < concurrencyCount; i++) {
      if (spec.fill === true) {
        out.push(0);
        continue;
      }
      out.push(first ? Math.max(warmupMs, firstWarmupMs) : warmupMs);
      first = false;
    }
  }
  return out;
}

/** Runs the whole benchmark: every system, workload and client count; writes the report. */
export async function runBench(o: BenchOptions): Promise<BenchRun> {
  const print = o.print ?? ((t: string) => void process.stdout.write(t));
  const startedAt = new Date().toISOString();
  const points: PointResult[] = [];
  const systems: Record<string, unknown> = {};
  const timed = o.workloads.some((w) => w !== 'fill');
  const perPoint = `${timed ? `${o.opsTotal === null ? `${o.durationMs / 1000} s` : `${o.opsTotal} ops`} per point after ${o.warmupMs / 1000} s warm-up${o.firstWarmupMs > o.warmupMs ? ` (${o.firstWarmupMs / 1000} s before each system's first)` : ''}` : ''}${o.workloads.includes('fill') ? `${timed ? ' (fill: ' : ''}every key written once, no warm-up${timed ? ')' : ''}` : ''}`;
  const plan = `${o.workloads.join(', ')} at ${o.concurrency.join(', ')} clients, ${perPoint}; ${o.keys} keys of ${o.keyBytes} B, ${o.valueBytes} B values, ${o.readConsistency} reads${o.linearizableReadsFrom === 'any' ? ' from any node' : ''}${o.batching === false ? ', one request per operation' : ''}${o.plain === true ? ', plain requests (no client library)' : ''}${o.to !== undefined && o.to !== null ? `, to ${o.to === 'any' ? 'every node' : `the ${o.to}`}` : ''}${o.transport === 'grpc' ? ', over gRPC' : ''}`;
  print(`quorumkv bench: ${plan}\n`);
  let headerPrinted = false;
  const printRow = (t: string): void => {
    if (!headerPrinted) print(`${tableHeader(o.valueBytes >= mbColumnFromBytes)}\n`);
    headerPrinted = true;
    print(t);
  };
  const rounds = o.rounds ?? 1;
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new RangeError(`rounds must be >= 1, got ${rounds}`);
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) print(`round ${round} of ${rounds}\n`);
    for (const system of ['quorumkv', ...o.compare] as const) {
      const sys = await openSystem(system, o, print);
      try {
        systems[system] = sys.describe;
        await runSystem(o, sys, rounds > 1 ? round : null, print, printRow, points);
      } finally {
        await sys.stop();
      }
    }
  }
  const comparison = compare(points);
  for (const other of o.compare) {
    const rows = comparison.filter((c) => c.system === other);
    if (rows.length === 0) continue;
    const medians = rounds > 1 ? `, medians of ${rounds} rounds; ratio: the rounds' median (range)` : '';
    print(`\nquorumkv / ${other} (same workload, same client loop${medians}):\n`);
    const cpuHeader = 'server CPU µs/op: quorumkv';
    print(`workload     clients  quorumkv ops/s  ${`${other} ops/s`.padStart(11)}  ratio   quorumkv p99 ms  ${`${other} p99 ms`.padStart(12)}   quorumkv p50 ms  ${`${other} p50 ms`.padStart(12)}   ${cpuHeader}  ${other}\n`);
    for (const c of rows) {
      print(
        `${c.workload.padEnd(12)} ${String(c.concurrency).padStart(7)}  ${c.quorumkvOpsPerSec.toFixed(0).padStart(14)}  ${c.otherOpsPerSec.toFixed(0).padStart(11)}  ${c.ratio.toFixed(2).padStart(5)}×  ` +
          `${c.quorumkvP99Ms.toFixed(2).padStart(15)}  ${c.otherP99Ms.toFixed(2).padStart(12)}   ${c.quorumkvP50Ms.toFixed(2).padStart(15)}  ${c.otherP50Ms.toFixed(2).padStart(12)}   ` +
          `${cpuPerOpText(c.quorumkvServerCpuUsPerOp).padStart(cpuHeader.length)}  ${cpuPerOpText(c.otherServerCpuUsPerOp).padStart(other.length)}${rounds > 1 ? `   (${ratioRange(c)})` : ''}\n`,
      );
    }
  }
  const { report, files } = await finishReport(reportBody(o, points, comparison, systems, startedAt), o.outDir);
  if (files !== null) print(`\nreport: ${files.html}\n        ${files.json}\n        ${files.csv}\n`);
  return { points, report, files };
}

export interface Comparison {
  /** The system quorumkv is compared with: `etcd` or `redis`. */
  readonly system: string;
  readonly workload: string;
  readonly concurrency: number;
  readonly quorumkvOpsPerSec: number;
  readonly otherOpsPerSec: number;
  /** quorumkv / other throughput: with several rounds, the median of each round's ratio. */
  readonly ratio: number;
  /** The lowest and highest round's ratio (both `ratio` with one round). */
  readonly ratioMin: number;
  readonly ratioMax: number;
  /** Rounds that measured both systems at this point. */
  readonly rounds: number;
  readonly quorumkvP50Ms: number;
  readonly otherP50Ms: number;
  readonly quorumkvP99Ms: number;
  readonly otherP99Ms: number;
  /**
   * The servers' CPU time per operation, µs (all of a system's server processes, the client
   * excluded; the rounds' median): what an operation costs the machine, which moves far less
   * between runs than throughput on a shared VM. Null when a system's servers were not
   * measured (ones the bench did not start).
   */
  readonly quorumkvServerCpuUsPerOp: number | null;
  readonly otherServerCpuUsPerOp: number | null;
}

function allOf(p: PointResult): OpSummary {
  return p.byOp[p.byOp.length - 1] as OpSummary;
}

function ratioRange(c: Comparison): string {
  return `${c.ratioMin.toFixed(2)}–${c.ratioMax.toFixed(2)}×`;
}

/** A point's server CPU per operation in µs; null when its servers were not measured or it did nothing. */
export function serverCpuUsPerOp(p: PointResult): number | null {
  return p.serverCpuCores === null || p.opsPerSec <= 0 ? null : (p.serverCpuCores / p.opsPerSec) * 1e6;
}

/** The median of the points' server CPU per operation, null when any point lacks it. */
function medianCpuPerOp(ps: readonly PointResult[]): number | null {
  const perOp = ps.map(serverCpuUsPerOp);
  return perOp.some((x) => x === null) ? null : median(perOp as number[]);
}

function cpuPerOpText(us: number | null): string {
  return us === null ? '?' : us.toFixed(0);
}

/**
 * quorumkv against every other system measured at the same workload and client count. With
 * several rounds, each system's figures are its medians, and the ratio is the median of the
 * ratios of the rounds (each round's systems ran one after the other, minutes apart at most).
 */
export function compare(points: readonly PointResult[]): Comparison[] {
  const out: Comparison[] = [];
  const done = new Set<string>();
  for (const e of points.filter((p) => p.system !== 'quorumkv')) {
    const key = `${e.system} ${e.workload} ${e.concurrency}`;
    if (done.has(key)) continue;
    done.add(key);
    const at = (system: string): PointResult[] => points.filter((p) => p.system === system && p.workload === e.workload && p.concurrency === e.concurrency);
    const qs = at('quorumkv');
    const others = at(e.system);
    const ratios = others.flatMap((o) => {
      const q = qs.find((p) => p.round === o.round);
      return q === undefined ? [] : [o.opsPerSec > 0 ? q.opsPerSec / o.opsPerSec : 0];
    });
    if (ratios.length === 0) continue;
    const mid = (ps: readonly PointResult[], f: (p: PointResult) => number): number => median(ps.map(f));
    out.push({
      system: e.system,
      workload: e.workload,
      concurrency: e.concurrency,
      quorumkvOpsPerSec: mid(qs, (p) => p.opsPerSec),
      otherOpsPerSec: mid(others, (p) => p.opsPerSec),
      ratio: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      rounds: ratios.length,
      quorumkvP50Ms: mid(qs, (p) => allOf(p).p50Ms),
      otherP50Ms: mid(others, (p) => allOf(p).p50Ms),
      quorumkvP99Ms: mid(qs, (p) => allOf(p).p99Ms),
      otherP99Ms: mid(others, (p) => allOf(p).p99Ms),
      quorumkvServerCpuUsPerOp: medianCpuPerOp(qs),
      otherServerCpuUsPerOp: medianCpuPerOp(others),
    });
  }
  return out;
}

export const csvHeader = ['system', 'workload', 'read_fraction', 'distribution', 'concurrency', 'keys', 'key_bytes', 'value_bytes', 'op', 'count', 'errors', 'misses', 'ops_per_s', 'mean_ms', 'p50_ms', 'p95_ms', 'p99_ms', 'p999_ms', 'max_ms', 'elapsed_ms', 'client_cpu_cores', 'server_cpu_cores', 'fsyncs_per_s', 'entries_per_fsync', 'fsync_mean_ms', 'node_write_mean_ms', 'busiest_loop_share', 'mb_per_s', 'path', 'disk_bytes', 'rss_anon_bytes', 'footprint_by_node', 'round'];

/** A sum over the nodes, null when any is unknown (a partial sum would read as the whole). */
function total(footprint: readonly NodeFootprint[] | null | undefined, f: (n: NodeFootprint) => number | null): number | null {
  if (footprint === null || footprint === undefined || footprint.length === 0) return null;
  const values = footprint.map(f);
  return values.every((v): v is number => v !== null) ? values.reduce((a, b) => a + b, 0) : null;
}

/** `n1 disk=123 rss_anon=456; n2 …` (bytes; `?` unknown), one CSV cell. */
function footprintCell(footprint: readonly NodeFootprint[] | null | undefined): string | null {
  if (footprint === null || footprint === undefined) return null;
  return footprint.map((n) => `${n.name} disk=${n.diskBytes ?? '?'} rss_anon=${n.rssAnonBytes ?? '?'}`).join('; ');
}

export function csvRows(points: readonly PointResult[], extra: (p: PointResult) => CsvCell[] = () => []): CsvCell[][] {
  return points.flatMap((p) =>
    p.byOp.map((s) => [
      p.system, p.workload, p.readFraction, p.distribution, p.concurrency, p.keyCount, p.keyBytes, p.valueBytes,
      s.op, s.count, s.errors, s.misses, s.opsPerSec, s.meanMs, s.p50Ms, s.p95Ms, s.p99Ms, s.p999Ms, s.maxMs,
      p.elapsedMs, p.clientCpuCores, p.serverCpuCores, p.persist?.fsyncsPerSec ?? null, p.persist?.entriesPerFsync ?? null, p.persist?.meanMs ?? null, p.persist?.writeMeanMs ?? null, p.busiestLoopShare ?? null,
      s.mbPerSec, p.path ?? null, total(p.footprint, (n) => n.diskBytes), total(p.footprint, (n) => n.rssAnonBytes), footprintCell(p.footprint), p.round ?? null, ...extra(p),
    ]),
  );
}

/** Rows of the per-point table in report.html. */
export function htmlRows(points: readonly PointResult[]): string[][] {
  return points.flatMap((p) =>
    p.byOp
      .filter((s) => p.byOp.length === 2 ? s.op !== 'all' : true)
      .map((s) => [
        p.system, p.workload, String(p.concurrency), s.op, s.opsPerSec.toFixed(0), s.mbPerSec.toFixed(2), String(s.errors),
        s.meanMs.toFixed(2), s.p50Ms.toFixed(2), s.p95Ms.toFixed(2), s.p99Ms.toFixed(2), s.p999Ms.toFixed(2), s.maxMs.toFixed(2),
        `${(p.clientCpuCores * 100).toFixed(0)}%`, p.serverCpuCores === null ? '?' : p.serverCpuCores.toFixed(2),
        p.persist === null ? '' : `${p.persist.fsyncsPerSec.toFixed(0)} × ${p.persist.entriesPerFsync.toFixed(1)} (${p.persist.meanMs.toFixed(1)} ms)`,
        p.persist === null || p.persist.writeMeanMs === null ? '' : p.persist.writeMeanMs.toFixed(2),
        p.busiestLoopShare === null || p.busiestLoopShare === undefined ? '' : `${(p.busiestLoopShare * 100).toFixed(0)}%`,
      ]),
  );
}

export const htmlHeader = ['system', 'workload', 'clients', 'op', 'ops/s', 'MB/s', 'errors', 'mean ms', 'p50 ms', 'p95 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'client CPU (of a core)', 'server CPU (cores)', 'fsyncs/s × entries each (mean wait)', 'write inside the cluster, mean ms', 'busiest event loop (share of time)'];

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
  const paths = [...new Set(points.map((p) => `${p.system}: ${p.path ?? '?'}`))].join('; ');
  const tables: ReportTable[] = [{ title: 'Results', header: htmlHeader, rows: htmlRows(points), note: `Closed-loop clients (${paths}); latencies of successful operations; errors counted apart. MB/s: operations/s × value bytes (10^6 B). CPU: time used during the measured window / its length.` }];
  for (const other of o.compare) {
    const rows = comparison.filter((c) => c.system === other);
    if (rows.length === 0) continue;
    const several = rows.some((c) => c.rounds > 1);
    tables.push({
      title: `quorumkv vs ${other}`,
      header: ['workload', 'clients', 'quorumkv ops/s', `${other} ops/s`, 'ratio', ...(several ? ['ratio range', 'rounds'] : []), 'quorumkv p50 ms', `${other} p50 ms`, 'quorumkv p99 ms', `${other} p99 ms`, 'quorumkv server CPU µs/op', `${other} server CPU µs/op`],
      rows: rows.map((c) => [
        c.workload, String(c.concurrency), c.quorumkvOpsPerSec.toFixed(0), c.otherOpsPerSec.toFixed(0), `${c.ratio.toFixed(2)}×`, ...(several ? [ratioRange(c), String(c.rounds)] : []),
        c.quorumkvP50Ms.toFixed(2), c.otherP50Ms.toFixed(2), c.quorumkvP99Ms.toFixed(2), c.otherP99Ms.toFixed(2), cpuPerOpText(c.quorumkvServerCpuUsPerOp), cpuPerOpText(c.otherServerCpuUsPerOp),
      ]),
      note: `Server CPU µs/op: the CPU time of all of a system's server processes in the measured window (the bench client's excluded) per operation${several ? ', the rounds\' median' : ''}; on a machine the client and servers share, it moves far less between runs than throughput.${several ? ' Each system measured once per round, alternating, each from a fresh start; its figures are the medians of the rounds, the ratio the median of the rounds\' ratios.' : ''}`,
    });
  }
  const filled = points.filter((p) => p.footprint !== undefined && p.footprint !== null);
  if (filled.length > 0) {
    tables.push({
      title: 'After the fill: disk and memory per server',
      header: ['system', 'clients', 'keys', 'server', 'data directory on disk', 'anonymous RSS'],
      rows: filled.flatMap((p) => (p.footprint ?? []).map((n) => [p.system, String(p.concurrency), String(p.keyCount), n.name, formatBytes(n.diskBytes), formatBytes(n.rssAnonBytes)])),
      note: 'Disk: blocks allocated under the data directory (as du counts them). Anonymous RSS: RssAnon of /proc/<pid>/status (heap and caches, not file pages of memory maps).',
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
