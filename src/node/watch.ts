/**
 * Watches: each watcher receives every change under its prefix from its start version on,
 * exactly once, in version order, read from the replicated history of changes
 * (kv/history.ts) — the same history on every node, so a watcher that reconnects to any
 * node resumes from the version after the last one it got and misses nothing.
 *
 * One hub per node. It is driven, never timed: `applied()` after the state machine
 * applies entries (the fresh records are read once and shared by every watcher that is
 * level with them), `tick()` on the node's ticks (progress messages for watchers that
 * heard nothing for `progressTicks`, and catching up after a snapshot install), so
 * thousands of idle watchers cost no timer each.
 *
 * Flow control. A watcher behind the applied version (it started in the past, or a
 * snapshot carried it forward) reads the history in pages and pauses while its consumer
 * has more than half of `bufferBytesMax` unread; a watcher level with the applied version
 * is sent each change as it is applied, and one whose consumer lets more than
 * `bufferBytesMax` pile up is ended with `slow_consumer` and the last version it was
 * sent, from which it can resume. Nothing is ever skipped silently.
 *
 * Must never: send a version twice or out of order to a watcher, skip a change under its
 * prefix, or buffer without bound.
 */

import type { KeyChange, VersionChanges } from '../kv/history.js';

export interface WatchRequest {
  /** Keys starting with this ('' for all). */
  readonly prefix: string;
  /** First version to deliver (1: from the start of the history still kept; null: from the next change on). */
  readonly fromVersion: number | null;
  /** Send each change's previous record too. */
  readonly prevValue: boolean;
}

export type WatchMessage =
  | { readonly kind: 'changes'; readonly version: number; readonly changes: readonly KeyChange[] }
  /** Everything up to `version` was sent (changes under the prefix, if any). */
  | { readonly kind: 'progress'; readonly version: number };

export type WatchEnd =
  /** `fromVersion` (or the watcher, while paused) fell below the history kept. */
  | { readonly error: 'compacted'; readonly oldestVersion: number }
  /** The consumer did not keep up; resume from `lastVersion` + 1. */
  | { readonly error: 'slow_consumer'; readonly lastVersion: number }
  /** Weak quorums: versions from `fromVersion` on were rolled back and replaced; resume from there. */
  | { readonly error: 'rolled_back'; readonly fromVersion: number }
  | { readonly error: 'shutting_down' };

/** Where a watcher's messages go (an HTTP response, a gRPC stream, a simulated client). */
export interface WatchSink {
  /** Sends one message; returns how many bytes the consumer has not taken yet. */
  send(message: WatchMessage): number;
  /** Calls `fn` once, when the consumer has taken what is buffered. */
  onDrain(fn: () => void): void;
  /** Ends the stream, with why when it is not the consumer's doing. */
  end(reason: WatchEnd | null): void;
}

export interface WatchSource {
  changes(fromVersion: number, versionsMax: number): VersionChanges[];
  compactedBelow(): number;
  appliedIndex(): number;
}

export interface WatchHubOptions {
  readonly bufferBytesMax: number;
  /** A watcher that heard nothing for this many ticks gets a progress message. */
  readonly progressTicks: number;
  readonly watchersMax: number;
  /** Versions a catching-up watcher reads per step. */
  readonly pageVersions: number;
}

interface Watcher {
  readonly id: number;
  readonly prefix: string;
  readonly prevValue: boolean;
  readonly sink: WatchSink;
  /** The next version to look at: everything below it was sent or did not concern the watcher. */
  nextVersion: number;
  /** Level with the hub: fed from `applied()`; else it reads the history itself. */
  live: boolean;
  /** Waiting for its consumer to drain before reading on. */
  paused: boolean;
  lastSentTick: number;
}

export class WatchHub {
  private readonly watchers = new Map<number, Watcher>();
  private nextId = 1;
  /** Highest version the live watchers were fed up to. */
  private fedTo: number;
  private nowTick = 0;
  private stopped = false;
  /**
   * The messages of the records fed last, by watcher shape (prefix, prevValue): watchers
   * alike get the same message object, so a sink can serialize it once for all of them.
   */
  private shared = new Map<string, WatchMessage>();
  /** Planted bug (simulator only): a watch starts after its fromVersion instead of at it. */
  skipFromVersion = false;

  constructor(
    private readonly source: WatchSource,
    private readonly opts: WatchHubOptions,
  ) {
    this.fedTo = source.appliedIndex();
  }

  get size(): number {
    return this.watchers.size;
  }

  /** Starts a watcher; null when the node already has `watchersMax`. Returns its id for `close`. */
  open(request: WatchRequest, sink: WatchSink): number | null {
    if (this.stopped || this.watchers.size >= this.opts.watchersMax) return null;
    const w: Watcher = {
      id: this.nextId++,
      prefix: request.prefix,
      prevValue: request.prevValue,
      sink,
      nextVersion: Math.max(1, (request.fromVersion ?? this.source.appliedIndex() + 1) + (this.skipFromVersion ? 1 : 0)),
      live: false,
      paused: false,
      lastSentTick: this.nowTick,
    };
    this.watchers.set(w.id, w);
    // From the next change: say at once which version that is, so a consumer that must
    // reconnect before any change came knows where to resume.
    if (request.fromVersion === null) sink.send({ kind: 'progress', version: w.nextVersion - 1 });
    this.pump(w);
    return w.id;
  }

  /** The consumer went away: forget the watcher (no message). */
  close(id: number): void {
    this.watchers.delete(id);
  }

  /** The state machine applied entries: feed the live watchers what they changed. */
  applied(): void {
    const applied = this.source.appliedIndex();
    if (applied <= this.fedTo) return;
    if (this.watchers.size === 0) {
      // Nobody to feed: no read (the common case, on the write path).
      this.fedTo = applied;
      return;
    }
    const from = this.fedTo + 1;
    // One read for every live watcher: at most one record per version.
    const records = this.source.changes(from, applied - from + 1).filter((r) => r.version <= applied);
    this.fedTo = applied;
    this.shared = new Map();
    // A snapshot install can carry this node past versions its history no longer holds
    // (compacted on the leader before the snapshot was taken): no watcher may skip them silently.
    const compactedBelow = this.source.compactedBelow();
    for (const w of [...this.watchers.values()]) {
      if (!w.live) continue;
      if (w.nextVersion < compactedBelow) {
        this.end(w, { error: 'compacted', oldestVersion: compactedBelow });
        continue;
      }
      if (w.nextVersion !== from) {
        // Not level after all (cannot happen while feeding is in order): let it read itself.
        w.live = false;
        this.pump(w);
        continue;
      }
      if (!this.feed(w, records, applied)) continue;
      w.nextVersion = applied + 1;
    }
  }

  /** A node tick: progress for quiet watchers, and catching up after a snapshot install. */
  tick(): void {
    this.nowTick++;
    if (this.source.appliedIndex() > this.fedTo) this.applied();
    if (this.nowTick % this.opts.progressTicks !== 0) return;
    for (const w of this.watchers.values()) {
      if (!w.live || this.nowTick - w.lastSentTick < this.opts.progressTicks) continue;
      w.lastSentTick = this.nowTick;
      w.sink.send({ kind: 'progress', version: w.nextVersion - 1 });
    }
  }

  /** Weak quorums: the state from `fromIndex` on is being replaced; watchers past it must start again there. */
  rolledBack(fromIndex: number): void {
    for (const w of [...this.watchers.values()]) {
      if (w.nextVersion > fromIndex) this.end(w, { error: 'rolled_back', fromVersion: fromIndex });
    }
    this.fedTo = Math.min(this.fedTo, fromIndex - 1);
  }

  /** Ends every watcher (the node is stopping). */
  stop(): void {
    this.stopped = true;
    for (const w of [...this.watchers.values()]) this.end(w, { error: 'shutting_down' });
  }

  /**
   * Sends `records` (versions up to `upTo`) to `w`, filtered by its prefix. Returns false
   * when the watcher was ended (slow consumer) or paused (catching up) partway; its
   * `nextVersion` then says where it stopped.
   */
  private feed(w: Watcher, records: readonly VersionChanges[], upTo: number): boolean {
    for (const r of records) {
      if (r.version < w.nextVersion) continue;
      w.nextVersion = r.version + 1;
      const message = this.messageFor(w, r);
      if (message === null) continue;
      const buffered = w.sink.send(message);
      w.lastSentTick = this.nowTick;
      if (w.live && buffered > this.opts.bufferBytesMax) {
        this.end(w, { error: 'slow_consumer', lastVersion: r.version });
        return false;
      }
      if (!w.live && buffered > this.opts.bufferBytesMax / 2 && r.version < upTo) {
        w.paused = true;
        w.sink.onDrain(() => {
          w.paused = false;
          this.pump(w);
        });
        return false;
      }
    }
    return true;
  }

  /** Reads the history for a watcher behind the hub until it is level (then it goes live) or must pause. */
  private pump(w: Watcher): void {
    while (this.watchers.has(w.id) && !w.paused && !w.live) {
      const compactedBelow = this.source.compactedBelow();
      if (w.nextVersion < compactedBelow) return this.end(w, { error: 'compacted', oldestVersion: compactedBelow });
      if (w.nextVersion > this.fedTo) {
        // Level with what the live watchers were fed (or ahead of it: a fromVersion in
        // the future waits for it to come).
        w.live = true;
        return;
      }
      const upTo = this.fedTo;
      const records = this.source.changes(w.nextVersion, this.opts.pageVersions).filter((r) => r.version <= upTo);
      if (!this.feed(w, records, upTo)) return;
      if (records.length < this.opts.pageVersions) w.nextVersion = Math.max(w.nextVersion, upTo + 1);
    }
  }

  /** The message `r` makes for `w` (null: nothing under its prefix), shared by watchers alike while live. */
  private messageFor(w: Watcher, r: VersionChanges): WatchMessage | null {
    const cacheKey = w.live ? `${r.version}\u0000${w.prevValue ? 1 : 0}\u0000${w.prefix}` : null;
    const cached = cacheKey === null ? undefined : this.shared.get(cacheKey);
    if (cached !== undefined) return cached;
    const changes = this.select(w, r.changes);
    const message: WatchMessage | null = changes.length === 0 ? null : { kind: 'changes', version: r.version, changes };
    if (cacheKey !== null && message !== null && this.shared.size < 4096) this.shared.set(cacheKey, message);
    return message;
  }

  private select(w: Watcher, changes: readonly KeyChange[]): readonly KeyChange[] {
    const matching = w.prefix === '' ? changes : changes.filter((c) => c.key.startsWith(w.prefix));
    return w.prevValue ? matching : matching.map((c) => (c.prev === undefined ? c : { key: c.key, value: c.value, prev: undefined }));
  }

  private end(w: Watcher, reason: WatchEnd): void {
    this.watchers.delete(w.id);
    w.sink.end(reason);
  }
}
