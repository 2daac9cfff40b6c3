import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../core/types.js';
import { createMemoryStorage } from '../storage/memory.js';
import { isInRow, type KvBackend } from '../storage/types.js';
import { encodeCommand } from './codec.js';
import { createKvStateMachine } from './state-machine.js';
import { testMachine } from './testing/machine.js';
import { valueRowBytesMin, valueRowKey, valueRowPrefix } from './value-rows.js';

/** A one-node memory store, flushed by hand. */
const memory = (): ReturnType<typeof createMemoryStorage> => createMemoryStorage({ initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' }, snapshotBytesMax: 1 << 24, flushMode: 'manual' });

const large = (fill: string): string => fill.repeat(valueRowBytesMin);
const rows = (kv: KvBackend): string[] => kv.range(valueRowPrefix, undefined, 1000).map((i) => i.key);
const historyRows = (kv: KvBackend): number => kv.range('\u0000h/', undefined, 1000).reduce((sum, i) => sum + (typeof i.value === 'string' ? i.value.length : i.value.byteLength), 0);

test('a large value is stored once in a row of its own: an overwrite copies nothing into the history, and every read still sees each value', () => {
  const m = testMachine(memory().kv);
  const [a, b] = [large('a'), large('b')];
  m.run({ op: 'put', key: 'k', value: a }); // 1
  m.run({ op: 'put', key: 'k', value: b }); // 2
  m.run({ op: 'put', key: 'small', value: 's' }); // 3
  const stored = m.kv.get('k');
  assert.ok(stored !== undefined && isInRow(stored) && stored.version === 2, 'the key holds only its version');
  assert.deepEqual(rows(m.kv), [valueRowKey('k', 1), valueRowKey('k', 2)]);
  assert.ok(historyRows(m.kv) < 200, `the history holds no copy of a ${a.length}-byte value (${historyRows(m.kv)} bytes)`);
  assert.equal(m.kv.get('small')?.value, 's', 'a small value stays in its record');

  assert.deepEqual(m.sm.get('k'), { value: b, version: 2 });
  assert.deepEqual(m.sm.getAt('k', 1), { ok: true, value: { value: a, version: 1 } });
  assert.deepEqual(m.sm.range('', undefined, 10), [
    { key: 'k', value: b, version: 2 },
    { key: 'small', value: 's', version: 3 },
  ]);
  assert.deepEqual(m.sm.rangeAt('', undefined, 10, 1), { ok: true, value: [{ key: 'k', value: a, version: 1 }] });
  assert.deepEqual(
    m.sm.changes(1, 2).map((v) => v.changes.map((c) => ({ key: c.key, value: c.value, prev: c.prev }))),
    [[{ key: 'k', value: a, prev: undefined }], [{ key: 'k', value: b, prev: { value: a, version: 1 } }]],
  );
  assert.equal(m.sm.keyCount(), 2, 'rows are not client keys');
});

test('a row goes when the change that replaced its value is compacted, not before; the current value keeps its row', () => {
  const m = testMachine(memory().kv);
  m.run({ op: 'put', key: 'k', value: large('1') }); // 1
  m.run({ op: 'put', key: 'k', value: large('2') }); // 2
  m.run({ op: 'delete', key: 'k' }); // 3
  m.run({ op: 'put', key: 'k', value: large('4') }); // 4
  m.run({ op: 'compact', beforeVersion: 2 }); // 5: removes version 1 only, which replaced nothing
  assert.equal(rows(m.kv).length, 3, 'every value a kept version can read keeps its row');
  assert.deepEqual(m.sm.getAt('k', 2), { ok: true, value: { value: large('2'), version: 2 } });
  m.run({ op: 'compact', beforeVersion: 4 }); // 6: versions 2 (replaced 1) and 3 (deleted 2)
  assert.deepEqual(rows(m.kv), [valueRowKey('k', 4)]);
  assert.deepEqual(m.sm.get('k'), { value: large('4'), version: 4 });
  assert.deepEqual(m.sm.getAt('k', 2), { ok: false, compactedBelow: 4 });
  assert.equal(m.sm.keyCount(), 1);
});

test('a transaction that puts one key twice keeps both values apart; compares, gets and lists read values from their rows', () => {
  const m = testMachine(memory().kv);
  m.run({ op: 'put', key: 'k', value: large('0') }); // 1
  const txn = m.run({
    op: 'txn',
    compare: [{ target: 'value', key: 'k', op: '=', value: large('0') }],
    success: [
      { op: 'put', key: 'k', value: large('x') },
      { op: 'get', key: 'k' },
      { op: 'put', key: 'k', value: large('y') },
      { op: 'delete', key: 'k' },
      { op: 'put', key: 'k', value: large('z') },
      { op: 'list', prefix: 'k', limit: 10 },
    ],
    failure: [],
  }); // 2
  assert.ok(txn.ok && txn.op === 'txn' && txn.succeeded, 'the compare read the value from its row');
  assert.deepEqual(txn.results[1], { op: 'get', key: 'k', record: { value: large('x'), version: 2 } });
  assert.deepEqual(txn.results[5], { op: 'list', prefix: 'k', items: [{ key: 'k', value: large('z'), version: 2 }], more: false });
  assert.deepEqual(m.sm.get('k'), { value: large('z'), version: 2 });
  assert.deepEqual(
    m.sm.changes(2, 1)[0]?.changes.map((c) => [c.value === undefined ? null : (c.value as string)[0], (c.prev?.value as string | undefined)?.[0]]),
    [['x', '0'], ['y', 'x'], [null, 'y'], ['z', undefined]],
    'each change of the version with the value it wrote and the one it replaced',
  );
  m.run({ op: 'put', key: 'k', value: 'small' }); // 3
  m.run({ op: 'compact', beforeVersion: 4 }); // 4
  assert.deepEqual(rows(m.kv), [], 'every row was freed exactly once');
  assert.deepEqual(m.sm.get('k'), { value: 'small', version: 3 });
});

test('the store moves to a snapshot of itself with its rows: values read the same on the copy', () => {
  const storage = memory();
  const sm = createKvStateMachine(storage.kv, { dedupClientsMax: 100 });
  const values = [large('p'), large('q')];
  const entries: Entry[] = values.map((value, i) => ({ term: 1, index: i + 1, kind: 'normal', data: encodeCommand({ op: 'put', key: 'k', value }) }));
  storage.persist({ snapshot: null, entries, hardState: { term: 1, vote: null, commit: 2 } }, () => {});
  sm.apply(entries);
  const copy = memory();
  const source = storage.openSnapshot({ members: ['n1'], writeQuorum: 'majority', topology: 'star' });
  for (let chunk = source.readChunk(4096); chunk !== null; chunk = source.readChunk(4096)) copy.stageSnapshotChunk(chunk);
  source.close();
  copy.persist({ snapshot: source.meta, entries: [], hardState: null }, () => {});
  const smCopy = createKvStateMachine(copy.kv, { dedupClientsMax: 100 });
  assert.deepEqual(smCopy.get('k'), { value: values[1], version: 2 });
  assert.deepEqual(smCopy.getAt('k', 1), { ok: true, value: { value: values[0], version: 1 } });
});
