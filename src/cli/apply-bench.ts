/**
 * Apply micro-benchmark: the main-thread cost of the state machine on a node's real storage
 * (LMDB and the write-ahead log), without HTTP or replication: microseconds per command
 * encoded (what a leader does for each write it proposes), per put applied (in batches, as a
 * follower applies an append) and per linearizable-path read of a key
 * (`stateMachine.get`, what a GET serves), over a key set that fits in memory. Every node
 * pays the apply cost for every write, so it bounds what the cluster can do on two cores.
 * Last, the history those puts left is compacted in the leader's steps
 * (node/history-retention.ts): the time one compact entry takes is a pause every node takes
 * at the same index.
 *
 *   node dist/cli/apply-bench.js [--keys 10000] [--batch 20] [--batches 500]
 *     [--rounds 9] [--value-bytes 128] [--dir /tmp]
 *
 * Prints the median and the range over the rounds (the first rounds warm the JIT up and are
 * not counted). Owns: its temporary data directory, removed at the end. A measuring tool:
 * never run inside a node or a test.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FlagError, flagHelp, parseBytes, parseCount, parseFlags } from '../bench/flags.js';
import type { FlagDef } from '../bench/flags.js';
import type { Entry } from '../core/types.js';
import { encodeCommand } from '../kv/codec.js';
import { createKvStateMachine } from '../kv/state-machine.js';
import { compactStepVersionsDefault } from '../node/history-retention.js';
import { openLmdbStorage } from '../storage/lmdb.js';

interface Args {
  readonly keys: number;
  readonly batch: number;
  readonly batches: number;
  readonly rounds: number;
  readonly valueBytes: number;
  readonly dir: string;
}

const warmupRounds = 3;

const applyBenchFlags: Record<string, FlagDef> = {
  keys: { kind: 'value', help: 'distinct keys (default 10000)' },
  batch: { kind: 'value', help: 'puts per applied batch (default 20)' },
  batches: { kind: 'value', help: 'batches per round (default 500)' },
  rounds: { kind: 'value', help: 'measured rounds, after 3 uncounted ones (default 9)' },
  'value-bytes': { kind: 'value', help: 'value size in bytes (default 128)' },
  dir: { kind: 'value', help: 'where the temporary data directory goes (default the OS temp dir)' },
};

function parseArgs(argv: readonly string[]): Args {
  const { values: v } = parseFlags(argv, applyBenchFlags, {}, 'apply-bench');
  return {
    keys: parseCount(v.get('keys') ?? '10000', 'keys', 1),
    batch: parseCount(v.get('batch') ?? '20', 'batch', 1),
    batches: parseCount(v.get('batches') ?? '500', 'batches', 1),
    rounds: parseCount(v.get('rounds') ?? '9', 'rounds', 1) + warmupRounds,
    valueBytes: parseBytes(v.get('value-bytes') ?? '128', 'value-bytes', 0, 1024 * 1024),
    dir: v.get('dir') ?? os.tmpdir(),
  };
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const usSince = (start: bigint, count: number): number => Number(process.hrtime.bigint() - start) / 1000 / count;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dataDir = await mkdtemp(path.join(args.dir, 'qkv-apply-bench-'));
  const storage = await openLmdbStorage({ dataDir, initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' }, snapshotBytesMax: 1 << 26 });
  try {
    const sm = createKvStateMachine(storage.kv, { dedupClientsMax: 100_000 });
    const value = 'v'.repeat(args.valueBytes);
    let index = 0;
    let seed = 1;
    const randomKey = (): string => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return `key${String(seed % args.keys).padStart(12, '0')}`;
    };
    // The log first, as on a node: LMDB never takes kv writes the WAL does not hold.
    const persist = (entries: Entry[]): Promise<void> =>
      new Promise<void>((resolve, reject) => storage.persist({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit: index } }, (e) => (e === null ? resolve() : reject(e))));
    const encodeUs: number[] = [];
    const putUs: number[] = [];
    const getUs: number[] = [];
    for (let round = 0; round < args.rounds; round++) {
      const batches: Entry[][] = [];
      const encodeStart = process.hrtime.bigint();
      for (let b = 0; b < args.batches; b++) {
        const batch: Entry[] = [];
        for (let i = 0; i < args.batch; i++) batch.push({ term: 1, index: ++index, kind: 'normal', data: encodeCommand({ op: 'put', key: randomKey(), value }) });
        batches.push(batch);
      }
      const encoded = usSince(encodeStart, args.batches * args.batch);
      await persist(batches.flat());
      const applyStart = process.hrtime.bigint();
      for (const batch of batches) sm.apply(batch);
      const applied = usSince(applyStart, args.batches * args.batch);
      // Let the held-back kv writes commit, as they do between a node's turns.
      await new Promise((resolve) => setTimeout(resolve, 250));
      const reads = args.batches * args.batch;
      const readStart = process.hrtime.bigint();
      for (let i = 0; i < reads; i++) sm.get(randomKey());
      const read = usSince(readStart, reads);
      if (round >= warmupRounds) {
        encodeUs.push(encoded);
        putUs.push(applied);
        getUs.push(read);
      }
    }
    // The older half of the history, a step at a time, each step an entry of its own.
    const compactMs: number[] = [];
    for (let below = 1 + compactStepVersionsDefault; below <= index / 2; below += compactStepVersionsDefault) {
      const entry: Entry = { term: 1, index: ++index, kind: 'normal', data: encodeCommand({ op: 'compact', beforeVersion: below }) };
      await persist([entry]);
      const start = process.hrtime.bigint();
      sm.apply([entry]);
      compactMs.push(usSince(start, 1) / 1000);
    }
    const line = (what: string, xs: number[], unit = 'µs', over = 'rounds'): string =>
      `${what.padEnd(22)} median ${median(xs).toFixed(2)} ${unit}  (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} over ${xs.length} ${over})`;
    process.stdout.write(`${args.keys} keys, ${args.valueBytes} B values, puts applied ${args.batch} per batch\n`);
    process.stdout.write(`${line('encode, per command', encodeUs)}\n${line('apply, per put', putUs)}\n${line('get, per key', getUs)}\n`);
    process.stdout.write(`${line(`compact, ${compactStepVersionsDefault} versions`, compactMs, 'ms', 'steps')}\n`);
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

try {
  if (process.argv.includes('--help')) process.stdout.write(`usage: node dist/cli/apply-bench.js [flags]\n\n${flagHelp(applyBenchFlags)}\n`);
  else await main();
} catch (error) {
  if (!(error instanceof FlagError)) throw error;
  process.stderr.write(`apply-bench: ${error.message.replace(/quorumkv apply-bench --help/, 'node dist/cli/apply-bench.js --help')}\n`);
  process.exitCode = 2;
}
