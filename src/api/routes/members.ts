/**
 * Membership and leadership routes (docs/membership-api.md):
 *
 *   GET    /members                    voters and learners, served by the node asked
 *   POST   /members                    add a member (a learner unless learner: false, force: true)
 *   POST   /members/{id}/promote       make a learner a voter
 *   DELETE /members/{id}               remove a member (the leader too: it hands over)
 *   POST   /admin/transfer-leader      hand leadership to {"to"} or the most up-to-date voter
 *
 * Changes go to the leader like PUT /admin/mode: a follower forwards them, with the same
 * error model. Every change answers 200 once its configuration entry is committed and
 * applied on the node that ran it (not 201: adding is one change among four, and all answer
 * with the configuration after them).
 *
 * Must never: let an id or address that the schema refuses reach the node, or forward a
 * GET /members (any node answers from the configuration in force on it).
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import type { AddMemberBody } from '../../wire/types.js';
import { sendForwarded } from '../http-answers.js';
import type { HttpContext } from '../http-context.js';
import { rawJsonBody } from '../http-input.js';
import { addMemberBody, addMemberUsage, memberParams, noQuery, readHeaders, transferLeaderBody, transferLeaderUsage } from '../http-schemas.js';
import { memberChangeExec, transferLeaderExec } from '../member-ops.js';
import type { MemberChange } from '../member-ops.js';
import type { HttpRoute } from './route.js';

type AddRequest = FastifyRequest<{ Body: Static<typeof addMemberBody> }>;
type MemberRequest = FastifyRequest<{ Params: Static<typeof memberParams> }>;
type TransferRequest = FastifyRequest<{ Body: Static<typeof transferLeaderBody> }>;

export function memberRoutes(ctx: HttpContext): HttpRoute[] {
  return [
    {
      method: 'GET',
      access: 'open',
      url: '/members',
      schema: { querystring: noQuery },
      handle: async () => {
        ctx.refuseIfClosing();
        return ctx.node.members();
      },
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/members',
      schema: { querystring: noQuery, headers: readHeaders, body: addMemberBody },
      problems: { usage: addMemberUsage },
      handle: (request: AddRequest, reply) => change(ctx, request, reply, { op: 'add', body: addBody(request.body) }),
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/members/:id/promote',
      schema: { querystring: noQuery, headers: readHeaders, params: memberParams },
      handle: (request: MemberRequest, reply) => change(ctx, request, reply, { op: 'promote', id: request.params.id }),
    },
    {
      method: 'DELETE',
      access: 'admin',
      url: '/members/:id',
      schema: { querystring: noQuery, headers: readHeaders, params: memberParams },
      handle: (request: MemberRequest, reply) => change(ctx, request, reply, { op: 'remove', id: request.params.id }),
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/admin/transfer-leader',
      schema: { querystring: noQuery, headers: readHeaders, body: transferLeaderBody },
      problems: { usage: transferLeaderUsage },
      handle: (request: TransferRequest, reply) => transfer(ctx, request, reply),
    },
  ];
}

async function change(ctx: HttpContext, request: FastifyRequest, reply: FastifyReply, op: MemberChange): Promise<unknown> {
  ctx.refuseIfClosing();
  const method = op.op === 'remove' ? 'DELETE' : 'POST';
  const outcome = await ctx.router.run(memberChangeExec, op, ctx.spec(request, { method, body: rawJsonBody(request), isWrite: true }));
  if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
  return reply.code(200).send(outcome.value);
}

async function transfer(ctx: HttpContext, request: TransferRequest, reply: FastifyReply): Promise<unknown> {
  ctx.refuseIfClosing();
  const spec = ctx.spec(request, { method: 'POST', body: rawJsonBody(request), isWrite: true });
  const outcome = await ctx.router.run(transferLeaderExec, request.body.to ?? null, spec);
  if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
  return reply.code(200).send({ leader: outcome.value.leader });
}

/** The schema-checked body with only the fields given (exactOptionalPropertyTypes). */
function addBody(body: Static<typeof addMemberBody>): AddMemberBody {
  return {
    id: body.id,
    peer: body.peer,
    ...(body.http === undefined ? {} : { http: body.http.replace(/\/$/, '') }),
    ...(body.grpc === undefined ? {} : { grpc: body.grpc }),
    ...(body.learner === undefined ? {} : { learner: body.learner }),
    ...(body.force === undefined ? {} : { force: body.force }),
    ...(body.memberId === undefined ? {} : { memberId: body.memberId }),
  };
}
