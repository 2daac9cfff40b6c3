/**
 * `quorumkv check [--endpoints URL,…]`: compares every node's store with the leader's and
 * prints the keys that differ, each node's lag and its rollback-report count
 * (bench/check.ts does the work). Exit status: 0 when every store is identical to the
 * leader's, 1 when a node differs or cannot be read, 2 when no node leads or the flags
 * are wrong.
 */

import { checkCluster, formatCheck } from '../bench/check.js';
import { FlagError, flagHelp, parseDurationMs, parseFlags } from '../bench/flags.js';
import type { FlagDef } from '../bench/flags.js';
import { authHeaders, chosenToken, clusterFileEndpoints, clusterFlags, defaultClusterFile, useClusterTls } from './cluster-file.js';
import { ConfigError } from './config.js';

const checkFlags: Record<string, FlagDef> = {
  endpoints: { kind: 'value', help: 'nodes to check: URL,… (default: the cluster file\'s nodes)' },
  'cluster-file': { kind: 'value', help: 'default ./data/cluster.json (written by quorumkv up)' },
  wait: { kind: 'value', help: 'longest wait for followers to apply what the leader committed (default 10s)' },
  json: { kind: 'bool', help: 'print the whole check as JSON' },
  // The TLS and token flags every command shares (also from QKV_CA, QKV_CLIENT_CERT, QKV_CLIENT_KEY, QKV_TOKEN).
  ca: { kind: 'value', help: clusterFlags.ca.help },
  'client-cert': { kind: 'value', help: clusterFlags['client-cert'].help },
  'client-key': { kind: 'value', help: clusterFlags['client-key'].help },
  token: { kind: 'value', help: "the admin token or an admin user's: the store dumps are an admin route (default: the admin-token file beside the cluster file)" },
};

export const checkHelp = `usage: quorumkv check [--endpoints URL,…] [flags]

Compares every node's store with the leader's (paged GET /debug/store, one state per node),
after waiting for followers to catch up, and prints keys that differ, lag and rollback
counts. Exit status 0: identical; 1: a node differs or cannot be read; 2: no leader.

${flagHelp(checkFlags)}
`;

export async function runCheckCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(checkHelp);
    return 0;
  }
  let endpoints: string[];
  let waitMs: number;
  let json: boolean;
  let headers: Record<string, string>;
  try {
    const { values: given, positional } = parseFlags(argv, checkFlags, {}, 'check');
    const v = withCredentialsFromEnv(given, process.env);
    if (positional.length > 0) throw new FlagError(`unexpected argument ${positional[0] ?? ''}`);
    waitMs = parseDurationMs(v.get('wait') ?? '10s', 'wait');
    json = v.get('json') === 'true';
    if (v.has('endpoints')) endpoints = (v.get('endpoints') as string).split(',').map((e) => e.trim()).filter(Boolean);
    else endpoints = await clusterFileEndpoints(v.get('cluster-file') ?? defaultClusterFile);
    if (endpoints.length === 0) throw new FlagError('no endpoints to check');
    if (endpoints.some((e) => e.startsWith('https://'))) await useClusterTls(v);
    headers = authHeaders(await chosenToken(v));
  } catch (error) {
    if (error instanceof FlagError) throw new ConfigError(error.message);
    throw error;
  }
  let report;
  try {
    report = await checkCluster(endpoints, { catchUpWaitMs: waitMs, headers });
  } catch (error) {
    process.stderr.write(`quorumkv check: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatCheck(report));
  return report.identical ? 0 : 1;
}

/** The credential flags a command line leaves out, from QKV_* as every other command takes them. */
function withCredentialsFromEnv(given: ReadonlyMap<string, string>, env: Readonly<Record<string, string | undefined>>): ReadonlyMap<string, string> {
  const values = new Map(given);
  for (const name of ['ca', 'client-cert', 'client-key', 'token']) {
    const fromEnv = env[`QKV_${name.toUpperCase().replaceAll('-', '_')}`];
    if (!values.has(name) && fromEnv !== undefined && fromEnv !== '') values.set(name, fromEnv);
  }
  return values;
}
