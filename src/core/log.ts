/**
 * The Raft log as the core sees it: the stable part (read through `LogReader`, i.e. what
 * the driver has persisted) plus an unstable tail of entries the core has accepted but
 * the driver has not yet confirmed durable. Owns the commit, acked and applied indexes.
 *
 * Invariants (asserted): applied <= max(committed, acked) <= lastIndex;
 * committed never decreases; the unstable tail starts right after the stable log or
 * after a pending snapshot.
 */

import { assert } from '../stdx/assert.js';
import type { Entry, LogReader, SnapshotMeta } from './types.js';

export class RaftLog {
  /** Entries not yet durable; `unstable[0].index === unstableOffset`. */
  private unstable: Entry[] = [];
  private unstableOffset: number;
  /** Entries below this index in `unstable` were handed to the driver in a Ready. */
  private inProgressUpTo: number;
  /** A snapshot accepted from the leader but not yet installed by the driver. */
  private pendingSnapshot: SnapshotMeta | null = null;
  private snapshotInProgress = false;

  /** Highest index known replicated on a majority (Raft's commit index). Never decreases. */
  committed: number;
  /** Highest index the write-quorum rule acknowledged; entries up to here may be applied. */
  acked: number;
  /** Highest index handed to the driver for applying. */
  applied: number;

  constructor(
    readonly stable: LogReader,
    committed: number,
    appliedIndex: number,
  ) {
    this.unstableOffset = stable.lastIndex() + 1;
    this.inProgressUpTo = this.unstableOffset - 1;
    const snapIndex = stable.snapshotMeta().index;
    this.applied = Math.max(appliedIndex, snapIndex);
    // The commit index comes only from the hard state: under a weak write quorum a node
    // may have applied entries no majority holds, and must not take them for committed
    // (a new leader may replace them; that is a rollback, not a broken invariant).
    // Not the snapshot index either: a snapshot received under a weak quorum may hold
    // uncommitted entries. (Outside weak quorums the core raises this to the applied index.)
    this.committed = committed;
    this.acked = Math.max(this.committed, this.applied);
    assert(
      this.committed <= this.lastIndex(),
      () => `commit ${this.committed} beyond last log index ${this.lastIndex()}`,
    );
  }

  firstIndex(): number {
    if (this.pendingSnapshot !== null) return this.pendingSnapshot.index + 1;
    return this.stable.firstIndex();
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    if (this.pendingSnapshot !== null) return this.pendingSnapshot.index;
    return this.stable.lastIndex();
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, () => `no term for last index ${this.lastIndex()}`);
    return t;
  }

  /** Term at `index`, or undefined if compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index >= this.unstableOffset && this.unstable.length > 0) {
      return this.unstable[index - this.unstableOffset]?.term;
    }
    if (this.pendingSnapshot !== null) {
      if (index === this.pendingSnapshot.index) return this.pendingSnapshot.term;
      return undefined;
    }
    if (index > this.stable.lastIndex()) return undefined;
    return this.stable.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  snapshotMeta(): SnapshotMeta {
    return this.pendingSnapshot ?? this.stable.snapshotMeta();
  }

  /**
   * Entries in [lo, hi) up to about `bytesMax` (at least one). Returns null when `lo` has
   * been compacted away (the caller must send a snapshot instead).
   */
  slice(lo: number, hi: number, bytesMax: number): Entry[] | null {
    if (lo < this.firstIndex()) return null;
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    const out: Entry[] = [];
    let bytes = 0;
    const stableHi = Math.min(hi, this.unstableOffset);
    if (lo < stableHi) {
      const fromStable = this.stable.entries(lo, stableHi, bytesMax);
      for (const e of fromStable) {
        bytes += entryBytes(e);
        out.push(e);
      }
      if (out.length < stableHi - lo) return out; // byte limit reached inside the stable part
    }
    for (let i = Math.max(lo, this.unstableOffset); i < hi; i++) {
      const e = this.unstable[i - this.unstableOffset];
      assert(e !== undefined, () => `unstable entry ${i} missing (offset ${this.unstableOffset})`);
      if (out.length > 0 && bytes + entryBytes(e) > bytesMax) break;
      bytes += entryBytes(e);
      out.push(e);
    }
    return out;
  }

  /** Appends entries of the leader's own term at the end (leader path). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0] as Entry;
    assert(first.index === this.lastIndex() + 1, () => `cannot append entry ${first.index}: log ends at ${this.lastIndex()}`);
    this.truncateAndAppend(entries);
  }

  /**
   * Index of the first of `entries` (which follow prevIndex) whose term differs from ours,
   * or null when every one matches or extends the log.
   */
  findConflict(prevIndex: number, entries: readonly Entry[]): number | null {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      if (e.index > this.lastIndex()) return null;
      if (!this.matchTerm(e.index, e.term)) return prevIndex + 1 + i;
    }
    return null;
  }

  /**
   * Follower path: accepts `entries` that follow (prevIndex, prevTerm). Returns the last
   * index now matching the leader, or null if prev did not match. Conflicting entries
   * are truncated; entries already present are skipped.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + entries.length;
    let conflictAt = -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      assert(e.index === prevIndex + 1 + i, () => `append entries not contiguous at ${e.index}`);
      if (!this.matchTerm(e.index, e.term)) {
        conflictAt = i;
        break;
      }
    }
    if (conflictAt >= 0) {
      const conflictIndex = prevIndex + 1 + conflictAt;
      assert(
        conflictIndex > this.committed,
        () => `entry ${conflictIndex} conflicts with committed entry (commit ${this.committed})`,
      );
      assert(
        conflictIndex > this.applied,
        () => `entry ${conflictIndex} conflicts with applied entry (applied ${this.applied}): rollback needed`,
      );
      this.truncateAndAppend(entries.slice(conflictAt));
    }
    return lastNew;
  }

  private truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0] as Entry;
    const after = first.index;
    if (after === this.unstableOffset + this.unstable.length) {
      for (const e of entries) this.unstable.push(e);
    } else if (after <= this.unstableOffset) {
      // Replaces everything from `after` on, including stable entries: the next Ready
      // truncates the stored log from entries[0].index.
      this.unstableOffset = after;
      this.unstable = [...entries];
    } else {
      this.unstable = this.unstable.slice(0, after - this.unstableOffset);
      for (const e of entries) this.unstable.push(e);
    }
    this.inProgressUpTo = Math.min(this.inProgressUpTo, after - 1);
    // An acknowledgement covered the entries just replaced, not their replacements.
    this.acked = Math.min(this.acked, after - 1);
  }

  /** Leader or follower: advance the commit index (never backwards). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} out of range [last ${this.lastIndex()}]`);
    this.committed = index;
  }

  /** Advance the acked index (never backwards, never past the log). */
  ackTo(index: number): void {
    if (index <= this.acked) return;
    assert(index <= this.lastIndex(), () => `acked ${index} out of range [last ${this.lastIndex()}]`);
    this.acked = index;
  }

  /**
   * Adopts a snapshot: the log restarts after it; entries before are gone. `repair` (after
   * a rollback) accepts a snapshot at the commit index too: the state must be rebuilt.
   */
  restore(meta: SnapshotMeta, repair = false, knownCommitted: number = meta.index): void {
    assert(
      meta.index > this.committed || (repair && meta.index >= this.committed),
      () => `snapshot ${meta.index} not beyond commit ${this.committed}`,
    );
    this.pendingSnapshot = meta;
    this.snapshotInProgress = false;
    this.unstable = [];
    this.unstableOffset = meta.index + 1;
    this.inProgressUpTo = meta.index;
    this.committed = Math.max(this.committed, Math.min(meta.index, knownCommitted));
    // The log now ends at the snapshot: whatever was acknowledged beyond it is gone.
    this.acked = meta.index;
    this.applied = meta.index;
  }

  /** Entries (and snapshot) to hand to the driver for persisting; marks them in progress. */
  takeUnstable(): { snapshot: SnapshotMeta | null; entries: Entry[] } {
    const snapshot = this.pendingSnapshot !== null && !this.snapshotInProgress ? this.pendingSnapshot : null;
    if (snapshot !== null) this.snapshotInProgress = true;
    const from = this.inProgressUpTo + 1 - this.unstableOffset;
    const entries = from < this.unstable.length ? this.unstable.slice(Math.max(0, from)) : [];
    this.inProgressUpTo = this.unstableOffset + this.unstable.length - 1;
    return { snapshot, entries };
  }

  /** A snapshot was accepted and not yet handed to the driver. */
  hasSnapshotToPersist(): boolean {
    return this.pendingSnapshot !== null && !this.snapshotInProgress;
  }

  hasUnstableToPersist(): boolean {
    return this.hasSnapshotToPersist() || this.inProgressUpTo < this.unstableOffset + this.unstable.length - 1;
  }

  /** The driver persisted a snapshot: the stable log now starts after it. */
  snapshotStable(meta: SnapshotMeta): void {
    if (this.pendingSnapshot !== null && this.pendingSnapshot.index === meta.index) {
      this.pendingSnapshot = null;
      this.snapshotInProgress = false;
    }
  }

  /**
   * The driver persisted entries up to (index, term). Entries the core has since replaced
   * (different term at that index) stay unstable and are persisted by a later Ready.
   */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset) return;
    const e = this.unstable[index - this.unstableOffset];
    if (e === undefined || e.term !== term) return;
    this.unstable = this.unstable.slice(index + 1 - this.unstableOffset);
    this.unstableOffset = index + 1;
    if (this.inProgressUpTo < index) this.inProgressUpTo = index;
  }

  /** Index up to which entries are durable (confirmed by the driver's flush). */
  durableIndex(): number {
    return this.unstableOffset - 1;
  }

  /**
   * Committed entries that may be applied now: up to the write-quorum acked index, only
   * entries already durable here (so applying never waits for a flush in flight), at
   * most `entriesMax`.
   */
  takeCommitted(entriesMax: number, bytesMax: number): Entry[] {
    const hi = Math.min(this.acked, this.durableIndex(), this.applied + entriesMax);
    if (hi <= this.applied) return [];
    const entries = this.slice(this.applied + 1, hi + 1, bytesMax);
    assert(entries !== null, () => `entries after applied ${this.applied} were compacted before being applied`);
    if (entries.length > 0) this.applied = (entries[entries.length - 1] as Entry).index;
    return entries;
  }

  hasCommittedToApply(): boolean {
    return Math.min(this.acked, this.durableIndex()) > this.applied;
  }
}

/**
 * Approximate encoded size of an entry (its data plus a fixed 24-byte header), the one size
 * every `bytesMax` on log entries counts in: the core's replication and apply batches, and
 * storage's `LogReader.entries(…, bytesMax)` and its log cache (storage imports this), so a
 * batch the storage hands out fits the budget the core counts it against.
 */
export function entryBytes(e: Entry): number {
  return e.data.byteLength + 24;
}
