import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from './prng.js';

test('the same seed gives the same sequence, a different seed a different one', () => {
  const a = createPrng(42);
  const b = createPrng(42);
  const c = createPrng(43);
  const seqA = Array.from({ length: 16 }, () => a.nextU32());
  const seqB = Array.from({ length: 16 }, () => b.nextU32());
  const seqC = Array.from({ length: 16 }, () => c.nextU32());
  assert.deepEqual(seqA, seqB);
  assert.notDeepEqual(seqA, seqC);
});

test('intBetween stays within its inclusive bounds and reaches both ends', () => {
  const prng = createPrng(7);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = prng.intBetween(3, 6);
    assert.ok(n >= 3 && n <= 6, `got ${n}`);
    seen.add(n);
  }
  assert.deepEqual([...seen].sort(), [3, 4, 5, 6]);
});

test('nextFloat is roughly uniform', () => {
  const prng = createPrng(1);
  let below = 0;
  const n = 10_000;
  for (let i = 0; i < n; i++) if (prng.nextFloat() < 0.5) below++;
  assert.ok(Math.abs(below / n - 0.5) < 0.03, `fraction below 0.5 was ${below / n}`);
});
