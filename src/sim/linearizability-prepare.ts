/**
 * Turns one key's history into the ops the linearizability search places: interns values,
 * works out who may own each version, drops operations that cannot matter, and groups
 * interchangeable unknown writes into classes.
 *
 * Owns that preparation only. Must never search or decide a verdict; every rule here only
 * removes orders that another kept order is at least as good as (see linearizability.ts).
 */

import type { HistoryOp, HistoryValue } from './history.js';
import { isUnknownOutcome } from './history.js';
import { isKnownWrite, versionFree, versionTaken, type KeyOp } from './linearizability-model.js';

/**
 * Turns one key's history into search ops: interns values, drops operations that cannot
 * matter (unknown gets; unknown writes that no later operation could observe).
 */
export function prepare(history: readonly HistoryOp[]): { ops: KeyOp[]; values: HistoryValue[] } {
  const { all, values } = toKeyOps(history);
  assignVersionOwners(all);
  const seen = latestObservations(all);
  const ops: KeyOp[] = [];
  for (const o of all) {
    if (mayMatter(o, seen)) {
      o.index = ops.length;
      ops.push(o);
    }
  }
  classifyUnknownWrites(ops, seen);
  return { ops, values };
}

/** Every operation of the key as a KeyOp (index -1: not yet kept), with its values interned. */
function toKeyOps(history: readonly HistoryOp[]): { all: KeyOp[]; values: HistoryValue[] } {
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
  return { all, values };
}

/** Sets `fixedVersion` and `pinOwner` of every op from what the reads and acknowledged writes say. */
function assignVersionOwners(all: readonly KeyOp[]): void {
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
}

/** For each kind of observation, the latest completion tick of an operation making it. */
interface Observations {
  /** Reads value id x, or pins a version only x may own. */
  readonly seesValue: Map<number, number>;
  /** Pins a version nobody owns (a cas expecting or reporting it). */
  seesFreeVersion: number;
  /** A delete that reported deleted=true. */
  seesPresence: number;
  /** A get not found, a delete deleted=false, a cas seeing version 0. */
  seesAbsence: number;
}

/**
 * An unknown write matters only if the operation placed right after it needs it (see
 * KeyOp.unknownWrite). Such an observer must be able to come after it in real time, i.e.
 * complete no earlier than the write was invoked.
 */
function latestObservations(all: readonly KeyOp[]): Observations {
  const seen: Observations = { seesValue: new Map(), seesFreeVersion: -1, seesPresence: -1, seesAbsence: -1 };
  const seeValue = (valueId: number, t: number): void => {
    seen.seesValue.set(valueId, Math.max(seen.seesValue.get(valueId) ?? -1, t));
  };
  for (const o of all) {
    const t = o.completeTick;
    if (o.type === 'get' && o.known) {
      if (o.found) seeValue(o.valueId, t);
      else seen.seesAbsence = Math.max(seen.seesAbsence, t);
    } else if (o.type === 'delete' && o.known) {
      if (o.deleted) seen.seesPresence = Math.max(seen.seesPresence, t);
      else seen.seesAbsence = Math.max(seen.seesAbsence, t);
    } else if (o.type === 'cas') {
      const observed = o.known && !o.casOk ? o.actualVersion : o.expectedVersion;
      if (observed === 0) seen.seesAbsence = Math.max(seen.seesAbsence, t);
      else if (o.pinOwner === versionFree) seen.seesFreeVersion = Math.max(seen.seesFreeVersion, t);
      else if (o.pinOwner >= 0) seeValue(o.pinOwner, t);
    }
  }
  return seen;
}

/** False for unknown gets and for unknown writes no later operation could observe. */
function mayMatter(o: KeyOp, seen: Observations): boolean {
  if (o.type === 'get' && !o.known) return false;
  if (!o.unknownWrite) return true;
  const latest =
    o.type === 'delete'
      ? seen.seesAbsence
      : Math.max(seen.seesPresence, seen.seesFreeVersion, seen.seesValue.get(o.valueId) ?? -1);
  return latest >= o.invokeTick;
}

/** Classes of interchangeable unknown writes (see KeyOp.classPrev). */
function classifyUnknownWrites(ops: readonly KeyOp[], seen: Observations): void {
  const lastOfClass = new Map<string, number>();
  const byInvoke = ops.filter((o) => o.unknownWrite).sort((a, b) => a.invokeTick - b.invokeTick || a.source.id - b.source.id);
  for (const o of byInvoke) {
    o.anonymous = o.type === 'delete' || !seen.seesValue.has(o.valueId);
    if (!o.anonymous) continue;
    const cls = o.type === 'cas' ? `cas ${o.expectedVersion}` : o.type;
    o.classPrev = lastOfClass.get(cls) ?? -1;
    lastOfClass.set(cls, o.index);
  }
}

/** The version `o` would pin a symbolic version to: what a get read, what a cas expected or was told. */
export function pinnedVersion(o: KeyOp): number {
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
