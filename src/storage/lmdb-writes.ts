/**
 * The writes of one LMDB storage, from queueing to durability: each is one lmdb-js batch,
 * numbered (seq) in the order it was queued, and told when it commits (visible in LMDB) and
 * when the flush covering it completes (durable). lmdb-js' event-turn batching puts the
 * writes of one turn into one transaction and one fsync, and this module acknowledges them
 * together. It also owns what happens when the disk fails: the first failure stops every
 * later write, and `failureReport` says whether the directory can be reopened.
 *
 * Must never: acknowledge a write before its flush, acknowledge out of order, let a write
 * after a failed one reach the file (see the chain in `submit`), or leave an lmdb-js promise
 * rejected unobserved (Node would end the process).
 */

import type { Database, RootDatabase } from 'lmdb';

export type DurableCallback = (error: Error | null) => void;

/**
 * Why the storage stopped taking writes, once every transaction queued before the failure
 * has settled. A node may reopen the directory (and so recover in place, as after a crash)
 * only when `trusted`: the first failure was a commit that did not happen (nothing of it
 * reached the file) and no transaction queued after it committed, so the directory holds
 * exactly the writes committed before it, in order. A failed flush (the kernel may have
 * dropped dirty pages: "fsyncgate"), a hung disk, or a later transaction that did commit on
 * top of the failed one (a hole in the log, an applied index ahead of its writes) is not.
 */
export interface StorageFailure {
  /** What lmdb-js reported. */
  readonly error: Error;
  /** The operating system's error behind a failed commit (lmdb-js' `commitError`), when known. */
  readonly cause: Error | null;
  /** `other`: anything else that stopped it (a failed read in the log's background compaction). */
  readonly stage: 'commit' | 'flush' | 'hung' | 'other';
  readonly trusted: boolean;
}

export interface WriteHooks {
  readonly onCommitted?: () => void;
  readonly onDurable?: DurableCallback;
  /** kv.durableAppliedIndex() once this write is flushed (if no install came in between). */
  readonly durableApplied?: number;
}

/** What the storage does around its writes. */
export interface WriteTrackerOwner {
  /** A write carrying `durableApplied` is durable and no install came after it was queued. */
  durableAppliedIs(index: number): void;
  /** The first failure: drop whatever is held back, it will never be written. */
  failed(): void;
}

export type ChainDb = Database<Buffer, string>;
const CHAIN_KEY = 'writes';
const CHAIN_VALUE = Buffer.alloc(0);

type CommitPromise = Promise<boolean> & { readonly flushed?: PromiseLike<unknown> };

interface PendingWrite {
  readonly seq: number;
  readonly onCommitted: (() => void) | null;
  readonly onDurable: DurableCallback | null;
  readonly durableApplied: number | null;
  readonly kvEpoch: number;
}

export class WriteTracker {
  private writeSeqValue = 0;
  private durableSeq = 0;
  private flushesCompleted = 0;
  private committedSeq = 0;
  private flushCounted = false;
  private readonly pending: (PendingWrite | undefined)[] = [];
  private pendingHead = 0;
  private commitCursor = 0;
  private commitGroup: { readonly promise: PromiseLike<unknown>; seq: number } | null = null;
  private flushGroup: { readonly promise: PromiseLike<unknown>; seq: number } | null = null;
  /** Raised by an install: durability of older kv writes says nothing about the installed state. */
  private kvEpoch = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] = [];
  private turnCommitObserved = false;
  /** The chain key's version after the newest queued write (null: no write made it yet). */
  private chainVersion: number | null;

  private failureValue: Error | null = null;
  private failureStage: StorageFailure['stage'] = 'commit';
  private failureCause: Error | null = null;
  /** The newest write of the transaction whose commit failed first. */
  private failedSeq = Infinity;
  /** A transaction queued after the failed one committed: the directory has a hole. */
  private committedAfterFailure = false;
  /** Transactions queued whose commit has not settled (resolved or rejected). */
  private txnsUnsettled = 0;
  private settleWaiters: (() => void)[] = [];

  constructor(
    private readonly root: RootDatabase,
    private readonly chainDb: ChainDb,
    private readonly flushTimeoutMs: number,
    private readonly owner: WriteTrackerOwner,
  ) {
    this.chainVersion = chainDb.getEntry(CHAIN_KEY)?.version ?? null;
  }

  /** The newest write queued. */
  get writeSeq(): number {
    return this.writeSeqValue;
  }

  /** Writes queued, made durable, and flush completions seen (one transaction's count once): LmdbStorageStats. */
  counts(): { readonly queued: number; readonly durable: number; readonly flushes: number } {
    return { queued: this.writeSeqValue, durable: this.durableSeq, flushes: this.flushesCompleted };
  }

  /** The first failure, which every later write gets too; null while the disk works. */
  get failure(): Error | null {
    return this.failureValue;
  }

  /**
   * Queues `write` (lmdb-js puts/removes, run synchronously) as one atomic batch and
   * tracks it: `onCommitted` when visible in LMDB, `onDurable` after the covering flush.
   * Returns the write's sequence number (writes commit and flush in this order).
   */
  submit(write: () => void, hooks: WriteHooks, newKvEpoch = false): number {
    const seq = ++this.writeSeqValue;
    if (newKvEpoch) this.kvEpoch++;
    this.pending.push({
      seq,
      onCommitted: hooks.onCommitted ?? null,
      onDurable: hooks.onDurable ?? null,
      durableApplied: hooks.durableApplied ?? null,
      kvEpoch: this.kvEpoch,
    });
    // Each write is conditional on the one before it: it checks the chain key's version and
    // moves it on. LMDB can commit a later transaction after an earlier one failed (a full
    // disk refuses a large transaction and takes the next, smaller one into the pages the
    // failed one left), which would leave a hole: a log with an entry missing, an applied
    // index ahead of the kv writes it stands for. Chained, every write after a failed one
    // finds the wrong version and is skipped, so the directory holds exactly the writes
    // before the failure, as after a crash, and can be reopened (failureReport).
    const expected = this.chainVersion;
    const next = (expected ?? 0) + 1;
    this.chainVersion = next;
    const chained = (): void => {
      write();
      void this.chainDb.put(CHAIN_KEY, CHAIN_VALUE, next);
    };
    const committed = (expected === null ? this.chainDb.ifNoExists(CHAIN_KEY, chained) : this.chainDb.ifVersion(CHAIN_KEY, expected, chained)) as CommitPromise;
    this.observeTurnCommit();
    if (committed.flushed === undefined) {
      // Not a per-transaction promise (lmdb-js returns a shared resolved one in some nested
      // cases): fall back to the database-wide thenables, which cover every write so far.
      this.trackCommit(this.root.committed, () => seq);
      void Promise.resolve(this.root.flushed).then(
        () => this.onFlushed(seq),
        (error: unknown) => this.fail(toError(error), 'flush'),
      );
    } else {
      // Writes that share a promise share a transaction: one callback acknowledges all of
      // them, the group's seq raised to the newest write that shares it.
      if (committed === this.commitGroup?.promise) this.commitGroup.seq = seq;
      else {
        const group = { promise: committed, seq };
        this.commitGroup = group;
        this.trackCommit(committed, () => group.seq);
      }
      const flushed = committed.flushed;
      if (flushed === this.flushGroup?.promise) this.flushGroup.seq = seq;
      else {
        const group = { promise: flushed, seq };
        this.flushGroup = group;
        void Promise.resolve(flushed).then(
          () => this.onFlushed(group.seq),
          (error: unknown) => this.fail(toError(error), 'flush'),
        );
      }
    }
    this.armWatchdog();
    return seq;
  }

  /** After a failure: calls `onDurable` with it (soon, never synchronously) and returns true. */
  rejectIfFailed(onDurable: DurableCallback): boolean {
    const failure = this.failureValue;
    if (failure === null) return false;
    queueMicrotask(() => onDurable(failure));
    return true;
  }

  /** Resolves once every queued write is durable, or at once after a failure. */
  drained(): Promise<void> {
    if (this.failureValue !== null || this.durableSeq === this.writeSeqValue) return Promise.resolve();
    return this.settled();
  }

  /** Resolves the next time every queued write is durable, or on a failure. */
  settled(): Promise<void> {
    return new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Null while the storage works. After a failure: resolves once every transaction queued
   * before it has settled (or the flush timeout passed, which makes it untrusted).
   */
  failureReport(): Promise<StorageFailure> | null {
    const error = this.failureValue;
    if (error === null) return null;
    const settled = new Promise<boolean>((resolve) => {
      if (this.txnsUnsettled === 0) return resolve(true);
      const timer = setTimeout(() => resolve(false), this.flushTimeoutMs);
      this.settleWaiters.push(() => (clearTimeout(timer), resolve(true)));
    });
    return settled.then((allSettled) => ({
      error,
      cause: this.failureCause,
      stage: this.failureStage,
      trusted: allSettled && this.failureStage === 'commit' && !this.committedAfterFailure,
    }));
  }

  /** A failed commit or flush stops the storage: every waiting write learns it, later ones too. */
  fail(error: Error, stage: StorageFailure['stage']): void {
    if (this.failureValue !== null) return;
    this.failureValue = error;
    this.failureStage = stage;
    this.owner.failed();
    const waiting = this.pending.slice(this.pendingHead);
    this.pending.length = 0;
    this.pendingHead = 0;
    this.commitCursor = 0;
    this.stopWatchdog();
    for (const write of waiting) write?.onDurable?.(error);
    this.wakeDrainWaiters();
  }

  stopWatchdog(): void {
    if (this.watchdog !== null) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  /**
   * lmdb-js ends each event turn's batch with a write of its own whose commit promise nobody
   * is handed (write.js, the event-turn task); when that transaction fails the promise
   * rejects unobserved and Node ends the process. Once per turn, after that task has run,
   * its promise (the database's current `committed`) is observed; what failed is learned
   * from this write's own promise (trackCommit).
   */
  private observeTurnCommit(): void {
    if (this.turnCommitObserved) return;
    this.turnCommitObserved = true;
    setImmediate(() => {
      this.turnCommitObserved = false;
      this.root.committed.then(undefined, () => undefined);
    });
  }

  /** Follows one transaction's commit; `seq()` is its newest write when it settles. */
  private trackCommit(committed: PromiseLike<unknown>, seq: () => number): void {
    this.txnsUnsettled++;
    void Promise.resolve(committed).then(
      (applied) => {
        this.commitSettled();
        // false: the chain check refused it (an earlier write failed), nothing of it is written.
        if (applied === false) this.onCommitFailed(new Error('write skipped: an earlier write failed'), seq());
        else if (this.failureValue !== null) this.committedAfterFailure ||= seq() > this.failedSeq;
        else this.onCommitted(seq());
      },
      (error: unknown) => {
        this.commitSettled();
        this.onCommitFailed(toError(error), seq());
      },
    );
  }

  private commitSettled(): void {
    this.txnsUnsettled--;
    if (this.txnsUnsettled > 0) return;
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const wake of waiters) wake();
  }

  private onCommitFailed(error: Error, seq: number): void {
    // lmdb-js rejects a shared `commitError` promise with the system's error; unobserved, it
    // would end the process as an unhandled rejection.
    const commitError = (error as { commitError?: unknown }).commitError;
    if (commitError instanceof Promise) {
      commitError.then(undefined, (cause: unknown) => {
        this.failureCause ??= toError(cause);
      });
    }
    if (this.failureValue === null) this.failedSeq = seq;
    this.fail(error, 'commit');
  }

  private onCommitted(seq: number): void {
    if (seq <= this.committedSeq || this.failureValue !== null) return;
    this.committedSeq = seq;
    // What the callbacks below drop from memory (overlay entries, cached log entries, a hidden
    // base) is read from LMDB afterwards, through lmdb-js's shared read transaction. lmdb-js
    // resets that transaction when it resolves a commit promise, but when we get here from a
    // flush (onFlushed) it may not have yet: the transaction can still hold a snapshot taken
    // before this commit, and every read in this event turn (the driver applies entries right
    // in the durable callback) would see the state as it was before these writes: a stale
    // compare in a transaction, a lost update, replicas that disagree. Reset it first, so the
    // next read renews it on the committed state.
    this.root.resetReadTxn();
    while (this.commitCursor < this.pending.length) {
      const write = this.pending[this.commitCursor] as PendingWrite;
      if (write.seq > seq) break;
      this.commitCursor++;
      write.onCommitted?.();
    }
  }

  private onFlushed(seq: number): void {
    // A flush implies the commit; handle the commit first even if its promise lags.
    this.onCommitted(seq);
    if (seq <= this.durableSeq || this.failureValue !== null) return;
    this.durableSeq = seq;
    if (!this.flushCounted) {
      // lmdb-js resolves the flush promises of every event-turn batch in one transaction
      // together, so their handlers run in one run of the microtask queue: count them once.
      this.flushesCompleted++;
      this.flushCounted = true;
      queueMicrotask(() => {
        this.flushCounted = false;
      });
    }
    const callbacks: DurableCallback[] = [];
    while (this.pendingHead < this.pending.length) {
      const write = this.pending[this.pendingHead] as PendingWrite;
      if (write.seq > seq) break;
      this.pending[this.pendingHead] = undefined;
      this.pendingHead++;
      if (write.durableApplied !== null && write.kvEpoch === this.kvEpoch) this.owner.durableAppliedIs(write.durableApplied);
      if (write.onDurable !== null) callbacks.push(write.onDurable);
    }
    this.compactPending();
    for (const callback of callbacks) callback(null);
    if (this.durableSeq === this.writeSeqValue) this.wakeDrainWaiters();
  }

  private compactPending(): void {
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.commitCursor -= this.pendingHead;
      this.pendingHead = 0;
    }
  }

  /** One timer at a time: fails the storage if no flush completes for flushTimeoutMs while writes wait. */
  private armWatchdog(): void {
    if (this.watchdog !== null || this.failureValue !== null) return;
    const durableAtArm = this.durableSeq;
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      if (this.failureValue !== null || this.durableSeq === this.writeSeqValue) return;
      if (this.durableSeq === durableAtArm) {
        this.fail(new Error(`LMDB flush made no progress for ${this.flushTimeoutMs} ms: write ${durableAtArm + 1} of ${this.writeSeqValue} is not durable`), 'hung');
      } else {
        this.armWatchdog();
      }
    }, this.flushTimeoutMs);
    this.watchdog.unref();
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }
}

export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
