/**
 * What a bank test (txn.test.ts) needs to explain a wrong total by itself: every running
 * node's view of the accounts, and each node's replicated history of changes under the
 * accounts' prefix, replayed from version 1 and checked version by version.
 *
 * Each possible cause leaves a different mark:
 *   - half a transfer applied (atomicity): a version whose changes do not sum to zero, or
 *     that touches one account only;
 *   - a write lost or overwritten by a state that never saw it (durability, a stale read in
 *     apply): a change whose `prev` is not the change before it in the history of its key
 *     (a broken chain), or a node whose state is not where its own history ends;
 *   - replicas applying the same log differently: nodes that disagree on an account at the
 *     same applied index, or whose histories differ at some version;
 *   - a test-side misreading (the audit saw something else): every node and every history
 *     balances, and the audit's own view of the accounts differs from the nodes'.
 *
 * Reads go to each node directly (consistency=local), never through the client, so the
 * report says what each replica holds, not what the leader answers.
 */

import { request } from 'undici';
import { http, waitFor } from '../harness.js';

export interface BankNode {
  readonly id: string;
  readonly http: string;
}

export interface BankShape {
  /** The accounts' common prefix, e.g. `bank/`. */
  readonly prefix: string;
  readonly accounts: readonly string[];
  /** What an account that was never written holds. */
  readonly openingBalance: number;
  /** A stored value's balance (NaN when it does not parse). */
  readonly balanceOf: (value: string) => number;
}

/** An account as some reader saw it: version 0 and no value while absent. */
export interface AccountState {
  readonly version: number;
  readonly value: string | null;
}

/** What one audit (a transaction reading every account) saw, and its version (log index). */
export interface AuditView {
  readonly version: number;
  readonly seen: ReadonlyMap<string, AccountState>;
}

export interface BankReport {
  /** True when every check held: replicas agree, every history conserves money and ends at its node's state. */
  readonly ok: boolean;
  /** One line per finding and a summary per node; bounded. */
  readonly text: string;
}

interface HistoryChange {
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly value?: string;
  readonly prev?: { readonly value: string; readonly version: number };
}

interface HistoryVersion {
  readonly version: number;
  readonly changes: readonly HistoryChange[];
}

interface NodeView {
  readonly id: string;
  readonly status: Record<string, unknown> | null;
  readonly accounts: Map<string, AccountState> | null;
  readonly history: HistoryVersion[] | null;
  readonly errors: string[];
}

/** Findings listed per kind before the rest is only counted. */
const findingsPerKindMax = 12;

/**
 * Reads and checks every node in `nodes` (the running ones). `audit`, when given, is what
 * a failing audit saw, compared with each node's history as of the audit's version.
 */
export async function diagnoseBank(nodes: readonly BankNode[], shape: BankShape, audit?: AuditView): Promise<BankReport> {
  const settled = await settledAppliedIndex(nodes);
  const views = await Promise.all(nodes.map((n) => viewOf(n, shape, settled.index)));
  const lines: string[] = [settled.note];
  let ok = settled.ok;
  for (const v of views) {
    const r = checkNode(v, shape);
    ok &&= r.ok;
    lines.push(...r.lines);
  }
  const across = compareNodes(views, shape);
  ok &&= across.ok;
  lines.push(...across.lines);
  if (audit !== undefined) lines.push(...compareAudit(audit, views, shape));
  return { ok, text: lines.join('\n') };
}

/** Waits (bounded) until every node has applied the same index, so their states compare. */
async function settledAppliedIndex(nodes: readonly BankNode[]): Promise<{ readonly index: number; readonly ok: boolean; readonly note: string }> {
  const applied = async (): Promise<number[]> => Promise.all(nodes.map(async (n) => Number((await http(`${n.http}/status`)).body['appliedIndex'])));
  try {
    const index = await waitFor('every node at the same applied index', 15_000, async () => {
      const all = await applied();
      return all.every((a) => a === all[0]) && all[0] !== undefined ? all[0] : null;
    }, 200);
    return { index, ok: true, note: `nodes ${nodes.map((n) => n.id).join(', ')} all applied up to ${index}` };
  } catch (error) {
    const all = await applied().catch(() => []);
    const index = Math.max(0, ...all.filter(Number.isSafeInteger));
    return { index, ok: false, note: `nodes did not settle on one applied index (${String(error)}); applied: ${all.join(', ')}` };
  }
}

async function viewOf(node: BankNode, shape: BankShape, upTo: number): Promise<NodeView> {
  const errors: string[] = [];
  const status = await http(`${node.http}/status`).then(
    (r) => r.body,
    (e: unknown) => (errors.push(`GET /status: ${String(e)}`), null),
  );
  const accounts = await readAccounts(node, shape).catch((e: unknown) => (errors.push(`reading the accounts: ${String(e)}`), null));
  const history = await readHistory(node, shape.prefix, upTo).catch((e: unknown) => (errors.push(`replaying the history: ${String(e)}`), null));
  return { id: node.id, status, accounts, history, errors };
}

/** Every key under the prefix on this node, as it holds it (paged, consistency=local). */
async function readAccounts(node: BankNode, shape: BankShape): Promise<Map<string, AccountState>> {
  const out = new Map<string, AccountState>();
  let after: string | null = null;
  do {
    const query = `prefix=${encodeURIComponent(shape.prefix)}&consistency=local&limit=1000${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    const r = await http(`${node.http}/kv?${query}`);
    if (r.status !== 200) throw new Error(`GET /kv?${query}: ${r.status} ${JSON.stringify(r.body)}`);
    for (const item of r.body['items'] as { key: string; value: string; version: number }[]) out.set(item.key, { version: item.version, value: item.value });
    after = (r.body['next'] as string | null | undefined) ?? null;
  } while (after !== null);
  return out;
}

/** The node's history under `prefix` from version 1 up to `upTo` (GET /watch, NDJSON, with prev values). */
async function readHistory(node: BankNode, prefix: string, upTo: number): Promise<HistoryVersion[]> {
  const out: HistoryVersion[] = [];
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 20_000);
  try {
    const res = await request(`${node.http}/watch?prefix=${encodeURIComponent(prefix)}&fromVersion=1&prevValue=true&format=ndjson`, { signal: abort.signal });
    if (res.statusCode !== 200) throw new Error(`GET /watch: ${res.statusCode} ${await res.body.text()}`);
    let buffered = '';
    for await (const chunk of res.body) {
      buffered += (chunk as Buffer).toString('utf8');
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.length === 0) continue;
        const m = JSON.parse(line) as Record<string, unknown>;
        if (typeof m['error'] === 'string') throw new Error(`the watch ended: ${line}`);
        const version = typeof m['progress'] === 'number' ? m['progress'] : (m['version'] as number);
        if (typeof m['progress'] !== 'number' && version <= upTo) out.push({ version, changes: m['changes'] as HistoryChange[] });
        if (version >= upTo) return out;
      }
    }
    throw new Error(`the watch ended at version ${out[out.length - 1]?.version ?? 0}, before ${upTo}`);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

function balanceIn(shape: BankShape, value: string | null | undefined): number {
  return value === null || value === undefined ? shape.openingBalance : shape.balanceOf(value);
}

/** Lists up to findingsPerKindMax lines of one kind, then how many more there were. */
function listed(title: string, items: readonly string[]): string[] {
  if (items.length === 0) return [];
  const more = items.length > findingsPerKindMax ? [`    … and ${items.length - findingsPerKindMax} more`] : [];
  return [`  ${title} (${items.length}):`, ...items.slice(0, findingsPerKindMax).map((i) => `    ${i}`), ...more];
}

/** One node: its accounts' total, and its history checked version by version against itself and its state. */
function checkNode(v: NodeView, shape: BankShape): { ok: boolean; lines: string[] } {
  const s = v.status;
  const lines = [`${v.id}: role ${String(s?.['role'])} term ${String(s?.['term'])} commit ${String(s?.['commitIndex'])} applied ${String(s?.['appliedIndex'])} last ${String(s?.['lastIndex'])}`];
  lines.push(...v.errors.map((e) => `  cannot check: ${e}`));
  let ok = v.errors.length === 0;
  const expected = shape.accounts.length * shape.openingBalance;
  if (v.accounts !== null) {
    const total = shape.accounts.reduce((sum, a) => sum + balanceIn(shape, v.accounts?.get(a)?.value), 0);
    lines.push(`  accounts total ${total}${total === expected ? '' : ` (expected ${expected})`}`);
    ok &&= total === expected;
  }
  if (v.history === null) return { ok, lines };

  const unbalanced: string[] = [];
  const single: string[] = [];
  const broken: string[] = [];
  const last = new Map<string, AccountState>();
  let deltaSum = 0;
  for (const h of v.history) {
    let delta = 0;
    for (const c of h.changes) {
      const before = last.get(c.key) ?? { version: 0, value: null };
      const prev: AccountState = c.prev === undefined ? { version: 0, value: null } : { version: c.prev.version, value: c.prev.value };
      if (prev.version !== before.version || prev.value !== before.value) {
        broken.push(`v${h.version} ${c.key}: prev is v${prev.version} ${JSON.stringify(prev.value)}, but the history's previous change of the key is v${before.version} ${JSON.stringify(before.value)}`);
      }
      delta += balanceIn(shape, c.value) - balanceIn(shape, prev.value);
      last.set(c.key, c.type === 'delete' ? { version: 0, value: null } : { version: h.version, value: c.value ?? null });
    }
    deltaSum += delta;
    const describe = `v${h.version}: ${h.changes.map((c) => `${c.key} ${balanceIn(shape, c.prev?.value)}->${balanceIn(shape, c.value)} (${c.value ?? 'deleted'})`).join(', ')}`;
    if (delta !== 0) unbalanced.push(`${describe}; sum ${delta > 0 ? '+' : ''}${delta}`);
    if (h.changes.length === 1) single.push(describe);
  }
  const replayed = shape.accounts.reduce((sum, a) => sum + balanceIn(shape, last.get(a)?.value), 0);
  const mismatched: string[] = [];
  if (v.accounts !== null) {
    for (const a of shape.accounts) {
      const held = v.accounts.get(a) ?? { version: 0, value: null };
      const replay = last.get(a) ?? { version: 0, value: null };
      if (held.version !== replay.version || held.value !== replay.value) mismatched.push(`${a}: holds v${held.version} ${JSON.stringify(held.value)}, its history ends at v${replay.version} ${JSON.stringify(replay.value)}`);
    }
  }
  lines.push(
    `  history: ${v.history.length} versions, deltas sum to ${deltaSum > 0 ? '+' : ''}${deltaSum}, replayed total ${replayed}${replayed === expected + deltaSum ? '' : ` (opening ${expected} + deltas is ${expected + deltaSum})`}`,
    ...listed('versions whose changes do not sum to zero', unbalanced),
    ...listed('versions touching one account only', single),
    ...listed('changes whose prev is not the previous change of their key (a lost or overwritten write)', broken),
    ...listed("accounts whose state is not where the node's own history ends", mismatched),
  );
  ok &&= unbalanced.length === 0 && single.length === 0 && broken.length === 0 && mismatched.length === 0 && deltaSum === 0;
  return { ok, lines };
}

/** Replicas side by side: accounts that differ, and the first version at which histories differ. */
function compareNodes(views: readonly NodeView[], shape: BankShape): { ok: boolean; lines: string[] } {
  const [first, ...rest] = views;
  if (first === undefined) return { ok: false, lines: ['no node to compare'] };
  const differing: string[] = [];
  const keys = new Set([...shape.accounts, ...views.flatMap((v) => [...(v.accounts?.keys() ?? [])])]);
  for (const key of [...keys].sort()) {
    const seen = views.map((v) => v.accounts?.get(key) ?? { version: 0, value: null });
    if (seen.some((s) => s.version !== seen[0]?.version || s.value !== seen[0]?.value)) {
      differing.push(`${key}: ${views.map((v, i) => `${v.id} v${seen[i]?.version} ${JSON.stringify(seen[i]?.value)}`).join(', ')}`);
    }
  }
  const histories: string[] = [];
  for (const other of rest) {
    const a = first.history;
    const b = other.history;
    if (a === null || b === null) continue;
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const x = JSON.stringify(a[i] ?? null);
      const y = JSON.stringify(b[i] ?? null);
      if (x !== y) {
        histories.push(`${first.id} and ${other.id} first differ at entry ${i}: ${x} vs ${y}`);
        break;
      }
    }
  }
  const lines = [...listed('accounts on which the replicas disagree', differing), ...listed('histories that differ', histories)];
  if (lines.length === 0) lines.push(`replicas ${views.map((v) => v.id).join(', ')} agree on every account and on the history`);
  return { ok: differing.length === 0 && histories.length === 0, lines };
}

/** The accounts as a history left them after `version`. */
function replayTo(history: readonly HistoryVersion[], version: number): Map<string, AccountState> {
  const state = new Map<string, AccountState>();
  for (const h of history) {
    if (h.version > version) break;
    for (const c of h.changes) state.set(c.key, c.type === 'delete' ? { version: 0, value: null } : { version: h.version, value: c.value ?? null });
  }
  return state;
}

/** The audit's view against each node's history replayed up to the audit's version: what it read that the replicas did not hold then. */
function compareAudit(audit: AuditView, views: readonly NodeView[], shape: BankShape): string[] {
  const total = shape.accounts.reduce((sum, a) => sum + balanceIn(shape, audit.seen.get(a)?.value), 0);
  const differing: string[] = [];
  const states = views.flatMap((v) => (v.history === null ? [] : [{ id: v.id, state: replayTo(v.history, audit.version) }]));
  for (const a of shape.accounts) {
    const saw = audit.seen.get(a) ?? { version: 0, value: null };
    const others = states.filter(({ state }) => {
      const held = state.get(a) ?? { version: 0, value: null };
      return held.version !== saw.version || held.value !== saw.value;
    });
    if (others.length > 0) {
      differing.push(`${a}: the audit saw v${saw.version} ${JSON.stringify(saw.value)}, ${others.map(({ id, state }) => `${id}'s history has v${state.get(a)?.version ?? 0} ${JSON.stringify(state.get(a)?.value ?? null)}`).join(', ')}`);
    }
  }
  const totals = states.map(({ id, state }) => `${id} ${shape.accounts.reduce((sum, a) => sum + balanceIn(shape, state.get(a)?.value), 0)}`);
  return [
    `the audit at version ${audit.version} totals ${total}; the histories replayed to that version total: ${totals.join(', ')}`,
    ...listed('accounts the audit saw otherwise than the histories held them at its version', differing),
  ];
}
