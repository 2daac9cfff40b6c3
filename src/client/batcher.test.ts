import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from './batcher.js';
import type { BatchLimits, SendBatch } from './batcher.js';
import { AttemptError, ProtocolError } from './transport.js';
import type { BatchOpBody, BatchResultItem } from '../wire/types.js';

const limits: BatchLimits = { opsMax: 3, bytesMax: 1_000, inFlightMax: 1, queuedOpsMax: 10 };

interface Sent {
  readonly endpoint: string;
  readonly ops: readonly BatchOpBody[];
  readonly timeoutMs: number;
  readonly answer: (results: readonly BatchResultItem[]) => void;
  readonly fail: (error: Error) => void;
}

/** A send function that records each batch and lets the test answer it. */
function recorder(): { readonly sent: Sent[]; readonly send: SendBatch } {
  const sent: Sent[] = [];
  const send: SendBatch = (endpoint, ops, timeoutMs) =>
    new Promise((resolve, reject) => sent.push({ endpoint, ops, timeoutMs, answer: resolve, fail: reject }));
  return { sent, send };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const get = (key: string): BatchOpBody => ({ op: 'get', key });
const put = (key: string): BatchOpBody => ({ op: 'put', key, value: 'v' });
const echo = (ops: readonly BatchOpBody[]): BatchResultItem[] => ops.map((op) => ({ status: 200, key: op.key }));

test('operations issued in one turn leave as one batch per node, and each gets its own result', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, opsMax: 10 });
  const a = batcher.submit('n1', 'write', put('a'), 10, 1_000);
  const b = batcher.submit('n1', 'write', put('b'), 10, 1_000);
  const c = batcher.submit('n2', 'write', put('c'), 10, 1_000);
  assert.equal(sent.length, 0, 'nothing leaves before the turn ends');
  await turn();
  assert.deepEqual(sent.map((s) => [s.endpoint, s.ops.map((o) => o.key)]), [['n1', ['a', 'b']], ['n2', ['c']]]);
  for (const s of sent) s.answer(echo(s.ops));
  assert.deepEqual(await Promise.all([a, b, c]), [{ status: 200, key: 'a' }, { status: 200, key: 'b' }, { status: 200, key: 'c' }]);
});

test('while inFlightMax batches are out, new operations wait and leave together in the next one', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, opsMax: 10 });
  const first = batcher.submit('n1', 'write', put('a'), 10, 1_000);
  await turn();
  const later = [batcher.submit('n1', 'write', put('b'), 10, 1_000)];
  await turn();
  later.push(batcher.submit('n1', 'write', put('c'), 10, 1_000));
  await turn();
  assert.equal(sent.length, 1, 'b and c wait for the batch in flight');
  sent[0]?.answer(echo(sent[0].ops));
  await first;
  await turn();
  await turn();
  assert.deepEqual(sent[1]?.ops.map((o) => o.key), ['b', 'c']);
  sent[1]?.answer(echo(sent[1].ops));
  assert.equal((await Promise.all(later)).length, 2);
});

test('reads and writes travel in separate batches, within opsMax and bytesMax', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, inFlightMax: 10, bytesMax: 100 });
  const all = [
    batcher.submit('n1', 'read', get('r1'), 10, 1_000),
    batcher.submit('n1', 'write', put('w1'), 10, 1_000),
    batcher.submit('n1', 'read', get('r2'), 10, 1_000),
    ...['w2', 'w3', 'w4', 'w5'].map((k) => batcher.submit('n1', 'write', put(k), 10, 1_000)),
    batcher.submit('n1', 'write', put('big1'), 60, 1_000),
    batcher.submit('n1', 'write', put('big2'), 60, 1_000),
  ];
  await turn();
  const batches = sent.map((s) => s.ops.map((o) => o.key));
  assert.deepEqual(batches, [['w1', 'w2', 'w3'], ['w4', 'w5', 'big1'], ['big2'], ['r1', 'r2']]);
  for (const s of sent) s.answer(echo(s.ops));
  assert.equal((await Promise.all(all)).length, 9);
});

test('a batch that fails fails each of its operations with the same attempt error', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, opsMax: 10 });
  const ops = [batcher.submit('n1', 'write', put('a'), 10, 1_000), batcher.submit('n1', 'write', put('b'), 10, 1_000)];
  await turn();
  sent[0]?.fail(new AttemptError('lost', null, 'connection reset'));
  for (const op of ops) await assert.rejects(op, (e: AttemptError) => e.kind === 'lost');
});

test('an answer with the wrong number of results is a protocol error for every operation', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, opsMax: 10 });
  const ops = [batcher.submit('n1', 'read', get('a'), 10, 1_000), batcher.submit('n1', 'read', get('b'), 10, 1_000)];
  await turn();
  sent[0]?.answer([{ status: 200 }]);
  for (const op of ops) await assert.rejects(op, ProtocolError);
});

test('a batch gets the smallest budget of its operations, and one whose time ran out in the queue is never sent', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, opsMax: 10 });
  const blocker = batcher.submit('n1', 'write', put('blocker'), 10, 1_000);
  await turn();
  const expiring = batcher.submit('n1', 'write', put('short'), 10, 5);
  await new Promise((resolve) => setTimeout(resolve, 20));
  sent[0]?.answer(echo(sent[0].ops));
  await blocker;
  await assert.rejects(expiring, (e: AttemptError) => e.kind === 'unreachable');
  await turn();
  assert.equal(sent.length, 1, 'the expired operation was not sent');

  const a = batcher.submit('n1', 'write', put('a'), 10, 300);
  const b = batcher.submit('n1', 'write', put('b'), 10, 900);
  await turn();
  assert.ok((sent[1]?.timeoutMs ?? Infinity) <= 300);
  sent[1]?.answer(echo(sent[1].ops));
  await Promise.all([a, b]);
});

test('more than queuedOpsMax waiting operations are refused as busy, not queued', async () => {
  const { sent, send } = recorder();
  const batcher = new Batcher(send, { ...limits, queuedOpsMax: 2 });
  const accepted = [batcher.submit('n1', 'write', put('a'), 10, 1_000), batcher.submit('n1', 'write', put('b'), 10, 1_000)];
  await assert.rejects(batcher.submit('n1', 'write', put('c'), 10, 1_000), (e: AttemptError) => e.kind === 'refused' && e.code === 'busy');
  await turn();
  sent[0]?.answer(echo(sent[0].ops));
  assert.equal((await Promise.all(accepted)).length, 2);
});
