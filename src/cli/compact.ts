/**
 * `quorumkv compact [--before V]`: drops the history of changes below version V (default:
 * below the version the cluster has applied now), through the log, so every node drops the
 * same. Watches and reads at a version older than that answer `compacted` afterwards. The
 * leader also compacts by itself beyond --history-retention-versions or -ms (node/history-retention.ts).
 */

import { request } from 'undici';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { authHeaders, chosenEndpoints, chosenToken, clusterFlags } from './cluster-file.js';
import { ConfigError } from './config.js';

export const compactCommand: CommandSpec = {
  name: 'compact',
  summary: 'drop the history of changes below a version on every node (watches and reads at older versions then answer compacted)',
  flags: {
    before: { kind: 'value', help: 'drop the versions below this one (default: every version before the one applied now)' },
    ...clusterFlags,
  },
};

export async function runCompactCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(compactCommand, argv);
  if (parsed === null) return 0;
  const before = parsed.values.get('before');
  if (before !== undefined && (!/^[1-9]\d*$/.test(before) || !Number.isSafeInteger(Number(before)))) throw new ConfigError(`--before must be a version (an integer >= 1), got "${before}"`);
  const body = JSON.stringify(before === undefined ? {} : { beforeVersion: Number(before) });
  const token = await chosenToken(parsed.values);
  let lastError = '';
  // Any node forwards the compaction to the leader.
  for (const base of await chosenEndpoints(parsed.values)) {
    try {
      const res = await request(`${base}/admin/compact`, { method: 'POST', body, headers: { ...authHeaders(token), 'content-type': 'application/json' }, headersTimeout: 60_000, bodyTimeout: 60_000 });
      const answer = (await res.body.json()) as Record<string, unknown>;
      if (res.statusCode !== 200) {
        process.stderr.write(`${JSON.stringify(answer)}\n`);
        return 1;
      }
      process.stdout.write(`history compacted below version ${String(answer['compactedBelow'])} (${String(answer['removed'])} records removed)\n`);
      return 0;
    } catch (e) {
      lastError = String(e);
    }
  }
  process.stderr.write(`no endpoint answered: ${lastError}\n`);
  return 1;
}
