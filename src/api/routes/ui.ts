/**
 * The dashboard (docs/dashboard.md):
 *
 *   GET  /ui                      the page (HTML, CSS and script inline; nothing from elsewhere)
 *   GET  /ui/events               Server-Sent Events: one cluster snapshot per poll tick
 *   GET  /ui/messages?after=SEQ   the peer messages this node sampled after SEQ (the pollers of
 *                                 the other nodes' dashboards gather them; node/message-sampler.ts)
 *   POST /ui/actions/partition    {node}: cut a member off (fault injection only)
 *   POST /ui/actions/heal         {node?}: lift partitions (fault injection only)
 *   POST /ui/actions/delay        {delayMsMin, delayMsMax, node?} (fault injection only)
 *   POST /ui/actions/die          {node, clean?}: stop or kill a member (fault injection only)
 *   POST /ui/actions/restart      {node}: start a member's exited process again, through the
 *                                 supervisor that owns it (quorumkv up); 501 no_supervisor
 *                                 without one (fault injection only)
 *   POST /ui/actions/pause        {node}: SIGSTOP a member's process, through that supervisor
 *   POST /ui/actions/resume       {node}: SIGCONT it (both: 501 no_supervisor without one, 409
 *                                 when the process is not running / not paused; fault injection only)
 *
 * The actions that reach other nodes pass the caller's Authorization header on (actions.ts).
 * The page's other controls use the ordinary API of the node that serves it (PUT/GET
 * /kv/{key}, PUT /admin/mode, POST /admin/transfer-leader); it shows them only with fault
 * injection on, like the action routes, which do not exist otherwise (404).
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import type { HttpContext } from '../http-context.js';
import type { MessageSource } from '../../node/message-sampler.js';
import {
  noQuery,
  uiActionNodeBody,
  uiDelayBody,
  uiDelayUsage,
  uiDieBody,
  uiDieUsage,
  uiHealBody,
  uiHealUsage,
  uiMessagesQuery,
  uiPartitionUsage,
  uiSupervisorUsage,
} from '../http-schemas.js';
import { delay, die, heal, partition, throughSupervisor } from '../ui/actions.js';
import type { ActionHooks } from '../ui/actions.js';
import { supervisorActions } from '../ui/supervisor-link.js';
import { dashboardPage } from '../ui/page.js';
import type { SnapshotStreams } from '../ui/sse.js';
import type { HttpRoute } from './route.js';

/** Content-Security-Policy of the page: it may talk to its own node only. */
const pageCsp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

export interface UiHooks {
  readonly streams: SnapshotStreams;
  /** This node's sample of the peer messages it sends; absent: GET /ui/messages answers 404. */
  readonly messages?: MessageSource;
  /** Present with fault injection on: the page shows its controls and the action routes exist. */
  readonly actions?: ActionHooks;
}

type Body<S> = FastifyRequest<{ Body: S }>;

export function uiRoutes(ctx: HttpContext, hooks: UiHooks): HttpRoute[] {
  const page = dashboardPage({ controls: hooks.actions !== undefined, supervisor: hooks.actions?.supervisor !== undefined });
  const routes: HttpRoute[] = [
    {
      method: 'GET',
      access: 'open',
      url: '/ui',
      schema: { querystring: noQuery },
      handle: async (_request, reply: FastifyReply) => {
        ctx.refuseIfClosing();
        return reply.code(200).type('text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', pageCsp).send(page);
      },
    },
    {
      method: 'GET',
      access: 'open',
      url: '/ui/events',
      stream: true,
      schema: { querystring: noQuery },
      handle: async (_request, reply) => {
        ctx.refuseIfClosing();
        hooks.streams.open(reply);
        return reply;
      },
    },
  ];
  const messages = hooks.messages;
  if (messages !== undefined) {
    routes.push({
      method: 'GET',
      access: 'open',
      url: '/ui/messages',
      schema: { querystring: uiMessagesQuery },
      handle: async (request: FastifyRequest<{ Querystring: Static<typeof uiMessagesQuery> }>) => {
        ctx.refuseIfClosing();
        return messages.since(Number(request.query.after ?? '0'));
      },
    });
  }
  const actions = hooks.actions;
  if (actions === undefined) return routes;
  routes.push(
    {
      method: 'POST',
      access: 'admin',
      url: '/ui/actions/partition',
      schema: { querystring: noQuery, body: uiActionNodeBody },
      problems: { usage: uiPartitionUsage },
      handle: (request: Body<Static<typeof uiActionNodeBody>>) => partition(actions, request.body.node, request.headers.authorization),
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/ui/actions/heal',
      schema: { querystring: noQuery, body: uiHealBody },
      problems: { usage: uiHealUsage },
      handle: (request: Body<Static<typeof uiHealBody>>) => heal(actions, request.body.node, request.headers.authorization),
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/ui/actions/delay',
      schema: { querystring: noQuery, body: uiDelayBody },
      problems: { usage: uiDelayUsage },
      handle: (request: Body<Static<typeof uiDelayBody>>) => delay(actions, request.body, request.body.node, request.headers.authorization),
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/ui/actions/die',
      schema: { querystring: noQuery, body: uiDieBody },
      problems: { usage: uiDieUsage },
      handle: (request: Body<Static<typeof uiDieBody>>, reply) =>
        die(actions, request.body.node, request.body.clean ?? false, (kill) => void reply.raw.once('finish', kill), request.headers.authorization),
    },
    // The supervisor's three actions take the same body and differ only in their name.
    ...supervisorActions.map(
      (action): HttpRoute => ({
        method: 'POST',
        access: 'admin',
        url: `/ui/actions/${action}`,
        schema: { querystring: noQuery, body: uiActionNodeBody },
        problems: { usage: uiSupervisorUsage(action) },
        handle: (request: Body<Static<typeof uiActionNodeBody>>) => throughSupervisor(actions, action, request.body.node),
      }),
    ),
  );
  return routes;
}
