/**
 * The key-value routes: PUT, GET and DELETE /kv/{key}, and GET /kv (list). Writes and
 * `leader` reads go to the leader through the router; `linearizable` ones are served by any
 * node that knows a leader; `local` ones by this node's own state.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { QkvError } from '../../wire/errors.js';
import type { KvRecord } from '../../storage/types.js';
import type { ListResult } from '../../node/types.js';
import type { ReadConsistency } from '../../wire/types.js';
import type { ForwardSpec, RouteOutcome } from '../forward.js';
import type { ForwardedResponse } from '../forward-types.js';
import { deleteResponseSchema, getResponseSchema, listResponseSchema, page, putResponseSchema, readResult, sendForwarded, writeAnswer, writeResult } from '../http-answers.js';
import { valueOfJson } from '../json-values.js';
import type { HttpContext, RequestFacts } from '../http-context.js';
import { optionalIndex, rawJsonBody, readRequestId } from '../http-input.js';
import { deleteQuery, getQuery, keyParams, listQuery, noQuery, putBody, putUsage, readHeaders, writeHeaders } from '../http-schemas.js';
import type { RouteProblems } from '../http-schemas.js';
import { countKeys, deleteCommand, listExec, listOptions, putCommand, readExec, readOptions, writeExec } from '../ops.js';
import type { ListOp, ReadOp } from '../ops.js';
import type { HttpRoute } from './route.js';

type Params = Static<typeof keyParams>;

/** How a PUT body's schema failures are told (by fastify's formatter and the fast path alike). */
export const putProblems: RouteProblems = { usage: putUsage, fieldCodes: { value: 'invalid_value' } };

export function kvRoutes(ctx: HttpContext): HttpRoute[] {
  return [
    {
      method: 'PUT',
      access: 'data',
      url: '/kv/*',
      schema: { params: keyParams, querystring: noQuery, headers: writeHeaders, body: putBody, response: { 200: putResponseSchema } },
      problems: putProblems,
      handle: async (request: FastifyRequest<{ Params: Params; Body: PutBody }>, reply) => {
        ctx.serveHere(reply);
        return sendKv(reply, await putKey(ctx, request, request.params['*'], request.body, rawJsonBody(request)));
      },
    },
    {
      method: 'GET',
      access: 'data',
      url: '/kv/*',
      schema: { params: keyParams, querystring: getQuery, headers: readHeaders, response: { 200: getResponseSchema } },
      handle: async (request: FastifyRequest<{ Params: Params; Querystring: Static<typeof getQuery> }>, reply) => {
        ctx.serveHere(reply);
        return sendKv(reply, await getKey(ctx, request, request.params['*'], request.query));
      },
    },
    {
      method: 'DELETE',
      access: 'data',
      url: '/kv/*',
      schema: { params: keyParams, querystring: deleteQuery, headers: writeHeaders, response: { 200: deleteResponseSchema } },
      handle: (request: FastifyRequest<{ Params: Params; Querystring: Static<typeof deleteQuery> }>, reply) => deleteKey(ctx, request, reply),
    },
    {
      method: 'GET',
      access: 'data',
      url: '/kv',
      schema: { querystring: listQuery, headers: readHeaders, response: { 200: listResponseSchema } },
      handle: (request: FastifyRequest<{ Querystring: Static<typeof listQuery> }>, reply) => list(ctx, request, reply),
    },
  ];
}

/**
 * A single-key route's outcome: this node's answer (status and JSON fields), or the leader's,
 * passed through. Both the fastify routes below and the fast path (kv-fast-path.ts) send it.
 */
export type KvAnswer =
  | { readonly via: 'here'; readonly status: number; readonly body: Readonly<Record<string, unknown>> }
  | { readonly via: 'forward'; readonly response: ForwardedResponse };

/** Sends a KvAnswer through fastify (its serializer writes 200 bodies by the route's response schema). */
function sendKv(reply: FastifyReply, answer: KvAnswer): unknown {
  if (answer.via === 'forward') return sendForwarded(reply, answer.response);
  if (answer.status !== 200) reply.code(answer.status);
  return answer.body;
}

export type PutBody = Static<typeof putBody>;
export type GetQuery = Static<typeof getQuery>;

/**
 * PUT /kv/{key}  body {"value": "...", "encoding"?: "base64", "ifVersion"?: n, "lease"?: id | "ttlMs"?: ms}.
 * `rawKey` is the decoded path parameter, `body` what the body schema accepted, `rawBody`
 * its JSON bytes (forwarded as received). The caller checked that the node is not closing.
 */
export async function putKey(ctx: HttpContext, request: RequestFacts, rawKey: string, body: PutBody, rawBody: Buffer | null): Promise<KvAnswer> {
  const key = ctx.checkKey(rawKey);
  ctx.permit(request, key, 'write');
  const requestId = readRequestId(request);
  const { ifVersion, lease, ttlMs } = body;
  const value = valueOfJson(body);
  const problem = ctx.validate.value(value);
  if (problem !== null) throw new QkvError(problem.code, problem.message, { key });
  if (lease !== undefined && ttlMs !== undefined) throw new QkvError('bad_request', `Send "lease" (an existing lease) or "ttlMs" (a lease of the key's own), not both: ${putUsage}`);
  const command = putCommand(key, value, ifVersion, requestId, lease !== undefined ? { lease } : ttlMs !== undefined ? { ttlMs } : null);
  const spec = ctx.spec(request, { method: 'PUT', body: rawBody, requestId, isWrite: true, write: command });
  const outcome = await ctx.router.run(writeExec, command, spec);
  if (outcome.via === 'forward') return outcome;
  return { via: 'here', ...writeResult(outcome.value) };
}

// DELETE /kv/{key}?ifVersion=n
async function deleteKey(ctx: HttpContext, request: FastifyRequest<{ Params: Params; Querystring: Static<typeof deleteQuery> }>, reply: FastifyReply): Promise<unknown> {
  ctx.serveHere(reply);
  const key = ctx.checkKey(request.params['*']);
  ctx.permit(request, key, 'write');
  const ifVersion = optionalIndex(request.query.ifVersion, 'ifVersion');
  const requestId = readRequestId(request);
  const command = deleteCommand(key, ifVersion, requestId);
  const outcome = await ctx.router.run(writeExec, command, ctx.spec(request, { method: 'DELETE', requestId, isWrite: true, write: command }));
  if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
  return writeAnswer(reply, outcome.value);
}

/**
 * GET /kv/{key}?consistency=...&minVersion=n&atVersion=n, with the query the schema accepted
 * (the fast path: none). The caller checked that the node is not closing.
 */
export async function getKey(ctx: HttpContext, request: RequestFacts, rawKey: string, query: GetQuery): Promise<KvAnswer> {
  const key = ctx.checkKey(rawKey);
  ctx.permit(request, key, 'read');
  const minVersion = optionalIndex(query.minVersion, 'minVersion');
  const atVersion = optionalIndex(query.atVersion, 'atVersion');
  const op: ReadOp = { key, consistency: consistencyOf(query.consistency, minVersion), minVersion, atVersion };
  const spec = ctx.spec(request, { method: 'GET', isWrite: false, servedByFollower: op.consistency === 'linearizable' });
  const outcome = await readKey(ctx, op, spec, ctx.timeoutMs(request));
  if (outcome.via === 'forward') return outcome;
  return { via: 'here', ...readResult(key, outcome.value) };
}

/** A key read: `local` on this node itself (within `localTimeoutMs`), any other consistency through the router. */
export async function readKey(ctx: HttpContext, op: ReadOp, spec: ForwardSpec, localTimeoutMs: number): Promise<RouteOutcome<KvRecord | undefined>> {
  if (op.consistency !== 'local') return ctx.router.run(readExec, op, spec);
  return { via: 'local', value: await ctx.node.read(op.key, readOptions('local', op.minVersion, localTimeoutMs, op.atVersion)) };
}

// GET /kv?prefix=&after=&limit=&consistency=&minVersion=&atVersion=&keysOnly=&countOnly=&reverse=
async function list(ctx: HttpContext, request: FastifyRequest<{ Querystring: Static<typeof listQuery> }>, reply: FastifyReply): Promise<unknown> {
  ctx.serveHere(reply);
  const query = request.query;
  const minVersion = optionalIndex(query.minVersion, 'minVersion');
  const prefix = query.prefix ?? '';
  if (prefix.length > 0) ctx.checkKey(prefix, 'prefix');
  ctx.permit(request, prefix, 'read', 'prefix');
  const op: ListOp = {
    prefix,
    after: ctx.optionalKey(query.after, 'after'),
    limit: ctx.pageLimit(query.limit),
    consistency: consistencyOf(query.consistency, minVersion),
    minVersion,
    atVersion: optionalIndex(query.atVersion, 'atVersion'),
    reverse: query.reverse === 'true',
  };
  if (query.countOnly === 'true') return await countKeys(ctx.node, op, ctx.limits.listLimitMax, ctx.timeoutMs(request));
  let result: ListResult;
  if (op.consistency === 'local') {
    result = await ctx.node.list(listOptions(op, ctx.timeoutMs(request)));
  } else {
    const spec = ctx.spec(request, { method: 'GET', isWrite: false, servedByFollower: op.consistency === 'linearizable' });
    const outcome = await ctx.router.run(listExec, op, spec);
    if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
    result = outcome.value;
  }
  const answer = { ...page(result.items, op.limit), version: result.version };
  return query.keysOnly === 'true' ? { ...answer, items: answer.items.map((i) => ({ key: i.key, version: i.version })) } : answer;
}

/** `consistency` defaults to linearizable, or to local when `minVersion` is given (a session read). */
function consistencyOf(asked: ReadConsistency | undefined, minVersion: number | undefined): ReadConsistency {
  return asked ?? (minVersion === undefined ? 'linearizable' : 'local');
}
