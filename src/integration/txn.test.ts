/**
 * Transactions on real processes: 64 clients move money between 100 accounts (read both,
 * then compare both versions and write both in one transaction) while the leader is
 * killed twice. Audits (every account read in one transaction) must always sum to the
 * opening total, and the history, each transaction projected onto its keys, must be
 * linearizable (the simulator's checker).
 *
 * At the end every replica is read directly and its replicated history of bank/ replayed
 * (testing/bank-audit.ts): the replicas must agree, every version must move money without
 * creating any, and each change must follow the one before it. A failure prints all of it,
 * so it says itself whether a transfer was half applied, a write lost, replicas diverged, or
 * the audit misread what the replicas held.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutcomeUnknownError, QuorumKvError, UnavailableError, connect } from '../client/index.js';
import type { KvClient, TxnOpResponse, TxnResponse } from '../client/index.js';
import { HistoryRecorder } from '../sim/history.js';
import { checkLinearizable } from '../sim/linearizability.js';
import { TestCluster, waitFor } from './harness.js';
import { diagnoseBank, type AccountState, type AuditView, type BankShape } from './testing/bank-audit.js';

const accounts = 100;
const openingBalance = 100;
const clients = 64;
const account = (i: number): string => `bank/${String(i).padStart(3, '0')}`;

interface View {
  readonly version: number;
  readonly balance: number;
}

/** A stored balance: `balance|writer`; NaN for anything else, so a misread value cannot pass for a number. */
function balanceOf(value: string): number {
  const bar = value.indexOf('|');
  const balance = bar > 0 ? Number(value.slice(0, bar)) : Number.NaN;
  return Number.isSafeInteger(balance) ? balance : Number.NaN;
}

function viewOf(r: TxnOpResponse | undefined): View {
  if (r?.op !== 'get') throw new Error(`expected a get result, got ${JSON.stringify(r)}`);
  if (!r.found) return { version: 0, balance: openingBalance };
  return { version: r.version, balance: balanceOf(String(r.value)) };
}

const bankShape: BankShape = { prefix: 'bank/', accounts: Array.from({ length: accounts }, (_, i) => account(i)), openingBalance, balanceOf };

/** An audit: its total, its log index, and what it saw of each account (for the diagnosis). */
interface Audit extends AuditView {
  readonly total: number;
}

/** Virtual ticks for the checker: microseconds since the test began. */
const t0 = performance.now();
const nowUs = (): number => Math.round((performance.now() - t0) * 1000);

test('64 clients transferring between 100 accounts through two leader kills: every audit balances, the total is conserved, the history is linearizable', { timeout: 240_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  const recorder = new HistoryRecorder();
  const audits: Audit[] = [];
  let transfers = 0;
  let unknown = 0;
  let stop = false;
  let kv: KvClient | null = null;
  try {
    await cluster.waitForLeader();
    kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 8_000 });
    const client = kv;

    /** Reads both accounts in one transaction (a read of each key in the history). */
    const readBoth = async (from: string, to: string, who: string): Promise<[View, View]> => {
      const invoke = nowUs();
      const r = await client.txn({ success: [{ op: 'get', key: from }, { op: 'get', key: to }] });
      recordGets(recorder, who, r, invoke, nowUs());
      return [viewOf(r.results[0]), viewOf(r.results[1])];
    };

    const loop = async (c: number): Promise<void> => {
      const who = `c${c}`;
      for (let i = 0; !stop; i++) {
        const a = Math.floor(Math.random() * accounts);
        const b = (a + 1 + Math.floor(Math.random() * (accounts - 1))) % accounts;
        const from = account(a);
        const to = account(b);
        try {
          const [vf, vt] = await readBoth(from, to, who);
          const amount = Math.min(vf.balance, 1 + Math.floor(Math.random() * 10));
          const valueFrom = `${vf.balance - amount}|${who}.${i}`;
          const valueTo = `${vt.balance + amount}|${who}.${i}`;
          const invoke = nowUs();
          const casFrom = { clientId: who, key: from, op: { type: 'cas', expectedVersion: vf.version, value: valueFrom }, tick: invoke } as const;
          const casTo = { clientId: who, key: to, op: { type: 'cas', expectedVersion: vt.version, value: valueTo }, tick: invoke } as const;
          let r: TxnResponse;
          try {
            r = await client.txn({
              compare: [{ key: from, version: vf.version }, { key: to, version: vt.version }],
              success: [{ op: 'put', key: from, value: valueFrom }, { op: 'put', key: to, value: valueTo }],
              failure: [{ op: 'get', key: from }, { op: 'get', key: to }],
            });
          } catch (error) {
            // The transfer may or may not have run: both writes are unknown, never half.
            if (error instanceof OutcomeUnknownError) {
              unknown++;
              recorder.unknown(recorder.invoke(casFrom));
              recorder.unknown(recorder.invoke(casTo));
            }
            throw error;
          }
          const done = nowUs();
          if (r.succeeded) {
            transfers++;
            recorder.complete(recorder.invoke(casFrom), done, { ok: true, version: r.version });
            recorder.complete(recorder.invoke(casTo), done, { ok: true, version: r.version });
          } else {
            recordGets(recorder, who, r, invoke, done);
          }
        } catch (error) {
          assert.ok(error instanceof OutcomeUnknownError || error instanceof UnavailableError, `${who}: unexpected ${String(error)}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };

    const audit = async (): Promise<Audit> => {
      const r = await client.txn({ success: Array.from({ length: accounts }, (_, i) => ({ op: 'get' as const, key: account(i) })) });
      assert.equal(r.succeeded, true);
      assert.equal(r.results.length, accounts, `an audit answered ${r.results.length} of ${accounts} reads`);
      const seen = new Map<string, AccountState>();
      for (const x of r.results) if (x.op === 'get') seen.set(x.key, x.found ? { version: x.version, value: String(x.value) } : { version: 0, value: null });
      const a: Audit = { total: r.results.reduce((sum, x) => sum + viewOf(x).balance, 0), version: r.version, seen };
      audits.push(a);
      return a;
    };
    const auditor = (async () => {
      while (!stop) {
        await audit().catch((error: unknown) => assert.ok(error instanceof QuorumKvError, String(error)));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const loops = Array.from({ length: clients }, (_, c) => loop(c));
    const progress = (what: string, more: number): Promise<boolean> => {
      const target = transfers + more;
      return waitFor(what, 60_000, () => (transfers >= target ? true : null));
    };
    await progress('transfers before the first kill', 300);
    for (let kill = 0; kill < 2; kill++) {
      const leader = await cluster.waitForLeader();
      await cluster.kill9(leader);
      await cluster.waitForLeader(15_000, cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id));
      await progress(`transfers after kill ${kill + 1}`, 200);
      await cluster.restart(leader);
      await cluster.waitForLeader();
    }
    await progress('transfers with three nodes again', 100);
    stop = true;
    await Promise.all([...loops, auditor]);

    const expected = accounts * openingBalance;
    const final = await audit();
    // Every replica's accounts and its replayed history of bank/ (bank-audit.ts): whatever
    // went wrong, this says which kind of wrong it was, and it must hold even when the audits do.
    const wrong = final.total !== expected ? final : audits.find((a) => a.total !== expected);
    const running = cluster.nodes.filter((n) => n.proc !== null);
    const report = await diagnoseBank(running, bankShape, wrong);
    if (report.ok) t.diagnostic(report.text.split('\n').map((l) => l.trim()).join('; '));
    const why = `\n${wrong === undefined ? '' : `audit at version ${wrong.version} summed to ${wrong.total}\n`}${report.text}`;
    assert.equal(final.total, expected, `the final audit (version ${final.version})${why}`);
    assert.ok(audits.length >= 5, `${audits.length} audits`);
    for (const a of audits) assert.equal(a.total, expected, `the audit at version ${a.version} summed to ${a.total}${why}`);
    assert.ok(report.ok, `the replicas or their histories are inconsistent although every audit balanced:${why}`);
    const history = recorder.history();
    const verdict = checkLinearizable(history);
    assert.equal(verdict.ok, true, verdict.ok === true ? '' : `${verdict.key}: ${verdict.reason}\n${verdict.explanation}`);
    assert.ok(transfers >= 600, `${transfers} transfers, ${unknown} with unknown outcome`);
    t.diagnostic(`${transfers} transfers (${unknown} unknown outcome), ${audits.length} audits, ${history.length} history operations checked`);
  } finally {
    stop = true;
    await kv?.close();
    await cluster.destroy();
  }
});

function recordGets(recorder: HistoryRecorder, who: string, r: TxnResponse, invoke: number, complete: number): void {
  for (const x of r.results) {
    if (x.op !== 'get') continue;
    const id = recorder.invoke({ clientId: who, key: x.key, op: { type: 'get' }, tick: invoke });
    recorder.complete(id, complete, x.found ? { found: true, value: x.value, version: x.version } : { found: false });
  }
}
