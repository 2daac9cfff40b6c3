import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { firstBadUtf8Field, startGrpcServer } from './grpc.js';
import { RawClient, limits, startGrpc as startWith } from './testing/grpc-client.js';
import type { Reply } from './testing/grpc-client.js';
import { startHttpServer } from './http.js';
import { FakeKvNode } from './fake-node.js';
import { QkvError } from '../wire/errors.js';
import { validateKey, validateValue } from '../kv/limits.js';
import type { TestContext } from 'node:test';
import type { GrpcServerOptions } from './grpc.js';

const kvLimits = { keyBytesMax: 64, valueBytesMax: 1024 };
const validate = { key: (key: string) => validateKey(key, kvLimits), value: (value: string | Uint8Array) => validateValue(value, kvLimits) };
const startGrpc = (t: TestContext, node: FakeKvNode, overrides: Partial<GrpcServerOptions> = {}): Promise<RawClient> => startWith(t, node, validate, overrides);

/** A protobuf length-delimited field, for hand-built messages. */
function field(number: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);
}

test('put, get, delete and list over gRPC answer like the HTTP API, with versions as uint64', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const put = await kv.call('Put', { key: 'a/1', value: 'one' });
  assert.deepEqual(put, { key: 'a/1', version: '1' });
  await kv.call('Put', { key: 'a/2', value: 'two' });
  await kv.call('Put', { key: 'b/1', value: 'three' });
  assert.deepEqual(await kv.call('Get', { key: 'a/1' }), { key: 'a/1', value: 'one', version: '1' });
  const page = await kv.call('List', { prefix: 'a/', limit: 1 });
  assert.deepEqual(page['items'], [{ key: 'a/1', value: 'one', version: '1' }]);
  assert.equal(page['next'], 'a/1');
  const rest = await kv.call('List', { prefix: 'a/', after: 'a/1', limit: 10 });
  assert.deepEqual(rest['items'].map((i: Reply) => i['key']), ['a/2']);
  assert.equal(rest['next'], undefined, 'the last page has no next');
  assert.deepEqual(await kv.call('Delete', { key: 'a/1' }), { key: 'a/1', version: '4', deleted: true });
  const missing = await kv.fails('Get', { key: 'a/1' });
  assert.equal(missing.code, grpc.status.NOT_FOUND);
  assert.equal(missing.wire, 'not_found');
});

test('a retried gRPC write with the same client id and seq is answered from the dedup table', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const first = await kv.call('Put', { key: 'k', value: 'v', clientId: 'c1', seq: 7 });
  const again = await kv.call('Put', { key: 'k', value: 'v', clientId: 'c1', seq: 7 });
  assert.deepEqual(again, first);
  assert.equal(node.store.get('k')?.version, 1, 'applied once');
  assert.deepEqual(node.commands[0]?.requestId, { clientId: 'c1', seq: 7 });
});

test('a version conflict is FAILED_PRECONDITION with the versions in the error body', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  await kv.call('Put', { key: 'k', value: 'v' });
  const conflict = await kv.fails('Put', { key: 'k', value: 'w', ifVersion: 0 });
  assert.equal(conflict.code, grpc.status.FAILED_PRECONDITION);
  assert.equal(conflict.wire, 'version_conflict');
  assert.equal(conflict.body['actualVersion'], 1);
  assert.equal(conflict.body['expectedVersion'], 0);
});

test('bad gRPC input gets INVALID_ARGUMENT with the same wire codes as HTTP and never reaches the node', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const cases: [string, string, object | Buffer, string][] = [
    ['an empty key', 'Put', { key: '', value: 'x' }, 'invalid_key'],
    ['a key with NUL', 'Put', { key: 'a\u0000b', value: 'x' }, 'invalid_key'],
    ['a key over the limit', 'Put', { key: 'k'.repeat(65), value: 'x' }, 'key_too_large'],
    ['a value over the limit', 'Put', { key: 'k', value: 'v'.repeat(1025) }, 'value_too_large'],
    ['a key that is not UTF-8', 'Put', Buffer.concat([field(1, Buffer.from([0x61, 0xff, 0x62])), field(2, Buffer.from('x'))]), 'invalid_key'],
    ['a key holding an encoded lone surrogate', 'Put', Buffer.concat([field(1, Buffer.from([0xed, 0xa0, 0x80])), field(2, Buffer.from('x'))]), 'invalid_key'],
    ['a value that is not UTF-8', 'Put', Buffer.concat([field(1, Buffer.from('k')), field(2, Buffer.from([0xc3, 0x28]))]), 'invalid_value'],
    ['a read of a key that is not UTF-8', 'Get', field(1, Buffer.from([0xfe])), 'invalid_key'],
    ['a delete of a key over the limit', 'Delete', { key: 'k'.repeat(65) }, 'key_too_large'],
    ['a seq without a client id', 'Put', { key: 'k', value: 'x', seq: 3 }, 'bad_request'],
    ['a client id without a seq', 'Put', { key: 'k', value: 'x', clientId: 'c' }, 'bad_request'],
    ['an ifVersion past 2^53', 'Put', { key: 'k', value: 'x', ifVersion: '9007199254740993' }, 'bad_request'],
    ['a minVersion past 2^53', 'Get', { key: 'k', minVersion: '18446744073709551615' }, 'bad_request'],
    ['a list prefix that is not UTF-8', 'List', field(1, Buffer.from([0xff])), 'bad_request'],
    ['bytes that are not a protobuf message', 'Put', Buffer.from([0x0a, 0x05, 0x61]), 'bad_request'],
  ];
  for (const [what, method, message, code] of cases) {
    const failure = await kv.fails(method, message);
    assert.equal(failure.code, grpc.status.INVALID_ARGUMENT, `${what}: status ${failure.code} (${failure.details})`);
    assert.equal(failure.wire, code, `${what}: wire code`);
    assert.equal(failure.body['error'], code, `${what}: error body`);
    assert.ok(failure.details.length > 0, `${what}: has a message`);
  }
  assert.equal(node.calls.length, 0, 'nothing reached the node');
  const tooBig = await kv.fails('Put', { key: 'k', value: 'v'.repeat(5000) });
  assert.equal(tooBig.code, grpc.status.RESOURCE_EXHAUSTED, 'a message over the limit is refused by grpc-js');
  assert.equal(node.calls.length, 0);
});

test('firstBadUtf8Field finds the first listed string field that is not UTF-8', () => {
  const ok = Buffer.concat([field(1, Buffer.from('ké')), field(2, Buffer.from([0xff])), Buffer.from([0x18, 0x05])]);
  assert.equal(firstBadUtf8Field(ok, [1]), 0);
  assert.equal(firstBadUtf8Field(ok, [1, 2]), 2);
  assert.equal(firstBadUtf8Field(Buffer.from([0x0a, 0x7f]), [1]), -1, 'a truncated message is malformed');
  // A string inside a nested message (a Txn's compare or op) counts against the field holding it.
  const inner = Buffer.from([0x0a, 0x01, 0x61, 0x12, 0x01, 0xff]);
  const outer = Buffer.concat([Buffer.from([0x12, inner.length]), inner]);
  assert.equal(firstBadUtf8Field(outer, [], { 2: [1] }), 0, 'the inner field 2 is not a string field');
  assert.equal(firstBadUtf8Field(outer, [], { 2: [1, 2] }), 2);
  assert.equal(firstBadUtf8Field(Buffer.concat([Buffer.from([0x12, 0x02]), Buffer.from([0x0a, 0x05])]), [], { 2: [1] }), -1, 'a malformed nested message');
  assert.equal(firstBadUtf8Field(Buffer.from([0x0b]), []), -1, 'groups are not used by this service');
});

test('503-class refusals are UNAVAILABLE or DEADLINE_EXCEEDED with the wire code and a retry hint', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  node.failNext(new QkvError('busy', 'too many writes', {}, 250));
  const busy = await kv.fails('Put', { key: 'k', value: 'v' });
  assert.equal(busy.code, grpc.status.UNAVAILABLE);
  assert.equal(busy.wire, 'busy');
  node.failNext(new QkvError('quorum_timeout', 'no quorum', { acks: 1, required: 2 }));
  const timeout = await kv.fails('Put', { key: 'k', value: 'v' });
  assert.equal(timeout.code, grpc.status.DEADLINE_EXCEEDED);
  assert.equal(timeout.wire, 'quorum_timeout');
  assert.equal(timeout.body['required'], 2);
});

test('a follower forwards gRPC writes and leader reads to the leader over HTTP and translates the answers', async (t) => {
  const leader = new FakeKvNode({ id: 'n1' });
  const leaderHttp = await startHttpServer({ node: leader, listen: { host: '127.0.0.1', port: 0 }, limits: { bodyBytesMax: 4096, headerBytesMax: 8192, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 }, validate, registry: new Registry(), logger: false });
  t.after(() => leaderHttp.close());
  leader.setLeader({ id: 'n1', http: leaderHttp.url, grpc: null });
  const follower = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leaderHttp.url, grpc: null } });
  const kv = await startGrpc(t, follower);

  const put = await kv.call('Put', { key: 'k', value: 'via n2', clientId: 'c', seq: 1 });
  assert.deepEqual(put, { key: 'k', version: '1' });
  assert.deepEqual(leader.commands[0]?.requestId, { clientId: 'c', seq: 1 }, 'the idempotency key travelled');
  assert.equal(follower.commands.length, 0, 'the follower proposed nothing');
  assert.deepEqual(await kv.call('Get', { key: 'k', consistency: 'LEADER' }), { key: 'k', value: 'via n2', version: '1' });
  assert.equal((await kv.call('List', { prefix: '', consistency: 'LEADER' }))['items'].length, 1);
  const conflict = await kv.fails('Put', { key: 'k', value: 'x', ifVersion: 0 });
  assert.equal(conflict.wire, 'version_conflict');
  assert.equal(conflict.body['actualVersion'], 1);
  const missing = await kv.fails('Get', { key: 'nope', consistency: 'LEADER' });
  assert.equal(missing.code, grpc.status.NOT_FOUND);
  const local = await kv.fails('Get', { key: 'k', consistency: 'LOCAL' });
  assert.equal(local.wire, 'not_found', 'a local read is served by the follower itself');
  // A linearizable read is served by the follower too (through the leader's read index in a
  // real node; the fake's empty store stands for the follower's own state).
  const linearizable = await kv.fails('Get', { key: 'k' });
  assert.equal(linearizable.wire, 'not_found');
  const lastCall = follower.calls[follower.calls.length - 1];
  assert.equal(lastCall?.op === 'read' ? lastCall.options.consistency : null, 'linearizable');
  assert.equal(leader.calls.filter((c) => c.op === 'read').length, 2, 'only the two LEADER reads reached the leader');

  assert.equal(await kv.servedBy('Put', { key: 'k2', value: 'v' }), 'n1', 'a forwarded write names the leader');
  assert.equal(await kv.servedBy('Get', { key: 'k2', consistency: 'LEADER' }), 'n1');
  assert.equal(await kv.servedBy('Put', { key: 'k2', value: 'x', ifVersion: 0 }), 'n1', 'a refusal by the leader names it too');
  assert.equal(await kv.servedBy('Get', { key: 'k2', consistency: 'LOCAL' }), 'n2', 'a local read names the follower');
});

test('Status reports the node and its own gRPC address', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const server = await startGrpcServer({ node, listen: { host: '127.0.0.1', port: 0 }, limits, validate, registry: new Registry() });
  const kv = new RawClient(server.address);
  t.after(async () => {
    kv.client.close();
    await server.close();
  });
  const status = await kv.call('Status', {});
  assert.equal(status['id'], 'n1');
  assert.equal(status['role'], 'leader');
  assert.equal(status['grpc'], server.address);
  assert.equal(status['mode']['writeQuorum'], 'majority');
});

test('Backup streams a header, the items in chunks and an end record with matching counts', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  for (let i = 0; i < 250; i++) await kv.call('Put', { key: `k${String(i).padStart(3, '0')}`, value: `v${i}` });
  const messages = await kv.stream('Backup', {});
  assert.equal(messages[0]?.['part'], 'header');
  assert.equal(messages[0]?.['header']['index'], '250');
  assert.deepEqual(messages[0]?.['header']['config']['members'], ['n1']);
  const chunks = messages.filter((m) => m['part'] === 'items');
  assert.deepEqual(chunks.map((c) => c['items']['seq']), chunks.map((_, i) => String(i)));
  const items = chunks.flatMap((c) => c['items']['items'] as Reply[]);
  assert.equal(items.length, 250);
  assert.deepEqual(items[7], { key: 'k007', text: 'v7', version: '8', value: 'text' });
  assert.deepEqual(messages.at(-1)?.['end'], { chunks: String(chunks.length), items: '250', dedup: '0' });
});

test('Die is UNIMPLEMENTED unless enabled, checks the node id, and then calls the hook', async (t) => {
  const off = await startGrpc(t, new FakeKvNode({ id: 'n1' }));
  const refused = await off.fails('Die', { id: 'n1', clean: true });
  assert.equal(refused.code, grpc.status.UNIMPLEMENTED);
  assert.equal(refused.wire, 'unknown_route');

  const died: boolean[] = [];
  const on = await startGrpc(t, new FakeKvNode({ id: 'n1' }), { die: (clean) => died.push(clean) });
  const wrong = await on.fails('Die', { id: 'n2', clean: false });
  assert.equal(wrong.wire, 'bad_request');
  assert.deepEqual(await on.call('Die', { id: 'n1', clean: true }), { id: 'n1', clean: true });
  const deadline = Date.now() + 2_000;
  while (died.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(died, [true]);
});

test('gRPC calls are counted by method and outcome, and timed', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const registry = new Registry();
  const kv = await startGrpc(t, node, { registry });
  await kv.call('Put', { key: 'k', value: 'v' });
  await kv.fails('Get', { key: 'absent' });
  const text = await registry.metrics();
  assert.match(text, /qkv_grpc_requests_total\{method="Put",outcome="ok"\} 1/);
  assert.match(text, /qkv_grpc_requests_total\{method="Get",outcome="not_found"\} 1/);
  assert.match(text, /qkv_grpc_request_duration_seconds_count\{method="Put"\} 1/);
});

test('Members, AddMember, PromoteMember, RemoveMember and TransferLeader answer like the HTTP routes', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const listed = await kv.call('Members', {});
  assert.equal(listed['configIndex'], '0');
  assert.deepEqual(listed['members'].map((m: Reply) => [m['id'], m['role'], m['isLeader']]), [['n1', 'voter', true]]);

  const added = await kv.call('AddMember', { id: 'n4', peer: '127.0.0.1:7104', http: 'http://127.0.0.1:7004', grpc: '127.0.0.1:7204' });
  assert.equal(added['configIndex'], '1');
  assert.equal(added['clusterId'], 'fake-cluster');
  assert.deepEqual(added['config']['learners'], ['n4']);
  const n4 = added['members'].find((m: Reply) => m['id'] === 'n4');
  assert.deepEqual([n4['role'], n4['peer'], n4['http'], n4['grpc'], n4['memberId']], ['learner', '127.0.0.1:7104', 'http://127.0.0.1:7004', '127.0.0.1:7204', 'fake0001']);
  assert.equal(n4['matchIndex'], undefined, 'a null lag is an absent optional');

  const twice = await kv.fails('AddMember', { id: 'n4', peer: '127.0.0.1:7104' });
  assert.deepEqual([twice.code, twice.wire, twice.body['id']], [grpc.status.ALREADY_EXISTS, 'member_exists', 'n4']);
  const voter = await kv.fails('AddMember', { id: 'n5', peer: 'n5:7105', learner: false });
  assert.equal(voter.wire, 'bad_request', 'a voter at once needs force');
  assert.deepEqual((await kv.call('AddMember', { id: 'n5', peer: 'n5:7105', learner: false, force: true }))['config']['members'], ['n1', 'n5']);

  assert.deepEqual((await kv.call('PromoteMember', { id: 'n4' }))['config']['members'], ['n1', 'n4', 'n5']);
  assert.deepEqual((await kv.call('RemoveMember', { id: 'n5' }))['config']['members'], ['n1', 'n4']);
  const stranger = await kv.fails('RemoveMember', { id: 'n9' });
  assert.deepEqual([stranger.code, stranger.wire], [grpc.status.NOT_FOUND, 'not_found']);
  node.failNextChange(new QkvError('membership_busy', 'another change is being committed (test)', {}, 200));
  const busy = await kv.fails('PromoteMember', { id: 'n4' });
  assert.deepEqual([busy.code, busy.wire], [grpc.status.FAILED_PRECONDITION, 'membership_busy']);

  assert.deepEqual(await kv.call('TransferLeader', { to: 'n4' }), { leader: 'n4' });
  assert.deepEqual(await kv.call('TransferLeader', {}), { leader: 'n1' });
  assert.deepEqual(node.transfers, ['n4', null], 'an empty `to` asks for the most up-to-date voter');
  const status = await kv.call('Status', {});
  assert.equal(status['membership']['configIndex'], '4', 'Status carries the membership too');
});

test('membership input the rules refuse is INVALID_ARGUMENT and reaches no node', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const cases: readonly (readonly [string, object, RegExp])[] = [
    ['AddMember', { id: '', peer: 'n4:7104' }, /id must be/],
    ['AddMember', { id: 'n 4', peer: 'n4:7104' }, /id must be/],
    ['AddMember', { id: 'n4', peer: 'n4' }, /peer must be host:port/],
    ['AddMember', { id: 'n4', peer: 'n4:7104', http: 'n4:7004' }, /http must be/],
    ['AddMember', { id: 'n4', peer: 'n4:7104', grpc: 'n4:99999' }, /grpc must be/],
    ['PromoteMember', { id: '' }, /id must be/],
    ['RemoveMember', { id: 'x'.repeat(257) }, /id must be/],
    ['TransferLeader', { to: 'a\u0001b' }, /to must be/],
  ];
  for (const [method, message, details] of cases) {
    const failure = await kv.fails(method, message);
    assert.equal(failure.code, grpc.status.INVALID_ARGUMENT, `${method} ${JSON.stringify(message)}`);
    assert.equal(failure.wire, 'bad_request');
    assert.match(failure.details, details);
  }
  const badUtf8 = await kv.fails('RemoveMember', field(1, Buffer.from([0xff, 0xfe])));
  assert.match(badUtf8.details, /not valid UTF-8/);
  assert.equal(node.changeAttempts, 0, 'nothing reached the node');
});

test('a follower forwards gRPC membership changes and transfers to the leader over HTTP', async (t) => {
  const leader = new FakeKvNode({ id: 'n1' });
  const leaderHttp = await startHttpServer({ node: leader, listen: { host: '127.0.0.1', port: 0 }, limits: { bodyBytesMax: 4096, headerBytesMax: 8192, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 }, validate, registry: new Registry(), logger: false });
  t.after(() => leaderHttp.close());
  leader.setLeader({ id: 'n1', http: leaderHttp.url, grpc: null });
  const follower = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leaderHttp.url, grpc: null } });
  const kv = await startGrpc(t, follower);

  const added = await kv.call('AddMember', { id: 'n4', peer: 'n4:7104', http: 'http://n4:7004' });
  assert.deepEqual(added['config']['learners'], ['n4']);
  assert.deepEqual(added['config']['directory'], { n4: { memberId: 'fake0001', peer: 'n4:7104', http: 'http://n4:7004', grpc: '' } });
  const n4 = added['members'].find((m: Reply) => m['id'] === 'n4');
  assert.equal(n4['http'], 'http://n4:7004', 'the leader got the fields the follower was sent');
  assert.equal(await kv.servedBy('PromoteMember', { id: 'n4' }), 'n1');
  const again = await kv.fails('PromoteMember', { id: 'n9' });
  assert.deepEqual([again.code, again.wire], [grpc.status.NOT_FOUND, 'not_found'], "the leader's refusal keeps its code");
  assert.deepEqual(await kv.call('TransferLeader', { to: 'n2' }), { leader: 'n2' });
  assert.equal(leader.members().configIndex, 2);
  assert.deepEqual(leader.transfers, ['n2']);
  assert.equal(follower.changeAttempts, 0, 'the follower changed nothing itself');
  assert.deepEqual((await kv.call('Members', {}))['members'].map((m: Reply) => m['id']), ['n2'], 'Members is answered by the follower');
});

test('Batch answers each operation as its own call would, in order, failures included', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const registry = new Registry();
  const kv = await startGrpc(t, node, { registry, limits: { ...limits, messageBytesMax: 1024 * 1024 } });
  await kv.call('Put', { key: 'a', value: '1' });
  const reply = await kv.call('Batch', {
    ops: [{ put: { key: 'b', value: '2' } }, { get: { key: 'a' } }, { get: { key: 'absent' } }, { put: { key: 'a', value: 'x', ifVersion: 7 } }, { delete: { key: 'b' } }, { put: { key: '', value: 'v' } }],
  });
  const results = reply['results'] as Reply[];
  assert.deepEqual(results.map((r) => r['result']), ['put', 'get', 'error', 'error', 'delete', 'error']);
  assert.deepEqual(results[0]?.['put'], { key: 'b', version: '2' });
  assert.deepEqual(results[1]?.['get'], { key: 'a', value: '1', version: '1' });
  assert.equal(results[2]?.['error']['code'], 'not_found');
  assert.equal(results[3]?.['error']['code'], 'version_conflict');
  assert.deepEqual(JSON.parse(results[3]?.['error']['detailsJson'] as string), { key: 'a', expectedVersion: 7, actualVersion: 1 });
  assert.equal(results[4]?.['delete']['deleted'], true);
  assert.ok(Number(results[4]?.['delete']['version']) > 2);
  assert.equal(results[5]?.['error']['code'], 'invalid_key', 'a bad key fails its operation alone');
  assert.equal(node.store.get('a')?.value, '1', 'the failed compare-and-set wrote nothing');
  const tooMany = await kv.fails('Batch', { ops: Array.from({ length: 1_001 }, (_, i) => ({ get: { key: `k${i}` } })) });
  assert.equal(tooMany.code, grpc.status.INVALID_ARGUMENT);
  assert.match(await registry.metrics(), /qkv_grpc_requests_total\{method="Batch",outcome="ok"\} 1/);
});
