/**
 * `quorumkv put|get|del|ls|txn|watch|lease|status`: the client library (client/) from the command line.
 * Endpoints come from --endpoints or the cluster file (default ./data/cluster.json, which
 * `quorumkv up` writes); the library finds the leader and retries within the deadline.
 * `--json` prints machine-readable answers (errors too, as {"error","message"} on stderr).
 *
 * Must never: print a partial answer as if it were whole (ls stops with an error instead).
 */

import { QuorumKvError, connect } from '../client/index.js';
import type { Consistency, KvClient, TransportKind, TxnBody, TxnOpResponse, Value } from '../client/index.js';
import { parseArgs } from './command.js';
import type { CommandSpec, FlagDef } from './command.js';
import { ConfigError } from './config.js';
import { bytesOfBase64, jsonValue } from '../wire/values.js';
import { chosenTls, chosenToken, clusterFileEndpoints, clusterFileIsTls, clusterFlags, defaultClusterFile } from './cluster-file.js';
import type { CommandTls } from './cluster-file.js';
import { membersTable } from './members-table.js';


/** Flags every client command takes. */
export const clientFlagDefs: Readonly<Record<string, FlagDef>> = {
  ...clusterFlags,
  transport: { kind: 'value', help: 'http or grpc', default: 'http' },
  'deadline-ms': { kind: 'value', help: 'time budget of the call, retries included', default: '10000' },
  json: { kind: 'bool', help: 'machine-readable output (ls: one JSON entry per line; errors as {"error","message"} on stderr)' },
};

const readFlagDefs: Readonly<Record<string, FlagDef>> = {
  consistency: { kind: 'value', help: 'linearizable, leader or local', default: 'linearizable' },
};
const casFlagDefs: Readonly<Record<string, FlagDef>> = {
  'if-version': { kind: 'value', help: 'compare-and-set: only if the key has this version (0: absent)' },
};

const clientSpecs: Readonly<Record<string, CommandSpec>> = {
  put: {
    name: 'put',
    summary: 'write a key',
    args: '<key> <value>',
    flags: {
      ...clientFlagDefs,
      ...casFlagDefs,
      lease: { kind: 'value', help: 'attach the key to this lease (it is deleted when the lease ends)' },
      base64: { kind: 'bool', help: 'the value is base64: store its bytes (a binary value)' },
    },
  },
  get: { name: 'get', summary: 'read a key (a binary value is written to stdout as its raw bytes)', args: '<key>', flags: { ...clientFlagDefs, ...readFlagDefs } },
  del: { name: 'del', summary: 'delete a key', args: '<key>', flags: { ...clientFlagDefs, ...casFlagDefs } },
  txn: {
    name: 'txn',
    summary: 'run a transaction (JSON body {compare, success, failure}; - reads it from stdin): compares, then one branch, atomically',
    args: '<json-body>',
    flags: clientFlagDefs,
  },
  watch: {
    name: 'watch',
    summary: 'print every change under a prefix as it happens (from --from-version, or the next change), resuming on another node if one goes; until Ctrl-C or --count',
    args: '[prefix]',
    flags: {
      ...clientFlagDefs,
      'from-version': { kind: 'value', help: 'first version to print (default: the next change)' },
      prev: { kind: 'bool', help: "print each change's previous value too" },
      count: { kind: 'value', help: 'stop after this many versions' },
    },
  },
  lease: {
    name: 'lease',
    summary: 'grant <ttlMs> | keepalive <id> | revoke <id> | info <id>: leases (keys put with --lease <id> go when it ends)',
    args: '<action> <ttlMs|id>',
    flags: clientFlagDefs,
  },
  ls: {
    name: 'ls',
    summary: 'list keys (and values) by prefix, in key order',
    args: '[prefix]',
    flags: { ...clientFlagDefs, ...readFlagDefs, reverse: { kind: 'bool', help: 'in descending key order: the last key first' } },
  },
  status: { name: 'status', summary: "every node's role, term, indexes and mode, and the members with their role and lag", flags: clientFlagDefs },
};

export const clientCommands = Object.keys(clientSpecs);
export const clientCommandSpecs: readonly CommandSpec[] = Object.values(clientSpecs);

export interface ClientFlags {
  readonly positional: readonly string[];
  readonly endpoints: string[] | null;
  readonly json: boolean;
  readonly consistency: Consistency | null;
  readonly clusterFile: string;
  readonly transport: TransportKind;
  readonly ifVersion: number | null;
  readonly deadlineMs: number | null;
  /** Every flag's value as parsed (the token is looked up from them: chosenToken). */
  readonly values: ReadonlyMap<string, string>;
  /** Values of the command's own flags beyond the shared ones. */
  readonly extra: ReadonlyMap<string, string>;
}

/** Parses a client command's arguments against `spec`; null when help was printed. */
export function parseClientFlags(spec: CommandSpec, argv: readonly string[]): ClientFlags | null {
  const parsed = parseArgs(spec, argv);
  if (parsed === null) return null;
  const v = parsed.values;
  const count = (name: string): number | null => {
    const raw = v.get(name);
    if (raw === undefined) return null;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new ConfigError(`--${name} must be a whole number, got "${raw}"`);
    return n;
  };
  const transport = v.get('transport');
  if (transport !== 'http' && transport !== 'grpc') throw new ConfigError(`--transport must be http or grpc, got "${transport ?? ''}"`);
  const consistency = v.get('consistency') ?? null;
  if (consistency !== null && consistency !== 'linearizable' && consistency !== 'leader' && consistency !== 'local') {
    throw new ConfigError(`--consistency must be linearizable, leader or local, got "${consistency}"`);
  }
  const deadlineMs = count('deadline-ms');
  if (deadlineMs !== null && deadlineMs < 1) throw new ConfigError('--deadline-ms must be at least 1');
  const shared = new Set([...Object.keys(clientFlagDefs), 'consistency', 'if-version']);
  return {
    positional: parsed.positional,
    endpoints: v.has('endpoints') ? (v.get('endpoints') as string).split(',').map((e) => e.trim()).filter(Boolean) : null,
    json: v.get('json') === 'true',
    consistency,
    clusterFile: v.get('cluster-file') ?? defaultClusterFile,
    transport,
    ifVersion: count('if-version'),
    deadlineMs,
    values: v,
    extra: new Map([...v].filter(([name]) => !shared.has(name))),
  };
}

/** --endpoints, or the cluster file's node addresses for the chosen transport. */
export async function clusterEndpoints(flags: ClientFlags): Promise<string[]> {
  if (flags.endpoints !== null && flags.endpoints.length > 0) return flags.endpoints;
  return clusterFileEndpoints(flags.clusterFile, flags.transport);
}

/** What connect() needs from the flags: endpoints, transport, the token (--token, QKV_TOKEN or the cluster's admin token) and TLS (--ca, --client-cert/--client-key or the cluster's tls/ files). */
export async function connection(flags: ClientFlags): Promise<{ endpoints: string[]; transport: TransportKind; token?: string; tls?: CommandTls }> {
  const token = await chosenToken(flags.values);
  const endpoints = await clusterEndpoints(flags);
  // TLS when the nodes say so (https://, grpcs://), or, for gRPC endpoints that carry no
  // scheme, when TLS was asked for or the cluster file's nodes serve HTTPS.
  const tls = await chosenTls(flags.values);
  const asked = flags.values.has('ca') || flags.values.has('client-cert') || endpoints.some((e) => e.startsWith('grpcs://'));
  const secure = flags.transport === 'http' ? endpoints.some((e) => e.startsWith('https://')) : asked || (await clusterFileIsTls(flags.clusterFile));
  return { endpoints, transport: flags.transport, ...(token === null ? {} : { token }), ...(secure && tls !== null ? { tls } : {}) };
}

export async function runClientCommand(command: string, argv: string[]): Promise<number> {
  const spec = clientSpecs[command];
  if (spec === undefined) throw new ConfigError(`unknown client command ${command}`);
  const flags = parseClientFlags(spec, argv);
  if (flags === null) return 0;
  const [first, second] = flags.positional;

  const deadline = flags.deadlineMs === null ? {} : { deadlineMs: flags.deadlineMs };
  let kv: KvClient;
  try {
    kv = await connect({ ...(await connection(flags)), ...deadline });
  } catch (error) {
    return printError(error, flags.json);
  }
  const out = (text: string): void => void process.stdout.write(text);
  const read = { ...deadline, ...(flags.consistency === null ? {} : { consistency: flags.consistency }) };
  const cas = { ...deadline, ...(flags.ifVersion === null ? {} : { ifVersion: flags.ifVersion }) };
  try {
    switch (command) {
      case 'put': {
        const lease = flags.extra.get('lease');
        const value = flags.extra.get('base64') === 'true' ? base64Value(second as string) : (second as string);
        const result = await kv.put(first as string, value, { ...cas, ...(lease === undefined ? {} : { lease: wholeNumber(lease, '--lease') }) });
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
        if (flags.json) out(`${jsonLine(entry)}\n`);
        // Bytes as they are (so `get k > file` gives the file back); text with a newline.
        else if (entry.value instanceof Uint8Array) process.stdout.write(entry.value);
        else out(`${entry.value}\n`);
        return 0;
      }
      case 'del': {
        const result = await kv.delete(first as string, cas);
        out(flags.json ? `${JSON.stringify(result)}\n` : `${result.key} version ${result.version}${result.deleted ? ' deleted' : ' (was absent)'}\n`);
        return 0;
      }
      case 'txn': {
        const result = await kv.txn(await txnBodyOf(first), deadline);
        if (flags.json) out(`${jsonLine(result)}\n`);
        else {
          out(`${result.succeeded ? 'SUCCEEDED' : 'FAILED (failure branch ran)'} at version ${result.version}\n`);
          for (const r of result.results) out(`${describeTxnResult(r)}\n`);
        }
        return 0;
      }
      case 'watch':
        return await watchCommand(kv, first ?? '', flags, out);
      case 'lease':
        return await leaseCommand(kv, first, second, flags, out);
      case 'ls': {
        // One page at a time, so memory stays bounded whatever the key count; --json prints
        // one JSON object per entry (NDJSON).
        for await (const page of kv.listPages({ ...read, prefix: first ?? '', limit: 1000, reverse: flags.extra.get('reverse') === 'true' })) {
          out(page.items.map((e) => (flags.json ? jsonLine(e) : `${e.key}\t${shown(e.value)}\t(v${e.version})`)).join('\n') + (page.items.length > 0 ? '\n' : ''));
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
          // The leader's view has every member's lag; a follower's is the fallback.
          const answered = status.nodes.flatMap((n) => (n.ok && n.status.membership !== undefined ? [n.status] : []));
          const view = answered.find((s) => s.role === 'leader') ?? answered[0];
          if (view?.membership !== undefined) out(membersTable(view.membership, view.id));
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

/** `quorumkv watch`: one line per version until Ctrl-C (the watch resumes by itself on another node). */
async function watchCommand(kv: KvClient, prefix: string, flags: ClientFlags, out: (text: string) => void): Promise<number> {
  const from = flags.extra.get('from-version');
  const countText = flags.extra.get('count');
  const count = countText === undefined ? Number.POSITIVE_INFINITY : wholeNumber(countText, '--count');
  const watch = kv.watch(prefix, { prevValue: flags.extra.get('prev') === 'true', ...(from === undefined ? {} : { fromVersion: wholeNumber(from, '--from-version') }) });
  const stop = (): void => watch.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    let seen = 0;
    for await (const event of watch) {
      if (flags.json) out(`${jsonLine(event)}\n`);
      else for (const c of event.changes) out(`v${event.version} ${c.type} ${c.key}${c.type === 'put' ? ` = ${shown(c.value)}` : ''}${c.prev !== undefined ? ` (was ${shown(c.prev.value)} at v${c.prev.version})` : ''}\n`);
      if (++seen >= count) break;
    }
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function leaseCommand(kv: KvClient, action: string | undefined, arg: string | undefined, flags: ClientFlags, out: (text: string) => void): Promise<number> {
  if (arg === undefined) throw new ConfigError('lease needs an action and a number: grant <ttlMs> | keepalive <id> | revoke <id> | info <id>');
  const n = wholeNumber(arg, action === 'grant' ? 'ttlMs' : 'lease id');
  const print = (answer: object, text: string): void => out(flags.json ? `${JSON.stringify(answer)}\n` : `${text}\n`);
  switch (action) {
    case 'grant': {
      const lease = await kv.lease(n, { keepAlive: false });
      print({ id: lease.id, ttlMs: lease.ttlMs }, `lease ${lease.id} ttl ${lease.ttlMs} ms`);
      return 0;
    }
    case 'keepalive':
    case 'revoke':
    case 'info': {
      const info = await kv.leaseCall(action, n);
      if (info === undefined) {
        process.stderr.write(flags.json ? `${JSON.stringify({ error: 'lease_not_found', message: `lease ${n} does not exist`, lease: n })}\n` : `lease ${n}: not found\n`);
        return 1;
      }
      print(info, Object.entries(info).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`).join('  '));
      return 0;
    }
    default:
      throw new ConfigError(`lease: unknown action ${JSON.stringify(action ?? '')}; use grant, keepalive, revoke or info`);
  }
}

function wholeNumber(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new ConfigError(`${what} must be a whole number, got "${text}"`);
  return n;
}

/** Prints a client error (as JSON with --json) and returns exit status 1; anything else is rethrown. */
export function printError(error: unknown, json: boolean): number {
  if (!(error instanceof QuorumKvError)) throw error;
  if (json) process.stderr.write(`${JSON.stringify({ error: error.code, message: error.message, ...error.details })}\n`);
  else process.stderr.write(`quorumkv: ${error.name} (${error.code}): ${error.message}\n`);
  return 1;
}

/** The transaction body from the argument, or from stdin when it is `-`. */
async function txnBodyOf(arg: string | undefined): Promise<TxnBody> {
  if (arg === undefined) throw new ConfigError('txn needs a JSON body (or - to read it from stdin)');
  let text = arg;
  if (arg === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`txn body is not JSON: ${(error as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ConfigError('txn body must be a JSON object {"compare","success","failure"}');
  // The node checks the rest and names what is wrong.
  return body as TxnBody;
}

function describeTxnResult(r: TxnOpResponse): string {
  switch (r.op) {
    case 'put':
      return `put ${r.key} version ${r.version}`;
    case 'delete':
      return `delete ${r.key}${r.deleted ? '' : ' (was absent)'}`;
    case 'get':
      return r.found ? `get ${r.key} = ${shown(r.value)} (v${r.version})` : `get ${r.key}: not found`;
    case 'list':
      return [`list ${r.prefix}: ${r.items.length} keys${r.more ? ' (more)' : ''}`, ...r.items.map((i) => `  ${i.key}\t${shown(i.value)}\t(v${i.version})`)].join('\n');
  }
}

/** A value in a line of text: text as is, bytes as `base64:…`. */
function shown(value: Value): string {
  return typeof value === 'string' ? value : `base64:${jsonValue(value).value}`;
}

/** JSON as the HTTP API writes it: a binary value as base64 with `"encoding": "base64"` beside it. */
function jsonLine(x: unknown): string {
  return JSON.stringify(x, (_key, v: unknown) => {
    const value = typeof v === 'object' && v !== null ? (v as { value?: unknown }).value : undefined;
    return value instanceof Uint8Array ? { ...(v as object), ...jsonValue(value) } : v;
  });
}

function base64Value(text: string): Uint8Array {
  const bytes = bytesOfBase64(text);
  if (bytes === null) throw new ConfigError('put --base64: the value is not canonical base64 (A-Z a-z 0-9 + /, padded with =)');
  return bytes;
}
