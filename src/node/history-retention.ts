/**
 * When the leader compacts the history (kv/history.ts), by two limits, either of which is
 * enough: a version is compacted once it is more than `historyRetentionVersions` behind the
 * applied index (etcd's `--auto-compaction-mode revision`), or once it was applied more than
 * `historyRetentionTicks` ago (etcd's `periodic`). The version limit always applies, so the
 * history stays bounded however fast writes come; the time limit only ever shortens it.
 *
 * How old a version is comes from this node's own memory: a bounded ring of samples
 * (applied index, tick when this node had applied it), taken on every node, leader or not.
 * A sample can only make a version look younger than it is (versions applied between two
 * samples carry the later one's tick), so the rule errs towards keeping. Nothing of it is
 * replicated: a node that took office after a failover judges by the times it applied the
 * versions as a follower (a little later than the old leader did), and a node that
 * restarted stamps everything it held at start-up with its start tick. Either way the
 * history is kept longer than the window, never shorter.
 *
 * Each limit fires only once it is 10% over (versions, or ticks), so that compact entries,
 * which are log entries themselves, stay rare; and the time limit only when the history
 * holds a record it would remove, so that an idle cluster stops proposing them. Once fired,
 * the compaction goes in steps of at most `stepVersions` versions, one entry after the other,
 * until it reaches the target: every node applies a compact entry at the same index, in one
 * synchronous pass, so one entry that removed the whole 10% (10,000 versions by default,
 * 60–110 ms under load) stalled the whole cluster at once.
 *
 * Must never: read a clock (time is the tick count passed in), propose anything itself
 * (the driver does, one compact in flight at a time), or keep more than `samplesMax` samples.
 */

import type { KvStateMachine } from '../kv/state-machine.js';
import { assert } from '../stdx/assert.js';

export interface HistoryRetentionOptions {
  /** Versions kept behind the applied index; older ones are compacted. At least 1. */
  readonly historyRetentionVersions: number;
  /** Ticks a version is kept after this node applied it (0 or absent: no time limit). */
  readonly historyRetentionTicks?: number;
}

/** What the retention rule reads of the state machine (kv/state-machine.ts). */
export type HistoryState = Pick<KvStateMachine, 'appliedIndex' | 'compactedBelow' | 'changes'>;

/** Samples kept of (applied index, tick): they span about two windows, so the rule's resolution is a 500th of one. */
export const retentionSamplesMax = 1024;

/**
 * Versions one compact entry covers, unless writes outrun the steps. Applying one costs
 * every node ≈ 3–7 µs per version (reading, decoding and deleting the history's records), so
 * a step is a pause of a few milliseconds; one step a tick (50 ms) compacts 20,000 versions a
 * second.
 */
export const compactStepVersionsDefault = 1024;

export class HistoryRetention {
  private readonly versionsKept: number;
  /** How far over the version limit the history may go before a compaction fires (10%). */
  private readonly slackVersions: number;
  private readonly ticksKept: number;
  private readonly sampleEveryTicks: number;
  /** Ring of samples, oldest at `head`: version[i] was applied here by tick[i]. */
  private readonly versions: number[] = [];
  private readonly ticks: number[] = [];
  private head = 0;
  /** The oldest recorded change's version as read at a compaction point (null: none recorded yet). */
  private oldestRecorded: { readonly compactedBelow: number; readonly version: number } | null = null;
  /** A compaction that fired is under way: steps go on until it reaches its target. */
  private stepping = false;

  constructor(
    options: HistoryRetentionOptions,
    private readonly samplesMax = retentionSamplesMax,
    private readonly stepVersions = compactStepVersionsDefault,
  ) {
    this.versionsKept = options.historyRetentionVersions;
    this.ticksKept = options.historyRetentionTicks ?? 0;
    this.slackVersions = Math.max(1, this.versionsKept / 10);
    assert(Number.isSafeInteger(this.versionsKept) && this.versionsKept >= 1, () => `historyRetentionVersions must be an integer >= 1, got ${this.versionsKept}`);
    assert(Number.isSafeInteger(this.ticksKept) && this.ticksKept >= 0, () => `historyRetentionTicks must be an integer >= 0, got ${this.ticksKept}`);
    assert(Number.isSafeInteger(samplesMax) && samplesMax >= 4, () => `samplesMax must be an integer >= 4, got ${samplesMax}`);
    assert(Number.isSafeInteger(stepVersions) && stepVersions >= 1, () => `stepVersions must be an integer >= 1, got ${stepVersions}`);
    // Spaced so that the ring covers two windows: the one kept and the 10% slack beyond it.
    this.sampleEveryTicks = Math.max(1, Math.ceil((2 * this.ticksKept) / samplesMax));
  }

  /** Every node, every tick: notes how far this node has applied. */
  noteApplied(appliedIndex: number, nowTick: number): void {
    if (this.ticksKept === 0) return;
    const count = this.versions.length;
    const newest = (this.head + count - 1) % this.samplesMax;
    if (count > 0 && (this.versions[newest] === appliedIndex || nowTick - (this.ticks[newest] as number) < this.sampleEveryTicks)) return;
    if (count < this.samplesMax) {
      this.versions.push(appliedIndex);
      this.ticks.push(nowTick);
      return;
    }
    this.versions[this.head] = appliedIndex;
    this.ticks[this.head] = nowTick;
    this.head = (this.head + 1) % this.samplesMax;
  }

  /**
   * The version below which the leader should compact now (the `beforeVersion` of a compact
   * entry), or null when neither limit is 10% over and no compaction is under way. At most
   * `stepVersions` beyond what is compacted already; called again once that entry applied,
   * it gives the next step, until the target (the limits as they then stand) is reached.
   */
  compactBelow(state: HistoryState, nowTick: number): number | null {
    const compactedBelow = state.compactedBelow();
    const byVersions = state.appliedIndex() - this.versionsKept + 1;
    const versionsDue = byVersions - compactedBelow >= this.slackVersions;
    const byTime = this.ticksKept === 0 ? 0 : this.appliedBy(nowTick - this.ticksKept) + 1;
    const timeDue = byTime > compactedBelow && this.timeDue(state, compactedBelow, nowTick);
    const target = Math.max(byVersions, byTime);
    if (!(versionsDue || timeDue || (this.stepping && target > compactedBelow))) {
      this.stepping = false;
      return null;
    }
    // Writes faster than a step a tick must not leave the history growing: whatever is
    // beyond the slack, half of it goes in this step (never seen below 20,000 writes a second).
    const step = Math.max(this.stepVersions, Math.ceil((target - compactedBelow - this.slackVersions) / 2));
    const below = Math.min(target, compactedBelow + step);
    this.stepping = below < target;
    return below;
  }

  /** The oldest change recorded was applied more than the window and its slack ago. */
  private timeDue(state: HistoryState, compactedBelow: number, nowTick: number): boolean {
    const old = this.appliedBy(nowTick - this.ticksKept - Math.floor(this.ticksKept / 10));
    if (old < compactedBelow) return false;
    // The oldest change the history still records (versions without client changes have none).
    // It stays the oldest until the next compaction, so it is read once per compaction, not per tick.
    if (this.oldestRecorded?.compactedBelow !== compactedBelow) {
      const version = state.changes(compactedBelow, 1)[0]?.version;
      this.oldestRecorded = version === undefined ? null : { compactedBelow, version };
    }
    return this.oldestRecorded !== null && this.oldestRecorded.version <= old;
  }

  /** The highest version this node had applied by `tick`, as far as its samples tell (0: none that old). */
  private appliedBy(tick: number): number {
    let version = 0;
    for (let i = 0; i < this.versions.length; i++) {
      const at = (this.head + i) % this.samplesMax;
      if ((this.ticks[at] as number) > tick) break;
      version = this.versions[at] as number;
    }
    return version;
  }
}
