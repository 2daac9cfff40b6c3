import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from '../stdx/prng.js';
import { keyChooser, makeKeys, makeValue, workload, workloadNames } from './workload.js';

function histogram(distribution: 'uniform' | 'hot-cold' | 'zipf', keys: number, draws: number): number[] {
  const counts = new Array<number>(keys).fill(0);
  const choose = keyChooser(distribution, keys);
  const rng = createPrng(42);
  for (let i = 0; i < draws; i++) {
    const k = choose(rng);
    assert.ok(Number.isInteger(k) && k >= 0 && k < keys, `key index ${k} in range`);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

test('every named workload has a read share in [0, 1] and the mixes the issue names', () => {
  for (const name of workloadNames) {
    const w = workload(name);
    assert.ok(w.readFraction >= 0 && w.readFraction <= 1, name);
  }
  assert.equal(workload('mixed').readFraction, 0.5);
  assert.equal(workload('read-heavy').readFraction, 0.9);
  assert.equal(workload('write-heavy').readFraction, 0.2);
  assert.equal(workload('ycsb-b').readFraction, 0.95);
  assert.equal(workload('ycsb-c').distribution, 'zipf');
});

test('hot-cold sends about 90% of operations to the hottest 10% of keys', () => {
  const counts = histogram('hot-cold', 1000, 100_000);
  const hot = counts.slice(0, 100).reduce((a, b) => a + b, 0);
  assert.ok(hot > 88_000 && hot < 92_000, `hot share ${hot / 1000}%`);
});

test('zipf makes the first keys far more popular than the tail, uniform does not', () => {
  const z = histogram('zipf', 1000, 100_000);
  const top10 = z.slice(0, 10).reduce((a, b) => a + b, 0);
  assert.ok(top10 > 30_000, `zipf top-10 share ${top10 / 1000}%`);
  assert.ok((z[0] ?? 0) > (z[9] ?? 0) * 5, 'rank 0 beats rank 9 by far');
  const u = histogram('uniform', 1000, 100_000);
  const uTop10 = u.slice(0, 10).reduce((a, b) => a + b, 0);
  assert.ok(uTop10 > 700 && uTop10 < 1300, `uniform top-10 share ${uTop10 / 1000}%`);
});

test('a single key and tiny key counts never index out of range', () => {
  for (const d of ['uniform', 'hot-cold', 'zipf'] as const) for (const n of [1, 2, 3]) histogram(d, n, 1000);
});

test('keys are distinct and exactly --key-bytes long; the value exactly --value-bytes', () => {
  const keys = makeKeys(1000, 16);
  assert.equal(new Set(keys).size, 1000);
  assert.ok(keys.every((k) => Buffer.byteLength(k) === 16));
  assert.throws(() => makeKeys(1000, 3), /too small/);
  assert.equal(Buffer.byteLength(makeValue(128, createPrng(1))), 128);
  assert.equal(makeValue(0, createPrng(1)), '');
});

test('fill is a write-only workload that writes each key once (the runner stops after the keys)', () => {
  const w = workload('fill');
  assert.equal(w.fill, true);
  assert.equal(w.readFraction, 0);
  assert.equal(workload('write').fill, undefined);
});
