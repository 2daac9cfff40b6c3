/**
 * `--auth-bootstrap-file FILE`: users, roles and the auth switch a new cluster starts with,
 * so a deployment (a Kubernetes Secret, a compose secret) comes up with auth on and no
 * manual step. Every node may be given the same file; whichever leads first writes it, once,
 * as a put of the auth document that only applies if there is none yet (ifVersion 0), so a
 * cluster whose users were changed since never has them reset by a restart.
 *
 * The file (JSON, keep it as secret as the tokens in it):
 *   { "enabled": true,
 *     "roles": { "app-rw": [{ "prefix": "app/", "read": true, "write": true }] },
 *     "users": { "root": { "roles": ["admin"], "token": "qkv_…" }, "app": { "roles": ["app-rw"], "token": "…" } } }
 * Tokens are stored as their SHA-256 only. The file is checked at start: a mistake stops the
 * node with the reason, before anything is written.
 */

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { applyAuthChange } from '../api/auth-changes.js';
import { authStateKey } from '../kv/types.js';
import type { NodeDriver } from '../node/driver.js';
import { emptyAuthState } from '../wire/auth.js';
import type { AuthState, Permission } from '../wire/auth.js';
import { QkvError } from '../wire/errors.js';

interface BootstrapFile {
  readonly enabled?: boolean;
  readonly roles?: Readonly<Record<string, readonly Permission[]>>;
  readonly users?: Readonly<Record<string, { readonly roles?: readonly string[]; readonly token: string }>>;
}

/** The document the file describes, built by the same rules as `quorumkv user|role|auth`; throws naming the mistake. */
export async function readAuthBootstrap(file: string): Promise<AuthState> {
  let parsed: BootstrapFile;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as BootstrapFile;
  } catch (error) {
    throw new Error(`--auth-bootstrap-file ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  try {
    let state = emptyAuthState;
    for (const [name, permissions] of Object.entries(parsed.roles ?? {})) {
      state = applyAuthChange(state, { op: 'role-add', name }, noToken).state;
      if (!Array.isArray(permissions)) throw new QkvError('bad_request', `role ${name}: a list of {prefix, read, write}`);
      for (const permission of permissions) state = applyAuthChange(state, { op: 'role-grant', name, permission }, noToken).state;
    }
    for (const [name, user] of Object.entries(parsed.users ?? {})) {
      if (typeof user?.token !== 'string' || user.token.length < 16 || !/^[\x21-\x7e]+$/.test(user.token)) throw new QkvError('bad_request', `user ${name}: a token of at least 16 visible ASCII characters`);
      state = applyAuthChange(state, { op: 'user-add', name, roles: user.roles ?? [] }, () => user.token).state;
    }
    if (parsed.enabled === true) state = applyAuthChange(state, { op: 'enable' }, noToken).state;
    return state;
  } catch (error) {
    throw new Error(`--auth-bootstrap-file ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

function noToken(): string {
  throw new Error('no token is issued while bootstrapping');
}

/** How often a node that may lead checks whether the document still has to be written. */
const checkIntervalMs = 1_000;

/** Writes `state` once the cluster has a leader and no auth document; stops by itself once one exists. */
export function bootstrapAuth(driver: NodeDriver, state: AuthState, log: Logger): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const attempt = async (): Promise<void> => {
    if (driver.authRecord() !== undefined) {
      stopped = true;
      return;
    }
    if (driver.leader()?.id !== driver.id) return;
    const result = await driver.write({ op: 'put', key: authStateKey, value: JSON.stringify(state), ifVersion: 0 }, { timeoutMs: 5_000 });
    if (result.ok) log.info({ users: Object.keys(state.users).length, roles: Object.keys(state.roles).length, enabled: state.enabled }, 'auth bootstrapped from --auth-bootstrap-file');
    stopped = true;
  };
  const loop = (): void => {
    timer = null;
    void attempt()
      .catch(() => undefined)
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, checkIntervalMs);
      });
  };
  timer = setTimeout(loop, 0);
  return {
    stop: () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}
