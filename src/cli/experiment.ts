/**
 * `quorumkv experiment quorum|modes|matrix`: the command line of the experiment runners
 * (bench/experiment-*.ts). Node flags pass through to every cluster an experiment starts.
 *
 * Must never: guess at an unknown flag.
 */

import { runMatrixExperiment, matrixDefaults } from '../bench/experiment-matrix.js';
import type { MatrixDimensions } from '../bench/experiment-matrix.js';
import { modeNames, runModesExperiment } from '../bench/experiment-modes.js';
import { runQuorumExperiment } from '../bench/experiment-quorum.js';
import { FlagError, flagHelp, parseBytes, parseCount, parseCountList, parseDurationMs, parseFlags, parseNameList } from '../bench/flags.js';
import type { FlagDef } from '../bench/flags.js';
import { defaultOutDir } from '../bench/report.js';
import { keyDistributions, workloadNames } from '../bench/workload.js';
import type { WorkloadName } from '../bench/workload.js';
import { passedNodeFlags } from './bench.js';
import { ConfigError } from './config.js';

const common: Record<string, FlagDef> = {
  out: { kind: 'value', help: 'report directory (default bench-results/experiment-<kind>-<time>); "none" writes no files' },
  seed: { kind: 'value', help: 'seed of the operation sequence (default 1)' },
  'no-progress': { kind: 'bool', help: 'no live progress line' },
};

const quorumFlags: Record<string, FlagDef> = {
  nodes: { kind: 'value', help: 'nodes: the leader and N-1 followers (default 6)' },
  leader: { kind: 'value', help: 'pinned leader id, or "elected" (default n1)' },
  w: { kind: 'value', help: 'write quorums to measure: 1,3,5 or 1..5 (default 1..N-1)' },
  delay: { kind: 'value', help: 'replication delay range in ms, MIN-MAX (default 0-1000)' },
  writes: { kind: 'value', help: 'writes per W (default 100)' },
  concurrency: { kind: 'value', help: 'writes in flight (default 10)' },
  keys: { kind: 'value', help: 'distinct keys (default 10)' },
  'value-bytes': { kind: 'value', help: 'value size (default 16)' },
  settle: { kind: 'value', help: 'wait before the second divergence snapshot (default 2 × max delay + 1s)' },
  ...common,
};

const modesFlags: Record<string, FlagDef> = {
  modes: { kind: 'value', help: `${modeNames.join(',')} (default all five)` },
  nodes: { kind: 'value', help: 'nodes per cluster (default 5)' },
  workload: { kind: 'value', help: `${workloadNames.join('|')} (default mixed)` },
  concurrency: { kind: 'value', help: 'closed-loop clients (default 16)' },
  duration: { kind: 'value', help: 'measured time per mode (default 3s)' },
  warmup: { kind: 'value', help: 'uncounted warm-up (default 1s)' },
  keys: { kind: 'value', help: 'distinct keys (default 1000)' },
  'value-bytes': { kind: 'value', help: 'value size (default 128)' },
  'no-kill': { kind: 'bool', help: 'skip the scripted leader kill' },
  'kill-delay': { kind: 'value', help: 'replication delay on the leader before the kill, max ms (default 100)' },
  'kill-after': { kind: 'value', help: 'write load before the kill (default 1s)' },
  'kill-writers': { kind: 'value', help: 'concurrent writers during the kill (default 8)' },
  ...common,
};

const matrixFlags: Record<string, FlagDef> = {
  only: { kind: 'value', help: 'dimensions: valueBytes,keyBytes,concurrency,keys,readFraction,distribution (default all)' },
  'value-bytes': { kind: 'value', help: `value sizes (default ${matrixDefaults.valueBytes.join(',')})` },
  'key-bytes': { kind: 'value', help: `key sizes (default ${matrixDefaults.keyBytes.join(',')})` },
  concurrency: { kind: 'value', help: `client counts (default ${matrixDefaults.concurrency.join(',')})` },
  keys: { kind: 'value', help: `store sizes (default ${matrixDefaults.keys.join(',')})` },
  'read-percent': { kind: 'value', help: 'get shares in percent (default 0,50,90,100)' },
  distribution: { kind: 'value', help: 'uniform,hot-cold,zipf (default all)' },
  nodes: { kind: 'value', help: 'nodes (default 3); node flags pass through' },
  duration: { kind: 'value', help: 'measured time per point (default 2s)' },
  warmup: { kind: 'value', help: 'uncounted warm-up per point (default 0.5s)' },
  ...common,
};

export const experimentHelp = `usage: quorumkv experiment quorum|modes|matrix [flags] [node flags]

quorum  write latency and follower divergence vs write quorum W (the seeds' experiment):
${flagHelp(quorumFlags)}

modes   async, W=1, majority, all and chain side by side, plus lost writes after a leader kill:
${flagHelp(modesFlags)}

matrix  one factor at a time: value/key sizes, clients, store size, get/put mix, key distribution:
${flagHelp(matrixFlags)}

examples:
  quorumkv experiment quorum --nodes 6 --w 1,3,5 --writes 100
  quorumkv experiment modes --duration 5s
  quorumkv experiment matrix --only concurrency,valueBytes
`;

function isTrue(v: string | undefined): boolean {
  return v !== undefined && v !== 'false' && v !== '0';
}

export async function runExperimentCommand(argv: string[]): Promise<number> {
  const [kind, ...rest] = argv;
  if (kind === undefined || kind === '--help' || kind === '-h' || rest.includes('--help')) {
    process.stdout.write(experimentHelp);
    return kind === undefined ? 2 : 0;
  }
  const command = ['quorumkv', 'experiment', ...argv].join(' ');
  try {
    if (kind === 'quorum') {
      const { values: v, rest: nodeFlags } = parseFlags(rest, quorumFlags, passedNodeFlags, 'experiment quorum');
      const nodes = parseCount(v.get('nodes') ?? '6', 'nodes', 2, 15);
      const delay = /^(\d+)-(\d+)$/.exec(v.get('delay') ?? '0-1000');
      if (delay === null) throw new FlagError(`--delay must be MIN-MAX in ms, e.g. 0-1000, got "${v.get('delay') ?? ''}"`);
      const [delayMsMin, delayMsMax] = [Number(delay[1]), Number(delay[2])];
      if (delayMsMax < delayMsMin) throw new FlagError('--delay: MIN must not exceed MAX');
      const leader = v.get('leader') ?? 'n1';
      const out = v.get('out') ?? defaultOutDir('experiment-quorum');
      await runQuorumExperiment({
        nodes,
        leader: leader === 'elected' ? null : leader,
        delayMsMin,
        delayMsMax,
        writeQuorums: v.has('w') ? parseCountList(v.get('w') as string, 'w', 0, nodes - 1) : Array.from({ length: nodes - 1 }, (_, i) => i + 1),
        writes: parseCount(v.get('writes') ?? '100', 'writes', 1, 1_000_000),
        concurrency: parseCount(v.get('concurrency') ?? '10', 'concurrency', 1, 1024),
        keys: parseCount(v.get('keys') ?? '10', 'keys', 1, 1_000_000),
        valueBytes: parseBytes(v.get('value-bytes') ?? '16', 'value-bytes', 8, 1024 * 1024),
        settleMs: v.has('settle') ? parseDurationMs(v.get('settle') as string, 'settle') : 2 * delayMsMax + 1000,
        nodeFlags,
        outDir: out === 'none' ? null : out,
        command,
      });
      return 0;
    }
    if (kind === 'modes') {
      const { values: v, rest: nodeFlags } = parseFlags(rest, modesFlags, passedNodeFlags, 'experiment modes');
      const out = v.get('out') ?? defaultOutDir('experiment-modes');
      await runModesExperiment({
        modes: parseNameList(v.get('modes') ?? modeNames.join(','), 'modes', modeNames),
        nodes: parseCount(v.get('nodes') ?? '5', 'nodes', 2, 15),
        workload: parseNameList(v.get('workload') ?? 'mixed', 'workload', workloadNames)[0] as WorkloadName,
        concurrency: parseCount(v.get('concurrency') ?? '16', 'concurrency', 1, 4096),
        durationMs: parseDurationMs(v.get('duration') ?? '3s', 'duration'),
        warmupMs: parseDurationMs(v.get('warmup') ?? '1s', 'warmup'),
        keys: parseCount(v.get('keys') ?? '1000', 'keys', 1, 10_000_000),
        valueBytes: parseBytes(v.get('value-bytes') ?? '128', 'value-bytes', 0, 1024 * 1024),
        kill: !isTrue(v.get('no-kill')),
        killDelayMs: parseCount(v.get('kill-delay') ?? '100', 'kill-delay', 0, 10_000),
        killAfterMs: parseDurationMs(v.get('kill-after') ?? '1s', 'kill-after'),
        killWriters: parseCount(v.get('kill-writers') ?? '8', 'kill-writers', 1, 256),
        nodeFlags,
        outDir: out === 'none' ? null : out,
        command,
        seed: parseCount(v.get('seed') ?? '1', 'seed'),
        progress: !isTrue(v.get('no-progress')),
      });
      return 0;
    }
    if (kind === 'matrix') {
      const { values: v, rest: nodeFlags } = parseFlags(rest, matrixFlags, passedNodeFlags, 'experiment matrix');
      const out = v.get('out') ?? defaultOutDir('experiment-matrix');
      const dimensions: MatrixDimensions = {
        valueBytes: v.has('value-bytes') ? (v.get('value-bytes') as string).split(',').map((s) => parseBytes(s, 'value-bytes', 0, 1024 * 1024)) : matrixDefaults.valueBytes,
        keyBytes: v.has('key-bytes') ? (v.get('key-bytes') as string).split(',').map((s) => parseBytes(s, 'key-bytes', 8, 1024)) : matrixDefaults.keyBytes,
        concurrency: v.has('concurrency') ? parseCountList(v.get('concurrency') as string, 'concurrency', 1, 4096) : matrixDefaults.concurrency,
        keys: v.has('keys') ? parseCountList(v.get('keys') as string, 'keys', 1, 10_000_000) : matrixDefaults.keys,
        readFraction: v.has('read-percent') ? parseCountList(v.get('read-percent') as string, 'read-percent', 0, 100).map((p) => p / 100) : matrixDefaults.readFraction,
        distribution: v.has('distribution') ? parseNameList(v.get('distribution') as string, 'distribution', keyDistributions) : matrixDefaults.distribution,
      };
      await runMatrixExperiment({
        dimensions,
        only: v.has('only') ? parseNameList(v.get('only') as string, 'only', ['valueBytes', 'keyBytes', 'concurrency', 'keys', 'readFraction', 'distribution'] as const) : [],
        nodes: parseCount(v.get('nodes') ?? '3', 'nodes', 1, 15),
        nodeFlags,
        durationMs: parseDurationMs(v.get('duration') ?? '2s', 'duration'),
        warmupMs: parseDurationMs(v.get('warmup') ?? '0.5s', 'warmup'),
        outDir: out === 'none' ? null : out,
        command,
        seed: parseCount(v.get('seed') ?? '1', 'seed'),
        progress: !isTrue(v.get('no-progress')),
      });
      return 0;
    }
    throw new FlagError(`unknown experiment "${kind}": quorum, modes or matrix`);
  } catch (error) {
    if (error instanceof FlagError) throw new ConfigError(error.message);
    throw error;
  }
}
