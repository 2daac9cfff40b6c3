/**
 * Local quorumkv clusters for benchmarks and experiments: N `quorumkv node` processes on
 * 127.0.0.1 with free ports, data in a temporary directory, the same flags `quorumkv up`
 * passes through, and a `cluster.json` like up's. Unlike `up`, the runner can kill -9 and
 * restart single nodes (the experiments' scripted leader kill). Also: reading a node's
 * status and a consistent dump of its store, and a process's CPU time from /proc.
 *
 * bench/ may not import cli/ (eslint layers), so nodes are started by running the built
 * CLI (dist/cli/main.js) as a program, never by importing it.
 *
 * Must never: leave a process or a temporary directory behind (`destroy()` kills and
 * removes everything, and every child is SIGKILLed if this process exits), or send
 * traffic anywhere but 127.0.0.1.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { StatusResponse } from '../wire/types.js';
import { freePort, nodeRuntimeFlags, stdioClosed, stopChild } from './child.js';

export const cliMainPath = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Flags `up` chooses for every node; a caller passing one is refused. */
const reservedNodeFlags = ['id', 'peers', 'listen-http', 'listen-peer', 'listen-grpc', 'cluster-id', 'data-dir'];
const leaderWaitMsDefault = 30_000;
const stopWaitMsMax = 10_000;
const httpTimeoutMs = 5_000;
const startAttemptsMax = 3;
const logTailBytes = 2_000;

/** A node process ended while the runner waited for it; carries the end of its log. */
class NodeExitedError extends Error {
  constructor(message: string, readonly portTaken: boolean) {
    super(message);
  }
}

/** Every node process started by this module, SIGKILLed if the process exits first. */
const living = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of living) child.kill('SIGKILL');
});

/** GET a JSON answer; throws on a non-200 status or a timeout. */
export async function getJson<T>(url: string, timeoutMs = httpTimeoutMs, headers: Readonly<Record<string, string>> = {}): Promise<T> {
  const res = await request(url, { headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

/** PUT a JSON body; throws on a non-200 status. */
export async function putJson<T>(url: string, body: unknown, timeoutMs = httpTimeoutMs): Promise<T> {
  const res = await request(url, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`PUT ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

export function nodeStatus(http: string, timeoutMs = httpTimeoutMs): Promise<StatusResponse> {
  return getJson<StatusResponse>(`${http}/status`, timeoutMs);
}

export interface StoreItem {
  readonly value: string;
  readonly version: number;
}

export interface StoreSnapshot {
  readonly items: Map<string, StoreItem>;
  /** The node's applied index before and after the dump; equal means the dump is one state. */
  readonly appliedBefore: number;
  readonly appliedAfter: number;
  readonly consistent: boolean;
  readonly status: StatusResponse;
}

const pageLimit = 1000;
const snapshotAttemptsMax = 5;

/** Every key of one node's store, page by page through GET /debug/store (an admin route: `headers` carry the token). */
export async function dumpStore(http: string, headers: Readonly<Record<string, string>> = {}): Promise<Map<string, StoreItem>> {
  const items = new Map<string, StoreItem>();
  let after: string | null = null;
  for (let pages = 0; ; pages++) {
    const url: string = `${http}/debug/store?limit=${pageLimit}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    const page: { items: { key: string; value: string; version: number }[]; next: string | null } = await getJson<{ items: { key: string; value: string; version: number }[]; next: string | null }>(url, 30_000, headers);
    for (const i of page.items) items.set(i.key, { value: i.value, version: i.version });
    if (page.next === null) return items;
    if (pages > 10_000_000 / pageLimit) throw new Error(`${http}/debug/store has more than 10,000,000 keys; refusing to dump it`);
    after = page.next;
  }
}

/**
 * A dump of one node's store that is one state: the applied index is read before and
 * after the pages; if it moved, the dump is retried (up to 5 times). A node still applying
 * gives its last dump, marked `consistent: false`.
 */
export async function snapshotStore(http: string, headers: Readonly<Record<string, string>> = {}): Promise<StoreSnapshot> {
  let last: StoreSnapshot | null = null;
  for (let attempt = 0; attempt < snapshotAttemptsMax; attempt++) {
    const before = await nodeStatus(http);
    const items = await dumpStore(http, headers);
    const after = await nodeStatus(http);
    last = { items, appliedBefore: before.appliedIndex, appliedAfter: after.appliedIndex, consistent: before.appliedIndex === after.appliedIndex, status: after };
    if (last.consistent) return last;
  }
  return last as StoreSnapshot;
}

/** CPU seconds (user + system) a process has used, from /proc (Linux); null if unknown. */
export async function procCpuSeconds(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

/** Summed CPU seconds of several processes (those that cannot be read count 0). */
export async function totalCpuSeconds(pids: readonly number[]): Promise<number> {
  const all = await Promise.all(pids.map(procCpuSeconds));
  return all.reduce<number>((a, b) => a + (b ?? 0), 0);
}

export interface ClusterNode {
  readonly id: string;
  readonly http: string;
  readonly peerPort: number;
  readonly dataDir: string;
  proc: ChildProcess | null;
}

export interface LocalClusterOptions {
  readonly nodes: number;
  /** Node flags, exactly as `quorumkv up` takes them (`--write-quorum 2`, `--faults`, …). */
  readonly nodeFlags?: readonly string[];
  /** Keep the data directory after destroy() (for inspection). */
  readonly keepData?: boolean;
  readonly leaderWaitMs?: number;
  /** Node.js runtime flags for every node process (e.g. `--cpu-prof`, `--cpu-prof-dir=D`). */
  readonly execArgv?: readonly string[];
}

export class LocalCluster {
  private constructor(
    readonly dir: string,
    readonly nodes: ClusterNode[],
    readonly clusterId: string,
    readonly nodeFlags: readonly string[],
    private readonly keepData: boolean,
    private readonly execArgv: readonly string[],
  ) {}

  /**
   * Starts every node and waits until one of them leads. Ports are probed free and
   * released before the nodes bind them, so another process (a test beside this one, an
   * outgoing connection's ephemeral port) can take one in between: a node that exits
   * during start-up because its port was taken (EADDRINUSE in its log) makes the whole
   * cluster start again on fresh ports (three attempts).
   */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const flags = options.nodeFlags ?? [];
    for (const f of flags) {
      const name = f.startsWith('--') ? f.slice(2).split('=')[0] : null;
      if (name !== null && name !== undefined && reservedNodeFlags.includes(name)) throw new Error(`--${name} is chosen by the benchmark for each node`);
    }
    if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 15) throw new Error(`--nodes must be 1..15, got ${options.nodes}`);
    let lastError: unknown = null;
    for (let attempt = 1; attempt <= startAttemptsMax; attempt++) {
      const dir = await mkdtemp(path.join(tmpdir(), 'qkv-bench-'));
      const nodes: ClusterNode[] = [];
      for (let i = 1; i <= options.nodes; i++) {
        nodes.push({ id: `n${i}`, http: `http://127.0.0.1:${await freePort()}`, peerPort: await freePort(), dataDir: path.join(dir, `n${i}`), proc: null });
      }
      const cluster = new LocalCluster(dir, nodes, `bench-${randomBytes(6).toString('hex')}`, flags, options.keepData ?? false, options.execArgv ?? []);
      try {
        for (const n of nodes) await cluster.spawn(n);
        await cluster.writeClusterFile();
        await cluster.waitForLeader(options.leaderWaitMs ?? leaderWaitMsDefault);
        return cluster;
      } catch (error) {
        lastError = error;
        await cluster.destroy();
        // Only a port taken in between is worth a second try; any other exit is a bug to see.
        if (!(error instanceof NodeExitedError && error.portTaken)) throw error;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  get endpoints(): string[] {
    return this.nodes.map((n) => n.http);
  }

  get pids(): number[] {
    return this.nodes.flatMap((n) => (n.proc?.pid === undefined ? [] : [n.proc.pid]));
  }

  get clusterFile(): string {
    return path.join(this.dir, 'cluster.json');
  }

  node(id: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  private async spawn(n: ClusterNode): Promise<void> {
    await mkdir(n.dataDir, { recursive: true });
    const peers = this.nodes.map((x) => `${x.id}=127.0.0.1:${x.peerPort}`).join(',');
    const args = [
      ...nodeRuntimeFlags, ...this.execArgv, cliMainPath, 'node', '--id', n.id, '--cluster-id', this.clusterId, '--data-dir', n.dataDir,
      '--listen-http', n.http.replace('http://', ''), '--listen-peer', `127.0.0.1:${n.peerPort}`, '--listen-grpc', '127.0.0.1:0',
      // A short-lived cluster on loopback that the runner switches modes and injects faults in.
      '--peers', peers, '--log-level', 'warn', '--admin-routes', 'open', ...this.nodeFlags,
    ];
    const log = createWriteStream(path.join(this.dir, `${n.id}.log`), { flags: 'a' });
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    living.add(proc);
    proc.once('exit', () => living.delete(proc));
    // 'close', not 'exit': output can still be in the pipes when the process has exited.
    proc.once('close', () => log.end());
    proc.stdout.pipe(log, { end: false });
    proc.stderr.pipe(log, { end: false });
    n.proc = proc;
  }

  private async writeClusterFile(): Promise<void> {
    const file = {
      clusterId: this.clusterId,
      nodes: this.nodes.map((n) => ({ id: n.id, http: n.http, peer: `127.0.0.1:${n.peerPort}`, grpc: '', pid: n.proc?.pid ?? 0, dataDir: n.dataDir })),
    };
    await writeFile(this.clusterFile, JSON.stringify(file, null, 2) + '\n');
  }

  /** The leader every running node agrees on (same id and term), within `timeoutMs`. */
  async waitForLeader(timeoutMs = leaderWaitMsDefault, among: readonly string[] = this.running()): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const statuses = await Promise.all(among.map((id) => nodeStatus(this.node(id).http, 1000)));
        const leaders = statuses.filter((s) => s.role === 'leader');
        const leader = leaders[0];
        if (leaders.length === 1 && leader !== undefined && statuses.every((s) => s.leader?.id === leader.id && s.term === leader.term)) return leader.id;
        last = statuses.map((s) => `${s.id}:${s.role}@${s.term}`).join(' ');
      } catch (error) {
        last = String(error);
      }
      for (const id of among) {
        const proc = this.node(id).proc;
        if (proc === null || proc.exitCode !== null || proc.signalCode !== null) {
          if (proc !== null) await stdioClosed(proc);
          const logPath = path.join(this.dir, `${id}.log`);
          const tail = await readFile(logPath, 'utf8').then((t) => t.slice(-logTailBytes), () => '(no log)');
          throw new NodeExitedError(`node ${id} exited while waiting for a leader; the end of ${logPath}:\n${tail}`, tail.includes('EADDRINUSE'));
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no leader all of ${among.join(', ')} agree on within ${timeoutMs} ms (last: ${last})`);
  }

  running(): string[] {
    return this.nodes.filter((n) => n.proc !== null).map((n) => n.id);
  }

  /** SIGKILL one node: no flush, no goodbye. Resolves once it is gone. */
  async kill9(id: string): Promise<void> {
    await this.signal(this.node(id), 'SIGKILL');
  }

  /** Starts a stopped node again on its data and ports, and waits until it serves. */
  async restart(id: string, timeoutMs = 20_000): Promise<void> {
    const n = this.node(id);
    if (n.proc !== null) throw new Error(`${id} is still running`);
    await this.spawn(n);
    await this.writeClusterFile();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await nodeStatus(n.http, 1000);
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`${id} did not serve /status within ${timeoutMs} ms after a restart: ${String(error)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async signal(n: ClusterNode, signal: NodeJS.Signals): Promise<void> {
    if (n.proc === null) return;
    await stopChild(n.proc, signal, stopWaitMsMax);
    n.proc = null;
  }

  /** Stops every node cleanly (SIGTERM; SIGKILL after 10 s) and removes the data. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.signal(n, 'SIGTERM')));
    if (!this.keepData) await rm(this.dir, { recursive: true, force: true });
  }
}
