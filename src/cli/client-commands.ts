/**
 * `quorumkv put|get|del|ls|status`: small client commands over HTTP. Endpoints come from
 * --endpoints or ./data/cluster.json; any node will do (followers forward to the
 * leader), so on a connection error the next endpoint is tried.
 */

import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import { ConfigError } from './config.js';
import type { ClusterFile } from './up.js';

export const clientCommands = ['put', 'get', 'del', 'ls', 'status'];

interface Parsed {
  positional: string[];
  endpoints: string[] | null;
  json: boolean;
  consistency: string | null;
  clusterFile: string;
}

function parse(argv: string[]): Parsed {
  const out: Parsed = { positional: [], endpoints: null, json: false, consistency: null, clusterFile: './data/cluster.json' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new ConfigError(`${a} needs a value`);
      return v;
    };
    if (a === '--json') out.json = true;
    else if (a.startsWith('--endpoints')) out.endpoints = value().split(',').map((e) => e.trim().replace(/\/$/, '')).filter(Boolean);
    else if (a.startsWith('--consistency')) out.consistency = value();
    else if (a.startsWith('--cluster-file')) out.clusterFile = value();
    else if (a.startsWith('--')) throw new ConfigError(`unknown flag ${a}`);
    else out.positional.push(a);
  }
  return out;
}

async function endpointsOf(p: Parsed): Promise<string[]> {
  if (p.endpoints !== null && p.endpoints.length > 0) return p.endpoints;
  let file: ClusterFile;
  try {
    file = JSON.parse(await readFile(p.clusterFile, 'utf8')) as ClusterFile;
  } catch {
    throw new ConfigError(`no --endpoints given and ${p.clusterFile} cannot be read (start a cluster with 'npm start')`);
  }
  return file.nodes.map((n) => n.http);
}

interface Answer {
  status: number;
  body: unknown;
}

async function call(endpoints: string[], method: 'GET' | 'PUT' | 'DELETE', pathAndQuery: string, body?: unknown): Promise<Answer> {
  let lastError: unknown = null;
  for (const base of endpoints) {
    try {
      const res = await request(base + pathAndQuery, {
        method,
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: text ? (JSON.parse(text) as unknown) : null };
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(`no endpoint answered (${endpoints.join(', ')}): ${String(lastError)}`);
}

export async function runClientCommand(command: string, argv: string[]): Promise<number> {
  const p = parse(argv);
  const endpoints = await endpointsOf(p);
  const enc = encodeURIComponent;
  const q = p.consistency ? `?consistency=${enc(p.consistency)}` : '';
  let answer: Answer;
  switch (command) {
    case 'put': {
      const [key, value] = p.positional;
      if (key === undefined || value === undefined) throw new ConfigError('usage: quorumkv put KEY VALUE');
      answer = await call(endpoints, 'PUT', `/kv/${enc(key)}`, { value });
      break;
    }
    case 'get': {
      const [key] = p.positional;
      if (key === undefined) throw new ConfigError('usage: quorumkv get KEY');
      answer = await call(endpoints, 'GET', `/kv/${enc(key)}${q}`);
      break;
    }
    case 'del': {
      const [key] = p.positional;
      if (key === undefined) throw new ConfigError('usage: quorumkv del KEY');
      answer = await call(endpoints, 'DELETE', `/kv/${enc(key)}`);
      break;
    }
    case 'ls': {
      const prefix = p.positional[0] ?? '';
      const items: unknown[] = [];
      let after: string | null = null;
      do {
        const page = await call(endpoints, 'GET', `/kv?prefix=${enc(prefix)}&limit=1000${after !== null ? `&after=${enc(after)}` : ''}${p.consistency ? `&consistency=${enc(p.consistency)}` : ''}`);
        if (page.status !== 200) {
          answer = page;
          break;
        }
        const body = page.body as { items: unknown[]; next: string | null };
        items.push(...body.items);
        after = body.next;
      } while (after !== null);
      answer ??= { status: 200, body: { items } };
      break;
    }
    default: {
      const statuses = await Promise.all(endpoints.map((e) => call([e], 'GET', '/status').then((a) => a.body, (err: unknown) => ({ endpoint: e, error: String(err) }))));
      answer = { status: 200, body: statuses };
    }
  }
  print(command, answer, p.json);
  return answer.status >= 200 && answer.status < 300 ? 0 : 1;
}

function print(command: string, a: Answer, json: boolean): void {
  if (json || a.status >= 300) {
    (a.status >= 300 ? process.stderr : process.stdout).write(JSON.stringify(a.body, null, json ? 0 : 2) + '\n');
    return;
  }
  const b = a.body as Record<string, unknown>;
  switch (command) {
    case 'put':
    case 'del':
      process.stdout.write(`${String(b['key'])} version ${String(b['version'])}${command === 'del' ? (b['deleted'] ? ' deleted' : ' (was absent)') : ''}\n`);
      return;
    case 'get':
      process.stdout.write(`${String(b['value'])}\n`);
      return;
    case 'ls':
      for (const item of b['items'] as { key: string; value: string; version: number }[]) process.stdout.write(`${item.key}\t${item.value}\t(v${item.version})\n`);
      return;
    default:
      for (const s of a.body as Record<string, unknown>[]) {
        if ('error' in s) process.stdout.write(`${String(s['endpoint'])}  unreachable: ${String(s['error'])}\n`);
        else process.stdout.write(`${String(s['id'])}  ${String(s['role']).padEnd(9)} term ${String(s['term'])}  commit ${String(s['commitIndex'])}  applied ${String(s['appliedIndex'])}  keys ${String(s['keyCount'])}\n`);
      }
  }
}
