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
import { Illegal, isKnownWrite, legalWithout, quote, step, type IllegalCode, type KeyOp, type State } from './linearizability-model.js';
import { pinnedVersion } from './linearizability-prepare.js';
import { checkKey, type BudgetVerdict, type FailVerdict } from './linearizability-search.js';

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
