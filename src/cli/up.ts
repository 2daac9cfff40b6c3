/**
 * `quorumkv up`: a local cluster of N nodes on 127.0.0.1, each a child process running
 * `quorumkv node` with its data under DIR/<id>. Waits for a leader, prints each node's
 * URL, writes DIR/cluster.json, and on Ctrl-C / SIGTERM stops every node cleanly.
 * Running it again on the same DIR resumes from disk (same cluster id, same data).
 * A node that dies is reported, never silently restarted.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort, stopChild } from '../bench/child.js';
import { readClusterFile, writeClusterFile, type ClusterFileNode } from './cluster-file.js';
import { ConfigError, nodeFlags } from './config.js';

export const upHelp = `usage: quorumkv up --nodes N --data-dir DIR [--base-port P] [node flags…]

Starts N nodes on 127.0.0.1 (HTTP on P, P+1, …; peers on P+100, P+101, …; gRPC on
P+200, P+201, …; with --base-port 0, free ports are picked), waits for a leader, writes DIR/cluster.json and
runs until Ctrl-C. Node flags (see 'quorumkv node --help') are passed to every node.
`;

const mainPath = fileURLToPath(new URL('./main.js', import.meta.url));
const leaderWaitMsMax = 30_000;
const stopWaitMsMax = 10_000;


async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return res.body.json();
}

export async function runUp(argv: string[]): Promise<number> {
  let nodes = 3;
  let dataDir = './data';
  let basePort = 7001;
  const passThrough: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(2, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg.slice(2), undefined];
    const take = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new ConfigError(`--${name} needs a value`);
      return v;
    };
    if (name === 'nodes') nodes = Number(take());
    else if (name === 'data-dir') dataDir = take();
    else if (name === 'base-port') basePort = Number(take());
    else if (['id', 'peers', 'listen-http', 'listen-peer', 'listen-grpc', 'cluster-id'].includes(name)) throw new ConfigError(`--${name} is chosen by 'up' for each node`);
    else if (nodeFlags[name] !== undefined) {
      passThrough.push(`--${name}`);
      if (nodeFlags[name].kind !== 'bool' || inline !== undefined || (argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith('--'))) passThrough.push(take());
    } else throw new ConfigError(`unknown flag ${arg} (see 'quorumkv up --help')`);
  }
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 15) throw new ConfigError(`--nodes must be 1..15, got ${nodes}`);
  if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65000) throw new ConfigError(`--base-port must be 0..65000, got ${basePort}`);

  await mkdir(dataDir, { recursive: true });
  // A restart in the same directory keeps the cluster's identity.
  const previous = await readClusterFile(path.join(dataDir, 'cluster.json')).catch(() => null);
  const clusterId = previous?.clusterId ?? randomBytes(8).toString('hex');
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const ports = await Promise.all(
    ids.map(async (_, i) => ({
      http: basePort === 0 ? await freePort() : basePort + i,
      peer: basePort === 0 ? await freePort() : basePort + 100 + i,
      grpc: basePort === 0 ? await freePort() : basePort + 200 + i,
    })),
  );
  const peersFlag = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]?.peer}`).join(',');

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const info: ClusterFileNode[] = [];
  for (const [i, id] of ids.entries()) {
    const nodeDir = path.join(dataDir, id);
    await mkdir(nodeDir, { recursive: true });
    const logFile = createWriteStream(path.join(dataDir, `${id}.log`), { flags: 'a' });
    const p = ports[i] as { http: number; peer: number; grpc: number };
    const child = spawn(
      process.execPath,
      [mainPath, 'node', '--id', id, '--cluster-id', clusterId, '--data-dir', nodeDir, '--listen-http', `127.0.0.1:${p.http}`, '--listen-peer', `127.0.0.1:${p.peer}`, '--listen-grpc', `127.0.0.1:${p.grpc}`, '--peers', peersFlag, ...passThrough],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.pipe(logFile);
    child.stderr?.pipe(logFile);
    child.on('exit', (code, signal) => {
      children.delete(id);
      if (!stopping) process.stdout.write(`${id} exited (${signal ?? `code ${code}`}); not restarted. See ${path.join(dataDir, `${id}.log`)}\n`);
    });
    children.set(id, child);
    info.push({ id, http: `http://127.0.0.1:${p.http}`, peer: `127.0.0.1:${p.peer}`, grpc: `127.0.0.1:${p.grpc}`, pid: child.pid ?? 0, dataDir: nodeDir });
  }
  await writeClusterFile(dataDir, { clusterId, nodes: info });

  const stopAll = async (): Promise<void> => {
    stopping = true;
    await Promise.all([...children.values()].map((c) => stopChild(c, 'SIGTERM', stopWaitMsMax)));
  };

  const leader = await waitForLeader(info, () => children.size === 0);
  if (leader === null) {
    process.stderr.write(`no leader was elected within ${leaderWaitMsMax / 1000} s; see the logs in ${dataDir}/*.log\n`);
    await stopAll();
    return 1;
  }
  process.stdout.write(`quorumkv cluster ${clusterId} is up (data in ${dataDir}):\n`);
  for (const n of info) process.stdout.write(`  ${n.id}  ${n.http}  grpc ${n.grpc}${n.id === leader ? '  (leader)' : ''}\n`);
  process.stdout.write(`try:  curl -X PUT ${info[0]?.http}/kv/hello -H 'content-type: application/json' -d '{"value":"world"}'\n`);
  process.stdout.write(`      curl ${info[0]?.http}/kv/hello\nCtrl-C stops the cluster.\n`);

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
