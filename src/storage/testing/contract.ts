/**
 * The storage contract: one suite of behaviour tests that every NodeStorage implementation
 * (LMDB and the in-memory twin) must pass, so the simulator's disk and the real one cannot
 * drift apart. Each implementation's test file calls `storageContract` with a factory.
 * The suite is split by concern (log, durability, kv, compaction, snapshots, keys and
 * values, dedup), one function each, all registered under one `describe`. It lives under
 * testing/ with the other test helpers so the published package can leave them out.
 *
 * Must never: depend on one implementation's internals, or wait on sleeps (every wait is
 * a condition or a callback with a deadline).
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterConfig, Entry, HardState, SnapshotMeta } from '../../core/types.js';
import { packItems, unpackItems } from '../snapshot-records.js';
import { isInRow, valueInRow, type DedupRecord, type KvItem, type KvRecord, type KvWriter, type NodeStorage, type PersistBatch, type SnapshotChunk, type StorageOptions } from '../types.js';

/** Options every factory passed to `storageContract` must open its storage with. */
export const contractStorageOptions: StorageOptions = {
  initialConfig: { members: ['n1', 'n2', 'n3'], writeQuorum: 'majority', topology: 'star' },
  snapshotBytesMax: 1 << 20,
};

export interface StorageHarness {
  readonly storage: NodeStorage;
  /** Closes the current storage (everything durable) and opens the same data again. */
  readonly reopen: () => Promise<NodeStorage>;
  /** Closes whatever storage is current and removes its data. */
  readonly cleanup: () => Promise<void>;
}

const DEADLINE_MS = 10_000;
const config: ClusterConfig = contractStorageOptions.initialConfig;
const otherConfig: ClusterConfig = { members: ['n1', 'n2', 'n3', 'n4'], writeQuorum: 2, topology: 'chain' };

// --- helpers -------------------------------------------------------------------------------

const encoder = new TextEncoder();

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, kind: 'normal', data: encoder.encode(text) };
}

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

function batch(parts: Partial<PersistBatch>): PersistBatch {
  return { snapshot: parts.snapshot ?? null, entries: parts.entries ?? [], hardState: parts.hardState ?? null };
}

async function withDeadline<T>(promise: Promise<T>, what: string, deadlineMs = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Queues `b` and resolves when it is durable (rejects on a storage error or the deadline). */
function persistDurable(storage: NodeStorage, b: PersistBatch): Promise<void> {
  return withDeadline(
    new Promise<void>((resolve, reject) => {
      storage.persist(b, (error) => (error === null ? resolve() : reject(error)));
    }),
    'persist durable',
  );
}

/** Polls `condition` on every event-loop turn until it holds or the deadline passes. */
async function waitFor(condition: () => boolean, what: string, deadlineMs = DEADLINE_MS): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

async function kvWriteDurable(storage: NodeStorage, appliedIndex: number, mutate: (tx: KvWriter) => void): Promise<void> {
  storage.kv.write(appliedIndex, mutate);
  await waitFor(() => storage.kv.durableAppliedIndex() >= appliedIndex, `kv write ${appliedIndex} to be durable`);
}

function record(value: string | Uint8Array, version: number): KvRecord {
  return { value, version };
}

function dedup(clientId: string, seq: number, index: number): DedupRecord {
  return { clientId, seq, index, reply: encoder.encode(`reply ${clientId}/${seq}`) };
}

function keysOf(items: readonly KvItem[]): string[] {
  return items.map((item) => item.key);
}

/** Sorts by UTF-8 bytes, independently of the implementations' comparator. */
function utf8Sorted(keys: readonly string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

function allItems(storage: NodeStorage): KvItem[] {
  return storage.kv.range('', undefined, 1_000_000);
}

function readAllChunks(storage: NodeStorage, bytesMax: number): SnapshotChunk[] {
  const source = storage.openSnapshot(config);
  const chunks: SnapshotChunk[] = [];
  for (let chunk = source.readChunk(bytesMax); chunk !== null; chunk = source.readChunk(bytesMax)) chunks.push(chunk);
  source.close();
  return chunks;
}

async function withHarness(open: () => Promise<StorageHarness>, body: (h: StorageHarness) => Promise<void>): Promise<void> {
  const h = await open();
  try {
    await body(h);
  } finally {
    await h.cleanup();
  }
}

// --- the suite --------------------------------------------------------------------------------

type OpenHarness = () => Promise<StorageHarness>;

export function storageContract(name: string, open: OpenHarness): void {
  describe(`${name} storage contract`, () => {
    logContract(open);
    durabilityContract(open);
    kvContract(open);
    compactionContract(open);
    snapshotSourceContract(open);
    snapshotInstallContract(open);
    snapshotRefusalContract(open);
    keysAndValuesContract(open);
    dedupContract(open);
  });
}

/** The log: a fresh storage, appends readable before they are durable, truncation on overlap, reads bounded by bytes. */
function logContract(open: OpenHarness): void {
  test('a fresh storage has an empty log, a zero hard state, no identity and no keys', () =>
    withHarness(open, async ({ storage }) => {
      assert.equal(storage.log.firstIndex(), 1);
      assert.equal(storage.log.lastIndex(), 0);
      assert.equal(storage.log.term(0), 0);
      assert.equal(storage.log.term(1), undefined);
      assert.deepEqual(storage.log.snapshotMeta(), { index: 0, term: 0, config });
      assert.deepEqual(storage.hardState(), { term: 0, vote: null, commit: 0 });
      assert.equal(storage.identity(), null);
      assert.equal(storage.kv.appliedIndex(), 0);
      assert.equal(storage.kv.durableAppliedIndex(), 0);
      assert.equal(storage.kv.keyCount(), 0);
      assert.deepEqual(storage.kv.range('', undefined, 10), []);
      assert.deepEqual(readAllChunks(storage, 1024), [{ seq: 0, records: packItems([]), dedup: [], last: true }]);
    }));

  test('appended entries are readable at once, before they are durable, with term, kind and data intact', () =>
    withHarness(open, async ({ storage }) => {
      const written: Entry[] = [
        entry(1, 1),
        { index: 2, term: 1, kind: 'noop', data: new Uint8Array(0) },
        { index: 3, term: 2, kind: 'config', data: new Uint8Array([0, 255, 7]) },
      ];
      let durable = false;
      storage.persist(batch({ entries: written }), (error) => {
        assert.equal(error, null);
        durable = true;
      });
      assert.equal(durable, false, 'onDurable must not run synchronously');
      assert.equal(storage.log.lastIndex(), 3);
      assert.equal(storage.log.term(3), 2);
      assert.deepEqual(storage.log.entries(1, 4, Infinity), written);
      await waitFor(() => durable, 'the append to be durable');
      assert.deepEqual(storage.log.entries(1, 4, Infinity), written);
      assert.deepEqual(storage.log.entries(2, 3, Infinity), [written[1]]);
      assert.deepEqual(storage.log.entries(2, 2, Infinity), []);
      assert.equal(storage.log.term(4), undefined);
      await persistDurable(storage, batch({ entries: entries(4, 6, 2) }));
      assert.equal(storage.log.lastIndex(), 6);
      assert.deepEqual(storage.log.entries(3, 7, Infinity).map((e) => e.index), [3, 4, 5, 6]);
      assert.throws(() => storage.persist(batch({ entries: [entry(8, 2)] }), () => {}), /Cannot append entry 8: log ends at 6/);
      assert.throws(() => storage.persist(batch({ entries: [entry(7, 1)] }), () => {}), /term 1 below/);
    }));

  test('an append that overlaps the log truncates it from the first new entry, durably', () =>
    withHarness(open, async (h) => {
      let storage = h.storage;
      await persistDurable(storage, batch({ entries: entries(1, 10, 1) }));
      // Overlap committed entries, then overlap the still-queued ones in the same turn.
      storage.persist(batch({ entries: entries(4, 6, 2) }), () => {});
      assert.equal(storage.log.lastIndex(), 6);
      assert.equal(storage.log.term(7), undefined);
      const last = batch({ entries: [entry(6, 3, 'six'), entry(7, 3, 'seven')] });
      await persistDurable(storage, last);
      const expected = [...entries(1, 3, 1), ...entries(4, 5, 2), entry(6, 3, 'six'), entry(7, 3, 'seven')];
      assert.deepEqual(storage.log.entries(1, 8, Infinity), expected);
      assert.equal(storage.log.lastIndex(), 7);
      storage = await h.reopen();
      assert.equal(storage.log.lastIndex(), 7);
      assert.equal(storage.log.term(8), undefined);
      assert.deepEqual(storage.log.entries(1, 8, Infinity), expected);
      await persistDurable(storage, batch({ entries: [entry(8, 3)] }));
      assert.equal(storage.log.lastIndex(), 8);
    }));

  test('entries() stops before bytesMax is exceeded but always returns at least one entry', () =>
    withHarness(open, async ({ storage }) => {
      const big = (index: number): Entry => ({ index, term: 1, kind: 'normal', data: new Uint8Array(1000).fill(index) });
      const written = [1, 2, 3, 4, 5].map(big);
      await persistDurable(storage, batch({ entries: written.slice(0, 3) }));
      storage.persist(batch({ entries: written.slice(3) }), () => {}); // 4 and 5 only queued
      for (const lo of [1, 3]) {
        assert.deepEqual(storage.log.entries(lo, 6, 0), [written[lo - 1]], `bytesMax 0 from ${lo}`);
        assert.deepEqual(storage.log.entries(lo, 6, 1), [written[lo - 1]], `bytesMax 1 from ${lo}`);
      }
      let previous = 0;
      for (const bytesMax of [0, 1500, 2500, 3500, 4500, 10_000, Infinity]) {
        const got = storage.log.entries(1, 6, bytesMax);
        assert.ok(got.length >= 1, `bytesMax ${bytesMax}: at least one entry`);
        assert.ok(got.length >= previous, `bytesMax ${bytesMax}: never fewer entries for a larger budget`);
        assert.ok(got.length === 1 || got.length * 1000 <= bytesMax, `bytesMax ${bytesMax}: ${got.length} entries exceed it`);
        assert.deepEqual(got, written.slice(0, got.length));
        previous = got.length;
      }
      assert.equal(previous, 5);
    }));
}

/** Durability: hard state, the order of acknowledgements, kv writes riding on the next persist, and what a reopen finds. */
function durabilityContract(open: OpenHarness): void {
  test('hard state reads back as last queued and survives a reopen', () =>
    withHarness(open, async (h) => {
      const first: HardState = { term: 3, vote: 'n2', commit: 0 };
      const second: HardState = { term: 4, vote: null, commit: 0 };
      h.storage.persist(batch({ hardState: first }), () => {});
      assert.deepEqual(h.storage.hardState(), first);
      await persistDurable(h.storage, batch({ hardState: second }));
      assert.deepEqual(h.storage.hardState(), second);
      assert.throws(() => h.storage.persist(batch({ hardState: first }), () => {}), /term went back/);
      const reopened = await h.reopen();
      assert.deepEqual(reopened.hardState(), second);
    }));

  test('durability callbacks fire once each, without error, persists in the order they were queued', () =>
    withHarness(open, async ({ storage }) => {
      const fired: string[] = [];
      const callback = (name: string) => (error: Error | null) => {
        assert.equal(error, null);
        fired.push(name);
      };
      const expected: string[] = [];
      for (let i = 1; i <= 50; i++) {
        storage.persist(batch({ entries: [entry(i, 1)], hardState: { term: 1, vote: 'n1', commit: i - 1 } }), callback(`p${i}`));
        expected.push(`p${i}`);
        if (i === 20) {
          storage.setIdentity({ nodeId: 'n1', clusterId: 'c1' }, callback('identity'));
          expected.push('identity');
        }
        if (i === 30) storage.kv.write(1, (tx) => tx.put('k', record('v', 1)));
      }
      assert.deepEqual(fired, []);
      await waitFor(() => fired.length === expected.length, 'every durability callback');
      // Then a later write in a later turn.
      await persistDurable(storage, batch({ entries: [entry(51, 1)] }));
      // The log and the rest of the state may live in different files (LMDB's WAL storage):
      // persists are ordered among themselves, the identity write only fires once.
      assert.deepEqual(fired.filter((name) => name !== 'identity'), expected.filter((name) => name !== 'identity'));
      assert.equal(fired.filter((name) => name === 'identity').length, 1);
    }));

  test('kv writes become durable after the entries they apply, and a reopen after close finds them', () =>
    withHarness(open, async (h) => {
      h.storage.kv.write(1, (tx) => tx.put('a', record('one', 1)));
      // A later event turn, as when a node applies entries between two persists.
      await new Promise<void>((resolve) => setImmediate(resolve));
      h.storage.kv.write(2, (tx) => {
        tx.put('b', record('two', 2));
        tx.putDedup(dedup('c1', 1, 2));
      });
      await withDeadline(
        new Promise<void>((resolve, reject) =>
          h.storage.persist(batch({ entries: entries(1, 3, 1), hardState: { term: 1, vote: 'n1', commit: 2 } }), (error) => (error !== null ? reject(error) : resolve())),
        ),
        'persist durable',
      );
      await waitFor(() => h.storage.kv.durableAppliedIndex() === 2, 'the kv writes to be durable');
      const reopened = await h.reopen();
      assert.equal(reopened.kv.appliedIndex(), 2);
      assert.deepEqual(reopened.kv.get('a'), record('one', 1));
      assert.deepEqual(reopened.kv.get('b'), record('two', 2));
      assert.deepEqual(reopened.kv.getDedup('c1'), dedup('c1', 1, 2));
      assert.equal(reopened.log.lastIndex(), 3);
    }));

  test('reopening keeps the log, hard state, kv data, applied index, dedup table and identity', () =>
    withHarness(open, async (h) => {
      const storage = h.storage;
      await withDeadline(
        new Promise<void>((resolve, reject) => storage.setIdentity({ nodeId: 'n2', clusterId: 'cluster-a' }, (e) => (e ? reject(e) : resolve()))),
        'setIdentity',
      );
      assert.throws(() => storage.setIdentity({ nodeId: 'n3', clusterId: 'cluster-a' }, () => {}), /already/);
      await persistDurable(storage, batch({ entries: entries(1, 5, 2), hardState: { term: 2, vote: 'n2', commit: 4 } }));
      await kvWriteDurable(storage, 4, (tx) => {
        tx.put('alpha', record('one', 2));
        tx.put('beta', record(new Uint8Array([1, 2, 3]), 3));
        tx.put('gamma', record('three', 4));
        tx.delete('gamma');
        tx.putDedup(dedup('client-1', 7, 3));
        tx.putDedup(dedup('client-2', 1, 4));
      });
      const reopened = await h.reopen();
      assert.deepEqual(reopened.identity(), { nodeId: 'n2', clusterId: 'cluster-a' });
      assert.deepEqual(reopened.hardState(), { term: 2, vote: 'n2', commit: 4 });
      assert.equal(reopened.log.firstIndex(), 1);
      assert.equal(reopened.log.lastIndex(), 5);
      assert.deepEqual(reopened.log.entries(1, 6, Infinity), entries(1, 5, 2));
      assert.equal(reopened.kv.appliedIndex(), 4);
      assert.equal(reopened.kv.durableAppliedIndex(), 4);
      assert.equal(reopened.kv.keyCount(), 2);
      assert.deepEqual(reopened.kv.get('alpha'), record('one', 2));
      assert.deepEqual(reopened.kv.get('beta'), record(new Uint8Array([1, 2, 3]), 3));
      assert.equal(reopened.kv.get('gamma'), undefined);
      assert.deepEqual(reopened.kv.getDedup('client-1'), dedup('client-1', 7, 3));
      assert.deepEqual(reopened.kv.getDedup('client-2'), dedup('client-2', 1, 4));
      reopened.kv.write(5, (tx) => {
        assert.equal(tx.dedupCount(), 2);
        assert.deepEqual(tx.oldestDedup(1), [dedup('client-1', 7, 3)]);
      });
    }));
}

/** `range` in reverse: the same keys as forwards, descending, with the cursor excluding itself and everything above it. */
function checkReverse(storage: NodeStorage, stage: string, expectedAll: readonly string[]): void {
  const down = (prefix: string, before?: string): string[] =>
    expectedAll.filter((k) => k.startsWith(prefix) && (before === undefined || Buffer.compare(Buffer.from(k), Buffer.from(before)) < 0)).reverse();
  const range = (prefix: string, after: string | undefined, limit: number): string[] => keysOf(storage.kv.range(prefix, after, limit, true));
  assert.deepEqual(range('', undefined, 100), down(''), `${stage}: reverse, all keys`);
  assert.deepEqual(range('a/', undefined, 100), down('a/'), `${stage}: reverse, prefix a/`);
  assert.deepEqual(range('a/', 'a/2', 100), down('a/', 'a/2'), `${stage}: reverse, before a/2`);
  assert.deepEqual(range('a/', 'a/😀', 100), down('a/', 'a/😀'), `${stage}: reverse, before the emoji`);
  assert.deepEqual(range('a/', 'b', 100), down('a/'), `${stage}: reverse, cursor after the prefix`);
  assert.deepEqual(range('a/', 'a/\u{10FFFF}', 100), down('a/'), `${stage}: reverse, cursor past the prefix's last key, inside it`);
  assert.deepEqual(range('a/', '0', 100), [], `${stage}: reverse, cursor before the prefix`);
  assert.deepEqual(range('a', undefined, 3), down('a').slice(0, 3), `${stage}: reverse, limit`);
  assert.deepEqual(range('a', undefined, 0), [], `${stage}: reverse, limit 0`);
  assert.deepEqual(range('zz', undefined, 10), [], `${stage}: reverse, no match`);
  assert.deepEqual(range('a/1', undefined, 10), down('a/1'), `${stage}: reverse, a prefix that is a key too`);
  const paged: string[] = [];
  for (let after: string | undefined, page = range('', undefined, 2); page.length > 0; page = range('', after, 2)) {
    paged.push(...page);
    after = page[page.length - 1];
  }
  assert.deepEqual(paged, down(''), `${stage}: reverse paging`);
}

/** Kv reads and writes: range order and paging, visibility before durability, and a write that throws. */
function kvContract(open: OpenHarness): void {
  test('kv range lists keys by prefix, strictly after a cursor, up to a limit, in UTF-8 byte order', () =>
    withHarness(open, async (h) => {
      // UTF-16 order would put the emoji (a surrogate pair) before U+FFFD; UTF-8 puts it after.
      const keys = ['a', 'a/1', 'a/2', 'a/10', 'a/é', 'a/中', 'a/\uFFFD', 'a/😀', 'ab', 'b', 'é', '😀', '\uFFFD'];
      const expectedAll = utf8Sorted(keys);
      const under = (prefix: string): string[] => expectedAll.filter((k) => k.startsWith(prefix));
      const check = (storage: NodeStorage, stage: string): void => {
        assert.deepEqual(keysOf(storage.kv.range('', undefined, 100)), expectedAll, `${stage}: all keys`);
        assert.deepEqual(keysOf(storage.kv.range('a/', undefined, 100)), under('a/'), `${stage}: prefix a/`);
        assert.deepEqual(keysOf(storage.kv.range('a/', 'a/2', 100)), under('a/').filter((k) => Buffer.compare(Buffer.from(k), Buffer.from('a/2')) > 0), `${stage}: after a/2`);
        assert.deepEqual(keysOf(storage.kv.range('a/', 'a/\uFFFD', 100)), ['a/😀'], `${stage}: after U+FFFD`);
        assert.deepEqual(keysOf(storage.kv.range('a/', '0', 100)), under('a/'), `${stage}: cursor before the prefix`);
        assert.deepEqual(keysOf(storage.kv.range('a/', 'b', 100)), [], `${stage}: cursor after the prefix`);
        assert.deepEqual(keysOf(storage.kv.range('a', undefined, 3)), under('a').slice(0, 3), `${stage}: limit`);
        assert.deepEqual(keysOf(storage.kv.range('a', undefined, 0)), [], `${stage}: limit 0`);
        assert.deepEqual(keysOf(storage.kv.range('zz', undefined, 10)), [], `${stage}: no match`);
        // Paging with the last key as cursor visits every key exactly once.
        const paged: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = storage.kv.range('', after, 2);
          if (page.length === 0) break;
          paged.push(...keysOf(page));
          after = page[page.length - 1]?.key;
        }
        assert.deepEqual(paged, expectedAll, `${stage}: paging`);
        const item = storage.kv.range('a/1', undefined, 1)[0];
        assert.deepEqual(item, { key: 'a/1', value: 'value of a/1', version: 1 }, `${stage}: item shape`);
        checkReverse(storage, stage, expectedAll);
      };
      const storage = h.storage;
      // Half the keys durable, the other half queued, plus queued deletes and overwrites.
      await kvWriteDurable(storage, 1, (tx) => {
        for (const key of keys.slice(0, 7)) tx.put(key, record(`value of ${key}`, 1));
        tx.put('a/gone', record('x', 1));
        tx.put('zz-gone', record('x', 1));
      });
      storage.kv.write(2, (tx) => {
        for (const key of keys.slice(7)) tx.put(key, record(`value of ${key}`, 1));
        tx.delete('a/gone');
        tx.delete('zz-gone');
        tx.delete('never-existed');
      });
      assert.equal(storage.kv.keyCount(), keys.length);
      check(storage, 'queued');
      await waitFor(() => storage.kv.durableAppliedIndex() === 2, 'kv write 2 to be durable');
      check(storage, 'durable');
      check(await h.reopen(), 'reopened');
    }));

  test('kv writes are visible to reads at once and durable later; a write that throws leaves no trace', () =>
    withHarness(open, async ({ storage }) => {
      await kvWriteDurable(storage, 3, (tx) => tx.put('stable', record('s', 3)));
      storage.kv.write(4, (tx) => {
        tx.put('k1', record('v1', 4));
        assert.deepEqual(tx.get('k1'), record('v1', 4), 'a write reads its own changes');
        assert.equal(tx.keyCount(), 2);
        tx.delete('stable');
        assert.equal(tx.get('stable'), undefined);
        tx.putDedup(dedup('c1', 1, 4));
        assert.deepEqual(tx.getDedup('c1'), dedup('c1', 1, 4));
        assert.equal(tx.appliedIndex(), 3);
      });
      assert.deepEqual(storage.kv.get('k1'), record('v1', 4));
      assert.equal(storage.kv.get('stable'), undefined);
      assert.deepEqual(keysOf(storage.kv.range('', undefined, 10)), ['k1']);
      assert.equal(storage.kv.keyCount(), 1);
      assert.equal(storage.kv.appliedIndex(), 4);
      assert.deepEqual(storage.kv.getDedup('c1'), dedup('c1', 1, 4));
      assert.equal(storage.kv.durableAppliedIndex(), 3, 'not durable before the flush');

      assert.throws(
        () =>
          storage.kv.write(5, (tx) => {
            tx.put('k1', record('changed', 5));
            tx.put('k2', record('new', 5));
            tx.delete('k1');
            tx.deleteDedup('c1');
            tx.putDedup(dedup('c2', 1, 5));
            throw new Error('boom');
          }),
        /boom/,
      );
      assert.deepEqual(storage.kv.get('k1'), record('v1', 4));
      assert.equal(storage.kv.get('k2'), undefined);
      assert.equal(storage.kv.keyCount(), 1);
      assert.equal(storage.kv.appliedIndex(), 4);
      assert.deepEqual(storage.kv.getDedup('c1'), dedup('c1', 1, 4));
      assert.equal(storage.kv.getDedup('c2'), undefined);
      assert.throws(() => storage.kv.write(3, () => {}), /below the current 4/);

      await waitFor(() => storage.kv.durableAppliedIndex() === 4, 'kv write 4 to be durable');
      assert.deepEqual(storage.kv.get('k1'), record('v1', 4));
      assert.equal(storage.kv.get('stable'), undefined);
      assert.equal(storage.kv.keyCount(), 1);
    }));
}

/** Log compaction: the prefix goes, the term at the snapshot index stays. */
function compactionContract(open: OpenHarness): void {
  test('compaction drops the log prefix but keeps lastIndex and the term at the snapshot index', () =>
    withHarness(open, async (h) => {
      let storage = h.storage;
      await persistDurable(storage, batch({ entries: [...entries(1, 6, 1), ...entries(7, 12, 2)] }));
      await kvWriteDurable(storage, 8, (tx) => tx.put('k', record('v', 8)));
      assert.throws(() => storage.compact(9, otherConfig), /durable only up to 8/);
      storage.compact(7, otherConfig);
      assert.equal(storage.log.firstIndex(), 8);
      assert.equal(storage.log.lastIndex(), 12);
      assert.equal(storage.log.term(7), 2);
      assert.equal(storage.log.term(6), undefined);
      assert.deepEqual(storage.log.snapshotMeta(), { index: 7, term: 2, config: otherConfig });
      assert.deepEqual(storage.log.entries(8, 13, Infinity), entries(8, 12, 2));
      assert.throws(() => storage.log.entries(7, 9, Infinity), /compacted/);
      storage.compact(5, config); // already compacted further: no effect
      assert.equal(storage.log.firstIndex(), 8);
      // Appending (and truncating) after compaction still works.
      await persistDurable(storage, batch({ entries: [entry(12, 3), entry(13, 3)] }));
      assert.throws(() => storage.persist(batch({ entries: [entry(7, 3)] }), () => {}), /compacted/);
      storage = await h.reopen();
      assert.equal(storage.log.firstIndex(), 8);
      assert.equal(storage.log.lastIndex(), 13);
      assert.equal(storage.log.term(7), 2);
      assert.deepEqual(storage.log.snapshotMeta(), { index: 7, term: 2, config: otherConfig });
      assert.deepEqual(storage.log.entries(8, 14, Infinity), [...entries(8, 11, 2), entry(12, 3), entry(13, 3)]);
      // Compacting everything leaves an empty log that starts after the snapshot.
      await kvWriteDurable(storage, 13, (tx) => tx.put('k', record('v', 13)));
      storage.compact(13, config);
      assert.equal(storage.log.firstIndex(), 14);
      assert.equal(storage.log.lastIndex(), 13);
      assert.equal(storage.log.term(13), 3);
      storage = await h.reopen();
      assert.equal(storage.log.firstIndex(), 14);
      assert.equal(storage.log.lastIndex(), 13);
      assert.equal(storage.log.term(13), 3);
    }));
}

/** Reading a snapshot: every key once, in chunks, consistent while writes go on. */
function snapshotSourceContract(open: OpenHarness): void {
  test('a snapshot source covers every key exactly once, in chunks, unaffected by writes made while it is open', () =>
    withHarness(open, async ({ storage }) => {
      await persistDurable(storage, batch({ entries: entries(1, 100, 5) }));
      const keyOf = (i: number): string => `key/${String(i).padStart(4, '0')}${i % 7 === 0 ? '/é' : ''}`;
      await kvWriteDurable(storage, 10, (tx) => {
        for (let i = 0; i < 200; i++) tx.put(keyOf(i), record(i % 2 === 0 ? `value ${i}` : new Uint8Array([i, i]), 10));
        for (let i = 0; i < 20; i++) tx.putDedup(dedup(`client-${i}`, i, 10));
      });
      // Queued (not yet durable) changes are part of the state too.
      storage.kv.write(20, (tx) => {
        for (let i = 200; i < 260; i++) tx.put(keyOf(i), record(`queued ${i}`, 20));
        for (let i = 0; i < 200; i += 10) tx.delete(keyOf(i));
        for (let i = 1; i < 200; i += 10) tx.put(keyOf(i), record('overwritten', 20));
        tx.putDedup(dedup('client-0', 99, 20));
      });
      const expectedItems = allItems(storage);
      const expectedDedup = [...Array(20).keys()].map((i) => storage.kv.getDedup(`client-${i}`));
      const source = storage.openSnapshot(otherConfig);
      assert.deepEqual(source.meta, { index: 20, term: 5, config: otherConfig });

      const got: KvItem[] = [];
      const gotDedup: DedupRecord[] = [];
      let chunk: SnapshotChunk | null;
      let seq = 0;
      let round = 0;
      while ((chunk = source.readChunk(300)) !== null) {
        assert.equal(chunk.seq, seq++);
        const items = unpackItems(chunk.records);
        assert.ok(items.length + chunk.dedup.length >= 1 || chunk.last, 'a chunk carries at least one record');
        got.push(...items);
        gotDedup.push(...chunk.dedup);
        if (chunk.last) break;
        // Concurrent writes: new keys, overwrites, deletes, dedup changes; some made durable.
        round++;
        // Aimed at keys the source has not reached yet (it reads in key order).
        storage.kv.write(20 + round, (tx) => {
          tx.put(`key/9999/new-${round}`, record('new', 20 + round));
          tx.put(`key/${String(240 - round).padStart(4, '0')}/inserted`, record('inserted', 20 + round));
          tx.put(keyOf(250 - round), record('changed later', 20 + round));
          tx.delete(keyOf(245 - 2 * round));
          tx.putDedup(dedup(`client-${round % 20}`, 1000 + round, 20 + round));
        });
        if (round % 3 === 0) await waitFor(() => storage.kv.durableAppliedIndex() === 20 + round, 'concurrent write durable');
      }
      assert.ok(seq > 5, `expected many chunks, got ${seq}`);
      assert.equal(source.readChunk(300), null, 'no chunk after the last');
      source.close();
      source.close();
      assert.deepEqual(got, expectedItems);
      assert.deepEqual(
        [...gotDedup].sort((a, b) => a.clientId.localeCompare(b.clientId)),
        [...expectedDedup].sort((a, b) => (a as DedupRecord).clientId.localeCompare((b as DedupRecord).clientId)),
      );
      // One big chunk gives the same state.
      const whole = readAllChunks(storage, Infinity);
      assert.equal(whole.length, 1);
      assert.deepEqual(unpackItems(whole[0]?.records ?? new Uint8Array(0)), allItems(storage));
    }));
}

/** Installing a snapshot: staged chunks in order, within snapshotBytesMax, replacing the state machine and the log. */
function snapshotInstallContract(open: OpenHarness): void {
  test('staged chunks installed by persist replace the state machine and the log', () =>
    withHarness(open, async (h) => {
      let storage = h.storage;
      await persistDurable(storage, batch({ entries: entries(1, 8, 1), hardState: { term: 1, vote: 'n1', commit: 6 } }));
      await kvWriteDurable(storage, 6, (tx) => {
        tx.put('old', record('old', 6));
        tx.put('shared', record('old', 6));
        tx.putDedup(dedup('old-client', 1, 6));
      });
      storage.kv.write(7, (tx) => tx.put('queued-old', record('x', 7))); // still queued at install time
      const meta: SnapshotMeta = { index: 50, term: 4, config: otherConfig };
      assert.throws(() => storage.persist(batch({ snapshot: meta }), () => {}), /no complete staged snapshot/);
      assert.throws(() => storage.stageSnapshotChunk({ seq: 1, records: packItems([]), dedup: [], last: false }), /expected seq 0|no staging/);
      storage.stageSnapshotChunk({ seq: 0, records: packItems([{ key: 'a', value: 'A', version: 40 }]), dedup: [], last: false });
      assert.throws(() => storage.stageSnapshotChunk({ seq: 2, records: packItems([]), dedup: [], last: true }), /expected chunk 1/);
      storage.stageSnapshotChunk({
        seq: 1,
        records: packItems([
          { key: 'b', value: 'B', version: 50 },
          { key: 'shared', value: new Uint8Array([9]), version: 45 },
        ]),
        dedup: [dedup('new-client', 3, 44)],
        last: false,
      });
      assert.throws(() => storage.persist(batch({ snapshot: meta }), () => {}), /no complete staged snapshot/);
      storage.stageSnapshotChunk({ seq: 2, records: packItems([{ key: 'z/😀', value: '', version: 41 }]), dedup: [], last: true });
      assert.throws(() => storage.stageSnapshotChunk({ seq: 3, records: packItems([]), dedup: [], last: true }), /was the last/);
      // Staging does not touch the live state.
      assert.deepEqual(keysOf(allItems(storage)), ['old', 'queued-old', 'shared']);

      const installed = batch({ snapshot: meta, entries: [entry(51, 4), entry(52, 4)], hardState: { term: 4, vote: null, commit: 50 } });
      let durable = false;
      storage.persist(installed, (error) => {
        assert.equal(error, null);
        durable = true;
      });
      const expectedItems: KvItem[] = [
        { key: 'a', value: 'A', version: 40 },
        { key: 'b', value: 'B', version: 50 },
        { key: 'shared', value: new Uint8Array([9]), version: 45 },
        { key: 'z/😀', value: '', version: 41 },
      ];
      const checkInstalled = (s: NodeStorage, stage: string): void => {
        assert.deepEqual(allItems(s), expectedItems, `${stage}: kv`);
        assert.equal(s.kv.keyCount(), 4, `${stage}: keyCount`);
        assert.equal(s.kv.get('old'), undefined, `${stage}: old key gone`);
        assert.equal(s.kv.getDedup('old-client'), undefined, `${stage}: old dedup gone`);
        assert.deepEqual(s.kv.getDedup('new-client'), dedup('new-client', 3, 44), `${stage}: dedup`);
        assert.equal(s.kv.appliedIndex(), 50, `${stage}: applied`);
        assert.deepEqual(s.log.snapshotMeta(), meta, `${stage}: snapshot meta`);
        assert.equal(s.log.firstIndex(), 51, `${stage}: first`);
        assert.equal(s.log.lastIndex(), 52, `${stage}: last`);
        assert.equal(s.log.term(50), 4, `${stage}: term at snapshot`);
        assert.equal(s.log.term(8), undefined, `${stage}: old entries gone`);
        assert.deepEqual(s.log.entries(51, 53, Infinity), [entry(51, 4), entry(52, 4)], `${stage}: entries`);
        assert.deepEqual(s.hardState(), { term: 4, vote: null, commit: 50 }, `${stage}: hard state`);
      };
      checkInstalled(storage, 'queued');
      assert.ok(storage.kv.durableAppliedIndex() <= 50);
      await waitFor(() => durable, 'install to be durable');
      await waitFor(() => storage.kv.durableAppliedIndex() === 50, 'durable applied index 50');
      checkInstalled(storage, 'durable');
      storage = await h.reopen();
      checkInstalled(storage, 'reopened');
      storage.kv.write(53, (tx) => tx.put('after', record('after', 53)));
      await waitFor(() => storage.kv.durableAppliedIndex() === 53, 'write after install durable');
      storage = await h.reopen();
      assert.deepEqual(storage.kv.get('after'), record('after', 53));
      assert.equal(storage.kv.keyCount(), 5);
      // A second staging after a reopen starts from seq 0 again and can be installed too.
      assert.throws(() => storage.stageSnapshotChunk({ seq: 3, records: packItems([]), dedup: [], last: true }), /no staging/);
      storage.stageSnapshotChunk({ seq: 0, records: packItems([{ key: 'only', value: 'one', version: 60 }]), dedup: [], last: true });
      assert.deepEqual(storage.kv.get('after'), record('after', 53), 'staging leaves the live state alone');
      await persistDurable(storage, batch({ snapshot: { index: 60, term: 5, config }, hardState: { term: 5, vote: null, commit: 60 } }));
      assert.deepEqual(allItems(storage), [{ key: 'only', value: 'one', version: 60 }]);
      assert.equal(storage.log.lastIndex(), 60);
      storage = await h.reopen();
      assert.deepEqual(allItems(storage), [{ key: 'only', value: 'one', version: 60 }]);
      assert.equal(storage.log.firstIndex(), 61);
      assert.equal(storage.kv.appliedIndex(), 60);
    }));

  test('staging more than snapshotBytesMax throws and abandons the staged snapshot', () =>
    withHarness(open, async ({ storage }) => {
      const half = new Uint8Array(contractStorageOptions.snapshotBytesMax / 2);
      storage.stageSnapshotChunk({ seq: 0, records: packItems([{ key: 'a', value: half, version: 1 }]), dedup: [], last: false });
      assert.throws(
        () => storage.stageSnapshotChunk({ seq: 1, records: packItems([{ key: 'b', value: half, version: 1 }]), dedup: [], last: true }),
        /snapshotBytesMax/,
      );
      assert.throws(() => storage.persist(batch({ snapshot: { index: 5, term: 1, config } }), () => {}), /no complete staged snapshot/);
      assert.equal(storage.kv.keyCount(), 0);
    }));
}

/** A chunk's packed records as a peer or a file could spoil them (snapshot-records.ts layout). */
function spoiledChunks(): { readonly why: RegExp; readonly records: Uint8Array }[] {
  const good = Buffer.from(packItems([{ key: 'k', value: 'text', version: 3 }]));
  const at = (offset: number, byte: number): Buffer => {
    const copy = Buffer.from(good);
    copy[offset] = byte;
    return copy;
  };
  // [key length u16][key 'k'][record length u32][tag][version f64][value]
  return [
    { why: /runs past the end/, records: good.subarray(0, good.length - 1) },
    { why: /truncated/, records: good.subarray(0, 1) },
    { why: /key of 0 bytes/, records: at(0, 0) },
    { why: /key is not UTF-8/, records: at(2, 0xff) },
    { why: /value tag 7/, records: at(7, 7) },
    { why: /text value is not UTF-8/, records: at(good.length - 1, 0xc3) },
    { why: /version/, records: at(15, 0xff) },
    { why: /out of order or repeated/, records: packItems([{ key: 'b', value: '', version: 1 }, { key: 'a', value: '', version: 1 }]) },
    { why: /out of order or repeated/, records: Buffer.concat([good, good]) },
  ];
}

/** Staging refuses what no storage could hold, from a peer or a file, and keeps nothing of it. */
function snapshotRefusalContract(open: OpenHarness): void {
  test('staging refuses malformed, repeated or out-of-order records and abandons the staged snapshot', () =>
    withHarness(open, async ({ storage }) => {
      for (const { why, records } of spoiledChunks()) {
        assert.throws(() => storage.stageSnapshotChunk({ seq: 0, records, dedup: [], last: true }), why);
        assert.throws(() => storage.persist(batch({ snapshot: { index: 5, term: 1, config } }), () => {}), /no complete staged snapshot/);
      }
      // Keys must ascend across chunks too: a later chunk may not go back.
      storage.stageSnapshotChunk({ seq: 0, records: packItems([{ key: 'm', value: 'M', version: 1 }]), dedup: [], last: false });
      assert.throws(() => storage.stageSnapshotChunk({ seq: 1, records: packItems([{ key: 'c', value: 'C', version: 1 }]), dedup: [], last: true }), /out of order/);
      assert.throws(() => storage.stageSnapshotChunk({ seq: 1, records: packItems([]), dedup: [], last: true }), /no staging/);
      // A fresh staging after a refusal installs normally.
      storage.stageSnapshotChunk({ seq: 0, records: packItems([{ key: 'm', value: 'M', version: 1 }]), dedup: [], last: false });
      storage.stageSnapshotChunk({ seq: 1, records: packItems([{ key: 'n', value: 'N', version: 2 }]), dedup: [], last: true });
      await persistDurable(storage, batch({ snapshot: { index: 5, term: 1, config }, hardState: { term: 1, vote: null, commit: 5 } }));
      assert.deepEqual(allItems(storage), [
        { key: 'm', value: 'M', version: 1 },
        { key: 'n', value: 'N', version: 2 },
      ]);
      assert.equal(storage.kv.keyCount(), 2);
    }));
}

/** What a key and a value may be: value types survive, key size and Unicode limits hold. */
function keysAndValuesContract(open: OpenHarness): void {
  test('string and byte values keep their type, including empty ones, across a reopen', () =>
    withHarness(open, async (h) => {
      const values: [string, string | Uint8Array][] = [
        ['s', 'text'],
        ['s-empty', ''],
        ['s-digits', '123'],
        ['s-unicode', 'é中😀'],
        ['s-lone-surrogates', 'a\uD800b\uDC00'],
        ['b', new Uint8Array([0, 1, 255])],
        ['b-empty', new Uint8Array(0)],
        ['b-text', new TextEncoder().encode('text')],
        ['b-long', new Uint8Array(3000).fill(7)],
        ['s-long', 'é'.repeat(1500)],
      ];
      const check = (storage: NodeStorage, stage: string): void => {
        for (const [key, value] of values) {
          const got = storage.kv.get(key);
          assert.ok(got !== undefined, `${stage}: ${key} present`);
          if (typeof value === 'string') assert.equal(typeof got.value, 'string', `${stage}: ${key} stays a string`);
          else {
            assert.ok(got.value instanceof Uint8Array, `${stage}: ${key} stays bytes`);
            assert.equal(Object.getPrototypeOf(got.value), Uint8Array.prototype, `${stage}: ${key} is a plain Uint8Array`);
          }
          assert.deepEqual(got, record(value, 1), `${stage}: ${key}`);
        }
      };
      await kvWriteDurable(h.storage, 1, (tx) => {
        for (const [key, value] of values) tx.put(key, record(value, 1));
      });
      check(h.storage, 'written');
      const reopened = await h.reopen();
      check(reopened, 'reopened');
      // Reads decode out of a buffer lmdb-js reuses: a value read first must not change when others are read.
      const first = reopened.kv.get('b')?.value;
      for (const [key] of values) reopened.kv.get(key);
      assert.deepEqual(first, new Uint8Array([0, 1, 255]), 'a byte value read earlier is its own copy');
    }));

  test('a record whose value is in its row (kv/value-rows.ts) reads back as one, across a reopen, a listing and a snapshot', () =>
    withHarness(open, async (h) => {
      await persistDurable(h.storage, batch({ entries: entries(1, 3, 1) }));
      await kvWriteDurable(h.storage, 3, (tx) => {
        tx.put('in-row', record(valueInRow, 3));
        tx.put('bytes', record(new Uint8Array(0), 2));
      });
      const check = (storage: NodeStorage, stage: string): void => {
        const got = storage.kv.get('in-row');
        assert.ok(got !== undefined && isInRow(got) && got.version === 3, `${stage}: in its row`);
        assert.ok(!isInRow(storage.kv.get('bytes') as KvRecord), `${stage}: an empty byte value is a value`);
        assert.deepEqual(storage.kv.range('', undefined, 10).map((i) => [i.key, isInRow(i)]), [['bytes', false], ['in-row', true]], `${stage}: listed`);
        const [chunk] = readAllChunks(storage, Infinity);
        assert.deepEqual(unpackItems(chunk?.records ?? new Uint8Array(0)).map((i) => [i.key, isInRow(i)]), [['bytes', false], ['in-row', true]], `${stage}: in a snapshot`);
      };
      check(h.storage, 'written');
      check(await h.reopen(), 'reopened');
    }));

  test('keys up to 1978 UTF-8 bytes are accepted; empty, longer and invalid Unicode keys are refused', () =>
    withHarness(open, async (h) => {
      const longest = 'k'.repeat(1976) + 'é'; // 1978 bytes
      const alsoLong = 'k'.repeat(1977) + 'z';
      await kvWriteDurable(h.storage, 1, (tx) => {
        tx.put(longest, record('l', 1));
        tx.put(alsoLong, record('z', 1));
        tx.put('m', record('m', 1));
      });
      for (const bad of ['', 'k'.repeat(1979), '中'.repeat(700), 'bad\uD800']) {
        assert.throws(() => h.storage.kv.write(2, (tx) => tx.put(bad, record('x', 2))), /key/);
      }
      assert.equal(h.storage.kv.appliedIndex(), 1);
      const storage = await h.reopen();
      assert.deepEqual(storage.kv.get(longest), record('l', 1));
      assert.equal(storage.kv.get('k'.repeat(5000)), undefined);
      assert.equal(storage.kv.get(''), undefined);
      // Cursors and prefixes at (or past) the size limit work too.
      const all = utf8Sorted([longest, alsoLong, 'm']);
      const after = (cursor: string): string[] => all.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(cursor)) > 0);
      const before = (cursor: string): string[] => all.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(cursor)) < 0).reverse();
      for (const cursor of [longest, alsoLong, 'k'.repeat(3000)]) {
        assert.ok(keysOf(storage.kv.range('', cursor, 10)).join() === after(cursor).join(), `range after a ${cursor.length}-unit cursor`);
        assert.ok(keysOf(storage.kv.range('', cursor, 10, true)).join() === before(cursor).join(), `reverse range before a ${cursor.length}-unit cursor`);
      }
      assert.deepEqual(storage.kv.range('k'.repeat(3000), undefined, 10, true), []);
      assert.deepEqual(storage.kv.range('k'.repeat(3000), undefined, 10), []);
    }));
}

/** The dedup table: oldest sessions first, deletions forgotten. */
function dedupContract(open: OpenHarness): void {
  test('the dedup table lists the oldest sessions first and forgets deleted ones', () =>
    withHarness(open, async (h) => {
      await kvWriteDurable(h.storage, 3, (tx) => {
        tx.putDedup(dedup('c', 1, 3));
        tx.putDedup(dedup('a', 1, 1));
        tx.putDedup(dedup('b', 1, 2));
      });
      h.storage.kv.write(5, (tx) => {
        assert.deepEqual(tx.oldestDedup(2).map((r) => r.clientId), ['a', 'b']);
        tx.putDedup(dedup('a', 2, 5)); // refreshed: now the newest
        tx.deleteDedup('b');
        assert.equal(tx.dedupCount(), 2);
        assert.deepEqual(tx.oldestDedup(5).map((r) => r.clientId), ['c', 'a']);
        assert.deepEqual(tx.oldestDedup(0), []);
      });
      await waitFor(() => h.storage.kv.durableAppliedIndex() === 5, 'dedup write durable');
      const reopened = await h.reopen();
      assert.deepEqual(reopened.kv.getDedup('a'), dedup('a', 2, 5));
      assert.equal(reopened.kv.getDedup('b'), undefined);
      reopened.kv.write(6, (tx) => assert.deepEqual(tx.oldestDedup(5).map((r) => r.clientId), ['c', 'a']));
    }));
}
