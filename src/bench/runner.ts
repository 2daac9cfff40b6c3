/**
 * The closed-loop benchmark runner: `concurrency` workers, each issuing one operation,
 * awaiting its answer and issuing the next, for a measured duration (or a number of
 * operations) after an uncounted warm-up. Latencies go into HDR histograms per operation
 * type; the runner also measures its own CPU share and the system's (from /proc) so a
 * saturated benchmark client is visible next to the figures.
 *
 * Hot path: choosing an operation and a key reads precomputed arrays, the value is one
 * string made before the run, and recording is an array-backed histogram update. Nothing
 * is allocated per operation here; what the client library allocates per call is the
 * client's cost an application would pay too.
 *
 * Must never: count warm-up operations, or run unbounded: a run ends after its duration
 * or operation count, and every call has the client's deadline.
 */

import { createPrng } from '../stdx/prng.js';
import { OpRecorder, newHistogram, summarize } from './stats.js';
import type { OpSummary } from './stats.js';
import { errorCode } from './target.js';
import type { BenchTarget } from './target.js';
import { keyChooser } from './workload.js';
import type { WorkloadSpec } from './workload.js';
import { totalCpuSeconds } from './cluster.js';
import { busiestLoopShare, persistFigures, readPersistCounters } from './persist-figures.js';
import type { PersistCounters, PersistFigures } from './persist-figures.js';
import type { NodeFootprint } from './footprint.js';
import { cpus } from 'node:os';

export interface PointOptions {
  readonly target: BenchTarget;
  readonly workload: WorkloadSpec;
  readonly keys: readonly string[];
  readonly value: string;
  readonly concurrency: number;
  /** Measured time; ignored when `opsTotal` is set or the workload is a fill (its run is every key once). */
  readonly durationMs: number;
  /** Measure exactly this many operations instead of a duration. */
  readonly opsTotal: number | null;
  /** Uncounted warm-up; none for a fill. */
  readonly warmupMs: number;
  /** Server processes whose CPU time is measured (empty: unknown). */
  readonly serverPids: readonly number[];
  /** quorumkv nodes' HTTP URLs, whose /metrics give the point's fsync figures (none for etcd). */
  readonly metricsUrls?: readonly string[];
  readonly seed: number;
  /** Print a live progress line to stderr (only on a TTY). */
  readonly progress: boolean;
  /** Prefix of the progress line. */
  readonly label: string;
}

export interface PointResult {
  readonly system: string;
  /** How the operations travelled (BenchTarget.path). */
  readonly path?: string;
  readonly workload: string;
  readonly readFraction: number;
  readonly distribution: string;
  readonly concurrency: number;
  readonly keyCount: number;
  readonly keyBytes: number;
  readonly valueBytes: number;
  /** Measured time, from the end of the warm-up to the last answer. */
  readonly elapsedMs: number;
  /** Successful operations per second, all types. */
  readonly opsPerSec: number;
  /** Values written and read per second in MB (10^6 bytes): opsPerSec × valueBytes. */
  readonly mbPerSec: number;
  readonly ops: number;
  readonly errors: number;
  /** Per operation type, then `all`. */
  readonly byOp: readonly OpSummary[];
  /** The benchmark process's CPU time / elapsed time (1.0 = one core busy). */
  readonly clientCpuCores: number;
  /** The client's share of the machine's CPU (clientCpuCores / cores). */
  readonly clientCpuShare: number;
  /** The servers' CPU time / elapsed time, summed over their processes; null if unknown. */
  readonly serverCpuCores: number | null;
  /** fsyncs and group commit on the nodes during the measured window (quorumkv only). */
  readonly persist: PersistFigures | null;
  /**
   * The largest share (0–1) of the measured window that one node's event loop spent running
   * (quorumkv only; absent in results written before it was measured). Near 1: that node's
   * loop bounds the run, whatever the CPU figures say.
   */
  readonly busiestLoopShare?: number | null;
  /** Disk and anonymous memory of each server process after the point (the fill workload's). */
  readonly footprint?: readonly NodeFootprint[] | null;
  /** Which of several rounds (`--rounds`, 1-based) measured it; absent with one round. */
  readonly round?: number;
  readonly startedAt: string;
}

const progressIntervalMs = 1000;

/** Runs one benchmark point: warm-up, then the measured closed loop. */
export async function runPoint(o: PointOptions): Promise<PointResult> {
  if (!Number.isSafeInteger(o.concurrency) || o.concurrency < 1) throw new RangeError(`concurrency must be >= 1, got ${o.concurrency}`);
  const recorders = { read: new OpRecorder(), write: new OpRecorder() };
  const progress: ProgressWindow = { latency: newHistogram(), ops: 0, errors: 0 };
  const keys = o.keys;
  const value = o.value;
  const target = o.target;
  const choose = keyChooser(o.workload.distribution, keys.length);
  const readFraction = o.workload.readFraction;
  const txn = o.workload.txn === true;
  const baseRng = createPrng(o.seed);
  // A fill writes each key once, in order: its run is the keys, with nothing to warm up.
  const fill = o.workload.fill === true;
  const warmupMs = fill ? 0 : o.warmupMs;

  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  // Operations measured when the run is counted rather than timed (a fill: every key once).
  const opsLimit = fill ? keys.length : o.opsTotal;
  const measureStart = t0 + warmupMs;
  let measureEnd = opsLimit === null ? measureStart + o.durationMs : Infinity;
  let opsIssued = 0;
  const opsTotal = opsLimit ?? Infinity;
  let lastDone = measureStart;

  // CPU figures are taken when the warm-up ends, by a timer, so they cover the measured
  // window only (to within one timer turn).
  const metricsUrls = o.metricsUrls ?? [];
  const marks: { cpu0: NodeJS.CpuUsage | null; server0: Promise<number> | null; persist0: Promise<PersistCounters | null> | null } = { cpu0: null, server0: null, persist0: null };
  const takeStart = (): void => {
    marks.cpu0 = process.cpuUsage();
    marks.server0 = totalCpuSeconds(o.serverPids);
    marks.persist0 = readPersistCounters(metricsUrls);
  };
  const startTimer = warmupMs > 0 ? setTimeout(takeStart, warmupMs) : null;
  if (startTimer === null) takeStart();

  const tty = o.progress && process.stderr.isTTY === true;
  const ticker = tty ? startTicker(o, progress, measureStart, () => opsIssued, opsLimit) : null;

  const worker = async (rng: ReturnType<typeof createPrng>): Promise<void> => {
    for (;;) {
      const start = performance.now();
      const measured = start >= measureStart;
      if (measured) {
        if (start >= measureEnd || opsIssued >= opsTotal) return;
        opsIssued++;
      }
      const isRead = readFraction >= 1 || (readFraction > 0 && rng.nextFloat() < readFraction);
      const index = fill ? opsIssued - 1 : choose(rng);
      const key = keys[index] as string;
      const recorder = isRead ? recorders.read : recorders.write;
      try {
        const answer = isRead ? await target.get(key) : txn ? await target.txn(key, keys[otherIndex(index, choose(rng), keys.length)] as string, value) : await target.put(key, value);
        const done = performance.now();
        if (measured) {
          recorder.recordMs(done - start);
          if (isRead && (answer === undefined || answer === null)) recorder.misses++;
          if (done > lastDone) lastDone = done;
        }
        if (tty) {
          progress.latency.recordValue(Math.max(1, Math.round((done - start) * 1000)));
          progress.ops++;
        }
      } catch (error) {
        const done = performance.now();
        if (measured) {
          recorder.recordError(errorCode(error));
          if (done > lastDone) lastDone = done;
        }
        if (tty) progress.errors++;
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: o.concurrency }, () => worker(baseRng.fork())));
  } finally {
    if (startTimer !== null) clearTimeout(startTimer);
    if (ticker !== null) clearInterval(ticker);
    if (tty) process.stderr.write('\r\x1b[K');
  }
  if (marks.cpu0 === null) takeStart(); // the run ended within its warm-up (tiny --ops)
  measureEnd = lastDone;
  const elapsedMs = Math.max(1, measureEnd - measureStart);
  const cpu = process.cpuUsage(marks.cpu0 ?? undefined);
  const serverStart = (await marks.server0) ?? 0;
  const serverEnd = o.serverPids.length > 0 ? await totalCpuSeconds(o.serverPids) : 0;
  const persist0 = await marks.persist0;
  const persist1 = await readPersistCounters(metricsUrls);
  const persist = persistFigures(persist0, persist1, elapsedMs);
  const loopShare = busiestLoopShare(persist0, persist1, elapsedMs);
  const figures = { elapsedMs, cpu, serverCpuSeconds: o.serverPids.length > 0 ? serverEnd - serverStart : null, persist, busiestLoopShare: loopShare, startedAt };
  return pointResult(o, recorders, figures);
}

/**
 * A transaction's second key: `drawn`, or the next one when it is the first (etcd refuses a
 * transaction that puts one key twice, which would count as its error and not quorumkv's).
 */
function otherIndex(first: number, drawn: number, keyCount: number): number {
  return drawn === first && keyCount > 1 ? (drawn + 1) % keyCount : drawn;
}

/** The measured window's figures that are not in the recorders. */
interface WindowFigures {
  readonly elapsedMs: number;
  readonly cpu: NodeJS.CpuUsage;
  readonly serverCpuSeconds: number | null;
  readonly persist: PersistFigures | null;
  readonly busiestLoopShare: number | null;
  readonly startedAt: string;
}

function pointResult(o: PointOptions, recorders: { readonly read: OpRecorder; readonly write: OpRecorder }, w: WindowFigures): PointResult {
  const { elapsedMs, cpu, persist, startedAt } = w;
  const valueBytes = Buffer.byteLength(o.value);
  const byOp: OpSummary[] = [];
  const present: OpRecorder[] = [];
  for (const op of ['write', 'read'] as const) {
    const r = recorders[op];
    if (r.histogram.totalCount === 0 && r.errors === 0) continue;
    byOp.push(summarize(op, [r], elapsedMs, valueBytes));
    present.push(r);
  }
  const all = summarize('all', present.length > 0 ? present : [recorders.write], elapsedMs, valueBytes);
  byOp.push(all);
  const clientCpuCores = (cpu.user + cpu.system) / 1000 / elapsedMs;
  return {
    system: o.target.system,
    path: o.target.path,
    workload: o.workload.name,
    readFraction: o.workload.readFraction,
    distribution: o.workload.distribution,
    concurrency: o.concurrency,
    keyCount: o.keys.length,
    keyBytes: Buffer.byteLength(o.keys[0] ?? ''),
    valueBytes,
    elapsedMs: Math.round(elapsedMs),
    opsPerSec: all.opsPerSec,
    mbPerSec: all.mbPerSec,
    ops: all.count,
    errors: all.errors,
    byOp,
    clientCpuCores,
    clientCpuShare: clientCpuCores / Math.max(1, cpus().length),
    serverCpuCores: w.serverCpuSeconds === null ? null : w.serverCpuSeconds / (elapsedMs / 1000),
    persist,
    busiestLoopShare: w.busiestLoopShare,
    startedAt,
  };
}

/** What the progress line shows: the last second's latencies, successes and errors. */
interface ProgressWindow {
  readonly latency: ReturnType<typeof newHistogram>;
  ops: number;
  errors: number;
}

/** A once-a-second progress line on stderr (a TTY only); the caller clears the interval. */
function startTicker(o: PointOptions, progress: ProgressWindow, measureStart: number, opsIssued: () => number, opsTotal: number | null): NodeJS.Timeout {
  let lastTick = performance.now();
  return setInterval(() => {
    const now = performance.now();
    const seconds = (now - lastTick) / 1000;
    lastTick = now;
    const warm = now < measureStart;
    const where = warm ? 'warm-up' : opsTotal === null ? `${((now - measureStart) / 1000).toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s` : `${opsIssued()}/${opsTotal} ops`;
    const p99 = progress.latency.totalCount === 0 ? 0 : progress.latency.getValueAtPercentile(99) / 1000;
    process.stderr.write(`\r\x1b[K${o.label}  ${where}  ${(progress.ops / seconds).toFixed(0)} ops/s  p99 ${p99.toFixed(1)} ms  errors ${progress.errors}`);
    progress.latency.reset();
    progress.ops = 0;
    progress.errors = 0;
  }, progressIntervalMs);
}

/**
 * Writes every key once (so reads find values), `concurrency` writes at a time. Failed
 * writes are retried by the client within its deadline; one that still fails fails the
 * preload.
 */
export async function preload(target: BenchTarget, keys: readonly string[], value: string, concurrency = 64, progress = false): Promise<void> {
  let next = 0;
  let done = 0;
  const tty = progress && process.stderr.isTTY === true;
  const ticker = tty ? setInterval(() => process.stderr.write(`\r\x1b[Kpreloading ${done}/${keys.length} keys`), 500) : null;
  try {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, keys.length) }, async () => {
        while (next < keys.length) {
          const key = keys[next++] as string;
          await target.put(key, value);
          done++;
        }
      }),
    );
  } finally {
    if (ticker !== null) clearInterval(ticker);
    if (tty) process.stderr.write('\r\x1b[K');
  }
}
