/**
 * Asking the supervisor of `quorumkv up` (cli/supervisor.ts) to restart, pause or resume a
 * node's process: for `quorumkv fault` and for a node whose dashboard asks it to (the node
 * was started with --supervisor). Failures are QkvErrors with the supervisor's code
 * (process_running, not_found, timeout, …), so the dashboard's route answers with them.
 *
 * Must never: wait longer than the supervisor's own restart deadline plus a margin, or send
 * the admin token anywhere but a loopback http:// URL (config.ts checks --supervisor).
 */

import { request } from 'undici';
import { isErrorCode, QkvError } from '../wire/errors.js';
import { restartWaitMsMax } from './supervisor.js';

export type SupervisorAction = 'restart' | 'pause' | 'resume';

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
