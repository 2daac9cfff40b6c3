import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from '../stdx/prng.js';
import type { Prng } from '../stdx/prng.js';
import { HistoryRecorder, isUnknownOutcome } from './history.js';
import type { HistoryOp, HistoryValue, KnownResult, KvOperation, OpResult } from './history.js';
import { checkLinearizable } from './linearizability.js';
import type { LinearizabilityResult } from './linearizability.js';

// ---------------------------------------------------------------------------------------
// Hand-written histories. Ticks are [invoke, complete]; `null` completion = unknown outcome.

class Hist {
  readonly ops: HistoryOp[] = [];

  private add(clientId: string, key: string, op: KvOperation, ticks: readonly [number, number | null], result: OpResult): number {
    const id = this.ops.length + 1;
    const [invokeTick, completeTick] = ticks;
    this.ops.push({ id, clientId, key, op, invokeTick, completeTick, result: completeTick === null ? { unknown: true } : result });
    return id;
  }

  put(c: string, k: string, value: string, ticks: readonly [number, number | null], version = 0): number {
    return this.add(c, k, { type: 'put', value }, ticks, { ok: true, version });
  }

  get(c: string, k: string, ticks: readonly [number, number | null], seen: readonly [string, number] | null): number {
    const result: OpResult = seen === null ? { found: false } : { found: true, value: seen[0], version: seen[1] };
    return this.add(c, k, { type: 'get' }, ticks, result);
  }

  del(c: string, k: string, ticks: readonly [number, number | null], version = 0, deleted = true): number {
    return this.add(c, k, { type: 'delete' }, ticks, { ok: true, version, deleted });
  }

  cas(c: string, k: string, expectedVersion: number, value: string, ticks: readonly [number, number | null], result: KnownResult = { ok: true, version: 0 }): number {
    return this.add(c, k, { type: 'cas', expectedVersion, value }, ticks, result);
  }
}

function assertAccepted(result: LinearizabilityResult): void {
  assert.equal(result.ok, true, `expected linearizable, got ${JSON.stringify(result, null, 2)}`);
}

function assertRejected(result: LinearizabilityResult): Extract<LinearizabilityResult, { ok: false }> {
  if (result.ok !== false) assert.fail(`expected a violation, got ${JSON.stringify(result)}`);
  assert.ok(result.explanation.length > 0);
  assert.ok(result.minimalWindow.some((o) => o.id === result.blockingOpId), 'the window contains the stuck op');
  return result;
}

test('a sequential history of puts, gets, deletes and cas is linearizable', () => {
  const h = new Hist();
  h.get('c1', 'k', [0, 1], null);
  h.put('c1', 'k', 'a', [2, 3], 1);
  h.get('c2', 'k', [4, 5], ['a', 1]);
  h.cas('c1', 'k', 1, 'b', [6, 7], { ok: true, version: 2 });
  h.cas('c2', 'k', 1, 'c', [8, 9], { ok: false, conflict: true, actualVersion: 2 });
  h.get('c2', 'k', [10, 11], ['b', 2]);
  h.del('c1', 'k', [12, 13], 3, true);
  h.del('c1', 'k', [14, 15], 4, false);
  h.cas('c2', 'k', 0, 'd', [16, 17], { ok: true, version: 5 });
  h.put('c1', 'other', 'x', [18, 19], 6);
  const result = checkLinearizable(h.ops);
  assert.deepEqual(result, { ok: true, keysChecked: 2, opsChecked: 10 });
});

test('a get overlapping a put may see the old value or the new one', () => {
  for (const seen of [['old', 1], ['new', 2]] as const) {
    const h = new Hist();
    h.put('c1', 'k', 'old', [0, 1], 1);
    h.put('c1', 'k', 'new', [10, 20], 2);
    h.get('c2', 'k', [12, 15], seen);
    assertAccepted(checkLinearizable(h.ops));
  }
});

test('two overlapping gets may see the new value then the old one while the put is in flight', () => {
  const h = new Hist();
  h.put('c1', 'k', 'old', [0, 1], 1);
  h.put('c1', 'k', 'new', [10, 30], 2);
  h.get('c2', 'k', [12, 18], ['new', 2]);
  h.get('c3', 'k', [14, 16], ['old', 1]);
  assertAccepted(checkLinearizable(h.ops));
});

test('operations that touch at one tick count as concurrent', () => {
  const h = new Hist();
  h.put('c1', 'k', 'old', [0, 1], 1);
  h.put('c1', 'k', 'new', [5, 10], 2);
  h.get('c2', 'k', [10, 12], ['old', 1]);
  assertAccepted(checkLinearizable(h.ops));
});

test('a put with unknown outcome may become visible long after the client gave up', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 1);
  h.put('c1', 'k', 'lost-reply', [2, null]);
  h.get('c2', 'k', [10, 11], ['a', 1]);
  h.put('c1', 'k', 'b', [12, 13], 5);
  h.get('c2', 'k', [14, 15], ['b', 5]);
  h.get('c2', 'k', [20, 21], ['lost-reply', 9]);
  h.cas('c3', 'k', 9, 'c', [22, 23], { ok: true, version: 10 });
  assertAccepted(checkLinearizable(h.ops));
});

test('a put with unknown outcome may never take effect', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 1);
  h.put('c1', 'k', 'never', [2, null]);
  h.del('c1', 'k', [3, null]);
  h.get('c2', 'k', [10, 11], ['a', 1]);
  h.del('c2', 'k', [12, 13], 7, true);
  h.get('c2', 'k', [14, 15], null);
  assertAccepted(checkLinearizable(h.ops));
});

test('an unknown-outcome write explains a cas conflict reporting a version no reply carried', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 1);
  h.put('c1', 'k', 'b', [2, null]);
  h.cas('c2', 'k', 1, 'c', [10, 11], { ok: false, conflict: true, actualVersion: 4 });
  h.cas('c2', 'k', 4, 'd', [12, 13], { ok: true, version: 6 });
  assertAccepted(checkLinearizable(h.ops));
});

test('a delete with unknown outcome may explain a later not-found, but not an earlier one', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 1);
  h.del('c1', 'k', [2, null]);
  h.get('c2', 'k', [5, 6], null);
  h.put('c1', 'k', 'b', [7, 8], 5);
  assertAccepted(checkLinearizable(h.ops));

  const early = new Hist();
  early.put('c1', 'k', 'a', [0, 1], 1);
  const g = early.get('c2', 'k', [2, 3], null);
  early.del('c1', 'k', [4, null]);
  assert.equal(assertRejected(checkLinearizable(early.ops)).blockingOpId, g);
});

test('a cas with unknown outcome is visible only if its expected version matched', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 1);
  h.cas('c1', 'k', 1, 'c', [2, null]);
  h.get('c2', 'k', [5, 6], ['c', 4]);
  assertAccepted(checkLinearizable(h.ops));

  const wrong = new Hist();
  wrong.put('c1', 'k', 'a', [0, 1], 1);
  wrong.cas('c1', 'k', 7, 'd', [2, null]);
  wrong.get('c2', 'k', [5, 6], ['d', 4]);
  assertRejected(checkLinearizable(wrong.ops));
});

test('values may be bytes and are compared by content', () => {
  const h: HistoryOp[] = [
    { id: 1, clientId: 'c1', key: 'k', op: { type: 'put', value: new Uint8Array([1, 2]) }, invokeTick: 0, completeTick: 1, result: { ok: true, version: 1 } },
    { id: 2, clientId: 'c2', key: 'k', op: { type: 'get' }, invokeTick: 2, completeTick: 3, result: { found: true, value: new Uint8Array([1, 2]), version: 1 } },
  ];
  assertAccepted(checkLinearizable(h));
  const tampered = [h[0] as HistoryOp, { ...(h[1] as HistoryOp), result: { found: true, value: new Uint8Array([1, 3]), version: 1 } }];
  assertRejected(checkLinearizable(tampered));
});

test('a stale read after a completed put is rejected and the report names the ops involved', () => {
  const h = new Hist();
  const p1 = h.put('c1', 'k', 'v1', [0, 1], 1);
  const p2 = h.put('c1', 'k', 'v2', [2, 3], 2);
  h.put('c3', 'unrelated', 'z', [2, 3], 3);
  const g = h.get('c2', 'k', [4, 5], ['v1', 1]);
  const result = assertRejected(checkLinearizable(h.ops));
  assert.equal(result.key, 'k');
  assert.equal(result.blockingOpId, g);
  assert.deepEqual(result.minimalWindow.map((o) => o.id), [p1, p2, g]);
  assert.match(result.reason, /stale read/);
  assert.match(result.explanation, /"v2" at version 2/);
});

test('a read of a value that was never written is rejected', () => {
  const h = new Hist();
  h.put('c1', 'k', 'v1', [0, 10], 1);
  h.get('c2', 'k', [2, 12], ['ghost', 1]);
  const result = assertRejected(checkLinearizable(h.ops));
  assert.match(result.explanation, /different value/);
});

test('two reads in real-time order that see the new value and then the old one are rejected', () => {
  const h = new Hist();
  h.put('c1', 'k', 'old', [0, 1], 1);
  h.put('c1', 'k', 'new', [10, 30], 2);
  h.get('c2', 'k', [12, 14], ['new', 2]);
  const late = h.get('c3', 'k', [16, 18], ['old', 1]);
  const result = assertRejected(checkLinearizable(h.ops));
  assert.equal(result.blockingOpId, late);
});

test('a lost write (an acknowledged put that later reads skip, seeing the older value) is rejected', () => {
  const h = new Hist();
  h.put('c1', 'k', 'before', [0, 1], 1);
  h.get('c2', 'k', [2, 3], ['before', 1]);
  const lost = h.put('c1', 'k', 'acknowledged', [4, 8], 2);
  h.get('c2', 'k', [5, 6], ['before', 1]); // concurrent: fine
  const stale = h.get('c2', 'k', [9, 10], ['before', 1]);
  h.put('c3', 'k', 'after', [11, 12], 3);
  h.get('c2', 'k', [13, 14], ['after', 3]);
  const result = assertRejected(checkLinearizable(h.ops));
  assert.equal(result.blockingOpId, stale);
  assert.ok(result.minimalWindow.some((o) => o.id === lost), 'the window shows the lost put');
});

test('a cas that succeeded with a wrong expected version is rejected', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 3);
  const bad = h.cas('c2', 'k', 2, 'b', [2, 3], { ok: true, version: 4 });
  const result = assertRejected(checkLinearizable(h.ops));
  assert.equal(result.blockingOpId, bad);
  assert.match(result.reason, /expected version 2, but the key's observed version is 3/);
});

test('a cas conflict on a key whose version matched is rejected', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 3);
  h.cas('c2', 'k', 3, 'b', [2, 3], { ok: false, conflict: true, actualVersion: 5 });
  assertRejected(checkLinearizable(h.ops));
});

test('write versions that go backwards in real time and wrong deleted flags are rejected', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 5);
  h.put('c1', 'k', 'b', [2, 3], 4);
  assert.match(assertRejected(checkLinearizable(h.ops)).reason, /version 5 is above version 4 of op #2, which must take effect first/);

  const d = new Hist();
  d.put('c1', 'k', 'a', [0, 1], 1);
  d.del('c1', 'k', [2, 3], 2, false);
  assert.match(assertRejected(checkLinearizable(d.ops)).reason, /deleted=false, but the key is present/);
});

test('an unknown-outcome put cannot explain a stale read that its version rules out', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [0, 1], 1);
  h.put('c1', 'k', 'x', [2, null]);
  h.put('c1', 'k', 'b', [3, 4], 5);
  // x can only take effect after b's predecessor, so its version is above 1 and cannot be 1.
  h.get('c2', 'k', [6, 7], ['x', 1]);
  assertRejected(checkLinearizable(h.ops));
});

test('a search that exceeds stepsMax reports unknown, not a violation; a violation on another key wins', () => {
  const h = new Hist();
  // Many concurrent unknown writes, each read once, followed by a read nobody could have produced.
  for (let i = 0; i < 12; i++) h.put(`c${i}`, 'hard', `v${i}`, [0, null]);
  for (let i = 0; i < 12; i++) h.get('r', 'hard', [10 + i, 10 + i], [`v${i}`, 100 + i]);
  h.get('r', 'hard', [30, 31], ['nobody', 1]);
  const unknown = checkLinearizable(h.ops, { stepsMax: 50 });
  assert.equal(unknown.ok, 'unknown');
  if (unknown.ok === 'unknown') {
    assert.equal(unknown.key, 'hard');
    assert.equal(unknown.stepsMax, 50);
    assert.match(unknown.explanation, /not a violation/);
  }
  // With enough budget the same history is a definite violation.
  assert.equal(checkLinearizable(h.ops).ok, false);

  h.put('c1', 'z-easy', 'a', [0, 1], 1000);
  h.get('c2', 'z-easy', [2, 3], ['b', 1000]);
  const both = checkLinearizable(h.ops, { stepsMax: 50 });
  assert.equal(both.ok, false);
  if (both.ok === false) assert.equal(both.key, 'z-easy');
});

test('a malformed history is a programming error and throws', () => {
  const h = new Hist();
  h.put('c1', 'k', 'a', [5, 1], 1);
  assert.throws(() => checkLinearizable(h.ops), /completeTick 1 before invokeTick 5/);
  const wrongShape: HistoryOp[] = [{ id: 1, clientId: 'c', key: 'k', op: { type: 'get' }, invokeTick: 0, completeTick: 1, result: { ok: true, version: 1 } }];
  assert.throws(() => checkLinearizable(wrongShape), /does not fit a get/);
});

// ---------------------------------------------------------------------------------------
// The recorder

test('the recorder numbers operations, keeps answers, and reports unanswered ones as unknown', () => {
  const rec = new HistoryRecorder({ opsMax: 4 });
  const a = rec.invoke({ clientId: 'c1', key: 'k', op: { type: 'put', value: 'v' }, tick: 1 });
  const b = rec.invoke({ clientId: 'c2', key: 'k', op: { type: 'get' }, tick: 2 });
  const c = rec.invoke({ clientId: 'c3', key: 'k', op: { type: 'delete' }, tick: 2 });
  const d = rec.invoke({ clientId: 'c4', key: 'k', op: { type: 'get' }, tick: 3 });
  assert.deepEqual([a, b, c, d], [1, 2, 3, 4]);
  rec.complete(a, 4, { ok: true, version: 7 });
  rec.unknown(b);
  rec.fail(c);
  assert.throws(() => rec.complete(a, 5, { ok: true, version: 8 }), /already done/);
  assert.throws(() => rec.complete(d, 2, { found: false }), /before its invoke tick/);
  assert.throws(() => rec.complete(d, 9, { ok: true, version: 1 }), /does not fit a get/);
  assert.throws(() => rec.invoke({ clientId: 'c5', key: 'k', op: { type: 'get' }, tick: 9 }), /opsMax=4/);
  const history = rec.history();
  assert.deepEqual(
    history.map((o) => [o.id, o.completeTick, o.result]),
    [
      [1, 4, { ok: true, version: 7 }],
      [2, null, { unknown: true }],
      [4, null, { unknown: true }],
    ],
  );
  assert.equal(rec.size, 3);
  assertAccepted(checkLinearizable(history));
});

// ---------------------------------------------------------------------------------------
// Random histories from a sequential store: linearizable by construction, because every
// operation takes effect at one tick inside its interval, in that order.

interface GenOptions {
  readonly seed: number;
  readonly clients: number;
  readonly keys: number;
  readonly ops: number;
  readonly unknownChance: number;
  readonly latencyTicksMax: number;
  /** Values are drawn from this many (so writes repeat values); unset: every write unique. */
  readonly valuePoolSize?: number;
}

function generateHistory(options: GenOptions): HistoryOp[] {
  const prng = createPrng(options.seed);
  const rec = new HistoryRecorder();
  const store = new Map<string, { value: HistoryValue; version: number }>();
  let logIndex = 0;
  const d = options.latencyTicksMax;

  interface Effect {
    readonly id: number;
    readonly key: string;
    readonly op: KvOperation;
    readonly effectTick: number;
    /** null: the client gave up; the reply is never seen. */
    readonly completeTick: number | null;
  }
  const effects: Effect[] = [];
  const replies: { id: number; tick: number; result: KnownResult }[] = [];
  const idleFromTick = Array.from({ length: options.clients }, () => prng.intBetween(0, d));
  let invoked = 0;
  let written = 0;

  const apply = (key: string, op: KvOperation): KnownResult => {
    const cur = store.get(key);
    switch (op.type) {
      case 'get':
        return cur === undefined ? { found: false } : { found: true, value: cur.value, version: cur.version };
      case 'put':
        store.set(key, { value: op.value, version: ++logIndex });
        return { ok: true, version: logIndex };
      case 'delete':
        store.delete(key);
        return { ok: true, version: ++logIndex, deleted: cur !== undefined };
      case 'cas': {
        const observed = cur?.version ?? 0;
        if (observed !== op.expectedVersion) return { ok: false, conflict: true, actualVersion: observed };
        store.set(key, { value: op.value, version: ++logIndex });
        return { ok: true, version: logIndex };
      }
    }
  };

  for (let tick = 0; invoked < options.ops || effects.length > 0 || replies.length > 0; tick++) {
    for (let c = 0; c < options.clients && invoked < options.ops; c++) {
      if ((idleFromTick[c] ?? 0) > tick) continue;
      const key = `k${prng.intBetween(0, options.keys - 1)}`;
      const value = options.valuePoolSize === undefined ? `c${c}-${written++}` : `v${prng.intBetween(1, options.valuePoolSize)}`;
      const op = randomOp(prng, value, store.get(key)?.version ?? 0, logIndex);
      const id = rec.invoke({ clientId: `c${c}`, key, op, tick });
      invoked++;
      if (prng.chance(options.unknownChance)) {
        rec.unknown(id);
        if (prng.chance(0.5)) effects.push({ id, key, op, effectTick: tick + prng.intBetween(0, 4 * d), completeTick: null });
        idleFromTick[c] = tick + prng.intBetween(1, 2 * d);
      } else {
        const effectTick = tick + prng.intBetween(0, d);
        const completeTick = effectTick + prng.intBetween(0, d);
        effects.push({ id, key, op, effectTick, completeTick });
        idleFromTick[c] = completeTick + prng.intBetween(1, 3);
      }
    }
    for (let i = 0; i < effects.length; ) {
      const e = effects[i] as Effect;
      if (e.effectTick !== tick) {
        i++;
        continue;
      }
      effects.splice(i, 1);
      const result = apply(e.key, e.op);
      if (e.completeTick !== null) replies.push({ id: e.id, tick: e.completeTick, result });
    }
    for (let i = 0; i < replies.length; ) {
      const r = replies[i] as (typeof replies)[number];
      if (r.tick !== tick) {
        i++;
        continue;
      }
      replies.splice(i, 1);
      rec.complete(r.id, r.tick, r.result);
    }
  }
  return rec.history();
}

function randomOp(prng: Prng, value: string, currentVersion: number, logIndex: number): KvOperation {
  const roll = prng.intBetween(1, 100);
  if (roll <= 40) return { type: 'get' };
  if (roll <= 70) return { type: 'put', value };
  if (roll <= 80) return { type: 'delete' };
  const expectedVersion = prng.chance(0.6) ? currentVersion : prng.intBetween(0, logIndex);
  return { type: 'cas', expectedVersion, value };
}

function pick<T>(prng: Prng, list: readonly T[]): T {
  const x = list[prng.intBetween(0, list.length - 1)];
  assert.ok(x !== undefined);
  return x;
}

/** Version written by a completed write, or null. Deletes count (they advance the version too). */
function writtenVersion(o: HistoryOp): number | null {
  if (o.completeTick === null || o.op.type === 'get') return null;
  return 'ok' in o.result && o.result.ok ? o.result.version : null;
}

function writtenValue(o: HistoryOp): { value: string; version: number } | null {
  if ((o.op.type !== 'put' && o.op.type !== 'cas') || o.completeTick === null) return null;
  const version = writtenVersion(o);
  return version === null ? null : { value: o.op.value as string, version };
}

/**
 * Replaces one get's result by an older present state: one written by a completed write
 * that a newer write, completed before the get was invoked, replaced. Versions only grow,
 * so no order can give the get that state.
 */
function injectStaleRead(history: readonly HistoryOp[], prng: Prng): { history: HistoryOp[]; key: string } | null {
  const choices: { get: HistoryOp; old: { value: string; version: number } }[] = [];
  for (const g of history) {
    if (g.op.type !== 'get' || g.completeTick === null) continue;
    let newest = 0;
    for (const w of history) {
      const v = w.key === g.key && w.completeTick !== null && w.completeTick < g.invokeTick ? writtenVersion(w) : null;
      if (v !== null) newest = Math.max(newest, v);
    }
    for (const w of history) {
      const old = w.key === g.key ? writtenValue(w) : null;
      if (old !== null && old.version < newest) choices.push({ get: g, old });
    }
  }
  if (choices.length === 0) return null;
  const { get, old } = pick(prng, choices);
  const replaced: HistoryOp = { ...get, result: { found: true, value: old.value, version: old.version } };
  return { history: history.map((o) => (o.id === get.id ? replaced : o)), key: get.key };
}

/**
 * Makes one acknowledged put lost: every get that saw it sees the key's previous value
 * instead, and at least one of those gets started after the put was acknowledged.
 */
function injectLostWrite(history: readonly HistoryOp[], prng: Prng): { history: HistoryOp[]; key: string } | null {
  const choices: { seen: { value: string; version: number }; older: { value: string; version: number } }[] = [];
  for (const p of history) {
    const seen = p.op.type === 'put' ? writtenValue(p) : null;
    if (seen === null || p.completeTick === null) continue;
    const readAfter = history.some(
      (g) => g.key === p.key && g.invokeTick > (p.completeTick ?? 0) && sawVersion(g) === seen.version,
    );
    if (!readAfter) continue;
    let older: { value: string; version: number } | null = null;
    for (const w of history) {
      const v = w.key === p.key ? writtenValue(w) : null;
      if (v !== null && v.version < seen.version && (older === null || v.version > older.version)) older = v;
    }
    if (older !== null) choices.push({ seen, older });
  }
  if (choices.length === 0) return null;
  const { seen, older } = pick(prng, choices);
  let key = '';
  const out = history.map((o) => {
    if (sawVersion(o) !== seen.version) return o;
    key = o.key;
    return { ...o, result: { found: true, value: older.value, version: older.version } } satisfies HistoryOp;
  });
  return { history: out, key };
}

function sawVersion(o: HistoryOp): number | null {
  return o.op.type === 'get' && !isUnknownOutcome(o.result) && 'found' in o.result && o.result.found
    ? o.result.version
    : null;
}

const smallHistory = (seed: number): GenOptions => ({
  seed,
  clients: 4,
  keys: 3,
  ops: 120,
  unknownChance: 0.08,
  latencyTicksMax: 6,
});

test('random concurrent histories of a correct store are accepted, unknown outcomes included', () => {
  let unknownOps = 0;
  let concurrentPairs = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const history = generateHistory(smallHistory(seed));
    unknownOps += history.filter((o) => o.completeTick === null).length;
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1] as HistoryOp;
      const b = history[i] as HistoryOp;
      if (a.completeTick === null || a.completeTick >= b.invokeTick) concurrentPairs++;
    }
    const result = checkLinearizable(history);
    assert.equal(result.ok, true, `seed ${seed}: ${JSON.stringify(result, null, 2)}`);
  }
  // The generator really produced what the test claims.
  assert.ok(unknownOps > 1000, `only ${unknownOps} unknown-outcome ops`);
  assert.ok(concurrentPairs > 10_000, `only ${concurrentPairs} overlapping neighbours`);
});

test('the same random histories with one injected stale read are rejected', () => {
  let injected = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const prng = createPrng(seed * 7919);
    const bad = injectStaleRead(generateHistory(smallHistory(seed)), prng);
    if (bad === null) continue;
    injected++;
    const result = checkLinearizable(bad.history);
    assert.equal(result.ok, false, `seed ${seed}: ${JSON.stringify(result)}`);
    if (result.ok === false) assert.equal(result.key, bad.key, `seed ${seed}`);
  }
  assert.ok(injected >= 280, `only ${injected} seeds had a stale read to inject`);
});

test('the same random histories with one lost write are rejected', () => {
  let injected = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const prng = createPrng(seed * 104_729);
    const bad = injectLostWrite(generateHistory(smallHistory(seed)), prng);
    if (bad === null) continue;
    injected++;
    const result = checkLinearizable(bad.history);
    assert.equal(result.ok, false, `seed ${seed}: ${JSON.stringify(result)}`);
    if (result.ok === false) assert.equal(result.key, bad.key, `seed ${seed}`);
  }
  assert.ok(injected >= 250, `only ${injected} seeds had a lost write to inject`);
});

// ---------------------------------------------------------------------------------------
// A naive checker to compare against: tries every order and, for unknown writes, every
// version in a range, with concrete states. Exponential; fine for a handful of ops.

interface ConcreteState {
  readonly present: boolean;
  readonly value: HistoryValue | null;
  readonly version: number;
  /** Version of the last write, present or not: the next write's version must exceed it. */
  readonly last: number;
}

function naiveLinearizable(history: readonly HistoryOp[]): boolean {
  const keys = [...new Set(history.map((o) => o.key))];
  return keys.every((key) => naiveKey(history.filter((o) => o.key === key)));
}

function naiveKey(ops: readonly HistoryOp[]): boolean {
  const mentioned = ops.flatMap((o) => [
    o.op.type === 'cas' ? o.op.expectedVersion : 0,
    'version' in o.result ? o.result.version : 0,
    'actualVersion' in o.result ? o.result.actualVersion : 0,
  ]);
  const versionMax = Math.max(0, ...mentioned) + ops.filter((o) => o.completeTick === null).length + 1;
  const knownTotal = ops.filter((o) => o.completeTick !== null).length;
  const placed = ops.map(() => false);

  const successors = (s: ConcreteState, o: HistoryOp): ConcreteState[] => {
    const r = o.result;
    const observed = s.present ? s.version : 0;
    const write = (present: boolean, value: HistoryValue | null, v: number): ConcreteState => ({
      present,
      value,
      version: v,
      last: v,
    });
    const fresh = (): number[] => Array.from({ length: versionMax - s.last }, (_, k) => s.last + 1 + k);
    if (isUnknownOutcome(r)) {
      switch (o.op.type) {
        case 'get':
          return [s];
        case 'put': {
          const value = o.op.value;
          return fresh().map((v) => write(true, value, v));
        }
        case 'delete':
          return fresh().map((v) => write(false, null, v));
        case 'cas': {
          const value = o.op.value;
          return observed === o.op.expectedVersion ? fresh().map((v) => write(true, value, v)) : [s];
        }
      }
    }
    if ('found' in r) {
      if (!r.found) return s.present ? [] : [s];
      return s.present && s.value === r.value && s.version === r.version ? [s] : [];
    }
    if ('deleted' in r) return r.deleted === s.present && r.version > s.last ? [write(false, null, r.version)] : [];
    if (o.op.type === 'put') return 'version' in r && r.version > s.last ? [write(true, o.op.value, r.version)] : [];
    if (o.op.type !== 'cas') return [];
    if (r.ok) {
      return observed === o.op.expectedVersion && r.version > s.last ? [write(true, o.op.value, r.version)] : [];
    }
    return r.actualVersion === observed && r.actualVersion !== o.op.expectedVersion ? [s] : [];
  };

  const search = (s: ConcreteState, placedKnown: number): boolean => {
    if (placedKnown === knownTotal) return true;
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i] as HistoryOp;
      if (placed[i]) continue;
      // Real time: an op that completed before o was invoked goes first.
      const mustWait = ops.some(
        (p, j) => !placed[j] && j !== i && p.completeTick !== null && p.completeTick < o.invokeTick,
      );
      if (mustWait) continue;
      for (const next of successors(s, o)) {
        placed[i] = true;
        if (search(next, placedKnown + (o.completeTick === null ? 0 : 1))) return true;
        placed[i] = false;
      }
    }
    return false;
  };
  return search({ present: false, value: null, version: 0, last: 0 }, 0);
}

/** Replaces one known result by a random plausible one (often, not always, a violation). */
function mutateOneResult(history: readonly HistoryOp[], prng: Prng): HistoryOp[] {
  const known = history.filter((o) => o.completeTick !== null);
  if (known.length === 0) return [...history];
  const target = pick(prng, known);
  const values = [...history.flatMap((o) => (o.op.type === 'put' || o.op.type === 'cas' ? [o.op.value] : [])), 'ghost'];
  const version = (): number => prng.intBetween(0, 8);
  let result: KnownResult;
  switch (target.op.type) {
    case 'get':
      result = prng.chance(0.2) ? { found: false } : { found: true, value: pick(prng, values), version: version() };
      break;
    case 'put':
      result = { ok: true, version: version() };
      break;
    case 'delete':
      result = { ok: true, version: version(), deleted: prng.chance(0.5) };
      break;
    case 'cas':
      result = prng.chance(0.5) ? { ok: true, version: version() } : { ok: false, conflict: true, actualVersion: version() };
      break;
  }
  return history.map((o) => (o === target ? { ...o, result } : o));
}

test('on small histories the checker agrees with a naive search over every order and version', () => {
  // The checker prunes its search in several ways (see linearizability.ts); this is the
  // evidence that none of them changes a verdict.
  const verdicts = { linearizable: 0, violation: 0 };
  for (let seed = 1; seed <= 1500; seed++) {
    const prng = createPrng(seed);
    const clean = generateHistory({
      seed,
      clients: 3,
      keys: 1,
      ops: prng.intBetween(2, 6),
      unknownChance: 0.3,
      latencyTicksMax: 3,
      // Half the runs repeat values, so a value no longer identifies its write.
      ...(seed % 2 === 0 ? { valuePoolSize: 3 } : {}),
    });
    const history = prng.chance(0.6) ? mutateOneResult(clean, prng) : clean;
    const expected = naiveLinearizable(history);
    const result = checkLinearizable(history);
    assert.equal(result.ok, expected, `seed ${seed}: naive says ${expected}\n${JSON.stringify(history, null, 1)}\n${JSON.stringify(result, null, 1)}`);
    verdicts[expected ? 'linearizable' : 'violation']++;
  }
  assert.ok(verdicts.linearizable > 500 && verdicts.violation > 300, JSON.stringify(verdicts));
});

test('a 2000-operation history of 5 clients over 10 keys is checked, and an anomaly in it found', () => {
  for (const seed of [11, 12, 13]) {
    const history = generateHistory({ seed, clients: 5, keys: 10, ops: 2000, unknownChance: 0.05, latencyTicksMax: 8 });
    assert.equal(history.length, 2000);
    assert.deepEqual(checkLinearizable(history), { ok: true, keysChecked: 10, opsChecked: 2000 });
    const bad = injectStaleRead(history, createPrng(seed));
    assert.ok(bad !== null);
    assert.equal(checkLinearizable(bad.history).ok, false);
  }
});

test('a single key with thousands of operations is checked without deep recursion', () => {
  const history = generateHistory({ seed: 5, clients: 8, keys: 1, ops: 6000, unknownChance: 0.03, latencyTicksMax: 10 });
  assertAccepted(checkLinearizable(history));
  const bad = injectLostWrite(history, createPrng(5));
  assert.ok(bad !== null);
  assertRejected(checkLinearizable(bad.history));
});
