/**
 * The membership scheduler: in the fault phase, next to crashes and partitions, it asks
 * the leader for membership changes: add a spare as a learner (or, rarely, straight as a
 * voter: the unsafe path operators take with --force), promote a learner, remove a
 * member (the leader included), and bring a removed slot back as a spare with a wiped
 * disk, so that "replace a node" (remove, then add under the old name) happens too. A new
 * leader may be asked at once, before it committed an entry of its own term: the window
 * where the own-term rule matters.
 *
 * Owns when changes happen and which. Must never change a node except through its
 * driver's public inputs and NodeControl, draw from any generator but its own, or act
 * outside the fault phase.
 */

import { isVoter, learnersOf, type MembershipChange } from '../core/membership.js';
import type { ClusterConfig } from '../core/types.js';
import type { Prng } from '../stdx/prng.js';
import type { NodeObservation } from './checkers.js';
import type { NodeControl, SimEnv, SimNode } from './environment.js';

export interface MembershipSchedulerParts {
  readonly env: SimEnv;
  readonly prng: Prng;
  readonly control: NodeControl;
}

export class MembershipScheduler {
  private readonly env: SimEnv;
  private readonly prng: Prng;
  private readonly control: NodeControl;
  /** Voters never drop below this (a 3-node cluster stays one that survives a failure). */
  private readonly votersMin: number;
  private joins = 0;

  constructor(parts: MembershipSchedulerParts) {
    this.env = parts.env;
    this.prng = parts.prng;
    this.control = parts.control;
    this.votersMin = Math.min(3, this.env.config.nodeCount);
  }

  start(): void {
    if (this.env.config.membershipIntervalMsMean > 0) this.scheduleNext();
  }

  /** After each event on an up node: a node that just became leader may be asked at once. */
  afterNodeEvent(n: SimNode, obs: NodeObservation): void {
    const c = this.env.config;
    if (this.env.phase !== 'fault' || !obs.becameLeader || c.membershipOnNewLeaderRate <= 0) return;
    if (!this.prng.chance(c.membershipOnNewLeaderRate)) return;
    const inc = n.incarnation;
    this.env.at(0, `membership change on new leader ${n.id}`, () => {
      if (this.env.phase === 'fault' && n.incarnation === inc && n.status === 'up') this.change(n);
    });
  }

  private scheduleNext(): void {
    const env = this.env;
    const c = env.config;
    const delayUs = this.prng.intBetween(1, c.membershipIntervalMsMean * 2000);
    if (env.nowUs() + delayUs >= c.faultPhaseMs * 1000) return;
    env.at(delayUs, 'membership change', () => {
      if (env.phase !== 'fault') return;
      const leader = env.leader();
      if (leader !== null) this.change(leader);
      this.maybeRecycle();
      this.scheduleNext();
    });
  }

  /** Draws one change that makes sense for `leader`'s configuration and proposes it there. */
  private change(leader: SimNode): void {
    const driver = leader.driver;
    if (driver === null) return;
    const config = driver.core.currentConfig();
    const options = this.options(config);
    if (options.length === 0) return;
    const drawn = options[this.prng.intBetween(0, options.length - 1)] as MembershipChange;
    // A new member gets a member id of its own: the slot's name may have been a member before.
    const change: MembershipChange =
      drawn.kind === 'addLearner' || drawn.kind === 'addVoter' ? { ...drawn, info: { memberId: `${drawn.id}#${++this.joins}`, peer: `sim:${drawn.id}` } } : drawn;
    const r = driver.proposeMembership(change);
    const what = `${change.kind} ${change.id}`;
    if (!r.ok) {
      this.env.trace.note(`${this.env.nowUs()} * ${leader.id} refuses ${what}: ${r.reason}${'message' in r ? ` (${r.message})` : ''}`);
      return;
    }
    this.env.stats.memberChanges++;
    if (change.kind === 'remove' && change.id === leader.id) this.env.stats.leaderRemovals++;
    this.env.trace.note(`${this.env.nowUs()} * ${leader.id} proposes ${what} at ${r.index}: voters ${r.config.members.join(',')} learners ${learnersOf(r.config).join(',') || '-'}`);
    if (change.kind === 'addLearner' || change.kind === 'addVoter') {
      const slot = this.env.nodes.find((n) => n.id === change.id);
      if (slot !== undefined) this.control.join(slot, r.config, r.index);
    }
  }

  private options(config: ClusterConfig): MembershipChange[] {
    const out: MembershipChange[] = [];
    const spare = this.env.nodes.find((n) => n.membership === 'spare' && n.status === 'down');
    if (spare !== undefined) {
      out.push({ kind: 'addLearner', id: spare.id }, { kind: 'addLearner', id: spare.id });
      if (this.prng.chance(0.2)) out.push({ kind: 'addVoter', id: spare.id });
    }
    for (const id of learnersOf(config)) out.push({ kind: 'promote', id }, { kind: 'remove', id });
    if (config.members.length > this.votersMin) {
      for (const id of config.members) if (isVoter(config, id)) out.push({ kind: 'remove', id });
    }
    return out;
  }

  /** A removed slot comes back, now and then, as a spare with a wiped disk. */
  private maybeRecycle(): void {
    const removed = this.env.nodes.filter((n) => n.membership === 'removed' && n.status === 'down');
    if (removed.length === 0 || !this.prng.chance(0.5)) return;
    this.control.recycle(removed[this.prng.intBetween(0, removed.length - 1)] as SimNode);
  }
}
