/**
 * The production storage: one LMDB environment (lmdb-js) in the node's data directory
 * holding the log, hard state, identity, snapshot meta, the kv data with its applied index,
 * the client dedup table and snapshot staging.
 *
 * Durability: a write is acknowledged (`onDurable`) only from lmdb-js's *flushed* promise
 * (fsync done), never from *committed*. Writes queued in one event turn share one LMDB
 * transaction and one fsync (lmdb-js event-turn batching); each persist batch, kv write and
 * install is additionally wrapped in `batch()`, an explicit atomic block, so a crash leaves
 * all of it or none of it.
 *
 * Kv writes are held back: a node applies committed entries in other event turns than it
 * persists, and each such turn would cost a transaction and an fsync of its own, which the
 * next log persist then queues behind. Nothing waits for a kv write to be durable (only
 * compaction reads kv.durableAppliedIndex()), so kv writes stay in memory (visible through
 * the overlay) and are queued, merged into one atomic batch with the newest applied index,
 * just before the next write of any kind, normally the next log persist, whose transaction
 * and fsync they share. They are never held longer than kvDeferMsMax, nor more than
 * kvDeferredWritesMax writes or kvDeferredBytesMax bytes of them, and close() queues them.
 * The order of writes is unchanged (held-back writes are queued before whatever comes
 * next), so durability stays in queue order, and a crash leaves the kv state exactly as of
 * some applied index: all of a merged batch or none of it.
 *
 * Visibility: writes are visible to the synchronous reads of this process the moment they
 * are queued. lmdb-js only shows a write after its transaction commits, so this module keeps
 * what is queued but not yet committed in memory: the log tail (first/last index and the
 * entries themselves; committed entries stay there too as a read cache bounded by
 * logCacheBytesMax, so replication reads of fresh entries skip LMDB) and a kv overlay per
 * slot (point writes and deletes; the dedup table and the applied index are held in memory
 * outright). Overlay entries are dropped when the write that made them commits, and only
 * after this module has reset lmdb-js's shared read transaction (`onCommitted`): lmdb-js
 * resets it when it resolves a commit promise, but it may resolve a transaction's `flushed`
 * promise first, from its write worker's completion, while the read transaction still holds a
 * snapshot from before that commit. Reads consult the overlay first.
 *
 * Layout (named databases): `log` (index -> [kind u8][term f64][data]), `meta` (msgpack:
 * format, hardState, snapshot, applied, kvSlot, identity), and two kv slots `kv0/dedup0`,
 * `kv1/dedup1`. One slot is live; the other stages an incoming snapshot. Installing it flips
 * `meta.kvSlot` in the same transaction that resets the log, so an install is atomic and
 * costs O(1) however large the state machine is; the old slot is cleared afterwards.
 *
 * Parts: this file owns the environment, the log and its in-memory tail, held-back kv
 * writes and installs. Write tracking (commit, flush, watchdog, failures) is in lmdb-writes.ts. Record layouts are in
 * lmdb-codec.ts, a kv slot and its overlay in lmdb-slot.ts, the merged overlay/LMDB cursor
 * in lmdb-cursor.ts, snapshot reads in lmdb-snapshot.ts; what the in-memory twin shares
 * (checks, sizes, dedup table, kv write transaction, staging, chunking) has files of its own.
 *
 * Must never: acknowledge before the flush, run a synchronous LMDB write transaction or any
 * sync fs call after open, delete log entries beyond kv.durableAppliedIndex(), report a kv
 * write in kv.durableAppliedIndex() before its flush, hold a kv write back past
 * kvDeferMsMax or let it overtake a later write, or put an
 * unbounded amount of work into one transaction on the hot path (compaction deletes in
 * chunks; the one unbounded case, an install or truncation that drops a huge divergent log
 * tail, is rare and runs on lmdb-js's writer thread, not the event loop).
 */

import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { open } from 'lmdb';
import type { Database, RootDatabase, RootDatabaseOptionsWithPath } from 'lmdb';
import { entryBytes } from '../core/log.js';
import type { ClusterConfig, Entry, HardState, LogReader, SnapshotMeta } from '../core/types.js';
import { assert, AssertionError } from '../stdx/assert.js';
import { checkIndex, isIndex } from '../stdx/safe-int.js';
import { checkEntriesRange, checkIdentity, checkPersistBatch } from './checks.js';
import type { LogBounds } from './checks.js';
import { UndoKvTx } from './kv-tx.js';
import { decodeDedup, decodeEntry, decodeEntryTerm, encodeDedup, encodeEntry, keyBytes, readHardState, readIdentity, readSnapshotMeta } from './lmdb-codec.js';
import type { OverlayItem } from './lmdb-cursor.js';
import { pagesInUseBytes } from './lmdb-usage.js';
import { DeferredKvWrites } from './lmdb-held.js';
import { toError, WriteTracker } from './lmdb-writes.js';
import type { ChainDb, DurableCallback, StorageFailure } from './lmdb-writes.js';

export type { StorageFailure } from './lmdb-writes.js';
import { KvSlot, SEQ_UNASSIGNED, slotState } from './lmdb-slot.js';
import { LmdbSnapshotSource } from './lmdb-snapshot.js';
import { compactionMeta, initialSnapshotMeta, snapshotSourceMeta } from './meta.js';
import { DedupTable } from './dedup.js';
import { encodeRecord } from './record-codec.js';
import { StagingTracker } from './staging.js';
import type {
  DedupRecord,
  KvBackend,
  NodeIdentity,
  NodeStorage,
  PersistBatch,
  SnapshotChunk,
  SnapshotSource,
  StorageOptions,
} from './types.js';

export interface LmdbStorageOptions extends StorageOptions {
  readonly dataDir: string;
  /**
   * A flush that makes no progress for this long fails the storage (every waiting
   * `onDurable` gets the error): a hung disk is as fatal as a failed one. Default 30 000.
   */
  readonly flushTimeoutMs?: number;
  /**
   * Told of every log batch (`persist`) that became durable: milliseconds from its queueing
   * to its flush, and its entry count. For metrics: the time a write waits for the disk.
   */
  readonly onPersistDurable?: (observation: PersistObservation) => void;
  /** Log entries deleted per compaction transaction. Default 4096. */
  readonly compactEntriesPerTxnMax?: number;
  /**
   * Recently written log entries kept in memory after they commit (counted as in
   * `entries()`), so replication reads of fresh entries never touch LMDB. Default 8 MiB.
   */
  readonly logCacheBytesMax?: number;
  /**
   * Longest a kv write is held back, waiting to share the next write's transaction and
   * fsync, when no other write comes. 0 queues every kv write at once (one transaction per
   * event turn that writes). Default 10 ms, more than a flush takes on a busy disk, so that
   * a node's next log persist normally collects it.
   */
  readonly kvDeferMsMax?: number;
  /** Held-back kv writes beyond which they are all queued at once. Default 64. */
  readonly kvDeferredWritesMax?: number;
  /** Encoded bytes of held-back kv writes beyond which they are all queued at once. Default 8 MiB. */
  readonly kvDeferredBytesMax?: number;
}

export interface PersistObservation {
  /** From `persist()` to the flush that made the batch durable. */
  readonly durationMs: number;
  readonly entries: number;
}

export interface LmdbStorageStats {
  /** LMDB's id of the last committed write transaction; each commit costs at most one fsync. */
  readonly lastTxnId: number;
  /**
   * Flush completions seen; each acknowledges every write queued before it. Completions
   * reported together (lmdb-js resolves every flush promise of one transaction at once)
   * count once, so this is close to, and never below, the number of fsyncs that
   * acknowledged something.
   */
  readonly flushesCompleted: number;
  readonly writesQueued: number;
  readonly writesDurable: number;
  /** Queued or held-back kv writes (keys) not yet committed, i.e. served from memory. */
  readonly overlayKeys: number;
  /** Kv writes held back, waiting to join the next write's transaction. */
  readonly kvWritesDeferred: number;
  /** Log entries queued but not yet committed, i.e. served from memory. */
  readonly uncommittedLogEntries: number;
  /** True while compacted log entries are still being deleted in the background. */
  readonly compactionRunning: boolean;
}

export interface LmdbStorage extends NodeStorage {
  stats(): LmdbStorageStats;
  /**
   * Null while the storage works. After a failure: resolves once every transaction queued
   * before it has settled (or the flush timeout passed, which makes it untrusted).
   */
  failureReport(): Promise<StorageFailure> | null;
  /**
   * Bytes of the pages the stores occupy now (B-tree branch, leaf and overflow pages of every
   * database), not the file's size: LMDB reuses freed pages without shrinking its file, so
   * this falls when data is deleted, compacted or the log truncated. For --quota-bytes.
   */
  usedBytes(): number;
}

const FORMAT_VERSION = 1;
const FLUSH_TIMEOUT_MS_DEFAULT = 30_000;
const FAILED_CLOSE_WAIT_MS = 2_000;
const COMPACT_ENTRIES_PER_TXN_DEFAULT = 4096;
const LOG_CACHE_BYTES_DEFAULT = 8 << 20;
const KV_DEFER_MS_DEFAULT = 10;
const KV_DEFERRED_WRITES_DEFAULT = 64;
const KV_DEFERRED_BYTES_DEFAULT = 8 << 20;
type LogDb = Database<Buffer, number>;
type MetaDb = Database<unknown, string>;

/** Whether `dataDir` already holds an LMDB store (a node that has started before). */
export async function hasLmdbStore(dataDir: string): Promise<boolean> {
  try {
    await stat(path.join(dataDir, 'data.mdb'));
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return false;
    throw e;
  }
}

export async function openLmdbStorage(options: LmdbStorageOptions): Promise<LmdbStorage> {
  checkIndex(options.snapshotBytesMax, 'snapshotBytesMax');
  await mkdir(options.dataDir, { recursive: true });
  // Every option that matters for durability or layout is spelled out (STYLE.md 14).
  const rootOptions: RootDatabaseOptionsWithPath & { safeRestore: boolean } = {
    path: options.dataDir,
    maxDbs: 16,
    pageSize: 4096, // fixes LMDB's key size limit at 1978 bytes (KV_KEY_BYTES_MAX)
    noSync: false, // durability is the point
    noMetaSync: false,
    // Commit makes a transaction visible; the fsync runs after it, outside the writer lock,
    // overlapping the next transaction. We acknowledge only from `flushed`.
    overlappingSync: true,
    separateFlushed: true, // each write promise carries `.flushed`
    // After a process crash the OS still has the committed pages; use them. After a power
    // loss LMDB falls back to the last flushed meta page by itself (boot id check).
    safeRestore: false,
    eventTurnBatching: true, // group commit: one transaction per event turn
    commitDelay: 0,
    useWritemap: false,
    remapChunks: false,
    compression: false,
    cache: false,
    encoding: 'binary',
  };
  const root: RootDatabase = open(rootOptions);
  try {
    return openStorage(root, options);
  } catch (error) {
    await root.close();
    throw error;
  }
}

// --- the storage -------------------------------------------------------------------------

function openStorage(root: RootDatabase, options: LmdbStorageOptions): LmdbNodeStorage {
  const binary = { encoding: 'binary', keyEncoding: 'binary', compression: false, cache: false } as const;
  const logDb: LogDb = root.openDB<Buffer, number>('log', { encoding: 'binary', keyEncoding: 'ordered-binary', compression: false, cache: false });
  // msgpack without the record extension: plain maps, no shared structures to keep in sync.
  const metaOptions = { encoding: 'msgpack', keyEncoding: 'ordered-binary', compression: false, cache: false, useRecords: false } as const;
  const metaDb: MetaDb = root.openDB<unknown, string>('meta', metaOptions);
  const slots: [KvSlot, KvSlot] = [
    new KvSlot(0, root.openDB<Buffer, Buffer>('kv0', binary), root.openDB<Buffer, Buffer>('dedup0', binary)),
    new KvSlot(1, root.openDB<Buffer, Buffer>('kv1', binary), root.openDB<Buffer, Buffer>('dedup1', binary)),
  ];
  // One versioned key whose version counts writes; see LmdbNodeStorage.submit.
  const chainDb: ChainDb = root.openDB<Buffer, string>('chain', { encoding: 'binary', keyEncoding: 'ordered-binary', useVersions: true, compression: false, cache: false });
  return new LmdbNodeStorage(root, logDb, metaDb, chainDb, slots, options);
}

class LmdbNodeStorage implements LmdbStorage {
  readonly log: LogReader;
  readonly kv: KvBackend;

  private readonly flushTimeoutMs: number;
  private readonly onPersistDurable: ((observation: PersistObservation) => void) | undefined;
  private readonly compactEntriesPerTxnMax: number;
  private readonly kvDeferMsMax: number;
  private readonly kvDeferredWritesMax: number;
  private readonly kvDeferredBytesMax: number;
  private deferredKv: DeferredKvWrites | null = null;

  private readonly writes: WriteTracker;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | null = null;

  // Visible state.
  private identityValue: NodeIdentity | null;
  private hardStateValue: HardState;
  private snapshot: SnapshotMeta;
  private last: number;
  /**
   * Entries tailStart..last held in memory: the first `tailCommitted` are committed and kept
   * as a read cache (bounded by logCacheBytesMax), the rest are queued and may not be in
   * LMDB yet. tailSeq[i] is the write that queued tail[i].
   */
  private tail: Entry[] = [];
  private tailSeq: number[] = [];
  private tailStart: number;
  private tailCommitted = 0;
  private tailBytes = 0;
  private readonly logCacheBytesMax: number;
  /** Every log key below this is deleted or has its delete queued. */
  private gcFrom: number;
  private gcLoop: Promise<void> | null = null;
  private active: KvSlot;
  private applied: number;
  private durableApplied: number;
  private readonly staging: StagingTracker;
  private readonly sources = new Set<LmdbSnapshotSource>();

  constructor(
    private readonly root: RootDatabase,
    private readonly logDb: LogDb,
    private readonly metaDb: MetaDb,
    chainDb: ChainDb,
    private readonly slots: [KvSlot, KvSlot],
    options: LmdbStorageOptions,
  ) {
    this.flushTimeoutMs = options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS_DEFAULT;
    this.writes = new WriteTracker(root, chainDb, this.flushTimeoutMs, {
      beforeSubmit: () => this.queueDeferredKv(),
      durableAppliedIs: (index) => {
        this.durableApplied = index;
      },
      failed: () => {
        // Held-back kv writes will never be written.
        const held = this.deferredKv;
        if (held !== null && held.timer !== null) clearTimeout(held.timer);
        this.deferredKv = null;
      },
    });
    this.onPersistDurable = options.onPersistDurable;
    this.compactEntriesPerTxnMax = options.compactEntriesPerTxnMax ?? COMPACT_ENTRIES_PER_TXN_DEFAULT;
    this.logCacheBytesMax = options.logCacheBytesMax ?? LOG_CACHE_BYTES_DEFAULT;
    this.kvDeferMsMax = options.kvDeferMsMax ?? KV_DEFER_MS_DEFAULT;
    this.kvDeferredWritesMax = options.kvDeferredWritesMax ?? KV_DEFERRED_WRITES_DEFAULT;
    this.kvDeferredBytesMax = options.kvDeferredBytesMax ?? KV_DEFERRED_BYTES_DEFAULT;
    // Bounded by a minute: the point is to wait for the next persist, which comes within a flush.
    assert(
      Number.isSafeInteger(this.kvDeferMsMax) && this.kvDeferMsMax >= 0 && this.kvDeferMsMax <= 60_000,
      () => `kvDeferMsMax must be an integer in [0, 60000], got ${this.kvDeferMsMax}`,
    );
    assert(
      Number.isSafeInteger(this.kvDeferredWritesMax) && this.kvDeferredWritesMax > 0,
      () => `kvDeferredWritesMax must be a positive integer, got ${this.kvDeferredWritesMax}`,
    );
    assert(
      Number.isSafeInteger(this.kvDeferredBytesMax) && this.kvDeferredBytesMax > 0,
      () => `kvDeferredBytesMax must be a positive integer, got ${this.kvDeferredBytesMax}`,
    );
    assert(isIndex(this.logCacheBytesMax), () => `logCacheBytesMax must be a non-negative integer, got ${this.logCacheBytesMax}`);
    assert(Number.isSafeInteger(this.flushTimeoutMs) && this.flushTimeoutMs > 0, () => `flushTimeoutMs must be a positive integer, got ${this.flushTimeoutMs}`);
    assert(
      Number.isSafeInteger(this.compactEntriesPerTxnMax) && this.compactEntriesPerTxnMax > 0,
      () => `compactEntriesPerTxnMax must be a positive integer, got ${this.compactEntriesPerTxnMax}`,
    );
    this.staging = new StagingTracker(options.snapshotBytesMax);

    // Reads at open are synchronous memory-map reads; this is the one place they may be long.
    const format = metaDb.get('format');
    const fresh = format === undefined;
    assert(fresh || format === FORMAT_VERSION, () => `data directory ${options.dataDir} has storage format ${String(format)}, expected ${FORMAT_VERSION}`);
    this.identityValue = readIdentity(metaDb.get('identity'));
    this.hardStateValue = readHardState(metaDb.get('hardState'));
    const storedSnapshot = readSnapshotMeta(metaDb.get('snapshot'));
    this.snapshot = storedSnapshot ?? initialSnapshotMeta(options.initialConfig);
    this.applied = checkIndex(metaDb.get('applied') ?? 0, 'stored applied index');
    this.durableApplied = this.applied;
    const slotId = metaDb.get('kvSlot') ?? 0;
    assert(slotId === 0 || slotId === 1, () => `stored kv slot ${String(slotId)} is not 0 or 1`);

    let lastKey: number | undefined;
    for (const key of logDb.getKeys({ reverse: true, limit: 1 })) lastKey = key;
    let firstKey: number | undefined;
    for (const key of logDb.getKeys({ limit: 1 })) firstKey = key;
    this.last = Math.max(this.snapshot.index, lastKey ?? 0);
    if (this.last > this.snapshot.index) {
      assert(
        logDb.getBinaryFast(this.snapshot.index + 1) !== undefined,
        () => `log is corrupt: entry ${this.snapshot.index + 1} (after the snapshot) is missing but entry ${this.last} exists`,
      );
    }
    this.tailStart = this.last + 1;
    this.gcFrom = firstKey !== undefined && firstKey <= this.snapshot.index ? firstKey : this.snapshot.index + 1;

    this.active = slots[slotId];
    this.active.keyCount = (this.active.kvDb.getStats() as { entryCount: number }).entryCount;
    const dedupRecords: DedupRecord[] = [];
    for (const { key, value } of this.active.dedupDb.getRange({})) dedupRecords.push(decodeDedup(key.toString('utf8'), value));
    dedupRecords.sort((a, b) => a.index - b.index);
    this.active.dedup = DedupTable.from(dedupRecords);
    const stagingSlot = this.stagingSlot();
    // Leftovers of an interrupted staging (or of the slot an install replaced): never read.
    stagingSlot.resetTo(SEQ_UNASSIGNED);
    if ((stagingSlot.kvDb.getStats() as { entryCount: number }).entryCount > 0 || (stagingSlot.dedupDb.getStats() as { entryCount: number }).entryCount > 0) {
      this.clearSlot(stagingSlot);
    }
    // The bootstrap configuration is stored with the first write, so that from then on the
    // log and this record, never the command line of a later start, say who the members are.
    if (fresh || storedSnapshot === null) {
      const bootstrap = this.snapshot;
      this.writes.submit(() => {
        if (fresh) void metaDb.put('format', FORMAT_VERSION);
        void metaDb.put('snapshot', bootstrap);
      }, {});
    }

    this.log = this.makeLogReader();
    this.kv = this.makeKvBackend();
    this.kickGc();
  }

  // --- NodeStorage ---------------------------------------------------------------------

  hardState(): HardState {
    return this.hardStateValue;
  }

  identity(): NodeIdentity | null {
    return this.identityValue;
  }

  setIdentity(identity: NodeIdentity, onDurable: DurableCallback): void {
    this.checkOpen();
    checkIdentity(identity, this.identityValue);
    if (this.writes.rejectIfFailed(onDurable)) return;
    const stored: NodeIdentity = { nodeId: identity.nodeId, clusterId: identity.clusterId, ...(identity.memberId !== undefined ? { memberId: identity.memberId } : {}) };
    this.writes.submit(() => void this.metaDb.put('identity', stored), { onDurable });
    this.identityValue = stored;
  }

  persist(batch: PersistBatch, onDurable: DurableCallback): void {
    this.checkOpen();
    checkPersistBatch(batch, this.bounds(), this.hardStateValue, this.staging.complete);
    if (this.writes.rejectIfFailed(onDurable)) return;
    const { snapshot, entries, hardState } = batch;

    // Log keys to delete, one range [deleteFrom, deleteTo]: everything after the snapshot
    // on an install, the overwritten tail on a truncation.
    let deleteFrom = Infinity;
    const deleteTo = this.last;
    if (snapshot !== null) deleteFrom = Math.max(this.gcFrom, snapshot.index + 1);
    const firstEntry = entries[0];
    if (firstEntry !== undefined) deleteFrom = Math.min(deleteFrom, firstEntry.index + entries.length);
    const encoded = entries.map(encodeEntry);
    const target = snapshot !== null ? this.stagingSlot() : null;
    const appliedAfter = snapshot !== null ? snapshot.index : null;
    const observe = this.onPersistDurable;
    const queuedAtMs = observe === undefined ? 0 : performance.now();
    const whenDurable: DurableCallback =
      observe === undefined
        ? onDurable
        : (error) => {
            if (error === null) observe({ durationMs: performance.now() - queuedAtMs, entries: entries.length });
            onDurable(error);
          };

    const seq = this.writes.submit(
      () => {
        for (let index = deleteFrom; index <= deleteTo; index++) void this.logDb.remove(index);
        if (snapshot !== null && target !== null) {
          void this.metaDb.put('snapshot', snapshot);
          void this.metaDb.put('applied', snapshot.index);
          void this.metaDb.put('kvSlot', target.id);
        }
        for (let i = 0; i < encoded.length; i++) void this.logDb.put((entries[i] as Entry).index, encoded[i] as Buffer);
        if (hardState !== null) void this.metaDb.put('hardState', hardState);
      },
      {
        onCommitted: () => this.releaseTail(seq),
        onDurable: whenDurable,
        ...(appliedAfter !== null ? { durableApplied: appliedAfter } : {}),
      },
      snapshot !== null, // durability of older kv writes says nothing about the installed state
    );

    if (snapshot !== null && target !== null) {
      target.materializeStaged();
      const previous = this.active;
      this.active = target;
      this.applied = snapshot.index;
      this.durableApplied = Math.min(this.durableApplied, snapshot.index);
      this.staging.reset();
      this.snapshot = snapshot;
      this.last = snapshot.index;
      this.resetTail(snapshot.index + 1);
      this.gcFrom = Math.min(this.gcFrom, snapshot.index + 1);
      // Free the replaced state now rather than at the next staging: an install is rare
      // and the clear runs on lmdb-js's writer thread.
      this.clearSlot(previous);
      this.kickGc();
    }
    if (firstEntry !== undefined) this.appendTail(entries, seq);
    if (hardState !== null) this.hardStateValue = hardState;
  }

  compact(index: number, config: ClusterConfig): void {
    this.checkOpen();
    const meta = compactionMeta(index, config, this.snapshot, this.last, this.durableApplied, (i) => this.termAt(i));
    if (meta === null || this.writes.failure !== null) return;
    this.writes.submit(() => void this.metaDb.put('snapshot', meta), {});
    this.snapshot = meta;
    if (this.tailStart <= index) this.dropTailHead(index + 1 - this.tailStart);
    this.kickGc();
  }

  openSnapshot(config: ClusterConfig): SnapshotSource {
    this.checkOpen();
    const meta = snapshotSourceMeta(this.applied, config, (i) => this.termAt(i));
    // The read transaction holds every committed write; the overlay copy holds every queued
    // one (entries leave the overlay only after their commit reset lmdb-js's read txn), so
    // together they are exactly the current state, and stay so while writes continue.
    const slot = this.active;
    const overlay: OverlayItem[] = [];
    for (const [key, entry] of slot.overlay) overlay.push({ key, keyBytes: keyBytes(key), record: entry.record });
    overlay.sort((a, b) => Buffer.compare(a.keyBytes, b.keyBytes));
    const baseHidden = slot.baseHiddenUntilSeq > 0;
    const txn = baseHidden ? null : this.root.useReadTransaction();
    const source = new LmdbSnapshotSource(meta, slot.kvDb, txn, overlay, slot.dedup.all(), (s) => this.sources.delete(s));
    this.sources.add(source);
    return source;
  }

  stageSnapshotChunk(chunk: SnapshotChunk): void {
    this.checkOpen();
    if (this.writes.failure !== null) throw this.writes.failure;
    // Records go to LMDB as they came, views into the chunk: nothing is decoded here. They
    // are plain Uint8Arrays, which lmdb-js takes as it takes Buffers (it copies the key and
    // keeps the value's memory until the commit).
    const puts: Uint8Array[] = [];
    const { restart, records } = this.staging.accept(chunk, (key, record) => void puts.push(key, record));
    const slot = this.stagingSlot();
    if (restart) slot.resetTo(SEQ_UNASSIGNED);
    const dedupPuts = chunk.dedup.map((record) => ({ keyBytes: keyBytes(record.clientId), value: encodeDedup(record) }));
    const seq = this.writes.submit(
      () => {
        if (restart) {
          void slot.kvDb.clearAsync();
          void slot.dedupDb.clearAsync();
        }
        for (let i = 0; i < puts.length; i += 2) void slot.kvDb.put(puts[i] as Buffer, puts[i + 1] as Buffer);
        for (const d of dedupPuts) void slot.dedupDb.put(d.keyBytes, d.value);
      },
      {
        onCommitted: () => {
          if (slot.baseHiddenUntilSeq === seq) slot.baseHiddenUntilSeq = 0;
          slot.stagedCommitted(seq);
        },
      },
    );
    if (restart) slot.baseHiddenUntilSeq = seq;
    slot.staged(seq, chunk.records, records);
    for (const record of chunk.dedup) slot.dedup.put(record);
  }

  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  failureReport(): Promise<StorageFailure> | null {
    return this.writes.failureReport();
  }

  usedBytes(): number {
    return pagesInUseBytes([this.root, this.logDb, this.metaDb, ...this.slots.flatMap((s) => [s.kvDb, s.dedupDb])]);
  }

  stats(): LmdbStorageStats {
    let overlayKeys = 0;
    for (const slot of this.slots) overlayKeys += slot.overlay.size;
    const writes = this.writes.counts();
    return {
      lastTxnId: (this.root.getStats() as { lastTxnId: number }).lastTxnId,
      flushesCompleted: writes.flushes,
      writesQueued: writes.queued,
      writesDurable: writes.durable,
      overlayKeys,
      kvWritesDeferred: this.deferredKv?.writes ?? 0,
      uncommittedLogEntries: this.tail.length - this.tailCommitted,
      compactionRunning: this.gcLoop !== null,
    };
  }

  // --- writes and their acknowledgement ------------------------------------------------

  private async closeNow(): Promise<void> {
    this.queueDeferredKv();
    this.state = 'closing';
    if (this.gcLoop !== null) await this.gcLoop;
    for (const source of [...this.sources]) source.close();
    // Bounded by the flush watchdog, which fails (and so wakes) us on a hung disk.
    await this.writes.drained();
    this.writes.stopWatchdog();
    this.state = 'closed';
    if (this.writes.failure === null) return this.root.close();
    // lmdb-js waits for the flush of every transaction before it closes, and the flush of one
    // whose commit failed never comes: after a failure, give it a moment and go on. The
    // environment stays open underneath (a later open of the directory shares it).
    await Promise.race([this.root.close(), new Promise<void>((resolve) => setTimeout(resolve, FAILED_CLOSE_WAIT_MS).unref())]);
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new AssertionError(`LMDB storage is ${this.state}`);
  }

  // --- log -------------------------------------------------------------------------------

  private appendTail(entries: readonly Entry[], seq: number): void {
    const first = (entries[0] as Entry).index;
    if (first < this.tailStart) {
      // Overwrites entries that are only in LMDB: the in-memory tail restarts here.
      this.resetTail(first);
    } else {
      const keep = first - this.tailStart;
      for (let i = keep; i < this.tail.length; i++) this.tailBytes -= entryBytes(this.tail[i] as Entry);
      this.tail.length = keep;
      this.tailSeq.length = keep;
      this.tailCommitted = Math.min(this.tailCommitted, keep);
    }
    for (const entry of entries) {
      this.tail.push(entry);
      this.tailSeq.push(seq);
      this.tailBytes += entryBytes(entry);
    }
    this.last = first + entries.length - 1;
  }

  /** Entries written by commits up to `seq` are in LMDB now: keep them only as a bounded cache. */
  private releaseTail(seq: number): void {
    while (this.tailCommitted < this.tailSeq.length && (this.tailSeq[this.tailCommitted] as number) <= seq) this.tailCommitted++;
    let drop = 0;
    let bytes = this.tailBytes;
    while (drop < this.tailCommitted && bytes > this.logCacheBytesMax) bytes -= entryBytes(this.tail[drop++] as Entry);
    if (drop > 0) this.dropTailHead(drop);
  }

  private dropTailHead(count: number): void {
    for (let i = 0; i < count; i++) this.tailBytes -= entryBytes(this.tail[i] as Entry);
    this.tail.splice(0, count);
    this.tailSeq.splice(0, count);
    this.tailStart += count;
    this.tailCommitted = Math.max(0, this.tailCommitted - count);
  }

  private resetTail(start: number): void {
    this.tail = [];
    this.tailSeq = [];
    this.tailStart = start;
    this.tailCommitted = 0;
    this.tailBytes = 0;
  }

  private termAt(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.last) return undefined;
    if (index >= this.tailStart) return (this.tail[index - this.tailStart] as Entry).term;
    return decodeEntryTerm(index, this.logDb.getBinaryFast(index));
  }

  private bounds(): LogBounds {
    return { snapshotIndex: this.snapshot.index, lastIndex: this.last, term: (i) => this.termAt(i) };
  }

  private makeLogReader(): LogReader {
    return {
      firstIndex: () => this.snapshot.index + 1,
      lastIndex: () => this.last,
      term: (index) => this.termAt(index),
      entries: (lo, hi, bytesMax) => {
        checkEntriesRange(lo, hi, this.snapshot.index + 1, this.last);
        const out: Entry[] = [];
        let bytes = 0;
        const fromDiskHi = Math.min(hi, this.tailStart);
        if (lo < fromDiskHi) {
          for (const { key, value } of this.logDb.getRange({ start: lo, end: fromDiskHi })) {
            const entry = decodeEntry(key, value);
            assert(key === lo + out.length, () => `log is corrupt: expected entry ${lo + out.length}, found ${key}`);
            const size = entryBytes(entry);
            if (out.length > 0 && bytes + size > bytesMax) return out;
            out.push(entry);
            bytes += size;
          }
          assert(out.length === fromDiskHi - lo, () => `log is corrupt: entries ${lo + out.length}..${fromDiskHi - 1} are missing`);
        }
        for (let index = Math.max(lo, this.tailStart); index < hi; index++) {
          const entry = this.tail[index - this.tailStart] as Entry;
          const size = entryBytes(entry);
          if (out.length > 0 && bytes + size > bytesMax) break;
          out.push(entry);
          bytes += size;
        }
        return out;
      },
      snapshotMeta: () => this.snapshot,
    };
  }

  /**
   * Deletes compacted log entries (below the snapshot) one bounded transaction at a time,
   * waiting for each to commit before queuing the next so the hot path is never stuck
   * behind a huge delete.
   */
  private kickGc(): void {
    if (this.gcLoop !== null || this.state !== 'open' || this.writes.failure !== null || this.gcFrom > this.snapshot.index) return;
    this.gcLoop = this.runGc().then(
      () => {
        this.gcLoop = null;
      },
      (error: unknown) => {
        this.gcLoop = null;
        this.writes.fail(toError(error), 'other');
      },
    );
  }

  private async runGc(): Promise<void> {
    while (this.state === 'open' && this.writes.failure === null && this.gcFrom <= this.snapshot.index) {
      // Skip ranges with no keys (a log that started after an install has none below it).
      let lowest: number | undefined;
      for (const key of this.logDb.getKeys({ start: this.gcFrom, limit: 1 })) lowest = key;
      if (lowest === undefined || lowest > this.snapshot.index) {
        this.gcFrom = this.snapshot.index + 1;
        return;
      }
      const from = lowest;
      const to = Math.min(this.snapshot.index, from + this.compactEntriesPerTxnMax - 1);
      this.gcFrom = to + 1;
      let committed!: () => void;
      const done = new Promise<void>((resolve) => {
        committed = resolve;
      });
      this.writes.submit(
        () => {
          for (let index = from; index <= to; index++) void this.logDb.remove(index);
        },
        { onCommitted: () => committed() },
      );
      // If the commit fails, fail() runs and the loop ends on its next check; the watchdog
      // bounds this wait.
      await Promise.race([done, this.writes.settled()]);
    }
  }

  // --- kv --------------------------------------------------------------------------------

  private stagingSlot(): KvSlot {
    return this.slots[this.active.id === 0 ? 1 : 0];
  }

  private clearSlot(slot: KvSlot): void {
    const seq = this.writes.submit(
      () => {
        void slot.kvDb.clearAsync();
        void slot.dedupDb.clearAsync();
      },
      {
        onCommitted: () => {
          if (slot.baseHiddenUntilSeq === seq) slot.baseHiddenUntilSeq = 0;
        },
      },
    );
    slot.resetTo(seq);
  }

  /**
   * Queues the held-back kv writes, if any, as one atomic batch: their changes and the
   * newest applied index commit together, so a crash keeps all of them or none.
   */
  private queueDeferredKv(): void {
    const group = this.deferredKv;
    if (group === null) return;
    this.deferredKv = null;
    if (group.timer !== null) clearTimeout(group.timer);
    if (this.writes.failure !== null) return;
    const { slot, puts, dedupPuts, appliedIndex } = group;
    const keys = [...puts.keys()];
    const seq = this.writes.submit(
      () => {
        for (const p of puts.values()) void (p.value === null ? slot.kvDb.remove(p.keyBytes) : slot.kvDb.put(p.keyBytes, p.value));
        for (const d of dedupPuts.values()) void (d.value === null ? slot.dedupDb.remove(d.keyBytes) : slot.dedupDb.put(d.keyBytes, d.value));
        void this.metaDb.put('applied', appliedIndex);
      },
      { onCommitted: () => slot.release(keys, seq), durableApplied: appliedIndex },
    );
    assert(seq === group.seq, () => `held-back kv writes were numbered ${group.seq} but queued as write ${seq}`);
  }

  private makeKvBackend(): KvBackend {
    return {
      get: (key) => this.active.get(key),
      range: (prefix, after, limit, reverse) => this.active.range(prefix, after, limit, reverse),
      getDedup: (clientId) => this.active.dedup.get(clientId),
      appliedIndex: () => this.applied,
      keyCount: () => this.active.keyCount,
      durableAppliedIndex: () => this.durableApplied,
      write: (appliedIndex, mutate) => {
        this.checkOpen();
        if (this.writes.failure !== null) throw this.writes.failure;
        assert(isIndex(appliedIndex) && appliedIndex >= this.applied, () => `kv write: applied index ${appliedIndex} is below the current ${this.applied}`);
        const slot = this.active;
        const tx = new UndoKvTx(slotState(slot), this.applied);
        try {
          mutate(tx);
        } catch (error) {
          tx.rollback();
          throw error;
        }
        let group = this.deferredKv;
        if (group === null) {
          group = new DeferredKvWrites(slot, this.writes.writeSeq + 1);
          this.deferredKv = group;
          if (this.kvDeferMsMax > 0) group.timer = setTimeout(() => this.queueDeferredKv(), this.kvDeferMsMax);
        }
        // Installs, the only way to change the live slot, queue held-back writes first.
        assert(group.slot === slot, () => `held-back kv writes target slot ${group.slot.id}, the live slot is ${slot.id}`);
        for (const [key, record] of tx.changes) {
          const change = { keyBytes: group.puts.get(key)?.keyBytes ?? keyBytes(key), value: record === null ? null : encodeRecord(record) };
          group.puts.set(key, change);
          group.bytes += change.keyBytes.length + (change.value?.length ?? 0);
          slot.overlay.set(key, { seq: group.seq, record });
        }
        for (const [clientId, record] of tx.dedupChanges) {
          const change = { keyBytes: group.dedupPuts.get(clientId)?.keyBytes ?? keyBytes(clientId), value: record === null ? null : encodeDedup(record) };
          group.dedupPuts.set(clientId, change);
          group.bytes += change.keyBytes.length + (change.value?.length ?? 0);
        }
        group.appliedIndex = appliedIndex;
        group.writes++;
        this.applied = appliedIndex;
        if (this.kvDeferMsMax === 0 || group.writes >= this.kvDeferredWritesMax || group.bytes >= this.kvDeferredBytesMax) this.queueDeferredKv();
      },
    };
  }
}
