import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../core/types.js';
import { createMemoryStorage } from '../storage/memory.js';
import { encodeCommand, packTuple } from './codec.js';
import { compactRecordsPerEntryMax } from './history.js';
import { createKvStateMachine } from './state-machine.js';
import type { KvBackend, KvWriter } from '../storage/types.js';
import type { Command } from './types.js';
import { testMachine } from './testing/machine.js';

/** A one-node memory store, flushed by hand. */
const memory = (): ReturnType<typeof createMemoryStorage> => createMemoryStorage({ initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' }, snapshotBytesMax: 1 << 20, flushMode: 'manual' });

test('every version that changed client keys is recorded with each key\'s new value and the record it replaced', () => {
  const m = testMachine(memory().kv);
  m.run({ op: 'put', key: 'a', value: 'x' }); // 1
  m.run({ op: 'put', key: 'a', value: 'y' }); // 2
  m.noop(); // 3: changes nothing
  m.run({ op: 'delete', key: 'missing' }); // 4: deletes nothing
  m.run({ op: 'txn', compare: [], success: [{ op: 'put', key: 'b', value: 'z' }, { op: 'delete', key: 'a' }, { op: 'get', key: 'b' }], failure: [] }); // 5
  assert.deepEqual(m.sm.changes(1, 100), [
    { version: 1, changes: [{ key: 'a', value: 'x', prev: undefined }] },
    { version: 2, changes: [{ key: 'a', value: 'y', prev: { value: 'x', version: 1 } }] },
    {
      version: 5,
      changes: [
        { key: 'b', value: 'z', prev: undefined },
        { key: 'a', value: undefined, prev: { value: 'y', version: 2 } },
      ],
    },
  ]);
  assert.deepEqual(m.sm.changes(3, 100).map((v) => v.version), [5], 'a read from version 3 starts at the first record at or after it');
  assert.deepEqual(m.sm.changes(2, 1).map((v) => v.version), [2], 'bounded by versionsMax');
  assert.equal(m.sm.keyCount(), 1, 'keyCount counts client keys, not history records');
});

const historyRecordKey = (version: number): string => `\u0000h/${version.toString(16).padStart(14, '0')}`;

test("each value is stored once: a change's row keeps the value it replaced, and a read finds the one a put wrote in the key's next change or in the key itself", () => {
  const m = testMachine(memory().kv);
  m.run({ op: 'put', key: 'a', value: 'v1' }); // 1
  m.run({ op: 'put', key: 'a', value: 'v2' }); // 2
  m.run({ op: 'txn', compare: [], success: [{ op: 'put', key: 'a', value: 'v3' }, { op: 'put', key: 'a', value: 'v4' }], failure: [] }); // 3
  m.run({ op: 'delete', key: 'a' }); // 4
  m.run({ op: 'put', key: 'a', value: 'v5' }); // 5
  const big = 'b'.repeat(8192);
  m.run({ op: 'put', key: 'b', value: big }); // 6
  const expected = [
    { version: 1, changes: [{ key: 'a', value: 'v1', prev: undefined }] },
    { version: 2, changes: [{ key: 'a', value: 'v2', prev: { value: 'v1', version: 1 } }] },
    {
      version: 3,
      changes: [
        { key: 'a', value: 'v3', prev: { value: 'v2', version: 2 } },
        { key: 'a', value: 'v4', prev: { value: 'v3', version: 3 } },
      ],
    },
    { version: 4, changes: [{ key: 'a', value: undefined, prev: { value: 'v4', version: 3 } }] },
    { version: 5, changes: [{ key: 'a', value: 'v5', prev: undefined }] },
    { version: 6, changes: [{ key: 'b', value: big, prev: undefined }] },
  ];
  assert.deepEqual(m.sm.changes(1, 100), expected, 'one read: each put resolved from a later change it read');
  const oneByOne = expected.map((v) => m.sm.changes(v.version, 1)[0]);
  assert.deepEqual(oneByOne, expected, 'a version at a time: each put resolved through the key index or the key itself');
  const record = m.sm.get(historyRecordKey(6));
  assert.ok(record !== undefined && typeof record.value !== 'string');
  assert.ok(record.value.byteLength < 100, `the history record of a new key holds no copy of its ${big.length}-byte value (${record.value.byteLength} bytes)`);
  m.run({ op: 'put', key: 'b', value: 'small' }); // 7
  assert.deepEqual(m.sm.changes(6, 1), [expected[5]], 'once overwritten, the value comes from the change that replaced it');
  m.run({ op: 'compact', beforeVersion: 3 }); // 8
  assert.deepEqual(m.sm.changes(3, 4), expected.slice(2), 'compaction removes no value a kept version needs');
  assert.deepEqual(m.sm.getAt('a', 3), { ok: true, value: { value: 'v4', version: 3 } });
});

test('a long text value is stored from the entry\'s bytes as the same record a string would make, and reads back, now and in the history', () => {
  const m = testMachine(memory().kv);
  const value = 'ü€😀x'.repeat(40_000); // > 128 KiB of UTF-8, multi-byte included
  m.run({ op: 'put', key: 'big', value }); // 1
  m.run({ op: 'put', key: 'big', value: 'small' }); // 2
  m.run({ op: 'put', key: 'big', value }); // 3
  assert.equal(m.sm.get('big')?.value, value);
  assert.deepEqual(m.sm.get('big'), { value, version: 3 });
  const history = m.sm.changes(1, 10);
  assert.deepEqual(history.map((v) => v.changes.map((c) => [c.value, c.prev?.version])), [[[value, undefined]], [['small', 1]], [[value, 2]]]);
  assert.equal(history[1]?.changes[0]?.prev?.value, value);
});

test('history records written before values were stored once (format 2: value and previous value in each row) still read, next to the new ones', () => {
  const kv = memory().kv;
  kv.write(2, (tx) => {
    const rows = [
      [1, [['a', 'x', null, 0]]],
      [2, [['a', 'y', 'x', 1], ['gone', null, 'old', 1]]],
    ];
    tx.put(historyRecordKey(2), { value: packTuple([2, rows], 'history record'), version: 2 });
    tx.put('a', { value: 'y', version: 2 });
  });
  const sm = createKvStateMachine(kv, { dedupClientsMax: 100 });
  sm.apply([{ term: 1, index: 3, kind: 'normal', data: encodeCommand({ op: 'put', key: 'a', value: 'z' }) }]);
  assert.deepEqual(sm.changes(1, 100), [
    { version: 1, changes: [{ key: 'a', value: 'x', prev: undefined }] },
    {
      version: 2,
      changes: [
        { key: 'a', value: 'y', prev: { value: 'x', version: 1 } },
        { key: 'gone', value: undefined, prev: { value: 'old', version: 1 } },
      ],
    },
    { version: 3, changes: [{ key: 'a', value: 'z', prev: { value: 'y', version: 2 } }] },
  ]);
  assert.deepEqual(sm.getAt('a', 1), { ok: true, value: { value: 'x', version: 1 } });
});

test('a lease ending deletes its keys in one recorded version; lease bookkeeping is not a change', () => {
  const m = testMachine(memory().kv);
  const grant = m.run({ op: 'lease-grant', ttlMs: 1000 });
  assert.ok(grant.ok && grant.op === 'lease-grant');
  m.run({ op: 'put', key: 's/1', value: 'a', lease: grant.id });
  m.run({ op: 'put', key: 's/2', value: 'b', lease: grant.id });
  const revoke = m.run({ op: 'lease-revoke', id: grant.id, reason: 'expired' });
  assert.ok(revoke.ok);
  const all = m.sm.changes(1, 100);
  assert.deepEqual(all.map((v) => v.version), [2, 3, 4], 'the grant changed no client key');
  assert.deepEqual(all[2]?.changes.map((c) => [c.key, c.value]), [['s/1', undefined], ['s/2', undefined]]);
  assert.equal(m.sm.keyCount(), 0);
});

test('compaction drops the history below a version, reports how far it got, and never goes back', () => {
  const m = testMachine(memory().kv);
  for (let i = 0; i < 5; i++) m.run({ op: 'put', key: `k${i}`, value: String(i) }); // 1..5
  assert.equal(m.sm.compactedBelow(), 1);
  const r = m.run({ op: 'compact', beforeVersion: 4 }); // 6
  assert.deepEqual(r, { ok: true, op: 'compact', compactedBelow: 4, removed: 3, version: 6 });
  assert.equal(m.sm.compactedBelow(), 4);
  assert.deepEqual(m.sm.changes(1, 100).map((v) => v.version), [4, 5]);
  assert.deepEqual(m.run({ op: 'compact', beforeVersion: 2 }), { ok: true, op: 'compact', compactedBelow: 4, removed: 0, version: 7 });
  assert.equal(m.sm.keyCount(), 5, 'compaction removes history, never keys');
});

test('one compact entry removes at most compactRecordsPerEntryMax records and says where it stopped', () => {
  const m = testMachine(memory().kv);
  const n = compactRecordsPerEntryMax + 5;
  for (let i = 0; i < n; i++) m.run({ op: 'put', key: 'k', value: String(i) }); // 1..n
  const r = m.run({ op: 'compact', beforeVersion: n + 1 });
  assert.ok(r.ok && r.op === 'compact');
  assert.equal(r.removed, compactRecordsPerEntryMax);
  assert.equal(r.compactedBelow, compactRecordsPerEntryMax + 1);
  assert.equal(m.sm.changes(1, 100)[0]?.version, compactRecordsPerEntryMax + 1);
});

test('a compaction reads the history it removes, not the history it keeps', () => {
  const kv = memory().kv;
  let historyItemsRead = 0;
  // Counts the history records that state-machine transactions read through range().
  const countingTx = (tx: KvWriter): KvWriter =>
    new Proxy(tx, {
      get: (target, prop) => {
        if (prop === 'range') {
          return (...args: Parameters<KvWriter['range']>) => {
            const items = target.range(...args);
            if (args[0].startsWith('\u0000h/')) historyItemsRead += items.length;
            return items;
          };
        }
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  const counted: KvBackend = new Proxy(kv, {
    get: (target, prop) => {
      if (prop === 'write') return (index: number, mutate: (tx: KvWriter) => void) => target.write(index, (tx) => mutate(countingTx(tx)));
      const value: unknown = Reflect.get(target, prop);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const sm = createKvStateMachine(counted, { dedupClientsMax: 100 });
  const versions = 2_000;
  for (let index = 1; index <= versions; index++) sm.apply([{ term: 1, index, kind: 'normal', data: encodeCommand({ op: 'put', key: `k${index % 7}`, value: 'v'.repeat(64) }) }]);
  historyItemsRead = 0;
  const index = versions + 1;
  const result = sm.apply([{ term: 1, index, kind: 'normal', data: encodeCommand({ op: 'compact', beforeVersion: 21 }) }]).get(index);
  assert.ok(result?.ok && result.op === 'compact');
  assert.equal(result.removed, 20);
  assert.ok(historyItemsRead <= 20 + 16 + 1, `the compaction read ${historyItemsRead} history records to remove 20 of ${versions}`);
});

test('a key and a prefix read as they were at a past version: changed, deleted and re-created keys included', () => {
  const m = testMachine(memory().kv);
  m.run({ op: 'put', key: 'p/a', value: 'a1' }); // 1
  m.run({ op: 'put', key: 'p/b', value: 'b1' }); // 2
  m.run({ op: 'put', key: 'q', value: 'outside' }); // 3
  m.run({ op: 'put', key: 'p/a', value: 'a2' }); // 4
  m.run({ op: 'delete', key: 'p/b' }); // 5
  m.run({ op: 'put', key: 'p/c', value: 'c1' }); // 6
  m.run({ op: 'put', key: 'p/b', value: 'b2' }); // 7
  const at = (key: string, v: number) => {
    const r = m.sm.getAt(key, v);
    assert.ok(r.ok);
    return r.value;
  };
  assert.deepEqual(at('p/a', 3), { value: 'a1', version: 1 });
  assert.deepEqual(at('p/a', 4), { value: 'a2', version: 4 });
  assert.equal(at('p/a', 0), undefined);
  assert.equal(at('p/b', 5), undefined, 'deleted at 5');
  assert.deepEqual(at('p/b', 6), undefined);
  assert.deepEqual(at('p/b', 7), { value: 'b2', version: 7 });
  const page = (v: number, after?: string, limit = 10) => {
    const r = m.sm.rangeAt('p/', after, limit, v);
    assert.ok(r.ok);
    return r.value.map((i) => `${i.key}=${String(i.value)}@${i.version}`);
  };
  assert.deepEqual(page(2), ['p/a=a1@1', 'p/b=b1@2']);
  assert.deepEqual(page(5), ['p/a=a2@4']);
  assert.deepEqual(page(6), ['p/a=a2@4', 'p/c=c1@6']);
  assert.deepEqual(page(7), ['p/a=a2@4', 'p/b=b2@7', 'p/c=c1@6']);
  // Paged: every page at the same version, whatever was written since.
  assert.deepEqual(page(2, undefined, 1), ['p/a=a1@1']);
  m.run({ op: 'delete', key: 'p/a' }); // 8
  assert.deepEqual(page(2, 'p/a', 1), ['p/b=b1@2']);
  const all = m.sm.rangeAt('', undefined, 10, 3);
  assert.ok(all.ok);
  assert.deepEqual(all.value.map((i) => i.key), ['p/a', 'p/b', 'q'], 'a listing from the start shows client keys only');
});

test('a list in reverse, now and at a past version, is the forward list backwards, page after page, and never shows reserved records', () => {
  const m = testMachine(memory().kv);
  m.run({ op: 'put', key: 'p/a', value: 'a1' }); // 1
  m.run({ op: 'put', key: 'p/b', value: 'b1' }); // 2
  m.run({ op: 'put', key: 'q', value: 'outside' }); // 3
  m.run({ op: 'put', key: 'p/d', value: 'd1', ttlMs: 1000 }); // 4: a lease (reserved records) too
  m.run({ op: 'delete', key: 'p/b' }); // 5
  m.run({ op: 'put', key: 'p/c', value: 'c1' }); // 6
  m.run({ op: 'put', key: 'p', value: 'the prefix itself' }); // 7
  const keys = (items: readonly { key: string; version: number }[]) => items.map((i) => `${i.key}@${i.version}`);
  const at = (prefix: string, v: number, reverse: boolean, after?: string, limit = 10) => {
    const r = m.sm.rangeAt(prefix, after, limit, v, reverse);
    assert.ok(r.ok);
    return keys(r.value);
  };
  assert.deepEqual(keys(m.sm.range('', undefined, 100, true)), ['q@3', 'p/d@4', 'p/c@6', 'p/a@1', 'p@7'], 'now: every client key, descending, no reserved one');
  assert.deepEqual(keys(m.sm.range('p/', 'p/c', 100, true)), ['p/a@1'], 'before the cursor p/c');
  for (const v of [2, 4, 5, 7]) {
    for (const prefix of ['', 'p', 'p/']) assert.deepEqual(at(prefix, v, true), at(prefix, v, false).reverse(), `at ${v} under ${JSON.stringify(prefix)}`);
  }
  assert.deepEqual(at('p/', 4, true), ['p/d@4', 'p/b@2', 'p/a@1'], 'p/b, deleted since, is there at 4; p/c, created since, is not');
  // Paged backwards at one version, whatever is written meanwhile.
  const first = at('p/', 4, true, undefined, 2);
  assert.deepEqual(first, ['p/d@4', 'p/b@2']);
  m.run({ op: 'put', key: 'p/0', value: 'new' }); // 8
  m.run({ op: 'delete', key: 'p/a' }); // 9
  assert.deepEqual(at('p/', 4, true, 'p/b', 2), ['p/a@1']);
  assert.deepEqual(at('p/', 4, true, 'p/a', 2), []);
});

test('a version the compacted history no longer reaches is refused with the oldest one left; compaction keeps reads above it exact', () => {
  const m = testMachine(memory().kv);
  for (let i = 1; i <= 6; i++) m.run({ op: 'put', key: `k${i % 2}`, value: String(i) }); // 1..6
  m.run({ op: 'compact', beforeVersion: 5 }); // 7
  assert.deepEqual(m.sm.getAt('k1', 2), { ok: false, compactedBelow: 5 });
  assert.deepEqual(m.sm.rangeAt('k', undefined, 10, 3), { ok: false, compactedBelow: 5 });
  assert.deepEqual(m.sm.getAt('k1', 4), { ok: true, value: { value: '3', version: 3 } });
  assert.deepEqual(m.sm.getAt('k0', 5), { ok: true, value: { value: '4', version: 4 } });
  assert.deepEqual(m.sm.getAt('k1', 6), { ok: true, value: { value: '5', version: 5 } });
  assert.equal(m.sm.keyCount(), 2);
});

test('the in-memory key index follows a state replaced beneath it (as by a snapshot install): reads at a version rebuild it', () => {
  const kv = memory().kv;
  const writer = createKvStateMachine(kv, { dedupClientsMax: 10 });
  const reader = createKvStateMachine(kv, { dedupClientsMax: 10 });
  writer.apply([{ term: 1, index: 1, kind: 'normal', data: encodeCommand({ op: 'put', key: 'k', value: 'a' }) }]);
  writer.apply([{ term: 1, index: 2, kind: 'normal', data: encodeCommand({ op: 'put', key: 'k', value: 'b' }) }]);
  // `reader` saw none of it: its index is stale and must be rebuilt, not trusted.
  assert.deepEqual(reader.getAt('k', 1), { ok: true, value: { value: 'a', version: 1 } });
  const page = reader.rangeAt('', undefined, 10, 1);
  assert.ok(page.ok);
  assert.deepEqual(page.value, [{ key: 'k', value: 'a', version: 1 }]);
});

test('an apply batch writes one history record for all its versions; reads from inside it and compaction across it stay exact', () => {
  const kv = memory().kv;
  const sm = createKvStateMachine(kv, { dedupClientsMax: 10 });
  const entry = (index: number, command: Command): Entry => ({ term: 1, index, kind: 'normal', data: encodeCommand(command) });
  const recordsBefore = kv.keyCount();
  sm.apply([entry(1, { op: 'put', key: 'a', value: '1' }), entry(2, { op: 'put', key: 'b', value: '2' }), entry(3, { op: 'put', key: 'a', value: '3' })]);
  assert.equal(kv.keyCount() - recordsBefore, 2 + 1 + 1, 'two keys, one history record, the reserved count');
  assert.deepEqual(sm.changes(2, 10).map((v) => v.version), [2, 3]);
  assert.deepEqual(sm.changes(1, 2).map((v) => v.version), [1, 2], 'bounded by versions, not records');
  // A compaction inside the batch keeps the record (its older versions are below the point).
  sm.apply([entry(4, { op: 'compact', beforeVersion: 2 })]);
  assert.equal(sm.compactedBelow(), 2);
  assert.deepEqual(sm.changes(2, 10).map((v) => v.version), [2, 3]);
  assert.deepEqual(sm.getAt('a', 2), { ok: true, value: { value: '1', version: 1 } });
  sm.apply([entry(5, { op: 'compact', beforeVersion: 4 })]);
  assert.deepEqual(sm.changes(1, 10), [], 'the whole batch is gone once the point passes its last version');
  assert.deepEqual(sm.getAt('a', 3), { ok: true, value: { value: '3', version: 3 } });
});
