import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { Packr } from 'msgpackr';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { createCertificates } from '../cli/certs.js';
import { ReloadableTls } from '../transport/tls-files.js';
import { Registry } from 'prom-client';
import { startHttpServer } from './http.js';
import type { FaultsAdmin, HttpServerOptions } from './http.js';
import { startTestLeader, startTestServer, testHttpLimits, testKvLimits, type TestServer } from './testing/http-server.js';
import { kvValidator } from '../kv/limits.js';
import { FakeKvNode } from './fake-node.js';
import { QkvError } from '../wire/errors.js';
import type { LeaderInfo } from '../wire/types.js';

const kvLimits = testKvLimits;
const limits = testHttpLimits;
const validate = kvValidator(kvLimits);

function start(t: TestContext, node: FakeKvNode, overrides: Partial<Omit<HttpServerOptions, 'node'>> = {}): Promise<TestServer> {
  return startTestServer(t, node, { validate, ...overrides });
}

function startLeader(t: TestContext, id = 'n1', overrides: Partial<Omit<HttpServerOptions, 'node'>> = {}): Promise<TestServer> {
  return startTestLeader(t, id, { validate, ...overrides });
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  // Tests read fields of JSON answers freely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

interface CallInit {
  readonly headers?: Record<string, string>;
  readonly json?: unknown;
  readonly body?: string | Buffer | Readable;
}

async function call(base: string, method: string, path: string, init: CallInit = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] ??= 'application/json';
  }
  const response = await request(`${base}${path}`, {
    method: method as 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.body.text();
  const type = String(response.headers['content-type'] ?? '');
  return {
    status: response.statusCode,
    headers: response.headers,
    body: type.startsWith('application/json') && text.length > 0 ? JSON.parse(text) : text,
  };
}

/** Sends raw bytes (things no well-behaved client library would send) and parses the answer. */
async function rawCall(base: string, bytes: Buffer): Promise<{ readonly status: number; readonly body: unknown }> {
  const { hostname, port } = new URL(base);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  const status = Number(head.split(' ')[1]);
  return { status, body: JSON.parse(body) };
}

function seed(node: FakeKvNode, entries: Record<string, string>): void {
  let version = 0;
  for (const [key, value] of Object.entries(entries)) node.store.set(key, { value, version: ++version });
}

function snapshot(node: FakeKvNode): string {
  return JSON.stringify([...node.store.entries()]);
}

test('a value written with PUT is read back with GET and removed with DELETE', async (t) => {
  const { url, node } = await startLeader(t);

  const put = await call(url, 'PUT', '/kv/color', { json: { value: 'blue' } });
  assert.equal(put.status, 200);
  assert.deepEqual(put.body, { key: 'color', version: 1 });

  const get = await call(url, 'GET', '/kv/color');
  assert.equal(get.status, 200);
  assert.deepEqual(get.body, { key: 'color', value: 'blue', version: 1 });

  const del = await call(url, 'DELETE', '/kv/color');
  assert.equal(del.status, 200);
  assert.deepEqual(del.body, { key: 'color', version: 2, deleted: true });

  const gone = await call(url, 'GET', '/kv/color');
  assert.equal(gone.status, 404);
  assert.equal(gone.body.error, 'not_found');
  assert.equal(gone.body.key, 'color');

  const again = await call(url, 'DELETE', '/kv/color');
  assert.deepEqual(again.body, { key: 'color', version: 3, deleted: false });
  assert.equal(node.store.size, 0);
});

test('a key with a slash, a space and non-ASCII characters round-trips percent-encoded', async (t) => {
  const { url, node } = await startLeader(t);
  const put = await call(url, 'PUT', '/kv/a%2Fb%20c%C3%A9%F0%9F%94%91', { json: { value: 'v' } });
  assert.equal(put.status, 200);
  assert.equal(put.body.key, 'a/b cé🔑');
  assert.deepEqual([...node.store.keys()], ['a/b cé🔑']);
  const get = await call(url, 'GET', '/kv/a%2Fb%20c%C3%A9%F0%9F%94%91');
  assert.equal(get.body.value, 'v');
});

test('hierarchical keys go in the path as written: /kv/config/db/host is the key config/db/host, the same as its encoded form, decoded once', async (t) => {
  const { url, node } = await startLeader(t);
  const put = await call(url, 'PUT', '/kv/config/db/host', { json: { value: 'db1' } });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.equal(put.body.key, 'config/db/host');
  const encoded = await call(url, 'GET', '/kv/config%2Fdb%2Fhost');
  assert.deepEqual(encoded.body, { key: 'config/db/host', value: 'db1', version: 1 });
  const mixed = await call(url, 'GET', '/kv/config/db%2Fhost');
  assert.equal(mixed.body.value, 'db1');
  // Decoded once: %252F is the three characters %2F, a different key.
  const twice = await call(url, 'PUT', '/kv/config%252Fdb', { json: { value: 'other' } });
  assert.equal(twice.body.key, 'config%2Fdb');
  const del = await call(url, 'DELETE', '/kv/config/db/host');
  assert.equal(del.body.deleted, true);
  assert.deepEqual([...node.store.keys()], ['config%2Fdb']);
  // A trailing slash is part of the key, not dropped.
  const trailing = await call(url, 'PUT', '/kv/dir/', { json: { value: 'x' } });
  assert.equal(trailing.body.key, 'dir/');
});

test('a body without Content-Type is read as JSON', async (t) => {
  const { url, node } = await startLeader(t);
  const put = await call(url, 'PUT', '/kv/k', { body: '{"value":"x"}' });
  assert.equal(put.status, 200);
  assert.equal(node.store.get('k')?.value, 'x');
  const withCharset = await call(url, 'PUT', '/kv/k', {
    body: '{"value":"y"}',
    headers: { 'content-type': 'Application/JSON; charset=UTF-8' },
  });
  assert.equal(withCharset.status, 200);
  assert.equal(node.store.get('k')?.value, 'y');
});

test('a compare-and-set with a stale ifVersion answers 409 with both versions and writes nothing', async (t) => {
  const { url, node } = await startLeader(t);
  const created = await call(url, 'PUT', '/kv/k', { json: { value: 'one', ifVersion: 0 } });
  assert.equal(created.status, 200);
  const before = snapshot(node);

  const conflict = await call(url, 'PUT', '/kv/k', { json: { value: 'two', ifVersion: 0 } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error, 'version_conflict');
  assert.equal(conflict.body.key, 'k');
  assert.equal(conflict.body.expectedVersion, 0);
  assert.equal(conflict.body.actualVersion, 1);
  assert.equal(typeof conflict.body.message, 'string');
  assert.equal(snapshot(node), before);

  const matched = await call(url, 'PUT', '/kv/k', { json: { value: 'two', ifVersion: 1 } });
  assert.equal(matched.status, 200);
  assert.equal(node.store.get('k')?.value, 'two');
});

test('DELETE takes ifVersion as a query parameter for a compare-and-delete', async (t) => {
  const { url, node } = await startLeader(t);
  await call(url, 'PUT', '/kv/k', { json: { value: 'v' } });
  const conflict = await call(url, 'DELETE', '/kv/k?ifVersion=7');
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.actualVersion, 1);
  assert.equal(node.store.has('k'), true);
  const deleted = await call(url, 'DELETE', '/kv/k?ifVersion=1');
  assert.equal(deleted.status, 200);
  assert.equal(deleted.body.deleted, true);
  assert.equal(node.store.has('k'), false);
});

test('listing pages through keys by prefix, and next is null on the last page', async (t) => {
  const { url, node } = await startLeader(t);
  seed(node, { 'a/1': 'x', 'b/1': 'p', 'b/2': 'q', 'b/3': 'r', c: 'z' });

  const first = await call(url, 'GET', '/kv?prefix=b%2F&limit=2');
  assert.equal(first.status, 200);
  assert.deepEqual(first.body, {
    items: [
      { key: 'b/1', value: 'p', version: 2 },
      { key: 'b/2', value: 'q', version: 3 },
    ],
    next: 'b/2',
    version: 0,
  });
  const second = await call(url, 'GET', `/kv?prefix=b%2F&limit=2&after=${encodeURIComponent(first.body.next)}`);
  assert.deepEqual(second.body, { items: [{ key: 'b/3', value: 'r', version: 4 }], next: null, version: 0 });

  const all = await call(url, 'GET', '/kv');
  assert.equal(all.body.items.length, 5);
  assert.equal(all.body.next, null);
});

test('reverse=true lists from the last key down, pages backwards through next/after, and combines with keysOnly, countOnly and atVersion', async (t) => {
  const { url, node } = await startLeader(t);
  seed(node, { 'a/1': 'x', 'b/1': 'p', 'b/2': 'q', 'b/3': 'r', c: 'z' });

  const first = await call(url, 'GET', '/kv?prefix=b%2F&limit=2&reverse=true');
  assert.equal(first.status, 200);
  assert.deepEqual(first.body, {
    items: [
      { key: 'b/3', value: 'r', version: 4 },
      { key: 'b/2', value: 'q', version: 3 },
    ],
    next: 'b/2',
    version: 0,
  });
  const second = await call(url, 'GET', `/kv?prefix=b%2F&limit=2&reverse=true&after=${encodeURIComponent(first.body.next)}`);
  assert.deepEqual(second.body, { items: [{ key: 'b/1', value: 'p', version: 2 }], next: null, version: 0 });
  const all = await call(url, 'GET', '/kv?reverse=true&keysOnly=true');
  assert.deepEqual(all.body.items, ['c', 'b/3', 'b/2', 'b/1', 'a/1'].map((key, i) => ({ key, version: 5 - i })));
  assert.deepEqual((await call(url, 'GET', '/kv?prefix=b%2F&reverse=true&countOnly=true')).body, { count: 3, version: 0 });
  // The node is asked for descending order, at the version asked; reverse=false is the default order.
  await call(url, 'GET', '/kv?prefix=b%2F&reverse=true&atVersion=0&consistency=local');
  const last = node.calls[node.calls.length - 1];
  assert.deepEqual(last?.op === 'list' ? [last.options.reverse, last.options.atVersion] : null, [true, 0]);
  const forward = await call(url, 'GET', '/kv?prefix=b%2F&reverse=false');
  assert.deepEqual(forward.body.items.map((i: { key: string }) => i.key), ['b/1', 'b/2', 'b/3']);
});

test('reverse=maybe is refused with 400 naming the field, and the node is not asked', async (t) => {
  const { url, node } = await startLeader(t);
  const calls = node.calls.length;
  const answer = await call(url, 'GET', '/kv?reverse=maybe');
  assert.equal(answer.status, 400);
  assert.equal(answer.body.error, 'bad_request');
  assert.match(answer.body.message, /reverse/);
  assert.equal(node.calls.length, calls);
});

test('a list limit above listLimitMax is lowered to it', async (t) => {
  const { url, node } = await startLeader(t);
  const entries: Record<string, string> = {};
  for (let i = 0; i < 60; i++) entries[`k${String(i).padStart(2, '0')}`] = 'v';
  seed(node, entries);
  const answer = await call(url, 'GET', '/kv?limit=1000');
  assert.equal(answer.status, 200);
  assert.equal(answer.body.items.length, limits.listLimitMax);
  assert.equal(answer.body.next, 'k49');
  const call0 = node.calls[0];
  assert.equal(call0?.op === 'list' ? call0.options.limit : null, limits.listLimitMax);
});

test('byte values are answered as base64 with "encoding": "base64"; text values carry no encoding', async (t) => {
  const { url, node } = await startLeader(t);
  node.store.set('bin', { value: new Uint8Array([0, 255, 104, 195]), version: 1 });
  node.store.set('txt', { value: 'héllo', version: 2 });
  const get = await call(url, 'GET', '/kv/bin');
  assert.deepEqual(get.body, { key: 'bin', value: 'AP9oww==', encoding: 'base64', version: 1 });
  const list = await call(url, 'GET', '/kv');
  assert.deepEqual(list.body.items, [
    { key: 'bin', value: 'AP9oww==', encoding: 'base64', version: 1 },
    { key: 'txt', value: 'héllo', version: 2 },
  ]);
});

test('PUT with "encoding": "base64" stores the decoded bytes; anything but canonical base64 or a known encoding is 400 and changes nothing', async (t) => {
  const { url, node } = await startLeader(t);
  const put = await call(url, 'PUT', '/kv/bin', { json: { value: 'AP9oww==', encoding: 'base64' } });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.deepEqual(node.store.get('bin')?.value, new Uint8Array([0, 255, 104, 195]));
  assert.equal((await call(url, 'PUT', '/kv/txt', { json: { value: 'AP9oww==', encoding: 'utf8' } })).status, 200);
  assert.equal(node.store.get('txt')?.value, 'AP9oww==');
  for (const [body, error] of [
    [{ value: 'AP9oww=', encoding: 'base64' }, 'invalid_value'],
    [{ value: 'not base64!', encoding: 'base64' }, 'invalid_value'],
    [{ value: 'AP9o\nww==', encoding: 'base64' }, 'invalid_value'],
    [{ value: 'AP9oww==', encoding: 'hex' }, 'bad_request'],
  ] as const) {
    const refused = await call(url, 'PUT', '/kv/bad', { json: body });
    assert.equal(refused.status, 400, JSON.stringify(body));
    assert.equal(refused.body.error, error, JSON.stringify(refused.body));
  }
  assert.equal(node.store.has('bad'), false);
  const batch = await call(url, 'POST', '/batch', { json: { ops: [{ op: 'put', key: 'b2', value: 'AQI=', encoding: 'base64' }, { op: 'get', key: 'b2' }] } });
  assert.equal(batch.status, 200, JSON.stringify(batch.body));
  assert.deepEqual(node.store.get('b2')?.value, new Uint8Array([1, 2]));
  assert.deepEqual(batch.body.results[1], { status: 200, key: 'b2', value: 'AQI=', encoding: 'base64', version: batch.body.results[1].version });
});

test('ready answers 200 once a leader is known and everything committed is applied, 503 not_ready without a leader', async (t) => {
  const { url, node } = await startLeader(t);
  seed(node, { a: '1' });
  const ready = await call(url, 'GET', '/ready');
  assert.equal(ready.status, 200);
  assert.equal(ready.body.ready, true);
  assert.equal(ready.body.leader, 'n1');

  node.setLeader(null);
  const notReady = await call(url, 'GET', '/ready');
  assert.equal(notReady.status, 503);
  assert.equal(notReady.body.error, 'not_ready');
  assert.equal(notReady.body.leader, null);
  assert.ok(notReady.headers['retry-after'] !== undefined);
});

test('GET /rollbacks serves the rollback records when the node provides them, and is 404 otherwise', async (t) => {
  const records = [{ version: 5, term: 2, op: 'put', key: 'a', value: 'x' }];
  const withRecords = await startLeader(t, 'n1', { rollbacks: async () => records });
  const answer = await call(withRecords.url, 'GET', '/rollbacks');
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.body, { node: 'n1', records });
  const without = await startLeader(t, 'n2');
  assert.equal((await call(without.url, 'GET', '/rollbacks')).status, 404);
});

test('health, status and debug/store describe the node', async (t) => {
  const { url, node } = await startLeader(t);
  seed(node, { a: '1', b: '2', c: '3' });

  const health = await call(url, 'GET', '/health');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { ok: true });
  const head = await call(url, 'HEAD', '/health');
  assert.equal(head.status, 200);

  const status = await call(url, 'GET', '/status');
  assert.equal(status.status, 200);
  assert.equal(status.body.id, 'n1');
  assert.equal(status.body.role, 'leader');
  assert.deepEqual(status.body.leader, { id: 'n1', http: url, grpc: null });

  const store = await call(url, 'GET', '/debug/store?limit=2');
  assert.deepEqual(store.body, {
    items: [
      { key: 'a', value: '1', version: 1 },
      { key: 'b', value: '2', version: 2 },
    ],
    next: 'b',
  });
  const rest = await call(url, 'GET', '/debug/store?after=b');
  assert.deepEqual(rest.body, { items: [{ key: 'c', value: '3', version: 3 }], next: null });
});

interface BadCase {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly init?: CallInit;
  readonly status: number;
  readonly error: string;
}

const tooLongValue = 'v'.repeat(kvLimits.valueBytesMax + 1);
const badCases: readonly BadCase[] = [
  { name: 'malformed JSON', method: 'PUT', path: '/kv/k', init: { body: '{"value":', headers: { 'content-type': 'application/json' } }, status: 400, error: 'invalid_json' },
  { name: 'a body that is not UTF-8', method: 'PUT', path: '/kv/k', init: { body: Buffer.from([0x7b, 0xff, 0x7d]), headers: { 'content-type': 'application/json' } }, status: 400, error: 'invalid_json' },
  { name: 'an empty body', method: 'PUT', path: '/kv/k', init: { headers: { 'content-type': 'application/json' } }, status: 400, error: 'invalid_json' },
  { name: 'a JSON array body', method: 'PUT', path: '/kv/k', init: { json: ['x'] }, status: 400, error: 'bad_request' },
  { name: 'a missing value', method: 'PUT', path: '/kv/k', init: { json: {} }, status: 400, error: 'invalid_value' },
  { name: 'a non-string value', method: 'PUT', path: '/kv/k', init: { json: { value: 42 } }, status: 400, error: 'invalid_value' },
  { name: 'a value with a lone surrogate', method: 'PUT', path: '/kv/k', init: { body: '{"value":"\\ud800"}', headers: { 'content-type': 'application/json' } }, status: 400, error: 'invalid_value' },
  { name: 'an unknown body field', method: 'PUT', path: '/kv/k', init: { json: { value: 'x', ifversion: 1 } }, status: 400, error: 'bad_request' },
  { name: 'a negative ifVersion', method: 'PUT', path: '/kv/k', init: { json: { value: 'x', ifVersion: -1 } }, status: 400, error: 'bad_request' },
  { name: 'a fractional ifVersion', method: 'PUT', path: '/kv/k', init: { json: { value: 'x', ifVersion: 1.5 } }, status: 400, error: 'bad_request' },
  { name: 'a string ifVersion', method: 'PUT', path: '/kv/k', init: { json: { value: 'x', ifVersion: '3' } }, status: 400, error: 'bad_request' },
  { name: 'an ifVersion past 2^53', method: 'PUT', path: '/kv/k', init: { body: '{"value":"x","ifVersion":9007199254740993}', headers: { 'content-type': 'application/json' } }, status: 400, error: 'bad_request' },
  { name: 'Content-Type text/plain', method: 'PUT', path: '/kv/k', init: { body: '{"value":"x"}', headers: { 'content-type': 'text/plain' } }, status: 400, error: 'bad_request' },
  { name: 'a form-encoded body', method: 'PUT', path: '/kv/k', init: { body: 'value=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 400, error: 'bad_request' },
  { name: 'a malformed Content-Type', method: 'PUT', path: '/kv/k', init: { body: '{"value":"x"}', headers: { 'content-type': 'nonsense' } }, status: 400, error: 'bad_request' },
  { name: 'a non-UTF-8 charset', method: 'PUT', path: '/kv/k', init: { body: '{"value":"x"}', headers: { 'content-type': 'application/json; charset=latin1' } }, status: 400, error: 'bad_request' },
  { name: 'a body over bodyBytesMax', method: 'PUT', path: '/kv/k', init: { json: { value: 'v'.repeat(limits.bodyBytesMax) } }, status: 413, error: 'body_too_large' },
  { name: 'a chunked body over bodyBytesMax', method: 'PUT', path: '/kv/k', init: { body: Readable.from([Buffer.from('{"value":"'), Buffer.alloc(limits.bodyBytesMax, 0x61), Buffer.from('"}')]), headers: { 'content-type': 'application/json' } }, status: 413, error: 'body_too_large' },
  { name: 'a value over the value limit', method: 'PUT', path: '/kv/k', init: { json: { value: tooLongValue } }, status: 413, error: 'value_too_large' },
  { name: 'a key over the key limit', method: 'PUT', path: `/kv/${'k'.repeat(kvLimits.keyBytesMax + 1)}`, init: { json: { value: 'x' } }, status: 413, error: 'key_too_large' },
  { name: 'a read of a key over the limit in UTF-8 bytes', method: 'GET', path: `/kv/${'%C3%A9'.repeat(kvLimits.keyBytesMax / 2 + 1)}`, status: 413, error: 'key_too_large' },
  { name: 'a key that is not UTF-8 (%FF)', method: 'PUT', path: '/kv/a%FFb', init: { json: { value: 'x' } }, status: 400, error: 'invalid_key' },
  { name: 'a key holding an encoded lone surrogate', method: 'PUT', path: '/kv/%ED%A0%80', init: { json: { value: 'x' } }, status: 400, error: 'invalid_key' },
  { name: 'an empty key', method: 'PUT', path: '/kv/', init: { json: { value: 'x' } }, status: 400, error: 'invalid_key' },
  { name: 'a key with NUL', method: 'PUT', path: '/kv/a%00b', init: { json: { value: 'x' } }, status: 400, error: 'invalid_key' },
  { name: 'a client id without a sequence', method: 'PUT', path: '/kv/k', init: { json: { value: 'x' }, headers: { 'x-qkv-client-id': 'c1' } }, status: 400, error: 'bad_request' },
  { name: 'a sequence without a client id', method: 'DELETE', path: '/kv/seed', init: { headers: { 'x-qkv-seq': '1' } }, status: 400, error: 'bad_request' },
  { name: 'sequence 0', method: 'PUT', path: '/kv/k', init: { json: { value: 'x' }, headers: { 'x-qkv-client-id': 'c1', 'x-qkv-seq': '0' } }, status: 400, error: 'bad_request' },
  { name: 'a non-numeric sequence', method: 'PUT', path: '/kv/k', init: { json: { value: 'x' }, headers: { 'x-qkv-client-id': 'c1', 'x-qkv-seq': '1e3' } }, status: 400, error: 'bad_request' },
  { name: 'a sequence past 2^53', method: 'PUT', path: '/kv/k', init: { json: { value: 'x' }, headers: { 'x-qkv-client-id': 'c1', 'x-qkv-seq': '9007199254740993' } }, status: 400, error: 'bad_request' },
  { name: 'an over-long client id', method: 'PUT', path: '/kv/k', init: { json: { value: 'x' }, headers: { 'x-qkv-client-id': 'c'.repeat(129), 'x-qkv-seq': '1' } }, status: 400, error: 'bad_request' },
  { name: 'a query parameter on PUT', method: 'PUT', path: '/kv/k?ifVersion=1', init: { json: { value: 'x' } }, status: 400, error: 'bad_request' },
  { name: 'a zero deadline header', method: 'PUT', path: '/kv/k', init: { json: { value: 'x' }, headers: { 'x-qkv-timeout-ms': '0' } }, status: 400, error: 'bad_request' },
  { name: 'a non-integer ifVersion on DELETE', method: 'DELETE', path: '/kv/seed?ifVersion=one', status: 400, error: 'bad_request' },
  { name: 'an unknown consistency', method: 'GET', path: '/kv/seed?consistency=strong', status: 400, error: 'bad_request' },
  { name: 'a non-integer minVersion', method: 'GET', path: '/kv/seed?minVersion=abc', status: 400, error: 'bad_request' },
  { name: 'a negative minVersion', method: 'GET', path: '/kv/seed?minVersion=-1', status: 400, error: 'bad_request' },
  { name: 'an unknown query parameter', method: 'GET', path: '/kv/seed?consitency=local', status: 400, error: 'bad_request' },
  { name: 'a repeated query parameter', method: 'GET', path: '/kv?limit=1&limit=2', status: 400, error: 'bad_request' },
  { name: 'a zero list limit', method: 'GET', path: '/kv?limit=0', status: 400, error: 'bad_request' },
  { name: 'a list prefix that is not UTF-8', method: 'GET', path: '/kv?prefix=%FF', status: 400, error: 'bad_request' },
  { name: 'a list cursor over the key limit', method: 'GET', path: `/kv?after=${'a'.repeat(kvLimits.keyBytesMax + 1)}`, status: 413, error: 'key_too_large' },
  { name: 'an unknown route', method: 'GET', path: '/nope', status: 404, error: 'unknown_route' },
  { name: 'an empty key under /kv/', method: 'GET', path: '/kv/', status: 400, error: 'invalid_key' },
  { name: 'a key that is not UTF-8 once decoded', method: 'GET', path: '/kv/a/%FF', status: 400, error: 'invalid_key' },
  { name: 'fault routes without fault injection', method: 'GET', path: '/admin/faults', status: 404, error: 'unknown_route' },
  { name: 'POST on a key', method: 'POST', path: '/kv/k', init: { json: { value: 'x' } }, status: 405, error: 'method_not_allowed' },
  { name: 'DELETE on the list route', method: 'DELETE', path: '/kv', status: 405, error: 'method_not_allowed' },
  { name: 'PATCH on health', method: 'PATCH', path: '/health', status: 405, error: 'method_not_allowed' },
];

test('bad input is refused with its status and error code, and changes nothing', async (t) => {
  const { url, node } = await startLeader(t);
  seed(node, { seed: 'value' });
  const before = snapshot(node);
  for (const bad of badCases) {
    await t.test(`${bad.name}: ${bad.status} ${bad.error}`, async () => {
      const answer = await call(url, bad.method, bad.path, bad.init);
      assert.equal(answer.status, bad.status, JSON.stringify(answer.body));
      assert.equal(answer.body.error, bad.error, JSON.stringify(answer.body));
      assert.equal(typeof answer.body.message, 'string');
      assert.match(String(answer.headers['content-type']), /^application\/json/);
      assert.equal(snapshot(node), before);
      assert.deepEqual(node.commands, []);
      if (bad.status === 405) assert.ok(answer.headers['allow'], 'a 405 names the allowed methods');
    });
  }
});

test('a request line and headers over headerBytesMax answer 431 header_too_large in JSON', async (t) => {
  const { url, node } = await startLeader(t);
  const answer = await rawCall(
    url,
    Buffer.from(`GET /kv/${'k'.repeat(limits.headerBytesMax)} HTTP/1.1\r\nHost: x\r\n\r\n`),
  );
  assert.equal(answer.status, 431);
  assert.equal((answer.body as { error: string }).error, 'header_too_large');
  assert.deepEqual(node.calls, []);
});

test('over HTTPS the header limit is the same: headers over headerBytesMax (below Node\'s own 16 KiB) answer 431', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-https-limits-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await createCertificates({ outDir: dir, nodes: ['n1'], hosts: ['127.0.0.1'], days: 1 });
  const material = await ReloadableTls.load({ certFile: path.join(dir, 'n1.pem'), keyFile: path.join(dir, 'n1-key.pem'), caFile: path.join(dir, 'ca.pem') });
  const { url, node } = await startLeader(t, 'n1', { tls: { material, requireClientCert: false } });
  assert.ok(url.startsWith('https://'));
  const dispatcher = new Agent({ connect: { ca: await readFile(path.join(dir, 'ca.pem')) } });
  t.after(() => dispatcher.close());
  const ask = async (headerChars: number) => {
    const response = await request(`${url}/kv/a`, { dispatcher, headers: { 'x-padding': 'p'.repeat(headerChars) } });
    return { status: response.statusCode, body: (await response.body.json()) as { error?: string } };
  };
  assert.equal((await ask(100)).status, 404, 'an ordinary request is served');
  const over = await ask(limits.headerBytesMax + 100);
  assert.ok(limits.headerBytesMax + 100 < 16 * 1024);
  assert.equal(over.status, 431);
  assert.equal(over.body.error, 'header_too_large');
  assert.equal(node.calls.filter((c) => c.op === 'read').length, 1, 'only the ordinary request reached the node');
});

test('raw non-ASCII bytes in the URL answer 400 bad_request in JSON', async (t) => {
  const { url, node } = await startLeader(t);
  const answer = await rawCall(url, Buffer.from('PUT /kv/\xff HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}', 'latin1'));
  assert.equal(answer.status, 400);
  assert.equal((answer.body as { error: string }).error, 'bad_request');
  assert.deepEqual(node.calls, []);
});

test('a 503 from the node carries Retry-After and the error details', async (t) => {
  const { url, node } = await startLeader(t);
  node.failNext(new QkvError('quorum_timeout', 'Only 1 of 2 acks in time', { acks: 1, required: 2 }, 2_500));
  const slow = await call(url, 'PUT', '/kv/k', { json: { value: 'x' } });
  assert.equal(slow.status, 503);
  assert.equal(slow.headers['retry-after'], '3');
  assert.deepEqual(slow.body, { error: 'quorum_timeout', message: 'Only 1 of 2 acks in time', acks: 1, required: 2 });

  node.failNext(new QkvError('busy', 'Too many writes in flight'));
  const busy = await call(url, 'GET', '/kv/k');
  assert.equal(busy.status, 503);
  assert.equal(busy.headers['retry-after'], '1');
  assert.equal(busy.body.error, 'busy');
});

test('an unexpected failure in the node is a 500 internal error in JSON', async (t) => {
  const { url, node } = await startLeader(t);
  node.failNext(new TypeError('boom'));
  const answer = await call(url, 'GET', '/kv/k');
  assert.equal(answer.status, 500);
  assert.equal(answer.body.error, 'internal');
});

test('idempotency headers become the command request id, and a retry is answered from the dedup table', async (t) => {
  const { url, node } = await startLeader(t);
  const headers = { 'x-qkv-client-id': 'client-7', 'x-qkv-seq': '5' };
  const first = await call(url, 'PUT', '/kv/k', { json: { value: 'x' }, headers });
  const retry = await call(url, 'PUT', '/kv/k', { json: { value: 'x' }, headers });
  assert.deepEqual(retry.body, first.body);
  assert.deepEqual(node.commands[0]?.requestId, { clientId: 'client-7', seq: 5 });

  const del = await call(url, 'DELETE', '/kv/k', { headers: { 'x-qkv-client-id': 'client-7', 'x-qkv-seq': '6' } });
  assert.equal(del.status, 200);
  assert.deepEqual(node.commands[2]?.requestId, { clientId: 'client-7', seq: 6 });

  const stale = await call(url, 'PUT', '/kv/k', { json: { value: 'y' }, headers });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.error, 'stale_request');
  assert.equal(stale.body.lastSeq, 6);
  assert.equal(node.store.has('k'), false);
});

test('a write on a follower is forwarded to the leader and the leader answer comes back', async (t) => {
  const leader = await startLeader(t, 'n1');
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.url, grpc: null } });
  const follower = await start(t, followerNode);

  const put = await call(follower.url, 'PUT', '/kv/a%2Fb', {
    json: { value: 'x', ifVersion: 0 },
    headers: { 'x-qkv-client-id': 'c1', 'x-qkv-seq': '1' },
  });
  assert.equal(put.status, 200);
  assert.deepEqual(put.body, { key: 'a/b', version: 1 });
  assert.equal(leader.node.store.get('a/b')?.value, 'x');
  assert.deepEqual(leader.node.commands, [
    { op: 'put', key: 'a/b', value: 'x', ifVersion: 0, requestId: { clientId: 'c1', seq: 1 } },
  ]);
  assert.equal(followerNode.store.size, 0);
  assert.deepEqual(followerNode.calls, []);

  const conflict = await call(follower.url, 'PUT', '/kv/a%2Fb', { json: { value: 'y', ifVersion: 0 } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.actualVersion, 1);

  assert.equal(put.headers['x-qkv-served-by'], 'n1', 'the answer names the leader that applied the write');

  const read = await call(follower.url, 'GET', '/kv/a%2Fb?consistency=leader');
  assert.deepEqual(read.body, { key: 'a/b', value: 'x', version: 1 });
  assert.equal(read.headers['x-qkv-served-by'], 'n1');
  const list = await call(follower.url, 'GET', '/kv?consistency=leader');
  assert.deepEqual(list.body, { items: [{ key: 'a/b', value: 'x', version: 1 }], next: null, version: 2 });
  const del = await call(follower.url, 'DELETE', '/kv/a%2Fb');
  assert.deepEqual(del.body, { key: 'a/b', version: 3, deleted: true });
  assert.equal(leader.node.store.size, 0);
  assert.deepEqual(followerNode.calls, []);
});

test('a linearizable read or list on a follower that knows the leader is served by the follower itself, never forwarded', async (t) => {
  // The leader's address is unreachable: a read that tried to forward would fail.
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: 'http://127.0.0.1:9', grpc: null } });
  const follower = await start(t, followerNode);
  seed(followerNode, { k: 'v' });

  const read = await call(follower.url, 'GET', '/kv/k');
  assert.equal(read.status, 200);
  assert.deepEqual(read.body, { key: 'k', value: 'v', version: 1 });
  assert.equal(read.headers['x-qkv-served-by'], 'n2');
  const list = await call(follower.url, 'GET', '/kv?prefix=k');
  assert.equal(list.status, 200);
  assert.equal(list.body.items.length, 1);
  assert.equal(list.headers['x-qkv-served-by'], 'n2');
  const missing = await call(follower.url, 'GET', '/kv/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.headers['x-qkv-served-by'], 'n2');
  assert.deepEqual(
    followerNode.calls.map((c) => (c.op === 'write' || c.op === 'txn' ? null : c.options.consistency)),
    ['linearizable', 'linearizable', 'linearizable'],
  );
});

test('a follower read refused because leadership moved is retried once on the follower, with the leader it knows then', async (t) => {
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: 'http://127.0.0.1:9', grpc: null } });
  const follower = await start(t, followerNode);
  seed(followerNode, { k: 'v' });
  followerNode.failNext(new QkvError('not_leader', 'the leader asked stepped down', { leader: { id: 'n3', http: null, grpc: null } }, 500));
  const read = await call(follower.url, 'GET', '/kv/k');
  assert.equal(read.status, 200);
  assert.equal(read.headers['x-qkv-served-by'], 'n2');
  assert.equal(followerNode.calls.length, 2);

  followerNode.failNext(new QkvError('not_leader', 'refused', { leader: null }, 500));
  followerNode.failNext(new QkvError('not_leader', 'refused again', { leader: null }, 500));
  const refused = await call(follower.url, 'GET', '/kv/k');
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error, 'not_leader');
  assert.ok(refused.headers['retry-after']);
  assert.equal(refused.headers['x-qkv-served-by'], 'n2', 'even a refusal names the node that gave it');
});

test('a linearizable read on a node that knows no leader waits leaderWaitMs, then answers 503 no_leader; it never reads on its own', async (t) => {
  const node = new FakeKvNode({ id: 'n2', leader: null });
  const { url } = await start(t, node);
  seed(node, { k: 'maybe stale' });
  const answer = await call(url, 'GET', '/kv/k');
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'no_leader');
  assert.equal(answer.headers['retry-after'], '1');
  assert.deepEqual(node.calls.filter((c) => c.op === 'read'), []);
});

test('local and session reads are served by the node itself, without the leader', async (t) => {
  // The leader's address is unreachable: a read that tried to forward would fail.
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: 'http://127.0.0.1:9', grpc: null } });
  const follower = await start(t, followerNode);
  seed(followerNode, { k: 'stale' });

  const local = await call(follower.url, 'GET', '/kv/k?consistency=local');
  assert.deepEqual(local.body, { key: 'k', value: 'stale', version: 1 });
  const session = await call(follower.url, 'GET', '/kv/k?minVersion=0');
  assert.equal(session.status, 200);
  const sessionCall = followerNode.calls[1];
  assert.deepEqual(sessionCall?.op === 'read' ? sessionCall.options : null, {
    consistency: 'local',
    minVersion: 0,
    timeoutMs: limits.requestTimeoutMs,
  });
  const list = await call(follower.url, 'GET', '/kv?consistency=local');
  assert.equal(list.body.items.length, 1);

  const unreachable = await call(follower.url, 'GET', '/kv/k?minVersion=5', { headers: { 'x-qkv-timeout-ms': '50' } });
  assert.equal(unreachable.status, 503);
  assert.equal(unreachable.body.error, 'timeout');
});

test('a forwarded request carries the remaining deadline, never more than asked', async (t) => {
  const leader = await startLeader(t, 'n1');
  const follower = await start(t, new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.url, grpc: null } }));
  await call(follower.url, 'PUT', '/kv/k', { json: { value: 'x' }, headers: { 'x-qkv-timeout-ms': '700' } });
  const write = leader.node.calls[0];
  assert.equal(write?.op, 'write');
  const timeoutMs = write.op === 'write' ? write.timeoutMs : 0;
  assert.ok(timeoutMs > 0 && timeoutMs <= 700, `leader saw timeoutMs ${timeoutMs}`);
});

test('a request that was already forwarded is refused with 503 not_leader instead of forwarded again', async (t) => {
  const leader = await startLeader(t, 'n1');
  const follower = await start(t, new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.url, grpc: null } }));
  const answer = await call(follower.url, 'PUT', '/kv/k', {
    json: { value: 'x' },
    headers: { 'x-qkv-forwarded': '1' },
  });
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'not_leader');
  assert.deepEqual(answer.body.leader, { id: 'n1', http: leader.url, grpc: null });
  assert.ok(answer.headers['retry-after']);
  assert.deepEqual(leader.node.calls, []);
});

test('two nodes that each believe the other leads answer 503 instead of bouncing the request', async (t) => {
  const nodeA = new FakeKvNode({ id: 'a', leader: null });
  const nodeB = new FakeKvNode({ id: 'b', leader: null });
  const a = await start(t, nodeA);
  const b = await start(t, nodeB);
  nodeA.setLeader({ id: 'b', http: b.url, grpc: null });
  nodeB.setLeader({ id: 'a', http: a.url, grpc: null });

  const answer = await call(a.url, 'PUT', '/kv/k', { json: { value: 'x' } });
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'not_leader');
  assert.deepEqual(nodeA.calls, []);
  assert.deepEqual(nodeB.calls, []);
});

test('with no leader, a write waits leaderWaitMs and then answers 503 no_leader with Retry-After', async (t) => {
  const node = new FakeKvNode({ id: 'n1', leader: null });
  const { url } = await start(t, node);
  const startedMs = performance.now();
  const answer = await call(url, 'PUT', '/kv/k', { json: { value: 'x' } });
  const elapsedMs = performance.now() - startedMs;
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'no_leader');
  assert.equal(answer.headers['retry-after'], '1');
  assert.ok(elapsedMs >= limits.leaderWaitMs - 5, `answered after ${elapsedMs} ms`);
  assert.deepEqual(node.calls, []);
});

test('a write waiting for an election is served as soon as this node wins it', async (t) => {
  const node = new FakeKvNode({ id: 'n1', leader: null });
  const waitForLeader = node.waitForLeader.bind(node);
  node.waitForLeader = (timeoutMs) => {
    const waiting = waitForLeader(timeoutMs);
    node.setLeader({ id: 'n1', http: null, grpc: null });
    return waiting;
  };
  const { url } = await start(t, node);
  const answer = await call(url, 'PUT', '/kv/k', { json: { value: 'x' } });
  assert.equal(answer.status, 200);
  assert.equal(node.store.get('k')?.value, 'x');
});

test('when leadership moves during a write, the write is forwarded once to the new leader', async (t) => {
  const newLeader = await startLeader(t, 'n2');
  const oldLeader = await startLeader(t, 'n1');
  oldLeader.node.beforeWrite = () => oldLeader.node.setLeader({ id: 'n2', http: newLeader.url, grpc: null });

  const answer = await call(oldLeader.url, 'PUT', '/kv/k', { json: { value: 'x' } });
  assert.equal(answer.status, 200);
  assert.equal(newLeader.node.store.get('k')?.value, 'x');
  assert.equal(oldLeader.node.store.size, 0);
});

test('an unreachable leader makes a forwarded write answer 503 no_leader, since nothing was sent', async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const leaderInfo: LeaderInfo = { id: 'n1', http: `http://127.0.0.1:${closedPort}`, grpc: null };
  const { url } = await start(t, new FakeKvNode({ id: 'n2', leader: leaderInfo }));
  const answer = await call(url, 'PUT', '/kv/k', { json: { value: 'x' } });
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'no_leader');
  assert.deepEqual(answer.body.leader, leaderInfo);
  assert.ok(answer.headers['retry-after']);
});

test('a leader connection lost after sending makes a write outcome_unknown and a read no_leader', async (t) => {
  // A "leader" that reads the request and hangs up without answering.
  const sockets = new Set<net.Socket>();
  const dropper = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => {
      if (chunk.includes('\r\n\r\n')) socket.destroy();
    });
  });
  await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    dropper.close();
  });
  const { port } = dropper.address() as net.AddressInfo;
  const { url } = await start(t, new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: `http://127.0.0.1:${port}`, grpc: null } }));

  const write = await call(url, 'PUT', '/kv/k', { json: { value: 'x' } });
  assert.equal(write.status, 503);
  assert.equal(write.body.error, 'outcome_unknown');
  const read = await call(url, 'GET', '/kv/k?consistency=leader');
  assert.equal(read.status, 503);
  assert.equal(read.body.error, 'no_leader');
});

test('/metrics counts requests by route pattern, method and status', async (t) => {
  const { url } = await startLeader(t);
  await call(url, 'PUT', '/kv/k', { json: { value: 'x' } });
  await call(url, 'GET', '/kv/missing');
  await call(url, 'GET', '/nope');
  // The onResponse hook records after the response is written; poll with a deadline.
  const deadlineMs = performance.now() + 2_000;
  let text = '';
  for (;;) {
    const answer = await call(url, 'GET', '/metrics');
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^text\/plain/);
    text = String(answer.body);
    if (text.includes('route="(unmatched)"') || performance.now() > deadlineMs) break;
  }
  assert.match(text, /qkv_http_requests_total\{route="\/kv\/\*",method="PUT",status="200"\} 1/);
  assert.match(text, /qkv_http_requests_total\{route="\/kv\/\*",method="GET",status="404"\} 1/);
  assert.match(text, /qkv_http_requests_total\{route="\(unmatched\)",method="GET",status="404"\} 1/);
  assert.match(text, /qkv_http_request_duration_seconds_count\{route="\/kv\/\*",method="PUT"\} 1/);
  assert.doesNotMatch(text, /missing/, 'keys never appear in labels');
});

test('fault rules can be read and changed when fault injection is enabled', async (t) => {
  let rules = { delayMsMin: 0, delayMsMax: 0, dropRate: 0, blockedTo: [] as string[], blockedFrom: [] as string[] };
  const faultsAdmin: FaultsAdmin = {
    setRules(next) {
      const dropRate = next['dropRate'];
      if (dropRate !== undefined && (typeof dropRate !== 'number' || dropRate < 0 || dropRate > 1)) {
        throw new RangeError(`dropRate must be in [0, 1], got ${String(dropRate)}`);
      }
      rules = { ...rules, ...next };
    },
    rules: () => rules,
  };
  const { url } = await startLeader(t, 'n1', { faultsAdmin });

  const initial = await call(url, 'GET', '/admin/faults');
  assert.deepEqual(initial.body, rules);
  const changed = await call(url, 'PUT', '/admin/faults', { json: { dropRate: 0.5, blockedTo: ['n2'] } });
  assert.equal(changed.status, 200);
  assert.equal(changed.body.dropRate, 0.5);
  assert.deepEqual(changed.body.blockedTo, ['n2']);

  const refused = await call(url, 'PUT', '/admin/faults', { json: { dropRate: 2 } });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error, 'bad_request');
  assert.equal(rules.dropRate, 0.5);
  const notObject = await call(url, 'PUT', '/admin/faults', { json: [1] });
  assert.equal(notObject.status, 400);
  const wrongMethod = await call(url, 'DELETE', '/admin/faults');
  assert.equal(wrongMethod.status, 405);
});

test('closing the server lets an in-flight write finish, then refuses connections', async () => {
  const node = new FakeKvNode({ id: 'n1' });
  const server = await startHttpServer({
    node,
    listen: { host: '127.0.0.1', port: 0 },
    limits,
    validate: { key: () => null, value: () => null },
    registry: new Registry(),
    logger: false,
  });
  const release = node.holdWrites();
  const inFlight = call(server.url, 'PUT', '/kv/k', { json: { value: 'x' } });
  const deadlineMs = performance.now() + 2_000;
  while (node.calls.length === 0 && performance.now() < deadlineMs) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(node.calls.length, 1, 'the write reached the node');

  const closing = server.close();
  release();
  const answer = await inFlight;
  assert.equal(answer.status, 200);
  await closing;
  await assert.rejects(call(server.url, 'GET', '/health'), /ECONNREFUSED/);
});

test('the server rejects limits that make no sense before listening', async () => {
  await assert.rejects(
    startHttpServer({
      node: new FakeKvNode({ id: 'n1' }),
      listen: { host: '127.0.0.1', port: 0 },
      limits: { ...limits, listLimitMax: 0 },
      validate: { key: () => null, value: () => null },
      registry: new Registry(),
      logger: false,
    }),
    /listLimitMax/,
  );
});

// --- POST /batch ---

// The operations of one batch are concurrent (no order among them), so none of these
// touches a key another one writes.
test('a batch runs each operation as its own route would and answers each in order', async (t) => {
  const { url, node } = await startLeader(t);
  seed(node, { old: 'o', kept: 'k' });
  const batch = await call(url, 'POST', '/batch', {
    json: {
      ops: [
        { op: 'put', key: 'a/b c', value: 'x', clientId: 'c1', seq: 1 },
        { op: 'put', key: 'kept', value: 'n', ifVersion: 7 },
        { op: 'get', key: 'kept' },
        { op: 'get', key: 'missing', consistency: 'leader' },
        { op: 'delete', key: 'old', ifVersion: 1 },
      ],
    },
  });
  assert.equal(batch.status, 200);
  assert.equal(batch.headers['x-qkv-served-by'], 'n1');
  const [put, conflict, get, missing, del] = batch.body.results;
  assert.deepEqual(put, { status: 200, key: 'a/b c', version: 1 });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.error, 'version_conflict');
  assert.equal(conflict.actualVersion, 2);
  assert.deepEqual(get, { status: 200, key: 'kept', value: 'k', version: 2 });
  assert.equal(missing.status, 404);
  assert.equal(missing.error, 'not_found');
  assert.deepEqual(del, { status: 200, key: 'old', version: 3, deleted: true });
  assert.equal(node.store.get('a/b c')?.value, 'x');
  assert.equal(node.store.has('old'), false);
  assert.deepEqual(node.commands[0]?.requestId, { clientId: 'c1', seq: 1 });

  // The same idempotency pair again is answered from the dedup table, not applied twice.
  const retry = await call(url, 'POST', '/batch', { json: { ops: [{ op: 'put', key: 'a/b c', value: 'x', clientId: 'c1', seq: 1 }] } });
  assert.deepEqual(retry.body.results, [{ status: 200, key: 'a/b c', version: 1 }]);
});

test('a batch body may come as MessagePack: the same operations, the same JSON answers; a malformed one or MessagePack elsewhere is refused and changes nothing', async (t) => {
  const { url, node } = await startLeader(t);
  const packr = new Packr({ useRecords: false });
  const ops = [
    { op: 'put', key: 'a', value: 'x'.repeat(300), clientId: 'c1', seq: 1 },
    { op: 'put', key: 'b', value: 'é€😀' },
    { op: 'get', key: 'a' },
  ];
  const batch = await call(url, 'POST', '/batch', { body: packr.pack({ ops }), headers: { 'content-type': 'application/msgpack' } });
  assert.equal(batch.status, 200);
  assert.deepEqual(batch.body.results, [
    { status: 200, key: 'a', version: 1 },
    { status: 200, key: 'b', version: 2 },
    { status: 200, key: 'a', value: 'x'.repeat(300), version: 1 },
  ]);
  assert.equal(node.store.get('b')?.value, 'é€😀');
  const before = snapshot(node);
  const malformed = await call(url, 'POST', '/batch', { body: Buffer.from([0x82, 0xa3, 0x6f]), headers: { 'content-type': 'application/msgpack' } });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error, 'invalid_json');
  assert.match(malformed.body.message, /MessagePack/);
  const schemaRefused = await call(url, 'POST', '/batch', { body: packr.pack({ ops: [{ op: 'put', key: 'c', value: 7 }] }), headers: { 'content-type': 'application/msgpack' } });
  assert.equal(schemaRefused.status, 400, 'the body schema checks a MessagePack body as it checks JSON');
  const elsewhere = await call(url, 'PUT', '/kv/c', { body: packr.pack({ value: 'v' }), headers: { 'content-type': 'application/msgpack' } });
  assert.equal(elsewhere.status, 400);
  assert.equal(elsewhere.body.error, 'bad_request');
  assert.equal(snapshot(node), before);
});

test('a batch with one bad operation is refused whole, naming it, and changes nothing', async (t) => {
  const { url, node } = await startLeader(t);
  const before = snapshot(node);
  const cases: Array<[unknown, number, string]> = [
    [{ ops: [{ op: 'put', key: 'k', value: 'v' }, { op: 'put', key: 'k2' }] }, 400, 'invalid_value'],
    [{ ops: [{ op: 'put', key: 'k', value: 'v' }, { op: 'get', key: 'x'.repeat(65) }] }, 413, 'key_too_large'],
    [{ ops: [{ op: 'put', key: 'k', value: 'v'.repeat(1025) }] }, 413, 'value_too_large'],
    [{ ops: [{ op: 'put', key: 'k', value: 'v', ifversion: 1 }] }, 400, 'bad_request'],
    [{ ops: [{ op: 'put', key: 'k', value: 'v', clientId: 'c' }] }, 400, 'bad_request'],
    [{ ops: [{ op: 'get', key: 'k', consistency: 'eventual' }] }, 400, 'bad_request'],
    [{ ops: [{ op: 'merge', key: 'k' }] }, 400, 'bad_request'],
    [{ ops: [] }, 400, 'bad_request'],
    [{ ops: {} }, 400, 'bad_request'],
    [{ ops: [], extra: 1 }, 400, 'bad_request'],
    [{ ops: Array.from({ length: 1001 }, () => ({ op: 'get', key: 'k' })) }, 400, 'bad_request'],
  ];
  for (const [body, status, code] of cases) {
    const answer = await call(url, 'POST', '/batch', { json: body });
    if (answer.status === 413 && answer.body.error === 'body_too_large') continue; // the 1,001 ops are over this test's body limit: refused either way
    assert.equal(answer.status, status, JSON.stringify(body).slice(0, 80));
    assert.equal(answer.body.error, code, JSON.stringify(body).slice(0, 80));
  }
  const named = await call(url, 'POST', '/batch', { json: { ops: [{ op: 'get', key: 'a' }, { op: 'get', key: 'b' }, { op: 'put', key: 'c' }] } });
  assert.equal(named.body.index, 2);
  assert.match(named.body.message, /^Operation 2: .*nothing in the batch was run/);
  const notJson = await call(url, 'POST', '/batch', { body: '{"ops": [', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.body.error, 'invalid_json');
  const get = await call(url, 'GET', '/batch');
  assert.equal(get.status, 405);
  assert.equal(get.headers['allow'], 'POST');
  assert.equal(snapshot(node), before);
  assert.deepEqual(node.commands, []);
});

test('each operation of a batch fails on its own: a refusal of one is its item, with retryAfterMs on a 503', async (t) => {
  const { url, node } = await startLeader(t);
  node.failNext(new QkvError('quorum_timeout', 'not enough acks', { acks: 1, required: 2 }, 250));
  const batch = await call(url, 'POST', '/batch', { json: { ops: [{ op: 'put', key: 'a', value: '1' }, { op: 'put', key: 'b', value: '2' }] } });
  assert.equal(batch.status, 200);
  const [failed, ok] = batch.body.results;
  assert.equal(failed.status, 503);
  assert.equal(failed.error, 'quorum_timeout');
  assert.equal(failed.acks, 1);
  assert.equal(failed.retryAfterMs, 250);
  assert.deepEqual(ok, { status: 200, key: 'b', version: 1 });
});

test('a batch on a follower forwards its writes to the leader one by one and serves its linearizable reads itself', async (t) => {
  const leader = await startLeader(t, 'n1');
  seed(leader.node, { r: 'v' });
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.url, grpc: null } });
  seed(followerNode, { r: 'v' });
  const follower = await start(t, followerNode);
  const batch = await call(follower.url, 'POST', '/batch', {
    json: { ops: [{ op: 'put', key: 'a/b', value: 'x', ifVersion: 0, clientId: 'c1', seq: 3 }, { op: 'get', key: 'r' }, { op: 'delete', key: 'r', ifVersion: 1 }] },
  });
  assert.equal(batch.status, 200);
  const [put, read, del] = batch.body.results;
  assert.deepEqual(put, { status: 200, key: 'a/b', version: 1, servedBy: 'n1' });
  assert.deepEqual(read, { status: 200, key: 'r', value: 'v', version: 1 });
  assert.deepEqual(del, { status: 200, key: 'r', version: 2, deleted: true, servedBy: 'n1' });
  assert.deepEqual(leader.node.commands, [
    { op: 'put', key: 'a/b', value: 'x', ifVersion: 0, requestId: { clientId: 'c1', seq: 3 } },
    { op: 'delete', key: 'r', ifVersion: 1 },
  ]);
  assert.equal(followerNode.store.get('a/b'), undefined, 'nothing was written on the follower');
});
