/**
 * One change to the auth document (wire/auth.ts AuthChange) as a pure function of the state
 * before it, and how the leader commits it: a put of the whole document with ifVersion, so
 * two admins changing users at once cannot lose each other's change (the second is redone on
 * the state the first left). Tokens are drawn here, on the leader; only their digests enter
 * the log.
 *
 * Must never: leave auth on with no user holding the admin role (nobody could manage it),
 * let a role be granted that does not exist, or change the built-in admin role.
 */

import { randomBytes } from 'node:crypto';
import { authStateKey } from '../kv/types.js';
import type { KvNode } from '../node/types.js';
import { adminRole, emptyAuthState, isAdmin, nameProblem, permissionsProblem, rolesMax, tokenPrefix, userRolesMax, usersMax } from '../wire/auth.js';
import { authChangeOps } from '../wire/auth.js';
import type { AuthChange, AuthChangeAnswer, AuthState, Permission, UserDef } from '../wire/auth.js';
import { QkvError } from '../wire/errors.js';
import { parseAuthState, sha256 } from './access.js';
import type { LocalExec } from './forward.js';

/** A fresh bearer token: 192 random bits. */
export function newToken(): string {
  return tokenPrefix + randomBytes(24).toString('base64url');
}

/** The state after `change`, and the token it issued; throws QkvError (nothing changes) when it cannot apply. */
export function applyAuthChange(state: AuthState, change: AuthChange, token: () => string): { readonly state: AuthState; readonly token?: string } {
  switch (change.op) {
    case 'enable':
      if (!Object.keys(state.users).some((u) => isAdmin(state, u))) {
        throw new QkvError('bad_request', `Add a user with the ${adminRole} role first (quorumkv user add root --role ${adminRole}): with auth on, only admins manage it`);
      }
      return { state: { ...state, enabled: true } };
    case 'disable':
      return { state: { ...state, enabled: false } };
    case 'user-add': {
      checkName('user', change.name);
      if (state.users[change.name] !== undefined) throw new QkvError('bad_request', `user ${change.name} exists (quorumkv user token ${change.name} issues a new token)`);
      if (Object.keys(state.users).length >= usersMax) throw new QkvError('bad_request', `at most ${usersMax} users`);
      const roles = [...new Set(change.roles ?? [])];
      if (roles.length > userRolesMax) throw new QkvError('bad_request', `a user holds at most ${userRolesMax} roles`);
      for (const role of roles) requireRole(state, role);
      const issued = token();
      return { state: withUser(state, change.name, { roles, tokenSha256: sha256(issued).toString('hex') }), token: issued };
    }
    case 'user-delete': {
      requireUser(state, change.name);
      const users = { ...state.users };
      delete users[change.name];
      return { state: keepsAnAdmin(state, { ...state, users }) };
    }
    case 'user-token': {
      const user = requireUser(state, change.name);
      const issued = token();
      return { state: withUser(state, change.name, { ...user, tokenSha256: sha256(issued).toString('hex') }), token: issued };
    }
    case 'user-grant': {
      const user = requireUser(state, change.name);
      requireRole(state, change.role);
      if (user.roles.includes(change.role)) return { state };
      if (user.roles.length >= userRolesMax) throw new QkvError('bad_request', `a user holds at most ${userRolesMax} roles`);
      return { state: withUser(state, change.name, { ...user, roles: [...user.roles, change.role] }) };
    }
    case 'user-revoke': {
      const user = requireUser(state, change.name);
      if (!user.roles.includes(change.role)) throw new QkvError('not_found', `user ${change.name} does not hold role ${change.role}`);
      return { state: keepsAnAdmin(state, withUser(state, change.name, { ...user, roles: user.roles.filter((r) => r !== change.role) })) };
    }
    case 'role-add':
      checkName('role', change.name);
      if (change.name === adminRole) throw new QkvError('bad_request', `${adminRole} is built in`);
      if (state.roles[change.name] !== undefined) throw new QkvError('bad_request', `role ${change.name} exists`);
      if (Object.keys(state.roles).length >= rolesMax) throw new QkvError('bad_request', `at most ${rolesMax} roles`);
      return { state: { ...state, roles: { ...state.roles, [change.name]: { permissions: [] } } } };
    case 'role-delete': {
      requireDefinedRole(state, change.name);
      const roles = { ...state.roles };
      delete roles[change.name];
      const users: Record<string, UserDef> = {};
      for (const [name, user] of Object.entries(state.users)) users[name] = { ...user, roles: user.roles.filter((r) => r !== change.name) };
      return { state: { ...state, roles, users } };
    }
    case 'role-grant': {
      const role = requireDefinedRole(state, change.name);
      const permissions: Permission[] = [...role.permissions.filter((p) => p.prefix !== change.permission.prefix), change.permission];
      const problem = permissionsProblem(permissions);
      if (problem !== null) throw new QkvError('bad_request', problem);
      return { state: { ...state, roles: { ...state.roles, [change.name]: { permissions } } } };
    }
    case 'role-revoke': {
      const role = requireDefinedRole(state, change.name);
      if (!role.permissions.some((p) => p.prefix === change.prefix)) throw new QkvError('not_found', `role ${change.name} has no permission on ${JSON.stringify(change.prefix)}`);
      return { state: { ...state, roles: { ...state.roles, [change.name]: { permissions: role.permissions.filter((p) => p.prefix !== change.prefix) } } } };
    }
  }
}

/** The change a POST /auth body asks for; 400 naming what is missing or does not belong. */
export function parseAuthChange(body: { readonly op: string; readonly name?: string; readonly role?: string; readonly roles?: readonly string[]; readonly prefix?: string; readonly read?: boolean; readonly write?: boolean }): AuthChange {
  const { op, name, role, roles, prefix, read, write } = body;
  const given = Object.keys(body).filter((k) => k !== 'op' && (body as Record<string, unknown>)[k] !== undefined);
  const takes = (...fields: string[]): void => {
    const extra = given.filter((f) => !fields.includes(f));
    if (extra.length > 0) throw new QkvError('bad_request', `op ${op} does not take ${extra.join(', ')}`);
  };
  const need = <T>(value: T | undefined, field: string): T => {
    if (value === undefined) throw new QkvError('bad_request', `op ${op} needs "${field}"`);
    return value;
  };
  switch (op) {
    case 'enable':
    case 'disable':
      takes();
      return { op };
    case 'user-add':
      takes('name', 'roles');
      return { op, name: need(name, 'name'), ...(roles === undefined ? {} : { roles }) };
    case 'user-delete':
    case 'user-token':
    case 'role-add':
    case 'role-delete':
      takes('name');
      return { op, name: need(name, 'name') };
    case 'user-grant':
    case 'user-revoke':
      takes('name', 'role');
      return { op, name: need(name, 'name'), role: need(role, 'role') };
    case 'role-grant':
      takes('name', 'prefix', 'read', 'write');
      return { op, name: need(name, 'name'), permission: { prefix: need(prefix, 'prefix'), read: read ?? false, write: write ?? false } };
    case 'role-revoke':
      takes('name', 'prefix');
      return { op, name: need(name, 'name'), prefix: need(prefix, 'prefix') };
    default:
      throw new QkvError('bad_request', `Unknown op ${JSON.stringify(op)}: one of ${authChangeOps.join(', ')}`);
  }
}

/** Version conflicts (another change won the race, or this leader had not applied the last one yet) redone at most this often. */
const conflictRetriesMax = 5;

/** Runs an auth change on the leader: read, apply, put with ifVersion; redone on a conflict. */
export const authChangeExec: LocalExec<AuthChange, AuthChangeAnswer> = {
  run: async (node: KvNode, change, timeoutMs) => {
    const deadline = performance.now() + timeoutMs;
    for (let attempt = 0; attempt <= conflictRetriesMax; attempt++) {
      const record = node.authRecord();
      const version = record?.version ?? 0;
      const before = record === undefined ? emptyAuthState : parseAuthState(record.value);
      const after = applyAuthChange(before, change, newToken);
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) break;
      const result = await node.write({ op: 'put', key: authStateKey, value: JSON.stringify(after.state), ifVersion: version }, { timeoutMs: left });
      if (result.ok) return { version: result.version, ...(after.token === undefined ? {} : { token: after.token }) };
    }
    throw new QkvError('busy', 'The auth document kept changing under this change; retry', {}, 200);
  },
};

function checkName(kind: 'user' | 'role', name: string): void {
  const problem = nameProblem(kind, name);
  if (problem !== null) throw new QkvError('bad_request', problem);
}

function requireUser(state: AuthState, name: string): UserDef {
  const user = state.users[name];
  if (user === undefined) throw new QkvError('not_found', `no user ${JSON.stringify(name)}`);
  return user;
}

/** A role a user may hold: a defined one, or admin. */
function requireRole(state: AuthState, name: string): void {
  if (name !== adminRole) requireDefinedRole(state, name);
}

function requireDefinedRole(state: AuthState, name: string): NonNullable<AuthState['roles'][string]> {
  if (name === adminRole) throw new QkvError('bad_request', `${adminRole} is built in: it grants everything and cannot be changed`);
  const role = state.roles[name];
  if (role === undefined) throw new QkvError('not_found', `no role ${JSON.stringify(name)} (quorumkv role add ${name})`);
  return role;
}

function withUser(state: AuthState, name: string, user: UserDef): AuthState {
  return { ...state, users: { ...state.users, [name]: user } };
}

/** `after`, unless it leaves auth on with no admin user while `before` had one. */
function keepsAnAdmin(before: AuthState, after: AuthState): AuthState {
  if (after.enabled && !Object.keys(after.users).some((u) => isAdmin(after, u)) && Object.keys(before.users).some((u) => isAdmin(before, u))) {
    throw new QkvError('bad_request', `This would leave auth on with no user holding the ${adminRole} role: disable auth first, or make another admin`);
  }
  return after;
}
