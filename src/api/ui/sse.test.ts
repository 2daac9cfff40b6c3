import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { request } from 'undici';
import type { KvNode } from '../../node/types.js';
import type { StatusResponse } from '../../wire/types.js';
import { FakeKvNode } from '../fake-node.js';
import { startTestLeader, testKvLimits, type TestServer } from '../testing/http-server.js';
import { kvValidator } from '../../kv/limits.js';
import type { HttpServerOptions } from '../http.js';
import { ClusterPoller, TooManySubscribers } from './poller.js';
import type { UiSnapshot } from './snapshot.js';
import type { ProcessState, SupervisorAction, SupervisorLink } from './supervisor-link.js';
import { QkvError } from '../../wire/errors.js';

const fastPolling = { pollIntervalMs: 100, statusTimeoutMs: 80 };

function start(t: TestContext, overrides: Partial<HttpServerOptions> = {}): Promise<TestServer> {
  return startTestLeader(t, 'n1', { validate: kvValidator(testKvLimits), dashboard: fastPolling, ...overrides });
}

/** Reads SSE `data:` lines from GET /ui/events until `count` snapshots arrived. */
async function snapshots(url: string, count: number, signal: AbortSignal): Promise<UiSnapshot[]> {
  const res = await request(`${url}/ui/events`, { signal });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/event-stream/);
  const got: UiSnapshot[] = [];
  let text = '';
  for await (const chunk of res.body) {
    text += (chunk as Buffer).toString();
    let end: number;
    while ((end = text.indexOf('\n\n')) !== -1) {
      const event = text.slice(0, end);
      text = text.slice(end + 2);
      if (event.startsWith('data: ')) got.push(JSON.parse(event.slice(6)) as UiSnapshot);
      if (got.length === count) return got;
    }
  }
  return got;
}

test('GET /ui/events streams one snapshot per tick, and the server still closes promptly with a page connected', async (t) => {
  const server = await start(t);
  const abort = new AbortController();
  const got = await snapshots(server.url, 3, abort.signal);
  abort.abort();
  assert.equal(got.length, 3);
  assert.equal(got[0]?.servedBy, 'n1');
  assert.equal(got[0]?.faults, false);
  assert.equal(got[0]?.nodes[0]?.role, 'leader');
  assert.ok((got[2]?.atMs ?? 0) > (got[0]?.atMs ?? 0), 'later ticks');

  // A stream left open must not hold close() (an open stream is never idle).
  const res = await request(`${server.url}/ui/events`);
  const closedAtMs = Date.now();
  await server.close();
  assert.ok(Date.now() - closedAtMs < 2_000, `closed in ${Date.now() - closedAtMs} ms`);
  await res.body.dump();
});

test('the page and the action routes: no controls without fault injection, controls with it', async (t) => {
  const plain = await start(t);
  const page = await request(`${plain.url}/ui`);
  const html = await page.body.text();
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-security-policy']), /connect-src 'self'/);
  assert.ok(!html.includes('<button'), 'no buttons');
  assert.ok(!/src="http|href="http/.test(html), 'nothing loaded from elsewhere');
  const refused = await request(`${plain.url}/ui/actions/partition`, { method: 'POST', body: '{"node":"n1"}', headers: { 'content-type': 'application/json' } });
  assert.equal(refused.statusCode, 404);
  await refused.body.dump();

  let rules: Record<string, unknown> = {};
  const faulty = await start(t, { faultsAdmin: { setRules: (r) => void (rules = { ...rules, ...r }), rules: () => rules }, die: () => undefined });
  assert.ok((await (await request(`${faulty.url}/ui`)).body.text()).includes('data-action="put"'));
  const post = async (action: string, body: unknown) => {
    const res = await request(`${faulty.url}/ui/actions/${action}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };
  assert.equal((await post('delay', { delayMsMin: 5, delayMsMax: 10, node: 'n1' })).status, 200);
  assert.deepEqual(rules, { delayMsMin: 5, delayMsMax: 10 });
  assert.equal((await post('delay', { delayMsMin: 50, delayMsMax: 10 })).status, 400, 'min above max');
  assert.equal((await post('partition', { node: 'nobody' })).status, 400, 'an unknown member');
  assert.equal((await post('partition', { node: 'n1', url: 'http://elsewhere' })).status, 400, 'no URLs from the request');
});

test('the poller asks each peer with a deadline, stops when the last page leaves, and refuses pages past its limit', async (t) => {
  // A peer that accepts connections and never answers.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => void sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const port = (silent.address() as net.AddressInfo).port;
  const fake = new FakeKvNode({ id: 'n1' });
  const base = fake.status();
  const node = {
    id: 'n1',
    status: (): StatusResponse => ({
      ...base,
      membership: {
        configIndex: 1,
        members: [
          { id: 'n1', role: 'voter', memberId: null, peer: null, http: null, grpc: null, isLeader: true, matchIndex: null, lag: null },
          { id: 'n2', role: 'voter', memberId: null, peer: null, http: `http://127.0.0.1:${port}`, grpc: null, isLeader: false, matchIndex: null, lag: null },
        ],
      },
    }),
  } as unknown as KvNode;
  const poller = new ClusterPoller(node, { faults: false, limits: { ...fastPolling, subscribersMax: 1, eventsMax: 10 } });
  const seen: UiSnapshot[] = [];
  const startedAtMs = Date.now();
  const leave = poller.subscribe((s) => seen.push(s));
  assert.throws(() => poller.subscribe(() => undefined), TooManySubscribers);
  while (seen.length < 2 && Date.now() - startedAtMs < 3_000) await new Promise((r) => setTimeout(r, 20));
  const n2 = seen[0]?.nodes.find((n) => n.id === 'n2');
  assert.equal(n2?.reachable, false);
  assert.match(String(n2?.error), /no answer within 80 ms/);
  leave();
  assert.equal(poller.subscriberCount, 0);
  const count = seen.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(seen.length, count, 'no snapshots after the last page left');
  poller.close();
});

test('pause and resume go to the supervisor, with its refusals as 409 and 501 no_supervisor without one', async (t) => {
  const faults = { faultsAdmin: { setRules: () => undefined, rules: () => ({}) }, die: () => undefined };
  const asked: string[] = [];
  const supervisor: SupervisorLink = {
    act: async (action: SupervisorAction, id: string) => {
      asked.push(`${action} ${id}`);
      if (action === 'resume') throw new QkvError('process_running', `${id} is running, not paused`);
      return { node: { id, state: 'paused' } };
    },
    processes: async () => new Map<string, ProcessState>(),
  };
  const post = async (url: string, action: string, body: unknown) => {
    const res = await request(`${url}/ui/actions/${action}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };
  const supervised = await start(t, { ...faults, supervisor });
  const html = await (await request(`${supervised.url}/ui`)).body.text();
  assert.match(html, /data-supervisor="true"/, 'the page offers Pause, Resume and Restart');
  const paused = await post(supervised.url, 'pause', { node: 'n1' });
  assert.deepEqual([paused.status, paused.body['node']], [200, { id: 'n1', state: 'paused' }]);
  const refused = await post(supervised.url, 'resume', { node: 'n1' });
  assert.deepEqual([refused.status, refused.body['error']], [409, 'process_running'], 'the supervisor’s refusal, as it said it');
  assert.equal((await post(supervised.url, 'pause', { node: 'nobody' })).status, 400, 'only members, looked up here');
  assert.deepEqual(asked, ['pause n1', 'resume n1']);

  const alone = await start(t, faults);
  assert.match(await (await request(`${alone.url}/ui`)).body.text(), /data-supervisor="false"/);
  for (const action of ['pause', 'resume']) {
    const r = await post(alone.url, action, { node: 'n1' });
    assert.deepEqual([r.status, r.body['error']], [501, 'no_supervisor'], `${action} without a supervisor`);
    assert.match(String(r.body['message']), new RegExp(`to ${action} n1`));
  }
});

test('the poller shows a silent member its supervisor paused as paused, asking with the peers’ deadline', async () => {
  const fake = new FakeKvNode({ id: 'n1' });
  const base = fake.status();
  const member = (id: string, isLeader: boolean) => ({ id, role: 'voter' as const, memberId: null, peer: null, http: null, grpc: null, isLeader, matchIndex: null, lag: null });
  const node = { id: 'n1', status: (): StatusResponse => ({ ...base, membership: { configIndex: 1, members: [member('n1', true), member('n2', false), member('n3', false)] } }) } as unknown as KvNode;
  const deadlines: number[] = [];
  const supervisor: SupervisorLink = {
    act: async () => ({}),
    processes: async (timeoutMs) => {
      deadlines.push(timeoutMs);
      return new Map<string, ProcessState>([['n1', 'running'], ['n2', 'paused'], ['n3', 'exited']]);
    },
  };
  const poller = new ClusterPoller(node, { faults: true, limits: { ...fastPolling, subscribersMax: 1, eventsMax: 10 }, supervisor });
  const seen: UiSnapshot[] = [];
  const leave = poller.subscribe((s) => seen.push(s));
  const startedAtMs = Date.now();
  while (seen.length < 1 && Date.now() - startedAtMs < 3_000) await new Promise((r) => setTimeout(r, 20));
  leave();
  poller.close();
  assert.deepEqual(seen[0]?.nodes.map((n) => [n.id, n.role, n.process]), [['n1', 'leader', 'running'], ['n2', 'paused', 'paused'], ['n3', 'down', 'exited']]);
  assert.equal(deadlines[0], fastPolling.statusTimeoutMs);
});
