/**
 * POST /txn: an atomic conditional multi-key operation (compare / success / failure), run
 * by the leader as one log entry. A follower forwards it like any write; the idempotency
 * headers make a retried transaction answer from the dedup table instead of running twice.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { txnRoute } from '../../wire/types.js';
import { sendForwarded } from '../http-answers.js';
import type { HttpContext } from '../http-context.js';
import { rawJsonBody, readRequestId } from '../http-input.js';
import { noQuery, txnBody, writeHeaders } from '../http-schemas.js';
import { txnExec } from '../ops.js';
import { parseTxn, txnAnswer, txnUsage } from '../txn.js';
import type { HttpRoute } from './route.js';

export function txnRoutes(ctx: HttpContext): HttpRoute[] {
  return [
    {
      method: 'POST',
      access: 'data',
      url: txnRoute,
      schema: { querystring: noQuery, headers: writeHeaders, body: txnBody },
      problems: { usage: txnUsage },
      handle: (request: FastifyRequest<{ Body: Static<typeof txnBody> }>, reply) => postTxn(ctx, request, reply),
    },
  ];
}

async function postTxn(ctx: HttpContext, request: FastifyRequest<{ Body: Static<typeof txnBody> }>, reply: FastifyReply): Promise<unknown> {
  ctx.serveHere(reply);
  const requestId = readRequestId(request);
  const command = parseTxn(request.body, ctx.validate, ctx.limits, requestId);
  ctx.access.permitTxn(ctx.principal(request), command);
  const spec = ctx.spec(request, { method: 'POST', body: rawJsonBody(request), requestId, isWrite: true });
  const outcome = await ctx.router.run(txnExec, command, spec);
  if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
  return txnAnswer(outcome.value);
}
