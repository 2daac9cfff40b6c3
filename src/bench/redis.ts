/**
 * Redis as a comparison system (`--compare redis`): Debian's `redis-server` (Redis 7) as a
 * primary and two replicas on 127.0.0.1 with free ports, each with `appendonly yes` and
 * `appendfsync always` (every write in the append-only file and fsynced before the answer)
 * and its data in a temporary directory; and a BenchTarget driving it through `ioredis` (a
 * devDependency, loaded only when a comparison runs).
 *
 * Durability like quorumkv's majority: each write is followed by `WAIT 2 <deadline>` on the
 * same connection (sent with the write, one round trip), so it is answered only once both
 * replicas have it; fewer than two acknowledgements within the deadline count as an error
 * (`wait_timeout`). WAIT blocks its connection, so every closed-loop client has a
 * connection of its own, taken from a pool for each operation. Reads go to the primary
 * (Redis's replicas may lag; only the primary's reads see every acknowledged write).
 * Transactions are one Lua script (atomic on the primary), then WAIT.
 *
 * Must never: leave a redis-server or its data behind (`stop()` kills every process and
 * removes the directory; processes are SIGKILLed if this process exits first).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type * as IoRedisModule from 'ioredis';
import { freePort, killOnExit, stopChild } from './child.js';
import { findPackagedBinary } from './debian-package.js';
import type { ServerProcess } from './footprint.js';
import { TargetError } from './target.js';
import type { BenchTarget } from './target.js';

const redisBinaryDefault = '/usr/bin/redis-server';
const readyWaitMs = 30_000;
/** Replicas a write waits for: both, as a 3-member majority-plus quorum would. */
const replicasWaited = 2;

/** Finds redis-server, installing Debian's redis-server with apt-get when allowed. */
export function findRedis(binary: string | null, install: boolean, log: (line: string) => void): Promise<string> {
  return findPackagedBinary({ binary, candidates: [redisBinaryDefault, '/usr/local/bin/redis-server'], aptPackage: 'redis-server', install, log, otherwise: '--redis-bin PATH' });
}

async function loadIoRedis(): Promise<typeof IoRedisModule> {
  try {
    return await import('ioredis');
  } catch {
    throw new Error('the redis comparison needs the ioredis package (a devDependency): run npm install in the quorumkv checkout');
  }
}

type Connection = IoRedisModule.Redis;

export class RedisCluster {
  private constructor(
    readonly dir: string,
    readonly primary: { host: string; port: number },
    private readonly procs: { name: string; proc: ChildProcess; dataDir: string }[],
  ) {}

  get servers(): ServerProcess[] {
    return this.procs.map((p) => ({ name: p.name, pid: p.proc.pid ?? null, dataDir: p.dataDir }));
  }

  /** Starts a primary and `replicas` replicas and waits until a write reaches every replica. */
  static async start(binary: string, replicas = replicasWaited): Promise<RedisCluster> {
    const dir = await mkdtemp(path.join(tmpdir(), 'qkv-redis-'));
    const host = '127.0.0.1';
    const primaryPort = await freePort();
    const procs: { name: string; proc: ChildProcess; dataDir: string }[] = [];
    const cluster = new RedisCluster(dir, { host, port: primaryPort }, procs);
    try {
      const members = [{ name: 'primary', port: primaryPort }];
      for (let i = 1; i <= replicas; i++) members.push({ name: `replica${i}`, port: await freePort() });
      for (const m of members) {
        const dataDir = path.join(dir, m.name);
        await mkdir(dataDir);
        const args = [
          '--port', String(m.port), '--bind', host, '--dir', dataDir, '--logfile', path.join(dir, `${m.name}.log`),
          '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--protected-mode', 'no',
          ...(m.name === 'primary' ? [] : ['--replicaof', host, String(primaryPort)]),
        ];
        const proc = spawn(binary, args, { stdio: 'ignore' });
        killOnExit(proc);
        procs.push({ name: m.name, proc, dataDir });
      }
      await cluster.waitReplicated(replicas);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Until a probe write is acknowledged by `replicas` replicas (they have synced). */
  private async waitReplicated(replicas: number): Promise<void> {
    const { Redis } = await loadIoRedis();
    const deadline = Date.now() + readyWaitMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const p of this.procs) if (p.proc.exitCode !== null) throw new Error(`redis-server ${p.name} exited (code ${p.proc.exitCode}); see ${this.dir}/${p.name}.log`);
      const conn = new Redis({ ...this.primary, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
      conn.on('error', () => undefined);
      try {
        await conn.connect();
        await conn.set('__qkv_bench_probe', '1');
        const acked = await conn.wait(replicas, 1000);
        if (acked >= replicas) return;
        last = `${acked} of ${replicas} replicas acknowledged`;
      } catch (error) {
        last = String(error);
      } finally {
        conn.disconnect();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`redis did not replicate to ${replicas} replicas within ${readyWaitMs} ms (last: ${last}); see the logs in ${this.dir}`);
  }

  /** Kills every process and removes the data. */
  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopChild(p.proc, 'SIGKILL')));
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface RedisTargetOptions {
  readonly primary: { host: string; port: number };
  /** Connections: at least the run's highest concurrency (WAIT blocks its connection). */
  readonly connections: number;
  readonly deadlineMs: number;
}

/** If A exists, set A and B to the value; else read A: the bench's `txn`, atomically on the primary. */
const txnScript = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1 else return redis.call('GET', KEYS[1]) end";

export async function redisTarget(o: RedisTargetOptions): Promise<BenchTarget> {
  const { Redis } = await loadIoRedis();
  const all: Connection[] = [];
  for (let i = 0; i < o.connections; i++) {
    const conn = new Redis({ ...o.primary, lazyConnect: true, commandTimeout: o.deadlineMs, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    conn.on('error', () => undefined); // a failed command rejects on its own; the event would only repeat it
    all.push(conn);
  }
  try {
    await Promise.all(all.map((c) => c.connect()));
  } catch (error) {
    for (const c of all) c.disconnect();
    throw error;
  }
  const free = [...all];
  /** Runs `use` on a connection of its own, given back to the pool afterwards. */
  const withConnection = async <T>(use: (conn: Connection) => Promise<T>): Promise<T> => {
    const conn = free.pop();
    if (conn === undefined) throw new TargetError('no_connection', `more operations in flight than the ${o.connections} connections`);
    try {
      return await use(conn);
    } finally {
      free.push(conn);
    }
  };
  // The write and its WAIT leave together; WAIT then answers once both replicas have it.
  const durably = (write: (conn: Connection) => Promise<unknown>): Promise<unknown> =>
    withConnection(async (conn) => {
      const [answer, acked] = await Promise.all([write(conn), conn.wait(replicasWaited, o.deadlineMs)]);
      if (acked < replicasWaited) throw new TargetError('wait_timeout', `WAIT ${replicasWaited}: ${acked} replicas acknowledged within ${o.deadlineMs} ms`);
      return answer;
    });
  return {
    system: 'redis',
    path: `ioredis (a connection per client) to the primary ${o.primary.host}:${o.primary.port}; each write then WAIT ${replicasWaited}; reads from the primary`,
    put: (key, value) => durably((c) => c.set(key, value)),
    get: (key) => withConnection((conn) => conn.get(key)),
    txn: (a, b, value) => durably((c) => c.eval(txnScript, 2, a, b, value)),
    close: async () => {
      await Promise.all(all.map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
}
