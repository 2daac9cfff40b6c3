import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { unpack } from 'msgpackr';
import { defaultBatchLimits } from './batcher.js';
import { HttpTransport } from './http-transport.js';

/** The body a POST /batch carried, decoded by its Content-Type. */
async function batchBody(request: IncomingMessage): Promise<{ type: string; ops: readonly { key: string }[] }> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const type = String(request.headers['content-type']);
  const parsed = (type === 'application/msgpack' ? unpack(body) : JSON.parse(body.toString('utf8'))) as { ops?: { key: string }[] };
  return { type, ops: parsed.ops ?? [] };
}

test('long values go out as MessagePack batches, short ones in JSON batches; a server that refuses that Content-Type gets JSON from then on, and every write is answered once', async (t) => {
  const seen: string[] = [];
  const refuseMsgpack = { value: false };
  const server = createServer((request, response) => {
    void batchBody(request).then(({ type, ops }) => {
      seen.push(type);
      response.setHeader('content-type', 'application/json');
      if (request.method === 'PUT') {
        response.end(JSON.stringify({ key: decodeURIComponent(String(request.url).slice('/kv/'.length)), version: 1 }));
        return;
      }
      if (type === 'application/msgpack' && refuseMsgpack.value) {
        response.statusCode = 400;
        response.end(JSON.stringify({ error: 'bad_request', message: "Content-Type 'application/msgpack' is not supported: send application/json" }));
        return;
      }
      response.end(JSON.stringify({ results: ops.map((op) => ({ status: 200, key: op.key, version: 1 })) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const transport = new HttpTransport({ connectionsPerEndpoint: 2, batching: defaultBatchLimits, token: null, tls: null });
  t.after(() => transport.close());
  const put = (key: string, seq: number): Promise<unknown> => transport.put(endpoint, { key, value: 'v'.repeat(40_000), ifVersion: undefined, requestId: { clientId: 'c', seq } }, 5_000);

  assert.deepEqual(await put('a', 1), { key: 'a', version: 1 });
  assert.deepEqual(seen, ['application/msgpack'], 'a server that takes MessagePack gets MessagePack');
  assert.deepEqual(await transport.put(endpoint, { key: 's', value: 'short', ifVersion: undefined, requestId: { clientId: 'c', seq: 2 } }, 5_000), { key: 's', version: 1 });
  assert.deepEqual(seen, ['application/msgpack', 'application/json'], 'short values go as JSON');

  const other = new HttpTransport({ connectionsPerEndpoint: 2, batching: defaultBatchLimits, token: null, tls: null });
  t.after(() => other.close());
  refuseMsgpack.value = true;
  seen.length = 0;
  const putOther = (key: string, seq: number): Promise<unknown> => other.put(endpoint, { key, value: 'w'.repeat(40_000), ifVersion: undefined, requestId: { clientId: 'd', seq } }, 5_000);
  assert.deepEqual(await putOther('b', 1), { key: 'b', version: 1 });
  assert.deepEqual(await putOther('c', 2), { key: 'c', version: 1 });
  assert.deepEqual(seen, ['application/msgpack', 'application/json', 'application/json'], 'refused once, then JSON without asking again (the second long value as a plain PUT)');
});
