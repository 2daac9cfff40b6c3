/**
 * The gRPC calls added after the first API: leases (unary and etcd's keep-alive stream),
 * binary values, lease-bound puts and the list options, on the fake node; watches are
 * tested on real processes (integration/grpc-api.test.ts).
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { FakeKvNode } from './fake-node.js';
import type { GrpcServerOptions } from './grpc.js';
import { startGrpc as startWith, service } from './testing/grpc-client.js';
import type { RawClient, Reply } from './testing/grpc-client.js';
import { validateKey, validateValue } from '../kv/limits.js';

const kvLimits = { keyBytesMax: 64, valueBytesMax: 1024 };
const validate = { key: (key: string) => validateKey(key, kvLimits), value: (value: string | Uint8Array) => validateValue(value, kvLimits) };
const startGrpc = (t: TestContext, node: FakeKvNode, overrides: Partial<GrpcServerOptions> = {}): Promise<RawClient> => startWith(t, node, validate, overrides);

test('LeaseGrant, LeaseKeepAlive, LeaseInfo and LeaseRevoke answer like the HTTP routes; an ended lease is NOT_FOUND lease_not_found', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const granted = await kv.call('LeaseGrant', { ttlMs: 3_000 });
  assert.equal(granted['ttlMs'], '3000');
  const id = granted['id'] as string;
  assert.deepEqual(await kv.call('LeaseKeepAlive', { id }), { id, ttlMs: '3000' });
  const info = await kv.call('LeaseInfo', { id });
  assert.equal(info['remainingMs'], '3000');
  assert.deepEqual(info['keys'], []);
  const revoked = await kv.call('LeaseRevoke', { id });
  assert.equal(revoked['found'], true);
  for (const method of ['LeaseKeepAlive', 'LeaseInfo']) {
    const gone = await kv.fails(method, { id });
    assert.equal(gone.code, grpc.status.NOT_FOUND, method);
    assert.equal(gone.wire, 'lease_not_found', method);
  }
  for (const ttlMs of [0, 7 * 24 * 3_600_000 + 1]) {
    const refused = await kv.fails('LeaseGrant', { ttlMs });
    assert.equal(refused.code, grpc.status.INVALID_ARGUMENT, String(ttlMs));
  }
  assert.equal((await kv.fails('LeaseKeepAlive', { id: 0 })).wire, 'bad_request');
});

test('the keep-alive stream answers each request in order, an ended lease with ttl 0, and goes on', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const a = (await kv.call('LeaseGrant', { ttlMs: 1_000 }))['id'] as string;
  const b = (await kv.call('LeaseGrant', { ttlMs: 2_000 }))['id'] as string;
  await kv.call('LeaseRevoke', { id: b });
  const m = service['LeaseKeepAliveStream'];
  assert.ok(m);
  const stream = kv.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), {});
  const answers: Reply[] = [];
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (r: Reply) => answers.push(r));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const id of [a, b, a]) stream.write({ id });
  stream.end();
  await done;
  assert.deepEqual(answers, [
    { id: a, ttlMs: '1000' },
    { id: b, ttlMs: '0' },
    { id: a, ttlMs: '1000' },
  ]);
});

test('a binary value is stored as bytes and read back in `binary`; value and binary together, or lease and ttl_ms together, are refused', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  const bytes = Buffer.from([0, 255, 0xc3, 0x28]);
  await kv.call('Put', { key: 'bin', binary: bytes });
  assert.deepEqual(node.store.get('bin')?.value, new Uint8Array(bytes));
  const got = await kv.call('Get', { key: 'bin' });
  assert.equal(got['value'], '');
  assert.deepEqual(got['binary'], bytes);
  const listed = await kv.call('List', { prefix: '' });
  assert.deepEqual(listed['items'][0]['binary'], bytes);
  const both = await kv.fails('Put', { key: 'x', value: 'text', binary: bytes });
  assert.equal(both.code, grpc.status.INVALID_ARGUMENT);
  const tooBig = await kv.fails('Put', { key: 'x', binary: Buffer.alloc(kvLimits.valueBytesMax + 1) });
  assert.equal(tooBig.wire, 'value_too_large');
  const leaseAndTtl = await kv.fails('Put', { key: 'x', value: 'v', lease: 5, ttlMs: 1_000 });
  assert.equal(leaseAndTtl.wire, 'bad_request');
  assert.equal(node.store.has('x'), false);
});

test('List with keys_only leaves values out, count_only counts, and at_version reads the page at that version', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const kv = await startGrpc(t, node);
  for (const k of ['p/a', 'p/b', 'p/c', 'q/a']) await kv.call('Put', { key: k, value: `v-${k}` });
  const keys = await kv.call('List', { prefix: 'p/', keysOnly: true });
  assert.deepEqual(keys['items'].map((i: Reply) => [i['key'], i['value']]), [['p/a', ''], ['p/b', ''], ['p/c', '']]);
  assert.equal(keys['version'], '4');
  const counted = await kv.call('List', { prefix: 'p/', countOnly: true });
  assert.equal(counted['count'], '3');
  assert.deepEqual(counted['items'], []);
  await kv.call('List', { prefix: 'p/', atVersion: 2, consistency: 'LOCAL' });
  const last = node.calls.at(-1);
  assert.equal(last?.op === 'list' ? last.options.atVersion : null, 2);
  await kv.call('Get', { key: 'p/a', atVersion: 1, consistency: 'LOCAL' });
  const read = node.calls.at(-1);
  assert.equal(read?.op === 'read' ? read.options.atVersion : null, 1);
});
