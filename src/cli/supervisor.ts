/**
 * The supervisor endpoint of `quorumkv up`: a small HTTP server on 127.0.0.1 (a free port)
 * through which the cluster's node processes are restarted, paused and resumed — by
 * `quorumkv fault restart|pause|resume` and by the dashboard (the page asks its node, the
 * node asks here; see api/ui/actions.ts). Its URL is in cluster.json and in each node's
 * --supervisor flag; every request carries the cluster's admin token.
 *
 *   GET  /nodes                 every node process: id, pid, state (running, paused, exited), last exit
 *   POST /nodes/{id}/restart    start an exited node again with its first start's arguments;
 *                               answers once its /health answers (at most restartWaitMsMax)
 *   POST /nodes/{id}/pause      SIGSTOP (409 process_not_running when it is paused or exited)
 *   POST /nodes/{id}/resume     SIGCONT (409 process_running when it runs, not paused)
 *
 * Must never: listen beyond loopback, act without the admin token, restart anything by
 * itself or a node whose process still runs (409 process_running), read a request body, or
 * keep a request open longer than restartWaitMsMax plus the server's own timeouts.
 */

import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { bearerToken, holdsToken, sha256 } from '../api/access.js';
import { NodeProcessRefusal, type NodeProcesses, type NodeProcessInfo } from './node-processes.js';

/** How long a restart waits for the new process's /health before answering 503 timeout. */
export const restartWaitMsMax = 15_000;
/** One /health probe of a restarting node. */
const healthProbeMs = 1_000;
const healthPollMs = 100;

export interface SupervisorOptions {
  readonly processes: NodeProcesses;
  /** The cluster's admin token: the only credential accepted. */
  readonly adminToken: string;
  /** The node's HTTP origin, to see a restarted node serve (null: unknown, do not wait). */
  readonly httpOf: (id: string) => string | null;
}

export interface Supervisor {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  close(): Promise<void>;
}

interface Answer {
  readonly status: number;
  readonly body: object;
}

function refusal(error: unknown): Answer {
  if (error instanceof NodeProcessRefusal) return { status: error.code === 'not_found' ? 404 : 409, body: { error: error.code, message: error.message } };
  return { status: 500, body: { error: 'internal', message: error instanceof Error ? error.message : String(error) } };
}

/** Waits until `id`'s new process answers /health, exits, or restartWaitMsMax passes. */
async function waitServing(options: SupervisorOptions, started: NodeProcessInfo): Promise<Answer> {
  const http = options.httpOf(started.id);
  if (http === null) return { status: 200, body: { node: started, serving: false } };
  const startedAtMs = Date.now();
  while (Date.now() - startedAtMs < restartWaitMsMax) {
    const now = options.processes.list().find((n) => n.id === started.id);
    if (now === undefined || now.pid !== started.pid || now.state === 'exited') {
      const how = now?.lastExit ?? 'unknown';
      return { status: 500, body: { error: 'internal', message: `${started.id} exited again (${how}) ${Date.now() - startedAtMs} ms after its restart; see ${started.logFile}`, node: now ?? started } };
    }
    try {
      const res = await request(`${http}/health`, { signal: AbortSignal.timeout(healthProbeMs) });
      await res.body.dump();
      if (res.statusCode === 200) return { status: 200, body: { node: now, serving: true, waitedMs: Date.now() - startedAtMs } };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, healthPollMs));
  }
  return { status: 503, body: { error: 'timeout', message: `${started.id} runs (pid ${started.pid}) but its /health did not answer within ${restartWaitMsMax} ms; see ${started.logFile}` } };
}

async function route(options: SupervisorOptions, method: string, url: string): Promise<Answer> {
  const { processes } = options;
  if (method === 'GET' && url === '/nodes') return { status: 200, body: { nodes: processes.list() } };
  const m = /^\/nodes\/([A-Za-z0-9_.-]{1,64})\/(restart|pause|resume)$/.exec(url);
  if (method !== 'POST' || m === null) return { status: 404, body: { error: 'unknown_route', message: `${method} ${url}: the supervisor serves GET /nodes and POST /nodes/{id}/restart|pause|resume` } };
  const id = m[1] as string;
  try {
    switch (m[2]) {
      case 'restart':
        return await waitServing(options, processes.restart(id));
      case 'pause':
        return { status: 200, body: { node: processes.pause(id) } };
      default:
        return { status: 200, body: { node: processes.resume(id) } };
    }
  } catch (error) {
    return refusal(error);
  }
}

/** Starts the supervisor on 127.0.0.1 at a free port. */
export async function startSupervisor(options: SupervisorOptions): Promise<Supervisor> {
  const tokenHash = sha256(options.adminToken);
  const answer = (res: ServerResponse, a: Answer): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(a.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(a.body));
  };
  const server: Server = createServer((req, res) => {
    req.resume(); // no route reads a body: let it drain
    if (!holdsToken(bearerToken(req.headers.authorization), tokenHash)) {
      answer(res, { status: 401, body: { error: 'unauthenticated', message: "the supervisor needs the cluster's admin token (DATA_DIR/admin-token) as a Bearer token" } });
      return;
    }
    route(options, req.method ?? 'GET', (req.url ?? '/').split('?')[0] as string).then(
      (a) => answer(res, a),
      (error: unknown) => answer(res, refusal(error)),
    );
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = restartWaitMsMax + 5_000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
