/**
 * Forwarding over the peer transport (node/forwarding.ts with the API's batch rules): a
 * follower's operations of one turn reach the leader as one message and each gets its own
 * answer; a lost answer is outcome_unknown at the deadline; a leader change fails a pending
 * forward at once; a node that no longer leads answers not_leader and the follower tries
 * the leader it names; the leader checks the credentials again. Real HTTP servers in front
 * of fake nodes, joined by an in-memory network that encodes like TCP.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { authStateKey } from '../kv/types.js';
import { kvValidator } from '../kv/limits.js';
import { defaultForwardingLimits, forwardingMeta, PeerForwarding } from '../node/forwarding.js';
import type { ForwardingLimits } from '../node/forwarding.js';
import { decodePeerMessage } from '../node/messages.js';
import type { PeerMessage } from '../node/messages.js';
import { createMemoryNetwork } from '../transport/memory.js';
import type { MemoryNetwork } from '../transport/memory.js';
import type { PeerTransport } from '../transport/types.js';
import { emptyAuthState } from '../wire/auth.js';
import type { AuthState } from '../wire/auth.js';
import { QkvError } from '../wire/errors.js';
import { sha256 } from './access.js';
import { applyAuthChange } from './auth-changes.js';
import { FakeKvNode } from './fake-node.js';
import { startTestServer, testKvLimits } from './testing/http-server.js';
import type { TestServer, TestServerOptions } from './testing/http-server.js';

const validate = kvValidator(testKvLimits);

interface Peer {
  readonly forwarding: PeerForwarding;
  readonly transport: PeerTransport<PeerMessage>;
  /** Every message this peer sent, in order. */
  readonly sent: PeerMessage[];
  /** Set to drop this peer's outgoing messages of a type (the network loses them). */
  dropType: PeerMessage['type'] | null;
}

/** A node's end of the network, wired as the driver wires it: forward messages go to its PeerForwarding. */
function joinPeer(t: TestContext, network: MemoryNetwork<PeerMessage>, id: string, limits: Partial<ForwardingLimits> = {}, meta = forwardingMeta): Peer {
  const inner = network.join(id, meta);
  const peer: Peer = {
    sent: [],
    dropType: null,
    transport: {
      ...inner,
      send: (to, m) => {
        peer.sent.push(m);
        return m.type === peer.dropType ? true : inner.send(to, m);
      },
    },
    forwarding: new PeerForwarding(id, { ...defaultForwardingLimits, ...limits }),
  };
  peer.forwarding.attach(peer.transport);
  inner.onMessage((from, raw) => {
    const m = decodePeerMessage(raw, from);
    if (typeof m !== 'string' && (m.type === 'forwardBatch' || m.type === 'forwardReply')) peer.forwarding.receive(from, m);
  });
  t.after(async () => {
    peer.forwarding.stop();
    await inner.close();
  });
  return peer;
}

interface Member {
  readonly node: FakeKvNode;
  readonly server: TestServer;
  readonly peer: Peer;
}

interface MemberOptions {
  readonly limits?: Partial<ForwardingLimits>;
  readonly server?: Partial<TestServerOptions>;
  /** What the node's handshake advertises (default: that it serves forwards). */
  readonly meta?: Readonly<Record<string, string>>;
}

async function member(t: TestContext, network: MemoryNetwork<PeerMessage>, id: string, options: MemberOptions = {}): Promise<Member> {
  const node = new FakeKvNode({ id, leader: null });
  const peer = joinPeer(t, network, id, options.limits, options.meta);
  node.forwarding = peer.forwarding;
  const server = await startTestServer(t, node, { validate, ...options.server });
  return { node, server, peer };
}

function lead(leader: Member, ...others: Member[]): void {
  const info = { id: leader.node.id, http: leader.server.url, grpc: null };
  for (const m of [leader, ...others]) m.node.setLeader(info);
}

async function call(url: string, method: 'PUT' | 'POST' | 'GET', body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; servedBy: unknown }> {
  const res = await request(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown>, servedBy: res.headers['x-qkv-served-by'] };
}

const batchesFrom = (peer: Peer): PeerMessage[] => peer.sent.filter((m) => m.type === 'forwardBatch');

test("a follower's operations of one turn reach the leader as one peer message, each with its own answer", async (t) => {
  const network = createMemoryNetwork<PeerMessage>({ encode: true });
  const leader = await member(t, network, 'n1');
  const follower = await member(t, network, 'n2');
  lead(leader, follower);
  leader.node.store.set('seen', { value: 'old', version: 1 });
  const ops = [
    { op: 'put', key: 'a', value: 'va', clientId: 'c1', seq: 1 },
    { op: 'put', key: 'b', value: 'vb', ifVersion: 99 },
    { op: 'delete', key: 'seen', clientId: 'c1', seq: 2 },
    { op: 'get', key: 'a', consistency: 'leader' },
    { op: 'put', key: 'c', value: 'AAEC', encoding: 'base64' },
  ];
  const answer = await call(`${follower.server.url}/batch`, 'POST', { ops });
  assert.equal(answer.status, 200);
  const results = answer.body['results'] as Record<string, unknown>[];
  assert.deepEqual(results.map((r) => r['status']), [200, 409, 200, 200, 200]);
  assert.equal(results[3]?.['value'], 'va', 'the read ran on the leader after the write of the same batch');
  assert.equal(batchesFrom(follower.peer).length, 1, 'one forward message for the turn');
  assert.equal(follower.node.commands.length, 0, 'nothing ran on the follower');
  assert.deepEqual([...leader.node.store.keys()].sort(), ['a', 'c']);
  assert.deepEqual(leader.node.store.get('c')?.value, new Uint8Array([0, 1, 2]));

  // A single PUT goes the same way, names the leader as the node that served it, and a
  // retry with the same clientId/seq is answered from the dedup table, not applied again.
  const put = await call(`${follower.server.url}/kv/d`, 'PUT', { value: 'vd' }, { 'x-qkv-client-id': 'c2', 'x-qkv-seq': '1' });
  assert.equal(put.status, 200);
  assert.equal(put.servedBy, 'n1');
  const again = await call(`${follower.server.url}/kv/d`, 'PUT', { value: 'vd' }, { 'x-qkv-client-id': 'c2', 'x-qkv-seq': '1' });
  assert.deepEqual(again.body, put.body);
  assert.equal(leader.node.commands.filter((c) => c.key === 'd').length, 2, 'both reached the leader');
  assert.equal(leader.node.store.get('d')?.version, put.body['version'], 'applied once');
  assert.equal(batchesFrom(follower.peer).length, 3);
});

test('a lost answer makes the write outcome_unknown at its deadline; a leader change fails a pending forward at once', async (t) => {
  const network = createMemoryNetwork<PeerMessage>({ encode: true });
  const leader = await member(t, network, 'n1');
  const follower = await member(t, network, 'n2', { limits: { answerMarginMs: 100 } });
  lead(leader, follower);
  leader.peer.dropType = 'forwardReply';
  const started = performance.now();
  const lost = await call(`${follower.server.url}/kv/a`, 'PUT', { value: 'v' }, { 'x-qkv-timeout-ms': '300' });
  const tookMs = performance.now() - started;
  assert.equal(lost.status, 503);
  assert.equal(lost.body['error'], 'outcome_unknown');
  assert.ok(tookMs >= 390 && tookMs < 1_500, `answered after the deadline and margin (${Math.round(tookMs)} ms)`);
  assert.equal(leader.node.store.get('a')?.value, 'v', 'the leader did apply it: that is why the outcome is unknown');

  // The channel itself: a pending forward fails as soon as the driver reports another leader.
  const pending = follower.peer.forwarding.send('n1', { ops: [{ op: 'put', key: 'b', value: 'v' }], token: null, timeoutMs: 10_000 });
  const failedAt = performance.now();
  follower.peer.forwarding.tick('n3');
  await assert.rejects(pending, (e: unknown) => e instanceof QkvError && e.code === 'outcome_unknown' && /leadership moved/.test(e.message));
  assert.ok(performance.now() - failedAt < 100);
});

test('a full pending table refuses without sending; a link that dropped fails pending forwards', async (t) => {
  const network = createMemoryNetwork<PeerMessage>({ encode: true });
  const leader = joinPeer(t, network, 'n1');
  const follower = joinPeer(t, network, 'n2', { pendingBatchesMax: 1 });
  leader.dropType = 'forwardReply';
  leader.forwarding.serve(async (_from, batch) => batch.ops.map(() => ({ status: 200 })));
  const batch = { ops: [{ op: 'put' as const, key: 'a', value: 'v' }], token: null, timeoutMs: 10_000 };
  const first = follower.forwarding.send('n1', batch);
  await assert.rejects(follower.forwarding.send('n1', batch), (e: unknown) => e instanceof QkvError && e.code === 'busy');
  assert.equal(batchesFrom(follower).length, 1, 'the refused batch was not sent');
  await leader.transport.close();
  follower.forwarding.tick('n1');
  await assert.rejects(first, (e: unknown) => e instanceof QkvError && e.code === 'outcome_unknown' && /link/.test(e.message));
  assert.equal(follower.forwarding.reaches('n1'), false);
});

test('a node that no longer leads answers not_leader, and the follower retries at the leader it names', async (t) => {
  const network = createMemoryNetwork<PeerMessage>({ encode: true });
  const stale = await member(t, network, 'n1');
  const follower = await member(t, network, 'n2');
  const actual = await member(t, network, 'n3');
  lead(stale, follower);
  lead(actual, stale);
  const answer = await call(`${follower.server.url}/kv/k`, 'PUT', { value: 'v' });
  assert.equal(answer.status, 200);
  assert.equal(answer.servedBy, 'n3');
  assert.equal(actual.node.store.get('k')?.value, 'v');
  assert.equal(stale.node.store.has('k'), false);
  assert.deepEqual(follower.peer.sent.filter((m) => m.type === 'forwardBatch').map((m) => m.to), ['n1', 'n3']);
  assert.equal(batchesFrom(stale.peer).length, 0, 'the stale leader never forwards a forwarded batch');
});

test('the leader checks the credentials of a forwarded batch again: 401 without a valid token, 403 without the permission', async (t) => {
  const adminToken = 'qkv_admin_token_for_tests_0000000000';
  const appToken = 'qkv_app_token_for_tests_00000000000000';
  const tokens = [adminToken, appToken];
  let state: AuthState = emptyAuthState;
  const apply = (change: Parameters<typeof applyAuthChange>[1]): void => {
    state = applyAuthChange(state, change, () => tokens.shift() as string).state;
  };
  apply({ op: 'role-add', name: 'app-rw' });
  apply({ op: 'role-grant', name: 'app-rw', permission: { prefix: 'app/', read: true, write: true } });
  apply({ op: 'user-add', name: 'root', roles: ['admin'] });
  apply({ op: 'user-add', name: 'app', roles: ['app-rw'] });
  apply({ op: 'enable' });

  const network = createMemoryNetwork<PeerMessage>({ encode: true });
  const leader = await member(t, network, 'n1', { server: { access: { admin: 'token', adminTokenSha256: sha256(adminToken) } } });
  leader.node.store.set(authStateKey, { value: JSON.stringify(state), version: 1 });
  // The follower's copy of the auth state is not there yet: only the leader's check stands.
  const follower = await member(t, network, 'n2');
  lead(leader, follower);
  const put = (key: string, token: string | null): Promise<{ status: number; body: Record<string, unknown> }> =>
    call(`${follower.server.url}/kv/${key}`, 'PUT', { value: 'v' }, token === null ? {} : { authorization: `Bearer ${token}` });
  assert.equal((await put('app/a', null)).status, 401);
  assert.equal((await put('app/a', 'qkv_app_token_for_tests_00000000000001')).status, 401);
  assert.equal((await put('other/a', appToken)).status, 403);
  assert.equal((await put('app/a', appToken)).status, 200);
  assert.deepEqual([...leader.node.store.keys()].filter((k) => k !== authStateKey), ['app/a']);
  assert.ok(batchesFrom(follower.peer).length >= 4, 'every attempt went over the peer link');
});

test('a leader that does not advertise forwarding (an older node) gets the HTTP /batch instead', async (t) => {
  const network = createMemoryNetwork<PeerMessage>({ encode: true });
  const leader = await member(t, network, 'n1', { meta: {} });
  const follower = await member(t, network, 'n2');
  lead(leader, follower);
  const answer = await call(`${follower.server.url}/batch`, 'POST', { ops: [{ op: 'put', key: 'a', value: 'v' }, { op: 'put', key: 'b', value: 'v' }] });
  assert.deepEqual((answer.body['results'] as Record<string, unknown>[]).map((r) => r['status']), [200, 200]);
  assert.equal(batchesFrom(follower.peer).length, 0);
  const metrics = await leader.server.registry.metrics();
  assert.match(metrics, /qkv_http_requests_total\{route="\/batch",method="POST",status="200"\} 1/, 'one forwarded POST /batch reached the leader');
  assert.deepEqual([...leader.node.store.keys()].sort(), ['a', 'b']);
});
