import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../core/types.js';
import { createMemoryStorage } from '../storage/memory.js';
import { decodeCommand, decodeResult, encodeCommand, encodeResult } from './codec.js';
import { createKvStateMachine, type KvStateMachine } from './state-machine.js';
import type { Command, CommandResult } from './types.js';

function machine(): { sm: KvStateMachine; run(command: Command): CommandResult } {
  const storage = createMemoryStorage({ initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' }, snapshotBytesMax: 1 << 20 });
  const sm = createKvStateMachine(storage.kv, { dedupClientsMax: 10 });
  let index = 0;
  return {
    sm,
    run(command) {
      const entry: Entry = { term: 1, index: ++index, kind: 'normal', data: encodeCommand(command) };
      const result = sm.apply([entry]).get(entry.index);
      assert.ok(result !== undefined);
      return result;
    },
  };
}

test('a lease is granted at its entry index; keys attached to it are deleted, at the revoke version, when it ends', () => {
  const { sm, run } = machine();
  assert.deepEqual(run({ op: 'lease-grant', ttlMs: 2000 }), { ok: true, op: 'lease-grant', id: 1, ttlMs: 2000, version: 1 });
  assert.deepEqual(run({ op: 'put', key: 'svc/a', value: 'x', lease: 1 }), { ok: true, op: 'put', key: 'svc/a', version: 2, lease: 1 });
  run({ op: 'put', key: 'svc/b', value: 'y', lease: 1 });
  run({ op: 'put', key: 'svc/c', value: 'z', lease: 1 });
  run({ op: 'put', key: 'svc/c', value: 'z2' }); // a put without a lease detaches (as etcd)
  run({ op: 'delete', key: 'svc/b' });
  run({ op: 'put', key: 'other', value: 'o' });
  assert.deepEqual(sm.lease(1), { id: 1, ttlMs: 2000 });
  assert.deepEqual(sm.leaseKeys(1, 10), ['svc/a']);
  assert.deepEqual(run({ op: 'lease-revoke', id: 1, reason: 'expired' }), { ok: true, op: 'lease-revoke', id: 1, found: true, keysDeleted: 1, version: 8 });
  assert.equal(sm.get('svc/a'), undefined);
  assert.deepEqual(sm.get('svc/c'), { value: 'z2', version: 5 });
  assert.equal(sm.lease(1), undefined);
  assert.deepEqual(sm.leases(), []);
  assert.deepEqual(run({ op: 'lease-revoke', id: 1, reason: 'revoked' }), { ok: true, op: 'lease-revoke', id: 1, found: false, keysDeleted: 0, version: 9 });
});

test('a put naming a lease that does not exist writes nothing; ttlMs grants a lease of the key\'s own', () => {
  const { sm, run } = machine();
  assert.deepEqual(run({ op: 'put', key: 'k', value: 'v', lease: 42 }), { ok: false, error: 'lease_not_found', key: 'k', lease: 42 });
  assert.equal(sm.get('k'), undefined);
  assert.deepEqual(run({ op: 'put', key: 'k', value: 'v', ttlMs: 500 }), { ok: true, op: 'put', key: 'k', version: 2, lease: 2 });
  assert.deepEqual(sm.lease(2), { id: 2, ttlMs: 500 });
  assert.deepEqual(sm.leaseKeys(2, 10), ['k']);
  // Moving the key to another lease detaches it from the first.
  run({ op: 'lease-grant', ttlMs: 900 });
  run({ op: 'put', key: 'k', value: 'w', lease: 3 });
  assert.deepEqual(sm.leaseKeys(2, 10), []);
  assert.deepEqual(sm.leaseKeys(3, 10), ['k']);
  run({ op: 'lease-revoke', id: 2, reason: 'revoked' });
  assert.deepEqual(sm.get('k'), { value: 'w', version: 4 });
});

test('the lease bookkeeping stays out of every client listing, in transactions too', () => {
  const { sm, run } = machine();
  run({ op: 'lease-grant', ttlMs: 1000 });
  run({ op: 'put', key: 'a', value: '1', lease: 1 });
  run({ op: 'put', key: 'b', value: '2' });
  assert.deepEqual(sm.range('', undefined, 10).map((i) => i.key), ['a', 'b']);
  assert.deepEqual(sm.range('', 'a', 10).map((i) => i.key), ['b']);
  const listed = run({ op: 'txn', compare: [], success: [{ op: 'list', prefix: '', limit: 10 }], failure: [] });
  assert.ok(listed.ok && listed.op === 'txn');
  assert.deepEqual(listed.results[0]?.op === 'list' ? listed.results[0].items.map((i) => i.key) : null, ['a', 'b']);
  // A transaction's put detaches too.
  run({ op: 'txn', compare: [], success: [{ op: 'put', key: 'a', value: 'mine' }], failure: [] });
  assert.deepEqual(sm.leaseKeys(1, 10), []);
});

test('lease commands and results round-trip through the codec; a plain put keeps its 7-field bytes', () => {
  const commands: Command[] = [
    { op: 'lease-grant', ttlMs: 2000, requestId: { clientId: 'c', seq: 1 } },
    { op: 'lease-revoke', id: 9, reason: 'expired' },
    { op: 'put', key: 'k', value: 'v', lease: 9 },
    { op: 'put', key: 'k', value: 'v', ttlMs: 300, ifVersion: 0 },
  ];
  for (const c of commands) assert.deepEqual(decodeCommand(encodeCommand(c)), c);
  const results: CommandResult[] = [
    { ok: true, op: 'lease-grant', id: 3, ttlMs: 10, version: 3 },
    { ok: true, op: 'lease-revoke', id: 3, found: true, keysDeleted: 2, version: 7 },
    { ok: true, op: 'put', key: 'k', version: 4, lease: 3 },
    { ok: false, error: 'lease_not_found', key: 'k', lease: 5 },
  ];
  for (const r of results) assert.deepEqual(decodeResult(encodeResult(r)), r);
  assert.equal(encodeCommand({ op: 'put', key: 'k', value: 'v' }).byteLength < encodeCommand({ op: 'put', key: 'k', value: 'v', lease: 1 }).byteLength, true);
  assert.throws(() => encodeCommand({ op: 'put', key: 'k', value: 'v', lease: 1, ttlMs: 5 }), /a lease or a ttlMs, not both/);
  assert.throws(() => encodeCommand({ op: 'lease-grant', ttlMs: 0 }), /ttlMs must be at least 1/);
});

test('on a state installed beneath the machine (a snapshot) with a key on a lease, a put without a lease still detaches it', () => {
  const config = { members: ['n1'], writeQuorum: 'majority', topology: 'star' } as const;
  const entry = (index: number, command: Command): Entry => ({ term: 1, index, kind: 'normal', data: encodeCommand(command) });
  const source = createMemoryStorage({ initialConfig: config, snapshotBytesMax: 1 << 20 });
  const entries = [entry(1, { op: 'lease-grant', ttlMs: 2000 }), entry(2, { op: 'put', key: 'svc/a', value: 'x', lease: 1 })];
  source.persist({ snapshot: null, entries, hardState: { term: 1, vote: null, commit: 2 } }, () => {});
  createKvStateMachine(source.kv, { dedupClientsMax: 10 }).apply(entries);
  // The machine starts on an empty state, where no key hangs on a lease, then the state is replaced.
  const target = createMemoryStorage({ initialConfig: config, snapshotBytesMax: 1 << 20 });
  const sm = createKvStateMachine(target.kv, { dedupClientsMax: 10 });
  const snapshot = source.openSnapshot(config);
  for (let chunk = snapshot.readChunk(4096); chunk !== null; chunk = snapshot.readChunk(4096)) target.stageSnapshotChunk(chunk);
  snapshot.close();
  target.persist({ snapshot: snapshot.meta, entries: [], hardState: null }, () => {});
  assert.deepEqual(sm.leaseKeys(1, 10), ['svc/a']);
  sm.apply([entry(3, { op: 'put', key: 'svc/a', value: 'y' })]);
  assert.deepEqual(sm.leaseKeys(1, 10), [], 'the put detached it');
  assert.deepEqual(decodeResult(encodeResult(sm.apply([entry(4, { op: 'lease-revoke', id: 1, reason: 'expired' })]).get(4) as CommandResult)), { ok: true, op: 'lease-revoke', id: 1, found: true, keysDeleted: 0, version: 4 });
  assert.deepEqual(sm.get('svc/a'), { value: 'y', version: 3 });
});
