/**
 * POST /batch: many independent key operations in one request. Each runs as its single-key
 * route would, all at once (writes proposed in the same turn share a log append and a
 * flush), and the answer comes when all have answered: 200 {"results": [...]}, one status and
 * body per operation. Validation is all or nothing: a bad operation refuses the whole batch.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { batchOpsMax, batchRoute } from '../../wire/types.js';
import type { BatchResultItem } from '../../wire/types.js';
import { parseBatch } from '../batch.js';
import type { BatchOp } from '../batch.js';
import { forwardedHeader } from '../forward.js';
import { forwardedItem, readResult, toQkvError, writeResult } from '../http-answers.js';
import type { HttpContext } from '../http-context.js';
import { batchBody, batchUsage, noQuery, readHeaders } from '../http-schemas.js';
import { readSpec, writeExec, writeSpec } from '../ops.js';
import { readKey } from './kv.js';
import type { HttpRoute } from './route.js';
import { bearerToken } from '../access.js';

export function batchRoutes(ctx: HttpContext): HttpRoute[] {
  return [
    {
      method: 'POST',
      access: 'data',
      url: batchRoute,
      schema: { querystring: noQuery, headers: readHeaders, body: batchBody },
      problems: { usage: batchUsage },
      handle: (request: FastifyRequest<{ Body: Static<typeof batchBody> }>, reply) => postBatch(ctx, request, reply),
    },
  ];
}

async function postBatch(ctx: HttpContext, request: FastifyRequest<{ Body: Static<typeof batchBody> }>, reply: FastifyReply): Promise<unknown> {
  ctx.serveHere(reply);
  const ops = parseBatch(request.body, ctx.validate, batchOpsMax);
  const forwardedIn = request.headers[forwardedHeader] !== undefined;
  const deadlineMs = performance.now() + ctx.timeoutMs(request);
  const results = await Promise.all(ops.map((op) => runBatchOp(ctx, op, { forwardedIn, token: bearerToken(request.headers.authorization), deadlineMs, request })));
  return { results };
}

interface BatchRun {
  readonly forwardedIn: boolean;
  readonly token: string | null;
  readonly deadlineMs: number;
  readonly request: FastifyRequest;
}

async function runBatchOp(ctx: HttpContext, op: BatchOp, run: BatchRun): Promise<BatchResultItem> {
  try {
    // Each operation answers for itself, a refusal included, like any other per-op error.
    if (op.op === 'write') ctx.permit(run.request, op.command.key, 'write');
    else ctx.permit(run.request, op.key, 'read');
    if (op.op === 'write') {
      const outcome = await ctx.router.run(writeExec, op.command, writeSpec(op.command, run.deadlineMs, run));
      if (outcome.via === 'forward') return forwardedItem(outcome.response);
      const answer = writeResult(outcome.value);
      return { status: answer.status, ...answer.body };
    }
    const localTimeoutMs = Math.max(1, Math.floor(run.deadlineMs - performance.now()));
    const outcome = await readKey(ctx, op, readSpec(op, run.deadlineMs, run), localTimeoutMs);
    if (outcome.via === 'forward') return forwardedItem(outcome.response);
    const answer = readResult(op.key, outcome.value);
    return { status: answer.status, ...answer.body };
  } catch (error) {
    const qkvError = toQkvError(error instanceof Error ? error : new Error(String(error)), ctx.limits.bodyBytesMax);
    if (qkvError.code === 'internal') run.request.log.error({ err: error }, 'batch operation failed');
    return qkvError.status === 503
      ? { status: qkvError.status, ...qkvError.toBody(), retryAfterMs: qkvError.retryAfterMs ?? 1_000 }
      : { status: qkvError.status, ...qkvError.toBody() };
  }
}
