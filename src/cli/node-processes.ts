/**
 * The node processes of a local cluster, owned by `quorumkv up`: each a child running
 * `quorumkv node`, its output appended to DIR/<id>.log. The table remembers each node's
 * exact arguments, so a node whose process exited can be started again as it was
 * (restart), and it pauses and resumes them (SIGSTOP/SIGCONT), knowing which are paused.
 *
 * Must never: restart a node by itself (a node that dies stays down until someone asks:
 * the fault a user injected must stay visible), start a second process for a node whose
 * process runs or is paused, or lose a child (every exit is seen; stopAll waits for each,
 * waking paused ones first, since a stopped process cannot act on SIGTERM).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { nodeRuntimeFlags, stopChild } from '../bench/child.js';

/** What a node's process is doing: `exited` until someone restarts it. */
export type NodeProcessState = 'running' | 'paused' | 'exited';

/** One node's process as the table knows it (what the supervisor's GET /nodes lists). */
export interface NodeProcessInfo {
  readonly id: string;
  /** The live process's pid; the last one's after it exited. */
  readonly pid: number;
  readonly state: NodeProcessState;
  /** How the last process ended ("signal SIGKILL", "code 1"); null while the first one runs. */
  readonly lastExit: string | null;
  /** Processes started for this node by this table: 1, then one more per restart. */
  readonly starts: number;
  readonly logFile: string;
}

/** Why the table refused an operation on a node: the supervisor answers with `code`. */
export class NodeProcessRefusal extends Error {
  constructor(
    readonly code: 'not_found' | 'process_running' | 'process_not_running',
    message: string,
  ) {
    super(message);
  }
}

export interface NodeProcessesOptions {
  /** The quorumkv entry point (cli/main.js) the children run. */
  readonly mainPath: string;
  /** Logs go to DIR/<id>.log. */
  readonly dataDir: string;
  /** A node's process exited (`how`: "signal SIGKILL", "code 0"); `expected` while stopAll runs. */
  readonly onExit: (id: string, how: string, expected: boolean) => void;
  /** A node's process was started (first start or restart), with its pid. */
  readonly onStart: (id: string, pid: number) => void;
}

interface Slot {
  readonly args: readonly string[];
  child: ChildProcess | null;
  pid: number;
  paused: boolean;
  lastExit: string | null;
  starts: number;
}

export class NodeProcesses {
  private readonly slots = new Map<string, Slot>();
  private stopping = false;

  constructor(private readonly options: NodeProcessesOptions) {}

  /** Starts node `id` with `args` (after `node`), remembered for restart. Refuses a node it already runs. */
  start(id: string, args: readonly string[]): NodeProcessInfo {
    const known = this.slots.get(id);
    if (known !== undefined && known.child !== null) throw new NodeProcessRefusal('process_running', `${id} already runs (pid ${known.pid})`);
    const slot: Slot = { args: [...args], child: null, pid: 0, paused: false, lastExit: known?.lastExit ?? null, starts: known?.starts ?? 0 };
    this.slots.set(id, slot);
    this.spawn(id, slot);
    return this.info(id, slot);
  }

  /**
   * Starts node `id` again with exactly the arguments of its first start. Refuses a node
   * whose process runs or is paused (kill it first), and one this table never started.
   */
  restart(id: string): NodeProcessInfo {
    const slot = this.slot(id);
    if (slot.child !== null) {
      const how = slot.paused ? `is paused (pid ${slot.pid}): resume it, or kill it first` : `is running (pid ${slot.pid}): kill it first to restart it`;
      throw new NodeProcessRefusal('process_running', `${id} ${how}`);
    }
    if (this.stopping) throw new NodeProcessRefusal('process_not_running', `the cluster is stopping: ${id} stays down`);
    this.spawn(id, slot);
    return this.info(id, slot);
  }

  /** SIGSTOP: the process freezes with its sockets open (a GC pause, a VM stall). */
  pause(id: string): NodeProcessInfo {
    return this.signal(id, 'SIGSTOP', true);
  }

  /** SIGCONT: a paused process runs again. */
  resume(id: string): NodeProcessInfo {
    return this.signal(id, 'SIGCONT', false);
  }

  /** Every node this table started, in start order. */
  list(): NodeProcessInfo[] {
    return [...this.slots].map(([id, slot]) => this.info(id, slot));
  }

  /** Node processes alive now (running or paused). */
  get aliveCount(): number {
    return [...this.slots.values()].filter((s) => s.child !== null).length;
  }

  isAlive(id: string): boolean {
    const slot = this.slots.get(id);
    return slot !== undefined && slot.child !== null;
  }

  /** Stops every process with `signal` (paused ones are woken first) and waits for each, SIGKILL after `killAfterMs`. */
  async stopAll(signal: NodeJS.Signals, killAfterMs: number): Promise<void> {
    this.stopping = true;
    const alive = [...this.slots.values()].filter((s): s is Slot & { child: ChildProcess } => s.child !== null);
    for (const s of alive) if (s.paused) s.child.kill('SIGCONT');
    await Promise.all(alive.map((s) => stopChild(s.child, signal, killAfterMs)));
  }

  private spawn(id: string, slot: Slot): void {
    const logFile = this.logFileOf(id);
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(process.execPath, [...nodeRuntimeFlags, this.options.mainPath, 'node', ...slot.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    slot.child = child;
    slot.pid = child.pid ?? 0;
    slot.paused = false;
    slot.starts += 1;
    child.once('exit', (code, signal) => {
      if (slot.child !== child) return;
      slot.child = null;
      slot.paused = false;
      slot.lastExit = signal !== null ? `signal ${signal}` : `code ${String(code)}`;
      this.options.onExit(id, slot.lastExit, this.stopping);
    });
    // A spawn that fails (no such file, no pids left) ends with 'exit' too, or only 'error'.
    child.once('error', () => {
      if (slot.child === child && child.pid === undefined) {
        slot.child = null;
        slot.lastExit = 'could not start';
        this.options.onExit(id, slot.lastExit, this.stopping);
      }
    });
    if (child.pid !== undefined) this.options.onStart(id, child.pid);
  }

  /** Refuses what would do nothing, so the caller learns the state it did not expect: pausing a paused process, resuming a running one. */
  private signal(id: string, name: 'SIGSTOP' | 'SIGCONT', paused: boolean): NodeProcessInfo {
    const slot = this.slot(id);
    if (slot.child === null) throw new NodeProcessRefusal('process_not_running', `${id} is not running (${slot.lastExit ?? 'never started'}): nothing to ${paused ? 'pause' : 'resume'}`);
    if (paused && slot.paused) throw new NodeProcessRefusal('process_not_running', `${id} is already paused (pid ${slot.pid}): resume it first`);
    if (!paused && !slot.paused) throw new NodeProcessRefusal('process_running', `${id} is running, not paused (pid ${slot.pid}): nothing to resume (stopped by hand? kill -CONT ${slot.pid})`);
    slot.child.kill(name);
    slot.paused = paused;
    return this.info(id, slot);
  }

  private slot(id: string): Slot {
    const slot = this.slots.get(id);
    if (slot === undefined) throw new NodeProcessRefusal('not_found', `no node ${JSON.stringify(id)} here (nodes: ${[...this.slots.keys()].join(', ')})`);
    return slot;
  }

  private logFileOf(id: string): string {
    return path.join(this.options.dataDir, `${id}.log`);
  }

  private info(id: string, slot: Slot): NodeProcessInfo {
    const state: NodeProcessState = slot.child === null ? 'exited' : slot.paused ? 'paused' : 'running';
    return { id, pid: slot.pid, state, lastExit: slot.lastExit, starts: slot.starts, logFile: this.logFileOf(id) };
  }
}
