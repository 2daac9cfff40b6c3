/**
 * The in-memory twin of the LMDB storage, for unit tests and the deterministic simulator.
 * What it shares with LMDB (input checks, size accounting, the dedup table, the kv write
 * transaction, staging bookkeeping and snapshot chunking) lives in files of its own that
 * both import, so editing the twin never edits production.
 *
 * The twin models a disk with a write cache: every write is visible at once and queued;
 * a flush makes queued writes durable oldest first and then calls their `onDurable`.
 * `flushMode: 'immediate'` flushes on a microtask; `'manual'` waits for `flushPending()`,
 * so the simulator decides when the disk catches up. `crash()` returns only what was
 * flushed, exactly what a real crash would leave behind.
 *
 * Must never: use timers, randomness, clocks or node:* modules (it runs inside the
 * deterministic simulator), acknowledge a write before the flush that covers it, or let a
 * crash image depend on anything that was not flushed.
 *
 * Ownership: stored entries, records and byte arrays are kept by reference and handed out
 * by reference. Callers must treat every Uint8Array they pass in or get back as immutable.
 */

import type { ClusterConfig, Entry, HardState, LogReader, SnapshotMeta } from '../core/types.js';
import { assert, AssertionError } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import { compareUtf8 } from '../stdx/utf8.js';
import { checkIdentity, checkPersistBatch } from './checks.js';
import { EntryLog } from './entry-log.js';
import type { LogBounds } from './checks.js';
import { ArrayCursor, assembleChunk } from './chunks.js';
import { DedupTable } from './dedup.js';
import { UndoKvTx } from './kv-tx.js';
import { compactionMeta, freshHardState, initialSnapshotMeta, snapshotSourceMeta } from './meta.js';
import { itemOf, itemsChunk, rawRecordOf } from './snapshot-records.js';
import { StagingTracker } from './staging.js';
import type {
  DedupRecord,
  KvBackend,
  KvItem,
  KvRecord,
  NodeIdentity,
  NodeStorage,
  PersistBatch,
  SnapshotChunk,
  SnapshotSource,
  StorageOptions,
} from './types.js';

export type FlushMode = 'immediate' | 'manual';

export type MemoryStorageOptions = StorageOptions & { readonly flushMode?: FlushMode };

/** What survives a crash: only flushed writes. Plain data; restoring copies it. */
export interface MemoryStorageImage {
  readonly identity: NodeIdentity | null;
  readonly hardState: HardState;
  readonly snapshotMeta: SnapshotMeta;
  /** The log after the snapshot: entries[i].index === snapshotMeta.index + 1 + i. */
  readonly entries: readonly Entry[];
  readonly kv: ReadonlyMap<string, KvRecord>;
  /** Oldest index first. */
  readonly dedup: readonly DedupRecord[];
  readonly appliedIndex: number;
}

export interface MemoryStorage extends NodeStorage {
  readonly flushMode: FlushMode;
  /** Queued writes not yet flushed (persist batches, kv writes, identity, compactions). */
  pendingCount(): number;
  /**
   * Makes the oldest `count` queued writes (default: all) durable, in order, calling their
   * `onDurable` callbacks. Returns how many were flushed.
   */
  flushPending(count?: number): number;
  /**
   * Simulates a crash: returns what was flushed, and kills this instance (every later call
   * throws; callbacks of unflushed writes never fire).
   */
  crash(): MemoryStorageImage;
}

export function createMemoryStorage(options: MemoryStorageOptions): MemoryStorage {
  const image: MemoryStorageImage = {
    identity: null,
    hardState: freshHardState(),
    snapshotMeta: initialSnapshotMeta(options.initialConfig),
    entries: [],
    kv: new Map(),
    dedup: [],
    appliedIndex: 0,
  };
  return new MemoryNodeStorage(image, options);
}

/** Reopens a crash image (as a node restarting on the same disk would). */
export function restoreMemoryStorage(image: MemoryStorageImage, options: MemoryStorageOptions): MemoryStorage {
  return new MemoryNodeStorage(image, options);
}

type DurableCallback = (error: Error | null) => void;

interface StagedData {
  readonly kv: Map<string, KvRecord>;
  readonly dedup: DedupTable;
}

type QueuedWrite =
  | {
      readonly kind: 'persist';
      readonly batch: PersistBatch;
      readonly staged: StagedData | null;
      readonly onDurable: DurableCallback;
      readonly kvEpoch: number;
    }
  | {
      readonly kind: 'kv';
      readonly kvEpoch: number;
      readonly appliedIndex: number;
      readonly kv: ReadonlyMap<string, KvRecord | null>;
      readonly dedup: ReadonlyMap<string, DedupRecord | null>;
    }
  | { readonly kind: 'identity'; readonly identity: NodeIdentity; readonly onDurable: DurableCallback }
  | { readonly kind: 'compact'; readonly meta: SnapshotMeta };

/** The flushed state: what `crash()` hands back. */
class DurableState {
  identity: NodeIdentity | null;
  hardState: HardState;
  snapshotMeta: SnapshotMeta;
  readonly log: EntryLog;
  kv: Map<string, KvRecord>;
  dedup: DedupTable;
  appliedIndex: number;

  constructor(image: MemoryStorageImage) {
    this.identity = image.identity;
    this.hardState = image.hardState;
    this.snapshotMeta = image.snapshotMeta;
    this.log = new EntryLog(image.snapshotMeta.index, image.entries);
    this.kv = new Map(image.kv);
    this.dedup = DedupTable.from(image.dedup);
    this.appliedIndex = image.appliedIndex;
  }

  apply(write: QueuedWrite): void {
    switch (write.kind) {
      case 'persist': {
        const { batch } = write;
        if (batch.snapshot !== null) {
          assert(write.staged !== null, 'snapshot install without staged data');
          this.snapshotMeta = batch.snapshot;
          this.log.reset(batch.snapshot.index);
          this.kv = new Map(write.staged.kv);
          this.dedup = write.staged.dedup.clone();
          this.appliedIndex = batch.snapshot.index;
        }
        this.log.append(batch.entries);
        if (batch.hardState !== null) this.hardState = batch.hardState;
        return;
      }
      case 'kv':
        for (const [key, record] of write.kv) {
          if (record === null) this.kv.delete(key);
          else this.kv.set(key, record);
        }
        for (const [clientId, record] of write.dedup) {
          if (record === null) this.dedup.delete(clientId);
          else this.dedup.put(record);
        }
        this.appliedIndex = write.appliedIndex;
        return;
      case 'identity':
        this.identity = write.identity;
        return;
      case 'compact':
        this.log.compactThrough(write.meta.index);
        this.snapshotMeta = write.meta;
        return;
    }
  }

  toImage(): MemoryStorageImage {
    return {
      identity: this.identity,
      hardState: this.hardState,
      snapshotMeta: this.snapshotMeta,
      entries: [...this.log.all],
      kv: new Map(this.kv),
      dedup: this.dedup.all(),
      appliedIndex: this.appliedIndex,
    };
  }
}

/** Key-value data in a Map plus a key array kept in UTF-8 order, for range reads. */
class SortedKv {
  readonly map: Map<string, KvRecord>;
  private readonly keys: string[];

  constructor(data: ReadonlyMap<string, KvRecord>) {
    this.map = new Map(data);
    this.keys = [...this.map.keys()].sort(compareUtf8);
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): KvRecord | undefined {
    return this.map.get(key);
  }

  set(key: string, record: KvRecord): void {
    if (!this.map.has(key)) this.keys.splice(this.lowerBound(key), 0, key);
    this.map.set(key, record);
  }

  delete(key: string): void {
    if (!this.map.delete(key)) return;
    this.keys.splice(this.lowerBound(key), 1);
  }

  range(prefix: string, after: string | undefined, limit: number, reverse = false): KvItem[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, () => `range limit must be a non-negative integer, got ${limit}`);
    const out: KvItem[] = [];
    const step = reverse ? -1 : 1;
    let i: number;
    if (!reverse) i = after !== undefined && compareUtf8(after, prefix) >= 0 ? this.upperBound(after) : this.lowerBound(prefix);
    else i = Math.min(this.prefixEnd(prefix), after === undefined ? this.keys.length : this.lowerBound(after)) - 1;
    for (; i >= 0 && i < this.keys.length && out.length < limit; i += step) {
      const key = this.keys[i] as string;
      if (!key.startsWith(prefix)) break;
      const record = this.map.get(key) as KvRecord;
      out.push({ key, value: record.value, version: record.version });
    }
    return out;
  }

  /** First position past the keys starting with `prefix` (they are contiguous in the sorted keys). */
  private prefixEnd(prefix: string): number {
    let lo = this.lowerBound(prefix);
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.keys[mid] as string).startsWith(prefix)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Every item in key order (a copy: later writes do not show in it). */
  items(): KvItem[] {
    return this.keys.map((key) => {
      const record = this.map.get(key) as KvRecord;
      return { key, value: record.value, version: record.version };
    });
  }

  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareUtf8(this.keys[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private upperBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareUtf8(this.keys[mid] as string, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

class MemoryNodeStorage implements MemoryStorage {
  readonly flushMode: FlushMode;
  readonly log: LogReader;
  readonly kv: KvBackend;

  private readonly durable: DurableState;
  private readonly queue: QueuedWrite[] = [];
  private flushScheduled = false;
  private state: 'open' | 'closed' | 'crashed' = 'open';

  // Visible state (includes queued writes).
  private identityValue: NodeIdentity | null;
  private hardStateValue: HardState;
  private snapshot: SnapshotMeta;
  private readonly entryLog: EntryLog;
  private data: SortedKv;
  private dedup: DedupTable;
  private applied: number;
  private durableApplied: number;
  /** Bumped by every snapshot install: durability of older kv writes no longer says anything. */
  private kvEpoch = 0;
  private staging: StagedData | null = null;
  private readonly stagingTracker: StagingTracker;

  constructor(image: MemoryStorageImage, options: MemoryStorageOptions) {
    this.flushMode = options.flushMode ?? 'immediate';
    this.stagingTracker = new StagingTracker(options.snapshotBytesMax);
    this.durable = new DurableState(image);
    this.identityValue = image.identity;
    this.hardStateValue = image.hardState;
    this.snapshot = image.snapshotMeta;
    this.entryLog = new EntryLog(image.snapshotMeta.index, image.entries);
    this.data = new SortedKv(image.kv);
    this.dedup = DedupTable.from(image.dedup);
    this.applied = image.appliedIndex;
    this.durableApplied = image.appliedIndex;
    this.log = this.makeLogReader();
    this.kv = this.makeKvBackend();
  }

  // --- NodeStorage ---------------------------------------------------------------------

  hardState(): HardState {
    this.checkAlive();
    return this.hardStateValue;
  }

  logBytes(): number {
    this.checkAlive();
    return this.entryLog.bytes;
  }

  identity(): NodeIdentity | null {
    this.checkAlive();
    return this.identityValue;
  }

  setIdentity(identity: NodeIdentity, onDurable: DurableCallback): void {
    this.checkOpen();
    checkIdentity(identity, this.identityValue);
    this.identityValue = identity;
    this.enqueue({ kind: 'identity', identity, onDurable });
  }

  persist(batch: PersistBatch, onDurable: DurableCallback): void {
    this.checkOpen();
    checkPersistBatch(batch, this.bounds(), this.hardStateValue, this.stagingTracker.complete);
    let staged: StagedData | null = null;
    if (batch.snapshot !== null) {
      staged = this.staging as StagedData;
      this.staging = null;
      this.stagingTracker.reset();
      this.snapshot = batch.snapshot;
      this.entryLog.reset(batch.snapshot.index);
      this.data = new SortedKv(staged.kv);
      this.dedup = staged.dedup.clone();
      this.applied = batch.snapshot.index;
      // The old durable state may be ahead of the installed one; never let compaction trust it.
      this.durableApplied = Math.min(this.durableApplied, batch.snapshot.index);
      this.kvEpoch++;
    }
    this.entryLog.append(batch.entries);
    if (batch.hardState !== null) this.hardStateValue = batch.hardState;
    this.enqueue({ kind: 'persist', batch, staged, onDurable, kvEpoch: this.kvEpoch });
  }

  compact(index: number, config: ClusterConfig): void {
    this.checkOpen();
    const meta = compactionMeta(index, config, this.snapshot, this.lastIndex(), this.durableApplied, (i) => this.term(i));
    if (meta === null) return;
    this.entryLog.compactThrough(index);
    this.snapshot = meta;
    this.enqueue({ kind: 'compact', meta });
  }

  openSnapshot(config: ClusterConfig): SnapshotSource {
    this.checkOpen();
    const meta = snapshotSourceMeta(this.applied, config, (i) => this.term(i));
    // The chunk format is LMDB's records: the twin encodes its items so (and cuts chunks at the same records).
    const items = new ArrayCursor(this.data.items().map(rawRecordOf));
    const dedup = new ArrayCursor(this.dedup.all());
    let seq = 0;
    let finished = false;
    const readChunk = (bytesMax: number): SnapshotChunk | null => {
      if (finished) return null;
      const chunk = assembleChunk(seq++, bytesMax, items, dedup);
      finished = chunk.last;
      return chunk;
    };
    return {
      meta,
      readChunk,
      readItems: (bytesMax) => itemsChunk(readChunk(bytesMax)),
      close: () => {
        finished = true;
      },
    };
  }

  stageSnapshotChunk(chunk: SnapshotChunk): void {
    this.checkOpen();
    const items: KvItem[] = [];
    const { restart } = this.stagingTracker.accept(chunk, (key, record) => void items.push(itemOf(key, record)));
    if (restart) this.staging = { kv: new Map(), dedup: new DedupTable() };
    const staging = this.staging as StagedData;
    for (const { key, value, version } of items) staging.kv.set(key, { value, version });
    for (const record of chunk.dedup) staging.dedup.put(record);
  }

  close(): Promise<void> {
    if (this.state === 'open') {
      this.flushPending();
      this.state = 'closed';
    }
    return Promise.resolve();
  }

  // --- simulator hooks -----------------------------------------------------------------

  pendingCount(): number {
    return this.queue.length;
  }

  flushPending(count?: number): number {
    this.checkAlive();
    const n = Math.min(count ?? this.queue.length, this.queue.length);
    assert(Number.isSafeInteger(n) && n >= 0, () => `flushPending count must be a non-negative integer, got ${count}`);
    const flushed = this.queue.splice(0, n);
    for (const write of flushed) {
      this.durable.apply(write);
      if (write.kind === 'kv' && write.kvEpoch === this.kvEpoch) this.durableApplied = write.appliedIndex;
      if (write.kind === 'persist' && write.batch.snapshot !== null && write.kvEpoch === this.kvEpoch) {
        this.durableApplied = write.batch.snapshot.index;
      }
    }
    // Callbacks run after the durable state is updated, so a callback that crashes the
    // storage sees everything it was told about as durable.
    for (const write of flushed) {
      if (this.state === 'crashed') break;
      if (write.kind === 'persist' || write.kind === 'identity') write.onDurable(null);
    }
    return n;
  }

  crash(): MemoryStorageImage {
    this.checkAlive();
    this.state = 'crashed';
    this.queue.length = 0;
    return this.durable.toImage();
  }

  // --- internals -----------------------------------------------------------------------

  private enqueue(write: QueuedWrite): void {
    this.queue.push(write);
    if (this.flushMode === 'immediate' && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        if (this.state === 'open') this.flushPending();
      });
    }
  }

  private checkAlive(): void {
    if (this.state === 'crashed') throw new AssertionError('memory storage was crashed; restore the image to continue');
  }

  private checkOpen(): void {
    this.checkAlive();
    assert(this.state === 'open', 'memory storage is closed');
  }

  private lastIndex(): number {
    return this.entryLog.lastIndex;
  }

  private term(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.entryLog.termOf(index);
  }

  private bounds(): LogBounds {
    return { snapshotIndex: this.snapshot.index, lastIndex: this.lastIndex(), term: (i) => this.term(i) };
  }

  private makeLogReader(): LogReader {
    return {
      firstIndex: () => {
        this.checkAlive();
        return this.snapshot.index + 1;
      },
      lastIndex: () => {
        this.checkAlive();
        return this.lastIndex();
      },
      term: (index) => {
        this.checkAlive();
        return this.term(index);
      },
      entries: (lo, hi, bytesMax) => {
        this.checkAlive();
        return this.entryLog.read(lo, hi, bytesMax);
      },
      snapshotMeta: () => {
        this.checkAlive();
        return this.snapshot;
      },
    };
  }

  private makeKvBackend(): KvBackend {
    return {
      get: (key) => {
        this.checkAlive();
        return this.data.get(key);
      },
      range: (prefix, after, limit, reverse) => {
        this.checkAlive();
        return this.data.range(prefix, after, limit, reverse);
      },
      getDedup: (clientId) => {
        this.checkAlive();
        return this.dedup.get(clientId);
      },
      appliedIndex: () => {
        this.checkAlive();
        return this.applied;
      },
      keyCount: () => {
        this.checkAlive();
        return this.data.size;
      },
      durableAppliedIndex: () => {
        this.checkAlive();
        return this.durableApplied;
      },
      installs: () => {
        this.checkAlive();
        return this.kvEpoch;
      },
      write: (appliedIndex, mutate) => {
        this.checkOpen();
        assert(isIndex(appliedIndex) && appliedIndex >= this.applied, () => `kv write: applied index ${appliedIndex} is below the current ${this.applied}`);
        const data = this.data;
        const tx = new UndoKvTx(
          {
            get: (key) => data.get(key),
            range: (prefix, after, limit, reverse) => data.range(prefix, after, limit, reverse),
            keyCount: () => data.size,
            dedup: this.dedup,
            write: (key, record) => {
              const previous = data.get(key);
              if (record === null) data.delete(key);
              else data.set(key, record);
              return () => {
                if (previous === undefined) data.delete(key);
                else data.set(key, previous);
              };
            },
          },
          this.applied,
        );
        try {
          mutate(tx);
        } catch (error) {
          tx.rollback();
          throw error;
        }
        this.applied = appliedIndex;
        this.enqueue({ kind: 'kv', kvEpoch: this.kvEpoch, appliedIndex, kv: tx.changes, dedup: tx.dedupChanges });
      },
    };
  }
}
