/**
 * etcd as a comparison system: a local 3-member etcd cluster (Debian's `etcd-server`
 * package, etcd 3.4; fsync on, as shipped) on 127.0.0.1 with free ports and its data in a
 * temporary directory, and a BenchTarget driving it through the `etcd3` client (gRPC,
 * linearizable reads by default, as quorumkv's) to the member(s) `--to` chooses (the roles
 * come from each member's maintenance status). `etcd3` is a devDependency, loaded only
 * when a comparison runs. Plain HTTP/JSON to etcd is etcd-gateway.ts.
 *
 * If no `etcd` binary is found and this process runs as root with apt-get, the package is
 * installed (`apt-get install -y etcd-server`); otherwise the error says how to get it, or
 * to pass an existing cluster with --etcd-endpoints.
 *
 * Must never: leave an etcd process or its data behind (`stop()` kills every member and
 * removes the directory; members are SIGKILLed if this process exits first).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, killOnExit, stopChild } from './child.js';
import { getJson } from './cluster.js';
import { findPackagedBinary } from './debian-package.js';
import type { ServerProcess } from './footprint.js';
import { chooseNodes, toText } from './node-choice.js';
import type { To } from './node-choice.js';
import type { BenchTarget } from './target.js';
import { request } from 'undici';
import type * as Etcd3Module from 'etcd3';

const etcdBinaryDefault = '/usr/bin/etcd';
const healthWaitMs = 30_000;
/**
 * etcd's backend quota: 8 GiB, the largest etcd suggests, instead of the 2 GiB default, so a
 * fill of millions of keys measures etcd rather than its quota (past it, etcd refuses
 * writes with "database space exceeded", counted as errors).
 */
const quotaBackendBytes = 8 * 1024 ** 3;

/** Finds the etcd binary, installing Debian's etcd-server with apt-get when allowed. */
export function findEtcd(binary: string | null, install: boolean, log: (line: string) => void): Promise<string> {
  return findPackagedBinary({
    binary,
    candidates: [etcdBinaryDefault, '/usr/local/bin/etcd'],
    aptPackage: 'etcd-server',
    install,
    log,
    otherwise: '--etcd-bin PATH, or --etcd-endpoints URL,… of a running etcd',
  });
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly endpoints: string[],
    private readonly procs: ChildProcess[],
  ) {}

  /** Each member's process and data directory, for the fill's disk and memory figures. */
  get servers(): ServerProcess[] {
    return this.procs.map((p, i) => ({ name: `e${i + 1}`, pid: p.pid ?? null, dataDir: path.join(this.dir, `e${i + 1}`) }));
  }

  /** Starts `members` etcd members on 127.0.0.1 and waits until the cluster is healthy. */
  static async start(binary: string, members = 3): Promise<EtcdCluster> {
    const dir = await mkdtemp(path.join(tmpdir(), 'qkv-etcd-'));
    const names = Array.from({ length: members }, (_, i) => `e${i + 1}`);
    const ports: { client: number; peer: number }[] = [];
    for (let i = 0; i < members; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initial = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]?.peer}`).join(',');
    const procs: ChildProcess[] = [];
    const cluster = new EtcdCluster(dir, ports.map((p) => `http://127.0.0.1:${p.client}`), procs);
    try {
      names.forEach((name, i) => {
        const p = ports[i] as { client: number; peer: number };
        const args = [
          '--name', name, '--data-dir', path.join(dir, name),
          '--listen-client-urls', `http://127.0.0.1:${p.client}`, '--advertise-client-urls', `http://127.0.0.1:${p.client}`,
          '--listen-peer-urls', `http://127.0.0.1:${p.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
          '--initial-cluster', initial, '--initial-cluster-token', path.basename(dir), '--initial-cluster-state', 'new',
          '--log-level', 'warn', '--logger', 'zap', '--quota-backend-bytes', String(quotaBackendBytes),
        ];
        const log = createWriteStream(path.join(dir, `${name}.log`));
        const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch } });
        killOnExit(proc);
        proc.stdout.pipe(log, { end: false });
        proc.stderr.pipe(log, { end: false });
        procs.push(proc);
      });
      await cluster.waitHealthy();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private async waitHealthy(): Promise<void> {
    const deadline = Date.now() + healthWaitMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const p of this.procs) if (p.exitCode !== null) throw new Error(`an etcd member exited (code ${p.exitCode}); see the logs in ${this.dir}`);
      try {
        const answers = await Promise.all(this.endpoints.map((e) => getJson<{ health?: string }>(`${e}/health`, 1000)));
        if (answers.every((a) => a.health === 'true')) return;
        last = JSON.stringify(answers);
      } catch (error) {
        last = String(error);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`etcd did not become healthy within ${healthWaitMs} ms (last: ${last})`);
  }

  /** Kills every member and removes the data. */
  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopChild(p, 'SIGKILL')));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A member's role from its maintenance status (`POST /v3/maintenance/status`, which etcd
 * 3.4 serves as JSON on its client port): `leader` when the leader it names is itself.
 */
export async function etcdRole(url: string): Promise<string> {
  const res = await request(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' }, headersTimeout: 2_000, bodyTimeout: 2_000 });
  const status = (await res.body.json()) as { header?: { member_id?: string }; leader?: string };
  if (res.statusCode !== 200 || status.leader === undefined || status.leader === '0') return 'no leader';
  return status.leader === status.header?.member_id ? 'leader' : 'follower';
}

/** The member URLs `to` names (all of them for null: the etcd3 client's own round robin). */
export function etcdMembers(endpoints: readonly string[], to: To | null, timeoutMs: number): Promise<string[]> {
  return chooseNodes(endpoints, to ?? 'any', timeoutMs, etcdRole);
}

/** A BenchTarget for etcd through the etcd3 client (gRPC): put, and linearizable (default) or serializable gets. */
export async function etcdTarget(endpoints: readonly string[], to: To | null = null, serializableReads = false): Promise<BenchTarget> {
  let mod: typeof Etcd3Module;
  try {
    mod = await import('etcd3');
  } catch {
    throw new Error('the etcd comparison needs the etcd3 package (a devDependency): run npm install in the quorumkv checkout');
  }
  const hosts = await etcdMembers(endpoints, to, healthWaitMs);
  const client = new mod.Etcd3({ hosts });
  // One round trip proves the cluster answers before the clock starts.
  await client.put('__qkv_bench_probe').value('1');
  return {
    system: 'etcd',
    path: `etcd3 client (gRPC) to ${to === null ? 'every member (its own balancing)' : toText(to)}: ${hosts.join(' ')}`,
    put: (key, value) => client.put(key).value(value).exec(),
    get: (key) => (serializableReads ? client.get(key).serializable(true).string() : client.get(key).string()),
    txn: (a, b, value) =>
      client
        .if(a, 'Version', '>', 0)
        .then(client.put(a).value(value), client.put(b).value(value))
        .else(client.get(a))
        .commit(),
    close: async () => client.close(),
  };
}
