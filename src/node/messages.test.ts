import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readIndexRequestIdsMax } from '../core/types.js';
import { decodePeerMessage } from './messages.js';

const base = { from: 'n2', to: 'n1', term: 3 };
const ids = (count: number): number[] => Array.from({ length: count }, (_, i) => i + 1);

test('well-formed read-index requests and answers pass the decode boundary unchanged', () => {
  const request = { ...base, type: 'readIndex', requestIds: ids(readIndexRequestIdsMax) };
  assert.equal(decodePeerMessage(request, 'n2'), request);
  for (const answer of [
    { ...base, type: 'readIndexResp', requestIds: [7], index: 42, refusal: null },
    { ...base, type: 'readIndexResp', requestIds: [7, 8], index: 0, refusal: 'notLeader' },
    { ...base, type: 'readIndexResp', requestIds: [9], index: 0, refusal: 'busy' },
  ]) {
    assert.equal(decodePeerMessage(answer, 'n2'), answer);
  }
});

test('read-index messages with no ids, too many ids, bad ids, a bad index or an unknown refusal are dropped', () => {
  const bad: readonly Record<string, unknown>[] = [
    { ...base, type: 'readIndex', requestIds: [] },
    { ...base, type: 'readIndex', requestIds: ids(readIndexRequestIdsMax + 1) },
    { ...base, type: 'readIndex', requestIds: [1, -2] },
    { ...base, type: 'readIndex', requestIds: [2 ** 53] },
    { ...base, type: 'readIndex', requestIds: '1,2' },
    { ...base, type: 'readIndex' },
    { ...base, type: 'readIndexResp', requestIds: [1], index: -1, refusal: null },
    { ...base, type: 'readIndexResp', requestIds: [1], index: 1.5, refusal: null },
    { ...base, type: 'readIndexResp', requestIds: [1], index: 4, refusal: 'tired' },
    { ...base, type: 'readIndexResp', requestIds: [1], index: 4 },
    { ...base, type: 'readIndexResp', requestIds: ids(readIndexRequestIdsMax + 1), index: 4, refusal: null },
  ];
  for (const m of bad) assert.equal(typeof decodePeerMessage(m, 'n2'), 'string', JSON.stringify(m).slice(0, 120));
});

test('a read-index request claiming another sender than its connection is dropped', () => {
  assert.match(String(decodePeerMessage({ ...base, type: 'readIndex', requestIds: [1] }, 'n3')), /claims to be from n2/);
});

const forward = { from: 'n2', to: 'n1', id: 7 };

test('well-formed forwarded batches and replies pass the decode boundary unchanged', () => {
  const batch = { ...forward, type: 'forwardBatch', ops: [{ op: 'put', key: 'a', value: 'v', clientId: 'c', seq: 1 }, { op: 'get', key: 'b', consistency: 'leader' }], token: null, timeoutMs: 500 };
  assert.equal(decodePeerMessage(batch, 'n2'), batch);
  const withToken = { ...batch, token: 'qkv_secret' };
  assert.equal(decodePeerMessage(withToken, 'n2'), withToken);
  const reply = { ...forward, type: 'forwardReply', results: [{ status: 200, key: 'a', version: 3 }, { status: 404, error: 'not_found', message: 'no' }] };
  assert.equal(decodePeerMessage(reply, 'n2'), reply);
});

test('malformed forwarded batches and replies are dropped at the frame, before anything reads them', () => {
  const ops = [{ op: 'put', key: 'a', value: 'v' }];
  const batch = { ...forward, type: 'forwardBatch', ops, token: null, timeoutMs: 500 };
  const reply = { ...forward, type: 'forwardReply', results: [{ status: 200 }] };
  const bad: readonly Record<string, unknown>[] = [
    { ...batch, id: -1 },
    { ...batch, id: 'x' },
    { ...batch, ops: [] },
    { ...batch, ops: 'put a' },
    { ...batch, ops: Array.from({ length: 1_001 }, () => ops[0]) },
    { ...batch, ops: [null] },
    { ...batch, ops: [[1, 2]] },
    { ...batch, ops: [{ op: 'txn', key: 'a' }] },
    { ...batch, ops: [{ op: 'put', key: 3, value: 'v' }] },
    { ...batch, token: 42 },
    { ...batch, token: 'x'.repeat(20_000) },
    { ...batch, timeoutMs: 0 },
    { ...batch, timeoutMs: 1.5 },
    { ...batch, timeoutMs: undefined },
    { ...batch, to: '' },
    { ...reply, results: [] },
    { ...reply, results: [{ status: '200' }] },
    { ...reply, results: [{ status: 700 }] },
    { ...reply, results: [{ status: 200 }, 'ok'] },
    { ...reply, results: undefined },
  ];
  for (const m of bad) assert.equal(typeof decodePeerMessage(m, 'n2'), 'string', JSON.stringify(m).slice(0, 120));
  assert.match(String(decodePeerMessage(batch, 'n3')), /claims to be from n2/);
});

test('appends pass the decode boundary with or without the quiet mark, and one with any other mark is dropped', () => {
  const append = { ...base, type: 'append', leader: 'n2', prevIndex: 3, prevTerm: 1, entries: [], commit: 3, acked: 3 };
  assert.equal(decodePeerMessage(append, 'n2'), append);
  const quiet = { ...append, quiet: true };
  assert.equal(decodePeerMessage(quiet, 'n2'), quiet);
  for (const mark of [false, 1, 'yes', null]) assert.equal(decodePeerMessage({ ...append, quiet: mark }, 'n2'), 'bad append', String(mark));
});
