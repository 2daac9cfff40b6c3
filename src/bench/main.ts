/**
 * `npm run bench`: the quick benchmark. Starts a local cluster (or uses --endpoints),
 * preloads keys, then runs closed-loop clients for a fixed time per phase (writes, then
 * linearizable reads, then a 50/50 mix) and prints throughput and latency percentiles
 * from HDR histograms, with the benchmark client's own CPU share so a saturated client is
 * visible. Built on the same runner as `quorumkv bench` (bench.ts), which adds sweeps,
 * more workloads, etcd comparison and reports. Traffic goes to 127.0.0.1 only.
 *
 *   npm run bench -- [--nodes 3] [--concurrency 64] [--seconds 10] [--keys 10000]
 *                    [--value-bytes 128] [--endpoints URL,…] [--phases write,read,mixed]
 */

import { LocalCluster } from './cluster.js';
import { preload, runPoint } from './runner.js';
import { quorumKvTarget } from './target.js';
import { makeKeys, makeValue, workload, workloadNames } from './workload.js';
import type { WorkloadName } from './workload.js';
import { FlagError, parseCount, parseNameList } from './flags.js';
import { UsageError, parseCommand } from '../stdx/command-line.js';
import type { CommandSpec } from '../stdx/command-line.js';
import { createPrng } from '../stdx/prng.js';

interface Options {
  nodes: number;
  concurrency: number;
  seconds: number;
  keys: number;
  valueBytes: number;
  endpoints: string[] | null;
  phases: WorkloadName[];
}

const quickBenchCommand: CommandSpec = {
  name: 'bench',
  summary: 'the quick benchmark: writes, then linearizable reads, then a 50/50 mix, on a fresh local cluster',
  flags: {
    nodes: { kind: 'value', help: 'nodes of the cluster started for the run', default: '3' },
    concurrency: { kind: 'value', help: 'closed-loop clients', default: '64' },
    seconds: { kind: 'value', help: 'measured time per phase', default: '10' },
    keys: { kind: 'value', help: 'distinct keys', default: '10000' },
    'value-bytes': { kind: 'value', help: 'value size in bytes', default: '128' },
    endpoints: { kind: 'value', help: 'a running cluster to use instead, URL,…' },
    phases: { kind: 'value', help: `phases to run, from ${workloadNames.join(', ')}`, default: 'write,read,mixed' },
  },
};

function parseArgs(argv: string[]): Options | null {
  const parsed = parseCommand(quickBenchCommand, argv, {});
  if ('help' in parsed) {
    process.stdout.write(parsed.help);
    return null;
  }
  const v = parsed.values;
  return {
    nodes: parseCount(v.get('nodes') ?? '3', 'nodes', 1, 15),
    concurrency: parseCount(v.get('concurrency') ?? '64', 'concurrency', 1, 4096),
    seconds: Number(v.get('seconds') ?? '10'),
    keys: parseCount(v.get('keys') ?? '10000', 'keys', 1),
    valueBytes: parseCount(v.get('value-bytes') ?? '128', 'value-bytes', 0),
    endpoints: v.has('endpoints') ? (v.get('endpoints') as string).split(',') : null,
    phases: parseNameList(v.get('phases') ?? 'write,read,mixed', 'phases', workloadNames),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o === null) return;
  if (!(o.seconds > 0)) throw new Error(`--seconds must be > 0, got ${o.seconds}`);
  const cluster = o.endpoints === null ? await LocalCluster.start({ nodes: o.nodes }) : null;
  try {
    const endpoints = cluster?.endpoints ?? o.endpoints ?? [];
    const target = await quorumKvTarget({ endpoints, connectionsPerEndpoint: Math.max(64, o.concurrency), readConsistency: 'linearizable', deadlineMs: 10_000 });
    try {
      const keys = makeKeys(o.keys, Math.max(16, String(o.keys).length + 1));
      const value = makeValue(o.valueBytes, createPrng(1));
      process.stdout.write(`quorumkv bench: ${o.endpoints === null ? `${o.nodes} nodes` : endpoints.join(',')}, ${o.concurrency} closed-loop clients, ${o.keys} keys, ${o.valueBytes} B values, ${o.seconds} s per phase (after 1 s warm-up)\n`);
      await preload(target, keys, value, 64);
      process.stdout.write('phase        ops/s  errors  op     p50 ms  p99 ms  p99.9 ms  max ms  client CPU  nodes CPU\n');
      for (const phase of o.phases) {
        const r = await runPoint({ target, workload: workload(phase), keys, value, concurrency: o.concurrency, durationMs: o.seconds * 1000, opsTotal: null, warmupMs: 1000, serverPids: cluster?.pids ?? [], seed: 1, progress: true, label: phase });
        for (const s of r.byOp.length === 2 ? r.byOp.slice(0, 1) : r.byOp.slice(0, -1)) {
          process.stdout.write(
            `${phase.padEnd(11)} ${r.opsPerSec.toFixed(0).padStart(7)}  ${String(s.errors).padStart(6)}  ${s.op.padEnd(5)}  ${s.p50Ms.toFixed(2).padStart(6)}  ${s.p99Ms.toFixed(2).padStart(6)}  ${s.p999Ms.toFixed(2).padStart(8)}  ${s.maxMs.toFixed(1).padStart(6)}  ${(r.clientCpuCores * 100).toFixed(0).padStart(8)}%  ${r.serverCpuCores === null ? '     ?' : r.serverCpuCores.toFixed(2).padStart(6)} cores\n`,
          );
        }
      }
    } finally {
      await target.close();
    }
  } finally {
    await cluster?.destroy();
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError || err instanceof FlagError) {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
