/**
 * `quorumkv mode [--write-quorum majority|all|W] [--topology star|chain]`: switches the
 * replication mode of a running cluster live. The leader proposes a configuration entry;
 * every node switches at the same log index, which is printed. Without flags it prints
 * the mode in force.
 */

import { request } from 'undici';
import { ConfigError } from './config.js';
import { clusterFileEndpoints, defaultClusterFile } from './cluster-file.js';

export async function runModeCommand(argv: string[]): Promise<number> {
  let writeQuorum: string | undefined;
  let topology: string | undefined;
  let endpoints: string[] | null = null;
  let clusterFile = defaultClusterFile;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new ConfigError(`${a} needs a value`);
      return v;
    };
    if (a.startsWith('--write-quorum')) writeQuorum = value();
    else if (a.startsWith('--topology')) topology = value();
    else if (a.startsWith('--endpoints')) endpoints = value().split(',').map((e) => e.trim().replace(/\/$/, ''));
    else if (a.startsWith('--cluster-file')) clusterFile = value();
    else throw new ConfigError(`unknown argument ${a} (usage: quorumkv mode [--write-quorum majority|all|W] [--topology star|chain])`);
  }
  if (endpoints === null) endpoints = await clusterFileEndpoints(clusterFile);
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
        ...(change ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
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
