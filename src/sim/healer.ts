/**
 * Healing and convergence: when the fault phase ends, partitions, clogs and loss stop,
 * slow disks recover, crashed nodes restart, paused ones resume and clients stop; then a
 * healer client's final write must commit, a linearizable read of every key must put the
 * final state into the history, and every node must apply the same index and hold the
 * same store within `healDeadlineMs` (checked every `convergenceCheckIntervalUs`).
 *
 * Owns the heal phase and the convergence verdict. Must never inject a fault, change a
 * node except through NodeControl, or draw from any generator but the client generator
 * (for the healer's session).
 */

import { isReplica } from '../core/membership.js';
import type { ClusterConfig } from '../core/types.js';
import type { NodeDriver } from '../node/driver.js';
import type { Prng } from '../stdx/prng.js';
import type { KvItem } from '../storage/types.js';
import { formatUs, type AckedWrite, type SafetyChecker } from './checkers.js';
import { ClientSession, type ClientStats, type ClientWorld, type ScriptStep } from './clients.js';
import type { SimDisks } from './disk.js';
import type { NodeControl, SimEnv } from './environment.js';
import type { SimNetwork } from './network.js';

const convergenceCheckIntervalUs = 20_000;

export interface HealerParts {
  readonly env: SimEnv;
  /** The world as the healer's client session sees it. */
  readonly clientWorld: ClientWorld;
  /** The client generator: the healer's session is forked from it. */
  readonly clientPrng: Prng;
  readonly clientStats: ClientStats;
  readonly acked: AckedWrite[];
  readonly checker: SafetyChecker;
  readonly network: SimNetwork;
  readonly disks: SimDisks;
  readonly control: NodeControl;
  /** The fault phase's clients, stopped when healing starts. */
  readonly clients: readonly ClientSession[];
  /** Describes every node, for a convergence failure. */
  readonly describeNodes: () => string;
  /** Called once, when the cluster has converged. */
  readonly onConverged: () => void;
}

export class Healer {
  private session: ClientSession | null = null;
  /** The healer's acknowledged final write (null until its script has run). */
  private finalWrite: AckedWrite | null = null;
  private done = false;
  private runs = 0;

  constructor(private readonly parts: HealerParts) {}

  /** Ends every fault, brings every node back, and checks for convergence until the deadline (the world is in its heal phase). */
  heal(): void {
    const { env, network, disks, control } = this.parts;
    network.heal();
    env.trace.note(`${env.nowUs()} * heal: partitions, clogs and loss end; every node comes back`);
    for (const n of env.nodes) {
      disks.heal(n);
      if (n.status === 'down') control.restart(n);
      else if (n.status === 'paused') control.resume(n);
    }
    for (const cl of this.parts.clients) cl.stop();
    this.startSession();
    const deadlineUs = env.config.healDeadlineMs * 1000;
    const healStartUs = env.nowUs();
    const check = (): void => {
      if (env.phase !== 'heal') return;
      if (this.converged()) {
        this.parts.onConverged();
        env.trace.note(`${env.nowUs()} * converged ${formatUs(env.nowUs() - healStartUs)} after healing`);
        return;
      }
      if (env.nowUs() - healStartUs >= deadlineUs) {
        env.violation('convergence', `not converged ${formatUs(env.nowUs() - healStartUs)} after healing: ${this.parts.describeNodes()}`);
      }
      env.at(convergenceCheckIntervalUs, 'convergence check', check);
    };
    env.at(convergenceCheckIntervalUs, 'convergence check', check);
  }

  /** Node `index` went down: the healer's session stops counting on it. */
  nodeDown(index: number): void {
    this.session?.nodeDown(index);
  }

  finalWriteVersion(): number | null {
    return this.finalWrite?.version ?? null;
  }

  /**
   * A final write must commit; then a linearizable read of every key puts the final state
   * into the history, so a lost acknowledged write shows up there too.
   */
  private startSession(): void {
    const { env, acked } = this.parts;
    this.runs++;
    this.done = false;
    this.finalWrite = null;
    const session = new ClientSession(`healer${this.runs > 1 ? this.runs : ''}`, this.parts.clientWorld, env.config, this.parts.clientPrng.fork(), this.parts.clientStats, acked);
    session.stop();
    this.session = session;
    const steps: ScriptStep[] = [{ kind: 'put', key: 'final', value: `healed${this.runs}` }];
    for (let k = 0; k < env.config.keyCount; k++) steps.push({ kind: 'get', key: `k${k}` });
    session.script(steps, Math.max(1, env.config.healDeadlineMs - 200), (versions) => {
      const version = versions[0] ?? null;
      this.finalWrite = version === null ? null : (acked.findLast((w) => w.version === version) ?? null);
      this.done = true;
    });
  }

  private converged(): boolean {
    const env = this.parts.env;
    if (!this.done || this.finalWrite === null) return false;
    const fate = this.parts.checker.ackedWriteFate(this.finalWrite);
    if (fate === 'rolled-back') {
      // Weak quorums: the leader that acknowledged the final write alone was deposed after
      // healing, and the write went to the rollback report (the checker holds every mode to
      // that). Write again: convergence is about the cluster, not about that one write.
      env.trace.note(`${env.nowUs()} * ${this.finalWrite.what} v${this.finalWrite.version} was rolled back; the healer writes again`);
      this.startSession();
      return false;
    }
    if (fate !== 'committed') return false;
    const config = this.committedConfig();
    if (config === null) return false;
    const drivers: NodeDriver[] = [];
    for (const n of env.nodes) {
      if (!isReplica(config, n.id)) {
        // A node still joining that the committed configuration leaves out lost its addition.
        if (n.membership === 'joining') this.parts.control.retire(n, 'spare');
        continue;
      }
      if (n.status !== 'up' || n.driver === null) return false;
      drivers.push(n.driver);
    }
    return this.sameEverywhere(drivers, this.finalWrite.version);
  }

  /** The configuration of the up leader of the highest term, once committed there (else null: not settled yet). */
  private committedConfig(): ClusterConfig | null {
    const leader = this.parts.env.leader()?.driver ?? null;
    if (leader === null || leader.core.currentConfigIndex() > leader.core.log.committed) return null;
    return leader.core.currentConfig();
  }

  /** One leader has committed `version`; every node has applied all of its log and holds the same store. */
  private sameEverywhere(drivers: readonly NodeDriver[], version: number): boolean {
    const statuses = drivers.map((d) => d.core.status());
    const leaders = statuses.filter((s) => s.role === 'leader');
    const leader = leaders[0];
    if (leaders.length !== 1 || leader === undefined || leader.commitIndex < version) return false;
    for (let i = 0; i < drivers.length; i++) {
      const s = statuses[i];
      const d = drivers[i] as NodeDriver;
      if (s === undefined || s.lastIndex !== leader.lastIndex || s.commitIndex !== leader.lastIndex) return false;
      if (d.stateMachine.appliedIndex() !== leader.lastIndex) return false;
    }
    const reference = dumpStore(drivers[0] as NodeDriver);
    for (const d of drivers.slice(1)) {
      const other = dumpStore(d);
      const diff = firstStoreDifference(reference, other);
      if (diff !== null) {
        this.parts.env.violation('convergence', `${drivers[0]?.id ?? '?'} and ${d.id} applied up to ${leader.lastIndex} but their stores differ: ${diff}`);
      }
    }
    return true;
  }
}

function dumpStore(d: NodeDriver): KvItem[] {
  return d.stateMachine.range('', undefined, 1_000_000);
}

function sameValue(a: KvItem['value'], b: KvItem['value']): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.length === b.length && a.every((x, i) => b[i] === x);
}

function firstStoreDifference(a: readonly KvItem[], b: readonly KvItem[]): string | null {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined) return `${a.length} keys vs ${b.length} keys`;
    if (x.key !== y.key || x.version !== y.version || !sameValue(x.value, y.value)) {
      return `key ${JSON.stringify(x.key)} v${x.version} vs key ${JSON.stringify(y.key)} v${y.version}`;
    }
  }
  return null;
}
