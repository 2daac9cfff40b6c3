/**
 * Asking the supervisor of `quorumkv up` (cli/supervisor.ts) to restart, pause or resume a
 * node's process, and which processes it has paused: for `quorumkv fault` and for a node
 * whose dashboard asks it to (the node was started with --supervisor). Failures are
 * QkvErrors with the supervisor's code (process_running, not_found, timeout, …), so the
 * dashboard's route answers with them.
 *
 * Must never: wait longer than the supervisor's own restart deadline plus a margin, or send
 * the admin token anywhere but a loopback http:// URL (config.ts checks --supervisor).
 */

import { request } from 'undici';
import type { ProcessState, SupervisorAction } from '../api/ui/supervisor-link.js';
import { isErrorCode, QkvError } from '../wire/errors.js';
import { restartWaitMsMax } from './supervisor.js';

/** A restart answers once the node serves (at most restartWaitMsMax); the rest at once. */
const answerMsMax: Readonly<Record<SupervisorAction, number>> = { restart: restartWaitMsMax + 3_000, pause: 3_000, resume: 3_000 };

/** Asks the supervisor at `url` to do `action` on node `id`; resolves with its answer. */
export async function askSupervisor(url: string, token: string | null, action: SupervisorAction, id: string): Promise<Record<string, unknown>> {
  let res;
  try {
    res = await request(`${url}/nodes/${encodeURIComponent(id)}/${action}`, {
      method: 'POST',
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(answerMsMax[action]),
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new QkvError('timeout', `the supervisor at ${url} did not answer ${action} ${id} within ${answerMsMax[action]} ms: ${why} (is quorumkv up still running?)`);
  }
  const body = (await res.body.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.statusCode >= 300) {
    const code = isErrorCode(body['error']) ? body['error'] : 'internal';
    throw new QkvError(code, `supervisor: ${String(body['message'] ?? `answered ${res.statusCode}`)}`, { node: id });
  }
  return body;
}

const processStates: ReadonlySet<string> = new Set<ProcessState>(['running', 'paused', 'exited']);

/**
 * The supervisor's GET /nodes as member id → process state, within `timeoutMs` (rejects
 * otherwise, or when the answer is not a list of nodes: the dashboard then knows nothing).
 */
export async function supervisorProcesses(url: string, token: string | null, timeoutMs: number): Promise<ReadonlyMap<string, ProcessState>> {
  const signal = AbortSignal.timeout(timeoutMs);
  const res = await request(`${url}/nodes`, { headers: token === null ? {} : { authorization: `Bearer ${token}` }, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const body = (await res.body.json()) as { nodes?: unknown };
  if (res.statusCode !== 200 || !Array.isArray(body.nodes)) throw new QkvError('internal', `the supervisor at ${url} answered GET /nodes with ${res.statusCode}, not a list of nodes`);
  const states = new Map<string, ProcessState>();
  for (const n of body.nodes as { id?: unknown; state?: unknown }[]) {
    if (typeof n.id === 'string' && typeof n.state === 'string' && processStates.has(n.state)) states.set(n.id, n.state as ProcessState);
  }
  return states;
}
