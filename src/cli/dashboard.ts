/**
 * `quorumkv dashboard`: prints the URL of the live dashboard (GET /ui) of the first node
 * that serves it, from --endpoints or the cluster file. Every node serves the whole
 * cluster's view; this command only finds one that answers. The URL alone goes to stdout
 * (scripts can open it); what the page offers goes to stderr.
 * Exit status 0 with a URL, 1 when no node answers.
 */

import { request } from 'undici';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { chosenEndpoints, chosenToken, clusterFlags } from './cluster-file.js';

export const dashboardCommand: CommandSpec = {
  name: 'dashboard',
  summary: "print the URL of a live node's web dashboard (members, mode, events; controls with --faults)",
  flags: { ...clusterFlags },
  epilog: 'Open the URL in a browser. The controls (writes, mode, partitions, kills) appear only on clusters started with --faults.',
};

/** A node that is down or paused must not hold the command up. */
const askTimeoutMs = 1_500;

/** Whether `base` serves the dashboard now, and with controls. */
async function probe(base: string): Promise<{ readonly controls: boolean } | string> {
  try {
    const res = await request(`${base}/ui`, { signal: AbortSignal.timeout(askTimeoutMs) });
    const html = await res.body.text();
    if (res.statusCode !== 200) return `answered ${res.statusCode}`;
    return { controls: html.includes('data-controls="true"') };
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export async function runDashboardCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(dashboardCommand, argv);
  if (parsed === null) return 0;
  const endpoints = await chosenEndpoints(parsed.values);
  const problems: string[] = [];
  for (const base of endpoints) {
    const answer = await probe(base);
    if (typeof answer === 'string') {
      problems.push(`${base}: ${answer}`);
      continue;
    }
    // The fragment never reaches a server or its logs; the page keeps the token for its controls.
    const token = await chosenToken(parsed.values);
    process.stdout.write(`${base}/ui${token === null ? '' : `#token=${encodeURIComponent(token)}`}\n`);
    process.stderr.write(answer.controls ? 'controls: on (the cluster runs with --faults)\n' : 'controls: off (read-only; start the cluster with --faults for them)\n');
    return 0;
  }
  process.stderr.write(`quorumkv dashboard: no node serves the dashboard:\n  ${problems.join('\n  ')}\n`);
  return 1;
}
