/**
 * Storage micro-benchmark: how many log persists per second one node's storage (its
 * write-ahead log, and LMDB for the kv writes) sustains, and what each costs in LMDB
 * transactions and fsyncs, when several nodes share one disk (as a local 3-node cluster does).
 *
 * Each worker process plays one node: a closed loop of `persist()` calls (one Ready in
 * flight at a time, the next queued from the previous one's `onDurable`, as the driver
 * does), each followed in the *next* event turn by the kv apply of the previous batch
 * (128-byte values plus one dedup record per entry), and the driver's compaction rule.
 * The parent spawns 1 or more workers on the same disk, starts them together, and merges
 * their reports; every configuration is run `--repeat` times, variants interleaved (every
 * other repetition in reverse order) so that load from other users of the machine hits
 * them alike, and medians are printed. Variants are storage options: `default` is what a
 * node runs, `immediate` queues every kv write to LMDB as soon as the WAL holds its entries.
 *
 *   node dist/storage/bench.js [--entries 1,25] [--procs 1,3] [--seconds 5]
 *     [--warmup-seconds 1] [--repeat 3] [--variants default,immediate,wal-floor] [--dir /tmp] [--json]
 *
 * `wal-floor` is not LMDB: the same entries appended to a preallocated file with one
 * fdatasync per persist, the floor under any write-ahead log on this disk.
 *
 * Owns: nothing but its temporary data directories (removed at the end). Must never run
 * inside a node or a test; it is a measuring tool.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openLmdbStorage } from './lmdb.js';
import type { LmdbStorage, LmdbStorageOptions } from './lmdb.js';
import type { ClusterConfig, Entry } from '../core/types.js';
import { median } from '../stdx/median.js';

/** Storage options per named variant. */
const VARIANTS: Readonly<Record<string, Partial<LmdbStorageOptions>>> = {
  /** As a node opens its storage: kv writes held back in groups (kvDeferMsMax default). */
  default: {},
  /** Every kv write queued once the WAL holds its entries: an LMDB transaction and fsync per apply turn. */
  immediate: { kvDeferMsMax: 0 },
  defer2ms: { kvDeferMsMax: 2 },
  defer5ms: { kvDeferMsMax: 5 },
  defer20ms: { kvDeferMsMax: 20 },
};

/** Not a storage variant: an append-only file and fdatasync, the floor under any log (runWalFloor). */
const WAL_FLOOR = 'wal-floor';
const WAL_PREALLOCATED_BYTES = 64 * 1024 * 1024;

const CONFIG: ClusterConfig = { members: ['n1', 'n2', 'n3'], writeQuorum: 'majority', topology: 'star' };
const VALUE_BYTES = 128;
/** Size of an encoded client command in the log (key, value, client id, sequence). */
const ENTRY_DATA_BYTES = 200;
const KEYS_MAX = 10_000;
const CLIENTS_MAX = 64;
/** The CLI's --log-entries-max default; compaction keeps the newer half. */
const LOG_ENTRIES_MAX = 20_000;
const WORKER_START_TIMEOUT_MS = 30_000;
const WORKER_EXTRA_TIMEOUT_MS = 60_000;
/** Pause before each run, so that the previous run's processes and disk work are gone. */
const SETTLE_MS = 500;

interface RunConfig {
  readonly entriesPerPersist: number;
  readonly procs: number;
  readonly variant: string;
  readonly warmupMs: number;
  readonly measureMs: number;
}

interface WorkerConfig extends RunConfig {
  readonly dataDir: string;
}

interface WorkerResult {
  readonly persists: number;
  readonly entries: number;
  readonly elapsedMs: number;
  readonly transactions: number;
  readonly flushes: number;
  /** persist -> onDurable latencies of the measured window, in ms. */
  readonly latenciesMs: number[];
  /** Largest observed appliedIndex - durableAppliedIndex, in entries. */
  readonly kvLagEntriesMax: number;
  /** CPU time of the whole process (all threads) in the measured window, in ms. */
  readonly cpuMs: number;
}

interface RunResult {
  readonly persistsPerSec: number;
  readonly entriesPerSec: number;
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly txnsPerSec: number;
  readonly flushesPerSec: number;
  readonly txnsPerPersist: number;
  readonly flushesPerPersist: number;
  readonly kvLagEntriesMax: number;
  /** CPU time (user + system, every thread of every process) per persist, in ms. */
  readonly cpuMsPerPersist: number;
}

// --- worker: one simulated node ------------------------------------------------------------

async function runWorker(config: WorkerConfig): Promise<void> {
  if (config.variant === WAL_FLOOR) return runWalFloor(config);
  const variant = VARIANTS[config.variant];
  if (variant === undefined) throw new Error(`unknown variant ${config.variant}`);
  const storage = await openLmdbStorage({ initialConfig: CONFIG, snapshotBytesMax: 1 << 30, dataDir: config.dataDir, ...variant });
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  process.stdin.destroy(); // nothing more comes from the parent; do not keep the process alive
  const result = await driveLoop(storage, config);
  await storage.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function driveLoop(storage: LmdbStorage, config: WorkerConfig): Promise<WorkerResult> {
  const entriesPerPersist = config.entriesPerPersist;
  const encoder = new TextEncoder();
  const value = 'v'.repeat(VALUE_BYTES);
  const reply = encoder.encode('{"ok":true,"version":0000000000}');
  const filler = 'x'.repeat(ENTRY_DATA_BYTES);
  let next = storage.log.lastIndex() + 1;
  let previous: { first: number; last: number } | null = null;
  const startMs = performance.now();
  const measureFromMs = startMs + config.warmupMs;
  const measureToMs = measureFromMs + config.measureMs;
  let measuring = false;
  let before = storage.stats();
  let cpuBefore = process.cpuUsage();
  let windowStartMs = 0;
  const latenciesMs: number[] = [];
  let persists = 0;
  let kvLagEntriesMax = 0;

  const apply = (first: number, last: number): void => {
    storage.kv.write(last, (tx) => {
      for (let index = first; index <= last; index++) {
        tx.put(`key${index % KEYS_MAX}`, { value, version: index });
        tx.putDedup({ clientId: `client${index % CLIENTS_MAX}`, seq: index, index, reply });
      }
    });
  };

  const maybeCompact = (): void => {
    const firstIndex = storage.log.firstIndex();
    const lastIndex = storage.log.lastIndex();
    if (lastIndex - firstIndex + 1 <= LOG_ENTRIES_MAX) return;
    const upTo = Math.min(storage.kv.durableAppliedIndex(), lastIndex - LOG_ENTRIES_MAX / 2, storage.kv.appliedIndex());
    if (upTo >= firstIndex) storage.compact(upTo, CONFIG);
  };

  return new Promise<WorkerResult>((resolve, reject) => {
    const cycle = (): void => {
      const nowMs = performance.now();
      if (!measuring && nowMs >= measureFromMs) {
        measuring = true;
        before = storage.stats();
        cpuBefore = process.cpuUsage();
        windowStartMs = nowMs;
      }
      if (nowMs >= measureToMs) {
        const after = storage.stats();
        const cpu = process.cpuUsage(cpuBefore);
        resolve({
          cpuMs: (cpu.user + cpu.system) / 1000,
          persists,
          entries: persists * entriesPerPersist,
          elapsedMs: nowMs - windowStartMs,
          transactions: after.lastTxnId - before.lastTxnId,
          flushes: after.flushesCompleted - before.flushesCompleted,
          latenciesMs,
          kvLagEntriesMax,
        });
        return;
      }
      const first = next;
      const entries: Entry[] = [];
      for (let i = 0; i < entriesPerPersist; i++, next++) {
        entries.push({ index: next, term: 1, kind: 'normal', data: encoder.encode(`${next}:${filler}`) });
      }
      const last = next - 1;
      const toApply = previous;
      previous = { first, last };
      const queuedMs = performance.now();
      const counted = measuring;
      storage.persist({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit: toApply?.last ?? first - 1 } }, (error) => {
        if (error !== null) {
          reject(error);
          return;
        }
        if (counted) {
          latenciesMs.push(performance.now() - queuedMs);
          persists++;
        }
        kvLagEntriesMax = Math.max(kvLagEntriesMax, storage.kv.appliedIndex() - storage.kv.durableAppliedIndex());
        maybeCompact();
        cycle();
      });
      // The driver applies what became committed in a later turn than the persist.
      if (toApply !== null) setImmediate(() => apply(toApply.first, toApply.last));
    };
    cycle();
  });
}

/**
 * The floor an append-only write-ahead log would have on this disk (issue "Fast on every
 * path": WAL or LMDB for the Raft log?): the same entries, framed with a length and a CRC32
 * each, written at the end of a preallocated file (so fdatasync has no size to record) and
 * fdatasync'd once per persist, one persist in flight, as the driver does. No state machine,
 * no reads, no compaction: what LMDB's commit path costs beyond this is what a WAL could save.
 */
async function runWalFloor(config: WorkerConfig): Promise<void> {
  const file = await open(path.join(config.dataDir, 'wal'), 'w+');
  const bytesMax = WAL_PREALLOCATED_BYTES;
  await file.write(Buffer.alloc(bytesMax), 0, bytesMax, 0);
  await file.sync();
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  process.stdin.destroy();
  const filler = 'x'.repeat(ENTRY_DATA_BYTES);
  let position = 0;
  let next = 1;
  const latenciesMs: number[] = [];
  let persists = 0;
  let syncs = 0;
  const startMs = performance.now();
  let windowStartMs = 0;
  let cpuBefore = process.cpuUsage();
  for (;;) {
    const nowMs = performance.now();
    if (windowStartMs === 0 && nowMs >= startMs + config.warmupMs) {
      windowStartMs = nowMs;
      cpuBefore = process.cpuUsage();
    }
    if (windowStartMs !== 0 && nowMs >= windowStartMs + config.measureMs) break;
    const frames: Buffer[] = [];
    for (let i = 0; i < config.entriesPerPersist; i++, next++) {
      const data = Buffer.from(`${next}:${filler}`);
      const header = Buffer.alloc(8);
      header.writeUInt32LE(data.length, 0);
      header.writeUInt32LE(crc32(data), 4);
      frames.push(header, data);
    }
    const batch = Buffer.concat(frames);
    if (position + batch.length > bytesMax) position = 0; // wraps: the floor, not a log
    const queuedMs = performance.now();
    await file.write(batch, 0, batch.length, position);
    await file.datasync();
    position += batch.length;
    if (windowStartMs !== 0) {
      latenciesMs.push(performance.now() - queuedMs);
      persists++;
      syncs++;
    }
  }
  const cpu = process.cpuUsage(cpuBefore);
  await file.close();
  const result: WorkerResult = {
    cpuMs: (cpu.user + cpu.system) / 1000,
    persists,
    entries: persists * config.entriesPerPersist,
    elapsedMs: performance.now() - windowStartMs,
    transactions: syncs,
    flushes: syncs,
    latenciesMs,
    kvLagEntriesMax: 0,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// --- parent: spawn, synchronise, merge ------------------------------------------------------

/** One run: `config.procs` workers, each in a new data directory under `benchDir`. */
async function runOnce(config: RunConfig, benchDir: string): Promise<RunResult> {
  const children: ReturnType<typeof spawn>[] = [];
  try {
    const outputs: Promise<WorkerResult>[] = [];
    const readies: Promise<void>[] = [];
    for (let p = 0; p < config.procs; p++) {
      const dataDir = await mkdtemp(path.join(benchDir, 'node-'));
      const workerConfig: WorkerConfig = { ...config, dataDir };
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--worker', JSON.stringify(workerConfig)], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      let stdout = '';
      let markReady!: () => void;
      readies.push(new Promise<void>((resolve) => (markReady = resolve)));
      outputs.push(
        new Promise<WorkerResult>((resolve, reject) => {
          child.stdout?.on('data', (data: Buffer) => {
            stdout += data.toString();
            if (stdout.startsWith('ready\n')) markReady();
          });
          child.on('exit', (code, signal) => {
            const line = stdout.split('\n').find((l) => l.startsWith('{'));
            if (code === 0 && line !== undefined) resolve(JSON.parse(line) as WorkerResult);
            else reject(new Error(`bench worker exited with ${signal ?? code}; output: ${stdout}`));
          });
        }),
      );
    }
    await withTimeout(Promise.all(readies), WORKER_START_TIMEOUT_MS, 'workers to open their storage');
    for (const child of children) child.stdin?.write('go\n');
    const results = await withTimeout(Promise.all(outputs), config.warmupMs + config.measureMs + WORKER_EXTRA_TIMEOUT_MS, 'workers to finish');
    return merge(results);
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

function merge(results: readonly WorkerResult[]): RunResult {
  let persistsPerSec = 0;
  let txnsPerSec = 0;
  let flushesPerSec = 0;
  let entriesPerSec = 0;
  let transactions = 0;
  let flushes = 0;
  let persists = 0;
  let cpuMs = 0;
  const latencies: number[] = [];
  for (const r of results) {
    const seconds = r.elapsedMs / 1000;
    persistsPerSec += r.persists / seconds;
    entriesPerSec += r.entries / seconds;
    txnsPerSec += r.transactions / seconds;
    flushesPerSec += r.flushes / seconds;
    transactions += r.transactions;
    flushes += r.flushes;
    persists += r.persists;
    cpuMs += r.cpuMs;
    for (const l of r.latenciesMs) latencies.push(l);
  }
  latencies.sort((a, b) => a - b);
  return {
    persistsPerSec,
    entriesPerSec,
    latencyMsP50: quantile(latencies, 0.5),
    latencyMsP99: quantile(latencies, 0.99),
    txnsPerSec,
    flushesPerSec,
    txnsPerPersist: transactions / Math.max(1, persists),
    flushesPerPersist: flushes / Math.max(1, persists),
    kvLagEntriesMax: Math.max(0, ...results.map((r) => r.kvLagEntriesMax)),
    cpuMsPerPersist: cpuMs / Math.max(1, persists),
  };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

// --- command line ----------------------------------------------------------------------------

interface Args {
  readonly entries: number[];
  readonly procs: number[];
  readonly variants: string[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly repeat: number;
  readonly dir: string;
  readonly json: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const values = new Map<string, string>();
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json') json = true;
    else if (arg.startsWith('--') && argv[i + 1] !== undefined) values.set(arg.slice(2), argv[++i] as string);
    else throw new Error(`unexpected argument ${arg}; see the usage at the top of src/storage/bench.ts`);
  }
  const list = (name: string, fallback: string): number[] =>
    (values.get(name) ?? fallback).split(',').map((s) => {
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} takes positive integers, got ${s}`);
      return n;
    });
  const number = (name: string, fallback: number): number => {
    const n = Number(values.get(name) ?? fallback);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} takes a positive number, got ${values.get(name)}`);
    return n;
  };
  const variants = (values.get('variants') ?? 'default,immediate').split(',');
  for (const v of variants) if (VARIANTS[v] === undefined && v !== WAL_FLOOR) throw new Error(`unknown variant ${v}; known: ${[...Object.keys(VARIANTS), WAL_FLOOR].join(', ')}`);
  return {
    entries: list('entries', '1,25'),
    procs: list('procs', '1,3'),
    variants,
    seconds: number('seconds', 5),
    warmupSeconds: number('warmup-seconds', 1),
    repeat: list('repeat', '3')[0] as number,
    dir: values.get('dir') ?? os.tmpdir(),
    json,
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    await runWorker(JSON.parse(argv[1] as string) as WorkerConfig);
    return;
  }
  const args = parseArgs(argv);
  const configs: RunConfig[] = [];
  for (const procs of args.procs) {
    for (const entriesPerPersist of args.entries) {
      for (const variant of args.variants) configs.push({ entriesPerPersist, procs, variant, warmupMs: args.warmupSeconds * 1000, measureMs: args.seconds * 1000 });
    }
  }
  const runs = new Map<RunConfig, RunResult[]>(configs.map((c) => [c, []]));
  // Data directories are removed only at the end: deleting files (with online discard) loads
  // the disk for a while, and would slow down whichever run comes next.
  const benchDir = await mkdtemp(path.join(args.dir, 'quorumkv-bench-'));
  try {
    for (let rep = 1; rep <= args.repeat; rep++) {
      // Every other repetition runs in reverse order, so that what one run leaves to the
      // disk (writeback, the journal) does not always fall on the same variant.
      for (const config of rep % 2 === 1 ? configs : [...configs].reverse()) {
        await new Promise<void>((resolve) => setTimeout(resolve, SETTLE_MS));
        const result = await runOnce(config, benchDir);
        runs.get(config)?.push(result);
        if (!args.json) process.stderr.write(`run ${rep}/${args.repeat} ${label(config)}: ${format(result)}\n`);
      }
    }
  } finally {
    await rm(benchDir, { recursive: true, force: true });
  }
  const summary = configs.map((config) => {
    const results = runs.get(config) ?? [];
    const pick = (f: (r: RunResult) => number): number => median(results.map(f));
    const result: RunResult = {
      persistsPerSec: pick((r) => r.persistsPerSec),
      entriesPerSec: pick((r) => r.entriesPerSec),
      latencyMsP50: pick((r) => r.latencyMsP50),
      latencyMsP99: pick((r) => r.latencyMsP99),
      txnsPerSec: pick((r) => r.txnsPerSec),
      flushesPerSec: pick((r) => r.flushesPerSec),
      txnsPerPersist: pick((r) => r.txnsPerPersist),
      flushesPerPersist: pick((r) => r.flushesPerPersist),
      kvLagEntriesMax: pick((r) => r.kvLagEntriesMax),
      cpuMsPerPersist: pick((r) => r.cpuMsPerPersist),
    };
    return { ...config, runs: results.length, ...result };
  });
  if (args.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  process.stdout.write(`medians of ${args.repeat} runs, ${args.seconds} s each (rates are totals over all processes):\n`);
  process.stdout.write(
    `${'procs'.padStart(5)} ${'entries'.padStart(7)} ${'variant'.padEnd(10)} ${'persists/s'.padStart(10)} ${'entries/s'.padStart(10)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'txn/s'.padStart(7)} ${'flush/s'.padStart(7)} ${'txn/persist'.padStart(11)} ${'flush/persist'.padStart(13)} ${'kv lag max'.padStart(10)} ${'cpu ms/persist'.padStart(14)}\n`,
  );
  for (const s of summary) {
    process.stdout.write(
      `${String(s.procs).padStart(5)} ${String(s.entriesPerPersist).padStart(7)} ${s.variant.padEnd(10)} ${s.persistsPerSec.toFixed(0).padStart(10)} ${s.entriesPerSec.toFixed(0).padStart(10)} ${s.latencyMsP50.toFixed(2).padStart(7)} ${s.latencyMsP99.toFixed(2).padStart(7)} ${s.txnsPerSec.toFixed(0).padStart(7)} ${s.flushesPerSec.toFixed(0).padStart(7)} ${s.txnsPerPersist.toFixed(2).padStart(11)} ${s.flushesPerPersist.toFixed(2).padStart(13)} ${String(s.kvLagEntriesMax).padStart(10)} ${s.cpuMsPerPersist.toFixed(3).padStart(14)}\n`,
    );
  }
}

function label(config: RunConfig): string {
  return `procs=${config.procs} entries=${config.entriesPerPersist} variant=${config.variant}`;
}

function format(r: RunResult): string {
  return (
    `${r.persistsPerSec.toFixed(0)} persists/s, ${r.entriesPerSec.toFixed(0)} entries/s, p50 ${r.latencyMsP50.toFixed(2)} ms, p99 ${r.latencyMsP99.toFixed(2)} ms, ` +
    `${r.txnsPerSec.toFixed(0)} txn/s, ${r.flushesPerSec.toFixed(0)} flush/s, ${r.txnsPerPersist.toFixed(2)} txn/persist, ${r.cpuMsPerPersist.toFixed(3)} cpu ms/persist`
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
