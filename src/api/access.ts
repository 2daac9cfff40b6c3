/**
 * Who is asking and what they may do, for the HTTP and gRPC APIs alike: the bearer token of
 * a request names the node's admin (the token of `--admin-token-file`) or a user of the
 * replicated auth document (kv/types.ts authStateKey, wire/auth.ts), and the routes ask here
 * before they act.
 *
 * Two independent switches:
 * - Operational routes (mode, members, backups, compaction, the raw store, rollbacks, faults,
 *   users and roles) need the admin token or a user with the admin role (`admin: 'token'`),
 *   are open to anyone (`'open'`: a trusted network, tests), or do not exist (`'off'`: 404).
 * - Data routes (keys, lists, watches, transactions, leases) are open while auth is off;
 *   once an admin turns it on, every one needs a user's token and the permission its roles
 *   give on the key or prefix (the admin token and admin users may do anything).
 *
 * Tokens are compared as SHA-256 digests: the admin one in constant time, users' by lookup
 * of the digest (a timing difference reveals nothing about a token whose hash it is not).
 * Must never: log a token, answer 403 to a request without valid credentials (that is 401),
 * or let a refused request reach the node.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import { authStateKey } from '../kv/types.js';
import type { TxnCommand, TxnOp } from '../kv/types.js';
import type { KvNode } from '../node/types.js';
import { adminRole, emptyAuthState, isAdmin, permits } from '../wire/auth.js';
import type { AuthState } from '../wire/auth.js';
import { QkvError } from '../wire/errors.js';

export type AdminAccess = 'token' | 'open' | 'off';

export interface AccessOptions {
  readonly admin: AdminAccess;
  /** The admin token's SHA-256 (with admin 'token'; without one only admin users pass). */
  readonly adminTokenSha256?: Buffer;
}

/** Whoever sent a request: the admin token's holder, a user, or anyone (no or unknown token). */
export type Principal = { readonly kind: 'admin' } | { readonly kind: 'user'; readonly name: string } | { readonly kind: 'anyone' };

const anyone: Principal = { kind: 'anyone' };
const admin: Principal = { kind: 'admin' };

export const noAccessControl: AccessOptions = { admin: 'open' };

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
/** Whether `token` is the one whose SHA-256 is `digest`, compared in constant time. */
export function holdsToken(token: string | null, digest: Buffer): boolean {
  return token !== null && timingSafeEqual(sha256(token), digest);
}

export function bearerToken(header: string | string[] | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(value);
  return match === null ? null : (match[1] as string);
}

/** The auth document as applied at `version`, parsed, with its users by token digest. */
interface AuthDocument {
  readonly version: number;
  readonly state: AuthState;
  readonly byToken: ReadonlyMap<string, string>;
}

export class AccessControl {
  private cached: AuthDocument = { version: 0, state: emptyAuthState, byToken: new Map() };

  constructor(
    private readonly node: Pick<KvNode, 'authRecord'>,
    readonly options: AccessOptions,
  ) {}

  /** The auth document as this node applied it, parsed once per version. */
  state(): AuthDocument {
    const record = this.node.authRecord();
    const version = record?.version ?? 0;
    if (version !== this.cached.version) {
      const state = record === undefined ? emptyAuthState : parseAuthState(record.value);
      const byToken = new Map(Object.entries(state.users).map(([name, user]) => [user.tokenSha256, name]));
      this.cached = { version, state, byToken };
    }
    return this.cached;
  }

  /** Who holds `token` (null: no token). A token nobody holds is `anyone`, like none. */
  principal(token: string | null): Principal {
    return this.holderIn(this.state(), token);
  }

  private holderIn(doc: AuthDocument, token: string | null): Principal {
    if (token === null) return anyone;
    const adminDigest = this.options.adminTokenSha256;
    if (adminDigest !== undefined && holdsToken(token, adminDigest)) return admin;
    const name = doc.byToken.get(sha256(token).toString('hex'));
    return name === undefined ? anyone : { kind: 'user', name };
  }

  /** Passes the admin token's holder and admin users (or anyone with admin routes open); throws 401/403. */
  requireAdmin(token: string | null): void {
    if (this.options.admin === 'open') return;
    const doc = this.state();
    const who = this.holderIn(doc, token);
    if (who.kind === 'admin') return;
    if (who.kind === 'anyone') throw unauthenticated(token, 'this operation needs the admin token or a user with the admin role');
    if (!isAdmin(doc.state, who.name)) throw new QkvError('permission_denied', `user ${who.name} does not hold the ${adminRole} role`);
  }

  /**
   * Who may act on data for this request: null while auth is off (anyone may do anything),
   * else the principal; throws 401 without valid credentials.
   */
  dataPrincipal(token: string | null): Principal | null {
    const doc = this.state();
    if (!doc.state.enabled) return null;
    const who = this.holderIn(doc, token);
    if (who.kind === 'anyone') throw unauthenticated(token, 'auth is on: send a user token as Authorization: Bearer <token>');
    return who;
  }

  /**
   * Throws 403 unless `who` may `mode` `key` (or every key under it, for a prefix). Judged by
   * the document `who` was authenticated against (dataPrincipal read it): a batch of a
   * thousand keys reads it once, not a thousand times.
   */
  permit(who: Principal | null, key: string, mode: 'read' | 'write', what: 'key' | 'prefix' = 'key'): void {
    if (who === null || who.kind === 'admin') return;
    if (who.kind === 'user' && permits(this.cached.state, who.name, key, mode)) return;
    const name = who.kind === 'user' ? `user ${who.name}` : 'this request';
    throw new QkvError('permission_denied', `${name} may not ${mode} ${what === 'prefix' ? `every key under ${JSON.stringify(key)}` : JSON.stringify(key)}`, { [what]: key });
  }

  /** A transaction needs read on every key it compares or reads and write on every key it changes: all or nothing. */
  permitTxn(who: Principal | null, command: TxnCommand): void {
    if (who === null || who.kind === 'admin') return;
    for (const c of command.compare) this.permit(who, c.key, 'read');
    for (const op of [...command.success, ...command.failure]) this.permitTxnOp(who, op);
  }

  private permitTxnOp(who: Principal, op: TxnOp): void {
    if (op.op === 'list') this.permit(who, op.prefix, 'read', 'prefix');
    else this.permit(who, op.key, op.op === 'get' ? 'read' : 'write');
  }

  /** Leases belong to no key: any user with write permission somewhere may hold one. */
  permitLeases(who: Principal | null): void {
    if (who === null || who.kind === 'admin') return;
    const state = this.cached.state;
    if (who.kind === 'user' && (isAdmin(state, who.name) || userWritesSomewhere(state, who.name))) return;
    throw new QkvError('permission_denied', 'leases need a user with write permission on some prefix');
  }
}

function userWritesSomewhere(state: AuthState, user: string): boolean {
  return (state.users[user]?.roles ?? []).some((role) => state.roles[role]?.permissions.some((p) => p.write) === true);
}

function unauthenticated(token: string | null, hint: string): QkvError {
  return new QkvError('unauthenticated', token === null ? `No credentials: ${hint}` : `The token is not valid here: ${hint}`);
}

/** The stored document (only the auth routes write it; anything else there is a bug and fails loudly). */
export function parseAuthState(value: string | Uint8Array): AuthState {
  const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  const parsed = JSON.parse(text) as AuthState;
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.enabled !== 'boolean') throw new Error(`the auth document (${authStateKey.slice(1)}) is not valid`);
  return parsed;
}
