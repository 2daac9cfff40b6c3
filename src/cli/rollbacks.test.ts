import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeRollbacks } from './rollbacks.js';

test('a lost write recorded by several nodes is one row naming them all, in version order', () => {
  const merged = mergeRollbacks([
    { node: 'n1', records: [{ version: 7, term: 2, op: 'put', key: 'b' }, { version: 5, term: 2, op: 'put', key: 'a' }] },
    { node: 'n2', records: [{ version: 5, term: 2, op: 'put', key: 'a' }] },
    { node: 'n3', records: [{ version: 5, term: 3, op: 'put', key: 'other' }] },
  ]);
  assert.deepEqual(
    merged.map((w) => [w.version, w.term, w.key, w.nodes]),
    [
      [5, 2, 'a', ['n1', 'n2']],
      [5, 3, 'other', ['n3']],
      [7, 2, 'b', ['n1']],
    ],
  );
});
