/**
 * `quorumkv put|get|del|ls|status`: the client library (client/) from the command line.
 * Endpoints come from --endpoints or the cluster file (default ./data/cluster.json, which
 * `quorumkv up` writes); the library finds the leader and retries within the deadline.
 * `--json` prints machine-readable answers (errors too, as {"error","message"} on stderr).
 *
 * Must never: print a partial answer as if it were whole (ls stops with an error instead).
 */

import { QuorumKvError, connect } from '../client/index.js';
import type { Consistency, KvClient, TransportKind } from '../client/index.js';
import { ConfigError } from './config.js';
import { clusterFileEndpoints, defaultClusterFile } from './cluster-file.js';

export const clientCommands = ['put', 'get', 'del', 'ls', 'status'];

export const clientHelp = `usage: quorumkv put KEY VALUE | get KEY | del KEY | ls [PREFIX] | status  [flags]

flags:
  --endpoints URL,…        nodes to talk to (default: the cluster file's nodes)
  --cluster-file FILE      default ./data/cluster.json (written by 'quorumkv up')
  --transport http|grpc    default http
  --consistency LEVEL      get/ls: linearizable (default), leader, local
  --if-version N           put/del: compare-and-set
  --deadline-ms N          time budget of the call, retries included (default 10000)
  --json                   machine-readable output (ls: one JSON entry per line)
`;

export interface ClientFlags {
  readonly positional: string[];
  readonly endpoints: string[] | null;
  readonly json: boolean;
  readonly consistency: Consistency | null;
  readonly clusterFile: string;
  readonly transport: TransportKind;
  readonly ifVersion: number | null;
  readonly deadlineMs: number | null;
  /** Values of the command-specific flags named in `extraFlags`. */
  readonly extra: Map<string, string>;
}

/** Parses the shared client flags plus `extraFlags` (each taking a value). */
export function parseClientFlags(argv: readonly string[], extraFlags: readonly string[] = []): ClientFlags {
  const positional: string[] = [];
  const extra = new Map<string, string>();
  let endpoints: string[] | null = null;
  let json = false;
  let consistency: Consistency | null = null;
  let clusterFile = defaultClusterFile;
  let transport: TransportKind = 'http';
  let ifVersion: number | null = null;
  let deadlineMs: number | null = null;
  let onlyPositional = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (onlyPositional || !arg.startsWith('--') || arg === '--') {
      if (arg === '--' && !onlyPositional) onlyPositional = true;
      else positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const value = (): string => {
      const v = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (v === undefined) throw new ConfigError(`--${name} needs a value`);
      return v;
    };
    const count = (what: string): number => {
      const raw = value();
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new ConfigError(`--${what} must be a whole number, got "${raw}"`);
      return n;
    };
    if (name === 'json') json = true;
    else if (name === 'endpoints') endpoints = value().split(',').map((e) => e.trim()).filter(Boolean);
    else if (name === 'cluster-file') clusterFile = value();
    else if (name === 'transport') {
      const t = value();
      if (t !== 'http' && t !== 'grpc') throw new ConfigError(`--transport must be http or grpc, got "${t}"`);
      transport = t;
    } else if (name === 'consistency') {
      const c = value();
      if (c !== 'linearizable' && c !== 'leader' && c !== 'local') throw new ConfigError(`--consistency must be linearizable, leader or local, got "${c}"`);
      consistency = c;
    } else if (name === 'if-version') ifVersion = count('if-version');
    else if (name === 'deadline-ms') {
      deadlineMs = count('deadline-ms');
      if (deadlineMs < 1) throw new ConfigError('--deadline-ms must be at least 1');
    } else if (extraFlags.includes(name)) extra.set(name, value());
    else throw new ConfigError(`unknown flag --${name}`);
  }
  return { positional, endpoints, json, consistency, clusterFile, transport, ifVersion, deadlineMs, extra };
}

/** --endpoints, or the cluster file's node addresses for the chosen transport. */
export async function clusterEndpoints(flags: ClientFlags): Promise<string[]> {
  if (flags.endpoints !== null && flags.endpoints.length > 0) return flags.endpoints;
  return clusterFileEndpoints(flags.clusterFile, flags.transport);
}

export async function runClientCommand(command: string, argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(clientHelp);
    return 0;
  }
  const flags = parseClientFlags(argv);
  const usage = (text: string): never => {
    throw new ConfigError(`usage: quorumkv ${text}`);
  };
  const [first, second] = flags.positional;
  // Check the arguments before connecting: a usage error needs no cluster.
  if (command === 'put' && (first === undefined || second === undefined || flags.positional.length > 2)) usage('put KEY VALUE');
  if ((command === 'get' || command === 'del') && (first === undefined || flags.positional.length > 1)) usage(`${command} KEY`);
  if ((command === 'ls' && flags.positional.length > 1) || (command === 'status' && flags.positional.length > 0)) usage(command === 'ls' ? 'ls [PREFIX]' : 'status');

  const deadline = flags.deadlineMs === null ? {} : { deadlineMs: flags.deadlineMs };
  let kv: KvClient;
  try {
    kv = await connect({ endpoints: await clusterEndpoints(flags), transport: flags.transport, ...deadline });
  } catch (error) {
    return printError(error, flags.json);
  }
  const out = (text: string): void => void process.stdout.write(text);
  const read = { ...deadline, ...(flags.consistency === null ? {} : { consistency: flags.consistency }) };
  const cas = { ...deadline, ...(flags.ifVersion === null ? {} : { ifVersion: flags.ifVersion }) };
  try {
    switch (command) {
      case 'put': {
        const result = await kv.put(first as string, second as string, cas);
        out(flags.json ? `${JSON.stringify(result)}\n` : `${result.key} version ${result.version}\n`);
        return 0;
      }
      case 'get': {
        const entry = await kv.get(first as string, read);
        if (entry === undefined) {
          if (flags.json) process.stderr.write(`${JSON.stringify({ error: 'not_found', message: 'Key not found', key: first })}\n`);
          else process.stderr.write(`${first as string}: not found\n`);
          return 1;
        }
        out(flags.json ? `${JSON.stringify(entry)}\n` : `${entry.value}\n`);
        return 0;
      }
      case 'del': {
        const result = await kv.delete(first as string, cas);
        out(flags.json ? `${JSON.stringify(result)}\n` : `${result.key} version ${result.version}${result.deleted ? ' deleted' : ' (was absent)'}\n`);
        return 0;
      }
      case 'ls': {
        // One page at a time, so memory stays bounded whatever the key count; --json prints
        // one JSON object per entry (NDJSON).
        for await (const page of kv.listPages({ ...read, prefix: first ?? '', limit: 1000 })) {
          out(page.items.map((e) => (flags.json ? JSON.stringify(e) : `${e.key}\t${e.value}\t(v${e.version})`)).join('\n') + (page.items.length > 0 ? '\n' : ''));
        }
        return 0;
      }
      default: {
        const status = await kv.status(deadline);
        if (flags.json) {
          const nodes = status.nodes.map((n) => (n.ok ? n.status : { endpoint: n.endpoint, error: n.error.code, message: n.error.message }));
          out(`${JSON.stringify({ leader: status.leader, nodes })}\n`);
        } else {
          for (const n of status.nodes) {
            if (!n.ok) out(`${n.endpoint}  unreachable: ${n.error.message}\n`);
            else {
              const s = n.status;
              out(`${s.id}  ${s.role.padEnd(9)} term ${s.term}  commit ${s.commitIndex}  applied ${s.appliedIndex}  keys ${s.keyCount}  ${n.endpoint}${s.grpc !== undefined ? `  grpc ${s.grpc}` : ''}\n`);
            }
          }
        }
        return status.nodes.some((n) => n.ok) ? 0 : 1;
      }
    }
  } catch (error) {
    return printError(error, flags.json);
  } finally {
    await kv.close();
  }
}

function printError(error: unknown, json: boolean): number {
  if (!(error instanceof QuorumKvError)) throw error;
  if (json) process.stderr.write(`${JSON.stringify({ error: error.code, message: error.message, ...error.details })}\n`);
  else process.stderr.write(`quorumkv: ${error.name} (${error.code}): ${error.message}\n`);
  return 1;
}
