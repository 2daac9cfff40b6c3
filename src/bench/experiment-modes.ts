/**
 * `quorumkv experiment modes`: one workload across the replication modes — asynchronous
 * (W=0), W=1, majority (Raft), all (synchronous) and chain — on a fresh cluster each, with
 * throughput and latency side by side; then, on the same cluster, a scripted leader kill
 * under a write load: the leader's replication is slowed (so weak quorums have something
 * to lose), it is killed with SIGKILL, a new leader takes over, the old one restarts and
 * rejoins. Every acknowledged write is then looked up in the converged store; the lost
 * ones are counted and matched against the nodes' rollback reports (rollback.jsonl), so a
 * lost write that no report mentions shows up as "unreported".
 *
 * Must never: call a mode safe because it lost nothing in one run (the table reports what
 * happened, and the rollback records show what could have).
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { connect } from '../client/index.js';
import { barChart } from './charts.js';
import { LocalCluster, dumpStore, nodeStatus, putJson } from './cluster.js';
import { htmlHeader, htmlRows, csvHeader, csvRows as pointCsvRows } from './bench.js';
import { finishReport } from './report.js';
import type { Report, ReportFiles, ReportTable } from './report.js';
import { preload, runPoint } from './runner.js';
import type { PointResult } from './runner.js';
import type { OpSummary } from './stats.js';
import { quorumKvTarget } from './target.js';
import { makeKeys, makeValue, workload } from './workload.js';
import type { WorkloadName } from './workload.js';
import { createPrng } from '../stdx/prng.js';

export const modeNames = ['async', 'w1', 'majority', 'all', 'chain'] as const;
export type ModeName = (typeof modeNames)[number];

export const modeFlags: Readonly<Record<ModeName, readonly string[]>> = {
  async: ['--write-quorum', '0'],
  w1: ['--write-quorum', '1'],
  majority: ['--write-quorum', 'majority'],
  all: ['--write-quorum', 'all'],
  chain: ['--topology', 'chain'],
};

const modeLabels: Readonly<Record<ModeName, string>> = { async: 'async (W=0)', w1: 'W=1', majority: 'majority', all: 'all', chain: 'chain' };

export interface ModesExperimentOptions {
  readonly modes: readonly ModeName[];
  readonly nodes: number;
  readonly workload: WorkloadName;
  readonly concurrency: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly keys: number;
  readonly valueBytes: number;
  /** Skip the leader kill. */
  readonly kill: boolean;
  /** Replication delay put on the leader during the kill phase (0 … this, ms). */
  readonly killDelayMs: number;
  /** Writes before the kill, in milliseconds of load. */
  readonly killAfterMs: number;
  readonly killWriters: number;
  readonly nodeFlags: readonly string[];
  readonly outDir: string | null;
  readonly command: string;
  readonly seed: number;
  readonly progress: boolean;
  readonly print?: (text: string) => void;
}

export interface KillOutcome {
  readonly killed: string;
  readonly newLeader: string;
  /** From the kill to the acknowledgement of the first write sent after it. */
  readonly failoverMs: number | null;
  readonly acked: number;
  readonly ackedBeforeKill: number;
  /** Acknowledged writes whose value is not in the converged store. */
  readonly lost: number;
  /** Records in the nodes' rollback reports (rollback.jsonl). */
  readonly rollbackRecords: number;
  /** Lost writes that no rollback report mentions (must be 0). */
  readonly lostUnreported: number;
  readonly converged: boolean;
  readonly lostExamples: readonly string[];
}

export interface ModeResult {
  readonly mode: ModeName;
  readonly point: PointResult;
  readonly kill: KillOutcome | null;
}

function op(p: PointResult, kind: 'write' | 'read'): OpSummary | undefined {
  return p.byOp.find((b) => b.op === kind);
}

interface Acked {
  readonly key: string;
  readonly value: string;
  readonly version: number;
}

async function rollbackRecords(cluster: LocalCluster): Promise<{ key: string; version: number; value?: unknown }[]> {
  const out: { key: string; version: number; value?: unknown }[] = [];
  for (const n of cluster.nodes) {
    const text = await readFile(path.join(n.dataDir, 'rollback.jsonl'), 'utf8').catch(() => '');
    for (const line of text.split('\n').filter(Boolean)) {
      try {
        out.push(JSON.parse(line) as { key: string; version: number });
      } catch {
        // a torn last line of a killed node: not a record
      }
    }
  }
  return out;
}

/** Waits (bounded) until every node has the same applied index and the same store. */
async function converge(cluster: LocalCluster, timeoutMs: number): Promise<Map<string, { value: string; version: number }> | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const statuses = await Promise.all(cluster.endpoints.map((e) => nodeStatus(e, 2000)));
      if (new Set(statuses.map((s) => s.appliedIndex)).size === 1) {
        const dumps = await Promise.all(cluster.endpoints.map((url) => dumpStore(url)));
        const first = JSON.stringify([...(dumps[0] ?? new Map()).entries()]);
        if (dumps.every((d) => JSON.stringify([...d.entries()]) === first)) return dumps[0] ?? new Map();
      }
    } catch {
      // a node still starting
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

async function killPhase(o: ModesExperimentOptions, mode: ModeName, cluster: LocalCluster): Promise<KillOutcome> {
  const leader = await cluster.waitForLeader();
  // Slow the leader's replication so that weak quorums acknowledge writes followers lack.
  if (o.killDelayMs > 0) await putJson(`${cluster.node(leader).http}/admin/faults`, { delayMsMin: 0, delayMsMax: o.killDelayMs });
  const kv = await connect({ endpoints: cluster.endpoints, deadlineMs: 5000, connectionsPerEndpoint: o.killWriters });
  const acked: Acked[] = [];
  let stop = false;
  let seq = 0;
  let killedAt: number | null = null;
  let firstAfterKill: number | null = null;
  const writers = Array.from({ length: o.killWriters }, async () => {
    while (!stop) {
      const i = seq++;
      const key = `kill/${mode}/${String(i).padStart(6, '0')}`;
      const value = `v${i}`;
      const startedAt = performance.now();
      try {
        const r = await kv.put(key, value);
        acked.push({ key, value, version: r.version });
        // Failover time: until a write sent after the kill is acknowledged (one already in
        // flight may still be answered by the dying leader).
        if (killedAt !== null && startedAt >= killedAt && firstAfterKill === null) firstAfterKill = performance.now();
      } catch {
        // not acknowledged: not counted
      }
    }
  });
  let newLeader = '';
  let ackedBeforeKill = 0;
  try {
    await new Promise((r) => setTimeout(r, o.killAfterMs));
    ackedBeforeKill = acked.length;
    killedAt = performance.now();
    await cluster.kill9(leader);
    newLeader = await cluster.waitForLeader(30_000, cluster.running());
    const target = acked.length + o.killWriters * 4;
    const deadline = Date.now() + 10_000;
    while (acked.length < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    stop = true;
    await Promise.all(writers);
    await kv.close();
  }
  await cluster.restart(leader);
  await cluster.waitForLeader(30_000);
  const store = await converge(cluster, 30_000);
  const finalStore = store ?? (await dumpStore(cluster.node(newLeader).http));
  const lostWrites = acked.filter((a) => finalStore.get(a.key)?.value !== a.value);
  const records = await rollbackRecords(cluster);
  const reported = new Set(records.map((r) => `${r.key}@${r.version}`));
  const unreported = lostWrites.filter((a) => !reported.has(`${a.key}@${a.version}`));
  const killedAtMs = killedAt as number | null;
  const firstMs = firstAfterKill as number | null;
  return {
    killed: leader,
    newLeader,
    failoverMs: killedAtMs !== null && firstMs !== null ? Math.round(firstMs - killedAtMs) : null,
    acked: acked.length,
    ackedBeforeKill,
    lost: lostWrites.length,
    rollbackRecords: records.length,
    lostUnreported: unreported.length,
    converged: store !== null,
    lostExamples: lostWrites.slice(0, 5).map((a) => `${a.key}=${a.value}@${a.version}`),
  };
}

export async function runModesExperiment(o: ModesExperimentOptions): Promise<{ results: ModeResult[]; report: Report; files: ReportFiles | null }> {
  const print = o.print ?? ((t: string) => void process.stdout.write(t));
  const startedAt = new Date().toISOString();
  print(
    `experiment modes: ${o.modes.map((m) => modeLabels[m]).join(', ')} on ${o.nodes} nodes; ${o.workload} at ${o.concurrency} clients for ${o.durationMs / 1000} s each` +
      `${o.kill ? `; then SIGKILL of the leader under ${o.killWriters} writers (leader's replication delayed 0–${o.killDelayMs} ms)` : ''}\n`,
  );
  const results: ModeResult[] = [];
  const spec = workload(o.workload);
  const rng = createPrng(o.seed);
  const keys = makeKeys(o.keys, 16);
  const value = makeValue(o.valueBytes, rng);
  for (const mode of o.modes) {
    const cluster = await LocalCluster.start({ nodes: o.nodes, nodeFlags: [...modeFlags[mode], '--faults', ...o.nodeFlags] });
    try {
      const target = await quorumKvTarget({ endpoints: cluster.endpoints, connectionsPerEndpoint: Math.max(16, o.concurrency), readConsistency: 'linearizable', deadlineMs: 10_000 });
      let point: PointResult;
      try {
        if (spec.readFraction > 0) await preload(target, keys, value, 32);
        point = await runPoint({ target, workload: spec, keys, value, concurrency: o.concurrency, durationMs: o.durationMs, opsTotal: null, warmupMs: o.warmupMs, serverPids: cluster.pids, metricsUrls: cluster.endpoints, seed: o.seed, progress: o.progress, label: `${modeLabels[mode]}` });
      } finally {
        await target.close();
      }
      const w = op(point, 'write');
      const r = op(point, 'read');
      print(
        `${modeLabels[mode].padEnd(12)} ${point.opsPerSec.toFixed(0).padStart(7)} ops/s  write p50 ${w?.p50Ms.toFixed(2) ?? '-'} p99 ${w?.p99Ms.toFixed(2) ?? '-'} ms` +
          `${r === undefined ? '' : `  read p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} ms`}  errors ${point.errors}\n`,
      );
      const kill = o.kill ? await killPhase(o, mode, cluster) : null;
      if (kill !== null) {
        print(
          `${''.padEnd(12)} leader kill: ${kill.killed} → ${kill.newLeader}, first write after ${kill.failoverMs ?? '?'} ms; ${kill.acked} acknowledged, ${kill.lost} lost, ` +
            `${kill.rollbackRecords} rollback records, ${kill.lostUnreported} lost without a record${kill.converged ? '' : ' (stores did not converge within 30 s)'}\n`,
        );
      }
      results.push({ mode, point, kill });
    } finally {
      await cluster.destroy();
    }
  }

  const categories = results.map((r) => modeLabels[r.mode]);
  const charts = [
    { name: 'modes-throughput', svg: barChart({ title: `Throughput per mode (${o.workload}, ${o.concurrency} clients, ${o.nodes} nodes)`, yLabel: 'operations / s', categories, series: [{ name: 'ops/s', values: results.map((r) => r.point.opsPerSec) }] }) },
    {
      name: 'modes-latency',
      svg: barChart({
        title: 'Latency per mode',
        yLabel: 'latency (ms)',
        categories,
        series: [
          { name: 'write p50', values: results.map((r) => op(r.point, 'write')?.p50Ms ?? null), color: '#2ca02c' },
          { name: 'write p99', values: results.map((r) => op(r.point, 'write')?.p99Ms ?? null), color: '#ff7f0e' },
          { name: 'read p50', values: results.map((r) => op(r.point, 'read')?.p50Ms ?? null), color: '#1f77b4' },
          { name: 'read p99', values: results.map((r) => op(r.point, 'read')?.p99Ms ?? null), color: '#9467bd' },
        ],
      }),
    },
  ];
  if (o.kill) {
    charts.push({
      name: 'modes-lost-writes',
      svg: barChart({
        title: 'Acknowledged writes lost in a leader kill',
        yLabel: 'writes',
        categories,
        series: [
          { name: 'lost', values: results.map((r) => r.kill?.lost ?? null), color: '#d62728' },
          { name: 'rollback records', values: results.map((r) => r.kill?.rollbackRecords ?? null), color: '#7f7f7f' },
          { name: 'lost without a record', values: results.map((r) => r.kill?.lostUnreported ?? null), color: '#000000' },
        ],
      }),
    });
  }
  const tables: ReportTable[] = [
    {
      title: 'Modes side by side',
      header: ['mode', 'ops/s', 'write p50 ms', 'write p99 ms', 'read p50 ms', 'read p99 ms', 'errors', 'server CPU', 'kill: acked', 'lost', 'rollback records', 'lost unreported', 'failover ms'],
      rows: results.map((r) => [
        modeLabels[r.mode], r.point.opsPerSec.toFixed(0),
        op(r.point, 'write')?.p50Ms.toFixed(2) ?? '-', op(r.point, 'write')?.p99Ms.toFixed(2) ?? '-',
        op(r.point, 'read')?.p50Ms.toFixed(2) ?? '-', op(r.point, 'read')?.p99Ms.toFixed(2) ?? '-',
        String(r.point.errors), r.point.serverCpuCores?.toFixed(2) ?? '?',
        String(r.kill?.acked ?? '-'), String(r.kill?.lost ?? '-'), String(r.kill?.rollbackRecords ?? '-'), String(r.kill?.lostUnreported ?? '-'), String(r.kill?.failoverMs ?? '-'),
      ]),
      note: 'lost: acknowledged writes whose value is not in the converged store after the old leader rejoined; rollback records: entries in the nodes\' rollback.jsonl; lost unreported must be 0.',
    },
    { title: 'Every figure', header: htmlHeader, rows: htmlRows(results.map((r) => ({ ...r.point, system: modeLabels[r.mode] }))) },
  ];
  const { print: _print, ...config } = o;
  const { report, files } = await finishReport({
    kind: 'experiment modes',
    title: 'Replication modes side by side',
    command: o.command,
    config,
    startedAt,
    results: { modes: results },
    csv: {
      header: [...csvHeader, 'mode', 'kill_acked', 'kill_lost', 'kill_rollback_records', 'kill_lost_unreported', 'kill_failover_ms'],
      rows: results.flatMap((r) => pointCsvRows([r.point], () => [r.mode, r.kill?.acked ?? null, r.kill?.lost ?? null, r.kill?.rollbackRecords ?? null, r.kill?.lostUnreported ?? null, r.kill?.failoverMs ?? null])),
    },
    tables,
    charts,
    notes: [`Each mode runs on a fresh ${o.nodes}-node cluster started with --faults. Mode flags: ${o.modes.map((m) => `${m}: ${modeFlags[m].join(' ')}`).join('; ')}.`],
  }, o.outDir);
  if (files !== null) print(`report: ${files.html}\n`);
  return { results, report, files };
}
