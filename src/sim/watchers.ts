/**
 * Watches in the simulator. `HistoryReference` keeps, for every committed version, the
 * changes it made as the first node to apply it recorded them (every later node must
 * record the same: `history-agreement`). `SimWatcher`s watch a prefix from a version on a
 * node, and when their stream ends (the node crashed or stopped, they were too slow, they
 * hung up on purpose) resume on another node from the version after the last one they got.
 * Every message is checked against the reference as it arrives:
 *   - `watch-order`: a version at or below one already delivered (a duplicate or reordering);
 *   - `watch-gap`:   a version with changes under the prefix skipped between two messages,
 *                    or before a progress mark that claims everything up to it was sent;
 *   - `watch-content`: a version's changes differ from what the reference says it changed.
 * Only under a majority-like mode (entries applied only once committed): a weak quorum's
 * applied entries can be rolled back, and watches then end with rolled_back instead.
 *
 * Must never: draw from a generator other than its own, or record what no node applied.
 */

import type { Entry } from '../core/types.js';
import type { KeyChange } from '../kv/types.js';
import type { NodeDriver } from '../node/driver.js';
import type { WatchEnd, WatchMessage, WatchSink } from '../node/watch.js';
import type { Prng } from '../stdx/prng.js';

export class HistoryReference {
  private readonly byVersion = new Map<number, readonly KeyChange[]>();
  private highest = 0;

  /** Records what `driver` just applied; returns a problem when it disagrees with an earlier node. */
  onApplied(driver: NodeDriver, entries: readonly Entry[]): string | null {
    for (const e of entries) {
      const record = driver.stateMachine.changes(e.index, 1)[0];
      const changes = record?.version === e.index ? record.changes : [];
      const known = this.byVersion.get(e.index);
      if (known === undefined) {
        this.byVersion.set(e.index, changes);
        this.highest = Math.max(this.highest, e.index);
      } else if (canonical(known) !== canonical(changes)) {
        return `${driver.id} recorded version ${e.index} as ${canonical(changes)}, another node as ${canonical(known)}`;
      }
    }
    return null;
  }

  /** The changes of `version` (empty when it changed nothing), or undefined when no node applied it yet. */
  at(version: number): readonly KeyChange[] | undefined {
    return this.byVersion.get(version);
  }

  get highestVersion(): number {
    return this.highest;
  }
}

function canonical(changes: readonly KeyChange[]): string {
  return JSON.stringify(changes.map((c) => [c.key, text(c.value), c.prev === undefined ? null : [text(c.prev.value), c.prev.version]]));
}

function text(value: KeyChange['value']): string | null {
  return value === undefined ? null : typeof value === 'string' ? `s:${value}` : `b:${Buffer.from(value).toString('hex')}`;
}

export interface WatcherWorld {
  nowUs(): number;
  /** Runs `run` after `delayUs` (the watcher's own events). */
  at(delayUs: number, label: string, run: () => void): void;
  /** The driver of node `index` if it is up and not paused, else null. */
  liveDriver(index: number): NodeDriver | null;
  /** The driver of node `index` if it is up or paused, else null (it crashed; a restart makes a new one). */
  runningDriver(index: number): NodeDriver | null;
  readonly nodeCount: number;
  readonly reference: HistoryReference;
  /** A broken guarantee: throws unless the run switched the check off. */
  check(property: string, details: string): void;
  note(line: string): void;
}

export interface WatcherStats {
  opened: number;
  versionsDelivered: number;
  ended: number;
}

/** One watcher: a prefix, a next version, and the node it currently reads from. */
export class SimWatcher {
  private next: number | null = null;
  private node = -1;
  private id: number | null = null;
  /** Bumped on every (re)open: messages of an earlier stream are ignored. */
  private generation = 0;

  constructor(
    readonly name: string,
    private readonly world: WatcherWorld,
    private readonly prng: Prng,
    private readonly prefix: string,
    private readonly prevValue: boolean,
    private readonly stats: WatcherStats,
  ) {}

  start(): void {
    this.world.at(this.prng.intBetween(1_000, 200_000), `${this.name} opens`, () => {
      // From a recent version (so the history has it) or from the next change.
      const highest = this.world.reference.highestVersion;
      this.next = highest === 0 || this.prng.chance(0.3) ? null : Math.max(1, highest - this.prng.intBetween(0, 40));
      this.open();
    });
  }

  private open(): void {
    const node = this.prng.intBetween(0, this.world.nodeCount - 1);
    const driver = this.world.liveDriver(node);
    const generation = ++this.generation;
    if (driver === null) return this.retry('node down');
    this.node = node;
    const sink: WatchSink = {
      send: (m) => (generation === this.generation ? this.receive(m) : 0),
      onDrain: (fn) => this.drainLater(node, driver, fn),
      end: (reason) => {
        if (generation === this.generation) this.ended(reason);
      },
    };
    this.stats.opened++;
    this.world.note(`${this.name} watches ${JSON.stringify(this.prefix)} on ${driver.id} from ${this.next ?? 'the next change'}`);
    driver.submitWatch({ prefix: this.prefix, fromVersion: this.next, prevValue: this.prevValue }, sink, { consistency: 'local', timeoutMs: 1_000 }, (err, id) => {
      if (generation !== this.generation) return;
      if (err !== null || id === undefined) return this.retry(err?.code ?? 'refused');
      this.id = id;
      // Now and then hang up on purpose and resume elsewhere.
      if (this.prng.chance(0.3)) this.world.at(this.prng.intBetween(50_000, 800_000), `${this.name} hangs up`, () => this.hangUp(generation));
    });
  }

  /**
   * The stream's consumer catches up later: `fn` runs then, as a socket's 'drain' would. A
   * node that crashed (or restarted) in between took the stream with it: nothing runs. A
   * paused one drains once it runs again.
   */
  private drainLater(node: number, driver: NodeDriver, fn: () => void): void {
    this.world.at(this.prng.intBetween(1_000, 30_000), `${this.name} drains`, () => {
      if (this.world.runningDriver(node) !== driver) return;
      if (this.world.liveDriver(node) === null) return this.drainLater(node, driver, fn);
      fn();
    });
  }

  private hangUp(generation: number): void {
    if (generation !== this.generation || this.id === null) return;
    this.world.liveDriver(this.node)?.unwatch(this.id);
    this.id = null;
    this.retry('hung up');
  }

  private retry(why: string): void {
    this.generation++;
    this.id = null;
    this.world.at(this.prng.intBetween(5_000, 60_000), `${this.name} reconnects (${why})`, () => this.open());
  }

  private ended(reason: WatchEnd | null): void {
    this.stats.ended++;
    if (reason?.error === 'compacted') {
      if (this.next !== null && reason.oldestVersion <= this.next) this.world.check('watch-gap', `${this.name}: compacted at ${reason.oldestVersion}, below the next version ${this.next} it asked for`);
      // Start over from what is kept: the versions in between are lost to this watcher, and it said so.
      this.next = reason.oldestVersion;
    }
    this.retry(reason?.error ?? 'ended');
  }

  /** Checks one message; returns the bytes "left unread" (now and then too many: a slow consumer). */
  private receive(m: WatchMessage): number {
    const ref = this.world.reference;
    const upTo = m.version;
    const from = this.next ?? upTo + (m.kind === 'progress' ? 1 : 0);
    if (m.kind === 'changes' && this.next !== null && m.version < this.next) {
      this.world.check('watch-order', `${this.name}: version ${m.version} after ${this.next - 1} was delivered`);
    }
    const gapEnd = m.kind === 'changes' ? upTo - 1 : upTo;
    for (let v = from; v <= gapEnd; v++) {
      const missed = ref.at(v)?.filter((c) => c.key.startsWith(this.prefix)) ?? [];
      if (missed.length > 0) this.world.check('watch-gap', `${this.name}: version ${v} changed ${missed.map((c) => c.key).join(', ')} under ${JSON.stringify(this.prefix)} and was skipped (${m.kind} ${upTo} came from ${this.node >= 0 ? `n${this.node + 1}` : '?'})`);
    }
    if (m.kind === 'changes') {
      const expected = ref.at(m.version)?.filter((c) => c.key.startsWith(this.prefix)).map((c) => (this.prevValue ? c : { ...c, prev: undefined }));
      if (expected === undefined || canonical(expected) !== canonical(m.changes)) {
        this.world.check('watch-content', `${this.name}: version ${m.version} delivered as ${canonical(m.changes)}, the history says ${expected === undefined ? 'nothing applied it' : canonical(expected)}`);
      }
      this.stats.versionsDelivered++;
    }
    this.next = Math.max(this.next ?? 0, upTo + 1);
    return this.prng.chance(0.003) ? Number.MAX_SAFE_INTEGER : 0;
  }
}
