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
