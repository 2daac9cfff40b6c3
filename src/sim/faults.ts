/**
 * The fault scheduler: in the fault phase it draws, at random intervals, one fault of a
 * kind picked by the scenario's weights (partition, one-way cut, clog, crash, clean
 * restart, pause, slow disk, loss burst) and applies it for a drawn duration; it also
 * strikes at a node's fragile moments (just became leader, first commit, just appended,
 * just sent a read round: the reactive faults). What the scenario draws lives in
 * swarm.ts's SwarmConfig; this file only reads it.
 *
 * Owns when faults happen and whom they hit. Must never touch links or disks except
 * through SimNetwork and SimDisks, change a node except through NodeControl, draw from any
 * generator but the fault generator, or inject anything outside the fault phase.
 */

import type { Prng } from '../stdx/prng.js';
import { formatUs, type NodeObservation } from './checkers.js';
import type { NodeControl, SimEnv, SimNode } from './environment.js';
import type { SimDisks } from './disk.js';
import type { SimNetwork } from './network.js';
import type { FaultWeights } from './swarm.js';

const faultKinds: readonly (keyof FaultWeights)[] = ['partition', 'oneWay', 'clog', 'crash', 'cleanRestart', 'pause', 'slowDisk', 'lossBurst'];

export interface FaultSchedulerParts {
  readonly env: SimEnv;
  /** The fault generator: every draw of this file, in a fixed order. */
  readonly prng: Prng;
  readonly network: SimNetwork;
  readonly disks: SimDisks;
  readonly control: NodeControl;
}

export class FaultScheduler {
  private readonly env: SimEnv;
  private readonly prng: Prng;
  private readonly network: SimNetwork;
  private readonly disks: SimDisks;
  private readonly control: NodeControl;
  /** The read round ("term:round") each node's heartbeats last carried. */
  private readonly lastReadRound: string[];

  constructor(parts: FaultSchedulerParts) {
    this.env = parts.env;
    this.prng = parts.prng;
    this.network = parts.network;
    this.disks = parts.disks;
    this.control = parts.control;
    this.lastReadRound = new Array<string>(this.env.nodeIds.length).fill('');
    this.network.onReadRound = (from, term, readRound) => this.maybeGoStale(from, term, readRound);
  }

  /** Schedules the first drawn fault (each one schedules the next). */
  start(): void {
    this.scheduleNextFault();
  }

  /** After each event on an up node: maybe strike it at a fragile moment. */
  afterNodeEvent(n: SimNode, obs: NodeObservation): void {
    const c = this.env.config;
    if (this.env.phase !== 'fault') return;
    if ((obs.becameLeader || obs.leaderFirstCommit) && c.reactiveFaultRate > 0) {
      if (this.prng.chance(c.reactiveFaultRate)) this.reactiveFault(n, obs.becameLeader ? 'became leader' : 'first commit');
    }
    if (n.appendedEntries) {
      n.appendedEntries = false;
      if (c.crashAfterAppendRate > 0 && this.prng.chance(c.crashAfterAppendRate)) this.crashSoon(n);
    }
  }

  /** Kills `n` before its disk is likely to have caught up with what it just received. */
  private crashSoon(n: SimNode): void {
    const env = this.env;
    const inc = n.incarnation;
    const downUs = this.faultDurationUs();
    env.at(this.prng.intBetween(0, env.config.diskLatencyUsMin), `reactive crash of ${n.id} (just appended)`, () => {
      if (env.phase !== 'fault' || n.incarnation !== inc || n.status !== 'up') return;
      if (this.countNotUp() >= env.config.nodesDownMax) return;
      env.stats.faults++;
      this.crashFor(n, { clean: false, durUs: downUs });
    });
  }

  /** Isolates or crashes `n` within a few milliseconds: a leader's most fragile moments. */
  private reactiveFault(n: SimNode, why: string): void {
    const env = this.env;
    const c = env.config;
    const p = this.prng;
    const inc = n.incarnation;
    const crash = p.chance(c.reactiveCrashRate);
    const durUs = c.electionTimeoutTicks * c.tickMs * 1000 * p.intBetween(c.reactiveElectionTimeoutsMin, c.reactiveElectionTimeoutsMax);
    env.at(p.intBetween(0, c.reactiveDelayUsMax), `reactive fault on ${n.id} (${why})`, () => {
      if (env.phase !== 'fault' || n.incarnation !== inc || n.status !== 'up') return;
      env.stats.faults++;
      if (crash && this.countNotUp() < c.nodesDownMax) {
        this.crashFor(n, { clean: false, durUs });
        return;
      }
      const count = env.nodeIds.length;
      const links: number[] = [];
      for (let b = 0; b < count; b++) {
        if (b !== n.index) links.push(n.index * count + b, b * count + n.index);
      }
      this.network.addRule(links, durUs, `isolate ${n.id} (${why})`);
    });
  }

  /**
   * A leader's read round just left: maybe it goes stale once the round's heartbeats are
   * out (after the current event), for a few election timeouts.
   */
  private maybeGoStale(from: number, term: number, readRound: number): void {
    const env = this.env;
    const c = env.config;
    const rate = c.staleLeaderRate;
    if (rate <= 0 || env.phase !== 'fault') return;
    const round = `${term}:${readRound}`;
    if (this.lastReadRound[from] === round) return;
    this.lastReadRound[from] = round;
    if (!this.prng.chance(rate)) return;
    const n = env.node(from);
    const inc = n.incarnation;
    const durUs = c.electionTimeoutTicks * c.tickMs * 1000 * this.prng.intBetween(c.staleElectionTimeoutsMin, c.staleElectionTimeoutsMax);
    env.at(0, `${n.id} goes stale (read round ${round} sent)`, () => {
      if (env.phase !== 'fault' || n.incarnation !== inc || n.status !== 'up') return;
      env.stats.faults++;
      this.network.holdStale(from, env.nowUs() + durUs);
      env.trace.note(`${env.nowUs()} * ${n.id} stale: sends nothing, hears only once it ends, for ${formatUs(durUs)}`);
    });
  }

  private scheduleNextFault(): void {
    const env = this.env;
    const c = env.config;
    const w = c.faultWeights;
    const total = faultKinds.reduce((s, k) => s + w[k], 0);
    if (total === 0) return;
    const delayUs = this.prng.intBetween(1, c.faultIntervalMsMean * 2000);
    if (env.nowUs() + delayUs >= c.faultPhaseMs * 1000) return;
    env.at(delayUs, 'fault', () => {
      if (env.phase !== 'fault') return;
      this.injectFault(total);
      this.scheduleNextFault();
    });
  }

  private faultDurationUs(): number {
    const c = this.env.config;
    return this.prng.intBetween(c.faultDurationMsMin * 1000, Math.max(c.faultDurationMsMin, c.faultDurationMsMax) * 1000);
  }

  /** Members (joining ones included) down or paused: spares and removed slots do not count. */
  private countNotUp(): number {
    return this.env.nodes.filter((x) => x.status !== 'up' && (x.membership === 'member' || x.membership === 'joining')).length;
  }

  /** The up node leading the highest term, or -1. */
  private leaderIndex(): number {
    return this.env.leader()?.index ?? -1;
  }

  private drawKind(total: number): keyof FaultWeights {
    const w = this.env.config.faultWeights;
    let r = this.prng.intBetween(0, total - 1);
    for (const k of faultKinds) {
      if (r < w[k]) return k;
      r -= w[k];
    }
    return 'partition';
  }

  private injectFault(total: number): void {
    const kind = this.drawKind(total);
    const durUs = this.faultDurationUs();
    const down = this.countNotUp();
    this.env.stats.faults++;
    switch (kind) {
      case 'partition':
        return this.partition(durUs);
      case 'oneWay':
        return this.oneWay(durUs);
      case 'clog':
        return this.clog(durUs);
      case 'crash':
      case 'cleanRestart': {
        if (down >= this.env.config.nodesDownMax) return;
        const x = this.pickUp({ preferLeader: true, preferUnflushed: kind === 'crash' });
        if (x !== null) this.crashFor(x, { clean: kind === 'cleanRestart', durUs });
        return;
      }
      case 'pause':
        if (down >= this.env.config.nodesDownMax) return;
        return this.pauseFor(durUs);
      case 'slowDisk': {
        const c = this.env.config;
        const x = this.env.node(this.prng.intBetween(0, this.env.nodeIds.length - 1));
        this.disks.slowDown(x, this.prng.intBetween(c.slowDiskFactorMin, c.slowDiskFactorMax), durUs);
        return;
      }
      case 'lossBurst': {
        const c = this.env.config;
        const loss = this.prng.intBetween(c.lossBurstPermilleMin, c.lossBurstPermilleMax) / 1000;
        const duplicate = this.prng.intBetween(0, c.lossBurstDuplicatePermilleMax) / 1000;
        this.network.lossBurst(loss, duplicate, durUs);
        return;
      }
    }
  }

  /** An up node: maybe the leader, maybe (crashes) one with unflushed writes, else any. */
  private pickUp(options: { readonly preferLeader: boolean; readonly preferUnflushed: boolean }): SimNode | null {
    const p = this.prng;
    const c = this.env.config;
    const upNodes = this.env.nodes.filter((x) => x.status === 'up');
    if (upNodes.length === 0) return null;
    if (options.preferLeader && p.chance(c.faultOnLeaderRate)) {
      const l = this.leaderIndex();
      if (l >= 0) return this.env.node(l);
    }
    if (options.preferUnflushed && p.chance(c.crashUnflushedRate)) {
      const dirty = upNodes.filter((x) => (x.storage?.pendingCount() ?? 0) > 0);
      if (dirty.length > 0) return dirty[p.intBetween(0, dirty.length - 1)] as SimNode;
    }
    return upNodes[p.intBetween(0, upNodes.length - 1)] as SimNode;
  }

  /** Isolating the leader is what forces elections; otherwise a random split. */
  private partition(durUs: number): void {
    const p = this.prng;
    const c = this.env.config;
    const n = this.env.nodeIds.length;
    const side = new Set<number>();
    const l = this.leaderIndex();
    if (l >= 0 && p.chance(c.partitionLeaderRate)) {
      side.add(l);
      if (n >= 5 && p.chance(c.partitionLeaderCompanionRate)) side.add(p.intBetween(0, n - 1));
    } else {
      const size = p.intBetween(1, Math.floor(n / 2));
      while (side.size < size) side.add(p.intBetween(0, n - 1));
    }
    const links: number[] = [];
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) if (a !== b && side.has(a) !== side.has(b)) links.push(a * n + b);
    }
    this.network.addRule(links, durUs, `partition {${[...side].map((i) => this.env.nodeIds[i]).join(',')}} | rest`);
  }

  private oneWay(durUs: number): void {
    const p = this.prng;
    const n = this.env.nodeIds.length;
    const links: number[] = [];
    const count = p.intBetween(1, n);
    for (let i = 0; i < count; i++) {
      const a = p.intBetween(0, n - 1);
      const b = p.intBetween(0, n - 2);
      links.push(a * n + (b >= a ? b + 1 : b));
    }
    const names = links.map((l) => `${this.env.nodeIds[Math.floor(l / n)]}->${this.env.nodeIds[l % n]}`);
    this.network.addRule(links, durUs, `one-way cut ${names.join(' ')}`);
  }

  private clog(durUs: number): void {
    const env = this.env;
    const p = this.prng;
    const n = env.nodeIds.length;
    const count = p.intBetween(1, Math.ceil(n / 2));
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      const x = p.intBetween(0, n - 1);
      this.network.clog(x, env.nowUs() + durUs);
      names.push(env.nodeIds[x] as string);
    }
    env.trace.note(`${env.nowUs()} * clog ${names.join(',')} for ${formatUs(durUs)}`);
  }

  /** Crashes (or cleanly stops) `x` and restarts it after `durUs`, unless it came back already. */
  private crashFor(x: SimNode, options: { readonly clean: boolean; readonly durUs: number }): void {
    this.control.crash(x, options.clean);
    const inc = x.incarnation;
    this.env.at(options.durUs, `restart ${x.id}`, () => {
      if (x.incarnation === inc) this.control.restart(x);
    });
  }

  private pauseFor(durUs: number): void {
    const x = this.pickUp({ preferLeader: true, preferUnflushed: false });
    if (x === null) return;
    this.control.pause(x);
    const inc = x.incarnation;
    this.env.at(durUs, `resume ${x.id}`, () => {
      if (x.incarnation === inc) this.control.resume(x);
    });
  }
}
