/**
 * The access rules of api/access.ts and auth-changes.ts, on the HTTP API of a fake node: the
 * admin gate, users' permissions per route, the changes that must be refused, and the
 * per-address connection limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { request } from 'undici';
import { authStateKey } from '../kv/types.js';
import { kvValidator } from '../kv/limits.js';
import { emptyAuthState } from '../wire/auth.js';
import type { AuthState } from '../wire/auth.js';
import { AccessControl, bearerToken, sha256 } from './access.js';
import { applyAuthChange } from './auth-changes.js';
import { startTestLeader, testKvLimits } from './testing/http-server.js';

const validate = kvValidator(testKvLimits);
const adminToken = 'qkv_admin_token_for_tests_0000000000';
const appToken = 'qkv_app_token_for_tests_00000000000000';
const readerToken = 'qkv_reader_token_for_tests_00000000000';

/** A state with an admin user, an app/ writer and an app/ reader, built by the same changes the route applies. */
function usersAndRoles(enabled: boolean): AuthState {
  const tokens = [adminToken, appToken, readerToken];
  const next = (): string => tokens.shift() as string;
  let state = emptyAuthState;
  const apply = (change: Parameters<typeof applyAuthChange>[1]): void => {
    state = applyAuthChange(state, change, next).state;
  };
  apply({ op: 'role-add', name: 'app-rw' });
  apply({ op: 'role-grant', name: 'app-rw', permission: { prefix: 'app/', read: true, write: true } });
  apply({ op: 'role-add', name: 'reader' });
  apply({ op: 'role-grant', name: 'reader', permission: { prefix: 'app/', read: true, write: false } });
  apply({ op: 'user-add', name: 'root', roles: ['admin'] });
  apply({ op: 'user-add', name: 'app', roles: ['app-rw'] });
  apply({ op: 'user-add', name: 'ro', roles: ['reader'] });
  if (enabled) apply({ op: 'enable' });
  return state;
}

async function ask(url: string, method: 'GET' | 'PUT' | 'POST', token: string | null, body?: unknown): Promise<number> {
  const res = await request(url, {
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  await res.body.text();
  return res.statusCode;
}

test('bearerToken reads "Bearer <token>" in any case and nothing else', () => {
  assert.equal(bearerToken('Bearer abc'), 'abc');
  assert.equal(bearerToken('bearer   abc'), 'abc');
  assert.equal(bearerToken('Basic abc'), null);
  assert.equal(bearerToken('Bearer'), null);
  assert.equal(bearerToken(undefined), null);
});

test('admin routes: 401 without or with a wrong token, 403 for a non-admin user, 200 for the admin token and admin users', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate, access: { admin: 'token', adminTokenSha256: sha256(adminToken) } });
  server.node.store.set(authStateKey, { value: JSON.stringify(usersAndRoles(false)), version: 1 });
  const mode = `${server.url}/admin/mode`;
  assert.equal(await ask(mode, 'PUT', null, { topology: 'star' }), 401);
  assert.equal(await ask(mode, 'PUT', 'qkv_wrong', { topology: 'star' }), 401);
  assert.equal(await ask(mode, 'PUT', readerToken, { topology: 'star' }), 403);
  assert.equal(await ask(mode, 'PUT', adminToken, { topology: 'star' }), 200);
  assert.equal(await ask(`${server.url}/auth`, 'GET', appToken), 403, 'users and roles are admin business');
  assert.equal(await ask(`${server.url}/auth`, 'GET', adminToken), 200);
  // With auth off, data routes ignore tokens entirely, a wrong one included.
  assert.equal(await ask(`${server.url}/kv/any`, 'PUT', 'qkv_wrong', { value: 'v' }), 200);
});

test('auth on: data routes need a user whose roles allow the key; the admin token may do anything', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate, access: { admin: 'token', adminTokenSha256: sha256(adminToken) } });
  server.node.store.set(authStateKey, { value: JSON.stringify(usersAndRoles(true)), version: 1 });
  const kv = (key: string): string => `${server.url}/kv/${encodeURIComponent(key)}`;
  assert.equal(await ask(kv('app/a'), 'PUT', null, { value: 'v' }), 401);
  assert.equal(await ask(kv('app/a'), 'PUT', appToken, { value: 'v' }), 200);
  assert.equal(await ask(kv('other/a'), 'PUT', appToken, { value: 'v' }), 403);
  assert.equal(await ask(kv('app/a'), 'PUT', readerToken, { value: 'v' }), 403);
  assert.equal(await ask(kv('app/a'), 'GET', readerToken), 200);
  assert.equal(await ask(`${server.url}/kv?prefix=app/`, 'GET', readerToken), 200);
  assert.equal(await ask(`${server.url}/kv?prefix=ap`, 'GET', readerToken), 403, 'a listing wider than the permission');
  assert.equal(await ask(kv('other/a'), 'PUT', adminToken, { value: 'v' }), 200, 'the admin token');
  assert.equal(await ask(kv('other/b'), 'PUT', 'qkv_admin_token_for_tests_0000000001', { value: 'v' }), 401, 'a token one character off');
  const before = server.node.store.get('app/t');
  assert.equal(await ask(`${server.url}/txn`, 'POST', appToken, { success: [{ op: 'put', key: 'app/t', value: '1' }, { op: 'delete', key: 'other/a' }] }), 403);
  assert.equal(server.node.store.get('app/t'), before, 'a refused transaction wrote nothing');
  assert.equal(await ask(`${server.url}/leases`, 'POST', readerToken, { ttlMs: 5_000 }), 403, 'a reader holds no lease');
});

test('auth changes refuse what would lock admins out or name what does not exist', () => {
  const token = (): string => 'qkv_x';
  assert.throws(() => applyAuthChange(emptyAuthState, { op: 'enable' }, token), /admin role first/);
  const on = usersAndRoles(true);
  assert.throws(() => applyAuthChange(on, { op: 'user-delete', name: 'root' }, token), /no user holding the admin role/);
  assert.throws(() => applyAuthChange(on, { op: 'user-revoke', name: 'root', role: 'admin' }, token), /no user holding the admin role/);
  assert.throws(() => applyAuthChange(on, { op: 'user-grant', name: 'app', role: 'nope' }, token), /no role "nope"/);
  assert.throws(() => applyAuthChange(on, { op: 'role-grant', name: 'admin', permission: { prefix: '', read: true, write: true } }, token), /built in/);
  assert.throws(() => applyAuthChange(on, { op: 'user-add', name: 'app' }, token), /exists/);
  assert.throws(() => applyAuthChange(on, { op: 'user-add', name: 'bad name' }, token), /user name/);
  const deleted = applyAuthChange(on, { op: 'role-delete', name: 'reader' }, token).state;
  assert.deepEqual(deleted.users['ro']?.roles, [], 'deleting a role takes it from its users');
  const rotated = applyAuthChange(on, { op: 'user-token', name: 'app' }, () => 'qkv_new').state;
  const access = new AccessControl({ authRecord: () => ({ value: JSON.stringify(rotated), version: 2 }) }, { admin: 'token' });
  assert.deepEqual(access.principal(appToken), { kind: 'anyone' }, 'the old token is nobody now');
  assert.deepEqual(access.principal('qkv_new'), { kind: 'user', name: 'app' });
});

test('a client address beyond --connections-per-ip-max is answered 429 and closed; the others keep working', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate, connectionsPerIpMax: 2 });
  const { port } = new URL(server.url);
  const sockets = await Promise.all([1, 2].map(() => new Promise<net.Socket>((resolve) => {
    const s = net.connect(Number(port), '127.0.0.1', () => resolve(s));
  })));
  const third = await new Promise<string>((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1');
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('close', () => resolve(text));
    s.on('error', reject);
  });
  assert.match(third, /^HTTP\/1\.1 429 /);
  assert.match(third, /"error":"too_many_requests"/);
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(await ask(`${server.url}/health`, 'GET', null), 200, 'once the others closed, a new connection is served');
});
