import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Pool } from 'undici';
import { plainRequest, refusalOf } from './plain-target.js';

/** A server on a free loopback port that answers every request with `answer`; closed after the test. */
async function serve(t: { after(fn: () => unknown): void }, answer: Parameters<typeof createServer>[1]): Promise<Pool> {
  const server = createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 2, pipelining: 1 });
  t.after(async () => {
    await pool.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return pool;
}

test('plainRequest sends the method, path and JSON body, and returns the status with the whole answer', async (t) => {
  const seen: string[] = [];
  const pool = await serve(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? '-'} ${body}`);
      // An answer written in several chunks is read whole.
      res.writeHead(req.method === 'GET' ? 404 : 200, { 'content-type': 'application/json' });
      res.write('{"value":"');
      res.write('x'.repeat(70_000));
      res.end('"}');
    });
  });
  const put = await plainRequest(pool, 'PUT', '/kv/a', '{"value":"v"}');
  assert.equal(put.statusCode, 200);
  assert.equal((JSON.parse(put.text) as { value: string }).value.length, 70_000);
  const get = await plainRequest(pool, 'GET', '/kv/b', null);
  assert.equal(get.statusCode, 404);
  assert.deepEqual(seen, ['PUT /kv/a application/json {"value":"v"}', 'GET /kv/b - ']);
});

test('plainRequest rejects when the connection breaks before the answer', async (t) => {
  const pool = await serve(t, (req) => req.socket.destroy());
  await assert.rejects(plainRequest(pool, 'GET', '/kv/a', null), /other side closed|socket|ECONNRESET/i);
});

test('a refusal is counted under the code its JSON names, or under its status when it names none', () => {
  const quorumkvCode = (json: Record<string, unknown>): unknown => json['error'];
  assert.equal(refusalOf('PUT /kv/a', { statusCode: 503, text: '{"error":"no_leader","message":"…"}' }, quorumkvCode).code, 'no_leader');
  assert.equal(refusalOf('PUT /kv/a', { statusCode: 502, text: '<html>bad gateway</html>' }, quorumkvCode).code, 'http_502');
  assert.equal(refusalOf('PUT /kv/a', { statusCode: 500, text: 'null' }, quorumkvCode).code, 'http_500');
  const etcdCode = (json: Record<string, unknown>): unknown => json['message'] ?? json['error'];
  const refused = refusalOf('POST /v3/kv/put', { statusCode: 400, text: '{"error":"x","message":"etcdserver: too many requests"}' }, etcdCode);
  assert.equal(refused.code, 'etcdserver: too many requests');
  assert.match(refused.message, /^POST \/v3\/kv\/put: 400 /);
});
