/**
 * Integration-test harness: real `quorumkv node` processes on 127.0.0.1 with ports
 * probed free at run time, real LMDB data directories under the OS temp dir, real
 * SIGKILL. Every wait is a condition polled against a deadline, never a bare sleep.
 * `destroy()` kills every process it started and removes the data.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { freePort, nodeRuntimeFlags, stdioClosed, stopChild } from '../bench/child.js';

/** The `quorumkv` command line (dist/cli/main.js), for tests that spawn it themselves. */
export const mainPath = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface TestNode {
  readonly id: string;
  readonly http: string;
  readonly peerPort: number;
  /** gRPC API address host:port. */
  readonly grpc: string;
  readonly dataDir: string;
  proc: ChildProcess | null;
  output: string;
  /** The end of what its previous process printed, kept across a restart for describe(). */
  earlierOutput?: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Record<string, string | string[] | undefined>;
}

/**
 * Every node process any test started. A failing test must never leave one behind: its
 * pipes would keep the test file's process (and CI) waiting forever. Whatever is still
 * running when the file's tests are done is SIGKILLed.
 */
const livingChildren = new Set<ChildProcess>();
const killLeftovers = (): void => {
  for (const child of livingChildren) child.kill('SIGKILL');
};
after(killLeftovers);
process.on('exit', killLeftovers);

const agent = new Agent({ connections: 128, keepAliveTimeout: 4000, headersTimeout: 15_000, bodyTimeout: 15_000 });

export async function http(url: string, method: 'GET' | 'PUT' | 'DELETE' | 'POST' = 'GET', body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await request(url, {
    method,
    dispatcher: agent,
    headers: body !== undefined ? { 'content-type': 'application/json', ...headers } : headers,
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { raw: text };
  }
  return { status: res.statusCode, body: parsed, headers: res.headers };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `quorumkv ARGS…` to completion (killed after `timeoutMs`), in `cwd` if given, with `env` added to the environment. */
export function runCli(args: readonly string[], timeoutMs: number, cwd?: string, env: Readonly<Record<string, string>> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [mainPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, ...(cwd !== undefined ? { cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `quorumkv up --nodes 3 --data-dir DIR` on free ports (what `npm start` runs); `output()` is all it printed. */
export function startUp(dataDir: string, extraArgs: readonly string[] = []): { proc: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, [mainPath, 'up', '--nodes', '3', '--data-dir', dataDir, '--base-port', '0', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  return { proc, output: () => out };
}

/** SIGTERM to `up` (which stops its nodes cleanly); resolves with its exit code. */
export async function stopUp(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  return exited;
}

export interface WaitOptions {
  readonly intervalMs?: number;
  /** What the checks last saw, said when the wait times out (who disagreed, and how). */
  readonly seen?: () => string;
}

/** Polls `check` until it returns a non-null value or the deadline passes (then throws). */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | null | undefined> | T | null | undefined, options: number | WaitOptions = {}): Promise<T> {
  const { intervalMs = 50, seen } = typeof options === 'number' ? { intervalMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const v = await check();
      if (v !== null && v !== undefined) return v;
      // An error from an earlier try would misname what the wait is stuck on now.
      lastError = null;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}${seen === undefined ? '' : `; last seen: ${seen()}`}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class TestCluster {
  private constructor(
    readonly dir: string,
    readonly nodes: TestNode[],
    private readonly flags: string[],
    private readonly clusterId: string,
  ) {}

  /**
   * Starts the nodes and waits until every one serves /health. Ports are probed free and
   * released before the nodes bind them, so a test running beside this one can take one in
   * between: a node that exits during start-up because its port was taken (EADDRINUSE)
   * makes the whole cluster start again on fresh ports (at most three attempts).
   */
  static async start(options: { nodes: number; flags?: string[] }): Promise<TestCluster> {
    let lastError: unknown = null;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const dir = await mkdtemp(path.join(tmpdir(), 'qkv-it-'));
      const nodes: TestNode[] = [];
      for (let i = 1; i <= options.nodes; i++) {
        nodes.push({ id: `n${i}`, http: `http://127.0.0.1:${await freePort()}`, peerPort: await freePort(), grpc: `127.0.0.1:${await freePort()}`, dataDir: path.join(dir, `n${i}`), proc: null, output: '' });
      }
      const cluster = new TestCluster(dir, nodes, options.flags ?? [], `it-${path.basename(dir)}`);
      for (const n of nodes) cluster.spawn(n);
      const deadline = Date.now() + 30_000;
      let failure: string | null = null;
      for (;;) {
        const exited = nodes.find((n) => n.proc === null || n.proc.exitCode !== null || n.proc.signalCode !== null);
        if (exited !== undefined) {
          if (exited.proc !== null) await stdioClosed(exited.proc);
          failure = `${exited.id} exited during start-up:\n${exited.output.slice(-2000)}`;
          // Only a port taken in between is worth a second try; any other exit is a bug to see.
          if (!exited.output.includes('EADDRINUSE')) {
            await cluster.destroy();
            throw new Error(failure);
          }
          break;
        }
        const answers = await Promise.all(nodes.map((n) => http(`${n.http}/health`).then((r) => r.status === 200, () => false)));
        if (answers.every(Boolean)) return cluster;
        if (Date.now() > deadline) {
          await cluster.destroy();
          throw new Error(`nodes did not serve /health within 30 s:\n${cluster.describe()}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      lastError = new Error(failure);
      await cluster.destroy();
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  node(id: string): TestNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** `bootstrap: false`: a joining node, told no --peers (it learns the members from the cluster). */
  private spawn(n: TestNode, extraFlags: readonly string[] = [], options: { readonly bootstrap: boolean } = { bootstrap: true }): void {
    const peers = this.nodes.map((x) => `${x.id}=127.0.0.1:${x.peerPort}`).join(',');
    // Node's flags as every documented way of running a node gives them (bench/child.ts).
    const args = [
      ...nodeRuntimeFlags, mainPath, 'node', '--id', n.id, ...(options.bootstrap ? ['--cluster-id', this.clusterId] : []), '--data-dir', n.dataDir,
      '--listen-http', n.http.replace('http://', ''), '--listen-peer', `127.0.0.1:${n.peerPort}`, '--listen-grpc', n.grpc, ...(options.bootstrap ? ['--peers', peers] : []),
      // Admin routes open: these tests drive members, modes and faults on loopback; the gate
      // itself is tested with tokens in security.test.ts (a later --admin-routes wins).
      '--log-level', 'warn', '--admin-routes', 'open', ...this.flags, ...extraFlags,
    ];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    livingChildren.add(proc);
    proc.once('exit', () => livingChildren.delete(proc));
    // A restarted node's earlier log says how it stopped (a slow stage, a failed hand-over).
    if (n.output !== '') n.earlierOutput = n.output.slice(-3000);
    n.output = '';
    const keep = (chunk: Buffer): void => {
      n.output = (n.output + chunk.toString()).slice(-20_000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    n.proc = proc;
  }

  /**
   * A new node (fresh ports and an empty data directory) that joins the running cluster
   * through `via`'s HTTP API (`quorumkv node --join`). Resolves once it serves /health.
   */
  async join(via: string, extraFlags: readonly string[] = [], id = `n${this.nodes.length + 1}`): Promise<TestNode> {
    const n: TestNode = { id, http: `http://127.0.0.1:${await freePort()}`, peerPort: await freePort(), grpc: `127.0.0.1:${await freePort()}`, dataDir: path.join(this.dir, `${id}-${this.nodes.length}`), proc: null, output: '' };
    const existing = this.nodes.findIndex((x) => x.id === id);
    if (existing >= 0) this.nodes.splice(existing, 1, n);
    else this.nodes.push(n);
    this.spawn(n, ['--join', this.node(via).http, ...extraFlags], { bootstrap: false });
    await waitFor(`${id} to serve /health`, 60_000, async () => {
      if (n.proc?.exitCode !== null) throw new Error(`${id} exited while joining:\n${n.output.slice(-4_000)}`);
      return (await http(`${n.http}/health`).catch(() => ({ status: 0 }))).status === 200 ? true : null;
    });
    return n;
  }

  /** Starts a stopped node again; `extraFlags` go after the cluster's own (later flags win). */
  async restart(id: string, extraFlags: readonly string[] = []): Promise<void> {
    const n = this.node(id);
    if (n.proc !== null) throw new Error(`${id} is still running`);
    this.spawn(n, extraFlags);
    try {
      await waitFor(`${id} to serve /health`, 20_000, async () => ((await http(`${n.http}/health`)).status === 200 ? true : null));
    } catch (error) {
      // What the node printed is usually the only clue to why it did not come back.
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n${id} exit=${String((n.proc as ChildProcess | null)?.exitCode)} output:\n${n.output.slice(-4_000)}`);
    }
  }

  /** Starts a stopped node that is expected to refuse to run: resolves with its exit code and output. */
  async startExpectingExit(id: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
    const n = this.node(id);
    if (n.proc !== null) throw new Error(`${id} is still running`);
    this.spawn(n);
    const proc = n.proc as ChildProcess | null;
    if (proc === null) throw new Error(`${id} did not start`);
    const code = await waitFor(`${id} to exit`, timeoutMs, () => (proc.exitCode !== null ? proc.exitCode : null));
    await stdioClosed(proc);
    n.proc = null;
    return { code, output: n.output };
  }

  /** SIGKILL: no flush, no goodbye. Resolves once the process is gone. */
  async kill9(id: string): Promise<void> {
    await this.signal(id, 'SIGKILL');
  }

  /** SIGTERM: a clean stop (the seeds' die(clean)). */
  async stop(id: string): Promise<void> {
    await this.signal(id, 'SIGTERM');
  }

  private async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const n = this.node(id);
    if (n.proc === null) return;
    await stopChild(n.proc, signal);
    n.proc = null;
  }

  /** Every key of `id`'s store with value and version, paged through /debug/store, as JSON. */
  async dumpStore(id: string): Promise<string> {
    const items: unknown[] = [];
    let after: string | null = null;
    do {
      const res = await http(`${this.node(id).http}/debug/store?limit=1000${after !== null ? `&after=${encodeURIComponent(after)}` : ''}`);
      if (res.status !== 200) throw new Error(`GET /debug/store on ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      items.push(...(res.body['items'] as unknown[]));
      after = res.body['next'] as string | null;
    } while (after !== null);
    return JSON.stringify(items);
  }

  async status(id: string): Promise<Record<string, unknown>> {
    return (await http(`${this.node(id).http}/status`)).body;
  }

  /** The id of the leader that every running node agrees on. */
  async waitForLeader(timeoutMs = 15_000, among: string[] = this.nodes.filter((n) => n.proc !== null).map((n) => n.id)): Promise<string> {
    let said = '';
    const leaderOf = (s: Record<string, unknown>): string | undefined => (s['leader'] as { id?: string } | null)?.id;
    return waitFor(
      'a leader all running nodes agree on',
      timeoutMs,
      async () => {
        const statuses = await Promise.all(among.map((id) => this.status(id).catch((error: unknown) => ({ id, error: String(error) }) as Record<string, unknown>)));
        said = statuses.map((s) => `${String(s['id'])}: ${String(s['error'] ?? `${String(s['role'])} in term ${String(s['term'])}, leader ${leaderOf(s) ?? 'none'}`)}`).join('; ');
        const leaders = statuses.filter((s) => s['role'] === 'leader');
        if (leaders.length !== 1) return null;
        const leaderId = leaders[0]?.['id'] as string;
        const term = leaders[0]?.['term'];
        return statuses.every((s) => leaderOf(s) === leaderId && s['term'] === term) ? leaderId : null;
      },
      { seen: () => said },
    );
  }

  async setFaults(id: string, rules: Record<string, unknown>): Promise<void> {
    const res = await http(`${this.node(id).http}/admin/faults`, 'PUT', rules);
    if (res.status !== 200) throw new Error(`setting faults on ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /** Set by destroy(): load loops stop on it, so a failed test never leaves one spinning. */
  destroyed = false;

  /** Kills every process (SIGKILL) and removes the data directory. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    await Promise.all(this.nodes.map((n) => this.kill9(n.id)));
    await rm(this.dir, { recursive: true, force: true });
  }

  describe(): string {
    return this.nodes
      .map((n) => `${n.earlierOutput === undefined ? '' : `--- ${n.id} (its process before the last restart)\n${n.earlierOutput}\n`}--- ${n.id} (${n.proc ? 'running' : 'stopped'})\n${n.output.slice(-3000)}`)
      .join('\n');
  }
}
