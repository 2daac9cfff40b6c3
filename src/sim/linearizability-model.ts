/**
 * The sequential specification of one key, as the linearizability search sees it: the
 * model state, the search's view of an operation (KeyOp), and `step`, which says what an
 * operation does to a state or why it cannot take effect there.
 *
 * Owns the model only. Must never search, order operations or build reports: those live in
 * linearizability-search.ts and linearizability.ts.
 */

import { unreachable } from '../stdx/assert.js';
import type { HistoryOp } from './history.js';

export interface State {
  readonly present: boolean;
  /** Interned value id when present, -1 when absent. */
  readonly valueId: number;
  /** The version when `versionKnown`, otherwise its lower bound. */
  readonly version: number;
  readonly versionKnown: boolean;
}

export const initialState: State = { present: false, valueId: -1, version: 0, versionKnown: true };

/** Why an operation cannot take effect in a state (step returns one of these instead of a state). */
export const Illegal = {
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
export type IllegalCode = (typeof Illegal)[keyof typeof Illegal];

export interface KeyOp {
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
export function pin(s: State, v: number): State {
  return { present: s.present, valueId: s.valueId, version: v, versionKnown: true };
}

/**
 * Versions are log indexes: one write owns each. A version that an acknowledged write
 * returned is taken; one that a get read with value x can only belong to a write of x.
 * A symbolic version (of an unknown write) may be pinned only to a free version or to
 * one owned by its own value; anything else would give two writes the same version.
 */
export const versionFree = -2;
export const versionTaken = -1;

export function mayPin(s: State, owner: number): boolean {
  return owner === versionFree || owner === s.valueId;
}

/**
 * The sequential specification: the state after `op`, or why `op` cannot take effect in
 * `s`. Unknown-outcome operations accept any result, and only their effect matters.
 */
export function step(s: State, op: KeyOp): State | IllegalCode {
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

export function stateKey(s: State): string {
  return `${s.present ? 'p' : 'a'}${s.versionKnown ? 'k' : 'u'}${s.valueId}:${s.version}`;
}

/** True when `op` could take effect in `before`, so placing it right after an unknown write that left `before` is pointless. */
export function legalWithout(before: State | null, op: KeyOp): boolean {
  return before !== null && typeof step(before, op) !== 'number';
}

/** Known-outcome operations that change nothing: gets and cas conflicts. */
export function isKnownRead(o: KeyOp): boolean {
  return o.known && (o.type === 'get' || (o.type === 'cas' && !o.casOk));
}

export function isKnownWrite(o: KeyOp): boolean {
  return o.known && (o.type === 'put' || o.type === 'delete' || (o.type === 'cas' && o.casOk));
}

export function quote(s: string): string {
  return JSON.stringify(s);
}
