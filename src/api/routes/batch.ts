/**
 * POST /batch: many independent key operations in one request. Each runs as its single-key
 * route would, all at once (writes proposed in the same turn share a log append and a
 * flush), and the answer comes when all have answered: 200 {"results": [...]}, one status and
 * body per operation. Validation is all or nothing: a bad operation refuses the whole batch.
 * The same code serves the batches followers forward to this node over the peer transport.
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
import { batchErrorItem } from '../../node/forwarding.js';
import type { ForwardedBatch } from '../../node/forwarding.js';

export function batchRoutes(ctx: HttpContext): HttpRoute[] {
  // The batches followers forward over the peer transport are served by the same rules,
  // with this server's context (credentials, limits, closing), registered with the routes.
  ctx.node.forwarding?.serve((_from, batch) => serveForwardedBatch(ctx, batch));
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
  const run: BatchRun = {
    forwardedIn: request.headers[forwardedHeader] !== undefined,
    token: bearerToken(request.headers.authorization),
    deadlineMs: performance.now() + ctx.timeoutMs(request),
    permit: (key, mode) => ctx.permit(request, key, mode),
    onInternal: (error) => request.log.error({ err: error }, 'batch operation failed'),
  };
  return { results: await runBatch(ctx, ops, run) };
}

/**
 * A batch a follower forwarded over the peer transport (node/forwarding.ts): what POST /batch
 * does for a forwarded request (credentials checked again, every operation validated, none
 * forwarded again), and a refusal of the whole batch (401, 400, shutting_down) is each
 * operation's answer, as the follower would have given each one.
 */
async function serveForwardedBatch(ctx: HttpContext, batch: ForwardedBatch): Promise<readonly BatchResultItem[]> {
  try {
    ctx.refuseIfClosing();
    const who = ctx.access.dataPrincipal(batch.token);
    const ops = parseBatch({ ops: batch.ops }, ctx.validate, batchOpsMax);
    const run: BatchRun = {
      forwardedIn: true,
      token: batch.token,
      deadlineMs: performance.now() + Math.min(batch.timeoutMs, ctx.limits.requestTimeoutMs),
      permit: (key, mode) => ctx.access.permit(who, key, mode),
      // Nothing to log to here (no request): the item's message reaches the client.
      onInternal: () => undefined,
    };
    return await runBatch(ctx, ops, run);
  } catch (error) {
    const item = errorItem(ctx, error, () => undefined);
    return batch.ops.map(() => item);
  }
}

interface BatchRun {
  /** The operations came from a follower: they run here or are refused, never forwarded again. */
  readonly forwardedIn: boolean;
  readonly token: string | null;
  readonly deadlineMs: number;
  /** Throws 401/403 unless the sender may `mode` `key`. */
  readonly permit: (key: string, mode: 'read' | 'write') => void;
  readonly onInternal: (error: unknown) => void;
}

/** Runs every operation of a validated batch at once; one answer each, in order. */
function runBatch(ctx: HttpContext, ops: readonly BatchOp[], run: BatchRun): Promise<BatchResultItem[]> {
  return Promise.all(ops.map((op) => runBatchOp(ctx, op, run)));
}

async function runBatchOp(ctx: HttpContext, op: BatchOp, run: BatchRun): Promise<BatchResultItem> {
  try {
    // Each operation answers for itself, a refusal included, like any other per-op error.
    run.permit(op.op === 'write' ? op.command.key : op.key, op.op === 'write' ? 'write' : 'read');
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
    return errorItem(ctx, error, run.onInternal);
  }
}

/** An error as one operation's answer: its status and body, with Retry-After on 503s. */
function errorItem(ctx: HttpContext, error: unknown, onInternal: (error: unknown) => void): BatchResultItem {
  const qkvError = toQkvError(error instanceof Error ? error : new Error(String(error)), ctx.limits.bodyBytesMax);
  if (qkvError.code === 'internal') onInternal(error);
  return batchErrorItem(qkvError);
}
