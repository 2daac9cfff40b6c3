/**
 * `quorumkv sim`: runs simulator seeds and reports them, one compact line per run, then a
 * summary; on failure the violated property, the scenario, a readable trace tail and the
 * exact command that replays the run. Output is a pure function of the arguments (same
 * flags, same bytes) unless `--timing` asks for wall-clock figures or `--soak-seconds`
 * runs for a wall-clock budget (the only two uses of the clock in sim/).
 *
 *   quorumkv sim --seeds N [--seed S] [--nodes 3..7] [--mode M] [--profile P]
 *                [--ticks-max N | --duration-ms N] [--planted BUG[,BUG]] [--timing]
 *                [--soak-seconds N] [--trace] [--disable-checks P[,P]]
 *
 * Must never: print anything that differs between two identical invocations without
 * --timing/--soak-seconds, or exit 0 when any run failed.
 */

import { pathToFileURL } from 'node:url';
import type { PlantedBugs } from '../core/options.js';
import { UsageError, parseCommand } from '../stdx/command-line.js';
import type { CommandSpec, HelpRequest } from '../stdx/command-line.js';
import { checkedProperties, formatUs } from './checkers.js';
import { plantedBugNames, runSimulation, type PlantedBugName, type SimOptions, type SimResult } from './run.js';
import { createPrng } from '../stdx/prng.js';
import { applyOverrides, drawSwarm, nodesMax, nodesMin, parseOverrides, simModeNames, simProfiles, type SimProfile, type SwarmOverrides } from './swarm.js';

export class SimUsageError extends Error {
  override readonly name = 'SimUsageError';
}

interface SimArgs {
  readonly seeds: number;
  readonly seed: number | null;
  readonly nodes?: number;
  readonly mode?: string;
  readonly profile?: SimProfile;
  readonly ticksMax?: number;
  readonly durationMs?: number;
  readonly planted?: PlantedBugs;
  readonly disabledChecks?: readonly string[];
  readonly overrides?: SwarmOverrides;
  readonly timing: boolean;
  readonly trace: boolean;
  readonly soakSeconds: number | null;
}

export const simCommand: CommandSpec = {
  name: 'sim',
  summary: 'deterministic simulation of a quorumkv cluster (faults, clients, checkers)',
  flags: {
    seeds: { kind: 'value', help: 'number of seeds to run (1 with --seed)', default: '100' },
    seed: { kind: 'value', help: 'first seed; a failure prints the --seed that replays it', default: '1' },
    nodes: { kind: 'value', help: `cluster size ${nodesMin}..${nodesMax} (default: drawn per seed)` },
    mode: { kind: 'value', help: `replication mode: ${simModeNames.join(', ')} (default: drawn per seed, majority most often)` },
    profile: { kind: 'value', help: `scenario mix: ${simProfiles.join(', ')}`, default: 'swarm' },
    'ticks-max': { kind: 'value', help: 'fault phase of N ticks (10 ms each) instead of the drawn 2-6 s' },
    'duration-ms': { kind: 'value', help: 'fault phase of N virtual ms' },
    planted: { kind: 'value', help: `test-only bugs, comma-separated: ${plantedBugNames.join(', ')}` },
    set: { kind: 'value', help: 'fix scenario parameters instead of drawing them, NAME=V[,...] (e.g. reorderRate=0.3,faultWeights.crash=0); see swarm.ts SwarmConfig' },
    'disable-checks': { kind: 'value', help: 'properties not to enforce (comma-separated)' },
    timing: { kind: 'bool', help: 'add wall-clock figures (output is then not reproducible)' },
    'soak-seconds': { kind: 'value', help: 'run consecutive seeds until N wall-clock seconds pass' },
    trace: { kind: 'bool', help: 'print every trace line of each run (use with one seed)' },
  },
};

function parseInteger(flag: string, raw: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined || !/^\d+$/.test(raw)) throw new SimUsageError(`${flag} needs a non-negative integer, got ${raw ?? 'nothing'}`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new SimUsageError(`${flag} must be in [${min}, ${max}], got ${raw}`);
  return value;
}

export function parseSimArgs(argv: readonly string[]): SimArgs | HelpRequest {
  let parsed;
  try {
    parsed = parseCommand(simCommand, argv, {});
  } catch (error) {
    if (error instanceof UsageError) throw new SimUsageError(error.message);
    throw error;
  }
  if ('help' in parsed) return parsed;
  // Keyed as typed (`--seed`), given flags only: defaults are applied below.
  const flags = new Map([...parsed.values].filter(([name]) => parsed.given.has(name)).map(([name, value]) => [`--${name}`, value]));

  const seed = flags.has('--seed') ? parseInteger('--seed', flags.get('--seed'), 0) : null;
  const seeds = flags.has('--seeds') ? parseInteger('--seeds', flags.get('--seeds'), 1) : seed !== null ? 1 : 100;
  const mode = flags.get('--mode');
  if (mode !== undefined && !simModeNames.includes(mode)) throw new SimUsageError(`--mode must be one of ${simModeNames.join(', ')}, got ${mode}`);
  const profile = flags.get('--profile');
  if (profile !== undefined && !(simProfiles as readonly string[]).includes(profile)) {
    throw new SimUsageError(`--profile must be one of ${simProfiles.join(', ')}, got ${profile}`);
  }
  let planted: PlantedBugs | undefined;
  const plantedRaw = flags.get('--planted');
  if (plantedRaw !== undefined) {
    const bugs: Record<string, boolean> = {};
    for (const name of plantedRaw.split(',')) {
      if (!(plantedBugNames as readonly string[]).includes(name)) {
        throw new SimUsageError(`--planted: unknown bug ${name}; known: ${plantedBugNames.join(', ')}`);
      }
      bugs[name as PlantedBugName] = true;
    }
    planted = bugs;
  }
  const disabled = flags.get('--disable-checks');
  for (const p of disabled?.split(',') ?? []) {
    if (p.length > 0 && !(checkedProperties as readonly string[]).includes(p)) {
      throw new SimUsageError(`--disable-checks: unknown property ${p}; known: ${checkedProperties.join(', ')}`);
    }
  }
  let overrides: SwarmOverrides | undefined;
  const setRaw = flags.get('--set');
  if (setRaw !== undefined) {
    try {
      overrides = parseOverrides(setRaw);
    } catch (e) {
      throw new SimUsageError(e instanceof Error ? e.message : String(e));
    }
  }
  return {
    seeds,
    seed,
    ...(flags.has('--nodes') ? { nodes: parseInteger('--nodes', flags.get('--nodes'), nodesMin, nodesMax) } : {}),
    ...(mode !== undefined ? { mode } : {}),
    ...(profile !== undefined ? { profile: profile as SimProfile } : {}),
    ...(flags.has('--ticks-max') ? { ticksMax: parseInteger('--ticks-max', flags.get('--ticks-max'), 1) } : {}),
    ...(flags.has('--duration-ms') ? { durationMs: parseInteger('--duration-ms', flags.get('--duration-ms'), 1) } : {}),
    ...(planted !== undefined ? { planted } : {}),
    ...(disabled !== undefined ? { disabledChecks: disabled.split(',').filter((x) => x.length > 0) } : {}),
    ...(overrides !== undefined ? { overrides } : {}),
    timing: flags.has('--timing'),
    trace: flags.has('--trace'),
    soakSeconds: flags.has('--soak-seconds') ? parseInteger('--soak-seconds', flags.get('--soak-seconds'), 1) : null,
  };
}

/** One compact line per run. */
export function statusLine(r: SimResult): string {
  const s = r.stats;
  const verdict = r.ok ? 'ok  ' : 'FAIL';
  const lin = r.linearizability === 'undecided' ? ' lin=undecided' : '';
  return (
    `seed ${r.seed} ${verdict} virtual ${(s.virtualMs / 1000).toFixed(2)}s faults ${s.faults} crashes ${s.crashes} ` +
    `leaders ${s.leaderChanges} msgs ${s.messages} ops ${s.clientOps} (ok ${s.opsOk}, unknown ${s.opsUnknown}) reads ${s.readsAtLeader}L/${s.readsAtFollowers}F${s.readsByLease > 0 ? ` (${s.readsByLease} by lease)` : ''}${lin} hash ${r.traceHash}` +
    (s.memberChanges > 0 ? ` members ${s.memberChanges}` : '') +
    (s.handOvers > 0 ? ` hand-overs ${s.handOvers}` : '') +
    (r.ok ? '' : ` ${r.violation?.property ?? '?'}`)
  );
}

/** The failure report: property, details, scenario, trace tail, replay command. */
export function failureReport(r: SimResult): string {
  const v = r.violation;
  const lines = [
    `  violated: ${v?.property ?? '?'} at ${formatUs(v?.atUs ?? 0)}`,
    ...(v?.details ?? '').split('\n').map((l) => `    ${l}`),
    `  scenario: ${r.scenario}`,
    `  notable events (last ${r.notesTail.length}):`,
    ...r.notesTail.map((l) => `    ${l}`),
    `  trace tail (last ${r.traceTail.length} events):`,
    ...r.traceTail.map((l) => `    ${l}`),
    `  replay: ${r.replay}`,
  ];
  return lines.join('\n');
}

/** Every this many runs (the first included), the seed is run twice and the trace hashes compared. */
const rerunEvery = 25;

interface Totals {
  runs: number;
  failed: number;
  virtualMs: number;
  faults: number;
  crashes: number;
  ops: number;
  opsOk: number;
  opsUnknown: number;
  txnsOk: number;
  leaseExpiries: number;
  watchVersions: number;
  histories: number;
  historyOps: number;
  undecided: number;
  events: number;
  readsAtLeader: number;
  readsAtFollowers: number;
  readsByLease: number;
  memberChanges: number;
  leaderRemovals: number;
  handOvers: number;
}

/** Runs `quorumkv sim`. Returns the exit code: 0 when every run passed, 1 on any failure, 2 on bad usage. */
export async function runSimCommand(argv: string[], write: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  let args: SimArgs | HelpRequest;
  try {
    args = parseSimArgs(argv);
  } catch (e) {
    if (e instanceof SimUsageError) {
      process.stderr.write(`quorumkv sim: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if ('help' in args) {
    write(args.help);
    return 0;
  }
  if (args.overrides !== undefined) {
    try {
      applyOverrides(drawSwarm(createPrng(0)), args.overrides);
    } catch (e) {
      process.stderr.write(`quorumkv sim: --set: ${e instanceof Error ? e.message : String(e)}\n`);
      return 2;
    }
  }
  const base: Omit<SimOptions, 'seed'> = {
    ...(args.nodes !== undefined ? { nodes: args.nodes } : {}),
    ...(args.mode !== undefined ? { mode: args.mode } : {}),
    ...(args.profile !== undefined ? { profile: args.profile } : {}),
    ...(args.ticksMax !== undefined ? { ticksMax: args.ticksMax } : {}),
    ...(args.durationMs !== undefined ? { durationMs: args.durationMs } : {}),
    ...(args.planted !== undefined ? { planted: args.planted } : {}),
    ...(args.disabledChecks !== undefined ? { disabledChecks: args.disabledChecks } : {}),
    ...(args.overrides !== undefined ? { overrides: args.overrides } : {}),
    ...(args.trace ? { trace: true } : {}),
  };
  const totals: Totals = { runs: 0, failed: 0, virtualMs: 0, faults: 0, crashes: 0, ops: 0, opsOk: 0, opsUnknown: 0, txnsOk: 0, leaseExpiries: 0, watchVersions: 0, histories: 0, historyOps: 0, undecided: 0, events: 0, readsAtLeader: 0, readsAtFollowers: 0, readsByLease: 0, memberChanges: 0, leaderRemovals: 0, handOvers: 0 };
  const failedSeeds: number[] = [];
  let reruns = 0;
  // The wall clock is read only for --timing and the --soak-seconds budget.
  const wallStartMs = args.timing || args.soakSeconds !== null ? Date.now() : 0;
  let first = args.seed ?? 1;
  if (args.soakSeconds !== null) {
    first = args.seed ?? Date.now() % 1_000_000_000;
    write(`soak: ${args.soakSeconds} s of consecutive seeds from ${first} (replay any with --seed)\n`);
  }
  const runOne = (seed: number): void => {
    const runStartMs = args.timing ? Date.now() : 0;
    const r = runSimulation({ ...base, seed });
    totals.runs++;
    totals.virtualMs += r.stats.virtualMs;
    totals.faults += r.stats.faults;
    totals.crashes += r.stats.crashes;
    totals.ops += r.stats.clientOps;
    totals.opsOk += r.stats.opsOk;
    totals.opsUnknown += r.stats.opsUnknown;
    totals.txnsOk += r.stats.txnsOk;
    totals.leaseExpiries += r.stats.leaseExpiries;
    totals.watchVersions += r.stats.watchVersions;
    totals.events += r.stats.events;
    totals.readsAtLeader += r.stats.readsAtLeader;
    totals.readsAtFollowers += r.stats.readsAtFollowers;
    totals.readsByLease += r.stats.readsByLease;
    totals.memberChanges += r.stats.memberChanges;
    totals.leaderRemovals += r.stats.leaderRemovals;
    totals.handOvers += r.stats.handOvers;
    if (r.linearizability === 'ok') {
      totals.histories++;
      totals.historyOps += r.stats.historyOpsChecked;
    } else if (r.linearizability === 'undecided') {
      totals.undecided++;
    }
    write(`${statusLine(r)}${args.timing ? ` wall ${Date.now() - runStartMs}ms` : ''}\n`);
    if (totals.runs % rerunEvery === 1) {
      // Determinism: the same seed must give the same trace, event for event.
      reruns++;
      const again = runSimulation({ ...base, seed });
      if (again.traceHash !== r.traceHash || again.ok !== r.ok) {
        totals.failed++;
        failedSeeds.push(seed);
        write(`  nondeterminism: seed ${seed} gave trace hash ${r.traceHash} then ${again.traceHash}\n  replay: ${r.replay}\n`);
        return;
      }
    }
    if (args.trace && r.fullTrace !== undefined) write(`${r.fullTrace.map((l) => `    ${l}`).join('\n')}\n`);
    if (!r.ok) {
      totals.failed++;
      failedSeeds.push(seed);
      write(`${failureReport(r)}\n`);
    }
  };
  if (args.soakSeconds !== null) {
    const budgetMs = args.soakSeconds * 1000;
    for (let seed = first; Date.now() - wallStartMs < budgetMs; seed++) runOne(seed);
  } else {
    for (let seed = first; seed < first + args.seeds; seed++) runOne(seed);
  }
  write(
    `sim: ${totals.runs} runs, ${totals.runs - totals.failed} passed, ${totals.failed} failed; ` +
      `${(totals.virtualMs / 1000).toFixed(1)} simulated seconds; ${totals.faults} faults (${totals.crashes} crashes); ` +
      `${totals.ops} client operations (${totals.opsOk} ok, ${totals.opsUnknown} unknown outcome; ${totals.txnsOk} transactions answered, ${totals.leaseExpiries} lease expiries checked, ${totals.watchVersions} watched versions checked); ` +
      `${totals.readsAtLeader + totals.readsAtFollowers} linearizable reads served (${totals.readsAtFollowers} by followers through a read index; ${totals.readsByLease} read points given by lease); ` +
      `${totals.memberChanges} membership changes (${totals.leaderRemovals} removing the leader); ${totals.handOvers} leadership hand-overs; ` +
      `${totals.histories} histories checked linearizable (${totals.historyOps} operations)` +
      `${totals.undecided > 0 ? `, ${totals.undecided} undecided` : ''}; ${reruns} seeds rerun for determinism\n`,
  );
  if (args.timing) {
    const wallMs = Date.now() - wallStartMs;
    write(`timing: ${(wallMs / 1000).toFixed(1)} s wall, ${((totals.runs * 1000) / Math.max(1, wallMs)).toFixed(1)} runs/s, ${Math.round((totals.events * 1000) / Math.max(1, wallMs))} events/s\n`);
  }
  if (failedSeeds.length > 0) {
    write(`failed seeds: ${failedSeeds.join(' ')}\n`);
    return 1;
  }
  return 0;
}

// `node dist/sim/main.js …` works without the CLI wiring (npm run sim:soak uses it).
const invoked = process.argv[1];
if (invoked !== undefined && import.meta.url === pathToFileURL(invoked).href) {
  runSimCommand(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
