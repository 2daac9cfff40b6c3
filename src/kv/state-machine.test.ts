import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, EntryKind } from '../core/types.js';
import { AssertionError } from '../stdx/assert.js';
import { createPrng } from '../stdx/prng.js';
import { createMemoryStorage } from '../storage/memory.js';
import type { KvBackend } from '../storage/types.js';
import { encodeCommand } from './codec.js';
import { createKvStateMachine, type KvStateMachine } from './state-machine.js';
import type { CommandResult, KvCommand, KvResult } from './types.js';

const memoryKv = (): KvBackend =>
  createMemoryStorage({
    initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' },
    snapshotBytesMax: 1 << 20,
    // Durability is not under test here: nothing is flushed, and no microtask is left behind.
    flushMode: 'manual',
  }).kv;

/** Every backend the state machine is checked against (the LMDB one runs in storage's contract suite). */
const backends: readonly (readonly [string, () => KvBackend])[] = [['in-memory storage twin', memoryKv]];

/** Delegates to `backend`, counting write() calls: a batch must be one transaction. */
function countWrites(backend: KvBackend): KvBackend & { writeCount(): number } {
  let writes = 0;
  return {
    get: (key) => backend.get(key),
    range: (prefix, after, limit) => backend.range(prefix, after, limit),
    getDedup: (clientId) => backend.getDedup(clientId),
    appliedIndex: () => backend.appliedIndex(),
    keyCount: () => backend.keyCount(),
    durableAppliedIndex: () => backend.durableAppliedIndex(),
    installs: () => backend.installs(),
    write: (appliedIndex, mutate) => {
      writes++;
      backend.write(appliedIndex, mutate);
    },
    writeCount: () => writes,
  };
}

interface Harness {
  readonly backend: KvBackend & { writeCount(): number };
  readonly sm: KvStateMachine;
  /** The next entry, as the log would number it. */
  entry(kind: EntryKind, command?: KvCommand): Entry;
  /** Applies one command in its own entry and returns its result. */
  run(command: KvCommand): KvResult;
}

function harness(makeBackend: () => KvBackend, dedupClientsMax = 100): Harness {
  const backend = countWrites(makeBackend());
  const sm = createKvStateMachine(backend, { dedupClientsMax });
  let nextIndex = 1;
  const entry = (kind: EntryKind, command?: KvCommand): Entry => ({
    term: 1,
    index: nextIndex++,
    kind,
    data: command === undefined ? new Uint8Array(0) : encodeCommand(command),
  });
  return {
    backend,
    sm,
    entry,
    run: (command) => {
      const e = entry('normal', command);
      const result = sm.apply([e]).get(e.index);
      assert.ok(result !== undefined, `no result for entry ${e.index}`);
      return result as KvResult;
    },
  };
}

const put = (key: string, value: string | Uint8Array, extra: Partial<Pick<KvCommand, 'ifVersion' | 'requestId'>> = {}): KvCommand => ({
  op: 'put',
  key,
  value,
  ...extra,
});
const del = (key: string, extra: Partial<Pick<KvCommand, 'ifVersion' | 'requestId'>> = {}): KvCommand => ({ op: 'delete', key, ...extra });
const req = (clientId: string, seq: number) => ({ requestId: { clientId, seq } });

/** Everything a client could observe, for comparing two states. */
function observe(sm: KvStateMachine): unknown {
  return { applied: sm.appliedIndex(), keys: sm.keyCount(), items: sm.range('', undefined, 1_000_000) };
}

for (const [backendName, makeBackend] of backends) {
  const story = (name: string, fn: () => void): void => {
    test(`${name} (${backendName})`, fn);
  };

  story('each write is versioned with its log index, so versions increase', () => {
    const h = harness(makeBackend);
    assert.deepEqual(h.run(put('a', 'one')), { ok: true, op: 'put', key: 'a', version: 1 });
    h.sm.apply([h.entry('noop')]);
    assert.deepEqual(h.run(put('b', new Uint8Array([7]))), { ok: true, op: 'put', key: 'b', version: 3 });
    assert.deepEqual(h.run(put('a', 'two')), { ok: true, op: 'put', key: 'a', version: 4 });
    assert.deepEqual(h.sm.get('a'), { value: 'two', version: 4 });
    assert.deepEqual(h.sm.get('b'), { value: new Uint8Array([7]), version: 3 });
    assert.equal(h.sm.get('c'), undefined);
    assert.equal(h.sm.appliedIndex(), 4);
    assert.equal(h.sm.keyCount(), 2);
    assert.deepEqual(
      h.sm.range('', undefined, 10).map((item) => [item.key, item.version]),
      [['a', 4], ['b', 3]],
    );
  });

  story('a batch returns one result per normal entry, keyed by index, and is one backend write', () => {
    const h = harness(makeBackend);
    const entries = [h.entry('normal', put('x', '1')), h.entry('config'), h.entry('normal', put('y', '2')), h.entry('noop')];
    const results = h.sm.apply(entries);
    assert.deepEqual([...results.keys()], [1, 3]);
    assert.deepEqual(results.get(3), { ok: true, op: 'put', key: 'y', version: 3 });
    assert.equal(h.sm.appliedIndex(), 4);
    assert.deepEqual(h.sm.apply([]), new Map());
    assert.equal(h.backend.writeCount(), 1);
  });

  story('compare-and-set applies when the version matches and reports a conflict when it does not', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v1'));
    assert.deepEqual(h.run(put('k', 'v2', { ifVersion: 1 })), { ok: true, op: 'put', key: 'k', version: 2 });
    assert.deepEqual(h.run(put('k', 'v3', { ifVersion: 1 })), {
      ok: false,
      error: 'version_conflict',
      key: 'k',
      expectedVersion: 1,
      actualVersion: 2,
    });
    // The conflict changed nothing but still consumed its index.
    assert.deepEqual(h.sm.get('k'), { value: 'v2', version: 2 });
    assert.equal(h.sm.appliedIndex(), 3);
  });

  story('ifVersion 0 creates a key only if it is absent', () => {
    const h = harness(makeBackend);
    assert.deepEqual(h.run(put('lock', 'me', { ifVersion: 0 })), { ok: true, op: 'put', key: 'lock', version: 1 });
    assert.deepEqual(h.run(put('lock', 'you', { ifVersion: 0 })), {
      ok: false,
      error: 'version_conflict',
      key: 'lock',
      expectedVersion: 0,
      actualVersion: 1,
    });
    assert.deepEqual(h.sm.get('lock'), { value: 'me', version: 1 });
    assert.deepEqual(h.run(put('absent', 'x', { ifVersion: 5 })), {
      ok: false,
      error: 'version_conflict',
      key: 'absent',
      expectedVersion: 5,
      actualVersion: 0,
    });
    h.run(del('lock'));
    assert.deepEqual(h.run(put('lock', 'you', { ifVersion: 0 })), { ok: true, op: 'put', key: 'lock', version: 5 });
  });

  story('deleting removes the key; deleting a missing key reports deleted false but still takes its index', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v'));
    h.run(put('other', 'v'));
    assert.deepEqual(h.run(del('k')), { ok: true, op: 'delete', key: 'k', version: 3, deleted: true });
    assert.equal(h.sm.get('k'), undefined);
    assert.equal(h.sm.keyCount(), 1);
    assert.deepEqual(h.run(del('k')), { ok: true, op: 'delete', key: 'k', version: 4, deleted: false });
    assert.deepEqual(h.run(del('never')), { ok: true, op: 'delete', key: 'never', version: 5, deleted: false });
    assert.equal(h.sm.appliedIndex(), 5);
    assert.equal(h.sm.keyCount(), 1);
  });

  story('a conditional delete applies only at the expected version', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v'));
    assert.deepEqual(h.run(del('k', { ifVersion: 9 })), {
      ok: false,
      error: 'version_conflict',
      key: 'k',
      expectedVersion: 9,
      actualVersion: 1,
    });
    assert.deepEqual(h.sm.get('k'), { value: 'v', version: 1 });
    assert.deepEqual(h.run(del('k', { ifVersion: 1 })), { ok: true, op: 'delete', key: 'k', version: 3, deleted: true });
    assert.deepEqual(h.run(del('k', { ifVersion: 0 })), { ok: true, op: 'delete', key: 'k', version: 4, deleted: false });
  });

  story('a retried request applies once and gets the identical reply, even after other writes', () => {
    const h = harness(makeBackend);
    const first = h.run(put('k', 'mine', req('c1', 1)));
    assert.deepEqual(first, { ok: true, op: 'put', key: 'k', version: 1 });
    h.run(put('k', 'theirs'));
    h.run(put('j', 'x', req('c2', 1)));
    assert.deepEqual(h.run(put('k', 'mine', req('c1', 1))), first);
    assert.deepEqual(h.sm.get('k'), { value: 'theirs', version: 2 });
    assert.equal(h.sm.appliedIndex(), 4);
    // The next request of the same client applies normally.
    assert.deepEqual(h.run(del('k', req('c1', 2))), { ok: true, op: 'delete', key: 'k', version: 5, deleted: true });
  });

  story('a request retried inside the same batch applies once', () => {
    const h = harness(makeBackend);
    const a = h.entry('normal', put('n', 'one', req('c', 7)));
    const b = h.entry('normal', put('n', 'one', req('c', 7)));
    const results = h.sm.apply([a, b]);
    assert.deepEqual(results.get(a.index), { ok: true, op: 'put', key: 'n', version: 1 });
    assert.deepEqual(results.get(b.index), results.get(a.index));
    assert.deepEqual(h.sm.get('n'), { value: 'one', version: 1 });
  });

  story('a retried compare-and-set that failed fails again the same way, even if it could now succeed', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v'));
    const conflict = h.run(put('k', 'new', { ifVersion: 2, ...req('c', 1) }));
    assert.equal(conflict.ok, false);
    h.run(put('x', 'filler')); // index 3
    h.run(put('k', 'v again')); // index 4: k's version is 4 now, not 2
    h.run(put('k', 'w', { ifVersion: 4 })); // 5
    assert.deepEqual(h.run(put('k', 'new', { ifVersion: 2, ...req('c', 1) })), conflict);
    assert.deepEqual(h.sm.get('k'), { value: 'w', version: 5 });
  });

  story('a request older than the client\'s last one is refused as stale and changes nothing', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v5', req('c', 5)));
    assert.deepEqual(h.run(put('k', 'v4', req('c', 4))), { ok: false, error: 'stale_request', key: 'k', lastSeq: 5 });
    assert.deepEqual(h.run(del('k', req('c', 0))), { ok: false, error: 'stale_request', key: 'k', lastSeq: 5 });
    assert.deepEqual(h.sm.get('k'), { value: 'v5', version: 1 });
    assert.equal(h.backend.getDedup('c')?.seq, 5);
    assert.equal(h.backend.getDedup('c')?.index, 1);
  });

  story('the dedup table stays within its bound by evicting the client with the oldest request', () => {
    const h = harness(makeBackend, 3);
    for (const client of ['c1', 'c2', 'c3']) h.run(put(client, 'v', req(client, 1)));
    h.run(put('c1', 'v', req('c1', 2))); // c1 is now the newest; c2 the oldest
    h.run(put('c4', 'v', req('c4', 1)));
    const present = (): string[] => ['c1', 'c2', 'c3', 'c4', 'c5'].filter((c) => h.backend.getDedup(c) !== undefined);
    assert.deepEqual(present(), ['c1', 'c3', 'c4']);
    h.run(put('c5', 'v', req('c5', 1)));
    assert.deepEqual(present(), ['c1', 'c4', 'c5']);
    // Requests without a requestId do not touch the table.
    h.run(put('anon', 'v'));
    assert.deepEqual(present(), ['c1', 'c4', 'c5']);
    // The known limitation: an evicted client's retry is applied again (documented).
    assert.deepEqual(h.run(put('c2', 'v', req('c2', 1))), { ok: true, op: 'put', key: 'c2', version: 8 });
    assert.deepEqual(present(), ['c2', 'c4', 'c5']);
  });

  story('noop and config entries only advance the applied index', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v'));
    const results = h.sm.apply([h.entry('noop'), h.entry('config', undefined)]);
    assert.equal(results.size, 0);
    assert.equal(h.sm.appliedIndex(), 3);
    assert.deepEqual(h.sm.get('k'), { value: 'v', version: 1 });
    assert.equal(h.sm.keyCount(), 1);
  });

  story('entries re-delivered after a restart are skipped, and a batch overlapping them applies only the new ones', () => {
    const h = harness(makeBackend);
    const batch = [h.entry('normal', put('a', '1')), h.entry('normal', put('a', '2', req('c', 1))), h.entry('noop')];
    h.sm.apply(batch);
    const before = observe(h.sm);
    assert.deepEqual(h.sm.apply(batch), new Map());
    assert.deepEqual(h.sm.apply(batch.slice(1, 2)), new Map());
    assert.deepEqual(observe(h.sm), before);
    assert.equal(h.backend.writeCount(), 1);
    const fresh = h.entry('normal', put('b', '3'));
    const results = h.sm.apply([...batch.slice(1), fresh]);
    assert.deepEqual([...results.keys()], [fresh.index]);
    assert.equal(h.sm.appliedIndex(), 4);
    assert.equal(h.backend.getDedup('c')?.index, 2);
  });

  story('a gap in the entries is a bug and throws without applying anything', () => {
    const h = harness(makeBackend);
    h.run(put('k', 'v'));
    h.entry('noop'); // index 2 is never delivered
    const third = h.entry('normal', put('k', 'w'));
    assert.throws(() => h.sm.apply([third]), (error: unknown) => {
      assert.ok(error instanceof AssertionError);
      assert.match(error.message, /Cannot apply entries from 3: applied index is 1, entries 2\.\.2 are missing/);
      return true;
    });
    const fifth: Entry = { term: 1, index: 5, kind: 'noop', data: new Uint8Array(0) };
    assert.throws(() => h.sm.apply([{ term: 1, index: 2, kind: 'noop', data: new Uint8Array(0) }, fifth]), /not contiguous, entry 1 has index 5, expected 3/);
    assert.deepEqual(h.sm.get('k'), { value: 'v', version: 1 });
    assert.equal(h.sm.appliedIndex(), 1);
  });

  story('a corrupt entry throws and none of its batch is applied', () => {
    const h = harness(makeBackend);
    const good = h.entry('normal', put('k', 'v'));
    const bad: Entry = { term: 3, index: good.index + 1, kind: 'normal', data: Uint8Array.from([0x93, 1, 2]) };
    assert.throws(() => h.sm.apply([good, bad]), /Cannot apply entry 2 \(term 3\): Cannot decode command/);
    assert.equal(h.sm.get('k'), undefined);
    assert.equal(h.sm.appliedIndex(), 0);
  });

  story('the same entries give the same results and state however they are batched', () => {
    const prng = createPrng(4242);
    const keys = ['a', 'b', 'c', 'd'];
    const clients = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const seqs = new Map(clients.map((c) => [c, 0]));
    const entries: Entry[] = [];
    for (let index = 1; index <= 600; index++) {
      const kind: EntryKind = prng.chance(0.1) ? (prng.chance(0.5) ? 'noop' : 'config') : 'normal';
      let data: Uint8Array = new Uint8Array(0);
      if (kind === 'normal') {
        const key = keys[prng.intBetween(0, keys.length - 1)] as string;
        const extra: { ifVersion?: number; requestId?: { clientId: string; seq: number } } = {};
        if (prng.chance(0.3)) extra.ifVersion = prng.chance(0.3) ? 0 : prng.intBetween(0, index);
        if (prng.chance(0.6)) {
          const clientId = clients[prng.intBetween(0, clients.length - 1)] as string;
          // Mostly new requests, some retries, some stale ones.
          const last = seqs.get(clientId) ?? 0;
          const seq = prng.chance(0.7) ? last + 1 : Math.max(0, last - prng.intBetween(0, 2));
          seqs.set(clientId, Math.max(last, seq));
          extra.requestId = { clientId, seq };
        }
        data = encodeCommand(prng.chance(0.25) ? del(key, extra) : put(key, `v${index}`, extra));
      }
      entries.push({ term: 1, index, kind, data });
    }

    const reference = createKvStateMachine(makeBackend(), { dedupClientsMax: 3 });
    const expected = new Map<number, CommandResult>();
    for (const entry of entries) for (const [i, r] of reference.apply([entry])) expected.set(i, r);

    const batched = createKvStateMachine(makeBackend(), { dedupClientsMax: 3 });
    const actual = new Map<number, CommandResult>();
    for (let start = 0; start < entries.length; ) {
      const end = Math.min(entries.length, start + prng.intBetween(1, 40));
      // Some batches re-deliver a few already-applied entries first.
      const from = Math.max(0, start - (prng.chance(0.2) ? prng.intBetween(1, 5) : 0));
      for (const [i, r] of batched.apply(entries.slice(from, end))) actual.set(i, r);
      start = end;
    }

    assert.deepEqual(actual, expected);
    assert.deepEqual(observe(batched), observe(reference));
    // A successful write carries its own index as its version, unless it is a retry
    // answered from the dedup table: then it is the very reply given at that version.
    for (const [index, result] of expected) {
      if (result.ok && result.version !== index) {
        assert.ok(result.version < index, `entry ${index} answered with a later version ${result.version}`);
        assert.deepEqual(expected.get(result.version), result);
      }
    }
    const outcomes = new Set([...expected.values()].map((r) => (r.ok ? r.op : r.error)));
    assert.deepEqual([...outcomes].sort(), ['delete', 'put', 'stale_request', 'version_conflict']);
  });

  story('reads list keys by prefix in byte order, after a cursor, up to a limit', () => {
    const h = harness(makeBackend);
    for (const key of ['user/2', 'user/10', 'user/1', 'users', 'user/\u{1f600}', 'user/\uffff', 'admin']) {
      h.run(put(key, key));
    }
    const keys = (prefix: string, after: string | undefined, limit: number): string[] =>
      h.sm.range(prefix, after, limit).map((item) => item.key);
    // U+FFFF sorts before U+1F600 in UTF-8, although not in UTF-16 code units.
    assert.deepEqual(keys('user/', undefined, 10), ['user/1', 'user/10', 'user/2', 'user/\uffff', 'user/\u{1f600}']);
    assert.deepEqual(keys('user/', 'user/10', 2), ['user/2', 'user/\uffff']);
    assert.deepEqual(keys('', undefined, 3), ['admin', 'user/1', 'user/10']);
    assert.deepEqual(keys('nope', undefined, 3), []);
  });
}

test('a dedup bound below one is refused when the state machine is created', () => {
  assert.throws(() => createKvStateMachine(memoryKv(), { dedupClientsMax: 0 }), /dedupClientsMax must be a positive safe integer, got 0/);
});
