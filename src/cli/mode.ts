/**
 * `quorumkv mode [--write-quorum majority|all|W] [--topology star|chain]`: switches the
 * replication mode of a running cluster live. The leader proposes a configuration entry;
 * every node switches at the same log index, which is printed. Without flags it prints
 * the mode in force.
 */

import { request } from 'undici';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { authHeaders, chosenEndpoints, chosenToken, clusterFlags } from './cluster-file.js';

export const modeCommand: CommandSpec = {
  name: 'mode',
  summary: 'show the replication mode, or switch it live on a running cluster',
  flags: {
    'write-quorum': { kind: 'value', help: 'majority, all, or W (follower acks before a write is acknowledged)' },
    topology: { kind: 'value', help: 'star (the leader sends to all) or chain (each node to the next)' },
    ...clusterFlags,
  },
  epilog: 'Without --write-quorum or --topology it prints the mode in force.',
};

export async function runModeCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(modeCommand, argv);
  if (parsed === null) return 0;
  const writeQuorum = parsed.values.get('write-quorum');
  const topology = parsed.values.get('topology');
  const endpoints = await chosenEndpoints(parsed.values);
  const token = await chosenToken(parsed.values);
  const body: Record<string, unknown> = {};
  if (writeQuorum !== undefined) body['writeQuorum'] = /^\d+$/.test(writeQuorum) ? Number(writeQuorum) : writeQuorum;
  if (topology !== undefined) body['topology'] = topology;
  let lastError = '';
  for (const base of endpoints) {
    try {
      const change = Object.keys(body).length > 0;
      const res = await request(`${base}${change ? '/admin/mode' : '/status'}`, {
        method: change ? 'PUT' : 'GET',
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
        headers: { ...authHeaders(token), ...(change ? { 'content-type': 'application/json' } : {}) },
        ...(change ? { body: JSON.stringify(body) } : {}),
      });
      const answer = (await res.body.json()) as Record<string, unknown>;
      if (res.statusCode !== 200) {
        process.stderr.write(`${JSON.stringify(answer)}\n`);
        return 1;
      }
      const mode = (change ? answer : answer['mode']) as Record<string, unknown>;
      process.stdout.write(`write quorum ${String(mode['writeQuorum'])}, topology ${String(mode['topology'])}, in force since log index ${String(mode['sinceIndex'])}\n`);
      return 0;
    } catch (e) {
      lastError = String(e);
    }
  }
  process.stderr.write(`no endpoint answered: ${lastError}\n`);
  return 1;
}
