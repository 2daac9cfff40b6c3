/**
 * Client histories of the key-value store, as the simulator's clients observe them: what
 * each operation asked for, when it was invoked and answered (in simulator ticks), and
 * what it returned. The linearizability checker (linearizability.ts) reads them.
 *
 * A history records only what a client saw. It must never record what the store did
 * internally (an operation whose reply was lost is `unknown`, not the result the leader
 * computed): the checker's verdict is only as honest as the history it is given.
 */

import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';

/** Values as the store holds them (strings or bytes); compared by content. */
export type HistoryValue = string | Uint8Array;

export type KvOperation =
  | { readonly type: 'put'; readonly value: HistoryValue }
  | { readonly type: 'get' }
  | { readonly type: 'delete' }
  | {
      readonly type: 'cas';
      /** The version the key must have for the write to apply; 0: the key must be absent. */
      readonly expectedVersion: number;
      readonly value: HistoryValue;
    };

export type KvOperationType = KvOperation['type'];

/** A put, or a cas that applied. `version` is the log index the store assigned to the write. */
export interface WriteOk {
  readonly ok: true;
  readonly version: number;
}

export type GetResult =
  | { readonly found: false }
  | { readonly found: true; readonly value: HistoryValue; readonly version: number };

export interface DeleteOk {
  readonly ok: true;
  readonly version: number;
  /** Whether the key was present before the delete. */
  readonly deleted: boolean;
}

export interface CasConflict {
  readonly ok: false;
  readonly conflict: true;
  /** The key's version when the cas was applied; 0 when the key was absent. */
  readonly actualVersion: number;
}

/** The client does not know whether the operation took effect (gave up, crashed, timed out). */
export interface UnknownOutcome {
  readonly unknown: true;
}

export type OpResult = WriteOk | GetResult | DeleteOk | CasConflict | UnknownOutcome;

/** A result the store actually returned. */
export type KnownResult = Exclude<OpResult, UnknownOutcome>;

export interface HistoryOp {
  /** Unique within a history; the recorder numbers operations 1, 2, … in invocation order. */
  readonly id: number;
  readonly clientId: string;
  readonly key: string;
  readonly op: KvOperation;
  readonly invokeTick: number;
  /** null exactly when the outcome is unknown (`result` is then `{ unknown: true }`). */
  readonly completeTick: number | null;
  readonly result: OpResult;
}

export const unknownOutcome: UnknownOutcome = Object.freeze({ unknown: true });

export function isUnknownOutcome(result: OpResult): result is UnknownOutcome {
  return 'unknown' in result;
}

/**
 * Checks that `result` is a result `op` can have, with safe-integer versions. A mismatch
 * is a bug in whoever built the history (recorder or test), so it throws.
 */
export function assertResultFits(op: KvOperation, result: OpResult, what: string): void {
  if (isUnknownOutcome(result)) return;
  const shape = JSON.stringify(result, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v));
  const fits = ((): boolean => {
    switch (op.type) {
      case 'put':
        return 'ok' in result && result.ok && !('deleted' in result) && isIndex(result.version);
      case 'get':
        if (!('found' in result)) return false;
        return !result.found || (isHistoryValue(result.value) && isIndex(result.version));
      case 'delete':
        return 'deleted' in result && typeof result.deleted === 'boolean' && isIndex(result.version);
      case 'cas':
        if (!('ok' in result) || 'deleted' in result) return false;
        return result.ok ? isIndex(result.version) : isIndex(result.actualVersion);
    }
  })();
  assert(fits, () => `${what}: result ${shape} does not fit a ${op.type} operation`);
}

function isHistoryValue(value: unknown): value is HistoryValue {
  return typeof value === 'string' || value instanceof Uint8Array;
}

/** Throws when `history` is malformed (duplicate ids, bad ticks, results of the wrong shape). */
export function assertWellFormed(history: readonly HistoryOp[]): void {
  const ids = new Set<number>();
  for (const h of history) {
    const what = `history op #${h.id} (client ${h.clientId}, ${h.op.type} ${JSON.stringify(h.key)})`;
    assert(!ids.has(h.id), () => `${what}: duplicate id`);
    ids.add(h.id);
    assert(typeof h.key === 'string', () => `${what}: key is not a string`);
    assert(isIndex(h.invokeTick), () => `${what}: invokeTick ${h.invokeTick} is not a non-negative integer`);
    if (h.completeTick === null) {
      assert(isUnknownOutcome(h.result), () => `${what}: completeTick is null but the result is known`);
    } else {
      assert(
        isIndex(h.completeTick) && h.completeTick >= h.invokeTick,
        () => `${what}: completeTick ${h.completeTick} before invokeTick ${h.invokeTick}`,
      );
      assert(!isUnknownOutcome(h.result), () => `${what}: unknown outcome needs completeTick null`);
    }
    const op = h.op;
    if (op.type === 'cas') {
      assert(isIndex(op.expectedVersion), () => `${what}: expectedVersion ${op.expectedVersion} is not an index`);
    }
    assertResultFits(h.op, h.result, what);
  }
}

export interface HistoryRecorderOptions {
  /** Recording more operations than this throws: a run that long is a runaway test. */
  readonly opsMax?: number;
}

interface MutableOp {
  id: number;
  clientId: string;
  key: string;
  op: KvOperation;
  invokeTick: number;
  completeTick: number | null;
  result: OpResult;
  /** pending: invoked, not yet answered; done: completed or marked unknown; failed: dropped. */
  status: 'pending' | 'done' | 'failed';
}

/**
 * Collects a history as the simulator's clients run. Call `invoke` when a client sends a
 * request, then exactly one of `complete` (an answer arrived), `unknown` (the client gave
 * up, crashed or timed out: the operation may or may not have taken effect) or `fail`
 * (the store answered that it did NOT apply it, e.g. rejected it before proposing; when in
 * doubt use `unknown`, since a wrong `fail` hides real anomalies).
 */
export class HistoryRecorder {
  readonly opsMax: number;
  private readonly ops: MutableOp[] = [];
  private readonly byId = new Map<number, MutableOp>();
  private nextId = 1;

  constructor(options: HistoryRecorderOptions = {}) {
    this.opsMax = options.opsMax ?? 1_000_000;
    assert(isIndex(this.opsMax) && this.opsMax > 0, () => `opsMax must be a positive integer, got ${this.opsMax}`);
  }

  /** Number of operations recorded (failed ones excluded). */
  get size(): number {
    return this.byId.size;
  }

  /** Records the start of an operation and returns its id. */
  invoke(input: { readonly clientId: string; readonly key: string; readonly op: KvOperation; readonly tick: number }): number {
    const { clientId, key, op, tick } = input;
    assert(this.ops.length < this.opsMax, () => `history holds opsMax=${this.opsMax} operations already`);
    assert(isIndex(tick), () => `invoke tick ${tick} is not a non-negative integer`);
    if (op.type === 'cas') {
      assert(isIndex(op.expectedVersion), () => `cas expectedVersion ${op.expectedVersion} is not an index`);
    }
    const id = this.nextId++;
    const entry: MutableOp = {
      id,
      clientId,
      key,
      op,
      invokeTick: tick,
      completeTick: null,
      result: unknownOutcome,
      status: 'pending',
    };
    this.ops.push(entry);
    this.byId.set(id, entry);
    return id;
  }

  /** Records the answer of operation `id`, received at `tick`. */
  complete(id: number, tick: number, result: KnownResult): void {
    const entry = this.pending(id, 'complete');
    assert(
      isIndex(tick) && tick >= entry.invokeTick,
      () => `op #${id}: complete tick ${tick} before its invoke tick ${entry.invokeTick}`,
    );
    assertResultFits(entry.op, result, `op #${id}`);
    entry.completeTick = tick;
    entry.result = result;
    entry.status = 'done';
  }

  /** The outcome of operation `id` will never be known: it may take effect at any time, or never. */
  unknown(id: number): void {
    const entry = this.pending(id, 'unknown');
    entry.status = 'done';
  }

  /** Operation `id` definitely did not take effect: it is dropped from the history. */
  fail(id: number): void {
    const entry = this.pending(id, 'fail');
    entry.status = 'failed';
    this.byId.delete(id);
  }

  /** The history so far, in invocation order. Operations still pending count as unknown. */
  history(): HistoryOp[] {
    const out: HistoryOp[] = [];
    for (const e of this.ops) {
      if (e.status === 'failed') continue;
      out.push({
        id: e.id,
        clientId: e.clientId,
        key: e.key,
        op: e.op,
        invokeTick: e.invokeTick,
        completeTick: e.completeTick,
        result: e.result,
      });
    }
    return out;
  }

  private pending(id: number, what: string): MutableOp {
    const entry = this.byId.get(id);
    assert(entry !== undefined, () => `${what}(${id}): no such operation`);
    assert(entry.status === 'pending', () => `${what}(${id}): operation already ${entry.status}`);
    return entry;
  }
}
