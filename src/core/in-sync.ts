/**
 * The in-sync replica set that `all` and `chain` wait for, as the leader sees it through
 * its followers' progress: which member leaves or rejoins it next, the index every one of
 * them holds, and who receives entries by relay along the chain.
 *
 * Pure functions of the config and the progress map: they decide, the core acts (proposes
 * the config entry, sends the append). They must never shrink the set below a majority.
 */

import { chainOrder, inSyncOf } from './config.js';
import type { Progress } from './progress.js';
import { majoritySize } from './quorum.js';
import type { ClusterConfig, NodeId } from './types.js';

export interface InSyncView {
  readonly config: ClusterConfig;
  readonly progress: ReadonlyMap<NodeId, Progress>;
  /** The leader: it is always in the set. */
  readonly self: NodeId;
  readonly commitIndex: number;
  readonly lastIndex: number;
  /** Silence after which a replica leaves the set. */
  readonly memberTimeoutTicks: number;
  /** A member within this many entries of the leader's log, replicating, counts as caught up. */
  readonly appendEntriesMax: number;
}

/**
 * The next change to the in-sync set, or null: one silent replica is removed (never below
 * a majority), else one caught-up member is re-added (at the chain's tail). One change at
 * a time, each by a config entry committed like any other.
 */
export function nextInSyncChange(v: InSyncView): ClusterConfig | null {
  const c = v.config;
  const inSync = inSyncOf(c);
  const majority = majoritySize(c.members.length);
  for (const id of inSync) {
    const pr = v.progress.get(id);
    if (id === v.self || pr === undefined) continue;
    if (pr.silentTicks >= v.memberTimeoutTicks && inSync.length - 1 >= majority) {
      return { ...c, inSync: inSync.filter((m) => m !== id) };
    }
  }
  for (const id of c.members) {
    const pr = v.progress.get(id);
    if (inSync.includes(id) || pr === undefined) continue;
    // Caught up: replicating and within one append batch of our log. Under steady writes
    // the commit index keeps moving, so "match >= commit" might never hold at a tick.
    const caughtUp = pr.match >= v.commitIndex || (pr.state === 'replicate' && v.lastIndex - pr.match <= v.appendEntriesMax);
    if (pr.silentTicks < v.memberTimeoutTicks && caughtUp) return { ...c, inSync: [...inSync, id] };
  }
  return null;
}

/** The index every in-sync replica (and the leader) holds. */
export function inSyncAckIndex(config: ClusterConfig, progress: ReadonlyMap<NodeId, Progress>, self: NodeId): number {
  let min = progress.get(self)?.match ?? 0;
  for (const id of inSyncOf(config)) min = Math.min(min, progress.get(id)?.match ?? 0);
  return min;
}

/**
 * Chain topology: a member whose predecessor is replicating receives entries by relay,
 * not from the leader. Members catching up (probe, snapshot) or outside the chain are
 * served directly by the leader until they replicate again.
 */
export function isRelayed(config: ClusterConfig, progress: ReadonlyMap<NodeId, Progress>, leader: NodeId, to: NodeId): boolean {
  if (config.topology !== 'chain') return false;
  const chain = chainOrder(config, leader);
  const pos = chain.indexOf(to);
  if (pos <= 1) return false;
  const pr = progress.get(to);
  const pred = progress.get(chain[pos - 1] as NodeId);
  return pr !== undefined && pred !== undefined && pr.state === 'replicate' && pred.state === 'replicate';
}

/** Chain topology: the member `self` passes an append of `leader` on to (none at the tail). */
export function chainSuccessor(config: ClusterConfig, leader: NodeId, self: NodeId): NodeId | undefined {
  const chain = chainOrder(config, leader);
  const pos = chain.indexOf(self);
  return pos >= 0 ? chain[pos + 1] : undefined;
}
