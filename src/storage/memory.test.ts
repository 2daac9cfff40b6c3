import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../core/types.js';
import { contractStorageOptions, storageContract } from './testing/contract.js';
import { createMemoryStorage, restoreMemoryStorage } from './memory.js';
import type { MemoryStorage } from './memory.js';
import type { PersistBatch } from './types.js';
import { packItems } from './snapshot-records.js';

storageContract('memory', async () => {
  let current: MemoryStorage = createMemoryStorage(contractStorageOptions);
  return {
    storage: current,
    reopen: async () => {
      // A restart after everything reached the disk: flush, crash, restore.
      current.flushPending();
      current = restoreMemoryStorage(current.crash(), contractStorageOptions);
      return current;
    },
    cleanup: () => current.close(),
  };
});

const encoder = new TextEncoder();
const entry = (index: number, term = 1): Entry => ({ index, term, kind: 'normal', data: encoder.encode(`e${index}`) });
const append = (entries: Entry[], commit = 0): PersistBatch => ({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit } });

test('in manual mode a crash keeps flushed persist batches and kv writes and drops unflushed ones', () => {
  const storage = createMemoryStorage({ ...contractStorageOptions, flushMode: 'manual' });
  const acked: string[] = [];
  storage.persist(append([entry(1), entry(2)], 1), () => acked.push('A'));
  storage.kv.write(1, (tx) => tx.put('x', { value: 'one', version: 1 }));
  storage.persist(append([entry(3)], 2), () => acked.push('B'));
  storage.kv.write(2, (tx) => {
    tx.put('x', { value: 'two', version: 2 });
    tx.put('y', { value: new Uint8Array([2]), version: 2 });
    tx.putDedup({ clientId: 'c', seq: 1, index: 2, reply: new Uint8Array([1]) });
  });
  storage.setIdentity({ nodeId: 'n1', clusterId: 'c1' }, () => acked.push('identity'));
  assert.equal(storage.pendingCount(), 5);
  assert.deepEqual(acked, [], 'nothing is acknowledged before a flush');
  assert.equal(storage.log.lastIndex(), 3, 'queued writes are visible');
  assert.equal(storage.kv.get('x')?.value, 'two');

  assert.equal(storage.flushPending(2), 2, 'flushes the two oldest writes');
  assert.deepEqual(acked, ['A']);
  assert.equal(storage.kv.durableAppliedIndex(), 1);
  assert.equal(storage.pendingCount(), 3);

  const image = storage.crash();
  assert.throws(() => storage.log.lastIndex(), /crashed/);
  assert.throws(() => storage.flushPending(), /crashed/);
  assert.deepEqual(acked, ['A'], 'unflushed callbacks never fire');
  assert.deepEqual(image.entries, [entry(1), entry(2)]);
  assert.deepEqual(image.hardState, { term: 1, vote: 'n1', commit: 1 });
  assert.equal(image.identity, null);
  assert.equal(image.appliedIndex, 1);
  assert.deepEqual([...image.kv], [['x', { value: 'one', version: 1 }]]);
  assert.deepEqual(image.dedup, []);

  const restored = restoreMemoryStorage(image, { ...contractStorageOptions, flushMode: 'manual' });
  assert.equal(restored.log.lastIndex(), 2);
  assert.deepEqual(restored.log.entries(1, 3, Infinity), [entry(1), entry(2)]);
  assert.deepEqual(restored.kv.get('x'), { value: 'one', version: 1 });
  assert.equal(restored.kv.get('y'), undefined);
  assert.equal(restored.kv.appliedIndex(), 1);
  assert.equal(restored.kv.durableAppliedIndex(), 1);
  assert.equal(restored.identity(), null);
  assert.equal(restored.pendingCount(), 0);
});

test('a crash image can be restored twice and later writes to one copy do not leak into it', () => {
  const storage = createMemoryStorage({ ...contractStorageOptions, flushMode: 'manual' });
  storage.persist(append([entry(1)]), () => {});
  storage.kv.write(1, (tx) => tx.put('k', { value: 'v', version: 1 }));
  storage.flushPending();
  const image = storage.crash();
  const a = restoreMemoryStorage(image, contractStorageOptions);
  a.persist(append([entry(2)]), () => {});
  a.kv.write(2, (tx) => tx.delete('k'));
  a.flushPending();
  const b = restoreMemoryStorage(image, contractStorageOptions);
  assert.equal(b.log.lastIndex(), 1);
  assert.deepEqual(b.kv.get('k'), { value: 'v', version: 1 });
  assert.equal(a.crash().entries.length, 2);
});

test('in manual mode an unflushed snapshot install is lost in a crash and the old state survives', () => {
  const storage = createMemoryStorage({ ...contractStorageOptions, flushMode: 'manual' });
  storage.persist(append([entry(1), entry(2)]), () => {});
  storage.kv.write(2, (tx) => tx.put('old', { value: 'old', version: 2 }));
  storage.flushPending();
  storage.stageSnapshotChunk({ seq: 0, records: packItems([{ key: 'new', value: 'new', version: 9 }]), dedup: [], last: true });
  storage.persist({ snapshot: { index: 9, term: 2, config: contractStorageOptions.initialConfig }, entries: [], hardState: null }, () => {});
  assert.equal(storage.kv.get('new')?.value, 'new');
  assert.ok(storage.kv.durableAppliedIndex() <= 9);
  const lost = storage.crash();
  assert.deepEqual([...lost.kv.keys()], ['old']);
  assert.equal(lost.snapshotMeta.index, 0);
  assert.equal(lost.entries.length, 2);
});

test('a kv write queued before an install does not make the installed state look durable when it flushes', () => {
  const storage = createMemoryStorage({ ...contractStorageOptions, flushMode: 'manual' });
  storage.persist(append([entry(1), entry(2), entry(3)]), () => {});
  storage.flushPending();
  storage.kv.write(3, (tx) => tx.put('old', { value: 'old', version: 3 }));
  storage.stageSnapshotChunk({ seq: 0, records: packItems([]), dedup: [], last: true });
  storage.persist({ snapshot: { index: 2, term: 1, config: contractStorageOptions.initialConfig }, entries: [], hardState: null }, () => {});
  assert.equal(storage.kv.durableAppliedIndex(), 0);
  storage.flushPending(1); // the old kv write only
  assert.equal(storage.kv.durableAppliedIndex(), 0, 'the install (applied 2) is not durable yet');
  storage.flushPending(1);
  assert.equal(storage.kv.durableAppliedIndex(), 2);
});

test('in immediate mode durability callbacks run on a microtask, never synchronously', async () => {
  const storage = createMemoryStorage(contractStorageOptions);
  let acked = false;
  storage.persist(append([entry(1)]), () => {
    acked = true;
  });
  assert.equal(acked, false);
  assert.equal(storage.pendingCount(), 1);
  await Promise.resolve();
  assert.equal(acked, true);
  assert.equal(storage.pendingCount(), 0);
});
