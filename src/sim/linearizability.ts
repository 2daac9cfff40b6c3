/**
 * Linearizability checker for client histories of the key-value store (history.ts).
 *
 * Owns: deciding whether some total order of the operations (a) respects real time (an
 * operation that completed before another was invoked comes first), (b) follows the
 * sequential specification of one key, and (c) treats unknown outcomes as "took effect at
 * some point after invocation, or never". It must never guess: when its step budget runs
 * out it says `unknown`, distinct from a violation.
 *
 * How: linearizability is local (P-compositionality), so the history is split per key and
 * each key is checked alone with the Wing–Gong–Lowe search and Lowe's memoisation of
 * (linearized-set bitset, model state), as Porcupine does. The search is an explicit stack
 * (histories have thousands of operations; recursion would overflow).
 *
 * Sequential specification of one key (versions are log indexes, so every write's version
 * is greater than the key's previous version, including that of a delete):
 *   state    absent(lastVersion) | present(value, version); initially absent(0)
 *   put      returns version v > current version; state becomes present(value, v)
 *   get      returns the current state (not found when absent)
 *   delete   returns version v > current version and deleted = present before; -> absent(v)
 *   cas(e)   "observed version" = version when present, 0 when absent. Succeeds iff it
 *            equals e (then like put); otherwise a conflict reporting the observed version
 *            and no change.
 * An unknown-outcome write that takes effect gets a version nobody saw; the model keeps it
 * symbolic ("some integer >= n") and pins it when a later get or cas reports it. Because
 * versions only need to increase, choosing every unseen version as small as possible is
 * always consistent, so a lower bound is all the state needs.
 *
 * Plain WGL explodes on long histories with unknown outcomes (every pending unknown write
 * is a candidate at every step, forever). Each rule below only skips orders when another
 * order the search does try is at least as good, so verdicts are unchanged; the tests
 * check this against a naive search over every order on thousands of small histories.
 *   - Acknowledged writes take effect in version order (versions are log indexes).
 *   - A known read that is legal now without pinning a version is placed at once.
 *   - An unknown write is placed only right before an op that needs it.
 *   - Unknown writes nobody can tell apart are used in invocation order; an anonymous
 *     cas that applies is used before an anonymous put.
 *   - An unknown write whose value was read at version V can only take effect as V.
 *   - A node is skipped if a failed node had the same known ops and state and a subset
 *     of its unknown ops.
 */

import { assert, unreachable } from '../stdx/assert.js';
import type { HistoryOp, HistoryValue } from './history.js';
import { assertWellFormed, isUnknownOutcome } from './history.js';

export interface LinearizabilityOptions {
  /**
   * Budget of model steps per key. A key whose search needs more is reported as
   * `ok: 'unknown'` instead of running for hours on a pathological history.
   */
  readonly stepsMax?: number;
}

export type LinearizabilityResult =
  | {
      readonly ok: true;
      readonly keysChecked: number;
      readonly opsChecked: number;
    }
  | {
      readonly ok: false;
      readonly key: string;
      /** One line: which operation cannot take effect and why. */
      readonly reason: string;
      /** The operation no linearization can place (the search got stuck before it completes). */
      readonly blockingOpId: number;
      /** The key's operations around the failure, sorted by invoke tick then id. */
      readonly minimalWindow: readonly HistoryOp[];
      /** Several lines for a human: the longest legal prefix found, the state, each candidate. */
      readonly explanation: string;
    }
  | {
      readonly ok: 'unknown';
      readonly key: string;
      readonly reason: string;
      readonly stepsMax: number;
      readonly explanation: string;
    };

/** Enough for thousands of operations per key with unknown outcomes; a clean history needs about one step per op. */
export const stepsMaxDefault = 2_000_000;

/**
 * Checks `history` for linearizability, key by key (keys in sorted order). A violation on
 * any key wins over a key whose budget ran out; malformed histories throw.
 */
export function checkLinearizable(
  history: readonly HistoryOp[],
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const stepsMax = options.stepsMax ?? stepsMaxDefault;
  assert(Number.isSafeInteger(stepsMax) && stepsMax > 0, () => `stepsMax must be a positive integer, got ${stepsMax}`);
  assertWellFormed(history);

  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    const list = byKey.get(h.key);
    if (list === undefined) byKey.set(h.key, [h]);
    else list.push(h);
  }
  const keys = [...byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  let undecided: { key: string; verdict: BudgetVerdict } | null = null;
  let keysChecked = 0;
  let opsChecked = 0;
  for (const key of keys) {
    const ops = byKey.get(key) ?? [];
    const verdict = checkKey(key, ops, stepsMax);
    if (verdict.kind === 'fail') return failureResult(key, verdict);
    if (verdict.kind === 'budget') {
      undecided ??= { key, verdict };
      continue;
    }
    keysChecked++;
    opsChecked += ops.length;
  }
  if (undecided !== null) {
    const { key, verdict } = undecided;
    return {
      ok: 'unknown',
      key,
      reason: `search for key ${quote(key)} stopped after stepsMax=${stepsMax} steps without a verdict`,
      stepsMax,
      explanation:
        `Key ${quote(key)} has ${verdict.opCount} operations (${verdict.unknownCount} with unknown outcome); ` +
        `the search linearized at most ${verdict.deepestKnown} of ${verdict.knownCount} known-outcome operations ` +
        `before the budget ran out. Raise stepsMax or shorten the history; this is not a violation.`,
    };
  }
  return { ok: true, keysChecked, opsChecked };
}

// ---------------------------------------------------------------------------------------
// Model

interface State {
  readonly present: boolean;
  /** Interned value id when present, -1 when absent. */
  readonly valueId: number;
  /** The version when `versionKnown`, otherwise its lower bound. */
  readonly version: number;
  readonly versionKnown: boolean;
}

const initialState: State = { present: false, valueId: -1, version: 0, versionKnown: true };

/** Why an operation cannot take effect in a state (step returns one of these instead of a state). */
const Illegal = {
  getFoundButAbsent: 0,
  getAbsentButPresent: 1,
  getWrongValue: 2,
  getWrongVersion: 3,
  versionNotIncreasing: 4,
  deletedFlagWrong: 5,
  casExpectedMismatch: 6,
  casConflictButMatched: 7,
  casActualMismatch: 8,
  afterUnseenWrite: 9,
  versionOwnedElsewhere: 10,
} as const;
type IllegalCode = (typeof Illegal)[keyof typeof Illegal];

interface KeyOp {
  /** Index within this key's searchable ops (bit in the linearized set). */
  index: number;
  readonly source: HistoryOp;
  readonly type: HistoryOp['op']['type'];
  readonly known: boolean;
  readonly invokeTick: number;
  /** +Infinity for unknown outcomes: they may take effect at any time after invocation. */
  readonly completeTick: number;
  /** put/cas: the value written; known get that found: the value read; else -1. */
  readonly valueId: number;
  /** cas only. */
  readonly expectedVersion: number;
  /** Known results. */
  readonly found: boolean;
  readonly version: number;
  readonly deleted: boolean;
  readonly casOk: boolean;
  readonly actualVersion: number;
  /**
   * Who may own the version this op would pin a symbolic version to (get: the version
   * read; cas: the version expected or reported): `versionFree`, `versionTaken`, or the
   * value id the owner wrote. See `prepare`.
   */
  pinOwner: number;
  /**
   * Unknown writes that no operation can tell apart (same type and cas expectation, and
   * a value nobody reads) are interchangeable: any order that uses them can use them in
   * invocation order instead, since each was invoked no later than the next. So one is
   * placed only after the previous one of its class (this index; -1 when first), which
   * keeps the search from trying every subset of them.
   */
  classPrev: number;
  /** An unknown write whose value nobody reads (deletes always): see `classPrev`. */
  anonymous: boolean;
  /**
   * An unknown put or cas that is the only write of its value, where gets read that value
   * at exactly one version V: if it takes effect at all, its version is V (0: not so).
   * It can then only go where V fits among the acknowledged writes' versions.
   */
  fixedVersion: number;
  /**
   * Writes with an unknown outcome. The search places one only right before an operation
   * that needs it: one that is illegal in the state before the write and legal after it.
   * Any other placement can be undone without breaking the order (the op that follows is
   * legal without it and leaves an equal state, or an absent one with a lower version,
   * from which everything legal stays legal), and omitting an unknown write is allowed.
   */
  readonly unknownWrite: boolean;
}

/** Pins a symbolic version to `v` (caller checked v >= lower bound). */
function pin(s: State, v: number): State {
  return { present: s.present, valueId: s.valueId, version: v, versionKnown: true };
}

/**
 * Versions are log indexes: one write owns each. A version that an acknowledged write
 * returned is taken; one that a get read with value x can only belong to a write of x.
 * A symbolic version (of an unknown write) may be pinned only to a free version or to
 * one owned by its own value; anything else would give two writes the same version.
 */
const versionFree = -2;
const versionTaken = -1;

function mayPin(s: State, owner: number): boolean {
  return owner === versionFree || owner === s.valueId;
}

/**
 * The sequential specification: the state after `op`, or why `op` cannot take effect in
 * `s`. Unknown-outcome operations accept any result, and only their effect matters.
 */
function step(s: State, op: KeyOp): State | IllegalCode {
  switch (op.type) {
    case 'get': {
      // Unknown gets never reach here (they constrain nothing and are dropped).
      if (!op.found) return s.present ? Illegal.getAbsentButPresent : s;
      if (!s.present) return Illegal.getFoundButAbsent;
      // Versions first: a stale read is best explained by its version.
      if (s.versionKnown ? s.version !== op.version : op.version < s.version) return Illegal.getWrongVersion;
      if (s.valueId !== op.valueId) return Illegal.getWrongValue;
      if (s.versionKnown) return s;
      return mayPin(s, op.pinOwner) ? pin(s, op.version) : Illegal.versionOwnedElsewhere;
    }
    case 'put': {
      if (!op.known) return unknownWriteEffect(s.version, op);
      if (op.version <= s.version) return Illegal.versionNotIncreasing;
      return { present: true, valueId: op.valueId, version: op.version, versionKnown: true };
    }
    case 'delete': {
      if (!op.known) return { present: false, valueId: -1, version: s.version + 1, versionKnown: false };
      if (op.deleted !== s.present) return Illegal.deletedFlagWrong;
      if (op.version <= s.version) return Illegal.versionNotIncreasing;
      return { present: false, valueId: -1, version: op.version, versionKnown: true };
    }
    case 'cas': {
      if (op.known && !op.casOk) {
        // A conflict: the observed version is the reported one, and differs from expected.
        if (op.actualVersion === op.expectedVersion) return Illegal.casConflictButMatched;
        return matchObserved(s, op.actualVersion, op.pinOwner) ?? Illegal.casActualMismatch;
      }
      const matched = matchObserved(s, op.expectedVersion, op.pinOwner);
      if (matched === null) return Illegal.casExpectedMismatch;
      if (!op.known) {
        // Only the applied case is searched: a cas that did not apply changed nothing,
        // which is the same as leaving it out.
        return unknownWriteEffect(matched.version, op);
      }
      if (op.version <= matched.version) return Illegal.versionNotIncreasing;
      return { present: true, valueId: op.valueId, version: op.version, versionKnown: true };
    }
    default:
      return unreachable(op.type, 'operation type');
  }
}

/** An unknown put or applied cas on a key at version `base`. */
function unknownWriteEffect(base: number, op: KeyOp): State | IllegalCode {
  if (op.fixedVersion === 0) return { present: true, valueId: op.valueId, version: base + 1, versionKnown: false };
  if (op.fixedVersion <= base) return Illegal.versionNotIncreasing;
  return { present: true, valueId: op.valueId, version: op.fixedVersion, versionKnown: true };
}

/** `s` with its observed version equal to `v` (pinning a symbolic one), or null if impossible. */
function matchObserved(s: State, v: number, owner: number): State | null {
  if (!s.present) return v === 0 ? s : null;
  if (s.versionKnown) return s.version === v ? s : null;
  return v >= s.version && mayPin(s, owner) ? pin(s, v) : null;
}

function stateKey(s: State): string {
  return `${s.present ? 'p' : 'a'}${s.versionKnown ? 'k' : 'u'}${s.valueId}:${s.version}`;
}

/** True when `op` could take effect in `before`, so placing it right after an unknown write that left `before` is pointless. */
function legalWithout(before: State | null, op: KeyOp): boolean {
  return before !== null && typeof step(before, op) !== 'number';
}

// ---------------------------------------------------------------------------------------
// Per-key search

interface Snapshot {
  readonly prefix: readonly KeyOp[];
  readonly state: State;
  readonly beforeUnknownWrite: State | null;
  /** The known write with the lowest version not yet placed (they go in version order). */
  readonly nextWrite: KeyOp | null;
  readonly blocking: KeyOp;
  readonly candidates: readonly KeyOp[];
}

interface FailVerdict {
  readonly kind: 'fail';
  readonly ops: readonly KeyOp[];
  readonly knownCount: number;
  readonly snapshot: Snapshot;
  readonly values: readonly HistoryValue[];
}

interface BudgetVerdict {
  readonly kind: 'budget';
  readonly opCount: number;
  readonly unknownCount: number;
  readonly knownCount: number;
  readonly deepestKnown: number;
}

type KeyVerdict = { readonly kind: 'ok' } | FailVerdict | BudgetVerdict;

/** Two independent 32-bit tokens per op: the linearized set's hash is their XOR. */
function token(i: number, salt: number): number {
  let z = (Math.imul(i + 1, 0x9e3779b9) ^ salt) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function checkKey(key: string, history: readonly HistoryOp[], stepsMax: number): KeyVerdict {
  const { ops, values } = prepare(history);
  const known = ops.filter((o) => o.known);
  const unknown = ops.filter((o) => !o.known);
  const knownCount = known.length;
  if (knownCount === 0) return { kind: 'ok' };

  // Versions are log indexes: acknowledged writes take effect in version order, so a known
  // write is placed only when every known write with a lower version is. This fixes the
  // order of writes up front and leaves the search only reads and unknown outcomes.
  const knownWrites = known.filter(isKnownWrite).sort((a, b) => a.version - b.version || a.source.id - b.source.id);
  const writeRank = new Int32Array(ops.length).fill(-1);
  knownWrites.forEach((o, rank) => {
    writeRank[o.index] = rank;
  });
  let writesPlaced = 0;
  /** For unknown writes with a fixed version: how many acknowledged writes must precede it. */
  const fixedRank = new Int32Array(ops.length).fill(-1);
  for (const o of unknown) {
    if (o.fixedVersion === 0) continue;
    let below = 0;
    while (below < knownWrites.length && (knownWrites[below]?.version ?? 0) < o.fixedVersion) below++;
    fixedRank[o.index] = below;
  }

  // Entries of known ops, in time order; at equal ticks calls come before returns, so
  // operations that touch at a tick count as concurrent (the checker never depends on
  // the order of events inside one tick).
  const entryCount = knownCount * 2;
  const HEAD = entryCount; // sentinel
  const entryOp = new Int32Array(entryCount);
  const entryIsCall = new Uint8Array(entryCount);
  const order: number[] = [];
  for (let i = 0; i < knownCount; i++) {
    const o = known[i];
    assert(o !== undefined, 'known op');
    entryOp[2 * i] = o.index;
    entryIsCall[2 * i] = 1;
    entryOp[2 * i + 1] = o.index;
    entryIsCall[2 * i + 1] = 0;
    order.push(2 * i, 2 * i + 1);
  }
  const entryTick = (e: number): number => {
    const o = ops[entryOp[e] ?? -1];
    assert(o !== undefined, 'entry op');
    return entryIsCall[e] === 1 ? o.invokeTick : o.completeTick;
  };
  order.sort((a, b) => entryTick(a) - entryTick(b) || (entryIsCall[b] ?? 0) - (entryIsCall[a] ?? 0) || a - b);
  const next = new Int32Array(entryCount + 1).fill(-1);
  const prev = new Int32Array(entryCount + 1).fill(-1);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  const callEntry = new Int32Array(ops.length).fill(-1);
  const returnEntry = new Int32Array(ops.length).fill(-1);
  for (let e = 0; e < entryCount; e++) {
    const i = entryOp[e] ?? -1;
    if (entryIsCall[e] === 1) callEntry[i] = e;
    else returnEntry[i] = e;
  }
  const unlink = (e: number): void => {
    const p = prev[e] ?? -1;
    const n = next[e] ?? -1;
    next[p] = n;
    if (n !== -1) prev[n] = p;
  };
  const relink = (e: number): void => {
    const p = prev[e] ?? -1;
    const n = next[e] ?? -1;
    next[p] = e;
    if (n !== -1) prev[n] = e;
  };

  // Unknown-outcome ops: a second list, in invoke order, of those that may be placed (not
  // placed yet, and first of their class among those not placed: see KeyOp.classPrev).
  // They have no return entry; one is a candidate while it was invoked no later than the
  // first pending return. Node j is the j-th unknown op in invoke order.
  const uCount = unknown.length;
  const UHEAD = uCount;
  const uOp = new Int32Array(uCount);
  const uNext = new Int32Array(uCount + 1).fill(-1);
  const uPrev = new Int32Array(uCount + 1).fill(-1);
  const uListed = new Uint8Array(uCount);
  const uNode = new Int32Array(ops.length).fill(-1);
  const classNext = new Int32Array(ops.length).fill(-1);
  unknown.sort((a, b) => a.invokeTick - b.invokeTick || a.source.id - b.source.id);
  let uLast = UHEAD;
  for (let j = 0; j < uCount; j++) {
    const o = unknown[j];
    assert(o !== undefined, 'unknown op');
    uOp[j] = o.index;
    uNode[o.index] = j;
    if (o.classPrev !== -1) {
      classNext[o.classPrev] = o.index;
      continue;
    }
    uListed[j] = 1;
    uNext[uLast] = j;
    uPrev[j] = uLast;
    uLast = j;
  }
  const uUnlink = (j: number): void => {
    const p = uPrev[j] ?? -1;
    const n = uNext[j] ?? -1;
    uNext[p] = n;
    if (n !== -1) uPrev[n] = p;
    uListed[j] = 0;
  };
  const uRelink = (j: number): void => {
    const p = uPrev[j] ?? -1;
    const n = uNext[j] ?? -1;
    uNext[p] = j;
    if (n !== -1) uPrev[n] = j;
    uListed[j] = 1;
  };
  /** Lists node j at its place in invoke order (the next of a class becoming eligible). */
  const uInsert = (j: number): void => {
    let p = j - 1;
    while (p >= 0 && uListed[p] === 0) p--;
    if (p < 0) p = UHEAD;
    uPrev[j] = p;
    uNext[j] = uNext[p] ?? -1;
    uRelink(j);
  };
  /** Places or takes back unknown op i in the list, with the successor in its class. */
  const uTake = (i: number): void => {
    uUnlink(uNode[i] ?? -1);
    const succ = classNext[i] ?? -1;
    if (succ !== -1) uInsert(uNode[succ] ?? -1);
  };
  const uGiveBack = (i: number): void => {
    const succ = classNext[i] ?? -1;
    if (succ !== -1) uUnlink(uNode[succ] ?? -1);
    uRelink(uNode[i] ?? -1);
  };

  const opAt = (i: number): KeyOp => {
    const o = ops[i];
    assert(o !== undefined, () => `op index ${i} out of range [0, ${ops.length})`);
    return o;
  };

  // The linearized set, and a hash of its known-outcome part. The cache holds nodes
  // (set, state) from which the search failed, keyed by that hash and the state. A node is
  // skipped when a failed one has the same known ops and state and a subset of its unknown
  // ops: having taken fewer unknown writes leaves more choices, never fewer, so the new
  // node fails too. (Lowe's memoisation is the case of equal sets.)
  const words = Math.ceil(ops.length / 32);
  const bits = new Uint32Array(words);
  const knownMask = new Uint32Array(words);
  for (const o of known) knownMask[o.index >>> 5] = (knownMask[o.index >>> 5] ?? 0) | (1 << (o.index & 31));
  const tokA = ops.map((o, i) => (o.known ? token(i, 0x2545f491) : 0));
  const tokB = ops.map((o, i) => (o.known ? token(i, 0x7feb352d) : 0));
  let hashA = 0;
  let hashB = 0;
  const failed = new Map<string, Uint32Array[]>();
  const nodeKey = (hA: number, hB: number, s: State, before: State | null): string =>
    `${hA}.${hB}.${stateKey(s)}${before === null ? '' : `/${stateKey(before)}`}`;
  /** True when failed node `f` has the same known ops as `cur` and a subset of its unknown ones. */
  const covers = (f: Uint32Array, cur: Uint32Array): boolean => {
    for (let k = 0; k < words; k++) {
      const fw = f[k] ?? 0;
      const cw = cur[k] ?? 0;
      const km = knownMask[k] ?? 0;
      if (((fw ^ cw) & km) !== 0 || (fw & ~cw & ~km) !== 0) return false;
    }
    return true;
  };
  const isDoomed = (key: string): boolean => failed.get(key)?.some((f) => covers(f, bits)) ?? false;
  const recordFailure = (): void => {
    const key = nodeKey(hashA, hashB, state, beforeUnknownWrite);
    const entry = bits.slice();
    const bucket = failed.get(key);
    if (bucket === undefined) failed.set(key, [entry]);
    else {
      // Keep buckets small: the new entry makes any entry it covers redundant.
      const kept = bucket.filter((f) => !covers(entry, f));
      kept.push(entry);
      failed.set(key, kept);
    }
  };

  // The explicit stack: which op was placed, what to restore when it is taken back, and
  // whether it was a forced read (then its parent has nothing else worth trying).
  const stackOp: number[] = [];
  const stackState: State[] = [];
  const stackBeforeUnknownWrite: (State | null)[] = [];
  const stackBound: number[] = [];
  const stackForced: boolean[] = [];

  let state = initialState;
  /** When the last placed op is an unknown write: the state before it (see KeyOp.unknownWrite). */
  let beforeUnknownWrite: State | null = null;
  let linearizedKnown = 0;
  let steps = 0;
  let best: Snapshot | null = null;
  let bestKnown = -1;
  let deepestKnown = 0;

  /** Tries to place op `i` next; on success updates state, set and stack. */
  const tryPlace = (i: number, bound: number, forced: boolean): boolean => {
    const o = opAt(i);
    steps++;
    const rank = writeRank[i] ?? -1;
    if (rank !== -1 && rank !== writesPlaced) return false;
    const fixed = fixedRank[i] ?? -1;
    if (fixed !== -1 && fixed !== writesPlaced) return false;
    if (o.anonymous && o.type === 'put' && anonymousCasFits(bound)) return false;
    assert(
      o.classPrev === -1 || ((bits[o.classPrev >>> 5] ?? 0) & (1 << (o.classPrev & 31))) !== 0,
      'an unknown write is listed only after the previous one of its class',
    );
    if (legalWithout(beforeUnknownWrite, o)) return false;
    const r = step(state, o);
    if (typeof r === 'number') return false;
    const w = i >>> 5;
    const mask = 1 << (i & 31);
    bits[w] = (bits[w] ?? 0) | mask;
    const newHashA = (hashA ^ (tokA[i] ?? 0)) >>> 0;
    const newHashB = (hashB ^ (tokB[i] ?? 0)) >>> 0;
    if (isDoomed(nodeKey(newHashA, newHashB, r, o.unknownWrite ? state : null))) {
      bits[w] = (bits[w] ?? 0) & ~mask;
      return false;
    }
    hashA = newHashA;
    hashB = newHashB;
    stackOp.push(i);
    stackState.push(state);
    stackBeforeUnknownWrite.push(beforeUnknownWrite);
    stackBound.push(bound);
    stackForced.push(forced);
    beforeUnknownWrite = o.unknownWrite ? state : null;
    state = r;
    if (rank !== -1) writesPlaced++;
    if (o.known) {
      linearizedKnown++;
      deepestKnown = Math.max(deepestKnown, linearizedKnown);
      unlink(callEntry[i] ?? -1);
      unlink(returnEntry[i] ?? -1);
    } else {
      uTake(i);
    }
    return true;
  };

  /**
   * A known read (get, cas conflict) that may go next and is legal without pinning a
   * version. Placing it first is never wrong: every op still pending completes no earlier
   * than it was invoked, and a read that changes nothing can move ahead of them. So it is
   * placed without trying alternatives, which keeps writes from being tried before reads
   * that need the current state.
   */
  const findForcedRead = (): number => {
    for (let e = next[HEAD] ?? -1; e !== -1 && entryIsCall[e] === 1; e = next[e] ?? -1) {
      const o = opAt(entryOp[e] ?? -1);
      if (!isKnownRead(o) || legalWithout(beforeUnknownWrite, o)) continue;
      steps++;
      if (step(state, o) === state) return o.index;
    }
    return -1;
  };

  /**
   * Whether an anonymous unknown cas may go next and would apply without pinning a
   * version. It then does exactly what an anonymous unknown put would, and using it
   * instead keeps the put, which applies anywhere, for later: so the put is not tried.
   */
  const anonymousCasFits = (bound: number): boolean => {
    if (state.present && !state.versionKnown) return false;
    const observed = state.present ? state.version : 0;
    const limit = opAt(entryOp[bound] ?? -1).completeTick;
    for (let j = uNext[UHEAD] ?? -1; j !== -1; j = uNext[j] ?? -1) {
      const o = opAt(uOp[j] ?? -1);
      if (o.invokeTick > limit) break;
      if (o.anonymous && o.type === 'cas' && o.expectedVersion === observed) return true;
    }
    return false;
  };

  const candidatesBefore = (bound: number): KeyOp[] => {
    const out: KeyOp[] = [];
    for (let e = next[HEAD] ?? -1; e !== -1 && e !== bound; e = next[e] ?? -1) {
      if (entryIsCall[e] === 1) out.push(opAt(entryOp[e] ?? -1));
    }
    const limit = opAt(entryOp[bound] ?? -1).completeTick;
    for (let j = uNext[UHEAD] ?? -1; j !== -1; j = uNext[j] ?? -1) {
      const o = opAt(uOp[j] ?? -1);
      if (o.invokeTick > limit) break;
      out.push(o);
    }
    return out;
  };

  // At each node: a forced read if there is one ('fresh'); else the known calls up to the
  // first pending return ('main'), then the unknown ops invoked no later than that return
  // ('unknown', `bound` is the return entry); when all fail, take back the last placement.
  let mode: 'fresh' | 'main' | 'unknown' | 'backtrack' = 'fresh';
  let cursor = -1;
  let bound = -1;
  while (linearizedKnown < knownCount) {
    if (steps > stepsMax) {
      const unknownCount = history.filter((h) => h.completeTick === null).length;
      return { kind: 'budget', opCount: history.length, unknownCount, knownCount, deepestKnown };
    }
    switch (mode) {
      case 'fresh': {
        const r = findForcedRead();
        if (r === -1) {
          mode = 'main';
          cursor = next[HEAD] ?? -1;
        } else if (!tryPlace(r, -1, true)) {
          mode = 'backtrack'; // that child was explored and failed, so this node fails too
        }
        break;
      }
      case 'main': {
        assert(cursor !== -1, () => `key ${quote(key)}: entry list ended before a pending return`);
        if (entryIsCall[cursor] === 1) {
          if (tryPlace(entryOp[cursor] ?? -1, -1, false)) mode = 'fresh';
          else cursor = next[cursor] ?? -1;
        } else {
          mode = 'unknown';
          bound = cursor;
          cursor = uNext[UHEAD] ?? -1;
        }
        break;
      }
      case 'unknown': {
        const limit = opAt(entryOp[bound] ?? -1).completeTick;
        if (cursor !== -1 && opAt(uOp[cursor] ?? -1).invokeTick <= limit) {
          if (tryPlace(uOp[cursor] ?? -1, bound, false)) mode = 'fresh';
          else cursor = uNext[cursor] ?? -1;
          break;
        }
        // Every candidate failed from here: remember the deepest such point for the report
        // (at equal depth, one that does not end with an unseen write reads better).
        const clearer = best !== null && best.beforeUnknownWrite !== null && beforeUnknownWrite === null;
        if (linearizedKnown > bestKnown || (linearizedKnown === bestKnown && clearer)) {
          bestKnown = linearizedKnown;
          best = {
            prefix: stackOp.map(opAt),
            state,
            beforeUnknownWrite,
            nextWrite: knownWrites[writesPlaced] ?? null,
            blocking: opAt(entryOp[bound] ?? -1),
            candidates: candidatesBefore(bound),
          };
        }
        mode = 'backtrack';
        break;
      }
      case 'backtrack': {
        const i = stackOp.pop();
        if (i === undefined) {
          assert(best !== null, 'a failed search recorded where it got stuck');
          return { kind: 'fail', ops, knownCount, snapshot: best, values };
        }
        recordFailure(); // the node being left: bits, hash and state still describe it
        state = stackState.pop() ?? initialState;
        beforeUnknownWrite = stackBeforeUnknownWrite.pop() ?? null;
        const poppedBound = stackBound.pop() ?? -1;
        const forced = stackForced.pop() ?? false;
        bits[i >>> 5] = (bits[i >>> 5] ?? 0) & ~(1 << (i & 31));
        hashA = (hashA ^ (tokA[i] ?? 0)) >>> 0;
        hashB = (hashB ^ (tokB[i] ?? 0)) >>> 0;
        const o = opAt(i);
        if ((writeRank[i] ?? -1) !== -1) writesPlaced--;
        if (o.known) {
          linearizedKnown--;
          // Re-insert in reverse order of removal so the neighbours' links are valid.
          relink(returnEntry[i] ?? -1);
          relink(callEntry[i] ?? -1);
        } else {
          uGiveBack(i);
        }
        if (forced) break; // the parent fails with its forced read: keep backtracking
        if (o.known) {
          mode = 'main';
          cursor = next[callEntry[i] ?? -1] ?? -1;
        } else {
          mode = 'unknown';
          bound = poppedBound;
          cursor = uNext[uNode[i] ?? -1] ?? -1;
        }
        break;
      }
      default:
        return unreachable(mode, 'search mode');
    }
  }
  return { kind: 'ok' };
}

/** Known-outcome operations that change nothing: gets and cas conflicts. */
function isKnownRead(o: KeyOp): boolean {
  return o.known && (o.type === 'get' || (o.type === 'cas' && !o.casOk));
}

function isKnownWrite(o: KeyOp): boolean {
  return o.known && (o.type === 'put' || o.type === 'delete' || (o.type === 'cas' && o.casOk));
}

/**
 * Turns one key's history into search ops: interns values, drops operations that cannot
 * matter (unknown gets; unknown writes that no later operation could observe).
 */
function prepare(history: readonly HistoryOp[]): { ops: KeyOp[]; values: HistoryValue[] } {
  const valueIds = new Map<string, number>();
  const values: HistoryValue[] = [];
  const intern = (v: HistoryValue): number => {
    const k = valueKey(v);
    let id = valueIds.get(k);
    if (id === undefined) {
      id = values.length;
      valueIds.set(k, id);
      values.push(v);
    }
    return id;
  };

  const all: KeyOp[] = [];
  for (const h of history) {
    const known = !isUnknownOutcome(h.result);
    const r = h.result;
    const op = h.op;
    const valueId =
      op.type === 'put' || op.type === 'cas'
        ? intern(op.value)
        : op.type === 'get' && 'found' in r && r.found
          ? intern(r.value)
          : -1;
    const version = 'version' in r ? r.version : 0;
    const unknownWrite = !known && op.type !== 'get';
    all.push({
      index: -1,
      source: h,
      type: op.type,
      known,
      invokeTick: h.invokeTick,
      completeTick: h.completeTick ?? Number.POSITIVE_INFINITY,
      valueId,
      expectedVersion: op.type === 'cas' ? op.expectedVersion : 0,
      found: 'found' in r && r.found,
      version,
      deleted: 'deleted' in r && r.deleted,
      casOk: 'ok' in r && r.ok,
      actualVersion: 'actualVersion' in r ? r.actualVersion : 0,
      pinOwner: versionFree,
      classPrev: -1,
      anonymous: false,
      fixedVersion: 0,
      unknownWrite,
    });
  }

  // Who owns each version (see `mayPin`). Two different values read at one version make
  // it taken: no write can explain both, and the checker will say so.
  const owner = new Map<number, number>();
  for (const o of all) if (isKnownWrite(o)) owner.set(o.version, versionTaken);
  for (const o of all) {
    if (o.type !== 'get' || !o.known || !o.found) continue;
    const current = owner.get(o.version);
    if (current === undefined) owner.set(o.version, o.valueId);
    else if (current !== o.valueId) owner.set(o.version, versionTaken);
  }
  // Unknown writes whose version the reads give away (see KeyOp.fixedVersion).
  const writers = new Map<number, number>();
  const readAt = new Map<number, number>(); // value id -> version, or -1 when read at several
  for (const o of all) {
    if (o.type === 'put' || o.type === 'cas') writers.set(o.valueId, (writers.get(o.valueId) ?? 0) + 1);
    if (o.type === 'get' && o.known && o.found) {
      const v = readAt.get(o.valueId);
      readAt.set(o.valueId, v === undefined || v === o.version ? o.version : -1);
    }
  }
  for (const o of all) {
    const v = readAt.get(o.valueId) ?? -1;
    if (o.unknownWrite && o.type !== 'delete' && writers.get(o.valueId) === 1 && v > 0) o.fixedVersion = v;
  }
  for (const o of all) o.pinOwner = owner.get(pinnedVersion(o)) ?? versionFree;

  // An unknown write matters only if the operation placed right after it needs it (see
  // KeyOp.unknownWrite). Such an observer must be able to come after it in real time, i.e.
  // complete no earlier than the write was invoked. For each kind of observation, the
  // latest completion tick of an operation making it:
  const seesValue = new Map<number, number>(); // reads value id x, or pins a version only x may own
  let seesFreeVersion = -1; // pins a version nobody owns (a cas expecting or reporting it)
  let seesPresence = -1; // delete that reported deleted=true
  let seesAbsence = -1; // get not found, delete deleted=false, cas seeing version 0
  const seeValue = (valueId: number, t: number): void => {
    seesValue.set(valueId, Math.max(seesValue.get(valueId) ?? -1, t));
  };
  for (const o of all) {
    const t = o.completeTick;
    if (o.type === 'get' && o.known) {
      if (o.found) seeValue(o.valueId, t);
      else seesAbsence = Math.max(seesAbsence, t);
    } else if (o.type === 'delete' && o.known) {
      if (o.deleted) seesPresence = Math.max(seesPresence, t);
      else seesAbsence = Math.max(seesAbsence, t);
    } else if (o.type === 'cas') {
      const seen = o.known && !o.casOk ? o.actualVersion : o.expectedVersion;
      if (seen === 0) seesAbsence = Math.max(seesAbsence, t);
      else if (o.pinOwner === versionFree) seesFreeVersion = Math.max(seesFreeVersion, t);
      else if (o.pinOwner >= 0) seeValue(o.pinOwner, t);
    }
  }
  const ops: KeyOp[] = [];
  for (const o of all) {
    let keep = true;
    if (o.type === 'get' && !o.known) keep = false;
    else if (o.unknownWrite) {
      const latest =
        o.type === 'delete'
          ? seesAbsence
          : Math.max(seesPresence, seesFreeVersion, seesValue.get(o.valueId) ?? -1);
      keep = latest >= o.invokeTick;
    }
    if (keep) {
      o.index = ops.length;
      ops.push(o);
    }
  }

  // Classes of interchangeable unknown writes (see KeyOp.classPrev).
  const lastOfClass = new Map<string, number>();
  const byInvoke = ops.filter((o) => o.unknownWrite).sort((a, b) => a.invokeTick - b.invokeTick || a.source.id - b.source.id);
  for (const o of byInvoke) {
    o.anonymous = o.type === 'delete' || !seesValue.has(o.valueId);
    if (!o.anonymous) continue;
    const cls = o.type === 'cas' ? `cas ${o.expectedVersion}` : o.type;
    o.classPrev = lastOfClass.get(cls) ?? -1;
    lastOfClass.set(cls, o.index);
  }
  return { ops, values };
}

/** The version `o` would pin a symbolic version to: what a get read, what a cas expected or was told. */
function pinnedVersion(o: KeyOp): number {
  if (o.type === 'get') return o.version;
  if (o.type === 'cas') return o.known && !o.casOk ? o.actualVersion : o.expectedVersion;
  return 0;
}

function valueKey(v: HistoryValue): string {
  if (typeof v === 'string') return `s${v}`;
  let hex = 'b';
  for (const byte of v) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

// ---------------------------------------------------------------------------------------
// Reporting

function failureResult(key: string, verdict: FailVerdict): LinearizabilityResult {
  const { snapshot, values, knownCount } = verdict;
  const { blocking, state, prefix, candidates } = snapshot;
  const describeState = (s: State): string => {
    const version = s.versionKnown ? `version ${s.version}` : `a version >= ${s.version} nobody has seen yet`;
    if (!s.present) return `absent (last write: ${version})`;
    return `${describeValue(values[s.valueId] ?? '')} at ${version}`;
  };

  const whyNot = (c: KeyOp): string | null => {
    const next = snapshot.nextWrite;
    if (isKnownWrite(c) && next !== null && next !== c) {
      return `its version ${c.version} is above version ${next.version} of op #${next.source.id}, which must take effect first`;
    }
    if (legalWithout(snapshot.beforeUnknownWrite, c)) return illegalText(Illegal.afterUnseenWrite, c, state);
    const r = step(state, c);
    return typeof r === 'number' ? illegalText(r, c, state) : null;
  };
  const reason =
    `${describeOp(blocking.source)} cannot take effect: ` +
    (whyNot(blocking) ?? 'it could take effect here, but no order of the remaining operations is legal after it');

  const lastWrite = [...prefix].reverse().find((o) => o.type !== 'get' && !(o.type === 'cas' && o.known && !o.casOk));
  const lines: string[] = [];
  lines.push(`Key ${quote(key)} is not linearizable.`);
  lines.push(
    `The longest legal order found places ${prefix.filter((o) => o.known).length} of ${knownCount} ` +
      `known-outcome operations; it ends with ${prefix.length === 0 ? 'nothing' : describeOp(lastOf(prefix).source)}.`,
  );
  lines.push(
    `The key is then ${describeState(state)}` +
      (lastWrite === undefined ? ' (its initial state).' : `, written by ${describeOp(lastWrite.source)}.`),
  );
  lines.push(
    `${describeOp(blocking.source)} completes at tick ${blocking.completeTick}, so it must take effect before ` +
      `any operation invoked later; every operation that could go next fails:`,
  );
  let unknownSilent = 0;
  for (const c of candidates) {
    const why = whyNot(c);
    // Unknown writes that cannot go here are noise in the report: count them instead.
    if (!c.known && why !== null) unknownSilent++;
    else lines.push(`  - ${describeOp(c.source)}: ${why ?? 'legal here, but every continuation after it fails'}`);
  }
  if (unknownSilent > 0) {
    lines.push(`  - and ${unknownSilent} pending unknown-outcome write(s), none of which can take effect here`);
  }

  // The window: the stuck op, what could go next, the write that set the state, and the
  // writes the stuck op's answer refers to (the value or version it reports).
  const window = new Set<HistoryOp>([blocking.source]);
  for (const c of candidates) if (c.known || c.valueId === blocking.valueId) window.add(c.source);
  if (lastWrite !== undefined) window.add(lastWrite.source);
  const reported = reportedVersions(blocking);
  for (const o of verdict.ops) {
    if (o.type === 'get' || (o.known && o.type === 'cas' && !o.casOk)) continue;
    const sameVersion = o.known && reported.includes(o.version);
    const sameValue = blocking.type === 'get' && blocking.found && o.type !== 'delete' && o.valueId === blocking.valueId;
    if (sameVersion || sameValue) window.add(o.source);
  }
  const minimalWindow = [...window].sort((a, b) => a.invokeTick - b.invokeTick || a.id - b.id);
  return { ok: false, key, reason, blockingOpId: blocking.source.id, minimalWindow, explanation: lines.join('\n') };
}

function lastOf<T>(list: readonly T[]): T {
  const x = list[list.length - 1];
  assert(x !== undefined, 'non-empty list');
  return x;
}

function reportedVersions(o: KeyOp): number[] {
  const v = pinnedVersion(o);
  return v > 0 ? [v] : [];
}

function illegalText(code: IllegalCode, o: KeyOp, s: State): string {
  const current = s.versionKnown ? `${s.version}` : `at least ${s.version}`;
  switch (code) {
    case Illegal.getFoundButAbsent:
      return 'it found the key, but the key is absent';
    case Illegal.getAbsentButPresent:
      return 'it did not find the key, but the key is present';
    case Illegal.getWrongValue:
      return 'it read a different value than the key holds';
    case Illegal.getWrongVersion:
      return `it read version ${o.version}, but the key is at version ${current}` +
        (o.version < s.version ? ' (a stale read)' : '');
    case Illegal.versionNotIncreasing:
      return `its version ${o.version} is not above the key's version ${current}`;
    case Illegal.deletedFlagWrong:
      return `it reported deleted=${o.deleted}, but the key is ${s.present ? 'present' : 'absent'}`;
    case Illegal.casExpectedMismatch:
      return `it expected version ${o.expectedVersion}, but the key's observed version is ` +
        (s.present ? current : '0 (absent)');
    case Illegal.casConflictButMatched:
      return `it reported a conflict with actual version ${o.actualVersion}, equal to the expected one`;
    case Illegal.casActualMismatch:
      return `it reported actual version ${o.actualVersion}, but the key's observed version is ` +
        (s.present ? current : '0 (absent)');
    case Illegal.versionOwnedElsewhere:
      return `version ${pinnedVersion(o)} belongs to another write than the one that left the key's value`;
    case Illegal.afterUnseenWrite:
      return 'it is legal before the unseen write just placed, so the search tries it there instead';
    default:
      return unreachable(code, 'illegal code');
  }
}

function describeOp(h: HistoryOp): string {
  const op = h.op;
  const call =
    op.type === 'put'
      ? `put(${describeValue(op.value)})`
      : op.type === 'cas'
        ? `cas(expected ${op.expectedVersion}, ${describeValue(op.value)})`
        : `${op.type}()`;
  const r = h.result;
  let answer: string;
  if (isUnknownOutcome(r)) answer = 'outcome unknown';
  else if ('found' in r) answer = r.found ? `${describeValue(r.value)} at version ${r.version}` : 'not found';
  else if ('deleted' in r) answer = `version ${r.version}, deleted=${r.deleted}`;
  else if (r.ok) answer = `version ${r.version}`;
  else answer = `conflict, actual version ${r.actualVersion}`;
  const ticks = `ticks ${h.invokeTick}-${h.completeTick ?? '?'}`;
  return `op #${h.id} (client ${h.clientId}, ${ticks}) ${call} -> ${answer}`;
}

function describeValue(v: HistoryValue): string {
  if (typeof v !== 'string') return `<${v.length} bytes>`;
  return v.length > 40 ? `${JSON.stringify(v.slice(0, 40))}…` : JSON.stringify(v);
}

function quote(s: string): string {
  return JSON.stringify(s);
}
