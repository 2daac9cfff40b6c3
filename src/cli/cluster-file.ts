/**
 * `cluster.json`: what `quorumkv up` (and so `npm start`) writes about the cluster it runs,
 * and where every other command finds that cluster when it is given no --endpoints.
 *
 * Must never: guess endpoints from a file that cannot be read (the error says how to start
 * a cluster instead).
 */

import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, setGlobalDispatcher } from 'undici';
import { ConfigError } from './config.js';

/** Where `npm start` writes it, relative to the working directory. */
export const defaultClusterFile = './data/cluster.json';

/** The two flags that say which cluster a command talks to (mode, fault, rollbacks, …). */
export const clusterFlags = {
  endpoints: { kind: 'value', help: "the cluster's nodes, URL,… (default: the cluster file's nodes)" },
  'cluster-file': { kind: 'value', help: "the cluster file 'quorumkv up' writes", default: defaultClusterFile },
  ca: { kind: 'value', env: 'QKV_CA', help: "CA certificate (PEM) that signed the nodes' certificates, for https:// nodes (default: tls/ca.pem beside the cluster file, as quorumkv up --tls writes it)" },
  'client-cert': { kind: 'value', env: 'QKV_CLIENT_CERT', help: 'certificate (PEM) this command presents to nodes that ask clients for one (--tls-client-ca) (default: tls/client.pem beside the cluster file, if there is one)' },
  'client-key': { kind: 'value', env: 'QKV_CLIENT_KEY', help: 'private key (PEM) of --client-cert (default: tls/client-key.pem beside the cluster file)' },
  token: { kind: 'value', env: 'QKV_TOKEN', help: "bearer token: a user's, or the admin token (default: the admin-token file 'quorumkv up' wrote beside the cluster file, if there is one)" },
} as const;

/** The file 'quorumkv up' keeps the admin token in, beside cluster.json (mode 0600). */
export const adminTokenFileName = 'admin-token';

/**
 * The token a command sends: --token (or QKV_TOKEN), else, when the nodes come from the
 * cluster file, the admin token beside it if this user can read it (as Jupyter hands its
 * token to the browser), else none. Never the file's token to --endpoints: those may be
 * another cluster's nodes, which must not see this one's admin token.
 */
export async function chosenToken(values: ReadonlyMap<string, string>): Promise<string | null> {
  const given = values.get('token');
  if (given !== undefined && given !== '') return given;
  if (values.has('endpoints')) return null;
  const file = path.join(path.dirname(values.get('cluster-file') ?? defaultClusterFile), adminTokenFileName);
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}

/** The headers that carry `token` (none without one). */
export function authHeaders(token: string | null): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}

/** --endpoints as a list of base URLs, or null when not given. */
export function endpointsFlag(values: ReadonlyMap<string, string>): string[] | null {
  const text = values.get('endpoints');
  return text === undefined ? null : text.split(',').map((e) => e.trim().replace(/\/$/, '')).filter(Boolean);
}

/** The HTTP endpoints of --endpoints, else of --cluster-file; HTTPS ones are reached with the cluster's TLS (useClusterTls). */
export async function chosenEndpoints(values: ReadonlyMap<string, string>): Promise<string[]> {
  const endpoints = endpointsFlag(values) ?? (await clusterFileEndpoints(values.get('cluster-file') ?? defaultClusterFile));
  if (endpoints.some((e) => e.startsWith('https://'))) await useClusterTls(values);
  return endpoints;
}

/** What a command needs to reach an HTTPS or gRPC-over-TLS node: the CA to trust, a certificate to present. */
export interface CommandTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/**
 * The one place a command's undici requests learn TLS: every request() without a dispatcher
 * of its own goes through the global one, which from here on trusts the cluster's CA and
 * presents the client certificate (chosenTls). Resolves with what it installed (null: none).
 */
export async function useClusterTls(values: ReadonlyMap<string, string>): Promise<CommandTls | null> {
  const chosen = await chosenTls(values);
  if (chosen !== null) setGlobalDispatcher(new Agent({ connect: { ...chosen } }));
  return chosen;
}

/** --ca and --client-cert/--client-key, each defaulting to its file under tls/ beside the cluster file; null when none is at hand. */
export async function chosenTls(values: ReadonlyMap<string, string>): Promise<CommandTls | null> {
  const ca = await chosenCa(values);
  const identity = await chosenClientCertificate(values);
  if (ca === null && identity === null) return null;
  return { ...(ca === null ? {} : { ca }), ...(identity ?? {}) };
}

/** --ca (or QKV_CA), else tls/ca.pem beside the cluster file if there is one (a CA certificate is public). */
export async function chosenCa(values: ReadonlyMap<string, string>): Promise<Buffer | null> {
  return readGivenOrBeside(values, 'ca', 'ca.pem');
}

/**
 * --client-cert and --client-key (both or neither), else tls/client.pem and client-key.pem
 * beside the cluster file when this user can read both (quorumkv certs writes the key 0600,
 * as up writes the admin token). A node that does not ask for a certificate never sees it.
 */
export async function chosenClientCertificate(values: ReadonlyMap<string, string>): Promise<{ cert: Buffer; key: Buffer } | null> {
  const given = (name: string): boolean => (values.get(name) ?? '') !== '';
  if (given('client-cert') !== given('client-key')) throw new ConfigError('--client-cert and --client-key go together (or QKV_CLIENT_CERT and QKV_CLIENT_KEY)');
  const cert = await readGivenOrBeside(values, 'client-cert', 'client.pem');
  const key = await readGivenOrBeside(values, 'client-key', 'client-key.pem');
  return cert === null || key === null ? null : { cert, key };
}

/** The file of --`flag` (an error naming it when unreadable), else tls/`fileName` beside the cluster file, else null. */
async function readGivenOrBeside(values: ReadonlyMap<string, string>, flag: string, fileName: string): Promise<Buffer | null> {
  const given = values.get(flag);
  const file = given !== undefined && given !== '' ? given : path.join(path.dirname(values.get('cluster-file') ?? defaultClusterFile), 'tls', fileName);
  try {
    return await readFile(file);
  } catch (error) {
    if (given !== undefined && given !== '') throw new ConfigError(`--${flag} ${given}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    return null;
  }
}

export interface ClusterFileNode {
  readonly id: string;
  readonly http: string;
  readonly peer: string;
  /** gRPC API address host:port. */
  readonly grpc: string;
  readonly pid: number;
  readonly dataDir: string;
}

export interface ClusterFile {
  readonly clusterId: string;
  readonly nodes: readonly ClusterFileNode[];
  /**
   * URL of the supervisor that owns the nodes' processes (cli/supervisor.ts), while `quorumkv
   * up` runs: restart, pause and resume go through it. Absent: nothing can restart a node.
   */
  readonly supervisor?: string;
}

/** The file, or a ConfigError naming it and saying how to get one. */
export async function readClusterFile(file: string): Promise<ClusterFile> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read: ${error instanceof Error ? error.message : String(error)}`;
    throw new ConfigError(`no --endpoints given and ${file} ${why} (start a cluster with 'npm start')`);
  }
  const nodes = (parsed as { nodes?: unknown }).nodes;
  if (!Array.isArray(nodes)) throw new ConfigError(`${file} is not a cluster file: no "nodes" list`);
  return parsed as ClusterFile;
}

/** The nodes' addresses for one API (HTTP URLs or gRPC host:port), in the file's order. */
export async function clusterFileEndpoints(file: string, api: 'http' | 'grpc' = 'http'): Promise<string[]> {
  const endpoints = (await readClusterFile(file)).nodes.map((n) => n[api]).filter((e): e is string => typeof e === 'string' && e !== '');
  if (endpoints.length === 0) throw new ConfigError(`${file} lists no ${api} endpoints (is the cluster running?)`);
  return endpoints;
}

/** Whether the cluster file's nodes serve HTTPS (quorumkv up --tls), so their gRPC is TLS too. */
export async function clusterFileIsTls(file: string): Promise<boolean> {
  try {
    return (await readClusterFile(file)).nodes.some((n) => n.http.startsWith('https://'));
  } catch {
    return false;
  }
}

/** Replaces DIR/cluster.json atomically (a reader never sees half a file). */
export async function writeClusterFile(dir: string, file: ClusterFile): Promise<void> {
  const tmp = path.join(dir, 'cluster.json.tmp');
  await writeFile(tmp, JSON.stringify(file, null, 2) + '\n');
  await rename(tmp, path.join(dir, 'cluster.json'));
}
