/**
 * The bank workload of the simulator's clients: transactions that move money between a
 * few accounts (compare both versions, write both balances) and audits that read every
 * account in one transaction. Money is never created or destroyed, so every audit must
 * sum to the opening total: an audit that does not has seen half a transaction
 * (`txn-atomicity`). Each transaction is also projected onto its keys for the
 * linearizability checker: a transfer that ran is two compare-and-sets at the same
 * version, its failure branch two reads, an audit one read per account.
 *
 * Owns the workload's meaning only; clients.ts sends the commands and decides what the
 * client saw. Must never record what the client did not see.
 */

import type { TxnCommand, TxnOpResult, TxnResult } from '../kv/types.js';
import type { Prng } from '../stdx/prng.js';
import type { KvValue } from '../storage/types.js';
import type { HistoryRecorder } from './history.js';

/** What every account holds before its first write (an absent key). */
export const openingBalance = 100;

export function accountKey(i: number): string {
  return `acct${i}`;
}

/** What a client last saw of an account: version 0 while it believes the key absent. */
export interface AccountView {
  readonly version: number;
  readonly balance: number;
}

export type TxnPlan =
  | {
      readonly kind: 'transfer';
      readonly from: string;
      readonly to: string;
      readonly expectFrom: number;
      readonly expectTo: number;
      readonly valueFrom: string;
      readonly valueTo: string;
    }
  | { readonly kind: 'audit'; readonly accounts: readonly string[] };

/** Balances are stored as `balance|writer`, so that every written value is unique. */
export function balanceOf(value: KvValue | undefined): number {
  if (value === undefined) return openingBalance;
  const text = typeof value === 'string' ? value : new TextDecoder().decode(value);
  const balance = Number(text.slice(0, text.indexOf('|')));
  return Number.isSafeInteger(balance) ? balance : Number.NaN;
}

/** A transfer between two distinct accounts, from what this client last saw of them. */
export function planTransfer(prng: Prng, accountCount: number, writer: string, known: ReadonlyMap<string, AccountView>): { plan: TxnPlan; command: TxnCommand } {
  const a = prng.intBetween(0, accountCount - 1);
  const b = (a + prng.intBetween(1, accountCount - 1)) % accountCount;
  const from = accountKey(a);
  const to = accountKey(b);
  const viewFrom = known.get(from) ?? { version: 0, balance: openingBalance };
  const viewTo = known.get(to) ?? { version: 0, balance: openingBalance };
  const amount = Math.min(viewFrom.balance, prng.intBetween(1, 20));
  const plan: TxnPlan = {
    kind: 'transfer',
    from,
    to,
    expectFrom: viewFrom.version,
    expectTo: viewTo.version,
    valueFrom: `${viewFrom.balance - amount}|${writer}`,
    valueTo: `${viewTo.balance + amount}|${writer}`,
  };
  const command: TxnCommand = {
    op: 'txn',
    compare: [
      { key: from, target: 'version', op: '=', version: plan.expectFrom },
      { key: to, target: 'version', op: '=', version: plan.expectTo },
    ],
    success: [
      { op: 'put', key: from, value: plan.valueFrom },
      { op: 'put', key: to, value: plan.valueTo },
    ],
    failure: [
      { op: 'get', key: from },
      { op: 'get', key: to },
    ],
  };
  return { plan, command };
}

export function planAudit(accountCount: number): { plan: TxnPlan; command: TxnCommand } {
  const accounts = Array.from({ length: accountCount }, (_, i) => accountKey(i));
  return { plan: { kind: 'audit', accounts }, command: { op: 'txn', compare: [], success: accounts.map((key) => ({ op: 'get', key })), failure: [] } };
}

/**
 * Why `result` cannot be the answer to `plan`, or null. A non-null answer is a broken
 * guarantee: `sum` an audit that saw money created or destroyed, otherwise a malformed answer.
 */
export function txnProblem(plan: TxnPlan, result: Extract<TxnResult, { ok: true }>): { readonly sum: boolean; readonly text: string } | null {
  if (plan.kind === 'audit') {
    const balances = result.results.map((r) => (r.op === 'get' ? balanceOf(r.record?.value) : Number.NaN));
    const total = balances.reduce((s, b) => s + b, 0);
    const expected = openingBalance * plan.accounts.length;
    if (!result.succeeded || balances.length !== plan.accounts.length) return { sum: false, text: `an audit ran its failure branch or lost reads: ${JSON.stringify(result)}` };
    return total === expected ? null : { sum: true, text: `an audit at version ${result.version} sums to ${total}, not ${expected}: balances ${plan.accounts.map((a, i) => `${a}=${balances[i]}`).join(' ')}` };
  }
  const shape = result.results.map((r) => `${r.op} ${'key' in r ? r.key : ''}`).join(', ');
  const expected = result.succeeded ? `put ${plan.from}, put ${plan.to}` : `get ${plan.from}, get ${plan.to}`;
  return shape === expected ? null : { sum: false, text: `a transfer's results are [${shape}], expected [${expected}]` };
}

/** What the client now knows of the accounts `result` read or wrote. */
export function learn(known: Map<string, AccountView>, plan: TxnPlan, result: Extract<TxnResult, { ok: true }>): void {
  if (plan.kind === 'transfer' && result.succeeded) {
    known.set(plan.from, { version: result.version, balance: balanceOf(plan.valueFrom) });
    known.set(plan.to, { version: result.version, balance: balanceOf(plan.valueTo) });
    return;
  }
  for (const r of result.results) {
    if (r.op === 'get') known.set(r.key, { version: r.record?.version ?? 0, balance: balanceOf(r.record?.value) });
  }
}

/**
 * Records a transfer's two writes as the client sends it (an audit writes nothing): an
 * operation still in flight when the run ends must count as one that may have happened.
 * Returns their history ids, for `recordTxnOutcome`.
 */
export function recordTxnInvoke(recorder: HistoryRecorder, clientId: string, plan: TxnPlan, invokeTick: number): readonly number[] {
  if (plan.kind === 'audit') return [];
  return [
    recorder.invoke({ clientId, key: plan.from, op: { type: 'cas', expectedVersion: plan.expectFrom, value: plan.valueFrom }, tick: invokeTick }),
    recorder.invoke({ clientId, key: plan.to, op: { type: 'cas', expectedVersion: plan.expectTo, value: plan.valueTo }, tick: invokeTick }),
  ];
}

/**
 * Records how the transaction ended. `answer` null: the client does not know whether it ran
 * (`mayHaveRun`: it may have; else it surely did not). A transfer whose compares failed wrote
 * nothing (its writes are dropped) and read both keys.
 */
export function recordTxnOutcome(
  recorder: HistoryRecorder,
  clientId: string,
  writeIds: readonly number[],
  invokeTick: number,
  answer: { readonly completeTick: number; readonly result: Extract<TxnResult, { ok: true }> } | null,
  mayHaveRun: boolean,
): void {
  if (answer === null) {
    for (const id of writeIds) {
      if (mayHaveRun) recorder.unknown(id);
      else recorder.fail(id);
    }
    return;
  }
  const { completeTick, result } = answer;
  if (writeIds.length > 0 && result.succeeded) {
    for (const id of writeIds) recorder.complete(id, completeTick, { ok: true, version: result.version });
    return;
  }
  for (const id of writeIds) recorder.fail(id);
  for (const r of result.results) recordGet(recorder, clientId, r, invokeTick, completeTick);
}

function recordGet(recorder: HistoryRecorder, clientId: string, r: TxnOpResult, invokeTick: number, completeTick: number): void {
  if (r.op !== 'get') return;
  const id = recorder.invoke({ clientId, key: r.key, op: { type: 'get' }, tick: invokeTick });
  recorder.complete(id, completeTick, r.record === null ? { found: false } : { found: true, value: r.record.value, version: r.record.version });
}
