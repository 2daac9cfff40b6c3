/**
 * `quorumkv bench-watch`: watch fan-out. One writer puts to a prefix as fast as it is
 * acknowledged while N watchers (default 1,000) on one node watch that prefix; prints
 * writes/s, events delivered/s (over every watcher) and the delivery delay from the write
 * being sent to each watcher receiving it (p50, p99, max). The writer runs in a worker
 * thread (watch-writer.ts), the watchers in the main one: one clock, and the watchers' work
 * does not hold back the writes. With `--compare etcd`, the same against
 * a local 3-member etcd (watchers through the etcd3 client, on one member).
 *
 *   quorumkv bench-watch [--watchers 1000] [--duration 10s] [--transport http|grpc] [--compare etcd]
 *
 * Must never: leave a cluster behind (local clusters are destroyed on the way out).
 */

import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import hdr from 'hdr-histogram-js';
import { connect } from '../client/index.js';
import type { KvClient, Watch } from '../client/index.js';
import { UsageError, parseCommand } from '../stdx/command-line.js';
import type { CommandSpec } from '../stdx/command-line.js';
import { LocalCluster } from './cluster.js';
import { EtcdCluster, findEtcd } from './etcd.js';
import { parseCount } from './flags.js';
import type * as Etcd3Module from 'etcd3';

const command: CommandSpec = {
  name: 'bench-watch',
  summary: 'watch fan-out: one writer, N watchers on one node; events/s delivered and delivery delay',
  flags: {
    watchers: { kind: 'value', help: 'watchers on one node', default: '1000' },
    duration: { kind: 'value', help: 'measured seconds', default: '10' },
    'value-bytes': { kind: 'value', help: 'value size (the send time is written into it)', default: '128' },
    rate: { kind: 'value', help: 'writes per second (default 0: as fast as acknowledged); a fixed rate compares delays at the same load', default: '0' },
    compare: { kind: 'value', help: 'etcd: run the same against a local 3-member etcd' },
    transport: { kind: 'value', help: "the watchers' transport: http (one NDJSON stream each) or grpc (Watch streams over one connection)", default: 'http' },
  },
};

interface Figures {
  readonly system: string;
  readonly writesPerSec: number;
  readonly eventsPerSec: number;
  readonly delayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly missed: number;
}

/** Records one delivery: the value starts with the send time (performance.now(), ms). */
type Deliver = (value: string) => void;

/** Runs the writer thread (watch-writer.ts) and resolves with its write count. */
function runWriter(system: 'quorumkv' | 'etcd', endpoints: readonly string[], seconds: number, valueBytes: number, rate: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(fileURLToPath(new URL('./watch-writer.js', import.meta.url)), { workerData: { system, endpoints, seconds, valueBytes, rate } });
    worker.once('message', (m: { writes: number }) => resolve(m.writes));
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`the writer thread exited ${code}`))));
  });
}

const epochMs = (): number => performance.timeOrigin + performance.now();

interface Run {
  readonly watchers: number;
  readonly seconds: number;
  readonly valueBytes: number;
  readonly rate: number;
  readonly transport: 'http' | 'grpc';
}

async function measure(
  system: 'quorumkv' | 'etcd',
  endpoints: readonly string[],
  { watchers, seconds, valueBytes, rate }: Run,
  open: (deliver: Deliver) => Promise<() => Promise<void>>,
  put: (key: string, value: string) => Promise<unknown>,
): Promise<Figures> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let delivered = 0;
  let measuring = false;
  const deliver: Deliver = (value) => {
    if (!measuring) return;
    const sent = Number(value.slice(0, value.indexOf('|')));
    histogram.recordValue(Math.max(1, Math.round((epochMs() - sent) * 1000)));
    delivered++;
  };
  const close = await open(deliver);
  // A short warm-up, so every watcher is connected and caught up before the clock starts.
  await put('fan/warm', `${epochMs()}|warm`);
  await new Promise((r) => setTimeout(r, 1_000));
  measuring = true;
  const end = performance.now() + seconds * 1000;
  const writes = await runWriter(system, endpoints, seconds, valueBytes, rate);
  // Let the last writes arrive everywhere (bounded), then stop counting.
  const expected = writes * watchers;
  const drainEnd = performance.now() + 10_000;
  while (delivered < expected && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 20));
  measuring = false;
  await close();
  const elapsed = seconds + Math.max(0, (performance.now() - end) / 1000);
  return {
    system,
    writesPerSec: writes / seconds,
    eventsPerSec: delivered / elapsed,
    delayMs: { p50: histogram.getValueAtPercentile(50) / 1000, p99: histogram.getValueAtPercentile(99) / 1000, max: histogram.maxValue / 1000 },
    missed: expected - delivered,
  };
}

async function quorumkv(run: Run): Promise<Figures> {
  const { watchers } = run;
  const cluster = await LocalCluster.start({ nodes: 3, nodeFlags: ['--watchers-max', String(watchers + 10)] });
  try {
    const writer = await connect({ endpoints: cluster.endpoints });
    // Every watcher on one node (a follower: watches need not load the leader).
    const follower = cluster.nodes.find((n) => n.id !== writer.leaderId)?.http ?? cluster.endpoints[0] ?? '';
    const reader = await connect(run.transport === 'http' ? { endpoints: [follower] } : { endpoints: [await grpcAddressOf(writer, follower)], transport: 'grpc' });
    const open = async (deliver: Deliver): Promise<() => Promise<void>> => {
      const all: Watch[] = [];
      for (let i = 0; i < watchers; i++) {
        const w = reader.watch('fan/');
        all.push(w);
        void (async () => {
          for await (const e of w) for (const c of e.changes) if (c.type === 'put') deliver(String(c.value));
        })();
      }
      return async () => {
        for (const w of all) w.close();
        await reader.close();
      };
    };
    try {
      return await measure('quorumkv', cluster.endpoints, run, open, (k, v) => writer.put(k, v));
    } finally {
      await writer.close();
    }
  } finally {
    await cluster.destroy();
  }
}

/** A node's gRPC address, from its status (bench clusters let it choose its port). */
async function grpcAddressOf(client: KvClient, http: string): Promise<string> {
  const node = (await client.status()).nodes.find((n) => n.endpoint === http);
  const address = node?.ok === true ? node.status.grpc : undefined;
  if (address === undefined) throw new Error(`${http} did not say its gRPC address`);
  return address;
}

async function etcd(run: Run): Promise<Figures> {
  const { watchers } = run;
  const binary = await findEtcd(null, true, (line) => process.stderr.write(`${line}\n`));
  const cluster = await EtcdCluster.start(binary);
  const mod: typeof Etcd3Module = await import('etcd3');
  const writer = new mod.Etcd3({ hosts: [...cluster.endpoints] });
  const reader = new mod.Etcd3({ hosts: [cluster.endpoints[1] ?? cluster.endpoints[0] ?? ''] });
  try {
    const open = async (deliver: Deliver): Promise<() => Promise<void>> => {
      const all: { cancel(): Promise<void> }[] = [];
      for (let i = 0; i < watchers; i++) {
        const w = await reader.watch().prefix('fan/').create();
        w.on('put', (kv) => deliver(kv.value.toString()));
        all.push(w);
      }
      return async () => {
        await Promise.all(all.map((w) => w.cancel()));
      };
    };
    return await measure('etcd', cluster.endpoints, run, open, (k, v) => writer.put(k).value(v).exec());
  } finally {
    writer.close();
    reader.close();
    await cluster.stop();
  }
}

export async function runWatchBench(argv: string[]): Promise<number> {
  const parsed = parseCommand(command, argv, {});
  if ('help' in parsed) {
    process.stdout.write(parsed.help);
    return 0;
  }
  const v = parsed.values;
  const watchers = parseCount(v.get('watchers') ?? '1000', 'watchers', 1, 100_000);
  const seconds = parseCount(v.get('duration') ?? '10', 'duration', 1, 3600);
  const valueBytes = parseCount(v.get('value-bytes') ?? '128', 'value-bytes', 24, 1 << 20);
  const rate = parseCount(v.get('rate') ?? '0', 'rate', 0, 100_000);
  const compare = v.get('compare');
  if (compare !== undefined && compare !== 'etcd') throw new UsageError(`--compare takes etcd, got ${compare}`);
  const transport = v.get('transport') ?? 'http';
  if (transport !== 'http' && transport !== 'grpc') throw new UsageError(`--transport takes http or grpc, got ${transport}`);
  const run: Run = { watchers, seconds, valueBytes, rate, transport };
  const results = [await quorumkv(run)];
  if (compare === 'etcd') results.push(await etcd(run));
  process.stdout.write(`watch fan-out: 1 writer${rate > 0 ? ` at ${rate}/s` : ''}, ${watchers} watchers on one node (quorumkv over ${transport}), ${seconds} s, ${valueBytes} B values\n`);
  process.stdout.write('system     writes/s  events/s   delay p50   p99      max     missed\n');
  for (const r of results) {
    process.stdout.write(
      `${r.system.padEnd(9)} ${r.writesPerSec.toFixed(0).padStart(9)} ${r.eventsPerSec.toFixed(0).padStart(9)} ${r.delayMs.p50.toFixed(1).padStart(8)} ms ${r.delayMs.p99.toFixed(1).padStart(6)} ms ${r.delayMs.max.toFixed(1).padStart(7)} ms ${String(r.missed).padStart(6)}\n`,
    );
  }
  return 0;
}
