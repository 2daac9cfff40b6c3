/**
 * `quorumkv experiment quorum`: the seeds' semi-synchronous replication experiment, end to
 * end. For each write quorum W in a list (default 1 … N-1), on a fresh cluster (default:
 * a pinned leader and 5 followers, every replication message delayed uniformly in 0–1000
 * ms), it writes `writes` values (10 at a time, over 10 keys) through the client library
 * and measures write latency (mean, median, p95, p99). Then it dumps every node's store
 * and reports how far each follower is from the leader (keys differing, versions behind,
 * log entries behind) right after the load, and again after a settle period.
 *
 * Expected shape: latency grows with W (a write waits for the W-th fastest of N-1 delayed
 * followers: about W/N of the maximum delay), and right after the load followers with
 * slow links still differ; after settling every store is identical.
 *
 * Must never: reuse a cluster between two W (each W starts from empty stores).
 */

import { connect } from '../client/index.js';
import { barChart, lineChart } from './charts.js';
import type { Series } from './charts.js';
import { compareStores } from './check.js';
import { LocalCluster, snapshotStore } from './cluster.js';
import type { StoreSnapshot } from './cluster.js';
import { finishReport } from './report.js';
import type { CsvCell, Report, ReportFiles, ReportTable } from './report.js';
import { summarizeSamplesMs } from './stats.js';
import { errorCode } from './target.js';

export interface QuorumExperimentOptions {
  readonly nodes: number;
  /** Pinned leader id (elections off), or null for an elected leader. */
  readonly leader: string | null;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  readonly writeQuorums: readonly number[];
  readonly writes: number;
  readonly concurrency: number;
  readonly keys: number;
  readonly valueBytes: number;
  /** Wait after the load before the second snapshot. */
  readonly settleMs: number;
  readonly nodeFlags: readonly string[];
  readonly outDir: string | null;
  readonly command: string;
  readonly print?: (text: string) => void;
}

export interface NodeDivergence {
  readonly node: string;
  readonly role: string;
  readonly keysDiffering: number;
  readonly keysMissing: number;
  readonly keysStale: number;
  readonly versionsBehind: number;
  /** Leader's applied index minus this node's. */
  readonly entriesBehind: number;
  /**
   * Acknowledged entries this node's log does not hold yet: the leader's acknowledged
   * index minus the node's last log index (0: it holds every acknowledged write, applied
   * or not; a follower learns the commit index only with the next message, so with W = all
   * followers its store may still differ while its log holds everything).
   */
  readonly entriesNotHeld: number;
  readonly consistentDump: boolean;
}

export interface QuorumPoint {
  readonly w: number;
  readonly writes: number;
  readonly errors: number;
  readonly errorCodes: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
  readonly writesPerSec: number;
  readonly latency: { count: number; meanMs: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number };
  /** Every write's latency in milliseconds, in completion order (the raw figures). */
  readonly samplesMs: readonly number[];
  readonly afterLoad: readonly NodeDivergence[];
  readonly afterSettle: readonly NodeDivergence[];
  readonly clusterStartMs: number;
}

function divergence(leaderId: string, snaps: readonly StoreSnapshot[]): NodeDivergence[] {
  const leader = snaps.find((s) => s.status.id === leaderId) ?? snaps[0];
  if (leader === undefined) return [];
  return snaps.map((s) => {
    const c = compareStores(leader.items, s.items);
    return {
      node: s.status.id,
      role: s.status.role,
      keysDiffering: c.differing,
      keysMissing: c.missing,
      keysStale: c.stale,
      versionsBehind: c.versionsBehind,
      entriesBehind: leader.appliedAfter - s.appliedAfter,
      entriesNotHeld: Math.max(0, leader.status.ackedIndex - s.status.lastIndex),
      consistentDump: s.consistent,
    };
  });
}

async function runOneW(o: QuorumExperimentOptions, w: number, print: (t: string) => void): Promise<QuorumPoint> {
  const flags = [
    ...(o.leader !== null ? ['--leader', o.leader] : []),
    '--write-quorum', String(w),
    '--min-delay-ms', String(o.delayMsMin), '--max-delay-ms', String(o.delayMsMax),
    // A write may wait for the slowest of the delayed followers, several times over when
    // delayed appends arrive out of order: give it room before quorum_timeout.
    '--replication-timeout-ms', String(Math.max(5000, o.delayMsMax * 10)), '--request-timeout-ms', String(Math.max(5000, o.delayMsMax * 10)),
    ...(o.leader === null ? ['--election-timeout-ms', String(Math.max(1000, o.delayMsMax * 3))] : []),
    ...o.nodeFlags,
  ];
  const t0 = performance.now();
  const cluster = await LocalCluster.start({ nodes: o.nodes, nodeFlags: flags });
  const clusterStartMs = performance.now() - t0;
  try {
    const leaderId = await cluster.waitForLeader();
    const leaderHttp = cluster.node(leaderId).http;
    const kv = await connect({ endpoints: [leaderHttp], deadlineMs: Math.max(10_000, o.delayMsMax * 20), connectionsPerEndpoint: Math.max(16, o.concurrency) });
    const samplesMs: number[] = [];
    const codes: Record<string, number> = {};
    let errors = 0;
    let next = 0;
    // Each value starts with its write's number (8 digits), padded to --value-bytes.
    const value = 'v'.repeat(Math.max(0, o.valueBytes - 8));
    const start = performance.now();
    try {
      await Promise.all(
        Array.from({ length: o.concurrency }, async () => {
          while (next < o.writes) {
            const i = next++;
            const t = performance.now();
            try {
              await kv.put(`key${i % o.keys}`, `${String(i).padStart(8, '0')}${value}`);
              samplesMs.push(performance.now() - t);
            } catch (error) {
              errors++;
              const code = errorCode(error);
              codes[code] = (codes[code] ?? 0) + 1;
            }
          }
        }),
      );
    } finally {
      await kv.close();
    }
    const elapsedMs = performance.now() - start;
    const afterLoad = divergence(leaderId, await Promise.all(cluster.endpoints.map((url) => snapshotStore(url))));
    await new Promise((r) => setTimeout(r, o.settleMs));
    const afterSettle = divergence(leaderId, await Promise.all(cluster.endpoints.map((url) => snapshotStore(url))));
    const latency = summarizeSamplesMs(samplesMs);
    const point: QuorumPoint = { w, writes: samplesMs.length, errors, errorCodes: codes, elapsedMs: Math.round(elapsedMs), writesPerSec: (samplesMs.length * 1000) / elapsedMs, latency, samplesMs: samplesMs.map((s) => Math.round(s * 1000) / 1000), afterLoad, afterSettle, clusterStartMs: Math.round(clusterStartMs) };
    const lagging = (d: readonly NodeDivergence[]): string => {
      const behind = d.filter((n) => n.keysDiffering > 0);
      return behind.length === 0 ? 'every follower identical' : behind.map((n) => `${n.node} ${n.keysDiffering} keys/${n.entriesBehind} entries behind`).join(', ');
    };
    print(
      `W=${w}: ${point.writes} writes${errors > 0 ? ` (${errors} errors: ${JSON.stringify(codes)})` : ''} in ${(elapsedMs / 1000).toFixed(1)} s — latency mean ${latency.meanMs.toFixed(0)} ms, p50 ${latency.p50Ms.toFixed(0)}, p95 ${latency.p95Ms.toFixed(0)}, p99 ${latency.p99Ms.toFixed(0)} ms\n` +
        `     right after the load: ${lagging(afterLoad)}\n     after ${(o.settleMs / 1000).toFixed(1)} s: ${lagging(afterSettle)}\n`,
    );
    return point;
  } finally {
    await cluster.destroy();
  }
}

export async function runQuorumExperiment(o: QuorumExperimentOptions): Promise<{ points: QuorumPoint[]; report: Report; files: ReportFiles | null }> {
  const print = o.print ?? ((t: string) => void process.stdout.write(t));
  for (const w of o.writeQuorums) {
    if (!Number.isSafeInteger(w) || w < 0 || w > o.nodes - 1) throw new RangeError(`W must be in 0..${o.nodes - 1} for ${o.nodes} nodes, got ${w}`);
  }
  const startedAt = new Date().toISOString();
  print(
    `experiment quorum: ${o.nodes} nodes (${o.leader === null ? 'elected leader' : `leader ${o.leader} pinned`}), replication delay ${o.delayMsMin}–${o.delayMsMax} ms, ` +
      `W = ${o.writeQuorums.join(', ')}; ${o.writes} writes, ${o.concurrency} at a time, ${o.keys} keys; settle ${(o.settleMs / 1000).toFixed(1)} s\n`,
  );
  const points: QuorumPoint[] = [];
  for (const w of o.writeQuorums) points.push(await runOneW(o, w, print));

  const series: Series[] = [
    { name: 'mean', points: points.map((p) => [p.w, p.latency.meanMs] as const), color: '#7f7f7f', dashed: true },
    { name: 'p50', points: points.map((p) => [p.w, p.latency.p50Ms] as const), color: '#2ca02c' },
    { name: 'p95', points: points.map((p) => [p.w, p.latency.p95Ms] as const), color: '#1f77b4' },
    { name: 'p99', points: points.map((p) => [p.w, p.latency.p99Ms] as const), color: '#ff7f0e' },
  ];
  const followersDiffering = (d: readonly NodeDivergence[]): number => d.filter((n) => n.keysDiffering > 0).length;
  const followersLacking = (d: readonly NodeDivergence[]): number => d.filter((n) => n.entriesNotHeld > 0).length;
  const charts = [
    { name: 'latency-vs-w', svg: lineChart({ title: `Write latency vs W (${o.nodes} nodes, delay ${o.delayMsMin}–${o.delayMsMax} ms)`, xLabel: 'W (follower acks required)', yLabel: 'write latency (ms)', series, xTicksAtData: true }) },
    {
      name: 'divergence-vs-w',
      svg: barChart({
        title: 'Followers without every acknowledged write in their log, and whose applied store differs',
        yLabel: 'followers',
        categories: points.map((p) => `W=${p.w}`),
        series: [
          { name: 'log lacks acknowledged writes, right after the load', values: points.map((p) => followersLacking(p.afterLoad)), color: '#9467bd' },
          { name: 'store differs (not applied yet), right after the load', values: points.map((p) => followersDiffering(p.afterLoad)), color: '#d62728' },
          { name: `after ${(o.settleMs / 1000).toFixed(1)} s`, values: points.map((p) => followersDiffering(p.afterSettle)), color: '#2ca02c' },
        ],
      }),
    },
  ];
  const tables: ReportTable[] = [
    {
      title: 'Write latency per W',
      header: ['W', 'writes', 'errors', 'writes/s', 'mean ms', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
      rows: points.map((p) => [String(p.w), String(p.writes), String(p.errors), p.writesPerSec.toFixed(1), p.latency.meanMs.toFixed(1), p.latency.p50Ms.toFixed(1), p.latency.p95Ms.toFixed(1), p.latency.p99Ms.toFixed(1), p.latency.maxMs.toFixed(1)]),
    },
    {
      title: 'Divergence from the leader, per node (keys differing / entries not applied / acknowledged entries not in its log)',
      header: ['W', 'when', ...(points[0]?.afterLoad.map((n) => n.node) ?? [])],
      rows: points.flatMap((p) => [
        [String(p.w), 'after the load', ...p.afterLoad.map((n) => (n.role === 'leader' ? 'leader' : `${n.keysDiffering} / ${n.entriesBehind} / ${n.entriesNotHeld}`))],
        [String(p.w), `after ${(o.settleMs / 1000).toFixed(1)} s`, ...p.afterSettle.map((n) => (n.role === 'leader' ? 'leader' : `${n.keysDiffering} / ${n.entriesBehind} / ${n.entriesNotHeld}`))],
      ]),
      note: 'keys differing: keys whose value or version on the node is not the leader\'s; entries not applied: the leader\'s applied index minus the node\'s; not in its log: acknowledged entries (the leader\'s acknowledged index) beyond the node\'s last log index. With W = all followers the last figure is 0 on every follower right after the load: each holds every acknowledged write, and applies it when the next (delayed) message tells it the commit index.',
    },
  ];
  const csvRows: CsvCell[][] = points.flatMap((p) =>
    [...p.afterLoad.map((n) => ['after_load', n] as const), ...p.afterSettle.map((n) => ['after_settle', n] as const)].map(([when, n]) => [
      p.w, p.writes, p.errors, p.writesPerSec, p.latency.meanMs, p.latency.p50Ms, p.latency.p95Ms, p.latency.p99Ms, p.latency.maxMs, when, n.node, n.role, n.keysDiffering, n.keysStale, n.keysMissing, n.versionsBehind, n.entriesBehind, n.entriesNotHeld,
    ]),
  );
  const { print: _print, ...config } = o;
  const { report, files } = await finishReport({
    kind: 'experiment quorum',
    title: `Quorum experiment: write latency and follower divergence vs W`,
    command: o.command,
    config,
    startedAt,
    results: { points },
    csv: { header: ['w', 'writes', 'errors', 'writes_per_s', 'mean_ms', 'p50_ms', 'p95_ms', 'p99_ms', 'max_ms', 'when', 'node', 'role', 'keys_differing', 'keys_stale', 'keys_missing', 'versions_behind', 'entries_behind', 'entries_not_held'], rows: csvRows },
    tables,
    charts,
    notes: ['Each W runs on a fresh cluster. A write is acknowledged once the leader and W followers hold it on disk; every replication message is delayed independently, so a write waits for about the W-th fastest of the followers.'],
  }, o.outDir);
  if (files !== null) print(`report: ${files.html}\n`);
  return { points, report, files };
}
