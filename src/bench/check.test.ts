import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareStores } from './check.js';

test('a store is compared key by key: missing, extra, older and conflicting entries are told apart', () => {
  const leader = new Map([
    ['a', { value: '1', version: 5 }],
    ['b', { value: '2', version: 9 }],
    ['c', { value: '3', version: 7 }],
    ['d', { value: '4', version: 8 }],
  ]);
  const node = new Map([
    ['a', { value: '1', version: 5 }],
    ['b', { value: 'old', version: 6 }],
    ['c', { value: 'other', version: 7 }],
    ['z', { value: '!', version: 3 }],
  ]);
  const c = compareStores(leader, node);
  assert.equal(c.differing, 4);
  assert.equal(c.missing, 1);
  assert.equal(c.extra, 1);
  assert.equal(c.stale, 1);
  assert.equal(c.versionsBehind, 3);
  assert.equal(c.conflicting, 1);
  assert.deepEqual(c.examples.map((e) => e.key), ['b', 'c', 'd', 'z']);
  assert.equal(compareStores(leader, leader).differing, 0);
});
