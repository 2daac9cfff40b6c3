import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../core/types.js';
import { createMemoryStorage } from '../storage/memory.js';
import { decodeCommand, decodeResult, encodeCommand, encodeResult, KvCodecError } from './codec.js';
import { createKvStateMachine } from './state-machine.js';
import type { Command, CommandResult, TxnCommand, TxnResult } from './types.js';

const config = { members: ['n1'], writeQuorum: 'majority', topology: 'star' } as const;

function machine(): { run(command: Command): CommandResult; get(key: string): unknown } {
  const storage = createMemoryStorage({ initialConfig: config, snapshotBytesMax: 1 << 20 });
  const sm = createKvStateMachine(storage.kv, { dedupClientsMax: 10 });
  let index = 0;
  return {
    run(command) {
      const entry: Entry = { term: 1, index: ++index, kind: 'normal', data: encodeCommand(command) };
      const result = sm.apply([entry]).get(entry.index);
      assert.ok(result !== undefined);
      return result;
    },
    get: (key) => sm.get(key),
  };
}

function txnOk(result: CommandResult): Extract<TxnResult, { ok: true }> {
  assert.ok(result.ok && result.op === 'txn', `expected a txn result, got ${JSON.stringify(result)}`);
  return result;
}

test('a transfer transaction writes both keys at its own version when the compares hold, and nothing when they do not', () => {
  const m = machine();
  m.run({ op: 'put', key: 'a', value: '10' }); // v1
  m.run({ op: 'put', key: 'b', value: '5' }); // v2
  const transfer = (va: number, vb: number): TxnCommand => ({
    op: 'txn',
    compare: [
      { key: 'a', target: 'version', op: '=', version: va },
      { key: 'b', target: 'version', op: '=', version: vb },
    ],
    success: [
      { op: 'put', key: 'a', value: '7' },
      { op: 'put', key: 'b', value: '8' },
    ],
    failure: [
      { op: 'get', key: 'a' },
      { op: 'get', key: 'b' },
    ],
  });
  const ok = txnOk(m.run(transfer(1, 2)));
  assert.deepEqual(ok, {
    ok: true,
    op: 'txn',
    succeeded: true,
    version: 3,
    results: [
      { op: 'put', key: 'a', version: 3 },
      { op: 'put', key: 'b', version: 3 },
    ],
  });
  assert.deepEqual(m.get('a'), { value: '7', version: 3 });
  // Stale versions: the failure branch runs and reports what is there now.
  const failed = txnOk(m.run(transfer(1, 2)));
  assert.equal(failed.succeeded, false);
  assert.equal(failed.version, 4);
  assert.deepEqual(failed.results, [
    { op: 'get', key: 'a', record: { value: '7', version: 3 } },
    { op: 'get', key: 'b', record: { value: '8', version: 3 } },
  ]);
  assert.deepEqual(m.get('b'), { value: '8', version: 3 });
});

test('compares follow etcd: absent keys have version 0, value comparisons on an absent key are false, values compare by bytes', () => {
  const m = machine();
  m.run({ op: 'put', key: 'k', value: 'b' }); // v1
  const holds = (compare: TxnCommand['compare'][number]): boolean => txnOk(m.run({ op: 'txn', compare: [compare], success: [], failure: [] })).succeeded;
  assert.equal(holds({ key: 'missing', target: 'version', op: '=', version: 0 }), true);
  assert.equal(holds({ key: 'k', target: 'version', op: '>', version: 0 }), true);
  assert.equal(holds({ key: 'k', target: 'version', op: '<', version: 1 }), false);
  assert.equal(holds({ key: 'k', target: 'version', op: '!=', version: 1 }), false);
  assert.equal(holds({ key: 'missing', target: 'value', op: '!=', value: 'x' }), false);
  assert.equal(holds({ key: 'k', target: 'value', op: '=', value: 'b' }), true);
  assert.equal(holds({ key: 'k', target: 'value', op: '<', value: 'c' }), true);
  assert.equal(holds({ key: 'k', target: 'value', op: '>', value: 'a' }), true);
  assert.equal(holds({ key: 'k', target: 'value', op: '=', value: new TextEncoder().encode('b') }), true);
  // UTF-8 byte order, not UTF-16: U+FF61 sorts before U+1F600 in bytes, after it in code units.
  m.run({ op: 'put', key: 'u', value: '\uff61' });
  assert.equal(holds({ key: 'u', target: 'value', op: '<', value: '\u{1f600}' }), true);
  assert.equal(holds({ key: 'k', target: 'exists', op: '=', exists: true }), true);
  assert.equal(holds({ key: 'missing', target: 'exists', op: '!=', exists: true }), true);
  assert.equal(holds({ key: 'missing', target: 'exists', op: '=', exists: true }), false);
});

test('operations in a branch see the ones before them; list reports whether it was cut short', () => {
  const m = machine();
  m.run({ op: 'put', key: 'p/1', value: 'one' });
  const r = txnOk(
    m.run({
      op: 'txn',
      compare: [],
      success: [
        { op: 'put', key: 'p/2', value: 'two' },
        { op: 'delete', key: 'p/1' },
        { op: 'delete', key: 'p/1' },
        { op: 'get', key: 'p/2' },
        { op: 'put', key: 'p/3', value: 'three' },
        { op: 'list', prefix: 'p/', limit: 1 },
        { op: 'list', prefix: 'p/', limit: 5 },
      ],
      failure: [],
    }),
  );
  assert.deepEqual(r.results, [
    { op: 'put', key: 'p/2', version: 2 },
    { op: 'delete', key: 'p/1', deleted: true },
    { op: 'delete', key: 'p/1', deleted: false },
    { op: 'get', key: 'p/2', record: { value: 'two', version: 2 } },
    { op: 'put', key: 'p/3', version: 2 },
    { op: 'list', prefix: 'p/', items: [{ key: 'p/2', value: 'two', version: 2 }], more: true },
    {
      op: 'list',
      prefix: 'p/',
      items: [
        { key: 'p/2', value: 'two', version: 2 },
        { key: 'p/3', value: 'three', version: 2 },
      ],
      more: false,
    },
  ]);
});

test('a list in reverse starts from the last key, and from the whole key space shows client keys only', () => {
  const m = machine();
  m.run({ op: 'put', key: 'a', value: '1' });
  m.run({ op: 'put', key: 'b', value: '2', ttlMs: 1000 }); // a lease: reserved records below every client key
  m.run({ op: 'put', key: 'c', value: '3' });
  const r = txnOk(
    m.run({ op: 'txn', compare: [], success: [{ op: 'list', prefix: '', limit: 2, reverse: true }, { op: 'list', prefix: '', limit: 5, reverse: true }], failure: [] }),
  );
  assert.deepEqual(r.results.map((x) => (x.op === 'list' ? [x.items.map((i) => i.key).join(), x.more] : null)), [
    ['c,b', true],
    ['c,b,a', false],
  ]);
});

test('a retried transaction is answered from the dedup table, not applied twice', () => {
  const m = machine();
  const txn: TxnCommand = {
    op: 'txn',
    compare: [{ key: 'n', target: 'exists', op: '=', exists: false }],
    success: [{ op: 'put', key: 'n', value: 'first' }],
    failure: [{ op: 'get', key: 'n' }],
    requestId: { clientId: 'c1', seq: 1 },
  };
  const first = txnOk(m.run(txn));
  const retry = txnOk(m.run(txn));
  assert.deepEqual(retry, first);
  assert.equal(first.succeeded, true);
  assert.deepEqual(m.get('n'), { value: 'first', version: 1 });
  assert.deepEqual(m.run({ ...txn, requestId: { clientId: 'c1', seq: 0 } }), { ok: false, error: 'stale_request', key: '', lastSeq: 1 });
});

test('transactions and their results round-trip through the codec, byte values included', () => {
  const bytes = new Uint8Array([0, 255, 7]);
  const txn: TxnCommand = {
    op: 'txn',
    compare: [
      { key: 'a', target: 'version', op: '<', version: 9 },
      { key: 'b', target: 'value', op: '!=', value: bytes },
      { key: 'c', target: 'exists', op: '=', exists: false },
    ],
    success: [
      { op: 'put', key: 'a', value: bytes },
      { op: 'delete', key: 'b' },
    ],
    failure: [
      { op: 'get', key: 'a' },
      { op: 'list', prefix: '', limit: 3 },
      { op: 'list', prefix: 'p', limit: 2, reverse: true },
    ],
    requestId: { clientId: 'x', seq: 4 },
  };
  assert.deepEqual(decodeCommand(encodeCommand(txn)), txn);
  const result: TxnResult = {
    ok: true,
    op: 'txn',
    succeeded: false,
    version: 12,
    results: [
      { op: 'get', key: 'a', record: null },
      { op: 'get', key: 'b', record: { value: bytes, version: 3 } },
      { op: 'list', prefix: '', items: [{ key: 'a', value: 'v', version: 2 }], more: true },
      { op: 'put', key: 'z', version: 12 },
      { op: 'delete', key: 'y', deleted: true },
    ],
  };
  assert.deepEqual(decodeResult(encodeResult(result)), result);
});

test('the encoder refuses a transaction no replica could apply', () => {
  const bad = (txn: unknown): void => assert.throws(() => encodeCommand(txn as TxnCommand), KvCodecError);
  bad({ op: 'txn', compare: [{ key: '', target: 'version', op: '=', version: 1 }], success: [], failure: [] });
  bad({ op: 'txn', compare: [{ key: 'a', target: 'version', op: '~', version: 1 }], success: [], failure: [] });
  bad({ op: 'txn', compare: [{ key: 'a', target: 'exists', op: '<', exists: true }], success: [], failure: [] });
  bad({ op: 'txn', compare: [], success: [{ op: 'list', prefix: 'p', limit: 0 }], failure: [] });
  bad({ op: 'txn', compare: [], success: [{ op: 'rename', key: 'a' }], failure: [] });
  bad({ op: 'txn', compare: [], success: [{ op: 'put', key: 'a', value: 3 }], failure: [] });
});
