/**
 * The systems `quorumkv bench` measures, each opened the same way: a cluster started for
 * the run (or a running one), a BenchTarget driving it along the path the flags ask for
 * (client library or plain requests, which member `--to` names), the server processes
 * whose CPU, disk and memory are measured, and a `stop` that ends what was started.
 *
 * - quorumkv: the client library (HTTP or gRPC) or plain HTTP (`--plain`, `--to`);
 * - etcd: the etcd3 client (gRPC), or with `--plain` over HTTP its JSON gateway; to the
 *   leader member, a follower or every member (`--to`);
 * - redis: a primary and two replicas, each write followed by WAIT 2, reads from the primary.
 *
 * Must never: leave a started cluster running when opening fails halfway.
 */

import { access } from 'node:fs/promises';
import type { Consistency } from '../client/index.js';
import { LocalCluster, nodeStatus } from './cluster.js';
import { EtcdCluster, etcdTarget, findEtcd } from './etcd.js';
import { etcdGatewayTarget } from './etcd-gateway.js';
import type { ServerProcess } from './footprint.js';
import type { To } from './node-choice.js';
import { plainTarget } from './plain-target.js';
import { RedisCluster, findRedis, redisTarget } from './redis.js';
import { quorumKvTarget } from './target.js';
import type { BenchTarget } from './target.js';

export type SystemName = 'quorumkv' | 'etcd' | 'redis';
export const comparedSystems = ['etcd', 'redis'] as const;
export type ComparedSystem = (typeof comparedSystems)[number];

/** What opening a system needs from the bench's options. */
export interface SystemOptions {
  readonly concurrency: readonly number[];
  readonly deadlineMs: number;
  readonly readConsistency: Consistency;
  /** Where the client sends linearizable reads (ConnectOptions.linearizableReadsFrom). */
  readonly linearizableReadsFrom?: 'leader' | 'any';
  /** ConnectOptions.batching (default true). */
  readonly batching?: boolean;
  /** No client library: one plain HTTP request per operation (quorumkv: plain-target.ts; etcd: its JSON gateway). */
  readonly plain?: boolean;
  /**
   * Where operations go: the leader, a follower or every node in turn. quorumkv plain:
   * null = the leader; the client library finds the leader itself (follower is refused);
   * etcd: the member(s) so chosen, null = every member; redis: always the primary.
   */
  readonly to?: To | null;
  /** The client library's transport (default http); etcd keeps its etcd3 client (gRPC) unless --plain. */
  readonly transport?: 'http' | 'grpc';
  /** A running cluster; null: start one with `nodes` and `nodeFlags`. */
  readonly endpoints: readonly string[] | null;
  /** Data directories of a running cluster's nodes by HTTP URL (from its cluster.json), for disk figures. */
  readonly dataDirs?: Readonly<Record<string, string>>;
  readonly nodes: number;
  readonly nodeFlags: readonly string[];
  readonly etcdEndpoints: readonly string[] | null;
  readonly etcdBin: string | null;
  readonly redisBin?: string | null;
  /** Install a missing etcd-server or redis-server with apt-get (as root). */
  readonly installServers: boolean;
  /** Write a V8 CPU profile of every node the bench starts into this directory (`node --cpu-prof`). */
  readonly profileDir: string | null;
}

export interface SystemRun {
  readonly target: BenchTarget;
  /** The server processes on this machine (with their data directories when known) for CPU, disk and memory figures. */
  readonly servers: readonly ServerProcess[];
  /** Nodes whose /metrics give fsync figures (quorumkv's HTTP URLs; none for the others). */
  readonly metricsUrls: readonly string[];
  readonly describe: Record<string, unknown>;
  stop(): Promise<void>;
}

/** The nodes of a running cluster that run on this machine: their pids from /status. */
async function localServers(endpoints: readonly string[], dataDirs: Readonly<Record<string, string>>): Promise<ServerProcess[]> {
  const servers: ServerProcess[] = [];
  for (const e of endpoints) {
    try {
      const url = new URL(e.includes('://') ? e : `http://${e}`);
      if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) continue;
      const s = await nodeStatus(url.origin, 2000);
      await access(`/proc/${s.pid}/stat`);
      servers.push({ name: s.id, pid: s.pid, dataDir: dataDirs[e] ?? dataDirs[url.origin] ?? null });
    } catch {
      // not local or not reachable: its CPU, disk and memory are not measured
    }
  }
  return servers;
}

/** The nodes' gRPC addresses, as their /status names them. */
async function grpcEndpoints(http: readonly string[]): Promise<string[]> {
  // GET /status names the node's own gRPC address beside the document's fields.
  const addresses = await Promise.all(http.map(async (url) => ((await nodeStatus(url, 5_000)) as { grpc?: unknown }).grpc));
  const found = addresses.filter((a): a is string => typeof a === 'string' && a !== '');
  if (found.length === 0) throw new Error('no node serves gRPC (--listen-grpc off?)');
  return found;
}

function connections(o: SystemOptions): number {
  return Math.max(64, ...o.concurrency);
}

async function quorumKvConnect(o: SystemOptions, endpoints: readonly string[]): Promise<BenchTarget> {
  if (o.plain === true) return plainTarget({ endpoints, to: o.to ?? 'leader', connectionsPerEndpoint: connections(o), deadlineMs: o.deadlineMs });
  if (o.to === 'follower') throw new Error('the client library sends writes to the leader it finds: --to follower needs --plain');
  return quorumKvTarget({
    endpoints: o.transport === 'grpc' ? await grpcEndpoints(endpoints) : endpoints,
    transport: o.transport ?? 'http',
    connectionsPerEndpoint: connections(o),
    readConsistency: o.readConsistency,
    linearizableReadsFrom: o.linearizableReadsFrom ?? 'leader',
    batching: o.batching ?? true,
    deadlineMs: o.deadlineMs,
  });
}

export async function openQuorumKv(o: SystemOptions, print: (t: string) => void): Promise<SystemRun> {
  if (o.endpoints !== null) {
    const target = await quorumKvConnect(o, o.endpoints);
    const servers = await localServers(o.endpoints, o.dataDirs ?? {});
    return {
      target,
      servers,
      metricsUrls: o.endpoints,
      describe: { endpoints: o.endpoints, mode: await modeOf(o.endpoints), path: target.path },
      stop: () => target.close(),
    };
  }
  print(`starting a ${o.nodes}-node quorumkv cluster on 127.0.0.1${o.nodeFlags.length > 0 ? ` (${o.nodeFlags.join(' ')})` : ''}…\n`);
  const execArgv = o.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`];
  const cluster = await LocalCluster.start({ nodes: o.nodes, nodeFlags: o.nodeFlags, execArgv });
  return onServersStarted(
    () => cluster.destroy(),
    () => quorumKvConnect(o, cluster.endpoints),
    async (target) => ({
      servers: cluster.nodes.map((n) => ({ name: n.id, pid: n.proc?.pid ?? null, dataDir: n.dataDir })),
      metricsUrls: cluster.endpoints,
      describe: { nodes: o.nodes, nodeFlags: o.nodeFlags, mode: await modeOf(cluster.endpoints), path: target.path },
    }),
  );
}

/**
 * A run on servers this bench started: connects to them, and stops them after the target
 * closes, or at once if connecting fails.
 */
async function onServersStarted(
  stopServers: () => Promise<void>,
  connect: () => Promise<BenchTarget>,
  describe: (target: BenchTarget) => Promise<Omit<SystemRun, 'target' | 'stop'>>,
): Promise<SystemRun> {
  try {
    const target = await connect();
    return {
      target,
      ...(await describe(target)),
      stop: async () => {
        await target.close();
        await stopServers();
      },
    };
  } catch (error) {
    await stopServers();
    throw error;
  }
}

async function modeOf(endpoints: readonly string[]): Promise<unknown> {
  for (const e of endpoints) {
    try {
      const s = await nodeStatus(e.includes('://') ? e : `http://${e}`, 2000);
      return { writeQuorum: s.mode.writeQuorum, topology: s.mode.topology, members: s.peers.length + 1 };
    } catch {
      // try the next
    }
  }
  return null;
}

/** etcd's side of a comparison: its JSON gateway with --plain (over HTTP), else the etcd3 client. */
function etcdConnect(o: SystemOptions, endpoints: readonly string[]): Promise<BenchTarget> {
  return o.plain === true && o.transport !== 'grpc'
    ? etcdGatewayTarget({ endpoints, to: o.to ?? null, connectionsPerEndpoint: connections(o), deadlineMs: o.deadlineMs })
    : etcdTarget(endpoints, o.to ?? null);
}

export async function openEtcd(o: SystemOptions, print: (t: string) => void): Promise<SystemRun> {
  if (o.etcdEndpoints !== null) {
    const target = await etcdConnect(o, o.etcdEndpoints);
    return { target, servers: [], metricsUrls: [], describe: { endpoints: o.etcdEndpoints, path: target.path }, stop: () => target.close() };
  }
  const binary = await findEtcd(o.etcdBin, o.installServers, (l) => print(`${l}\n`));
  print('starting a 3-member etcd cluster on 127.0.0.1…\n');
  const cluster = await EtcdCluster.start(binary, 3);
  return onServersStarted(
    () => cluster.stop(),
    () => etcdConnect(o, cluster.endpoints),
    async (target) => ({ servers: cluster.servers, metricsUrls: [], describe: { members: 3, binary, path: target.path } }),
  );
}

export async function openRedis(o: SystemOptions, print: (t: string) => void): Promise<SystemRun> {
  const binary = await findRedis(o.redisBin ?? null, o.installServers, (l) => print(`${l}\n`));
  print('starting redis on 127.0.0.1: a primary and 2 replicas, appendfsync always…\n');
  const cluster = await RedisCluster.start(binary);
  return onServersStarted(
    () => cluster.stop(),
    () => redisTarget({ primary: cluster.primary, connections: connections(o), deadlineMs: o.deadlineMs }),
    async (target) => ({ servers: cluster.servers, metricsUrls: [], describe: { members: 3, binary, appendfsync: 'always', waitReplicas: 2, path: target.path } }),
  );
}

/** Opens `system` as the options say. */
export function openSystem(system: SystemName, o: SystemOptions, print: (t: string) => void): Promise<SystemRun> {
  return system === 'etcd' ? openEtcd(o, print) : system === 'redis' ? openRedis(o, print) : openQuorumKv(o, print);
}
