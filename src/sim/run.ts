/**
 * One simulator run: seed -> swarm draw -> world (fault phase, heal, convergence) -> the
 * end-of-run checks (logs pairwise, acknowledged writes, linearizability of the history).
 * The result is a pure function of the options: no Date, no Math.random, no timers, no
 * I/O, no promise. Two calls with the same options return the same traceHash and the same
 * report, which is what makes `--seed S` a replay.
 *
 * Must never: catch a violation and carry on, or report ok for a run whose history could
 * not be decided (that is counted separately as `linearizability: 'undecided'`).
 */

import type { PlantedBugs } from '../core/options.js';
import { createPrng } from '../stdx/prng.js';
import { SimViolation, formatUs } from './checkers.js';
import { checkLinearizable } from './linearizability.js';
import { applyOverrides, describeSwarm, drawSwarm, formatOverrides, type SimProfile, type SwarmConfig, type SwarmOverrides } from './swarm.js';
import { World } from './world.js';

export interface SimOptions {
  /** Any safe non-negative integer. */
  readonly seed: number;
  /** Cluster size 3..7 (default: drawn). */
  readonly nodes?: number;
  /** Replication mode (see swarm.ts simModes; default majority). */
  readonly mode?: string;
  readonly profile?: SimProfile;
  /** Length of the fault phase in virtual ms (default: drawn, 2-6 s). */
  readonly durationMs?: number;
  /** Length of the fault phase in ticks of the simulated tick (10 ms); overrides durationMs. */
  readonly ticksMax?: number;
  /** Test-only: break the core/driver on purpose to prove the checkers bite. */
  readonly planted?: PlantedBugs;
  /** Keep every trace line in the result (memory-hungry; for one seed at a time). */
  readonly trace?: boolean;
  /** Budget of the linearizability search per key. */
  readonly linearizabilityStepsMax?: number;
  /** Checker properties not to enforce (to show a planted bug is also caught by its consequences). */
  readonly disabledChecks?: readonly string[];
  /** Replaces drawn scenario parameters (`--set name=value`, e.g. reorderRate=0.3, faultWeights.crash=0). */
  readonly overrides?: SwarmOverrides;
}

export interface SimStats {
  readonly virtualMs: number;
  readonly events: number;
  readonly messages: number;
  readonly messagesLost: number;
  readonly faults: number;
  readonly crashes: number;
  readonly clientOps: number;
  readonly opsOk: number;
  readonly opsUnknown: number;
  readonly txnsOk: number;
  /** Lease expiries checked against the keep-alives their holders saw acknowledged. */
  readonly leaseExpiries: number;
  /** Versions delivered to the watchers and checked against the history. */
  readonly watchVersions: number;
  readonly historyOpsChecked: number;
  readonly leaderChanges: number;
  /** Linearizable reads served by the leader itself, and by followers through the leader's read index. */
  readonly readsAtLeader: number;
  readonly readsAtFollowers: number;
  /** Read points leaders gave under a read lease (for their own reads and their followers'), not by a round. */
  readonly readsByLease: number;
  /** Membership changes a leader accepted, and how many of them removed that leader. */
  readonly memberChanges: number;
  readonly leaderRemovals: number;
  /** Leadership hand-overs started (hand-overs.ts). */
  readonly handOvers: number;
}

export interface SimViolationReport {
  readonly property: string;
  readonly atUs: number;
  readonly details: string;
}

export interface SimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation?: SimViolationReport;
  readonly traceHash: string;
  readonly stats: SimStats;
  /** ok: the history was checked and is linearizable; undecided: the search budget ran out. */
  readonly linearizability: 'ok' | 'undecided' | 'violated' | 'not-checked';
  /** The scenario the seed drew (one line). */
  readonly scenario: string;
  /** The last ~60 trace lines, formatted; empty when ok. */
  readonly traceTail: readonly string[];
  /** The last ~30 notable lines (faults, crashes, leader changes), formatted; empty when ok. */
  readonly notesTail: readonly string[];
  /** The command that replays this run. */
  readonly replay: string;
  /** Every trace line, only with `trace: true`. */
  readonly fullTrace?: readonly string[];
}

export const plantedBugNames = [
  'commitOldTermByCount',
  'voteWithoutLogCheck',
  'applyBeforeCommit',
  'ackBeforeFlush',
  'followerReadBeforeApply',
  'readJoinsSentRound',
  'readLeaseOnTickCount',
  'leaseKeptThroughTransfer',
  'quietAppendCountsAsAck',
  'configOnCommit',
  'configChangeBeforeOwnTermCommit',
  'txnSplitAcrossEntries',
  'leaseDeadlinesOnFollowerClock',
  'watchSkipsFromVersion',
  'historyValueFromCurrent',
  'valueRowFreedOnChange',
  'valueRowKeptAtCompaction',
] as const;
export type PlantedBugName = (typeof plantedBugNames)[number];

/** 32 bits of seed material from any safe integer (the PRNG takes 32 bits). */
export function seed32(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  return (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
}

export function replayCommand(options: SimOptions): string {
  const parts = ['quorumkv', 'sim', '--seed', String(options.seed)];
  if (options.nodes !== undefined) parts.push('--nodes', String(options.nodes));
  if (options.mode !== undefined) parts.push('--mode', options.mode);
  if (options.profile !== undefined) parts.push('--profile', options.profile);
  if (options.ticksMax !== undefined) parts.push('--ticks-max', String(options.ticksMax));
  else if (options.durationMs !== undefined) parts.push('--duration-ms', String(options.durationMs));
  const planted = plantedBugNames.filter((b) => options.planted?.[b] === true);
  if (planted.length > 0) parts.push('--planted', planted.join(','));
  if (options.overrides !== undefined && Object.keys(options.overrides).length > 0) parts.push('--set', formatOverrides(options.overrides));
  if (options.disabledChecks !== undefined && options.disabledChecks.length > 0) parts.push('--disable-checks', options.disabledChecks.join(','));
  return parts.join(' ');
}

export function runSimulation(options: SimOptions): SimResult {
  const prng = createPrng(seed32(options.seed));
  const tickMs = 10;
  const faultPhaseMs = options.ticksMax !== undefined ? options.ticksMax * tickMs : options.durationMs;
  const drawn = drawSwarm(prng, {
    ...(options.profile !== undefined ? { profile: options.profile } : {}),
    ...(options.nodes !== undefined ? { nodes: options.nodes } : {}),
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
    ...(faultPhaseMs !== undefined ? { faultPhaseMs } : {}),
  });
  const config: SwarmConfig = options.overrides !== undefined ? applyOverrides(drawn, options.overrides) : drawn;
  const planted = options.planted !== undefined && plantedBugNames.some((b) => options.planted?.[b] === true) ? options.planted : null;
  const world = new World({
    config,
    prng,
    planted,
    traceFull: options.trace === true,
    ...(options.disabledChecks !== undefined ? { disabledChecks: options.disabledChecks } : {}),
  });
  let violation: SimViolationReport | undefined;
  let linearizability: SimResult['linearizability'] = 'not-checked';
  let historyOpsChecked = 0;
  try {
    world.run();
    const drivers = world.drivers();
    world.checker.checkLogsPairwise(drivers);
    world.checker.checkAckedWrites(world.acked, drivers);
    world.checker.checkLostWritesReported(world.acked);
    world.checker.checkBrokenAuditsExplained();
    if (config.mode.linearizable) {
      const history = world.recorder.history();
      const verdict = checkLinearizable(history, options.linearizabilityStepsMax !== undefined ? { stepsMax: options.linearizabilityStepsMax } : {});
      if (verdict.ok === true) {
        linearizability = 'ok';
        historyOpsChecked = verdict.opsChecked;
      } else if (verdict.ok === 'unknown') {
        linearizability = 'undecided';
      } else {
        linearizability = 'violated';
        throw new SimViolation('linearizability', world.nowUs(), `key ${JSON.stringify(verdict.key)}: ${verdict.reason}\n${verdict.explanation}`);
      }
    }
  } catch (e) {
    if (!(e instanceof SimViolation)) throw e;
    violation = { property: e.property, atUs: e.atUs, details: e.details };
    world.trace.note(`${e.atUs} * VIOLATION ${e.property}`);
  }
  const ok = violation === undefined;
  const cs = world.clientStats;
  const reads = world.readsServed();
  const result: SimResult = {
    seed: options.seed,
    ok,
    ...(violation !== undefined ? { violation } : {}),
    traceHash: world.trace.hash(),
    stats: {
      virtualMs: Math.floor(world.nowUs() / 1000),
      events: world.stats.events,
      messages: world.stats.messages,
      messagesLost: world.stats.messagesLost,
      faults: world.stats.faults,
      crashes: world.stats.crashes,
      clientOps: cs.ops,
      opsOk: cs.opsOk,
      opsUnknown: cs.opsUnknown,
      txnsOk: cs.txnsOk,
      leaseExpiries: world.leaseLedger.expiries,
      watchVersions: world.watcherStats.versionsDelivered,
      historyOpsChecked,
      leaderChanges: world.checker.leaderChanges,
      readsAtLeader: reads.asLeader,
      readsAtFollowers: reads.asFollower,
      readsByLease: reads.byLease,
      memberChanges: world.stats.memberChanges,
      leaderRemovals: world.stats.leaderRemovals,
      handOvers: world.stats.handOvers,
    },
    linearizability,
    scenario: describeSwarm(config),
    traceTail: ok ? [] : world.trace.tail().map(formatTraceLine),
    notesTail: ok ? [] : world.trace.notesTail().slice(-30).map(formatTraceLine),
    replay: replayCommand(options),
    ...(options.trace === true ? { fullTrace: world.trace.full().map(formatTraceLine) } : {}),
  };
  return result;
}

/** "1234567 label" -> "    1234.567ms  label". */
export function formatTraceLine(line: string): string {
  const space = line.indexOf(' ');
  const us = Number(line.slice(0, space));
  return `${formatUs(us).padStart(12)}  ${line.slice(space + 1)}`;
}
