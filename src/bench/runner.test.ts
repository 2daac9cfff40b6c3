import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runPoint } from './runner.js';
import type { BenchTarget } from './target.js';
import { makeKeys, workload } from './workload.js';

/** An in-memory system that counts the writes of each key. */
function countingTarget(): { target: BenchTarget; writes: Map<string, number> } {
  const writes = new Map<string, number>();
  const target: BenchTarget = {
    system: 'memory',
    path: 'in-process map',
    put: async (key) => {
      await new Promise((r) => setImmediate(r));
      writes.set(key, (writes.get(key) ?? 0) + 1);
    },
    get: async () => 'v',
    txn: async () => undefined,
    close: async () => undefined,
  };
  return { target, writes };
}

test('a fill writes every key exactly once, with no warm-up and no reads, whatever --duration says, and reports MB/s', async () => {
  const { target, writes } = countingTarget();
  const keys = makeKeys(1234, 16);
  const value = 'x'.repeat(1000);
  const p = await runPoint({ target, workload: workload('fill'), keys, value, concurrency: 7, durationMs: 1, opsTotal: null, warmupMs: 5_000, serverPids: [], seed: 1, progress: false, label: 'fill' });
  assert.equal(writes.size, keys.length);
  assert.ok([...writes.values()].every((n) => n === 1), 'no key written twice');
  assert.equal(p.ops, keys.length);
  assert.deepEqual(p.byOp.map((b) => b.op), ['write', 'all']);
  assert.equal(p.path, 'in-process map');
  assert.ok(Math.abs(p.mbPerSec - (p.opsPerSec * 1000) / 1e6) < 1e-9, `MB/s ${p.mbPerSec} for ${p.opsPerSec} ops/s of 1000 B`);
  assert.equal(p.byOp[0]?.mbPerSec, p.mbPerSec);
});

test('a transaction never names one key twice (etcd refuses that), even with two keys', async () => {
  const pairs: [string, string][] = [];
  const target: BenchTarget = {
    system: 'memory',
    path: 'in-process map',
    put: async () => undefined,
    get: async () => 'v',
    txn: async (a, b) => {
      pairs.push([a, b]);
      await new Promise((r) => setImmediate(r));
    },
    close: async () => undefined,
  };
  await runPoint({ target, workload: workload('txn'), keys: makeKeys(2, 4), value: 'v', concurrency: 2, durationMs: 1, opsTotal: 200, warmupMs: 0, serverPids: [], seed: 3, progress: false, label: 'txn' });
  assert.ok(pairs.length >= 200);
  assert.ok(pairs.every(([a, b]) => a !== b), 'two different keys in every transaction');
});
