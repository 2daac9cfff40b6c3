/**
 * The per-key search of the linearizability checker: Wing–Gong–Lowe with an explicit
 * stack, Lowe's memoisation extended to subsets of unknown ops, and the pruning rules
 * listed in linearizability.ts. Parts, each with one job:
 *   WriteOrder     acknowledged writes take effect in version order (and unknown writes
 *                  with a fixed version where it fits among them)
 *   KnownEntries   the call and return entries of known-outcome ops, in time order, as a
 *                  linked list that placing an op unlinks and backtracking relinks
 *   UnknownList    the unknown-outcome ops that may be placed, in invoke order
 *   FailureMemo    the linearized set, its hash, and the nodes from which the search failed
 *   KeySearch      the search loop itself, and where it got stuck deepest (for the report)
 *
 * Owns the search for one key. Must never build report text (linearizability.ts does) or
 * change the order in which candidates are tried: verdicts, reports and step counts (the
 * budget) depend on it.
 */

import { assert, unreachable } from '../stdx/assert.js';
import type { HistoryOp, HistoryValue } from './history.js';
import { initialState, isKnownRead, isKnownWrite, legalWithout, quote, stateKey, step, type KeyOp, type State } from './linearizability-model.js';
import { prepare } from './linearizability-prepare.js';

export interface Snapshot {
  readonly prefix: readonly KeyOp[];
  readonly state: State;
  readonly beforeUnknownWrite: State | null;
  /** The known write with the lowest version not yet placed (they go in version order). */
  readonly nextWrite: KeyOp | null;
  readonly blocking: KeyOp;
  readonly candidates: readonly KeyOp[];
}

export interface FailVerdict {
  readonly kind: 'fail';
  readonly ops: readonly KeyOp[];
  readonly knownCount: number;
  readonly snapshot: Snapshot;
  readonly values: readonly HistoryValue[];
}

export interface BudgetVerdict {
  readonly kind: 'budget';
  readonly opCount: number;
  readonly unknownCount: number;
  readonly knownCount: number;
  readonly deepestKnown: number;
}

export type KeyVerdict = { readonly kind: 'ok' } | FailVerdict | BudgetVerdict;

/** Searches one key's history for a linearization within `stepsMax` model steps. */
export function checkKey(key: string, history: readonly HistoryOp[], stepsMax: number): KeyVerdict {
  const { ops, values } = prepare(history);
  const known = ops.filter((o) => o.known);
  const unknown = ops.filter((o) => !o.known);
  if (known.length === 0) return { kind: 'ok' };
  const search = new KeySearch(key, ops, known, unknown);
  const verdict = search.run(stepsMax);
  if (verdict === 'budget') {
    const unknownCount = history.filter((h) => h.completeTick === null).length;
    return { kind: 'budget', opCount: history.length, unknownCount, knownCount: known.length, deepestKnown: search.deepestKnown };
  }
  if (verdict === 'fail') {
    assert(search.best !== null, 'a failed search recorded where it got stuck');
    return { kind: 'fail', ops, knownCount: known.length, snapshot: search.best, values };
  }
  return { kind: 'ok' };
}

/**
 * Versions are log indexes: acknowledged writes take effect in version order, so a known
 * write is placed only when every known write with a lower version is. This fixes the
 * order of writes up front and leaves the search only reads and unknown outcomes.
 */
class WriteOrder {
  readonly knownWrites: KeyOp[];
  /** Per op: its rank among the acknowledged writes, or -1. */
  readonly writeRank: Int32Array;
  /** For unknown writes with a fixed version: how many acknowledged writes must precede it. */
  readonly fixedRank: Int32Array;
  placed = 0;

  constructor(ops: readonly KeyOp[], known: readonly KeyOp[], unknown: readonly KeyOp[]) {
    this.knownWrites = known.filter(isKnownWrite).sort((a, b) => a.version - b.version || a.source.id - b.source.id);
    this.writeRank = new Int32Array(ops.length).fill(-1);
    this.knownWrites.forEach((o, rank) => {
      this.writeRank[o.index] = rank;
    });
    this.fixedRank = new Int32Array(ops.length).fill(-1);
    for (const o of unknown) {
      if (o.fixedVersion === 0) continue;
      let below = 0;
      while (below < this.knownWrites.length && (this.knownWrites[below]?.version ?? 0) < o.fixedVersion) below++;
      this.fixedRank[o.index] = below;
    }
  }

  /** Whether op `i` may take effect now, given how many acknowledged writes are placed. */
  fits(i: number): boolean {
    const rank = this.writeRank[i] ?? -1;
    if (rank !== -1 && rank !== this.placed) return false;
    const fixed = this.fixedRank[i] ?? -1;
    return fixed === -1 || fixed === this.placed;
  }

  isRanked(i: number): boolean {
    return (this.writeRank[i] ?? -1) !== -1;
  }

  next(): KeyOp | null {
    return this.knownWrites[this.placed] ?? null;
  }
}

/**
 * Entries of known ops, in time order; at equal ticks calls come before returns, so
 * operations that touch at a tick count as concurrent (the checker never depends on the
 * order of events inside one tick). `head` is a sentinel before the first entry.
 */
class KnownEntries {
  readonly head: number;
  readonly entryOp: Int32Array;
  readonly entryIsCall: Uint8Array;
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly callEntry: Int32Array;
  readonly returnEntry: Int32Array;

  constructor(ops: readonly KeyOp[], known: readonly KeyOp[]) {
    const entryCount = known.length * 2;
    this.head = entryCount;
    this.entryOp = new Int32Array(entryCount);
    this.entryIsCall = new Uint8Array(entryCount);
    const order: number[] = [];
    for (let i = 0; i < known.length; i++) {
      const o = known[i];
      assert(o !== undefined, 'known op');
      this.entryOp[2 * i] = o.index;
      this.entryIsCall[2 * i] = 1;
      this.entryOp[2 * i + 1] = o.index;
      this.entryIsCall[2 * i + 1] = 0;
      order.push(2 * i, 2 * i + 1);
    }
    const entryTick = (e: number): number => {
      const o = ops[this.entryOp[e] ?? -1];
      assert(o !== undefined, 'entry op');
      return this.entryIsCall[e] === 1 ? o.invokeTick : o.completeTick;
    };
    order.sort((a, b) => entryTick(a) - entryTick(b) || (this.entryIsCall[b] ?? 0) - (this.entryIsCall[a] ?? 0) || a - b);
    this.next = new Int32Array(entryCount + 1).fill(-1);
    this.prev = new Int32Array(entryCount + 1).fill(-1);
    let last = this.head;
    for (const e of order) {
      this.next[last] = e;
      this.prev[e] = last;
      last = e;
    }
    this.callEntry = new Int32Array(ops.length).fill(-1);
    this.returnEntry = new Int32Array(ops.length).fill(-1);
    for (let e = 0; e < entryCount; e++) {
      const i = this.entryOp[e] ?? -1;
      if (this.entryIsCall[e] === 1) this.callEntry[i] = e;
      else this.returnEntry[i] = e;
    }
  }

  /** Takes op `i`'s call and return entries out of the list (it was placed). */
  take(i: number): void {
    this.unlink(this.callEntry[i] ?? -1);
    this.unlink(this.returnEntry[i] ?? -1);
  }

  /** Puts them back, in reverse order of removal so the neighbours' links are valid. */
  giveBack(i: number): void {
    this.relink(this.returnEntry[i] ?? -1);
    this.relink(this.callEntry[i] ?? -1);
  }

  first(): number {
    return this.next[this.head] ?? -1;
  }

  after(e: number): number {
    return this.next[e] ?? -1;
  }

  isCall(e: number): boolean {
    return this.entryIsCall[e] === 1;
  }

  opOf(e: number): number {
    return this.entryOp[e] ?? -1;
  }

  private unlink(e: number): void {
    const p = this.prev[e] ?? -1;
    const n = this.next[e] ?? -1;
    this.next[p] = n;
    if (n !== -1) this.prev[n] = p;
  }

  private relink(e: number): void {
    const p = this.prev[e] ?? -1;
    const n = this.next[e] ?? -1;
    this.next[p] = e;
    if (n !== -1) this.prev[n] = e;
  }
}

/**
 * Unknown-outcome ops: a second list, in invoke order, of those that may be placed (not
 * placed yet, and first of their class among those not placed: see KeyOp.classPrev).
 * They have no return entry; one is a candidate while it was invoked no later than the
 * first pending return. Node j is the j-th unknown op in invoke order.
 */
class UnknownList {
  private readonly head: number;
  private readonly uOp: Int32Array;
  private readonly uNext: Int32Array;
  private readonly uPrev: Int32Array;
  private readonly uListed: Uint8Array;
  private readonly uNode: Int32Array;
  private readonly classNext: Int32Array;

  /** Sorts `unknown` in invoke order (in place, as the search's node numbering). */
  constructor(ops: readonly KeyOp[], unknown: KeyOp[]) {
    const uCount = unknown.length;
    this.head = uCount;
    this.uOp = new Int32Array(uCount);
    this.uNext = new Int32Array(uCount + 1).fill(-1);
    this.uPrev = new Int32Array(uCount + 1).fill(-1);
    this.uListed = new Uint8Array(uCount);
    this.uNode = new Int32Array(ops.length).fill(-1);
    this.classNext = new Int32Array(ops.length).fill(-1);
    unknown.sort((a, b) => a.invokeTick - b.invokeTick || a.source.id - b.source.id);
    let uLast = this.head;
    for (let j = 0; j < uCount; j++) {
      const o = unknown[j];
      assert(o !== undefined, 'unknown op');
      this.uOp[j] = o.index;
      this.uNode[o.index] = j;
      if (o.classPrev !== -1) {
        this.classNext[o.classPrev] = o.index;
        continue;
      }
      this.uListed[j] = 1;
      this.uNext[uLast] = j;
      this.uPrev[j] = uLast;
      uLast = j;
    }
  }

  first(): number {
    return this.uNext[this.head] ?? -1;
  }

  after(j: number): number {
    return this.uNext[j] ?? -1;
  }

  opOf(j: number): number {
    return this.uOp[j] ?? -1;
  }

  nodeOf(i: number): number {
    return this.uNode[i] ?? -1;
  }

  /** Places unknown op i: out of the list, with the successor in its class listed. */
  take(i: number): void {
    this.unlink(this.uNode[i] ?? -1);
    const succ = this.classNext[i] ?? -1;
    if (succ !== -1) this.insert(this.uNode[succ] ?? -1);
  }

  /** Takes back the placement of unknown op i. */
  giveBack(i: number): void {
    const succ = this.classNext[i] ?? -1;
    if (succ !== -1) this.unlink(this.uNode[succ] ?? -1);
    this.relink(this.uNode[i] ?? -1);
  }

  private unlink(j: number): void {
    const p = this.uPrev[j] ?? -1;
    const n = this.uNext[j] ?? -1;
    this.uNext[p] = n;
    if (n !== -1) this.uPrev[n] = p;
    this.uListed[j] = 0;
  }

  private relink(j: number): void {
    const p = this.uPrev[j] ?? -1;
    const n = this.uNext[j] ?? -1;
    this.uNext[p] = j;
    if (n !== -1) this.uPrev[n] = j;
    this.uListed[j] = 1;
  }

  /** Lists node j at its place in invoke order (the next of a class becoming eligible). */
  private insert(j: number): void {
    let p = j - 1;
    while (p >= 0 && this.uListed[p] === 0) p--;
    if (p < 0) p = this.head;
    this.uPrev[j] = p;
    this.uNext[j] = this.uNext[p] ?? -1;
    this.relink(j);
  }
}

/** Two independent 32-bit tokens per op: the linearized set's hash is their XOR. */
function token(i: number, salt: number): number {
  let z = (Math.imul(i + 1, 0x9e3779b9) ^ salt) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * The linearized set, and a hash of its known-outcome part. The cache holds nodes
 * (set, state) from which the search failed, keyed by that hash and the state. A node is
 * skipped when a failed one has the same known ops and state and a subset of its unknown
 * ops: having taken fewer unknown writes leaves more choices, never fewer, so the new
 * node fails too. (Lowe's memoisation is the case of equal sets.)
 */
class FailureMemo {
  readonly bits: Uint32Array;
  private readonly words: number;
  private readonly knownMask: Uint32Array;
  private readonly tokA: number[];
  private readonly tokB: number[];
  private hashA = 0;
  private hashB = 0;
  private readonly failed = new Map<string, Uint32Array[]>();

  constructor(ops: readonly KeyOp[], known: readonly KeyOp[]) {
    this.words = Math.ceil(ops.length / 32);
    this.bits = new Uint32Array(this.words);
    this.knownMask = new Uint32Array(this.words);
    for (const o of known) this.knownMask[o.index >>> 5] = (this.knownMask[o.index >>> 5] ?? 0) | (1 << (o.index & 31));
    this.tokA = ops.map((o, i) => (o.known ? token(i, 0x2545f491) : 0));
    this.tokB = ops.map((o, i) => (o.known ? token(i, 0x7feb352d) : 0));
  }

  has(i: number): boolean {
    return ((this.bits[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
  }

  /**
   * Adds op `i` to the set unless the node it leads to (state `s`, `before` the state
   * before it when it is an unknown write) is known to fail; returns whether it added.
   */
  tryAdd(i: number, s: State, before: State | null): boolean {
    const w = i >>> 5;
    const mask = 1 << (i & 31);
    this.bits[w] = (this.bits[w] ?? 0) | mask;
    const newHashA = (this.hashA ^ (this.tokA[i] ?? 0)) >>> 0;
    const newHashB = (this.hashB ^ (this.tokB[i] ?? 0)) >>> 0;
    if (this.isDoomed(nodeKey(newHashA, newHashB, s, before))) {
      this.bits[w] = (this.bits[w] ?? 0) & ~mask;
      return false;
    }
    this.hashA = newHashA;
    this.hashB = newHashB;
    return true;
  }

  remove(i: number): void {
    this.bits[i >>> 5] = (this.bits[i >>> 5] ?? 0) & ~(1 << (i & 31));
    this.hashA = (this.hashA ^ (this.tokA[i] ?? 0)) >>> 0;
    this.hashB = (this.hashB ^ (this.tokB[i] ?? 0)) >>> 0;
  }

  /** Remembers that the current set, in state `s` (`before`: see tryAdd), fails. */
  recordFailure(s: State, before: State | null): void {
    const key = nodeKey(this.hashA, this.hashB, s, before);
    const entry = this.bits.slice();
    const bucket = this.failed.get(key);
    if (bucket === undefined) this.failed.set(key, [entry]);
    else {
      // Keep buckets small: the new entry makes any entry it covers redundant.
      const kept = bucket.filter((f) => !this.covers(entry, f));
      kept.push(entry);
      this.failed.set(key, kept);
    }
  }

  private isDoomed(key: string): boolean {
    return this.failed.get(key)?.some((f) => this.covers(f, this.bits)) ?? false;
  }

  /** True when failed node `f` has the same known ops as `cur` and a subset of its unknown ones. */
  private covers(f: Uint32Array, cur: Uint32Array): boolean {
    for (let k = 0; k < this.words; k++) {
      const fw = f[k] ?? 0;
      const cw = cur[k] ?? 0;
      const km = this.knownMask[k] ?? 0;
      if (((fw ^ cw) & km) !== 0 || (fw & ~cw & ~km) !== 0) return false;
    }
    return true;
  }
}

function nodeKey(hA: number, hB: number, s: State, before: State | null): string {
  return `${hA}.${hB}.${stateKey(s)}${before === null ? '' : `/${stateKey(before)}`}`;
}

type SearchMode = 'fresh' | 'main' | 'unknown' | 'backtrack';

/** One frame of the explicit stack: the op placed, and what to restore when it is taken back. */
interface Frame {
  readonly op: number;
  readonly state: State;
  readonly beforeUnknownWrite: State | null;
  readonly bound: number;
  /** A forced read: its parent has nothing else worth trying. */
  readonly forced: boolean;
}

/**
 * The search. At each node: a forced read if there is one ('fresh'); else the known calls
 * up to the first pending return ('main'), then the unknown ops invoked no later than that
 * return ('unknown', `bound` is the return entry); when all fail, take back the last
 * placement ('backtrack').
 */
class KeySearch {
  private readonly writes: WriteOrder;
  private readonly entries: KnownEntries;
  private readonly unknowns: UnknownList;
  private readonly memo: FailureMemo;
  private readonly stack: Frame[] = [];
  private readonly knownCount: number;

  private state = initialState;
  /** When the last placed op is an unknown write: the state before it (see KeyOp.unknownWrite). */
  private beforeUnknownWrite: State | null = null;
  private linearizedKnown = 0;
  private steps = 0;
  /** Where the search got stuck deepest, for the report. */
  best: Snapshot | null = null;
  private bestKnown = -1;
  deepestKnown = 0;

  private mode: SearchMode = 'fresh';
  private cursor = -1;
  private bound = -1;

  constructor(
    private readonly key: string,
    private readonly ops: readonly KeyOp[],
    known: readonly KeyOp[],
    unknown: KeyOp[],
  ) {
    this.knownCount = known.length;
    this.writes = new WriteOrder(ops, known, unknown);
    this.entries = new KnownEntries(ops, known);
    this.unknowns = new UnknownList(ops, unknown);
    this.memo = new FailureMemo(ops, known);
  }

  run(stepsMax: number): 'ok' | 'fail' | 'budget' {
    while (this.linearizedKnown < this.knownCount) {
      if (this.steps > stepsMax) return 'budget';
      switch (this.mode) {
        case 'fresh':
          this.onFresh();
          break;
        case 'main':
          this.onMain();
          break;
        case 'unknown':
          this.onUnknown();
          break;
        case 'backtrack':
          if (!this.onBacktrack()) return 'fail';
          break;
        default:
          return unreachable(this.mode, 'search mode');
      }
    }
    return 'ok';
  }

  private onFresh(): void {
    const r = this.findForcedRead();
    if (r === -1) {
      this.mode = 'main';
      this.cursor = this.entries.first();
    } else if (!this.tryPlace(r, -1, true)) {
      this.mode = 'backtrack'; // that child was explored and failed, so this node fails too
    }
  }

  private onMain(): void {
    assert(this.cursor !== -1, () => `key ${quote(this.key)}: entry list ended before a pending return`);
    if (this.entries.isCall(this.cursor)) {
      if (this.tryPlace(this.entries.opOf(this.cursor), -1, false)) this.mode = 'fresh';
      else this.cursor = this.entries.after(this.cursor);
    } else {
      this.mode = 'unknown';
      this.bound = this.cursor;
      this.cursor = this.unknowns.first();
    }
  }

  private onUnknown(): void {
    const limit = this.opAt(this.entries.opOf(this.bound)).completeTick;
    if (this.cursor !== -1 && this.opAt(this.unknowns.opOf(this.cursor)).invokeTick <= limit) {
      if (this.tryPlace(this.unknowns.opOf(this.cursor), this.bound, false)) this.mode = 'fresh';
      else this.cursor = this.unknowns.after(this.cursor);
      return;
    }
    // Every candidate failed from here: remember the deepest such point for the report
    // (at equal depth, one that does not end with an unseen write reads better).
    const best = this.best;
    const clearer = best !== null && best.beforeUnknownWrite !== null && this.beforeUnknownWrite === null;
    if (this.linearizedKnown > this.bestKnown || (this.linearizedKnown === this.bestKnown && clearer)) {
      this.bestKnown = this.linearizedKnown;
      this.best = {
        prefix: this.stack.map((f) => this.opAt(f.op)),
        state: this.state,
        beforeUnknownWrite: this.beforeUnknownWrite,
        nextWrite: this.writes.next(),
        blocking: this.opAt(this.entries.opOf(this.bound)),
        candidates: this.candidatesBefore(this.bound),
      };
    }
    this.mode = 'backtrack';
  }

  /** Takes back the last placement; false when there is none (the search failed). */
  private onBacktrack(): boolean {
    const frame = this.stack.pop();
    if (frame === undefined) return false;
    this.memo.recordFailure(this.state, this.beforeUnknownWrite); // the node being left
    const i = frame.op;
    this.state = frame.state;
    this.beforeUnknownWrite = frame.beforeUnknownWrite;
    this.memo.remove(i);
    const o = this.opAt(i);
    if (this.writes.isRanked(i)) this.writes.placed--;
    if (o.known) {
      this.linearizedKnown--;
      this.entries.giveBack(i);
    } else {
      this.unknowns.giveBack(i);
    }
    if (frame.forced) return true; // the parent fails with its forced read: keep backtracking
    if (o.known) {
      this.mode = 'main';
      this.cursor = this.entries.after(this.entries.callEntry[i] ?? -1);
    } else {
      this.mode = 'unknown';
      this.bound = frame.bound;
      this.cursor = this.unknowns.after(this.unknowns.nodeOf(i));
    }
    return true;
  }

  private opAt(i: number): KeyOp {
    const o = this.ops[i];
    assert(o !== undefined, () => `op index ${i} out of range [0, ${this.ops.length})`);
    return o;
  }

  /** Tries to place op `i` next; on success updates state, set and stack. */
  private tryPlace(i: number, bound: number, forced: boolean): boolean {
    const o = this.opAt(i);
    this.steps++;
    if (!this.writes.fits(i)) return false;
    if (o.anonymous && o.type === 'put' && this.anonymousCasFits(bound)) return false;
    assert(o.classPrev === -1 || this.memo.has(o.classPrev), 'an unknown write is listed only after the previous one of its class');
    if (legalWithout(this.beforeUnknownWrite, o)) return false;
    const r = step(this.state, o);
    if (typeof r === 'number') return false;
    if (!this.memo.tryAdd(i, r, o.unknownWrite ? this.state : null)) return false;
    this.stack.push({ op: i, state: this.state, beforeUnknownWrite: this.beforeUnknownWrite, bound, forced });
    this.beforeUnknownWrite = o.unknownWrite ? this.state : null;
    this.state = r;
    if (this.writes.isRanked(i)) this.writes.placed++;
    if (o.known) {
      this.linearizedKnown++;
      this.deepestKnown = Math.max(this.deepestKnown, this.linearizedKnown);
      this.entries.take(i);
    } else {
      this.unknowns.take(i);
    }
    return true;
  }

  /**
   * A known read (get, cas conflict) that may go next and is legal without pinning a
   * version. Placing it first is never wrong: every op still pending completes no earlier
   * than it was invoked, and a read that changes nothing can move ahead of them. So it is
   * placed without trying alternatives, which keeps writes from being tried before reads
   * that need the current state.
   */
  private findForcedRead(): number {
    for (let e = this.entries.first(); e !== -1 && this.entries.isCall(e); e = this.entries.after(e)) {
      const o = this.opAt(this.entries.opOf(e));
      if (!isKnownRead(o) || legalWithout(this.beforeUnknownWrite, o)) continue;
      this.steps++;
      if (step(this.state, o) === this.state) return o.index;
    }
    return -1;
  }

  /**
   * Whether an anonymous unknown cas may go next and would apply without pinning a
   * version. It then does exactly what an anonymous unknown put would, and using it
   * instead keeps the put, which applies anywhere, for later: so the put is not tried.
   */
  private anonymousCasFits(bound: number): boolean {
    const s = this.state;
    if (s.present && !s.versionKnown) return false;
    const observed = s.present ? s.version : 0;
    const limit = this.opAt(this.entries.opOf(bound)).completeTick;
    for (let j = this.unknowns.first(); j !== -1; j = this.unknowns.after(j)) {
      const o = this.opAt(this.unknowns.opOf(j));
      if (o.invokeTick > limit) break;
      if (o.anonymous && o.type === 'cas' && o.expectedVersion === observed) return true;
    }
    return false;
  }

  private candidatesBefore(bound: number): KeyOp[] {
    const out: KeyOp[] = [];
    for (let e = this.entries.first(); e !== -1 && e !== bound; e = this.entries.after(e)) {
      if (this.entries.isCall(e)) out.push(this.opAt(this.entries.opOf(e)));
    }
    const limit = this.opAt(this.entries.opOf(bound)).completeTick;
    for (let j = this.unknowns.first(); j !== -1; j = this.unknowns.after(j)) {
      const o = this.opAt(this.unknowns.opOf(j));
      if (o.invokeTick > limit) break;
      out.push(o);
    }
    return out;
  }
}
