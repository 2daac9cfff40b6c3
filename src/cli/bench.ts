/**
 * `quorumkv bench`: the command line of the benchmark runner (bench/bench.ts). Reads the
 * flags, passes node flags (`--write-quorum`, `--topology`, …, as `quorumkv up` takes them)
 * through to the cluster it starts, and runs.
 *
 * Must never: guess at an unknown flag (a typo would measure the wrong thing).
 */

import { runBench } from '../bench/bench.js';
import { FlagError, flagHelp, legacyPlainArgs, parseBytes, parseCount, parseCountList, parseDurationMs, parseFlags, parseNameList, pathChoice } from '../bench/flags.js';
import type { FlagDef } from '../bench/flags.js';
import { defaultOutDir } from '../bench/report.js';
import { workloadNames } from '../bench/workload.js';
import { clusterFileEndpoints, defaultClusterFile, readClusterFile } from './cluster-file.js';
import { ConfigError, nodeFlags } from './config.js';
import { nodeStatus } from '../bench/cluster.js';
import { comparedSystems } from '../bench/systems.js';

const benchFlags: Record<string, FlagDef> = {
  workload: { kind: 'value', help: `${workloadNames.join('|')}; a comma list runs several (default mixed)` },
  concurrency: { kind: 'value', help: 'closed-loop clients; a list sweeps: 5,10,20 or 1..8 (default 1,16,64)' },
  duration: { kind: 'value', help: 'measured time per point: 10s, 500ms, 1m (default 10s)' },
  ops: { kind: 'value', help: 'measure this many operations per point instead of a duration' },
  warmup: { kind: 'value', help: 'uncounted warm-up before each point (default 1s)' },
  'first-warmup': { kind: 'value', help: "uncounted warm-up before each system's first point, so a fresh process has compiled its hot code (default 15s; with --warmup given: the same as --warmup)" },
  keys: { kind: 'value', help: 'distinct keys (default 10000)' },
  'key-bytes': { kind: 'value', help: 'key size in bytes (default 16)' },
  'value-bytes': { kind: 'value', help: 'value size in bytes (default 128)' },
  'read-consistency': { kind: 'value', help: 'linearizable (default) | leader | local | session' },
  'reads-from': { kind: 'value', help: 'where the client library sends linearizable reads: leader (default) | any (followers serve them by read index)' },
  transport: { kind: 'value', help: "the client library's transport: http (default) | grpc (etcd: the etcd3 client, gRPC, either way)" },
  plain: { kind: 'bool', help: 'no client library: one plain HTTP request per operation (quorumkv: PUT/GET /kv; etcd: its JSON gateway); --plain leader|follower|any still works' },
  to: { kind: 'value', help: 'where operations go: leader | follower (needs --plain) | any (every node in turn; the client library: reads from any node); etcd: that member (default every member)' },
  'no-batching': { kind: 'bool', help: 'one HTTP request per operation instead of the client\'s POST /batch gathering' },
  endpoints: { kind: 'value', help: 'a running cluster: URL,… (default: npm start\'s, if ./data/cluster.json names a running node; else start one)' },
  'cluster-file': { kind: 'value', help: 'a running cluster\'s cluster.json (default ./data/cluster.json, used when a node in it answers)' },
  nodes: { kind: 'value', help: 'start a fresh cluster of N nodes for the run (default 3); so does any node flag, which passes through' },
  compare: { kind: 'value', help: 'etcd, redis or etcd,redis: run the same workload against a local 3-member etcd / a redis primary with 2 replicas (appendfsync always, WAIT 2) and print the ratio' },
  rounds: { kind: 'value', help: 'measure every system this many times, alternating, each from a fresh start; the comparison gives medians and the range of the rounds\' ratios (default 1)' },
  'etcd-endpoints': { kind: 'value', help: 'use a running etcd (http://host:port,…) instead of starting one' },
  'etcd-bin': { kind: 'value', help: 'etcd binary (default /usr/bin/etcd; installed with apt-get as root if missing)' },
  'redis-bin': { kind: 'value', help: 'redis-server binary (default /usr/bin/redis-server; installed with apt-get as root if missing)' },
  'no-preload': { kind: 'bool', help: 'do not write every key before read workloads' },
  out: { kind: 'value', help: 'report directory (default bench-results/bench-<time>); "none" writes no files' },
  seed: { kind: 'value', help: 'seed of the operation sequence (default 1)' },
  'deadline-ms': { kind: 'value', help: 'deadline of one operation, retries included (default 10000)' },
  'no-progress': { kind: 'bool', help: 'no live progress line' },
  profile: { kind: 'value', help: 'write a V8 CPU profile (.cpuprofile) of every node started into this directory' },
};

export const benchHelp = `usage: quorumkv bench [flags] [node flags]

Closed-loop clients through the client library against --endpoints, --cluster-file, the
cluster npm start runs (./data/cluster.json, when one of its nodes answers), or else a
local cluster started for the run (--nodes N or any node flag, e.g. --write-quorum 1,
always starts one).
Prints a table; writes results.csv, results.json, report.html and SVG charts to --out.

${flagHelp(benchFlags)}

examples:
  quorumkv bench --workload mixed --concurrency 5,10,20 --duration 5s --out /tmp/mixed
  quorumkv bench --workload write,mixed,read-heavy --concurrency 1,16,64 --compare etcd
  quorumkv bench --cluster-file ./data/cluster.json --workload read-heavy --concurrency 64
  quorumkv bench --plain --to follower --workload write --concurrency 64 --compare etcd
  quorumkv bench --plain --workload write,read-heavy --concurrency 64 --compare etcd --rounds 5
  quorumkv bench --workload fill --keys 1m --value-bytes 1k --concurrency 64 --compare etcd,redis
`;

/** Node flags pass through to the nodes the bench starts (those it does not choose per node). */
export const passedNodeFlags: Readonly<Record<string, FlagDef>> = Object.fromEntries(
  Object.entries(nodeFlags).filter(([name]) => !['id', 'peers', 'listen-http', 'listen-peer', 'listen-grpc', 'cluster-id', 'data-dir'].includes(name)),
);

function isTrue(v: string | undefined): boolean {
  return v !== undefined && v !== 'false' && v !== '0';
}

/** The endpoints of the cluster `file` describes if one of its nodes answers now; else null. */
async function runningLocalCluster(file: string): Promise<string[] | null> {
  let endpoints: string[];
  try {
    endpoints = await clusterFileEndpoints(file);
  } catch {
    return null;
  }
  const answers = await Promise.all(endpoints.map((e) => nodeStatus(e, statusProbeTimeoutMs).then(() => true, () => false)));
  if (!answers.includes(true)) {
    process.stdout.write(`no node of ${file} answers; starting a cluster for the run\n`);
    return null;
  }
  process.stdout.write(`benchmarking the running cluster of ${file} (${endpoints.join(', ')}); --nodes N starts a fresh one\n`);
  return endpoints;
}

/** Each node's data directory by HTTP URL, as the cluster file records it (for the fill's disk figures). */
async function clusterDataDirs(file: string): Promise<Record<string, string>> {
  try {
    return Object.fromEntries((await readClusterFile(file)).nodes.filter((n) => n.dataDir !== '').map((n) => [n.http, n.dataDir]));
  } catch {
    return {};
  }
}

/** How long a node of ./data/cluster.json gets to answer before the bench starts its own cluster. */
const statusProbeTimeoutMs = 1000;

export async function runBenchCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchHelp);
    return 0;
  }
  try {
    const { values: v, rest, positional } = parseFlags(legacyPlainArgs(argv), benchFlags, passedNodeFlags, 'bench');
    if (positional.length > 0) throw new FlagError(`unexpected argument ${positional[0] ?? ''}`);
    const path = pathChoice(v);
    let endpoints: string[] | null = v.has('endpoints') ? (v.get('endpoints') as string).split(',').map((e) => e.trim()).filter(Boolean) : null;
    let clusterFile: string | null = null;
    if (endpoints === null && v.has('cluster-file')) {
      clusterFile = v.get('cluster-file') as string;
      endpoints = await clusterFileEndpoints(clusterFile);
    }
    // Like check and the client commands, the bench finds npm start's cluster by itself;
    // asking for a cluster's shape (--nodes, a node flag) always starts a fresh one.
    if (endpoints === null && !v.has('nodes') && rest.length === 0) {
      endpoints = await runningLocalCluster(defaultClusterFile);
      if (endpoints !== null) clusterFile = defaultClusterFile;
    }
    if (endpoints !== null && rest.length > 0) throw new FlagError(`node flags (${rest.join(' ')}) only apply to a cluster the bench starts, not to --endpoints`);
    const consistency = v.get('read-consistency') ?? 'linearizable';
    if (!['linearizable', 'leader', 'local', 'session'].includes(consistency)) throw new FlagError(`--read-consistency must be linearizable, leader, local or session, got "${consistency}"`);
    const out = v.get('out') ?? defaultOutDir('bench');
    await runBench({
      workloads: parseNameList(v.get('workload') ?? 'mixed', 'workload', workloadNames),
      concurrency: parseCountList(v.get('concurrency') ?? '1,16,64', 'concurrency', 1, 4096),
      durationMs: parseDurationMs(v.get('duration') ?? '10s', 'duration'),
      opsTotal: v.has('ops') ? parseCount(v.get('ops') as string, 'ops', 1) : null,
      warmupMs: parseDurationMs(v.get('warmup') ?? '1s', 'warmup'),
      firstWarmupMs: parseDurationMs(v.get('first-warmup') ?? v.get('warmup') ?? '15s', 'first-warmup'),
      keys: parseCount(v.get('keys') ?? '10000', 'keys', 1, 10_000_000),
      keyBytes: parseBytes(v.get('key-bytes') ?? '16', 'key-bytes', 1, 1024),
      valueBytes: parseBytes(v.get('value-bytes') ?? '128', 'value-bytes', 0, 1024 * 1024),
      readConsistency: consistency as 'linearizable' | 'leader' | 'local' | 'session',
      linearizableReadsFrom: path.linearizableReadsFrom,
      batching: !v.has('no-batching'),
      transport: path.transport,
      plain: path.plain,
      to: path.to,
      endpoints,
      dataDirs: clusterFile === null ? {} : await clusterDataDirs(clusterFile),
      nodes: parseCount(v.get('nodes') ?? '3', 'nodes', 1, 15),
      nodeFlags: rest,
      rounds: parseCount(v.get('rounds') ?? '1', 'rounds', 1, 100),
      compare: v.has('compare') ? [...new Set(parseNameList(v.get('compare') as string, 'compare', comparedSystems))] : [],
      etcdEndpoints: v.has('etcd-endpoints') ? (v.get('etcd-endpoints') as string).split(',').map((e) => e.trim()).filter(Boolean) : null,
      etcdBin: v.get('etcd-bin') ?? null,
      redisBin: v.get('redis-bin') ?? null,
      installServers: true,
      preload: !isTrue(v.get('no-preload')),
      outDir: out === 'none' ? null : out,
      seed: parseCount(v.get('seed') ?? '1', 'seed'),
      deadlineMs: parseCount(v.get('deadline-ms') ?? '10000', 'deadline-ms', 1),
      progress: !isTrue(v.get('no-progress')),
      profileDir: v.get('profile') ?? null,
      command: ['quorumkv', 'bench', ...argv].join(' '),
    });
    return 0;
  } catch (error) {
    if (error instanceof FlagError) throw new ConfigError(error.message);
    throw error;
  }
}
