/**
 * The fast path (kv-fast-path.ts) against fastify's routes: which requests it takes, and that
 * what it answers is what the route answers. Two servers over two fresh fake nodes get the
 * same requests, one as sent, the other with an `x-qkv-timeout-ms` header equal to the
 * server's own deadline, which means the same but makes the fast path decline it; every
 * answer must agree in status, body and headers.
 */

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { kvValidator } from '../kv/limits.js';
import { plainKvRequest } from './kv-fast-path.js';
import { startTestLeader, testHttpLimits, testKvLimits } from './testing/http-server.js';

const validate = kvValidator(testKvLimits);
const shapeLimits = { bodyBytesMax: testHttpLimits.bodyBytesMax, keyCharsMax: testHttpLimits.headerBytesMax };

test('the fast path takes only plain GET and PUT /kv/{key}; everything else is left to the routes', () => {
  const json = { 'content-type': 'application/json', 'content-length': '15' };
  assert.deepEqual(plainKvRequest('PUT', '/kv/a%2Fb', json, shapeLimits), { method: 'PUT', url: '/kv/a%2Fb', rawKey: 'a/b', query: null, bodyBytes: 15 });
  assert.deepEqual(plainKvRequest('GET', '/kv/k', {}, shapeLimits), { method: 'GET', url: '/kv/k', rawKey: 'k', query: null, bodyBytes: 0 });
  assert.deepEqual(plainKvRequest('GET', '/kv/k%3F?consistency=local', {}, shapeLimits), { method: 'GET', url: '/kv/k%3F?consistency=local', rawKey: 'k?', query: 'consistency=local', bodyBytes: 0 }, 'a GET\'s query is the caller\'s to check');
  assert.equal(plainKvRequest('PUT', '/kv/a', { 'content-length': '15' }, shapeLimits)?.rawKey, 'a', 'a body without a type is JSON');
  assert.equal(plainKvRequest('PUT', '/kv/a', { ...json, 'content-type': 'application/json; charset=utf-8' }, shapeLimits)?.rawKey, 'a');
  const declined: [string, string, Record<string, string>][] = [
    ['DELETE', '/kv/a', {}],
    ['POST', '/kv/a', json],
    ['GET', '/kv', {}],
    ['GET', '/kvx/a', {}],
    ['PUT', '/kv/a?', json],
    ['GET', '/kv/a#b', {}],
    ['GET', '/kv/a%ZZ', {}],
    ['GET', '/kv/a', { 'x-qkv-timeout-ms': '100' }],
    ['GET', '/kv/a', { 'content-length': '3' }],
    ['PUT', '/kv/a', { ...json, 'x-qkv-client-id': 'c', 'x-qkv-seq': '1' }],
    ['PUT', '/kv/a', { 'content-type': 'text/plain', 'content-length': '15' }],
    ['PUT', '/kv/a', { 'content-type': 'application/json' }],
    ['PUT', '/kv/a', { ...json, 'content-length': '0' }],
    ['PUT', '/kv/a', { ...json, 'content-length': String(testHttpLimits.bodyBytesMax + 1) }],
    ['PUT', '/kv/a', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }],
    ['GET', `/kv/${'k'.repeat(testHttpLimits.headerBytesMax + 1)}`, {}],
  ];
  for (const [method, url, headers] of declined) assert.equal(plainKvRequest(method, url, headers, shapeLimits), null, `${method} ${url} ${JSON.stringify(headers)}`);
});

interface Seen {
  readonly status: number;
  readonly body: string;
  readonly type: unknown;
  readonly servedBy: unknown;
  readonly retryAfter: unknown;
}

async function ask(base: string, method: 'GET' | 'PUT', path: string, body: string | Buffer | undefined, headers: Record<string, string>): Promise<Seen> {
  const response = await request(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  return {
    status: response.statusCode,
    body: await response.body.text(),
    type: response.headers['content-type'],
    servedBy: response.headers['x-qkv-served-by'],
    retryAfter: response.headers['retry-after'],
  };
}

async function twoServers(t: TestContext): Promise<{ fast: string; routes: string }> {
  const fast = await startTestLeader(t, 'n1', { validate });
  const routes = await startTestLeader(t, 'n1', { validate });
  return { fast: fast.url, routes: routes.url };
}

/** Declined by the fast path, and meaning nothing more than the server's own deadline. */
const routesOnly = { 'x-qkv-timeout-ms': String(testHttpLimits.requestTimeoutMs) };

test('every answer of the fast path is the route\'s answer: writes, conflicts, refusals, reads', async (t) => {
  const { fast, routes } = await twoServers(t);
  const json = { 'content-type': 'application/json' };
  const longKey = 'k'.repeat(testKvLimits.keyBytesMax + 1);
  const cases: ['GET' | 'PUT', string, string | Buffer | undefined, Record<string, string>][] = [
    ['PUT', '/kv/a', '{"value":"x"}', json],
    ['PUT', '/kv/a', '{"value":"y","ifVersion":1}', json],
    ['PUT', '/kv/a', '{"value":"z","ifVersion":1}', json],
    ['PUT', '/kv/b', '{"value":"aGk=","encoding":"base64"}', {}],
    ['PUT', '/kv/a%2Fb', '{"value":"slash"}', json],
    ['PUT', '/kv/%E2%82%AC', '{"value":"\\u20ac \\"quoted\\" \\n"}', json],
    ['PUT', '/kv/c', '{"value":"t","ttlMs":5000}', json],
    ['PUT', '/kv/a', '{"value":5}', json],
    ['PUT', '/kv/a', '{"valu":"x"}', json],
    ['PUT', '/kv/a', '{}', json],
    ['PUT', '/kv/a', '[1]', json],
    ['PUT', '/kv/a', 'null', json],
    ['PUT', '/kv/a', '{"value":', json],
    ['PUT', '/kv/a', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), json],
    ['PUT', '/kv/a', '{"value":"x","encoding":"base64"}', json],
    ['PUT', '/kv/a', '{"value":"x","lease":1,"ttlMs":5}', json],
    ['PUT', '/kv/a', '{"value":"x","lease":99}', json],
    ['PUT', '/kv/a', '{"value":"x","ifVersion":-1}', json],
    ['PUT', '/kv/a', `{"value":"${'v'.repeat(testKvLimits.valueBytesMax + 1)}"}`, json],
    ['PUT', '/kv/', '{"value":"x"}', json],
    ['PUT', `/kv/${longKey}`, '{"value":"x"}', json],
    ['GET', '/kv/a', undefined, {}],
    ['GET', '/kv/b', undefined, {}],
    ['GET', '/kv/a%2Fb', undefined, {}],
    ['GET', '/kv/%E2%82%AC', undefined, {}],
    ['GET', '/kv/missing', undefined, {}],
    ['GET', '/kv/', undefined, {}],
    ['GET', `/kv/${longKey}`, undefined, {}],
    ['GET', '/kv/a?consistency=local', undefined, {}],
    ['GET', '/kv/a?consistency=leader', undefined, {}],
    ['GET', '/kv/a?consistency=linearizable', undefined, {}],
    ['GET', '/kv/a?minVersion=2', undefined, {}],
    ['GET', '/kv/missing?consistency=local', undefined, {}],
    ['GET', '/kv/a?', undefined, {}],
    ['GET', '/kv/a?consistency=sometimes', undefined, {}],
    ['GET', '/kv/a?minVersion=-1', undefined, {}],
    ['GET', '/kv/a?consistency=local&consistency=local', undefined, {}],
    ['GET', '/kv/a?unknown=1', undefined, {}],
    ['GET', '/kv/a?consistency=%ZZ', undefined, {}],
    ['PUT', '/kv/a?', '{"value":"q"}', json],
  ];
  for (const [method, path, body, headers] of cases) {
    const plain = await ask(fast, method, path, body, headers);
    const viaRoutes = await ask(routes, method, path, body, { ...headers, ...routesOnly });
    assert.deepEqual(plain, viaRoutes, `${method} ${path} ${String(body)}`);
  }
});

test('the fast path answers no_leader and forwards like the routes when this node does not lead', async (t) => {
  const fast = await startTestLeader(t, 'n1', { validate });
  const routes = await startTestLeader(t, 'n1', { validate });
  fast.node.setLeader(null);
  routes.node.setLeader(null);
  const put = (base: string, headers: Record<string, string>) => ask(base, 'PUT', '/kv/a', '{"value":"x"}', { 'content-type': 'application/json', ...headers });
  const plain = await put(fast.url, {});
  assert.equal(plain.status, 503);
  assert.equal(plain.retryAfter, '1');
  assert.deepEqual(plain, await put(routes.url, routesOnly));
});
