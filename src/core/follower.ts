/**
 * The follower's side of replication: how it takes the leader's appends, heartbeats and
 * snapshots into its log (Raft §5.3, Figure 2's AppendEntries receiver and Figure 13's
 * InstallSnapshot receiver), including what a weak write quorum adds: entries that may
 * have been acknowledged are reported before they are replaced (rollback.ts).
 *
 * Plain functions over a `FollowerHost` (the core lends its log, rollback report, term,
 * configuration and outbox); they never change the node's role or term, which the core
 * settles before it hands a message here.
 */

import { assert } from '../stdx/assert.js';
import { chainSuccessor } from './in-sync.js';
import { isWeakQuorum } from './config.js';
import type { RaftLog } from './log.js';
import type { Rollback } from './rollback.js';
import type { AppendMessage, ClusterConfig, HeartbeatMessage, Message, NodeId, SnapshotMessage, SnapshotMeta } from './types.js';

export interface FollowerHost {
  readonly id: NodeId;
  readonly log: RaftLog;
  readonly rollback: Rollback;
  term(): number;
  config(): ClusterConfig;
  configIndex(): number;
  /** Entries holding a configuration were appended or replaced: take it from the log again. */
  reloadConfig(): void;
  /** A snapshot was installed: its configuration is in force from its index. */
  adoptConfig(config: ClusterConfig, index: number): void;
  send(m: Message, when: 'now' | 'afterPersist'): void;
}

export function handleAppend(h: FollowerHost, m: AppendMessage): void {
  if (h.rollback.awaitingRepair) return rejectNeedingSnapshot(h, m.leader, m.prevIndex);
  const snapIndex = h.log.firstIndex() - 1;
  if (m.prevIndex < snapIndex && snapIndex > h.log.committed) {
    if (h.rollback.leaderLogHoldsSnapshot(m.term)) {
      // A stale append from a leader whose log holds our snapshot (it sent the snapshot,
      // or made its last entry): nothing diverges, and we hold its log up to the snapshot.
      respondAppend(h, m.leader, snapIndex);
      return;
    }
    // Our state came from a snapshot holding entries no majority had (weak quorum), and
    // the leader's log diverges below it: we cannot tell which of those writes survive.
    // Rebuild from the leader's snapshot. The writes inside that snapshot are reported by
    // the nodes whose logs still hold them (compaction never passes the commit index);
    // the entries of our own log after it are ours to report (we may have acknowledged
    // them as a leader since).
    h.rollback.awaitRepair(h.log.firstIndex());
    return rejectNeedingSnapshot(h, m.leader, m.prevIndex);
  }
  if (m.prevIndex < h.log.committed) {
    respondAppend(h, m.leader, h.log.committed);
    return;
  }
  if (h.log.matchTerm(m.prevIndex, m.prevTerm)) {
    const conflict = h.log.findConflict(m.prevIndex, m.entries);
    assert(conflict === null || conflict > h.log.committed, () => `entry ${conflict ?? 0} conflicts with committed entry (commit ${h.log.committed})`);
    if (conflict !== null && conflict <= h.log.applied) {
      // We applied entries (acknowledged under a weak write quorum) that the leader's log
      // does not contain. They are lost: report each, then rebuild from a snapshot.
      h.rollback.awaitRepair(conflict);
      return rejectNeedingSnapshot(h, m.leader, m.prevIndex);
    }
    if (conflict !== null && isWeakQuorum(h.config())) {
      // Under a weak quorum an entry may have been acknowledged to a client before a
      // majority held it (by us as leader before a crash, say), even if never applied
      // here. Truncating it loses that write: report it rather than guess.
      h.rollback.report(conflict);
    }
    const configChanged = (conflict !== null && conflict <= h.configIndex()) || m.entries.some((e) => e.kind === 'config');
    const lastNew = h.log.maybeAppend(m.prevIndex, m.prevTerm, m.entries);
    assert(lastNew !== null, 'append matched its prev entry but was refused');
    if (configChanged) h.reloadConfig();
    h.log.commitTo(Math.min(m.commit, lastNew));
    h.log.ackTo(Math.min(m.acked, lastNew));
    if (m.quiet !== true || m.entries.length > 0) respondAppend(h, m.leader, lastNew);
    relay(h, m);
    return;
  }
  const hint = conflictHint(h, Math.min(m.prevIndex, h.log.lastIndex()), m.prevTerm);
  h.send(
    { type: 'appendResp', from: h.id, to: m.leader, term: h.term(), matchIndex: 0, reject: true, rejectedIndex: m.prevIndex, lastIndexHint: hint, needSnapshot: false },
    'afterPersist',
  );
}

/** Chain topology: pass an accepted append on to our successor once it is durable here. */
function relay(h: FollowerHost, m: AppendMessage): void {
  if (h.config().topology !== 'chain' || m.entries.length === 0) return;
  const next = chainSuccessor(h.config(), m.leader, h.id);
  if (next === undefined) return;
  h.send({ ...m, from: h.id, to: next }, 'afterPersist');
}

function rejectNeedingSnapshot(h: FollowerHost, to: NodeId, prevIndex: number): void {
  h.send(
    { type: 'appendResp', from: h.id, to, term: h.term(), matchIndex: 0, reject: true, rejectedIndex: prevIndex, lastIndexHint: h.log.lastIndex(), needSnapshot: true },
    'afterPersist',
  );
}


/** The largest index <= `index` whose term is <= `term`: where the leader should retry. */
function conflictHint(h: FollowerHost, index: number, term: number): number {
  let i = index;
  while (i > h.log.committed) {
    const t = h.log.term(i);
    if (t === undefined || t <= term) break;
    i--;
  }
  return i;
}

function respondAppend(h: FollowerHost, to: NodeId, matchIndex: number): void {
  h.send(
    { type: 'appendResp', from: h.id, to, term: h.term(), matchIndex, reject: false, rejectedIndex: 0, lastIndexHint: h.log.lastIndex(), needSnapshot: false },
    'afterPersist',
  );
}

export function handleHeartbeat(h: FollowerHost, m: HeartbeatMessage): void {
  h.log.commitTo(Math.min(m.commit, h.log.lastIndex()));
  h.log.ackTo(Math.min(m.acked, h.log.lastIndex()));
  // Heartbeat responses do not depend on durable state: they may leave at once.
  h.send({ type: 'heartbeatResp', from: h.id, to: m.from, term: h.term(), readRound: m.readRound }, 'now');
}

export function handleSnapshot(h: FollowerHost, m: SnapshotMessage): void {
  const meta: SnapshotMeta = m.meta;
  if (h.rollback.awaitingRepair ? meta.index < h.log.committed : meta.index <= h.log.committed) {
    respondAppend(h, m.from, h.log.committed);
    return;
  }
  if (!h.rollback.awaitingRepair && h.log.matchTerm(meta.index, meta.term)) {
    // Our log already holds the snapshot's last entry: keep the entries after it (Raft
    // Figure 13, step 6). Resetting the log would drop entries we acknowledged.
    respondAppend(h, m.from, meta.index);
    return;
  }
  const base = h.log.snapshotMeta();
  if (!h.rollback.awaitingRepair && meta.index < base.index && meta.term === base.term) {
    // An older snapshot of the log our own snapshot came from (one term has one leader,
    // whose log only grows): a stale or overtaken message. Installing it would drop
    // entries we acknowledged; both hold everything up to its index, so say just that.
    respondAppend(h, m.from, meta.index);
    return;
  }
  if (isWeakQuorum(h.config()) && h.log.lastIndex() > h.log.committed) {
    // The snapshot replaces our whole log. Under a weak quorum our entries past the commit
    // index may have been acknowledged; some may survive in the snapshot, but we cannot
    // tell which: report them all rather than lose one silently. Waiting for a repair, we
    // reported those from the conflict with an earlier leader on; this snapshot may come
    // from a later one whose log diverges below that, so the entries before it go too.
    h.rollback.report(h.log.committed + 1, h.rollback.reportedFrom() ?? undefined);
  }
  h.log.restore(meta, h.rollback.awaitingRepair, m.commit);
  h.rollback.snapshotInstalled(h.term());
  h.adoptConfig(meta.config, meta.index);
  respondAppend(h, m.from, meta.index);
}
