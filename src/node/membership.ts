/**
 * Membership as the node presents it: the members view (/members, /status), the member id
 * a new member gets, and how a refused change reads to a client. Plain functions: the
 * driver owns the core and the waiting.
 */

import { isVoter, learnersOf, mostCaughtUpVoter, type MembershipChange } from '../core/membership.js';
import type { ClusterConfig, ConfigChangeResult, CoreStatus, MemberInfo, NodeId } from '../core/types.js';
import type { Prng } from '../stdx/prng.js';
import { QkvError } from '../wire/errors.js';
import type { AddMemberBody, MemberStatus, MembersResponse, NodeAddresses } from '../wire/types.js';

/** 16 hex digits: enough that two members of one cluster never share one. */
export function newMemberId(prng: Prng): string {
  const part = (): string => prng.nextU32().toString(16).padStart(8, '0');
  return part() + part();
}

/**
 * Every voter and learner of the configuration in force, with the leader's view of its
 * lag. Addresses come from the configuration's directory, else from what the member
 * announced when it connected (`announced`).
 */
export function membersView(s: CoreStatus, announced: (id: NodeId) => NodeAddresses, self: NodeAddresses): MembersResponse {
  const isLeader = s.role === 'leader';
  const progress = new Map(s.progress.map((p) => [p.id, p]));
  const view = (id: NodeId, role: MemberStatus['role']): MemberStatus => {
    const info = s.config.directory?.[id];
    const heard = id === s.id ? self : announced(id);
    const match = id === s.id ? s.lastIndex : (progress.get(id)?.match ?? 0);
    return {
      id,
      role,
      memberId: info?.memberId ?? null,
      peer: info?.peer ?? null,
      http: info?.http ?? heard.http,
      grpc: info?.grpc ?? heard.grpc,
      isLeader: s.leader === id,
      matchIndex: isLeader ? match : null,
      lag: isLeader ? s.lastIndex - match : null,
    };
  };
  return {
    configIndex: s.configIndex,
    members: [...s.config.members.map((id) => view(id, 'voter')), ...learnersOf(s.config).map((id) => view(id, 'learner'))],
  };
}

/** The change POST /members asks for; bad_request for a voter added without `force`. */
export function addChange(body: AddMemberBody, memberId: string): MembershipChange {
  const info: MemberInfo = {
    memberId,
    peer: body.peer,
    ...(body.http !== undefined ? { http: body.http } : {}),
    ...(body.grpc !== undefined ? { grpc: body.grpc } : {}),
  };
  if (body.learner === false) {
    if (body.force !== true) {
      throw new QkvError('bad_request', `adding ${body.id} as a voter at once is unsafe (it counts toward every quorum before it holds anything): add it as a learner and promote it, or pass force`);
    }
    return { kind: 'addVoter', id: body.id, info };
  }
  return { kind: 'addLearner', id: body.id, info };
}

/** The error a change gets before it reaches the core: unknown or existing members, the pinned leader. */
export function changeProblem(config: ClusterConfig, change: MembershipChange, pinnedLeader: NodeId | null): QkvError | null {
  const known = isVoter(config, change.id) || learnersOf(config).includes(change.id);
  if ((change.kind === 'addLearner' || change.kind === 'addVoter') && known) {
    return new QkvError('member_exists', `${change.id} is already a ${isVoter(config, change.id) ? 'voter' : 'learner'}: remove it first to replace it`, { id: change.id });
  }
  if ((change.kind === 'promote' || change.kind === 'remove') && !known) return new QkvError('not_found', `${change.id} is not a member`, { id: change.id });
  if (change.kind === 'promote' && isVoter(config, change.id)) return new QkvError('bad_request', `${change.id} is already a voter`, { id: change.id });
  if (change.kind === 'remove' && change.id === pinnedLeader) {
    return new QkvError('pinned_leader', `${change.id} is the pinned leader (--leader): it cannot be removed; restart the cluster with another --leader first`, { id: change.id });
  }
  return null;
}

/** How a refusal of the core reads to a client. */
export function refusalError(r: Exclude<ConfigChangeResult, { ok: true }>, notLeader: () => QkvError): QkvError {
  switch (r.reason) {
    case 'notLeader':
      return notLeader();
    case 'busy':
      return new QkvError('membership_busy', `${r.message}; retry shortly`, {}, 200);
    case 'lagging':
      return new QkvError('learner_lagging', `${r.message}; retry once it has caught up`, {}, 500);
    case 'invalid':
      return new QkvError('bad_request', r.message);
  }
}

/** The voter a leader hands over to when none is named: the most up-to-date one but itself. */
export function bestTransferee(s: CoreStatus): NodeId | null {
  const match = new Map(s.progress.map((p) => [p.id, p.match]));
  return mostCaughtUpVoter(s.config, s.id, (id) => match.get(id) ?? -1)?.id ?? null;
}
