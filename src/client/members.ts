/**
 * The membership side of the client: what `kv.members` offers, the checks its input gets
 * before anything is sent (the server's own rules, wire/members.ts), and the retry policy of
 * a change. A change goes to the leader with the usual discovery and backoff; beyond the
 * usual refusals, `membership_busy` (another change is being committed) is retried until the
 * deadline and `learner_lagging` (the learner is still catching up) a few times. A change
 * that may have acted is never repeated: it carries no idempotency key, so a second attempt
 * could answer member_exists or not_found for the first one's success.
 */

import type { ErrorCode } from '../wire/errors.js';
import { addMemberProblem, isNodeId, memberRuleText } from '../wire/members.js';
import type { AddMemberBody, MembersResponse, MembershipChangeResponse } from '../wire/types.js';
import { ChangeOutcomeUnknownError, InvalidArgumentError } from './errors.js';
import type { AttemptError } from './transport.js';
import type { CallOptions } from './types.js';

/** A member to add: the body of POST /members (wire/types.ts says what each field means). */
export type NewMember = AddMemberBody;

/** `kv.members`: membership of the cluster, changed one member at a time through the leader. */
export interface MemberCalls {
  /** Voters and learners with the configuration's log index, as the leader sees them (with lag). */
  list(options?: CallOptions): Promise<MembersResponse>;
  /**
   * Adds a member (a learner by default) and resolves once the configuration is committed.
   * @throws QuorumKvError member_exists, InvalidArgumentError, UnavailableError, ChangeOutcomeUnknownError
   */
  add(member: NewMember, options?: CallOptions): Promise<MembershipChangeResponse>;
  /**
   * Makes learner `id` a voter. Retried a few times while it is `learner_lagging`.
   * @throws NotFoundError, QuorumKvError learner_lagging, UnavailableError, ChangeOutcomeUnknownError
   */
  promote(id: string, options?: CallOptions): Promise<MembershipChangeResponse>;
  /**
   * Removes member `id` (the leader too: it hands over once the removal commits).
   * @throws NotFoundError, QuorumKvError pinned_leader, UnavailableError, ChangeOutcomeUnknownError
   */
  remove(id: string, options?: CallOptions): Promise<MembershipChangeResponse>;
}

/** How many times a call retries a refusal beyond the usual ones, and whether it may repeat after it may have acted. */
export interface RetryPolicy {
  /** Codes refused before acting, retried with backoff at most this many times per call. */
  readonly retryCodes: ReadonlyMap<ErrorCode, number>;
  /** No idempotency key: once an attempt may have acted, the call ends with ChangeOutcomeUnknownError. */
  readonly unsafeToRepeat: boolean;
}

/** A learner this far behind rarely catches up within a few backoffs; the caller decides after that. */
const learnerLaggingRetriesMax = 5;

export const changePolicy: RetryPolicy = {
  retryCodes: new Map<ErrorCode, number>([
    // One change at a time: the deadline bounds these.
    ['membership_busy', Number.MAX_SAFE_INTEGER],
    ['learner_lagging', learnerLaggingRetriesMax],
  ]),
  unsafeToRepeat: true,
};

/** The new member as the server wants it, or InvalidArgumentError naming the field. */
export function checkNewMember(member: NewMember): AddMemberBody {
  if (typeof member !== 'object' || member === null) throw new InvalidArgumentError('bad_request', 'members.add() needs {id, peer}');
  for (const flag of ['learner', 'force'] as const) {
    if (member[flag] !== undefined && typeof member[flag] !== 'boolean') throw new InvalidArgumentError('bad_request', `${flag} must be true or false`);
  }
  const problem = addMemberProblem(member);
  if (problem !== null) throw new InvalidArgumentError('bad_request', problem);
  return {
    id: member.id,
    peer: member.peer,
    ...(member.http === undefined ? {} : { http: member.http }),
    ...(member.grpc === undefined ? {} : { grpc: member.grpc }),
    ...(member.learner === undefined ? {} : { learner: member.learner }),
    ...(member.force === undefined ? {} : { force: member.force }),
    ...(member.memberId === undefined ? {} : { memberId: member.memberId }),
  };
}

/** An id naming an existing member (or the voter to hand over to). */
export function checkMemberId(id: unknown, what: string): string {
  if (!isNodeId(id)) throw new InvalidArgumentError('bad_request', `${what} must be ${memberRuleText.nodeId}, got ${JSON.stringify(id)}`);
  return id;
}

/** The error a change ends with once an attempt may have acted. */
export function changeOutcomeUnknown(error: AttemptError): ChangeOutcomeUnknownError {
  return new ChangeOutcomeUnknownError(
    error.code ?? 'outcome_unknown',
    `The change may or may not have taken effect (${error.message}); it is not repeated on its own: list the members or read the status to find out`,
    error.details,
  );
}
