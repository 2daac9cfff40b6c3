/**
 * Operational routes: the live mode switch, the backup stream, this node's raw store, and,
 * when fault injection is on, the fault switchboard and die. They answer about or act on
 * this node (except the mode switch, which goes to the leader like a write).
 */

import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import type { ModeChange } from '../../node/types.js';
import { QkvError } from '../../wire/errors.js';
import { backupLines } from '../backup-stream.js';
import { listResponseSchema, page, sendForwarded } from '../http-answers.js';
import type { FaultsAdmin, HttpContext } from '../http-context.js';
import { quoteValue, rawJsonBody } from '../http-input.js';
import { compactBody, compactUsage, debugStoreQuery, dieBody, dieUsage, faultsBody, faultsUsage, modeBody, modeUsage, noQuery, readHeaders } from '../http-schemas.js';
import { compactExec, modeExec } from '../ops.js';
import type { HttpRoute } from './route.js';

export interface AdminHooks {
  /** Present with fault injection on: GET and PUT /admin/faults exist. */
  readonly faultsAdmin?: FaultsAdmin;
  /** Present with fault injection on: POST /admin/die exists. */
  readonly die?: (clean: boolean) => void;
  /** Present on real nodes: GET /rollbacks exists. */
  readonly rollbacks?: () => Promise<readonly Record<string, unknown>[]>;
}

export function adminRoutes(ctx: HttpContext, hooks: AdminHooks): HttpRoute[] {
  const routes: HttpRoute[] = [
    {
      method: 'PUT',
      access: 'admin',
      url: '/admin/mode',
      schema: { querystring: noQuery, headers: readHeaders, body: modeBody },
      problems: { usage: modeUsage },
      handle: (request: FastifyRequest<{ Body: Static<typeof modeBody> }>, reply) => putMode(ctx, request, reply),
    },
    {
      // The history of changes below a version goes (through the log, on every node); watches
      // and reads at a version older than it answer compacted afterwards.
      method: 'POST',
      access: 'admin',
      url: '/admin/compact',
      schema: { querystring: noQuery, headers: readHeaders, body: compactBody },
      problems: { usage: compactUsage },
      handle: async (request: FastifyRequest<{ Body: Static<typeof compactBody> }>, reply) => {
        ctx.refuseIfClosing();
        const spec = ctx.spec(request, { method: 'POST', body: rawJsonBody(request), isWrite: true });
        const outcome = await ctx.router.run(compactExec, request.body.beforeVersion ?? null, spec);
        return outcome.via === 'forward' ? sendForwarded(reply, outcome.response) : outcome.value;
      },
    },
    { method: 'GET', access: 'admin', url: '/backup', schema: { querystring: noQuery }, handle: (_request, reply) => backup(ctx, reply) },
    {
      method: 'GET',
      access: 'admin',
      url: '/debug/store',
      schema: { querystring: debugStoreQuery, response: { 200: listResponseSchema } },
      handle: async (request: FastifyRequest<{ Querystring: Static<typeof debugStoreQuery> }>) => {
        const after = ctx.optionalKey(request.query.after, 'after');
        const limit = ctx.pageLimit(request.query.limit);
        return page(ctx.node.dumpStore(after, limit), limit);
      },
    },
  ];
  const rollbacks = hooks.rollbacks;
  if (rollbacks !== undefined) {
    // GET /rollbacks: this node's records of acknowledged writes a weak-quorum failover
    // lost (DATA_DIR/rollback.jsonl), oldest first; `quorumkv rollbacks` gathers every node's.
    routes.push({
      method: 'GET',
      access: 'admin',
      url: '/rollbacks',
      schema: { querystring: noQuery },
      handle: async () => ({ node: ctx.node.id, records: await rollbacks() }),
    });
  }
  const faults = hooks.faultsAdmin;
  if (faults !== undefined) {
    routes.push(
      { method: 'GET', access: 'admin', url: '/admin/faults', schema: { querystring: noQuery }, handle: async () => faults.rules() },
      {
        method: 'PUT',
        access: 'admin',
        url: '/admin/faults',
        schema: { querystring: noQuery, body: faultsBody },
        problems: { usage: faultsUsage },
          handle: async (request: FastifyRequest<{ Body: Record<string, unknown> }>) => putFaults(faults, request.body),
      },
    );
  }
  const die = hooks.die;
  if (die !== undefined) {
    routes.push({
      method: 'POST',
      access: 'admin',
      url: '/admin/die',
      schema: { querystring: noQuery, body: dieBody },
      problems: { usage: dieUsage },
      handle: (request: FastifyRequest<{ Body: Static<typeof dieBody> }>, reply) => dieNow(ctx, die, request.body, reply),
    });
  }
  return routes;
}

// PUT /admin/mode  body {"writeQuorum"?: "majority"|"all"|W, "topology"?: "star"|"chain"}
// Switches the replication mode live (forwarded to the leader like a write). Answers once
// the configuration entry is applied here, with the log index every node switches at.
async function putMode(ctx: HttpContext, request: FastifyRequest<{ Body: Static<typeof modeBody> }>, reply: FastifyReply): Promise<unknown> {
  ctx.refuseIfClosing();
  const { writeQuorum, topology } = request.body;
  const change: ModeChange = {
    ...(writeQuorum !== undefined ? { writeQuorum } : {}),
    ...(topology !== undefined ? { topology } : {}),
  };
  const outcome = await ctx.router.run(modeExec, change, ctx.spec(request, { method: 'PUT', body: rawJsonBody(request), isWrite: true }));
  if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
  const mode = ctx.node.status().mode;
  return reply.code(200).send({ writeQuorum: mode.writeQuorum, topology: mode.topology, sinceIndex: outcome.value.index, inSync: mode.inSync });
}

// GET /backup: this node's state at its applied index, streamed as NDJSON records (header,
// chunks, end; client/backup-file.ts documents the format). A client that stops reading
// stops the stream (back-pressure), and its disconnect closes the snapshot source.
async function backup(ctx: HttpContext, reply: FastifyReply): Promise<unknown> {
  ctx.refuseIfClosing();
  const status = ctx.node.status();
  const source = ctx.node.openBackup();
  const stream = Readable.from(backupLines(source, status.id, status.clusterId), { objectMode: false, highWaterMark: 1 });
  return reply.code(200).type('application/x-ndjson; charset=utf-8').send(stream);
}

function putFaults(faults: FaultsAdmin, rules: Record<string, unknown>): object {
  try {
    faults.setRules(rules);
  } catch (error) {
    if (error instanceof QkvError) throw error;
    throw new QkvError('bad_request', `Fault rules refused: ${error instanceof Error ? error.message : String(error)}`);
  }
  return faults.rules();
}

// POST /admin/die  body {"id": "<this node>", "clean": bool}
async function dieNow(ctx: HttpContext, die: (clean: boolean) => void, body: Static<typeof dieBody>, reply: FastifyReply): Promise<unknown> {
  const { id } = body;
  const clean = body.clean ?? false;
  if (id !== ctx.node.id) throw new QkvError('bad_request', `This is node ${ctx.node.id}, not ${quoteValue(id)}: nothing was stopped`);
  // Die only once the answer has left, so the caller learns that it was accepted.
  reply.raw.once('finish', () => die(clean));
  return reply.code(202).send({ id, clean });
}
