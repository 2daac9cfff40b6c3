/**
 * `npm run bench`: the foundation's benchmark. Starts a local cluster (or uses
 * --endpoints), preloads keys, then runs closed-loop clients against the leader for a
 * fixed time per phase (writes, then linearizable reads, then a 50/50 mix) and prints
 * throughput and latency percentiles from HDR histograms, with the benchmark client's own
 * CPU share so a saturated client is visible. Traffic goes to 127.0.0.1 only.
 *
 *   npm run bench -- [--nodes 3] [--concurrency 64] [--seconds 10] [--keys 10000]
 *                    [--value-bytes 128] [--endpoints URL,…] [--phases write,read,mixed]
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';

interface Options {
  nodes: number;
  concurrency: number;
  seconds: number;
  keys: number;
  valueBytes: number;
  endpoints: string[] | null;
  phases: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { nodes: 3, concurrency: 64, seconds: 10, keys: 10_000, valueBytes: 128, endpoints: null, phases: ['write', 'read', 'mixed'] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[++i] ?? '';
    switch (flag) {
      case '--nodes': o.nodes = Number(v); break;
      case '--concurrency': o.concurrency = Number(v); break;
      case '--seconds': o.seconds = Number(v); break;
      case '--keys': o.keys = Number(v); break;
      case '--value-bytes': o.valueBytes = Number(v); break;
      case '--endpoints': o.endpoints = v.split(','); break;
      case '--phases': o.phases = v.split(','); break;
      default: throw new Error(`unknown flag ${flag ?? ''}`);
    }
  }
  return o;
}

interface Cluster {
  endpoints: string[];
  pids: number[];
  stop(): Promise<void>;
}

async function startCluster(nodes: number): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-bench-'));
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const proc: ChildProcess = spawn(process.execPath, [main, 'up', '--nodes', String(nodes), '--data-dir', dir, '--base-port', '0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster did not come up: ${out}`)), 60_000);
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('is up')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', () => reject(new Error(`up exited: ${out}`)));
  });
  const file = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: { http: string; pid: number }[] };
  return {
    endpoints: file.nodes.map((n) => n.http),
    pids: file.nodes.map((n) => n.pid),
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function findLeader(endpoints: string[]): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    for (const e of endpoints) {
      try {
        const res = await fetch(`${e}/status`);
        const s = (await res.json()) as { role: string; leader: { http: string | null } | null };
        if (s.role === 'leader') return e;
        if (s.leader?.http) return s.leader.http;
      } catch {
        // try the next one
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no leader found');
}

/** CPU seconds used so far by a process, from /proc (Linux). */
async function procCpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

interface PhaseResult {
  phase: string;
  ops: number;
  errors: number;
  opsPerSec: number;
  byOp: Map<string, { count: number; p50: number; p99: number; p999: number; max: number; mean: number }>;
  clientCpuShare: number;
  serverCpuSeconds: number;
}

async function runPhase(phase: string, leader: string, o: Options, value: string, pids: number[]): Promise<PhaseResult> {
  const pool = new Pool(leader, { connections: o.concurrency, pipelining: 1, keepAliveTimeout: 10_000 });
  const hists = new Map<string, hdr.Histogram>();
  const hist = (op: string): hdr.Histogram => {
    let h = hists.get(op);
    if (h === undefined) {
      h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
      hists.set(op, h);
    }
    return h;
  };
  const body = JSON.stringify({ value });
  let ops = 0;
  let errors = 0;
  let seq = 0;
  const deadline = performance.now() + o.seconds * 1000;
  const cpu0 = process.cpuUsage();
  const server0 = (await Promise.all(pids.map(procCpuSeconds))).reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (performance.now() < deadline) {
        const i = seq++;
        const key = `key${i % o.keys}`;
        const isWrite = phase === 'write' || (phase === 'mixed' && i % 2 === 0);
        const start = performance.now();
        try {
          const res = await pool.request(
            isWrite
              ? { method: 'PUT', path: `/kv/${key}`, body, headers: { 'content-type': 'application/json' } }
              : { method: 'GET', path: `/kv/${key}?consistency=linearizable` },
          );
          await res.body.dump();
          if (res.statusCode !== 200) errors++;
          else ops++;
        } catch {
          errors++;
        }
        hist(isWrite ? 'write' : 'read').recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
      }
    }),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const server1 = (await Promise.all(pids.map(procCpuSeconds))).reduce((a, b) => a + b, 0);
  await pool.close();
  const byOp = new Map<string, { count: number; p50: number; p99: number; p999: number; max: number; mean: number }>();
  for (const [op, h] of hists) {
    byOp.set(op, { count: h.totalCount, p50: h.getValueAtPercentile(50) / 1000, p99: h.getValueAtPercentile(99) / 1000, p999: h.getValueAtPercentile(99.9) / 1000, max: h.maxValue / 1000, mean: h.mean / 1000 });
  }
  return { phase, ops, errors, opsPerSec: ops / elapsedS, byOp, clientCpuShare: (cpu.user + cpu.system) / 1e6 / elapsedS, serverCpuSeconds: server1 - server0 };
}

async function preload(leader: string, o: Options, value: string): Promise<void> {
  const pool = new Pool(leader, { connections: 64 });
  const body = JSON.stringify({ value });
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < o.keys) {
        const i = next++;
        const res = await pool.request({ method: 'PUT', path: `/kv/key${i}`, body, headers: { 'content-type': 'application/json' } });
        await res.body.dump();
      }
    }),
  );
  await pool.close();
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const cluster = o.endpoints === null ? await startCluster(o.nodes) : null;
  try {
    const endpoints = cluster?.endpoints ?? o.endpoints ?? [];
    const leader = await findLeader(endpoints);
    const value = 'v'.repeat(o.valueBytes);
    process.stdout.write(`quorumkv bench: ${o.nodes} nodes, ${o.concurrency} closed-loop clients, ${o.keys} keys, ${o.valueBytes} B values, ${o.seconds} s per phase, leader ${leader}\n`);
    await preload(leader, o, value);
    process.stdout.write('phase   ops/s     errors  op     p50 ms  p99 ms  p99.9 ms  max ms  client CPU  nodes CPU\n');
    for (const phase of o.phases) {
      const r = await runPhase(phase, leader, o, value, cluster?.pids ?? []);
      for (const [op, s] of r.byOp) {
        process.stdout.write(
          `${phase.padEnd(7)} ${r.opsPerSec.toFixed(0).padStart(7)}  ${String(r.errors).padStart(6)}  ${op.padEnd(5)}  ${s.p50.toFixed(2).padStart(6)}  ${s.p99.toFixed(2).padStart(6)}  ${s.p999.toFixed(2).padStart(8)}  ${s.max.toFixed(1).padStart(6)}  ${(r.clientCpuShare * 100).toFixed(0).padStart(8)}%  ${(r.serverCpuSeconds / o.seconds).toFixed(2).padStart(6)} cores\n`,
        );
      }
    }
  } finally {
    await cluster?.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
