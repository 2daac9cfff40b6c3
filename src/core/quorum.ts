/**
 * Quorum arithmetic as pure functions: which log index a set of replicas has reached
 * under a given write-quorum rule. No state, no I/O; tested against a naive version on
 * random inputs (quorum.test.ts).
 */

import { assert } from '../stdx/assert.js';
import type { NodeId, WriteQuorum } from './types.js';

/** Number of votes (or acks, leader included) that make a majority of `memberCount`. */
export function majoritySize(memberCount: number): number {
  assert(Number.isSafeInteger(memberCount) && memberCount >= 1, `memberCount ${memberCount} must be >= 1`);
  return Math.floor(memberCount / 2) + 1;
}

/**
 * The largest index that at least `count` of `matchIndexes` have reached: sort
 * descending, take the count-th. Returns 0 when fewer than `count` replicas are given.
 */
export function indexReachedBy(matchIndexes: readonly number[], count: number): number {
  assert(count >= 1, `count ${count} must be >= 1`);
  if (matchIndexes.length < count) return 0;
  const sorted = [...matchIndexes].sort((a, b) => b - a);
  return sorted[count - 1] ?? 0;
}

/**
 * How many replicas (leader included) must hold an entry before the write-quorum rule
 * acknowledges it. `all` counts every member given (the caller passes the in-sync set).
 * A number W means the leader plus W followers, capped at the members present.
 */
export function ackCount(rule: WriteQuorum, memberCount: number): number {
  if (rule === 'majority') return majoritySize(memberCount);
  if (rule === 'all') return memberCount;
  assert(Number.isSafeInteger(rule) && rule >= 0, `write quorum ${rule} must be a non-negative integer`);
  return Math.min(rule + 1, memberCount);
}

/** True when the rule can acknowledge an entry that a majority does not yet hold. */
export function isWeakerThanMajority(rule: WriteQuorum, memberCount: number): boolean {
  return ackCount(rule, memberCount) < majoritySize(memberCount);
}

/** The voters among `members` that granted and that refused their vote (`votes`: who answered what). */
export function countVotes(members: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): { granted: number; refused: number } {
  let granted = 0;
  let refused = 0;
  for (const member of members) {
    const v = votes.get(member);
    if (v === true) granted++;
    else if (v === false) refused++;
  }
  return { granted, refused };
}
