/**
 * Membership changes as pure functions of a configuration: who votes, who only learns,
 * and what one change (add a learner, promote it, add a voter directly, remove a member)
 * makes of a configuration.
 *
 * quorumkv uses the Raft thesis' single-server changes (§4.1), not joint consensus: each
 * configuration differs from the one before it by at most one voter, so any majority of
 * the old voters and any majority of the new ones share a node, and a change needs no
 * intermediate joint configuration. Two rules make that safe, both enforced by the core
 * (raft.ts `proposeConfig`): a configuration takes effect on every node as soon as it is
 * in its log (not when committed), and a leader proposes a change only once the previous
 * one is committed and it has committed an entry of its own term (the fix to the bug
 * Ongaro described in 2015: without it, an uncommitted change of an earlier leader and a
 * new one can form two disjoint majorities).
 *
 * Learners receive the log (or a snapshot) like any follower but never count toward a
 * commit, an acknowledgement, an election or check-quorum, and never campaign.
 */

import { decodeConfig, inSyncOf } from './config.js';
import type { RaftLog } from './log.js';
import { majoritySize } from './quorum.js';
import type { ClusterConfig, MemberInfo, NodeId } from './types.js';

export type MembershipChange =
  | { readonly kind: 'addLearner'; readonly id: NodeId; readonly info?: MemberInfo }
  /** etcd's unsafe path: a voter that holds nothing yet counts at once (operators pass --force). */
  | { readonly kind: 'addVoter'; readonly id: NodeId; readonly info?: MemberInfo }
  | { readonly kind: 'promote'; readonly id: NodeId }
  | { readonly kind: 'remove'; readonly id: NodeId };

export function learnersOf(config: ClusterConfig): readonly NodeId[] {
  return config.learners ?? [];
}

export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.members.includes(id);
}

/** A voter or a learner: a node the configuration replicates to. */
export function isReplica(config: ClusterConfig, id: NodeId): boolean {
  return config.members.includes(id) || learnersOf(config).includes(id);
}

/** Every node the configuration replicates to: voters first, then learners. */
export function replicasOf(config: ClusterConfig): NodeId[] {
  return [...config.members, ...learnersOf(config)];
}

/**
 * The voter other than `self` whose log reaches furthest by `matchOf` (the first in voter
 * order on a tie; a negative match counts as unknown), or null: whom a leader hands over to.
 */
export function mostCaughtUpVoter(config: ClusterConfig, self: NodeId, matchOf: (id: NodeId) => number): { readonly id: NodeId; readonly match: number } | null {
  let best: { id: NodeId; match: number } | null = null;
  for (const id of config.members) {
    const match = matchOf(id);
    if (id !== self && match >= 0 && match > (best?.match ?? -1)) best = { id, match };
  }
  return best;
}

/** How many voters are in one configuration and not the other (either way). */
export function votersChanged(a: ClusterConfig, b: ClusterConfig): number {
  let n = 0;
  for (const id of a.members) if (!b.members.includes(id)) n++;
  for (const id of b.members) if (!a.members.includes(id)) n++;
  return n;
}

/**
 * True when every majority of voters `a` shares a node with every majority of voters `b`:
 * the property that lets a configuration follow another without a joint phase. The two
 * majorities that overlap least take as many nodes as they can from outside the other set.
 */
export function majoritiesOverlap(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  const both = a.filter((id) => b.includes(id)).length;
  const fromA = Math.max(0, majoritySize(a.length) - (a.length - both));
  const fromB = Math.max(0, majoritySize(b.length) - (b.length - both));
  return fromA + fromB > both;
}

/**
 * The configuration after `change`, or what is wrong with the change. Modes carry over;
 * under `all` and `chain` a new voter enters the in-sync set (and the chain, at its tail)
 * only once caught up (in-sync.ts), so the set is written out explicitly without it.
 */
export function applyMembershipChange(config: ClusterConfig, change: MembershipChange): ClusterConfig | string {
  const learners = learnersOf(config);
  const { id } = change;
  switch (change.kind) {
    case 'addLearner':
    case 'addVoter': {
      if (isReplica(config, id)) return `${id} is already a ${isVoter(config, id) ? 'voter' : 'learner'}`;
      const directory = change.info !== undefined ? { ...config.directory, [id]: change.info } : config.directory;
      if (change.kind === 'addLearner') return withParts(config, config.members, [...learners, id], config.inSync, directory);
      return withParts(config, [...config.members, id], learners, inSyncWithVoter(config, id), directory);
    }
    case 'promote': {
      if (isVoter(config, id)) return `${id} is already a voter`;
      if (!learners.includes(id)) return `${id} is not a member`;
      return withParts(config, [...config.members, id], learners.filter((m) => m !== id), inSyncWithVoter(config, id), config.directory);
    }
    case 'remove': {
      if (!isReplica(config, id)) return `${id} is not a member`;
      if (config.members.length === 1 && config.members[0] === id) return `${id} is the only voter: a cluster needs one`;
      const members = config.members.filter((m) => m !== id);
      let inSync = config.inSync?.filter((m) => m !== id);
      // The in-sync set never falls below a majority of the voters: waiting for every voter
      // again is the safe default until the leader narrows it.
      if (inSync !== undefined && inSync.length < majoritySize(members.length)) inSync = undefined;
      const directory = config.directory === undefined ? undefined : Object.fromEntries(Object.entries(config.directory).filter(([m]) => m !== id));
      return withParts(config, members, learners.filter((m) => m !== id), inSync, directory);
    }
  }
}

/**
 * Under `all` and `chain`, the in-sync set once voter `id` joins: written out without it
 * (it enters once caught up), unless the set would then be smaller than a majority of the
 * voters: an acknowledgement by the set must always imply a majority holds the entry, so
 * then the new voter is in it from the start (writes wait for it to catch up).
 */
function inSyncWithVoter(config: ClusterConfig, id: NodeId): readonly NodeId[] | undefined {
  const waitsForInSync = config.writeQuorum === 'all' || config.topology === 'chain';
  if (!waitsForInSync) return config.inSync;
  const inSync = inSyncOf(config);
  return inSync.length >= majoritySize(config.members.length + 1) ? inSync : [...inSync, id];
}

function withParts(
  config: ClusterConfig,
  members: readonly NodeId[],
  learners: readonly NodeId[],
  inSync: readonly NodeId[] | undefined,
  directory: Readonly<Record<NodeId, MemberInfo>> | undefined,
): ClusterConfig {
  const writeQuorum = typeof config.writeQuorum === 'number' ? Math.min(config.writeQuorum, members.length - 1) : config.writeQuorum;
  return {
    members,
    writeQuorum,
    topology: config.topology,
    ...(inSync !== undefined ? { inSync } : {}),
    ...(learners.length > 0 ? { learners } : {}),
    ...(directory !== undefined && Object.keys(directory).length > 0 ? { directory } : {}),
  };
}

/**
 * The configuration in force at `index` in `log`: the latest config entry at or before it,
 * else the snapshot's. Scanning back is bounded by the log's length (compaction bounds it).
 */
export function configInLog(log: RaftLog, index: number): { config: ClusterConfig; index: number } {
  const first = log.firstIndex();
  for (let i = Math.min(index, log.lastIndex()); i >= first; i--) {
    const e = log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)?.[0];
    if (e !== undefined && e.kind === 'config') return { config: decodeConfig(e.data), index: e.index };
  }
  const snap = log.snapshotMeta();
  return { config: snap.config, index: snap.index };
}
