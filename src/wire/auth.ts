/**
 * Users, roles and permissions as they travel and as they are stored (one replicated
 * document, see api/access.ts), with the rules a name or a permission must follow. Shared by
 * the server (api/), the client and the CLI, so that both ends refuse the same input.
 *
 * The model is etcd's RBAC, smaller: a role holds key-prefix permissions (read, write or
 * both); a user holds roles and one bearer token, stored as its SHA-256 (tokens are 192
 * random bits, so a fast hash is enough; there are no passwords to stretch). The built-in
 * role `admin` may do everything: every key, and the operational routes (mode, members,
 * backups, compaction, faults, users and roles).
 */

/** The role that grants everything, operations included. It cannot be defined or changed. */
export const adminRole = 'admin';

/** Bearer tokens the server issues start with this, so a leaked one is recognisable (secret scanners). */
export const tokenPrefix = 'qkv_';

export interface Permission {
  /** Keys starting with this ("" is every key). */
  readonly prefix: string;
  readonly read: boolean;
  readonly write: boolean;
}

export interface RoleDef {
  readonly permissions: readonly Permission[];
}

export interface UserDef {
  readonly roles: readonly string[];
  /** Hex SHA-256 of the user's bearer token. */
  readonly tokenSha256: string;
}

/** The whole authorization state, replicated through the log as one document. */
export interface AuthState {
  /** Off: data routes are open to anyone; operational routes still need admin credentials. */
  readonly enabled: boolean;
  readonly users: Readonly<Record<string, UserDef>>;
  readonly roles: Readonly<Record<string, RoleDef>>;
}

export const emptyAuthState: AuthState = { enabled: false, users: {}, roles: {} };

/** How users and roles look to an admin (GET /auth): never a token or its hash. */
export interface AuthView {
  readonly enabled: boolean;
  /** Version of the auth document (0: never written). */
  readonly version: number;
  readonly users: readonly { readonly name: string; readonly roles: readonly string[] }[];
  readonly roles: readonly { readonly name: string; readonly permissions: readonly Permission[] }[];
}

/** What POST /auth/users/{name}/token (and creating a user) answers: the token, shown this once. */
export interface TokenAnswer {
  readonly user: string;
  readonly token: string;
}

const nameRule = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const nameRuleText = '1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit';

/** Why `name` cannot name a user or role, or null. */
export function nameProblem(kind: 'user' | 'role', name: unknown): string | null {
  if (typeof name !== 'string' || !nameRule.test(name)) return `a ${kind} name is ${nameRuleText}`;
  return null;
}

/** Permissions a role may hold at most: each is checked on every request of its users. */
export const rolePermissionsMax = 64;
/** Roles a user may hold at most. */
export const userRolesMax = 16;
/** Users and roles in the cluster at most: the document is read whole on every change. */
export const usersMax = 1000;
export const rolesMax = 1000;

/** Why `permissions` cannot be a role's, or null. */
export function permissionsProblem(permissions: unknown): string | null {
  if (!Array.isArray(permissions)) return 'permissions must be a list of {prefix, read, write}';
  if (permissions.length > rolePermissionsMax) return `a role holds at most ${rolePermissionsMax} permissions`;
  for (const p of permissions as unknown[]) {
    if (typeof p !== 'object' || p === null) return 'each permission is {prefix, read, write}';
    const { prefix, read, write } = p as Record<string, unknown>;
    if (typeof prefix !== 'string' || prefix.includes('\u0000')) return 'a permission prefix is a string without NUL ("" is every key)';
    if (typeof read !== 'boolean' || typeof write !== 'boolean') return 'a permission has read and write as true or false';
    if (!read && !write) return `the permission on "${prefix}" grants neither read nor write`;
  }
  return null;
}

/**
 * Whether `state` lets `user` read or write `key`, or every key under a prefix (a listing, a
 * watch: one permission must cover the whole range, as etcd checks a range). The admin role
 * may do anything.
 */
export function permits(state: AuthState, user: string, key: string, mode: 'read' | 'write'): boolean {
  return rolesOf(state, user, (role) => role.permissions.some((p) => p[mode] && key.startsWith(p.prefix)));
}

/** Whether `user` holds the admin role. */
export function isAdmin(state: AuthState, user: string): boolean {
  return state.users[user]?.roles.includes(adminRole) === true;
}

function rolesOf(state: AuthState, user: string, test: (role: RoleDef) => boolean): boolean {
  const def = state.users[user];
  if (def === undefined) return false;
  for (const name of def.roles) {
    if (name === adminRole) return true;
    const role = state.roles[name];
    if (role !== undefined && test(role)) return true;
  }
  return false;
}

/** POST /auth: one change to users, roles or the switch, applied atomically on the leader. */
export type AuthChange =
  | { readonly op: 'enable' }
  | { readonly op: 'disable' }
  /** Creates a user with these roles; the answer carries its token, shown this once. */
  | { readonly op: 'user-add'; readonly name: string; readonly roles?: readonly string[] }
  | { readonly op: 'user-delete'; readonly name: string }
  /** A new token for the user; the old one stops working at once. */
  | { readonly op: 'user-token'; readonly name: string }
  | { readonly op: 'user-grant'; readonly name: string; readonly role: string }
  | { readonly op: 'user-revoke'; readonly name: string; readonly role: string }
  | { readonly op: 'role-add'; readonly name: string }
  /** Users holding the role lose it. */
  | { readonly op: 'role-delete'; readonly name: string }
  /** Adds the permission, or replaces the one on the same prefix. */
  | { readonly op: 'role-grant'; readonly name: string; readonly permission: Permission }
  | { readonly op: 'role-revoke'; readonly name: string; readonly prefix: string };

export const authChangeOps: readonly AuthChange['op'][] = [
  'enable', 'disable', 'user-add', 'user-delete', 'user-token', 'user-grant', 'user-revoke', 'role-add', 'role-delete', 'role-grant', 'role-revoke',
];

export interface AuthChangeAnswer {
  /** Version of the auth document after the change. */
  readonly version: number;
  /** user-add and user-token: the new token, shown this once. */
  readonly token?: string;
}

/** The admin's view of a state: names, roles and permissions, never token digests. */
export function authView(state: AuthState, version: number): AuthView {
  const names = (o: object): string[] => Object.keys(o).sort();
  return {
    enabled: state.enabled,
    version,
    users: names(state.users).map((name) => ({ name, roles: [...(state.users[name]?.roles ?? [])] })),
    roles: names(state.roles).map((name) => ({ name, permissions: [...(state.roles[name]?.permissions ?? [])] })),
  };
}
