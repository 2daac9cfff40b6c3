/**
 * Membership changes and leadership transfer as the APIs run them through the leader router:
 * one way each becomes a KvNode call, and the HTTP request each stands for when a follower
 * forwards it (the gRPC service forwards over HTTP like its writes do). Shared by the HTTP
 * routes (routes/members.ts) and the gRPC service (grpc-members.ts).
 *
 * A change is leader-only, so every one is a write to the router: a forward that may have
 * reached the leader is outcome_unknown, never retried on its own (a change carries no
 * idempotency key; listing the members tells what happened).
 */

import type { SpecSource } from './ops.js';
import type { AddMemberBody, MembershipChangeResponse } from '../wire/types.js';
import { LazyForwardSpec } from './forward.js';
import type { ForwardSpec, LocalExec } from './forward.js';

export type MemberChange =
  | { readonly op: 'add'; readonly body: AddMemberBody }
  | { readonly op: 'promote'; readonly id: string }
  | { readonly op: 'remove'; readonly id: string };

export const memberChangeExec: LocalExec<MemberChange, MembershipChangeResponse> = {
  run: (node, change, timeoutMs) => {
    switch (change.op) {
      case 'add':
        return node.addMember(change.body, { timeoutMs });
      case 'promote':
        return node.promoteMember(change.id, { timeoutMs });
      case 'remove':
        return node.removeMember(change.id, { timeoutMs });
    }
  },
};

/** null: the most up-to-date voter. */
export const transferLeaderExec: LocalExec<string | null, { readonly leader: string }> = {
  run: (node, to, timeoutMs) => node.transferLeader(to, { timeoutMs }),
};

export function memberPath(id: string): string {
  return `/members/${encodeURIComponent(id)}`;
}

/** The HTTP request a change stands for, as the router forwards it to the leader. */
export function memberChangeSpec(change: MemberChange, deadlineMs: number, from: SpecSource): ForwardSpec {
  const base = { requestId: null, isWrite: true, servedByFollower: false, deadlineMs, ...from };
  switch (change.op) {
    case 'add':
      return new LazyForwardSpec({ ...base, method: 'POST', url: '/members', makeBody: () => JSON.stringify(change.body) });
    case 'promote':
      return new LazyForwardSpec({ ...base, method: 'POST', url: `${memberPath(change.id)}/promote`, makeBody: null });
    case 'remove':
      return new LazyForwardSpec({ ...base, method: 'DELETE', url: memberPath(change.id), makeBody: null });
  }
}

export function transferLeaderSpec(to: string | null, deadlineMs: number, from: SpecSource): ForwardSpec {
  const body = (): string => JSON.stringify(to === null ? {} : { to });
  return new LazyForwardSpec({ method: 'POST', url: '/admin/transfer-leader', requestId: null, isWrite: true, servedByFollower: false, deadlineMs, makeBody: body, ...from });
}
