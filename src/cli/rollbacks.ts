/**
 * `quorumkv rollbacks`: every acknowledged write that a weak-quorum failover lost, gathered
 * from every node's GET /rollbacks and shown once. A lost write can be recorded by several
 * nodes (each that had applied or acknowledged it); it is one row, naming them all.
 * Exit status 0 (also when there are none), 1 when a node could not be asked.
 */

import { request } from 'undici';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { authHeaders, chosenEndpoints, chosenToken, clusterFlags } from './cluster-file.js';

export const rollbacksCommand: CommandSpec = {
  name: 'rollbacks',
  summary: "acknowledged writes lost in weak-quorum failovers, from every node's records",
  flags: {
    ...clusterFlags,
    json: { kind: 'bool', help: 'one JSON object per lost write (with the nodes that recorded it)' },
  },
};

/** One lost write, as every node that recorded it describes it. */
export interface LostWrite {
  readonly version: number;
  readonly term: number;
  readonly op?: string;
  readonly key?: string;
  readonly value?: string;
  readonly nodes: string[];
  readonly [field: string]: unknown;
}

const askTimeoutMs = 5_000;

/** Merges per-node records: one entry per (version, term), in version order. */
export function mergeRollbacks(perNode: readonly { readonly node: string; readonly records: readonly Record<string, unknown>[] }[]): LostWrite[] {
  const byWrite = new Map<string, LostWrite>();
  for (const { node, records } of perNode) {
    for (const record of records) {
      const id = `${String(record['version'])}:${String(record['term'])}`;
      const seen = byWrite.get(id);
      if (seen === undefined) byWrite.set(id, { ...record, version: Number(record['version']), term: Number(record['term']), nodes: [node] });
      else if (!seen.nodes.includes(node)) seen.nodes.push(node);
    }
  }
  return [...byWrite.values()].sort((a, b) => a.version - b.version || a.term - b.term);
}

export async function runRollbacksCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(rollbacksCommand, argv);
  if (parsed === null) return 0;
  const v = parsed.values;
  const endpoints = await chosenEndpoints(v);
  const token = await chosenToken(v);
  let failed = false;
  const perNode = await Promise.all(
    endpoints.map(async (base) => {
      try {
        const res = await request(`${base}/rollbacks`, { headers: authHeaders(token), headersTimeout: askTimeoutMs, bodyTimeout: askTimeoutMs });
        const body = (await res.body.json()) as { node?: unknown; records?: unknown };
        if (res.statusCode !== 200 || typeof body.node !== 'string' || !Array.isArray(body.records)) throw new Error(`answered ${res.statusCode}`);
        return { node: body.node, records: body.records as Record<string, unknown>[] };
      } catch (error) {
        failed = true;
        process.stderr.write(`quorumkv rollbacks: ${base}: ${error instanceof Error ? error.message : String(error)}\n`);
        return { node: base, records: [] };
      }
    }),
  );
  const lost = mergeRollbacks(perNode);
  if (v.get('json') === 'true') {
    for (const write of lost) process.stdout.write(`${JSON.stringify(write)}\n`);
  } else if (lost.length === 0) {
    process.stdout.write('no acknowledged write was lost (no rollback records)\n');
  } else {
    process.stdout.write('version  term  op      key  value  recorded by\n');
    for (const w of lost) {
      process.stdout.write(`${w.version}  ${w.term}  ${w.op ?? w['kind'] ?? '?'}  ${w.key ?? ''}  ${w.value ?? ''}  ${w.nodes.join(',')}\n`);
    }
    process.stdout.write(`${lost.length} lost write(s)\n`);
  }
  return failed ? 1 : 0;
}
