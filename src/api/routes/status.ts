/**
 * Routes that describe the node: /health (the process answers), /ready (it can serve a read
 * now), /status (its role, indexes, mode and peers) and /metrics (Prometheus text).
 */

import type { FastifyReply } from 'fastify';
import { QkvError } from '../../wire/errors.js';
import { healthResponseSchema } from '../http-answers.js';
import type { HttpContext } from '../http-context.js';
import { noQuery } from '../http-schemas.js';
import type { HttpRoute } from './route.js';

const healthBody = Object.freeze({ ok: true });

export function statusRoutes(ctx: HttpContext, grpcAddress: string | undefined): HttpRoute[] {
  return [
    {
      method: 'GET',
      access: 'open',
      url: '/health',
      schema: { querystring: noQuery, response: { 200: healthResponseSchema } },
      handle: async () => {
        ctx.refuseIfClosing();
        return healthBody;
      },
    },
    {
      method: 'HEAD',
      access: 'open',
      url: '/health',
      schema: { querystring: noQuery },
      handle: async (_request, reply) => {
        ctx.refuseIfClosing();
        return reply.code(200).send();
      },
    },
    { method: 'GET', access: 'open', url: '/ready', schema: { querystring: noQuery }, handle: async () => ready(ctx) },
    {
      method: 'GET',
      access: 'open',
      url: '/status',
      schema: { querystring: noQuery },
      handle: async () => (grpcAddress === undefined ? ctx.node.status() : { ...ctx.node.status(), grpc: grpcAddress }),
    },
    { method: 'GET', access: 'open', url: '/metrics', schema: { querystring: noQuery }, handle: async (_request, reply) => metricsText(ctx, reply) },
  ];
}

// GET /ready: for load balancers and Kubernetes' readiness probe. Ready means this node can
// serve a read without waiting: it knows a leader and has applied everything it knows to be
// committed. /health only says the process answers.
function ready(ctx: HttpContext): unknown {
  ctx.refuseIfClosing();
  const s = ctx.node.status();
  const base = { leader: s.leader?.id ?? null, commitIndex: s.commitIndex, appliedIndex: s.appliedIndex };
  if (s.leader === null) throw new QkvError('not_ready', 'No leader is known (election under way)', base);
  if (s.appliedIndex < s.commitIndex) {
    throw new QkvError('not_ready', `Catching up: applied ${s.appliedIndex} of ${s.commitIndex} committed entries`, base);
  }
  return { ready: true, ...base };
}

async function metricsText(ctx: HttpContext, reply: FastifyReply): Promise<unknown> {
  const text = await ctx.registry.metrics();
  return reply.type(ctx.registry.contentType).send(text);
}
