/**
 * `quorumkv up`: a local cluster of N nodes on 127.0.0.1, each a child process running
 * `quorumkv node` with its data under DIR/<id>. Waits for a leader, prints each node's
 * URL, writes DIR/cluster.json, and on Ctrl-C / SIGTERM stops every node cleanly.
 * Running it again on the same DIR resumes from disk (same cluster id, same data).
 * A node that dies is reported, never restarted by itself: its supervisor endpoint
 * (supervisor.ts, URL in cluster.json and in each node's --supervisor) restarts it when
 * asked (`quorumkv fault restart`, the dashboard), with the arguments of its first start.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { createCertificates } from './certs.js';
import { freePort } from '../bench/child.js';
import { NodeProcesses } from './node-processes.js';
import { startSupervisor } from './supervisor.js';
import { hasLmdbStore } from '../storage/lmdb.js';
import { adminTokenFileName, readClusterFile, useClusterTls, writeClusterFile, type ClusterFile, type ClusterFileNode } from './cluster-file.js';
import { newToken } from '../api/auth-changes.js';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { ConfigError, nodeFlags } from './config.js';

/** Node flags `up` chooses itself, per node. */
const chosenPerNode = ['id', 'peers', 'listen-http', 'listen-peer', 'listen-grpc', 'cluster-id', 'data-dir', 'supervisor'];

export const upCommand: CommandSpec = {
  name: 'up',
  summary: 'run a local cluster of N nodes on 127.0.0.1 until Ctrl-C (what npm start runs)',
  flags: {
    nodes: { kind: 'value', help: 'how many nodes (1..15); more than DIR holds: the new ones join the running cluster', default: '3' },
    add: { kind: 'value', help: 'join this many new nodes to the cluster in DIR (each added as a learner, promoted once caught up)', default: '0' },
    'data-dir': { kind: 'value', help: 'one directory per node under it, and cluster.json', default: './data' },
    'base-port': { kind: 'value', help: 'HTTP on P, P+1, …; peers on P+100, …; gRPC on P+200, … (0: free ports)', default: '7001' },
    tls: { kind: 'bool', help: 'HTTPS and gRPC over TLS for clients, mutual TLS between peers, with certificates made under DIR/tls (quorumkv certs); the CLI trusts DIR/tls/ca.pem by itself. A cluster that ran with TLS resumes with it', default: 'false' },
  },
  passThrough: Object.fromEntries(Object.entries(nodeFlags).filter(([name]) => !chosenPerNode.includes(name))),
  epilog: `Waits for a leader, writes DIR/cluster.json (the client commands read it) and runs until
Ctrl-C, which stops every node cleanly. Running it again on the same DIR resumes from disk;
with --add N (or a larger --nodes) N new nodes join the cluster, one at a time.`,
};

const mainPath = fileURLToPath(new URL('./main.js', import.meta.url));
const leaderWaitMsMax = 30_000;
const stopWaitMsMax = 10_000;


/**
 * DATA_DIR/admin-token: the cluster's admin token, made once (mode 0600, readable by this
 * user only) and kept across restarts; every node gets it with --admin-token-file.
 */
async function ensureAdminToken(dataDir: string): Promise<string> {
  const file = path.join(dataDir, adminTokenFileName);
  try {
    await writeFile(file, `${newToken()}\n`, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return file;
}

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return res.body.json();
}

/**
 * --tls: certificates under DIR/tls (only what is missing) and each node's TLS flags. A
 * cluster that ran with TLS resumes with it even without the flag: its peers speak mutual
 * TLS and its cluster file's clients expect https://, so a plain restart could not re-form it.
 */
async function prepareTls(dataDir: string, ids: readonly string[], asked: boolean, previous: ClusterFile | null): Promise<{ tls: boolean; tlsDir: string; tlsFlags: (id: string) => string[] }> {
  const tls = asked || (previous !== null && previous.nodes.some((n) => n.http.startsWith('https://')));
  const tlsDir = path.join(dataDir, 'tls');
  if (tls && !asked) process.stdout.write(`resuming with TLS, as the cluster in ${dataDir} ran (certificates in ${tlsDir})\n`);
  if (tls) {
    await createCertificates({ outDir: tlsDir, nodes: ids, hosts: ['127.0.0.1', 'localhost'], days: 825 });
    // This process's own requests (waiting for the leader, the members) trust the new CA and
    // present the client certificate (nodes given --tls-client-ca ask for one), as every
    // command does with this cluster file.
    await useClusterTls(new Map([['cluster-file', path.join(dataDir, 'cluster.json')]]));
  }
  const tlsFlags = (id: string): string[] => {
    if (!tls) return [];
    const cert = path.join(tlsDir, `${id}.pem`);
    const key = path.join(tlsDir, `${id}-key.pem`);
    return ['--tls-cert', cert, '--tls-key', key, '--peer-tls-cert', cert, '--peer-tls-key', key, '--peer-tls-ca', path.join(tlsDir, 'ca.pem')];
  };
  return { tls, tlsDir, tlsFlags };
}

export async function runUp(argv: string[]): Promise<number> {
  const parsed = parseArgs(upCommand, argv);
  if (parsed === null) return 0;
  const nodes = Number(parsed.values.get('nodes'));
  const add = Number(parsed.values.get('add'));
  const dataDir = parsed.values.get('data-dir') ?? './data';
  const basePort = Number(parsed.values.get('base-port'));
  const passThrough = parsed.passed;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 15) throw new ConfigError(`--nodes must be 1..15, got ${parsed.values.get('nodes')}`);
  if (!Number.isInteger(add) || add < 0 || add > 14) throw new ConfigError(`--add must be 0..14, got ${parsed.values.get('add')}`);
  if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65000) throw new ConfigError(`--base-port must be 0..65000, got ${parsed.values.get('base-port')}`);

  await mkdir(dataDir, { recursive: true });
  const tokenFile = await ensureAdminToken(dataDir);
  // A restart in the same directory keeps the cluster's identity and its members; nodes
  // beyond them (a larger --nodes, or --add) join the running cluster as new members.
  const previous = await readClusterFile(path.join(dataDir, 'cluster.json')).catch(() => null);
  const clusterId = previous?.clusterId ?? randomBytes(8).toString('hex');
  const existing = await nodesWithData(dataDir);
  const total = Math.max(nodes, existing) + add;
  if (total > 15) throw new ConfigError(`a local cluster has at most 15 nodes; this one would have ${total}`);
  const ids = Array.from({ length: total }, (_, i) => `n${i + 1}`);
  // Nodes beyond those whose data exists join the cluster those form (none exists: all bootstrap).
  const joining = existing === 0 ? [] : ids.slice(existing);
  const ports = await Promise.all(
    ids.map(async (_, i) => ({
      http: basePort === 0 ? await freePort() : basePort + i,
      peer: basePort === 0 ? await freePort() : basePort + 100 + i,
      grpc: basePort === 0 ? await freePort() : basePort + 200 + i,
    })),
  );
  const { tls, tlsDir, tlsFlags } = await prepareTls(dataDir, ids, parsed.values.get('tls') === 'true', previous);
  const scheme = tls ? 'https' : 'http';
  const peersFlag = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]?.peer}`).join(',');

  const { info, clusterFile, processes, supervisor, start, stopAll: stopCluster } = await superviseNodes({ dataDir, clusterId, tokenFile, scheme, ports, nodeFlags: (id) => [...tlsFlags(id), ...passThrough] });
  for (const [i, id] of ids.entries()) if (!joining.includes(id)) await start(id, i, ['--cluster-id', clusterId, '--peers', peersFlag]);
  await clusterFile.write(supervisor.url);

  let stopping = false;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    await stopCluster();
  };
  const nodeList = (): ClusterFileNode[] => [...info.values()];
  let leader = await waitForLeader(nodeList(), () => processes.aliveCount === 0);
  if (leader !== null && joining.length > 0) {
    // One at a time, each promoted once caught up: the cluster keeps a majority of caught-up voters.
    for (const id of joining) {
      const via = info.get(leader)?.http as string;
      await start(id, ids.indexOf(id), ['--join', via, '--promote']);
      await clusterFile.write(supervisor.url);
      if (!(await waitForVoter(via, id, () => !processes.isAlive(id)))) {
        process.stderr.write(`${id} did not become a voter within ${leaderWaitMsMax / 1000} s; see ${path.join(dataDir, `${id}.log`)}\n`);
        break;
      }
      leader = (await waitForLeader(nodeList(), () => processes.aliveCount === 0)) ?? leader;
    }
  }
  if (leader === null) {
    process.stderr.write(`no leader was elected within ${leaderWaitMsMax / 1000} s; see the logs in ${dataDir}/*.log\n`);
    await stopAll();
    return 1;
  }
  process.stdout.write(`quorumkv cluster ${clusterId} is up (data in ${dataDir}):\n`);
  for (const n of nodeList()) process.stdout.write(`  ${n.id}  ${n.http}  grpc ${n.grpc}${n.id === leader ? '  (leader)' : ''}${joining.includes(n.id) ? '  (joined)' : ''}\n`);
  const cacert = tls ? ` --cacert ${path.join(tlsDir, 'ca.pem')}` : '';
  process.stdout.write(`try:  curl${cacert} -X PUT ${nodeList()[0]?.http}/kv/hello -H 'content-type: application/json' -d '{"value":"world"}'\n`);
  process.stdout.write(`      curl${cacert} ${nodeList()[0]?.http}/kv/hello\n`);
  process.stdout.write(`admin routes need the token in ${tokenFile} (quorumkv mode, member, fault and dashboard read it from there)\nCtrl-C stops the cluster.\n`);

  return new Promise<number>((resolve) => {
    const onSignal = (): void => {
      if (stopping) return;
      process.stdout.write('stopping the cluster…\n');
      stopAll().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

interface Ports {
  readonly http: number;
  readonly peer: number;
  readonly grpc: number;
}

/**
 * The node processes (node-processes.ts) and their supervisor endpoint, with the cluster
 * file kept current: `start` runs a node (its arguments kept for a restart), `stopAll`
 * stops every node, then the supervisor, and takes the supervisor out of the file.
 */
async function superviseNodes(o: {
  readonly dataDir: string;
  readonly clusterId: string;
  readonly tokenFile: string;
  readonly scheme: string;
  readonly ports: readonly Ports[];
  /** Flags after the ones `up` chooses per node: TLS, then the user's pass-through flags. */
  readonly nodeFlags: (id: string) => readonly string[];
}) {
  const info = new Map<string, ClusterFileNode>();
  const clusterFile = fileWriter(o.dataDir, o.clusterId, info);
  const processes = new NodeProcesses({
    mainPath,
    dataDir: o.dataDir,
    onExit: (id, how, expected) => {
      if (!expected) process.stdout.write(`${id} exited (${how}); not restarted: quorumkv fault restart ${id} (or the dashboard) starts it again. See ${path.join(o.dataDir, `${id}.log`)}\n`);
    },
    onStart: (id, pid) => {
      const known = info.get(id);
      if (known === undefined || known.pid === pid) return;
      info.set(id, { ...known, pid }); // `fault kill` signals the pid the file names
      clusterFile.write(supervisor.url).catch((error: unknown) => process.stderr.write(`could not rewrite ${path.join(o.dataDir, 'cluster.json')}: ${String(error)}\n`));
    },
  });
  const supervisor = await startSupervisor({ processes, adminToken: (await readFile(o.tokenFile, 'utf8')).trim(), httpOf: (id) => info.get(id)?.http ?? null });
  const start = async (id: string, i: number, how: readonly string[]): Promise<void> => {
    const nodeDir = path.join(o.dataDir, id);
    await mkdir(nodeDir, { recursive: true });
    const p = o.ports[i] as Ports;
    const chosen = ['--id', id, '--data-dir', nodeDir, '--listen-http', `127.0.0.1:${p.http}`, '--listen-peer', `127.0.0.1:${p.peer}`, '--listen-grpc', `127.0.0.1:${p.grpc}`];
    const started = processes.start(id, [...chosen, '--admin-token-file', o.tokenFile, '--supervisor', supervisor.url, ...o.nodeFlags(id), ...how]);
    info.set(id, { id, http: `${o.scheme}://127.0.0.1:${p.http}`, peer: `127.0.0.1:${p.peer}`, grpc: `127.0.0.1:${p.grpc}`, pid: started.pid, dataDir: nodeDir });
  };
  const stopAll = async (): Promise<void> => {
    await processes.stopAll('SIGTERM', stopWaitMsMax);
    await supervisor.close();
    await clusterFile.write(null); // the supervisor is gone: nothing can restart a node now
  };
  return { info, clusterFile, processes, supervisor, start, stopAll };
}

/**
 * Writes DIR/cluster.json from `info`, one write at a time (a pid changes on every
 * restart; two renames of the same temporary file must not interleave).
 */
function fileWriter(dataDir: string, clusterId: string, info: ReadonlyMap<string, ClusterFileNode>): { write(supervisor: string | null): Promise<void> } {
  let last: Promise<void> = Promise.resolve();
  return {
    write(supervisor) {
      const file: ClusterFile = { clusterId, nodes: [...info.values()], ...(supervisor === null ? {} : { supervisor }) };
      last = last.then(
        () => writeClusterFile(dataDir, file),
        () => writeClusterFile(dataDir, file),
      );
      return last;
    },
  };
}

/** How many of n1, n2, … (in order) already have a store under `dataDir`. */
async function nodesWithData(dataDir: string): Promise<number> {
  let count = 0;
  while (await hasLmdbStore(path.join(dataDir, `n${count + 1}`))) count++;
  return count;
}

/** Polls `via`'s /members until `id` is a voter there (true), or gives up (false). */
async function waitForVoter(via: string, id: string, gone: () => boolean): Promise<boolean> {
  const deadline = Date.now() + leaderWaitMsMax;
  while (Date.now() < deadline && !gone()) {
    try {
      const m = (await getJson(`${via}/members`, 1000)) as { members?: { id?: string; role?: string }[] };
      if (m.members?.some((x) => x.id === id && x.role === 'voter') === true) return true;
    } catch {
      // the leader may be changing
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

async function waitForLeader(nodes: readonly ClusterFileNode[], allDead: () => boolean): Promise<string | null> {
  const deadline = Date.now() + leaderWaitMsMax;
  while (Date.now() < deadline && !allDead()) {
    for (const n of nodes) {
      try {
        const s = (await getJson(`${n.http}/status`, 1000)) as { role?: string; id?: string };
        if (s.role === 'leader' && s.id !== undefined) return s.id;
      } catch {
        // not up yet
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}
