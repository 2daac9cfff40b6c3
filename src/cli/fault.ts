/**
 * `quorumkv fault`: breaks a running cluster on purpose, from the command line.
 *
 *   partition NODE      cut NODE off from every other member (both directions)
 *   heal [NODE]         lift partitions (on NODE, or on every node)
 *   delay MIN-MAX       add a uniform delay (ms) to replication messages [--node N]
 *   drop RATE           drop this share of peer messages, 0..1 [--node N]
 *   die NODE [--clean]  the node stops (clean) or kills itself (kill -9), by request
 *   kill NODE           SIGKILL the node's process        (local nodes: by pid)
 *   pause NODE          SIGSTOP: the process freezes, its sockets stay open (a GC pause, a VM stall)
 *   resume NODE         SIGCONT
 *   restart NODE        start an exited node again (through the supervisor of quorumkv up)
 *   show                the fault rules in force on every node
 *
 * Network faults and die go through each node's /admin/faults and /admin/die, which exist
 * only on nodes started with --faults (`quorumkv up --faults`). Pause, resume and restart go
 * through the supervisor that `quorumkv up` runs (its URL is in the cluster file), which
 * owns the processes; without one (--endpoints, or nodes started by hand) pause and resume
 * signal the pid the node reports, and restart is refused. kill signals the pid. Nodes come
 * from --endpoints or the cluster file, and are named by id.
 */

import { request } from 'undici';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { authHeaders, chosenToken, clusterFlags, defaultClusterFile, endpointsFlag, readClusterFile, useClusterTls, type ClusterFile } from './cluster-file.js';
import { ConfigError } from './config.js';
import { askSupervisor } from './supervisor-client.js';
import { QkvError } from '../wire/errors.js';

export const faultCommand: CommandSpec = {
  name: 'fault',
  summary: 'inject faults into a running cluster: partition, heal, delay, drop, die, kill, pause, resume, restart, show',
  args: '<action> [argument]',
  flags: {
    ...clusterFlags,
    node: { kind: 'value', help: 'delay and drop: only on this node (default: every node)' },
    clean: { kind: 'bool', help: 'die: stop cleanly instead of kill -9' },
  },
  epilog: `actions:
  partition NODE      cut NODE off from every other member (both directions)
  heal [NODE]         lift partitions (on NODE, or on every node)
  delay MIN-MAX       add a uniform delay in ms to replication messages, e.g. 0-500
  drop RATE           drop this share of peer messages, 0..1
  die NODE            the node stops by request (kill -9 unless --clean)
  kill NODE           SIGKILL the node's process (a node on this machine)
  pause NODE          SIGSTOP the node's process: it freezes with its sockets open
  resume NODE         SIGCONT a paused node
  restart NODE        start a node whose process exited again, with its first arguments
                      (needs the supervisor of a running quorumkv up; refused while it runs)
  show                the fault rules in force on every node
Network faults and die need nodes started with --faults (quorumkv up --faults). pause,
resume and restart go through quorumkv up's supervisor when the cluster file names one.`,
};

interface ClusterNode {
  readonly id: string;
  readonly http: string;
  readonly pid: number;
  readonly peers: readonly string[];
}

const askTimeoutMs = 5_000;
/** A paused node never answers: do not wait long for its status. */
const statusTimeoutMs = 1_500;

type Call = (url: string, method: 'GET' | 'PUT' | 'POST', body?: unknown, timeoutMs?: number) => Promise<Record<string, unknown>>;

/** Requests to the nodes' admin routes, with the admin token. */
function caller(token: string | null): Call {
  return (url, method, body, timeoutMs = askTimeoutMs) => ask(url, method, token, body, timeoutMs);
}

async function ask(url: string, method: 'GET' | 'PUT' | 'POST', token: string | null, body: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
  const res = await request(url, {
    method,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    headers: { ...authHeaders(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer = (await res.body.json()) as Record<string, unknown>;
  if (res.statusCode === 404 && answer['error'] === 'unknown_route') {
    throw new ConfigError(`${url}: this node runs without fault injection; start the cluster with --faults (quorumkv up --faults)`);
  }
  if (res.statusCode >= 300) throw new ConfigError(`${url}: ${res.statusCode} ${String(answer['error'])}: ${String(answer['message'])}`);
  return answer;
}

/**
 * The cluster's nodes: from the cluster file (id, URL, pid: a paused node cannot answer for
 * itself) or from each endpoint's /status; the members come from whichever node answers.
 */
async function clusterNodes(call: Call, endpoints: readonly string[] | null, file: ClusterFile | null): Promise<ClusterNode[]> {
  const known = file === null ? [] : file.nodes.map((n) => ({ id: n.id, http: n.http, pid: n.pid }));
  const nodes: ClusterNode[] = [];
  let members: string[] = known.map((n) => n.id);
  for (const base of endpoints ?? known.map((n) => n.http)) {
    const fromFile = known.find((n) => n.http === base);
    try {
      const s = await call(`${base}/status`, 'GET', undefined, statusTimeoutMs);
      const id = String(s['id']);
      const peers = (s['peers'] as { id: string }[] | undefined)?.map((p) => p.id) ?? [];
      members = [...new Set([...members, id, ...peers])];
      nodes.push({ id, http: base, pid: Number(s['pid']), peers });
    } catch (error) {
      if (fromFile !== undefined) nodes.push({ ...fromFile, peers: [] });
      process.stderr.write(`quorumkv fault: ${base} does not answer (${error instanceof Error ? error.message : String(error)})\n`);
    }
  }
  return nodes.map((n) => ({ ...n, peers: members.filter((m) => m !== n.id) }));
}

function pick(nodes: readonly ClusterNode[], id: string | undefined, action: string): ClusterNode {
  if (id === undefined) throw new ConfigError(`fault ${action} needs a node id (one of ${nodes.map((n) => n.id).join(', ')})`);
  const node = nodes.find((n) => n.id === id);
  if (node === undefined) throw new ConfigError(`no reachable node ${id} (reachable: ${nodes.map((n) => n.id).join(', ') || 'none'})`);
  return node;
}

function only(nodes: readonly ClusterNode[], id: string | undefined): readonly ClusterNode[] {
  return id === undefined ? nodes : [pick(nodes, id, 'targeting')];
}

function names(nodes: readonly ClusterNode[]): string {
  return nodes.map((n) => n.id).join(', ');
}

function delayRange(text: string | undefined): { delayMsMin: number; delayMsMax: number } {
  const m = text === undefined ? null : /^(\d+)(?:-(\d+))?$/.exec(text);
  if (m === null) throw new ConfigError(`fault delay needs MIN-MAX in ms, e.g. 0-500 (0-0 removes the delay), got "${text ?? ''}"`);
  const delayMsMin = Number(m[1]);
  const delayMsMax = m[2] === undefined ? delayMsMin : Number(m[2]);
  if (delayMsMax < delayMsMin) throw new ConfigError(`fault delay: ${delayMsMin} is above ${delayMsMax}`);
  return { delayMsMin, delayMsMax };
}

/** pause, resume or restart through the supervisor of `quorumkv up`; returns what to say. */
async function throughSupervisor(file: ClusterFile, token: string | null, action: 'pause' | 'resume' | 'restart', id: string | undefined): Promise<string> {
  if (id === undefined || !file.nodes.some((n) => n.id === id)) {
    throw new ConfigError(`fault ${action} needs a node id (one of ${file.nodes.map((n) => n.id).join(', ')})${id === undefined ? '' : `, got ${id}`}`);
  }
  let answer: Record<string, unknown>;
  try {
    answer = await askSupervisor(file.supervisor as string, token, action, id);
  } catch (error) {
    if (error instanceof QkvError) throw new ConfigError(`fault ${action} ${id}: ${error.message}`);
    throw error;
  }
  const pid = String((answer['node'] as { pid?: unknown } | undefined)?.pid ?? '?');
  if (action === 'pause') return `${id} (pid ${pid}) paused: quorumkv fault resume ${id} wakes it`;
  if (action === 'resume') return `${id} (pid ${pid}) resumed`;
  const waited = answer['waitedMs'] === undefined ? '' : ` in ${String(answer['waitedMs'])} ms`;
  return `${id} restarted (pid ${pid}) and serving${waited}; it catches up from the leader`;
}

function signal(node: ClusterNode, name: NodeJS.Signals): void {
  try {
    process.kill(node.pid, name);
  } catch (error) {
    throw new ConfigError(`cannot send ${name} to ${node.id} (pid ${node.pid}): ${error instanceof Error ? error.message : String(error)}; kill, pause and resume work on nodes running on this machine`);
  }
}

export async function runFaultCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(faultCommand, argv);
  if (parsed === null) return 0;
  const v = parsed.values;
  const [action, argument] = parsed.positional;
  const endpoints = endpointsFlag(v);
  await useClusterTls(v); // https:// nodes: their CA, the client certificate
  const token = await chosenToken(v);
  const call = caller(token);
  const file = endpoints === null ? await readClusterFile(v.get('cluster-file') ?? defaultClusterFile) : null;
  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  // The supervisor owns the processes: it acts on a node that cannot answer (paused, exited).
  if (file?.supervisor !== undefined && (action === 'pause' || action === 'resume' || action === 'restart')) {
    say(await throughSupervisor(file, token, action, argument));
    return 0;
  }
  if (action === 'restart') {
    throw new ConfigError(`fault restart needs the supervisor of a running quorumkv up (the cluster file's "supervisor"); ${endpoints === null ? 'this cluster file names none (is quorumkv up still running?)' : 'with --endpoints there is none'}`);
  }
  const nodes = await clusterNodes(call, endpoints, file);
  if (nodes.length === 0) throw new ConfigError('no node answers');
  switch (action) {
    case 'partition': {
      const node = pick(nodes, argument, action);
      await call(`${node.http}/admin/faults`, 'PUT', { blockedTo: node.peers, blockedFrom: node.peers });
      say(`${node.id} is cut off from ${node.peers.join(', ')} (both directions); quorumkv fault heal ${node.id} undoes it`);
      return 0;
    }
    case 'heal': {
      const targets = only(nodes, argument);
      for (const node of targets) await call(`${node.http}/admin/faults`, 'PUT', { blockedTo: [], blockedFrom: [] });
      say(`partitions lifted on ${names(targets)}`);
      return 0;
    }
    case 'delay': {
      const range = delayRange(argument);
      const targets = only(nodes, v.get('node'));
      for (const node of targets) await call(`${node.http}/admin/faults`, 'PUT', range);
      say(`replication delay ${range.delayMsMin}-${range.delayMsMax} ms on ${names(targets)}`);
      return 0;
    }
    case 'drop': {
      const dropRate = Number(argument);
      if (argument === undefined || !(dropRate >= 0 && dropRate <= 1)) throw new ConfigError(`fault drop needs a rate in [0, 1], got "${argument ?? ''}"`);
      const targets = only(nodes, v.get('node'));
      for (const node of targets) await call(`${node.http}/admin/faults`, 'PUT', { dropRate });
      say(`dropping ${dropRate * 100}% of peer messages on ${names(targets)}`);
      return 0;
    }
    case 'die': {
      const node = pick(nodes, argument, action);
      const clean = v.get('clean') === 'true';
      await call(`${node.http}/admin/die`, 'POST', { id: node.id, clean });
      say(`${node.id} ${clean ? 'stops cleanly' : 'kills itself'}`);
      return 0;
    }
    case 'kill':
    case 'pause':
    case 'resume': {
      const node = pick(nodes, argument, action);
      signal(node, action === 'kill' ? 'SIGKILL' : action === 'pause' ? 'SIGSTOP' : 'SIGCONT');
      say(`${node.id} (pid ${node.pid}) ${action === 'kill' ? 'killed' : action === 'pause' ? 'paused: quorumkv fault resume ' + node.id + ' wakes it' : 'resumed'}`);
      return 0;
    }
    case 'show':
      for (const node of nodes) say(`${node.id}  ${JSON.stringify(await call(`${node.http}/admin/faults`, 'GET'))}`);
      return 0;
    default:
      throw new ConfigError(`unknown fault action "${action ?? ''}" (see quorumkv fault --help)`);
  }
}
