/**
 * `quorumkv auth|user|role …`: users, roles and the auth switch of a running cluster, through
 * GET and POST /auth on any node (changes are forwarded to the leader and replicated). Each
 * needs admin credentials: the admin token (--token, QKV_TOKEN, or DATA_DIR/admin-token of
 * the cluster file) or the token of a user with the admin role.
 *
 *   auth enable | disable | show
 *   user add NAME [--role R,R]      prints the new user's token, once
 *   user token NAME                 a new token (the old one stops working)
 *   user grant NAME ROLE | user revoke NAME ROLE | user delete NAME | user list
 *   role add NAME | role delete NAME | role list
 *   role grant NAME PREFIX [--read] [--write]   (neither: both)
 *   role revoke NAME PREFIX
 *
 * Exit status 0 on success, 1 when the cluster refused (its answer on stderr), 2 on usage.
 */

import { request } from 'undici';
import type { AuthChange, AuthView } from '../wire/auth.js';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { authHeaders, chosenEndpoints, chosenToken, clusterFlags } from './cluster-file.js';
import { ConfigError } from './config.js';

const epilog = 'Needs the admin token: --token, QKV_TOKEN, or the admin-token file quorumkv up writes beside the cluster file.';

export const authCommand: CommandSpec = {
  name: 'auth',
  summary: 'turn authentication on or off, or show users and roles (enable | disable | show)',
  args: '<enable|disable|show>',
  flags: { json: { kind: 'bool', help: 'print show as JSON', default: 'false' }, ...clusterFlags },
  epilog: `enable needs a user with the admin role first (quorumkv user add root --role admin). ${epilog}`,
};

export const userCommand: CommandSpec = {
  name: 'user',
  summary: 'manage users: add (prints its token), token, grant, revoke, delete, list',
  args: '<add|token|grant|revoke|delete|list> [name] [role]',
  flags: { role: { kind: 'value', help: 'with add: roles to hold, comma-separated (admin: everything)' }, ...clusterFlags },
  epilog,
};

export const roleCommand: CommandSpec = {
  name: 'role',
  summary: 'manage roles and their key-prefix permissions: add, grant, revoke, delete, list',
  args: '<add|grant|revoke|delete|list> [name] [prefix]',
  flags: {
    read: { kind: 'bool', help: 'with grant: read keys under the prefix', default: 'false' },
    write: { kind: 'bool', help: 'with grant: write keys under the prefix (neither flag: both)', default: 'false' },
    ...clusterFlags,
  },
  epilog: `A prefix "" is every key. ${epilog}`,
};

/** How long one node gets to answer before the next is tried. */
const askTimeoutMs = 15_000;

async function ask(values: ReadonlyMap<string, string>, method: 'GET' | 'POST', body?: AuthChange): Promise<Record<string, unknown>> {
  const token = await chosenToken(values);
  let lastError = 'no endpoint';
  for (const base of await chosenEndpoints(values)) {
    try {
      const res = await request(`${base}/auth`, {
        method,
        headers: { ...authHeaders(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(flatten(body)) }),
        headersTimeout: askTimeoutMs,
        bodyTimeout: askTimeoutMs,
      });
      const answer = (await res.body.json()) as Record<string, unknown>;
      if (res.statusCode === 200) return answer;
      // A refusal is the cluster's answer, not a node's trouble: no other node would say otherwise.
      if (res.statusCode < 500) throw new Refused(answer);
      lastError = `${base}: ${res.statusCode} ${JSON.stringify(answer)}`;
    } catch (error) {
      if (error instanceof Refused) throw error;
      lastError = `${base}: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  throw new Error(lastError);
}

/** POST /auth's body: a role-grant's permission travels as flat fields. */
function flatten(change: AuthChange): Record<string, unknown> {
  if (change.op !== 'role-grant') return change as unknown as Record<string, unknown>;
  return { op: change.op, name: change.name, ...change.permission };
}

class Refused extends Error {
  constructor(readonly answer: Record<string, unknown>) {
    super(String(answer['message']));
  }
}

async function run(spec: CommandSpec, argv: string[], act: (v: ReadonlyMap<string, string>, positional: readonly string[]) => Promise<string>): Promise<number> {
  const parsed = parseArgs(spec, argv);
  if (parsed === null) return 0;
  try {
    process.stdout.write(await act(parsed.values, parsed.positional));
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    process.stderr.write(`quorumkv ${spec.name}: ${error instanceof Refused ? JSON.stringify(error.answer) : error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

function need(value: string | undefined, what: string, spec: CommandSpec): string {
  if (value === undefined || value === '') throw new ConfigError(`quorumkv ${spec.name} needs ${what} (see quorumkv ${spec.name} --help)`);
  return value;
}

export function runAuthCommand(argv: string[]): Promise<number> {
  return run(authCommand, argv, async (v, [action]) => {
    if (action === 'enable' || action === 'disable') {
      const answer = await ask(v, 'POST', { op: action });
      return `auth ${action === 'enable' ? 'on: every data request needs a user token' : 'off: data routes are open'} (version ${String(answer['version'])})\n`;
    }
    if (action !== 'show') throw new ConfigError(`quorumkv auth: unknown action "${action ?? ''}" (enable, disable, show)`);
    const view = (await ask(v, 'GET')) as unknown as AuthView;
    if (v.get('json') === 'true') return `${JSON.stringify(view)}\n`;
    return `auth ${view.enabled ? 'on' : 'off'}\n${usersTable(view)}${rolesTable(view)}`;
  });
}

export function runUserCommand(argv: string[]): Promise<number> {
  return run(userCommand, argv, async (v, [action, name, role]) => {
    switch (action) {
      case 'add': {
        const roles = (v.get('role') ?? '').split(',').map((r) => r.trim()).filter(Boolean);
        const answer = await ask(v, 'POST', { op: 'user-add', name: need(name, 'a user name', userCommand), roles });
        return `user ${name} added${roles.length > 0 ? ` with ${roles.join(', ')}` : ''}; its token (shown this once):\n${String(answer['token'])}\n`;
      }
      case 'token': {
        const answer = await ask(v, 'POST', { op: 'user-token', name: need(name, 'a user name', userCommand) });
        return `new token for ${name} (the old one no longer works):\n${String(answer['token'])}\n`;
      }
      case 'grant':
      case 'revoke':
        await ask(v, 'POST', { op: action === 'grant' ? 'user-grant' : 'user-revoke', name: need(name, 'a user name', userCommand), role: need(role, 'a role', userCommand) });
        return `${action === 'grant' ? 'granted' : 'revoked'} ${role} ${action === 'grant' ? 'to' : 'from'} ${name}\n`;
      case 'delete':
        await ask(v, 'POST', { op: 'user-delete', name: need(name, 'a user name', userCommand) });
        return `user ${name} deleted\n`;
      case 'list':
        return usersTable((await ask(v, 'GET')) as unknown as AuthView);
      default:
        throw new ConfigError(`quorumkv user: unknown action "${action ?? ''}" (add, token, grant, revoke, delete, list)`);
    }
  });
}

export function runRoleCommand(argv: string[]): Promise<number> {
  return run(roleCommand, argv, async (v, [action, name, prefix]) => {
    switch (action) {
      case 'add':
      case 'delete':
        await ask(v, 'POST', { op: action === 'add' ? 'role-add' : 'role-delete', name: need(name, 'a role name', roleCommand) });
        return `role ${name} ${action === 'add' ? 'added' : 'deleted'}\n`;
      case 'grant': {
        const either = v.get('read') === 'true' || v.get('write') === 'true';
        const permission = { prefix: prefix ?? '', read: !either || v.get('read') === 'true', write: !either || v.get('write') === 'true' };
        if (prefix === undefined) throw new ConfigError('quorumkv role grant needs a role and a prefix ("" for every key)');
        await ask(v, 'POST', { op: 'role-grant', name: need(name, 'a role name', roleCommand), permission });
        return `${name} may ${[permission.read ? 'read' : '', permission.write ? 'write' : ''].filter(Boolean).join(' and ')} keys under ${JSON.stringify(prefix)}\n`;
      }
      case 'revoke':
        if (prefix === undefined) throw new ConfigError('quorumkv role revoke needs a role and a prefix');
        await ask(v, 'POST', { op: 'role-revoke', name: need(name, 'a role name', roleCommand), prefix });
        return `${name} no longer holds a permission on ${JSON.stringify(prefix)}\n`;
      case 'list':
        return rolesTable((await ask(v, 'GET')) as unknown as AuthView);
      default:
        throw new ConfigError(`quorumkv role: unknown action "${action ?? ''}" (add, grant, revoke, delete, list)`);
    }
  });
}

function usersTable(view: AuthView): string {
  if (view.users.length === 0) return 'no users\n';
  return view.users.map((u) => `user ${u.name}\troles: ${u.roles.join(', ') || '(none)'}\n`).join('');
}

function rolesTable(view: AuthView): string {
  if (view.roles.length === 0) return 'no roles (admin is built in)\n';
  return view.roles
    .map((r) => `role ${r.name}\t${r.permissions.map((p) => `${JSON.stringify(p.prefix)} ${[p.read ? 'read' : '', p.write ? 'write' : ''].filter(Boolean).join('+')}`).join(', ') || '(no permissions)'}\n`)
    .join('');
}
