/**
 * The membership calls of the gRPC API (Members, AddMember, PromoteMember, RemoveMember,
 * TransferLeader) on the generated message types: the same rules (wire/members.ts), the same
 * leader routing (a follower forwards over HTTP, member-ops.ts) and the same answers as the
 * HTTP routes, mapped onto the response messages. The wire shapes' nulls are proto3's empty
 * strings and absent optionals.
 *
 * Must never: let an id or address the rules refuse reach the node, or forward Members
 * (any node answers from the configuration in force on it).
 */

import type * as grpc from '@grpc/grpc-js';
import type { KvNode } from '../node/types.js';
import { QkvError } from '../wire/errors.js';
import type {
  AddMemberRequest,
  ClusterConfigView as ConfigMessage,
  MemberRequest,
  MemberStatus as MemberMessage,
  MembersResponse as MembersMessage,
  MembershipChangeResponse as ChangeMessage,
  TransferLeaderRequest,
  TransferLeaderResponse,
} from '../wire/gen/quorumkv.js';
import { addMemberProblem, isNodeId, memberRuleText } from '../wire/members.js';
import type { AddMemberBody, ClusterConfigView, MemberStatus, MembersResponse, MembershipChangeResponse } from '../wire/types.js';
import type { ForwardedResponse, LeaderRouter } from './forward.js';
import { memberChangeExec, memberChangeSpec, transferLeaderExec, transferLeaderSpec } from './member-ops.js';
import type { MemberChange } from './member-ops.js';
import type { SpecSource } from './ops.js';

/** What the membership calls share with the kv calls (GrpcKv provides it). */
export interface GrpcCallContext {
  readonly node: KvNode;
  readonly router: LeaderRouter;
  /** performance.now() at which this call's time is up. */
  deadlineMs(call: GrpcCall): number;
  /** The fields of a forwarded answer (or its error, thrown), noting who served it. */
  fromLeader(call: object, response: ForwardedResponse): Record<string, unknown>;
  /** How a forward of this call introduces itself: never forwarded in, with the caller's token. */
  source(call: GrpcCall): SpecSource;
}

type GrpcCall = { getDeadline(): grpc.Deadline; readonly metadata: grpc.Metadata };

/** A decoded request whose raw bytes had a string field that is not UTF-8 (its number), as grpc.ts marks it. */
type Marked = { readonly [field: symbol]: unknown };

export class GrpcMembers {
  constructor(
    private readonly ctx: GrpcCallContext,
    /** The symbol grpc.ts marks a request with when a string field is not UTF-8. */
    private readonly badUtf8: symbol,
  ) {}

  members(): MembersMessage {
    return membersMessage(this.ctx.node.members());
  }

  addMember(request: AddMemberRequest & Marked, call: GrpcCall): Promise<ChangeMessage> {
    this.checkUtf8(request);
    const body: AddMemberBody = {
      id: request.id,
      peer: request.peer,
      ...(request.http === '' ? {} : { http: request.http.replace(/\/$/, '') }),
      ...(request.grpc === '' ? {} : { grpc: request.grpc }),
      ...(request.learner === undefined ? {} : { learner: request.learner }),
      ...(request.force ? { force: true } : {}),
      ...(request.memberId === '' ? {} : { memberId: request.memberId }),
    };
    const problem = addMemberProblem(body);
    if (problem !== null) throw new QkvError('bad_request', problem);
    return this.change({ op: 'add', body }, call);
  }

  promoteMember(request: MemberRequest & Marked, call: GrpcCall): Promise<ChangeMessage> {
    return this.change({ op: 'promote', id: this.memberId(request) }, call);
  }

  removeMember(request: MemberRequest & Marked, call: GrpcCall): Promise<ChangeMessage> {
    return this.change({ op: 'remove', id: this.memberId(request) }, call);
  }

  async transferLeader(request: TransferLeaderRequest & Marked, call: GrpcCall): Promise<TransferLeaderResponse> {
    this.checkUtf8(request);
    const to = request.to === '' ? null : request.to;
    if (to !== null && !isNodeId(to)) throw new QkvError('bad_request', `to must be ${memberRuleText.nodeId}, got ${JSON.stringify(to)}`);
    const outcome = await this.ctx.router.run(transferLeaderExec, to, transferLeaderSpec(to, this.ctx.deadlineMs(call), this.ctx.source(call)));
    if (outcome.via === 'local') return { leader: outcome.value.leader };
    const leader = this.ctx.fromLeader(call, outcome.response)['leader'];
    if (typeof leader !== 'string') throw new QkvError('internal', "The leader's transfer answer has no leader");
    return { leader };
  }

  private async change(change: MemberChange, call: GrpcCall): Promise<ChangeMessage> {
    const outcome = await this.ctx.router.run(memberChangeExec, change, memberChangeSpec(change, this.ctx.deadlineMs(call), this.ctx.source(call)));
    return changeMessage(outcome.via === 'local' ? outcome.value : forwardedChange(this.ctx.fromLeader(call, outcome.response)));
  }

  private memberId(request: MemberRequest & Marked): string {
    this.checkUtf8(request);
    if (!isNodeId(request.id)) throw new QkvError('bad_request', `id must be ${memberRuleText.nodeId}, got ${JSON.stringify(request.id)}`);
    return request.id;
  }

  private checkUtf8(request: Marked): void {
    const field = request[this.badUtf8];
    if (field !== undefined) throw new QkvError('bad_request', `Field ${String(field)} is not valid UTF-8`);
  }
}

/** The leader's JSON answer to a forwarded change, checked for the fields the message needs. */
function forwardedChange(body: Record<string, unknown>): MembershipChangeResponse {
  const config = body['config'];
  if (typeof body['configIndex'] !== 'number' || !Array.isArray(body['members']) || typeof config !== 'object' || config === null) {
    throw new QkvError('internal', "The leader's membership answer lacks configIndex, members or config");
  }
  return body as unknown as MembershipChangeResponse;
}

function memberMessage(m: MemberStatus): MemberMessage {
  return {
    id: m.id,
    role: m.role,
    memberId: m.memberId ?? '',
    peer: m.peer ?? '',
    http: m.http ?? '',
    grpc: m.grpc ?? '',
    isLeader: m.isLeader,
    ...(typeof m.matchIndex === 'number' ? { matchIndex: m.matchIndex } : {}),
    ...(typeof m.lag === 'number' ? { lag: m.lag } : {}),
  };
}

export function membersMessage(r: MembersResponse): MembersMessage {
  return { configIndex: r.configIndex, members: r.members.map(memberMessage) };
}

function configMessage(c: ClusterConfigView): ConfigMessage {
  const directory: ConfigMessage['directory'] = {};
  for (const [id, info] of Object.entries(c.directory ?? {})) {
    directory[id] = { memberId: info.memberId, peer: info.peer, http: info.http ?? '', grpc: info.grpc ?? '' };
  }
  return {
    members: [...c.members],
    learners: [...(c.learners ?? [])],
    writeQuorum: String(c.writeQuorum),
    topology: c.topology,
    inSync: [...(c.inSync ?? [])],
    directory,
  };
}

function changeMessage(r: MembershipChangeResponse): ChangeMessage {
  return { configIndex: r.configIndex, members: r.members.map(memberMessage), clusterId: r.clusterId, config: configMessage(r.config) };
}
