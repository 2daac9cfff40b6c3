/**
 * Users, roles and the auth switch (admin only): GET /auth shows them (never a token), POST
 * /auth applies one change on the leader (auth-changes.ts), forwarded there like a write.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { authView } from '../../wire/auth.js';
import { authChangeExec, parseAuthChange } from '../auth-changes.js';
import { sendForwarded } from '../http-answers.js';
import type { HttpContext } from '../http-context.js';
import { rawJsonBody } from '../http-input.js';
import { authChangeBody, authChangeUsage, noQuery, readHeaders } from '../http-schemas.js';
import type { HttpRoute } from './route.js';

export function authRoutes(ctx: HttpContext): HttpRoute[] {
  return [
    {
      method: 'GET',
      access: 'admin',
      url: '/auth',
      schema: { querystring: noQuery },
      handle: async () => {
        const { state, version } = ctx.access.state();
        return authView(state, version);
      },
    },
    {
      method: 'POST',
      access: 'admin',
      url: '/auth',
      schema: { querystring: noQuery, headers: readHeaders, body: authChangeBody },
      problems: { usage: authChangeUsage },
      handle: async (request: FastifyRequest<{ Body: Static<typeof authChangeBody> }>, reply: FastifyReply) => {
        ctx.refuseIfClosing();
        const change = parseAuthChange(request.body);
        const spec = ctx.spec(request, { method: 'POST', body: rawJsonBody(request), isWrite: true });
        const outcome = await ctx.router.run(authChangeExec, change, spec);
        return outcome.via === 'forward' ? sendForwarded(reply, outcome.response) : outcome.value;
      },
    },
  ];
}
