/**
 * Child processes on this machine, for the runners that start nodes (bench clusters, etcd,
 * `quorumkv up`, the integration harness): free loopback ports, stopping a child and
 * waiting for it, and reading all of a dead child's output.
 */

import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

/**
 * Node's own flags for every quorumkv node process this project starts (`quorumkv up`, bench
 * clusters, the integration harness; the Dockerfile and the systemd unit in docs/deploy.md
 * say the same, which deploy.test.ts checks). A 128 MiB first old generation: with V8's
 * default, sized from a live heap under 30 MB, a node replicating large values ran a full
 * collection every 100–200 ms (why, and the figures: docs/architecture.md, "The node
 * process"). A starting size, not a cap.
 */
export const nodeRuntimeFlags: readonly string[] = ['--initial-old-space-size=128'];

/**
 * A loopback port free right now, for a server that will bind it a moment later. It is
 * chosen at random below the kernel's ephemeral range (where port 0 and outgoing connections
 * take theirs), so the busy clients of other tests cannot take it in that moment; a probed
 * port inside the range was lost that way under a full test run. Port 0's choice is the
 * fallback when no port below the range is found free.
 */
export async function freePort(): Promise<number> {
  const high = await ephemeralLow();
  for (let attempt = 0; attempt < probesMax && high > probeLow; attempt++) {
    const port = probeLow + Math.floor(Math.random() * (high - probeLow));
    if (handedOut.includes(port)) continue; // this process may not have bound it yet
    if ((await bound(port)) !== null) return handOut(port);
  }
  return (await bound(0)) ?? Promise.reject(new Error('No free loopback port'));
}

/** Lowest port searched by freePort (below it: well-known services' custom ports). */
const probeLow = 20_000;
const probesMax = 20;
/** The ports this process was given lately, not given twice (a bounded memory). */
const handedOut: number[] = [];
const handedOutMax = 256;

function handOut(port: number): number {
  handedOut.push(port);
  if (handedOut.length > handedOutMax) handedOut.shift();
  return port;
}
let ephemeralLowCached: number | null = null;

/** The first port of the kernel's ephemeral range (Linux's file; 32768, its default, elsewhere). */
async function ephemeralLow(): Promise<number> {
  if (ephemeralLowCached === null) {
    const text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '');
    const low = Number(text.trim().split(/\s+/)[0]);
    ephemeralLowCached = Number.isInteger(low) && low > 0 ? low : 32_768;
  }
  return ephemeralLowCached;
}

/** Binds `port` on 127.0.0.1 and releases it: the port bound, or null when it was taken. */
function bound(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr !== null ? addr.port : null;
      srv.close(() => resolve(got));
    });
  });
}

/** Resolves once an exited child's output pipes are drained and closed (at most 2 s). */
export function stdioClosed(proc: ChildProcess): Promise<void> {
  const open = [proc.stdout, proc.stderr].some((s) => s !== null && !s.destroyed && !s.readableEnded);
  if (!open) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    proc.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Sends `signal` and resolves once the child has exited; with `killAfterMs`, a child still
 * running by then gets SIGKILL.
 */
export async function stopChild(proc: ChildProcess, signal: NodeJS.Signals, killAfterMs: number | null = null): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  const timer = killAfterMs === null || signal === 'SIGKILL' ? null : setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  await exited;
  if (timer !== null) clearTimeout(timer);
}

/** Children SIGKILLed if this process exits first (a benchmark's servers must not outlive it). */
const killedOnExit = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers `proc` to be SIGKILLed should this process exit while it runs. */
export function killOnExit(proc: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const child of killedOnExit) child.kill('SIGKILL');
    });
  }
  killedOnExit.add(proc);
  proc.once('exit', () => killedOnExit.delete(proc));
}
