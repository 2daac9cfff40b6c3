/**
 * Forwarding from a follower to the leader over the peer transport, on real node processes:
 * writes sent to a follower over plain HTTP and over gRPC are applied by the leader (every
 * one reads back from it), a retried write with the same clientId/seq is applied once and
 * gets the first answer, a `leader` read at a follower is served by the leader, and none of
 * it went to the leader as an HTTP request.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { http, TestCluster } from './harness.js';
import type { TestNode } from './harness.js';

let cluster: TestCluster;
let leader: TestNode;
let follower: TestNode;

before(async () => {
  cluster = await TestCluster.start({ nodes: 3 });
  const leaderId = await cluster.waitForLeader();
  leader = cluster.node(leaderId);
  const other = cluster.nodes.find((n) => n.id !== leaderId);
  assert.ok(other !== undefined);
  follower = other;
  // The follower forwards over the peer link once the leader's handshake told it the leader serves forwards.
  await waitForPeerLink(follower, leaderId);
});

after(async () => {
  await cluster.destroy();
});

async function waitForPeerLink(node: TestNode, leaderId: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = (await http(`${node.http}/status`)).body as { leader: { id: string } | null; peers: { id: string; reachable?: boolean }[] };
    if (status.leader?.id === leaderId && status.peers.some((p) => p.id === leaderId && p.reachable !== false)) return;
    if (Date.now() > deadline) throw new Error(`${node.id} has no link to ${leaderId}: ${JSON.stringify(status)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const definition = protoLoader.loadSync(fileURLToPath(new URL('../../proto/quorumkv.proto', import.meta.url)), { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
const putMethod = (definition['quorumkv.v1.KV'] as protoLoader.ServiceDefinition)['Put'] as protoLoader.MethodDefinition<object, { version: string }>;

/** One gRPC Put to exactly this node (no client library: it would find the leader itself). */
function grpcPut(client: grpc.Client, key: string, value: string, clientId: string, seq: number): Promise<number> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(putMethod.path, putMethod.requestSerialize, putMethod.responseDeserialize, { key, value, clientId, seq }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error, response) => {
      if (error !== null || response === undefined) reject(error ?? new Error('no response'));
      else resolve(Number(response.version));
    });
  });
}

async function readFromLeader(key: string): Promise<{ value: unknown; version: unknown }> {
  const res = await http(`${leader.http}/kv/${encodeURIComponent(key)}?consistency=leader`);
  assert.equal(res.status, 200, `${key}: ${JSON.stringify(res.body)}`);
  return { value: res.body['value'], version: res.body['version'] };
}

/** The leader's count of POST /batch requests it answered (forwarded batches used to be these). */
async function batchRequestsAtLeader(): Promise<number> {
  const text = (await http(`${leader.http}/metrics`)).body['raw'];
  let count = 0;
  for (const line of String(text).split('\n')) {
    if (line.startsWith('qkv_http_requests_total{') && line.includes('route="/batch"')) count += Number(line.split(' ').pop());
  }
  return count;
}

test('writes sent to a follower over HTTP and gRPC are applied by the leader once each, over the peer link', { timeout: 60_000 }, async () => {
  const batchesBefore = await batchRequestsAtLeader();
  const httpKeys = Array.from({ length: 64 }, (_, i) => `fwd/http/${i}`);
  const viaHttp = await Promise.all(httpKeys.map((key, i) => http(`${follower.http}/kv/${encodeURIComponent(key)}`, 'PUT', { value: `h${i}` }, { 'x-qkv-client-id': `fwd-http-${i}`, 'x-qkv-seq': '1' })));
  for (const [i, res] of viaHttp.entries()) {
    assert.equal(res.status, 200, `${httpKeys[i]}: ${JSON.stringify(res.body)}`);
    assert.equal(res.headers['x-qkv-served-by'], leader.id);
  }

  const client = new grpc.Client(follower.grpc, grpc.credentials.createInsecure());
  let viaGrpc: number[];
  let retriedGrpc: number;
  try {
    viaGrpc = await Promise.all(Array.from({ length: 32 }, (_, i) => grpcPut(client, `fwd/grpc/${i}`, `g${i}`, `fwd-grpc-${i}`, 1)));
    // A retry (same client id and seq, value changed): answered with the first version, not applied again.
    retriedGrpc = await grpcPut(client, 'fwd/grpc/31', 'changed', 'fwd-grpc-31', 1);
  } finally {
    client.close();
  }
  assert.equal(retriedGrpc, viaGrpc[31]);
  const retriedHttp = await http(`${follower.http}/kv/${encodeURIComponent('fwd/http/63')}`, 'PUT', { value: 'changed' }, { 'x-qkv-client-id': 'fwd-http-63', 'x-qkv-seq': '1' });
  assert.equal(retriedHttp.status, 200);
  assert.equal(retriedHttp.body['version'], viaHttp[63]?.body['version']);

  for (const [i, key] of httpKeys.entries()) assert.deepEqual(await readFromLeader(key), { value: `h${i}`, version: viaHttp[i]?.body['version'] });
  for (const [i, version] of viaGrpc.entries()) assert.deepEqual(await readFromLeader(`fwd/grpc/${i}`), { value: `g${i}`, version });

  // A `leader` read at the follower goes the same way and is served by the leader.
  const read = await http(`${follower.http}/kv/${encodeURIComponent('fwd/http/3')}?consistency=leader`);
  assert.equal(read.status, 200);
  assert.equal(read.headers['x-qkv-served-by'], leader.id);
  assert.equal(read.body['value'], 'h3');

  assert.equal(await batchRequestsAtLeader(), batchesBefore, 'nothing reached the leader as an HTTP /batch request');
});
