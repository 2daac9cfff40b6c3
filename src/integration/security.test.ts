/**
 * Who may do what, on real processes: the admin token `quorumkv up` writes (admin routes 401
 * without it; the CLI finds it beside the cluster file), users and roles with key-prefix
 * permissions once auth is on (401 / 403 over HTTP and gRPC, forwarded writes included), and
 * admin routes switched off (404).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AuthError, connect } from '../client/index.js';
import type { KvClient } from '../client/index.js';
import { TestCluster, http, runCli, startUp, stopUp, waitFor } from './harness.js';

interface UpNode {
  readonly id: string;
  readonly http: string;
  readonly grpc: string;
}

/** Starts `quorumkv up` in a fresh directory and waits until it printed the cluster. */
async function upCluster(t: { after(fn: () => Promise<void>): void }): Promise<{ dir: string; nodes: UpNode[]; proc: ChildProcess }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-sec-'));
  const up = startUp(dir);
  t.after(async () => {
    await stopUp(up.proc);
    await rm(dir, { recursive: true, force: true });
  });
  await waitFor('up to print the cluster', 30_000, () => (/is up/.test(up.output()) ? true : null));
  const file = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: UpNode[] };
  return { dir, nodes: file.nodes, proc: up.proc };
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** The token line a `quorumkv user add|token` prints last. */
function printedToken(stdout: string): string {
  const token = stdout.trim().split('\n').at(-1) ?? '';
  assert.match(token, /^qkv_[A-Za-z0-9_-]{32}$/, `a token in:\n${stdout}`);
  return token;
}

test("npm start's cluster: admin routes need the admin token from ./data, which the CLI picks up by itself", { timeout: 120_000 }, async (t) => {
  const { dir, nodes } = await upCluster(t);
  const tokenFile = path.join(dir, 'admin-token');
  assert.equal((await stat(tokenFile)).mode & 0o777, 0o600, 'the admin token is readable by its owner only');
  const token = (await readFile(tokenFile, 'utf8')).trim();
  const [first, second] = nodes as [UpNode, UpNode];

  const anonymous = await http(`${second.http}/admin/mode`, 'PUT', { writeQuorum: 'all' });
  assert.equal(anonymous.status, 401, JSON.stringify(anonymous.body));
  assert.equal(anonymous.body['error'], 'unauthenticated');
  const wrong = await http(`${second.http}/admin/mode`, 'PUT', { writeQuorum: 'all' }, bearer('qkv_not-the-token-at-all-000000000'));
  assert.equal(wrong.status, 401);
  for (const [route, method] of [['/backup', 'GET'], ['/debug/store', 'GET'], ['/rollbacks', 'GET'], ['/auth', 'GET'], ['/members', 'POST'], ['/admin/compact', 'POST']] as const) {
    const answer = await http(`${first.http}${route}`, method, method === 'POST' ? {} : undefined);
    assert.equal(answer.status, 401, `${method} ${route} without the token: ${JSON.stringify(answer.body)}`);
  }
  // Data, health, status and metrics stay open while auth is off.
  assert.equal((await http(`${first.http}/kv/open`, 'PUT', { value: 'yes' })).status, 200);
  for (const route of ['/health', '/status', '/metrics', '/members']) assert.equal((await http(`${first.http}${route}`)).status, 200, route);

  const clusterFile = ['--cluster-file', path.join(dir, 'cluster.json')];
  const mode = await runCli(['mode', '--write-quorum', 'all', ...clusterFile], 20_000);
  assert.equal(mode.code, 0, `quorumkv mode reads the token beside the cluster file:\n${mode.stderr}`);
  assert.equal((await http(`${first.http}/status`)).body['mode'] !== undefined, true);
  const withToken = await http(`${second.http}/admin/mode`, 'PUT', { writeQuorum: 'majority' }, bearer(token));
  assert.equal(withToken.status, 200, JSON.stringify(withToken.body));
  // Never the cluster file's token to endpoints given by hand: those may be another cluster.
  const foreign = await runCli(['mode', '--write-quorum', 'all', '--endpoints', first.http, ...clusterFile], 20_000);
  assert.equal(foreign.code, 1, foreign.stdout);
  assert.match(foreign.stderr, /unauthenticated/);
  // quorumkv check reads the stores (an admin route): from hand-given endpoints it needs the
  // token, on the command line or, as every other command, in QKV_TOKEN.
  const endpoints = ['--endpoints', nodes.map((n) => n.http).join(','), '--wait', '5s'];
  const checkWithout = await runCli(['check', ...endpoints], 30_000);
  assert.notEqual(checkWithout.code, 0, `check without the token:\n${checkWithout.stdout}${checkWithout.stderr}`);
  assert.match(checkWithout.stderr, /unauthenticated/);
  const checkWithEnv = await runCli(['check', ...endpoints], 30_000, undefined, { QKV_TOKEN: token });
  assert.equal(checkWithEnv.code, 0, `check with QKV_TOKEN:\n${checkWithEnv.stdout}${checkWithEnv.stderr}`);

  // The token is in no answer and no log line.
  for (const route of ['/status', '/members', '/metrics']) assert.ok(!JSON.stringify((await http(`${first.http}${route}`)).body).includes(token), route);
  for (const name of (await readdir(dir)).filter((f) => f.endsWith('.log'))) {
    assert.ok(!(await readFile(path.join(dir, name), 'utf8')).includes(token), `${name} holds no token`);
  }
});

test('users and roles: 401 without a valid token, 403 beyond a role, over HTTP and gRPC, through followers too', { timeout: 180_000 }, async (t) => {
  const { dir, nodes } = await upCluster(t);
  const cli = async (...args: string[]): Promise<string> => {
    const r = await runCli([...args, '--cluster-file', path.join(dir, 'cluster.json')], 20_000);
    assert.equal(r.code, 0, `quorumkv ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const refusedEnable = await runCli(['auth', 'enable', '--cluster-file', path.join(dir, 'cluster.json')], 20_000);
  assert.equal(refusedEnable.code, 1, 'auth cannot go on before a user holds the admin role');
  const root = printedToken(await cli('user', 'add', 'root', '--role', 'admin'));
  await cli('role', 'add', 'reader');
  await cli('role', 'grant', 'reader', 'app/', '--read');
  await cli('role', 'add', 'app-rw');
  await cli('role', 'grant', 'app-rw', 'app/');
  const reader = printedToken(await cli('user', 'add', 'ro', '--role', 'reader'));
  const app = printedToken(await cli('user', 'add', 'app', '--role', 'app-rw'));
  await cli('auth', 'enable');
  const shown = await cli('auth', 'show');
  assert.match(shown, /auth on/);
  assert.ok(![root, reader, app].some((tok) => shown.includes(tok)), 'auth show prints no token');

  const leader = await waitFor('a leader', 15_000, async () => {
    const s = await http(`${nodes[0]?.http}/status`);
    return (s.body['leader'] as { id?: string } | null)?.id ?? null;
  });
  const follower = nodes.find((n) => n.id !== leader) as UpNode;
  // HTTP by hand, at a follower: the leader checks again what the follower forwards.
  const put = (token: string | null, key: string): ReturnType<typeof http> => http(`${follower.http}/kv/${encodeURIComponent(key)}`, 'PUT', { value: 'v' }, token === null ? {} : bearer(token));
  assert.equal((await put(null, 'app/a')).status, 401, 'no token');
  assert.equal((await put('qkv_forged_token_0000000000000000000000', 'app/a')).status, 401, 'a token nobody holds');
  assert.equal((await put(app, 'app/a')).status, 200, 'app/ writer writes app/a (forwarded to the leader)');
  const ro = await put(reader, 'app/a');
  assert.equal(ro.status, 403, JSON.stringify(ro.body));
  assert.equal(ro.body['error'], 'permission_denied');
  assert.equal((await http(`${follower.http}/admin/mode`, 'PUT', { writeQuorum: 'all' }, bearer(reader))).status, 403, 'a reader cannot switch the mode');
  assert.equal((await http(`${follower.http}/admin/mode`, 'PUT', { writeQuorum: 'majority' }, bearer(root))).status, 200, 'an admin user can');
  assert.equal((await http(`${follower.http}/kv/app/a`, 'GET', undefined, bearer(reader))).status, 200, 'the reader reads app/a');
  assert.equal((await put(root, 'other/x')).status, 200);
  assert.equal((await http(`${follower.http}/kv/other%2Fx`, 'GET', undefined, bearer(app))).status, 403, 'app/ cannot read other/x');
  assert.equal((await http(`${follower.http}/kv?prefix=`, 'GET', undefined, bearer(app))).status, 403, 'nor list every key');
  const batch = await http(`${follower.http}/batch`, 'POST', { ops: [{ op: 'put', key: 'app/b', value: '1' }, { op: 'put', key: 'other/y', value: '1' }] }, bearer(app));
  assert.deepEqual((batch.body['results'] as { status: number }[]).map((r) => r.status), [200, 403], 'a batch refuses the operation beyond the role, alone');
  const txn = await http(`${follower.http}/txn`, 'POST', { compare: [], success: [{ op: 'put', key: 'app/c', value: '1' }, { op: 'get', key: 'other/x' }] }, bearer(app));
  assert.equal(txn.status, 403, 'a transaction touching a key beyond the role is refused whole');
  assert.equal((await http(`${follower.http}/kv/app%2Fc`, 'GET', undefined, bearer(app))).status, 404, 'and wrote nothing');
  assert.equal((await http(`${follower.http}/watch?prefix=other/`, 'GET', undefined, bearer(app))).status, 403, 'nor watch beyond the role');

  // The TS client, both transports.
  const clients: KvClient[] = [];
  t.after(async () => {
    for (const c of clients) await c.close();
  });
  for (const transport of ['http', 'grpc'] as const) {
    const endpoints = nodes.map((n) => (transport === 'http' ? n.http : n.grpc));
    const appKv = await connect({ endpoints, transport, token: app, deadlineMs: 10_000 });
    const anonKv = await connect({ endpoints, transport, deadlineMs: 10_000 });
    clients.push(appKv, anonKv);
    assert.ok((await appKv.put(`app/${transport}`, 'ok')).version > 0, `${transport}: the app user writes under app/`);
    assert.equal((await appKv.get(`app/${transport}`))?.value, 'ok');
    await assert.rejects(appKv.get('other/x'), (e: unknown) => e instanceof AuthError && e.code === 'permission_denied', `${transport}: other/x is refused`);
    await assert.rejects(anonKv.get('app/a'), (e: unknown) => e instanceof AuthError && e.code === 'unauthenticated', `${transport}: no token is refused`);
  }

  // A rotated token: the old one stops working at once, everywhere.
  const rotated = printedToken(await cli('user', 'token', 'app'));
  await waitFor('every node to refuse the old token', 10_000, async () => {
    const answers = await Promise.all(nodes.map((n) => http(`${n.http}/kv/app%2Fa`, 'GET', undefined, bearer(app))));
    return answers.every((a) => a.status === 401) ? true : null;
  });
  assert.equal((await http(`${follower.http}/kv/app%2Fa`, 'GET', undefined, bearer(rotated))).status, 200);

  await cli('auth', 'disable');
  await waitFor('data routes to be open again on every node', 10_000, async () => {
    const answers = await Promise.all(nodes.map((n) => http(`${n.http}/kv/app%2Fa`)));
    return answers.every((a) => a.status === 200) ? true : null;
  });
});

test('--admin-routes off: every operational route is 404, data and status still answer', { timeout: 90_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 1, flags: ['--admin-routes', 'off'] });
  try {
    const node = cluster.nodes[0] as { http: string; grpc: string };
    await cluster.waitForLeader();
    for (const [route, method] of [['/admin/mode', 'PUT'], ['/admin/compact', 'POST'], ['/backup', 'GET'], ['/debug/store', 'GET'], ['/rollbacks', 'GET'], ['/auth', 'GET'], ['/members/n1', 'DELETE'], ['/admin/transfer-leader', 'POST']] as const) {
      const answer = await http(`${node.http}${route}`, method, method === 'PUT' || method === 'POST' ? {} : undefined);
      assert.equal(answer.status, 404, `${method} ${route}: ${JSON.stringify(answer.body)}`);
    }
    // GET /members (open) shares its path: adding a member is a method it no longer allows.
    const add = await http(`${node.http}/members`, 'POST', { id: 'n9', peer: '127.0.0.1:1' });
    assert.equal(add.status, 405, JSON.stringify(add.body));
    assert.equal(add.headers['allow'], 'GET');
    assert.equal((await http(`${node.http}/kv/k`, 'PUT', { value: 'v' })).status, 200);
    assert.equal((await http(`${node.http}/members`)).status, 200);
    const kv = await connect({ endpoints: [node.grpc], transport: 'grpc', deadlineMs: 5_000 });
    try {
      await assert.rejects(kv.members.remove('n1'), (e: unknown) => e instanceof Error && /unknown_route|off/.test(String((e as { code?: string }).code) + e.message), 'gRPC membership calls are off too');
    } finally {
      await kv.close();
    }
  } finally {
    await cluster.destroy();
  }
});

test('--auth-bootstrap-file: the first leader writes the users and roles once; auth is on from the start, and later changes survive restarts', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-bootstrap-'));
  const file = path.join(dir, 'auth.json');
  const rootToken = 'qkv_bootstrap_root_token_000000000000';
  const appToken = 'qkv_bootstrap_app_token_0000000000000';
  await writeFile(file, JSON.stringify({ enabled: true, roles: { 'app-rw': [{ prefix: 'app/', read: true, write: true }] }, users: { root: { roles: ['admin'], token: rootToken }, app: { roles: ['app-rw'], token: appToken } } }), { mode: 0o600 });
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--auth-bootstrap-file', file] });
  try {
    const node = cluster.nodes[0] as { http: string };
    await waitFor('auth to be on on every node', 20_000, async () => {
      const answers = await Promise.all(cluster.nodes.map((n) => http(`${n.http}/kv/app%2Fx`)));
      return answers.every((a) => a.status === 401) ? true : null;
    });
    assert.equal((await http(`${node.http}/kv/app%2Fx`, 'PUT', { value: 'v' }, bearer(appToken))).status, 200);
    assert.equal((await http(`${node.http}/kv/other`, 'PUT', { value: 'v' }, bearer(appToken))).status, 403);
    const added = await http(`${node.http}/auth`, 'POST', { op: 'user-add', name: 'later', roles: ['app-rw'] }, bearer(rootToken));
    assert.equal(added.status, 200, JSON.stringify(added.body));
    for (const n of cluster.nodes) {
      await cluster.stop(n.id);
      await cluster.restart(n.id);
    }
    await cluster.waitForLeader();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const users = await waitFor('the auth document after the restarts', 20_000, async () => {
      const view = await http(`${node.http}/auth`, 'GET', undefined, bearer(rootToken));
      return view.status === 200 ? (view.body['users'] as { name: string }[]).map((u) => u.name) : null;
    });
    assert.deepEqual(users, ['app', 'later', 'root'], 'the bootstrap file did not reset the users');
  } finally {
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('--auth-bootstrap-file with a mistake stops the node at start, naming it', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-bootstrap-bad-'));
  try {
    const file = path.join(dir, 'auth.json');
    await writeFile(file, JSON.stringify({ users: { app: { roles: ['missing-role'], token: 'qkv_0123456789abcdef0123' } } }));
    const r = await runCli(['node', '--id', 'n1', '--peers', 'n1=127.0.0.1:1', '--data-dir', path.join(dir, 'd'), '--listen-http', '127.0.0.1:0', '--listen-peer', '127.0.0.1:0', '--auth-bootstrap-file', file], 20_000);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /auth-bootstrap-file .*no role "missing-role"/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
