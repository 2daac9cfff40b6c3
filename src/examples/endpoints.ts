/**
 * Where the examples find the cluster: `--endpoints URL,…` / QKV_ENDPOINTS, else the
 * cluster file `npm start` writes (./data/cluster.json), for the transport in --transport
 * (default http). Examples only; an application passes its endpoints to connect().
 */

import { readFile } from 'node:fs/promises';
import type { TransportKind } from '../index.js';

export interface ExampleTarget {
  readonly endpoints: string[];
  readonly transport: TransportKind;
}

export async function exampleTarget(argv: readonly string[] = process.argv.slice(2)): Promise<ExampleTarget> {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  };
  const transport = flag('transport') === 'grpc' ? 'grpc' : 'http';
  const given = flag('endpoints') ?? process.env['QKV_ENDPOINTS'];
  if (given !== undefined && given !== '') return { endpoints: given.split(','), transport };
  const file = flag('cluster-file') ?? './data/cluster.json';
  try {
    const cluster = JSON.parse(await readFile(file, 'utf8')) as { nodes: { http: string; grpc?: string }[] };
    return { endpoints: cluster.nodes.map((n) => (transport === 'grpc' ? (n.grpc ?? '') : n.http)).filter((e) => e !== ''), transport };
  } catch {
    throw new Error(`cannot read ${file}: start a cluster with 'npm start' (or pass --endpoints URL,…)`);
  }
}
