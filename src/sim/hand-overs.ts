/**
 * The hand-over scheduler: in the fault phase, next to crashes and partitions, it asks the
 * leader to hand leadership to another voter (Raft's leadership transfer, what a clean stop
 * of a leader and `quorumkv leader transfer` do). A hand-over is where a leader's read
 * lease must end early: the transferee's election does not wait out the followers' lease
 * promise, so a leader still serving reads by lease after starting one can answer from the
 * past (the planted bug leaseKeptThroughTransfer). Writes that reach the leader meanwhile
 * wait for the hand-over to end (driver.ts), and must still be applied at most once.
 *
 * Owns when hand-overs happen and to whom. Must never change a node except through its
 * driver's public inputs, draw from any generator but its own, or act outside the fault phase.
 */

import type { Prng } from '../stdx/prng.js';
import type { SimEnv } from './environment.js';
import type { SimNetwork } from './network.js';

export class HandOverScheduler {
  /** Leaders ("index:term") that go deaf once their TimeoutNow leaves. */
  private readonly deafAfterTimeoutNow = new Set<string>();

  constructor(
    private readonly env: SimEnv,
    private readonly prng: Prng,
    private readonly network: SimNetwork,
  ) {
    network.onTimeoutNow = (from, term) => {
      if (this.deafAfterTimeoutNow.delete(`${from}:${term}`)) this.deafen(from);
    };
  }

  start(): void {
    if (this.env.config.handOverIntervalMsMean > 0) this.scheduleNext();
  }

  private scheduleNext(): void {
    const env = this.env;
    const delayUs = this.prng.intBetween(1, env.config.handOverIntervalMsMean * 2000);
    if (env.nowUs() + delayUs >= env.config.faultPhaseMs * 1000) return;
    env.at(delayUs, 'hand-over', () => {
      if (env.phase !== 'fault') return;
      this.handOver();
      this.scheduleNext();
    });
  }

  private handOver(): void {
    const leader = this.env.leader();
    const driver = leader?.driver ?? null;
    if (leader === null || driver === null) return;
    // config.members are the voters (learners are listed apart).
    const voters = driver.core.currentConfig().members.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const to = voters[this.prng.intBetween(0, voters.length - 1)] as string;
    const r = driver.transferLeadership(to);
    if (!r.ok) {
      this.env.trace.note(`${this.env.nowUs()} * ${leader.id} refuses to hand over to ${to}: ${r.reason}`);
      return;
    }
    this.env.stats.handOvers++;
    this.env.trace.note(`${this.env.nowUs()} * ${leader.id} hands leadership over to ${to}`);
    if (this.prng.chance(this.env.config.handOverDeafRate)) this.deafAfterTimeoutNow.add(`${leader.index}:${driver.core.currentTerm()}`);
  }

  /**
   * Cuts every link into the old leader right after its TimeoutNow left: it keeps its term
   * and its view of a lease, and answers clients, while the others elect and commit.
   */
  private deafen(index: number): void {
    const c = this.env.config;
    const n = this.env.nodeIds.length;
    const durUs = c.electionTimeoutTicks * c.tickMs * 1000 * this.prng.intBetween(1, 3);
    const links = this.env.nodeIds.map((_, from) => from * n + index).filter((link) => link !== index * n + index);
    const name = this.env.nodeIds[index] ?? '?';
    this.env.at(0, `${name} deaf after handing over`, () => {
      if (this.env.phase === 'fault') this.network.addRule(links, durUs, `${name} hears nothing after handing over`);
    });
  }
}
