/**
 * forward-batch.ts: the writes a follower forwards in one turn leave as one POST /batch and
 * each gets its own answer; a lone write goes as itself; a refusal of the batch is each
 * write's; the limits split batches; an answer from inside a batch keeps its fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BatchOpBody, BatchResultItem, LeaderInfo } from '../wire/types.js';
import { ForwardBatcher } from './forward-batch.js';
import type { PeerBatchSink } from './forward-batch.js';
import { forwardedItem } from './http-answers.js';
import type { ForwardedResponse, ForwardSpec } from './forward.js';

const leader: LeaderInfo = { id: 'n1', http: 'http://127.0.0.1:1', grpc: null };

function spec(url: string, token: string | null = null): ForwardSpec {
  return { method: 'PUT', url, body: null, requestId: null, isWrite: true, servedByFollower: false, forwardedIn: false, deadlineMs: performance.now() + 1_000, token };
}

function answer(statusCode: number, body: unknown): ForwardedResponse {
  return { statusCode, contentType: 'application/json', retryAfter: null, body: Buffer.from(JSON.stringify(body)), leaderId: 'n1', servedBy: 'n1' };
}

const put = (key: string): BatchOpBody => ({ op: 'put', key, value: 'v', clientId: 'c', seq: 1 });

test('writes of one turn leave as one /batch; each gets its own answer, in order', async () => {
  const sent: ForwardSpec[] = [];
  const batcher = new ForwardBatcher(async (_leader, s) => {
    sent.push(s);
    const ops = (JSON.parse(String(s.body)) as { ops: BatchOpBody[] }).ops;
    return answer(200, { results: ops.map((op, i) => (i === 1 ? { status: 409, error: 'version_conflict', key: op.key, retryAfterMs: undefined } : { status: 200, key: op.key, version: 10 + i, servedBy: 'n1' })) });
  });
  const answers = await Promise.all(['a', 'b', 'c'].map((k) => batcher.forward(leader, spec(`/kv/${k}`), put(k))));
  assert.equal(sent.length, 1);
  assert.equal(sent[0]?.url, '/batch');
  assert.deepEqual(answers.map((a) => a.statusCode), [200, 409, 200]);
  assert.deepEqual(JSON.parse(answers[2]?.body.toString() ?? ''), { key: 'c', version: 12 });
  assert.equal(JSON.parse(answers[1]?.body.toString() ?? '').error, 'version_conflict');
});

test('a lone write is forwarded as itself; writes with other credentials go in their own batch', async () => {
  const sent: ForwardSpec[] = [];
  const batcher = new ForwardBatcher(async (_leader, s) => {
    sent.push(s);
    if (s.url !== '/batch') return answer(200, { key: 'x', version: 1 });
    const ops = (JSON.parse(String(s.body)) as { ops: BatchOpBody[] }).ops;
    return answer(200, { results: ops.map((op) => ({ status: 200, key: op.key, version: 1 })) });
  });
  await batcher.forward(leader, spec('/kv/x'), put('x'));
  assert.deepEqual(sent.map((s) => s.url), ['/kv/x']);
  sent.length = 0;
  await Promise.all([batcher.forward(leader, spec('/kv/a', 't1'), put('a')), batcher.forward(leader, spec('/kv/b', 't1'), put('b')), batcher.forward(leader, spec('/kv/c', 't2'), put('c'))]);
  assert.deepEqual(sent.map((s) => [s.url, s.token]).sort(), [['/batch', 't1'], ['/kv/c', 't2']]);
});

test('a refusal of the whole batch is the answer of every write; a failure rejects every write', async () => {
  const refusing = new ForwardBatcher(async () => answer(401, { error: 'unauthenticated', message: 'no' }));
  const refused = await Promise.all(['a', 'b'].map((k) => refusing.forward(leader, spec(`/kv/${k}`), put(k))));
  assert.deepEqual(refused.map((r) => r.statusCode), [401, 401]);
  const failing = new ForwardBatcher(async () => {
    throw new Error('connection reset');
  });
  const results = await Promise.allSettled(['a', 'b'].map((k) => failing.forward(leader, spec(`/kv/${k}`), put(k))));
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
});

test('opsMax splits a turn into several batches', async () => {
  const sizes: number[] = [];
  const batcher = new ForwardBatcher(async (_leader, s) => {
    const ops = (JSON.parse(String(s.body)) as { ops: BatchOpBody[] }).ops;
    sizes.push(ops.length);
    return answer(200, { results: ops.map((op) => ({ status: 200, key: op.key, version: 1 })) });
  }, { opsMax: 4, bytesMax: 1_000_000 });
  await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.forward(leader, spec(`/kv/k${i}`), put(`k${i}`))));
  assert.deepEqual(sizes.sort(), [2, 4, 4]);
});

test("a batched answer's fields give a follower's POST /batch the same item, byte for byte, as parsing its body", async () => {
  const results: BatchResultItem[] = [
    { status: 200, key: 'a', value: 'AAEC', encoding: 'base64', version: 7 },
    { status: 409, error: 'version_conflict', message: 'no', key: 'b', expectedVersion: 1, actualVersion: 2, lease: undefined },
    { status: 503, error: 'not_leader', message: 'moved', leader: { id: 'n3', http: null, grpc: null }, retryAfterMs: 1_500 },
    { status: 429, error: 'busy', message: 'later', retryAfterMs: 200, servedBy: 'n4' },
  ];
  const peer: PeerBatchSink = { reaches: () => true, send: async () => results };
  const batcher = new ForwardBatcher(async () => assert.fail('the peer link is up'), undefined, peer);
  const answers = await Promise.all(results.map((_, i) => batcher.forward(leader, spec(`/kv/k${i}`), put(`k${i}`))));
  for (const answer of answers) {
    assert.notEqual(answer.fields, undefined);
    const parsed: ForwardedResponse = { statusCode: answer.statusCode, contentType: answer.contentType, retryAfter: answer.retryAfter, body: answer.body, leaderId: answer.leaderId, servedBy: answer.servedBy };
    assert.equal(JSON.stringify(forwardedItem(answer)), JSON.stringify(forwardedItem(parsed)));
  }
  assert.deepEqual(JSON.parse(answers[2]?.body.toString() ?? ''), { error: 'not_leader', message: 'moved', leader: { id: 'n3', http: null, grpc: null } });
  assert.equal(answers[2]?.retryAfter, '2');
  assert.equal(answers[3]?.servedBy, 'n4');
});
