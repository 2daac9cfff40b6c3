/**
 * The consistency check behind `quorumkv check` and the experiments' divergence figures:
 * a dump of every node's store (paged GET /debug/store, bracketed by the node's applied
 * index so that each dump is one state of that node), compared key by key with the
 * leader's, with each node's lag and rollback-report count from /status.
 *
 * A follower that is only behind differs too, so the check first waits (bounded) until
 * every reachable node has applied what the leader had committed when the check began;
 * whatever still differs after that is reported. Run it on a quiet cluster: keys written
 * during the check may differ for the moment it takes.
 *
 * Must never: call a cluster consistent when a node could not be read.
 */

import type { StatusResponse } from '../wire/types.js';
import { nodeStatus, snapshotStore } from './cluster.js';
import type { StoreItem, StoreSnapshot } from './cluster.js';

export interface KeyDifference {
  readonly key: string;
  /** The leader's entry, or null when the leader does not have the key. */
  readonly leader: StoreItem | null;
  readonly node: StoreItem | null;
}

export interface StoreComparison {
  /** Keys whose value or version differs, or that only one side has. */
  readonly differing: number;
  /** Keys the leader has and the node does not. */
  readonly missing: number;
  /** Keys the node has and the leader does not. */
  readonly extra: number;
  /** Keys the node has at an older version than the leader's. */
  readonly stale: number;
  /** Keys the node has at a newer version than the leader's, or the same version with another value. */
  readonly conflicting: number;
  /** Sum over stale keys of (leader version − node version): how far behind, in log entries. */
  readonly versionsBehind: number;
  /** The first differences, in key order (at most `examplesMax`). */
  readonly examples: readonly KeyDifference[];
}

const examplesMax = 20;

/** Compares a node's store with the leader's, key by key. */
export function compareStores(leader: ReadonlyMap<string, StoreItem>, node: ReadonlyMap<string, StoreItem>): StoreComparison {
  let missing = 0;
  let extra = 0;
  let stale = 0;
  let conflicting = 0;
  let versionsBehind = 0;
  const diffs: KeyDifference[] = [];
  const note = (key: string, l: StoreItem | null, n: StoreItem | null): void => {
    if (diffs.length < examplesMax * 50) diffs.push({ key, leader: l, node: n });
  };
  for (const [key, l] of leader) {
    const n = node.get(key);
    if (n === undefined) {
      missing++;
      note(key, l, null);
    } else if (n.version !== l.version || n.value !== l.value) {
      if (n.version < l.version) {
        stale++;
        versionsBehind += l.version - n.version;
      } else conflicting++;
      note(key, l, n);
    }
  }
  for (const [key, n] of node) {
    if (!leader.has(key)) {
      extra++;
      note(key, null, n);
    }
  }
  diffs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { differing: missing + extra + stale + conflicting, missing, extra, stale, conflicting, versionsBehind, examples: diffs.slice(0, examplesMax) };
}

export interface NodeCheck {
  readonly endpoint: string;
  readonly id: string | null;
  readonly reachable: boolean;
  readonly error: string | null;
  readonly role: string | null;
  readonly term: number | null;
  readonly appliedIndex: number | null;
  /** The leader's applied index minus this node's, from the snapshots. */
  readonly lagEntries: number | null;
  /** Rolled-back writes this node recorded (rollback.jsonl; /status rollbackCount). */
  readonly rollbackCount: number | null;
  readonly keys: number | null;
  /** The dump is one state of the node (its applied index did not move during it). */
  readonly consistent: boolean;
  readonly comparison: StoreComparison | null;
}

export interface CheckReport {
  readonly leader: string | null;
  readonly leaderTerm: number | null;
  readonly nodes: readonly NodeCheck[];
  /** Every node was read and every store equals the leader's. */
  readonly identical: boolean;
  readonly diverged: readonly string[];
  readonly unreachable: readonly string[];
  /** How long the check waited for followers to catch up. */
  readonly waitedMs: number;
}

export interface CheckOptions {
  /** Longest wait for followers to apply what the leader had committed (default 10 s). */
  readonly catchUpWaitMs?: number;
  /** Sent with every store dump (an admin route): the admin token's authorization header. */
  readonly headers?: Readonly<Record<string, string>>;
}

async function statusOrError(endpoint: string): Promise<StatusResponse | Error> {
  try {
    return await nodeStatus(endpoint, 3000);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

function pickLeader(statuses: readonly (StatusResponse | Error)[]): StatusResponse | null {
  let best: StatusResponse | null = null;
  for (const s of statuses) {
    if (s instanceof Error || s.role !== 'leader') continue;
    if (best === null || s.term > best.term) best = s;
  }
  return best;
}

/** Checks every endpoint's store against the leader's. Throws when no node leads. */
export async function checkCluster(endpoints: readonly string[], options: CheckOptions = {}): Promise<CheckReport> {
  const urls = endpoints.map((e) => (e.includes('://') ? e : `http://${e}`).replace(/\/$/, ''));
  const t0 = Date.now();
  const waitMs = options.catchUpWaitMs ?? 10_000;
  let statuses = await Promise.all(urls.map(statusOrError));
  let leader = pickLeader(statuses);
  while (leader === null && Date.now() - t0 < waitMs) {
    await new Promise((r) => setTimeout(r, 200));
    statuses = await Promise.all(urls.map(statusOrError));
    leader = pickLeader(statuses);
  }
  if (leader === null) {
    const seen = statuses.map((s, i) => `${urls[i] ?? ''}: ${s instanceof Error ? s.message : `${s.id} ${s.role} term ${s.term}`}`).join('; ');
    throw new Error(`no node is leader, so there is nothing to compare with (${seen})`);
  }
  const target = leader.commitIndex;
  // Wait (bounded) for followers to apply what the leader had committed: a node that is
  // merely behind is not diverged.
  while (Date.now() - t0 < waitMs) {
    const behind = statuses.some((s) => !(s instanceof Error) && s.appliedIndex < target);
    if (!behind) break;
    await new Promise((r) => setTimeout(r, 100));
    statuses = await Promise.all(urls.map(statusOrError));
  }
  const waitedMs = Date.now() - t0;
  const leaderUrl = urls[statuses.findIndex((s) => !(s instanceof Error) && s.id === leader.id)] as string;
  const leaderSnap = await snapshotStore(leaderUrl, options.headers);
  const nodes: NodeCheck[] = [];
  for (const url of urls) {
    let snap: StoreSnapshot | null = null;
    let error: string | null = null;
    try {
      snap = url === leaderUrl ? leaderSnap : await snapshotStore(url, options.headers);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    if (snap === null) {
      nodes.push({ endpoint: url, id: null, reachable: false, error, role: null, term: null, appliedIndex: null, lagEntries: null, rollbackCount: null, keys: null, consistent: false, comparison: null });
      continue;
    }
    const s = snap.status;
    nodes.push({
      endpoint: url,
      id: s.id,
      reachable: true,
      error: null,
      role: s.role,
      term: s.term,
      appliedIndex: snap.appliedAfter,
      lagEntries: leaderSnap.appliedAfter - snap.appliedAfter,
      rollbackCount: s.rollbackCount,
      keys: snap.items.size,
      consistent: snap.consistent,
      comparison: url === leaderUrl ? compareStores(leaderSnap.items, leaderSnap.items) : compareStores(leaderSnap.items, snap.items),
    });
  }
  const diverged = nodes.filter((n) => n.comparison !== null && n.comparison.differing > 0).map((n) => n.id ?? n.endpoint);
  const unreachable = nodes.filter((n) => !n.reachable).map((n) => n.endpoint);
  return { leader: leader.id, leaderTerm: leader.term, nodes, identical: diverged.length === 0 && unreachable.length === 0, diverged, unreachable, waitedMs };
}

function show(item: StoreItem | null): string {
  if (item === null) return '(absent)';
  const v = item.value.length > 40 ? `${item.value.slice(0, 37)}…` : item.value;
  return `${JSON.stringify(v)}@${item.version}`;
}

/** The check as text, for the terminal. */
export function formatCheck(r: CheckReport): string {
  const lines: string[] = [];
  const l = r.nodes.find((n) => n.id === r.leader);
  lines.push(`leader ${r.leader ?? '?'} (term ${r.leaderTerm ?? '?'}, applied ${l?.appliedIndex ?? '?'}, ${l?.keys ?? '?'} keys)`);
  lines.push('node   role       term   applied   lag  rollbacks     keys  differing  state');
  for (const n of r.nodes) {
    if (!n.reachable) {
      lines.push(`${n.endpoint}  unreachable: ${n.error ?? ''}`);
      continue;
    }
    const c = n.comparison;
    const state = n.id === r.leader ? 'leader' : c !== null && c.differing === 0 ? 'identical' : 'DIFFERS';
    lines.push(
      `${(n.id ?? '?').padEnd(6)} ${(n.role ?? '?').padEnd(9)} ${String(n.term ?? '?').padStart(5)} ${String(n.appliedIndex ?? '?').padStart(9)} ${String(n.lagEntries ?? '?').padStart(5)} ${String(n.rollbackCount ?? '?').padStart(10)} ${String(n.keys ?? '?').padStart(8)} ${String(c?.differing ?? '?').padStart(10)}  ${state}${n.consistent ? '' : ' (store moved during the dump)'}`,
    );
  }
  for (const n of r.nodes) {
    const c = n.comparison;
    if (c === null || c.differing === 0) continue;
    lines.push(`${n.id ?? n.endpoint} differs from ${r.leader ?? 'the leader'} on ${c.differing} key(s): ${c.missing} missing, ${c.extra} extra, ${c.stale} older (${c.versionsBehind} versions behind), ${c.conflicting} conflicting`);
    for (const d of c.examples) lines.push(`  ${d.key}: leader ${show(d.leader)}, ${n.id ?? 'node'} ${show(d.node)}`);
    if (c.differing > c.examples.length) lines.push(`  … and ${c.differing - c.examples.length} more`);
  }
  const rolled = r.nodes.reduce((a, n) => a + (n.rollbackCount ?? 0), 0);
  if (rolled > 0) lines.push(`${rolled} rolled-back write(s) recorded (DATA_DIR/rollback.jsonl of ${r.nodes.filter((n) => (n.rollbackCount ?? 0) > 0).map((n) => n.id).join(', ')}): acknowledged writes lost in a failover under a weak write quorum`);
  if (r.identical) lines.push(`check: every node's store is identical to the leader's (waited ${r.waitedMs} ms for followers to catch up)`);
  else {
    if (r.diverged.length > 0) lines.push(`check: ${r.diverged.join(', ')} differ(s) from the leader's store`);
    if (r.unreachable.length > 0) lines.push(`check: could not read ${r.unreachable.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}
