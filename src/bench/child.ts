/**
 * Child processes on this machine, for the runners that start nodes (bench clusters, etcd,
 * `quorumkv up`, the integration harness): free loopback ports, stopping a child and
 * waiting for it, and reading all of a dead child's output.
 */

import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A port the OS says is free right now (bound to port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
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
