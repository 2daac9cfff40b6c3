/**
 * The per-client limits of both APIs on real servers on loopback, in front of a fake node
 * whose writes hang until released: a client address at its requests in flight is refused
 * 429 / RESOURCE_EXHAUSTED too_many_requests (before anything reaches the node), another
 * address is not, the budget frees as answers leave, HTTP pipelining gets no more than
 * separate connections, and streams are not counted. A second client address on one
 * machine: 127.0.0.2 (Linux routes all of 127/8 to loopback).
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { kvValidator } from '../kv/limits.js';
import { FakeKvNode } from './fake-node.js';
import { PerClientLimit } from './client-limits.js';
import { peerAddress } from './grpc.js';
import { startTestLeader, testKvLimits } from './testing/http-server.js';
import { RawClient, startGrpc } from './testing/grpc-client.js';

const validate = kvValidator(testKvLimits);

interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly body: Record<string, unknown>;
}

/** One request on its own connection from `localAddress` (`headersOnly`: resolves at the response's head, then hangs up). */
function ask(url: string, method: string, path: string, body: string | null, localAddress = '127.0.0.1', headersOnly = false): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port: Number(port), method, path, localAddress, agent: false, timeout: 5_000, headers: body === null ? {} : { 'content-type': 'application/json' } }, (res) => {
      if (headersOnly) {
        resolve({ status: res.statusCode ?? 0, retryAfter: undefined, body: {} });
        req.destroy();
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} had no answer in 5 s`)));
    req.end(body ?? undefined);
  });
}

async function until(what: string, ready: () => boolean): Promise<void> {
  const deadlineMs = performance.now() + 2_000;
  while (!ready()) {
    if (performance.now() > deadlineMs) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('PerClientLimit counts per address, refuses past max, and a release frees exactly one place', () => {
  const limit = new PerClientLimit(2, '--test-max');
  const a1 = limit.take('a');
  const a2 = limit.take('a');
  assert.ok(a1 !== null && a2 !== null);
  assert.equal(limit.take('a'), null, 'the third from one address is refused');
  assert.notEqual(limit.take('b'), null, 'another address has its own budget');
  a1();
  a1();
  assert.equal(limit.holding('a'), 1, 'a second release of the same take frees nothing more');
  assert.notEqual(limit.take('a'), null);
  const refusal = limit.refusal('requests in flight', 'back off');
  assert.equal(refusal.status, 429);
  assert.match(refusal.message, /2 requests in flight \(--test-max\)/);
  assert.throws(() => new PerClientLimit(0, '--test-max'), /--test-max must be a positive safe integer, got 0/);
});

test('HTTP: the request beyond --requests-per-client-max from one address is 429 with Retry-After; other addresses and streams are not refused; the budget frees', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate, requestsPerClientMax: 3 });
  const release = server.node.holdWrites();
  const held = [1, 2, 3].map((i) => ask(server.url, 'PUT', `/kv/k${i}`, JSON.stringify({ value: 'v' })));
  await until('3 writes reached the node', () => server.node.calls.length === 3);

  const refused = await ask(server.url, 'PUT', '/kv/k4', JSON.stringify({ value: 'v' }));
  assert.equal(refused.status, 429);
  assert.equal(refused.retryAfter, '1');
  assert.equal(refused.body['error'], 'too_many_requests');
  assert.match(String(refused.body['message']), /3 requests in flight \(--requests-per-client-max\)/);
  assert.equal((await ask(server.url, 'GET', '/health', null)).status, 429, 'reads count as well');
  assert.equal(server.node.calls.length, 3, 'the refused write never reached the node');

  assert.equal((await ask(server.url, 'GET', '/health', null, '127.0.0.2')).status, 200, 'another client address is served');
  const events = await ask(server.url, 'GET', '/ui/events', null, '127.0.0.1', true);
  assert.equal(events.status, 200, 'a stream (the dashboard\'s events) is not counted and opens');

  release();
  assert.deepEqual((await Promise.all(held)).map((a) => a.status), [200, 200, 200]);
  assert.equal((await ask(server.url, 'PUT', '/kv/k5', JSON.stringify({ value: 'v' }))).status, 200, 'answered requests free their places');
});

test('HTTP: pipelined requests on one connection share the same budget: the 4th of 4 is 429, after the 3 held ones', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate, requestsPerClientMax: 3 });
  const release = server.node.holdWrites();
  const { port } = new URL(server.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  t.after(() => socket.destroy());
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  const put = (key: string): string => {
    const body = JSON.stringify({ value: 'v' });
    return `PUT /kv/${key} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  };
  socket.write(['p1', 'p2', 'p3', 'p4'].map(put).join(''));
  await until('3 pipelined writes reached the node', () => server.node.calls.length === 3);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(server.node.calls.length, 3, 'the 4th never reaches the node');
  release();
  await until('4 answers arrived', () => (text.match(/HTTP\/1\.1 \d+/g) ?? []).length === 4);
  assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 429']);
  assert.match(text, /"error":"too_many_requests"/);
});

test('gRPC: peerAddress takes the address out of grpc-js peer text, IPv6 included', () => {
  assert.equal(peerAddress('127.0.0.1:5000'), '127.0.0.1');
  assert.equal(peerAddress('::1:5000'), '::1');
  assert.equal(peerAddress('::ffff:10.0.0.1:443'), '::ffff:10.0.0.1');
  assert.equal(peerAddress('unknown'), 'unknown');
});

/**
 * A gRPC server on 127.0.0.1, a client of it, and a client whose connections come from
 * 127.0.0.2: grpc-js cannot choose its source address, so it goes through a TCP relay here
 * that connects from 127.0.0.2.
 */
async function grpcOnTwoAddresses(t: TestContext, node: FakeKvNode, options: { requestsPerClientMax?: number; streamsPerConnectionMax?: number }) {
  const v1 = await startGrpc(t, node, validate, options);
  const port = Number(/:(\d+)$/.exec(v1.client.getChannel().getTarget())?.[1]);
  const relay = net.createServer((inbound) => {
    const outbound = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const v2 = new RawClient(`127.0.0.1:${(relay.address() as net.AddressInfo).port}`);
  t.after(async () => {
    v2.client.close();
    relay.close();
  });
  return { v1, v2 };
}

test('gRPC: the call beyond --requests-per-client-max from one address is RESOURCE_EXHAUSTED too_many_requests; another address is served; the budget frees', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const { v1, v2 } = await grpcOnTwoAddresses(t, node, { requestsPerClientMax: 2 });
  const release = node.holdWrites();
  const held = [v1.call('Put', { key: 'a', value: '1' }), v1.call('Put', { key: 'b', value: '2' })];
  await until('2 writes reached the node', () => node.calls.length === 2);

  const refused = await v1.fails('Put', { key: 'c', value: '3' });
  assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(refused.wire, 'too_many_requests');
  assert.match(refused.details, /2 calls in flight \(--requests-per-client-max\)/);
  assert.equal(node.calls.length, 2, 'the refused call never reached the node');
  const status = await v1.fails('Status', {});
  assert.equal(status.wire, 'too_many_requests', 'every unary call counts');

  assert.equal((await v2.call('Status', {}))['id'], 'n1', 'another client address is served');
  release();
  await Promise.all(held);
  assert.equal((await v1.call('Put', { key: 'd', value: '4' }))['key'], 'd', 'answered calls free their places');
});

test('gRPC: calls beyond --grpc-streams-per-connection-max on one connection wait in the client, then all complete', async (t) => {
  const node = new FakeKvNode({ id: 'n1' });
  const { v1 } = await grpcOnTwoAddresses(t, node, { streamsPerConnectionMax: 1 });
  await v1.call('Status', {}); // the connection and its settings are in place
  const release = node.holdWrites();
  const both = [v1.call('Put', { key: 'a', value: '1' }), v1.call('Put', { key: 'b', value: '2' })];
  await until('a write reached the node', () => node.calls.length === 1);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(node.calls.length, 1, 'the second call waits for a stream');
  release();
  assert.deepEqual((await Promise.all(both)).map((r) => r['key']).sort(), ['a', 'b']);
});
