/**
 * One HTTP route as data: method, URL pattern, schemas, how its schema failures are told,
 * and its handler. The server registers the table once and derives from the same table which
 * methods a path allows (405 with Allow), so the two can never disagree.
 */

import type { FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import type { RouteProblems } from '../http-schemas.js';

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'POST';

/**
 * Who may call a route (api/access.ts): `open` anyone (health, status, metrics, the
 * dashboard's view); `data` anyone while auth is off, else a user whose roles the handler
 * checks per key; `admin` the admin token or an admin user (absent with admin routes off).
 */
export type RouteAccess = 'open' | 'data' | 'admin';

export interface HttpRoute {
  readonly method: HttpMethod;
  readonly access: RouteAccess;
  readonly url: string;
  readonly schema: FastifySchema;
  readonly problems?: RouteProblems;
  /**
   * A long-lived stream (watch, event source): not counted against the client's requests in
   * flight (http.ts requestsPerClientMax), which it would hold for as long as it is open.
   */
  readonly stream?: true;
  // A method signature: handlers narrow the request to their route's typed shape.
  handle(request: FastifyRequest, reply: FastifyReply): Promise<unknown>;
}

/** The methods `path` allows under `routes`, or null when no route has that path. */
export function allowedMethods(routes: readonly HttpRoute[], path: string): readonly string[] | null {
  const methods = routes.filter((r) => matches(r.url, path)).map((r) => r.method);
  return methods.length === 0 ? null : [...new Set(methods)].sort();
}

/**
 * `/members/:id` matches `/members/anything-without-a-slash`; `/kv/*` matches everything
 * under `/kv/` (an empty key too: the key rules refuse it).
 */
function matches(pattern: string, path: string): boolean {
  if (pattern.endsWith('/*')) return path.startsWith(pattern.slice(0, -1));
  const want = pattern.split('/');
  const got = path.split('/');
  return want.length === got.length && want.every((segment, i) => segment.startsWith(':') || segment === got[i]);
}
