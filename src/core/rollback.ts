/**
 * The rollback report's source in the core (weak write quorums only): entries this node
 * held, and may have acknowledged, that a new leader's log replaces; and the repair state
 * of a node that applied such entries and must rebuild from the leader's snapshot.
 *
 * It must never let a replaced entry go unreported (the report errs on the side of
 * reporting), and never report an entry it does not hold: entries below the log's first
 * index came inside a snapshot and are reported by the nodes whose logs still hold them.
 */

import type { RaftLog } from './log.js';
import type { Entry } from './types.js';

export class Rollback {
  /**
   * Set while a rollback was found (applied entries conflict with the leader's) and we wait
   * for a snapshot to rebuild from: our log's entries from this index on are in the rollback
   * report already.
   */
  private repairReportedFrom: number | null = null;
  /** Term of the leader whose snapshot we installed last (0: none since start): its log holds the snapshot. */
  private snapshotLeaderTerm = 0;
  private rolledBack: Entry[] = [];

  constructor(private readonly log: RaftLog) {}

  get awaitingRepair(): boolean {
    return this.repairReportedFrom !== null;
  }

  /** Where the entries reported while awaiting a repair start (null: not awaiting one). */
  reportedFrom(): number | null {
    return this.repairReportedFrom;
  }

  /**
   * Reports our log's entries from `from` up to `to` (default: its end) as rolled back.
   * Entries below our first index came inside a snapshot (beyond the commit index: a weak
   * quorum's) and are not ours to report: the nodes whose logs still hold them do.
   */
  report(from: number, to = this.log.lastIndex() + 1): void {
    const start = Math.max(from, this.log.firstIndex());
    if (start >= to) return;
    const entries = this.log.slice(start, to, Number.MAX_SAFE_INTEGER);
    if (entries !== null) this.rolledBack.push(...entries);
  }

  /** Reports our entries from `from` on as lost and waits for a snapshot to rebuild from. */
  awaitRepair(from: number): void {
    this.report(from);
    this.repairReportedFrom = Math.max(from, this.log.firstIndex());
  }

  /**
   * This node won an election. A node waiting for a repair snapshot can win one (its log
   * may be the most up to date). Its applied state is a prefix of its own log, which now
   * rules: the repair is moot, and leaving the flag set would make it, once a follower
   * again, take the next leader's snapshot as that repair and skip reporting the entries it
   * replaces. (The writes it reported when the flag was set survive after all: the report
   * errs on the side of reporting.)
   */
  repairMoot(): void {
    this.repairReportedFrom = null;
  }

  /** A snapshot from the leader of `leaderTerm` was adopted: any repair is done. */
  snapshotInstalled(leaderTerm: number): void {
    this.repairReportedFrom = null;
    this.snapshotLeaderTerm = leaderTerm;
  }

  /**
   * Whether the log of the leader of `leaderTerm` surely holds our snapshot's last entry:
   * the leader made it (an entry of its term exists only in its log and those copied from
   * it), or it sent us the snapshot.
   */
  leaderLogHoldsSnapshot(leaderTerm: number): boolean {
    return this.log.snapshotMeta().term === leaderTerm || this.snapshotLeaderTerm === leaderTerm;
  }

  hasReport(): boolean {
    return this.rolledBack.length > 0;
  }

  /** The entries reported since the last call (for the next Ready). */
  take(): Entry[] {
    const out = this.rolledBack;
    this.rolledBack = [];
    return out;
  }
}
