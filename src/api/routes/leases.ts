/**
 * Lease routes; every one runs on the leader (a follower forwards it), because only the
 * leader times leases:
 *
 *   POST   /leases                 {"ttlMs"} -> {"id","ttlMs","version"}
 *   POST   /leases/{id}/keepalive  -> {"id","ttlMs"}: the TTL starts again (404 lease_not_found once ended)
 *   GET    /leases/{id}?keys=N     -> {"id","ttlMs","remainingMs","keys"} (404 lease_not_found)
 *   DELETE /leases/{id}            -> {"id","found","keysDeleted","version"}: ends it, deleting its keys
 *
 * Keys hang on a lease with PUT /kv/{key} {"value","lease"} (or {"ttlMs"}: a lease of the
 * key's own). A grant and a revoke take the idempotency pair like any write.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { QkvError } from '../../wire/errors.js';
import { leaseKeysMax } from '../../wire/types.js';
import { sendForwarded } from '../http-answers.js';
import type { HttpContext } from '../http-context.js';
import { rawJsonBody, readRequestId } from '../http-input.js';
import { leaseGrantBody, leaseGrantUsage, leaseInfoQuery, leaseParams, noQuery, readHeaders, writeHeaders } from '../http-schemas.js';
import { leaseGrantExec, leaseInfoExec, leaseKeepAliveExec } from '../ops.js';
import { revokeChecked } from '../lease-ops.js';
import type { HttpRoute } from './route.js';

type IdRequest = FastifyRequest<{ Params: Static<typeof leaseParams> }>;

export function leaseRoutes(ctx: HttpContext): HttpRoute[] {
  return [
    {
      method: 'POST',
      access: 'data',
      url: '/leases',
      schema: { querystring: noQuery, headers: writeHeaders, body: leaseGrantBody },
      problems: { usage: leaseGrantUsage },
      handle: async (request: FastifyRequest<{ Body: Static<typeof leaseGrantBody> }>, reply) => {
        ctx.serveHere(reply);
        ctx.access.permitLeases(ctx.principal(request));
        const requestId = readRequestId(request);
        const spec = ctx.spec(request, { method: 'POST', body: rawJsonBody(request), requestId, isWrite: true });
        return answer(reply, await ctx.router.run(leaseGrantExec, { value: request.body.ttlMs, requestId }, spec));
      },
    },
    {
      method: 'POST',
      access: 'data',
      url: '/leases/:id/keepalive',
      schema: { params: leaseParams, querystring: noQuery, headers: readHeaders },
      handle: async (request: IdRequest, reply) => {
        ctx.serveHere(reply);
        ctx.access.permitLeases(ctx.principal(request));
        // Not a log entry: a retry restarts the TTL again, which is what a retry means.
        const spec = ctx.spec(request, { method: 'POST', isWrite: true });
        return answer(reply, await ctx.router.run(leaseKeepAliveExec, Number(request.params.id), spec));
      },
    },
    {
      method: 'GET',
      access: 'data',
      url: '/leases/:id',
      schema: { params: leaseParams, querystring: leaseInfoQuery, headers: readHeaders },
      handle: async (request: FastifyRequest<{ Params: Static<typeof leaseParams>; Querystring: Static<typeof leaseInfoQuery> }>, reply) => {
        ctx.serveHere(reply);
        ctx.access.permitLeases(ctx.principal(request));
        const id = Number(request.params.id);
        const keysMax = Math.min(Number(request.query.keys ?? '100'), leaseKeysMax);
        const outcome = await ctx.router.run(leaseInfoExec, { id, keysMax }, ctx.spec(request, { method: 'GET', isWrite: false }));
        if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
        if (outcome.value === undefined) throw new QkvError('lease_not_found', `Lease ${id} does not exist (never granted, revoked or expired)`, { lease: id });
        return outcome.value;
      },
    },
    {
      method: 'DELETE',
      access: 'data',
      url: '/leases/:id',
      schema: { params: leaseParams, querystring: noQuery, headers: writeHeaders },
      handle: async (request: IdRequest, reply) => {
        ctx.serveHere(reply);
        ctx.access.permitLeases(ctx.principal(request));
        const requestId = readRequestId(request);
        const spec = ctx.spec(request, { method: 'DELETE', requestId, isWrite: true });
        return answer(reply, await ctx.router.run(revokeChecked(ctx.access, ctx.principal(request)), { value: Number(request.params.id), requestId }, spec));
      },
    },
  ];
}

function answer<T>(reply: FastifyReply, outcome: { readonly via: 'local'; readonly value: T } | { readonly via: 'forward'; readonly response: Parameters<typeof sendForwarded>[1] }): unknown {
  return outcome.via === 'forward' ? sendForwarded(reply, outcome.response) : outcome.value;
}
