import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedQueue } from './bounded-queue.js';

test('a full queue refuses pushes instead of growing', () => {
  const q = new BoundedQueue<number>(2);
  assert.equal(q.push(1), true);
  assert.equal(q.push(2), true);
  assert.equal(q.push(3), false);
  assert.equal(q.length, 2);
  assert.equal(q.shift(), 1);
  assert.equal(q.push(3), true);
  assert.deepEqual(q.drain(), [2, 3]);
  assert.equal(q.length, 0);
});

test('order is kept across many shifts and compactions', () => {
  const q = new BoundedQueue<number>(10_000);
  const out: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    q.push(i);
    if (i % 3 !== 0) out.push(q.shift() as number);
  }
  out.push(...q.drain());
  assert.deepEqual(out, Array.from({ length: 20_000 }, (_, i) => i));
});
