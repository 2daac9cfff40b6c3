/**
 * The membership routes over real HTTP (127.0.0.1, port 0) against FakeKvNode: the answers
 * and codes of each route, what the schemas refuse before anything reaches the node, and a
 * follower forwarding changes to the leader while serving GET /members itself.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { FakeKvNode } from './fake-node.js';
import { startTestLeader, startTestServer, testKvLimits, type TestServer } from './testing/http-server.js';
import { kvValidator } from '../kv/limits.js';

import { QkvError } from '../wire/errors.js';

const validate = kvValidator(testKvLimits);

/** The server's URL in front of `node`. */
async function start(t: TestContext, node: FakeKvNode): Promise<string> {
  return (await startTestServer(t, node, { validate })).url;
}

function startLeader(t: TestContext, id = 'n1'): Promise<TestServer> {
  return startTestLeader(t, id, { validate });
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  // Tests read fields of JSON answers freely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

async function call(base: string, method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, json?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await request(`${base}${path}`, {
    method,
    headers: json === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(json === undefined ? {} : { body: typeof json === 'string' ? json : JSON.stringify(json) }),
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body: text.length > 0 ? JSON.parse(text) : text };
}

test('GET /members lists the voters and learners with the configuration index', async (t) => {
  const { url } = await startLeader(t);
  const answer = await call(url, 'GET', '/members');
  assert.equal(answer.status, 200);
  assert.equal(answer.body.configIndex, 0);
  assert.deepEqual(
    answer.body.members.map((m: { id: string; role: string; isLeader: boolean }) => [m.id, m.role, m.isLeader]),
    [['n1', 'voter', true]],
  );
});

test('a learner is added, promoted and removed, each answer carrying the configuration after it', async (t) => {
  const { url } = await startLeader(t);
  const added = await call(url, 'POST', '/members', { id: 'n4', peer: '127.0.0.1:7104', http: 'http://127.0.0.1:7004/', grpc: '127.0.0.1:7204' });
  assert.equal(added.status, 200);
  assert.equal(added.body.configIndex, 1);
  assert.equal(added.body.clusterId, 'fake-cluster');
  assert.deepEqual(added.body.config.learners, ['n4']);
  const n4 = added.body.members.find((m: { id: string }) => m.id === 'n4');
  assert.deepEqual([n4.role, n4.peer, n4.http, n4.grpc], ['learner', '127.0.0.1:7104', 'http://127.0.0.1:7004', '127.0.0.1:7204'], 'the trailing slash of http is dropped');

  const promoted = await call(url, 'POST', '/members/n4/promote');
  assert.equal(promoted.status, 200);
  assert.deepEqual(promoted.body.config.members, ['n1', 'n4']);
  assert.equal(promoted.body.config.learners, undefined);

  const removed = await call(url, 'DELETE', '/members/n4');
  assert.equal(removed.status, 200);
  assert.equal(removed.body.configIndex, 3);
  assert.deepEqual(removed.body.config.members, ['n1']);
  assert.deepEqual((await call(url, 'GET', '/members')).body.members.map((m: { id: string }) => m.id), ['n1']);
});

test('a voter is added directly only with force', async (t) => {
  const { url } = await startLeader(t);
  const refused = await call(url, 'POST', '/members', { id: 'n4', peer: 'n4:7104', learner: false });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error, 'bad_request');
  const forced = await call(url, 'POST', '/members', { id: 'n4', peer: 'n4:7104', learner: false, force: true });
  assert.equal(forced.status, 200);
  assert.deepEqual(forced.body.config.members, ['n1', 'n4']);
});

test('adding a member twice is 409 member_exists; promoting or removing a stranger is 404 not_found', async (t) => {
  const { url } = await startLeader(t);
  assert.equal((await call(url, 'POST', '/members', { id: 'n4', peer: 'n4:7104' })).status, 200);
  const twice = await call(url, 'POST', '/members', { id: 'n4', peer: 'n4:7104' });
  assert.equal(twice.status, 409);
  assert.equal(twice.body.error, 'member_exists');
  assert.equal(twice.body.id, 'n4');
  for (const [method, path] of [['POST', '/members/n9/promote'], ['DELETE', '/members/n9']] as const) {
    const unknown = await call(url, method, path);
    assert.equal(unknown.status, 404, `${method} ${path}`);
    assert.equal(unknown.body.error, 'not_found');
  }
});

test('the node refusals of a change keep their codes and statuses: membership_busy, learner_lagging, pinned_leader', async (t) => {
  const { url, node } = await startLeader(t);
  const refusals = [
    ['membership_busy', 'DELETE', '/members/n1', undefined],
    ['learner_lagging', 'POST', '/members/n1/promote', undefined],
    ['pinned_leader', 'POST', '/admin/transfer-leader', {}],
  ] as const;
  for (const [code, method, path, body] of refusals) {
    node.failNextChange(new QkvError(code, `${code} (test)`, {}, 200));
    const answer = await call(url, method, path, body);
    assert.equal(answer.status, 409, code);
    assert.equal(answer.body.error, code);
  }
  assert.equal(node.changeAttempts, 3);
});

test('bad bodies, unknown fields, bad addresses and bad ids are refused with 400 and reach no node', async (t) => {
  const { url, node } = await startLeader(t);
  const cases: readonly (readonly [unknown, RegExp])[] = [
    [{ peer: 'n4:7104' }, /"id" is missing/],
    [{ id: 'n4' }, /"peer" is missing/],
    [{ id: 'n4', peer: 'n4:7104', colour: 'red' }, /Unknown body field "colour"/],
    [{ id: 'n4', peer: 'n4' }, /"peer" must be host:port/],
    [{ id: 'n4', peer: 'n4:0' }, /"peer" must be host:port/],
    [{ id: 'n4', peer: 'n4:65536' }, /"peer" must be host:port/],
    [{ id: 'n4', peer: 'http://n4:7104' }, /"peer" must be host:port/],
    [{ id: 'n4', peer: 'n4:7104', http: 'ftp://n4:7004' }, /"http" must be an http:\/\/ or https:\/\/ URL/],
    [{ id: 'n4', peer: 'n4:7104', http: 'http://n4:7004/path' }, /"http" must be/],
    [{ id: 'n4', peer: 'n4:7104', grpc: 'n4' }, /"grpc" must be host:port/],
    [{ id: '', peer: 'n4:7104' }, /"id" must be 1 to 256 letters/],
    [{ id: 'n 4', peer: 'n4:7104' }, /"id" must be/],
    [{ id: 'x'.repeat(257), peer: 'n4:7104' }, /"id" must be/],
    [{ id: 'n4', peer: 'n4:7104', learner: 'no' }, /"learner" must be true or false/],
    ['[]', /must be a JSON object/],
  ];
  for (const [body, message] of cases) {
    const answer = await call(url, 'POST', '/members', body);
    assert.equal(answer.status, 400, JSON.stringify(body));
    assert.equal(answer.body.error, 'bad_request', JSON.stringify(body));
    assert.match(answer.body.message, message);
  }
  assert.equal((await call(url, 'POST', '/members')).body.error, 'invalid_json', 'an empty body');
  const transfer = await call(url, 'POST', '/admin/transfer-leader', { to: 'n2', now: true });
  assert.equal(transfer.status, 400);
  assert.match(transfer.body.message, /Unknown body field "now"/);
  const longId = await call(url, 'DELETE', `/members/${'x'.repeat(257)}`);
  assert.equal(longId.status, 400);
  assert.match(longId.body.message, /Path parameter id must be 1 to 256 characters/);
  const query = await call(url, 'GET', '/members?all=1');
  assert.equal(query.status, 400);
  assert.equal(node.members().configIndex, 0, 'nothing changed');
  assert.deepEqual(node.transfers, []);
});

test('a path without its method answers 405 with the methods the route table allows', async (t) => {
  const { url } = await startLeader(t);
  const put = await call(url, 'PUT', '/members');
  assert.equal(put.status, 405);
  assert.equal(put.headers['allow'], 'GET, POST');
  const get = await call(url, 'GET', '/members/n1/promote');
  assert.equal(get.status, 405);
  assert.equal(get.headers['allow'], 'POST');
  const getTransfer = await call(url, 'GET', '/admin/transfer-leader');
  assert.equal(getTransfer.headers['allow'], 'POST');
});

test('transfer-leader hands over to the named voter, or to the most up-to-date one when none is named', async (t) => {
  const { url, node } = await startLeader(t);
  const named = await call(url, 'POST', '/admin/transfer-leader', { to: 'n2' });
  assert.equal(named.status, 200);
  assert.deepEqual(named.body, { leader: 'n2' });
  const any = await call(url, 'POST', '/admin/transfer-leader', {});
  assert.equal(any.status, 200);
  assert.deepEqual(node.transfers, ['n2', null]);
});

test('a follower forwards membership changes and transfers to the leader, and answers GET /members itself', async (t) => {
  const leader = await startLeader(t);
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.url, grpc: null } });
  const follower = await start(t, followerNode);

  const added = await call(follower, 'POST', '/members', { id: 'n4', peer: 'n4:7104' });
  assert.equal(added.status, 200);
  assert.equal(added.headers['x-qkv-served-by'], 'n1');
  assert.deepEqual(added.body.config.learners, ['n4']);
  const again = await call(follower, 'POST', '/members', { id: 'n4', peer: 'n4:7104' });
  assert.equal(again.status, 409, "the leader's refusal comes back unchanged");
  assert.equal(again.body.error, 'member_exists');
  assert.equal((await call(follower, 'POST', '/members/n4/promote')).status, 200);
  assert.equal((await call(follower, 'DELETE', '/members/n4')).status, 200);
  assert.equal((await call(follower, 'DELETE', '/members/n4')).body.error, 'not_found');
  assert.deepEqual((await call(follower, 'POST', '/admin/transfer-leader', { to: 'n2' })).body, { leader: 'n2' });

  assert.equal(leader.node.members().configIndex, 3, 'three changes reached the leader');
  assert.deepEqual(leader.node.transfers, ['n2']);
  const local = await call(follower, 'GET', '/members');
  assert.deepEqual(local.body.members.map((m: { id: string }) => m.id), ['n2'], "the follower's own view, not the leader's");
  assert.equal(followerNode.members().configIndex, 0, 'the follower changed nothing itself');
});

test('a change already forwarded once is refused by a non-leader with 503 not_leader instead of forwarded again', async (t) => {
  const leader = await startLeader(t);
  const follower = await start(t, new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.url, grpc: null } }));
  const answer = await call(follower, 'POST', '/members', { id: 'n4', peer: 'n4:7104' }, { 'x-qkv-forwarded': '1' });
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'not_leader');
  assert.equal(answer.body.leader.id, 'n1');
  assert.equal(leader.node.members().configIndex, 0);
});
