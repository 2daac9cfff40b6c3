/**
 * The production storage: the Raft log and hard state in a write-ahead log (wal.ts, in the
 * data directory's `wal/`), everything else in one LMDB environment (lmdb-js): identity,
 * snapshot meta, the kv data with its applied index, the client dedup table and snapshot
 * staging.
 *
 * Durability: a persist (log entries, hard state, an install's log reset) is acknowledged
 * (`onDurable`) only after the WAL's durable write that covers it (O_DSYNC: a write and an
 * fdatasync in one); persists queued in one synchronous run share one write. Other writes are acknowledged only from
 * lmdb-js's *flushed* promise (fsync done), never from *committed*; writes queued in one
 * event turn share one LMDB transaction and fsync (event-turn batching), and each is wrapped
 * in `batch()`, an explicit atomic block, so a crash leaves all of it or none of it.
 *
 * Why two files: a durable write to a preallocated append-only file costs a fraction of an LMDB
 * commit's flush (docs/architecture.md, "The Raft log: LMDB, then a WAL"), and a write waits
 * for one on the leader and on a follower. The state machine needs no fsync of its own on
 * that path: it is rebuilt from the log past its applied index after a crash.
 *
 * Kv writes are held back, so that many apply batches share one LMDB transaction and fsync:
 * nothing waits for a kv write to be durable (only compaction reads
 * kv.durableAppliedIndex()), so kv writes stay in memory (visible through the overlay) and
 * are merged into one atomic group with the newest applied index. A group is closed after
 * kvDeferMsMax, kvDeferredWritesMax writes, kvDeferredKeysMax keys or kvDeferredBytesMax
 * bytes, and at close(),
 * and queued as soon as the WAL holds every entry it applies:
 * LMDB's applied index never runs ahead of the durable log, so recovery always finds the
 * entries past it. Groups are queued in order, so a crash leaves the kv state exactly as of
 * some applied index: all of a group or none of it.
 *
 * Recovery: LMDB says which snapshot the log starts after and which log generation its
 * state belongs to (installs count generations); the WAL is replayed against that
 * (wal-replay.ts). An install flips LMDB durably first and only then writes the WAL's reset
 * record, so a crash between the two leaves a newer LMDB generation and an old log, which
 * replay drops. A directory written before the WAL (format 1) gets its log moved into one at
 * its first open (lmdb-wal-setup.ts).
 *
 * Visibility: writes are visible to the synchronous reads of this process the moment they
 * are queued. The whole log after the snapshot is held in memory (the WAL is only written,
 * never read, until the next open); its size is bounded by compaction. lmdb-js only shows a
 * write after its transaction commits, so a kv overlay per slot holds what is queued or held
 * back but not yet committed (point writes and deletes; the dedup table and the applied
 * index are held in memory outright). Overlay entries are dropped when the write that made
 * them commits, and only after this module has reset lmdb-js's shared read transaction
 * (`onCommitted`): lmdb-js resets it when it resolves a commit promise, but it may resolve a
 * transaction's `flushed` promise first, from its write worker's completion, while the read
 * transaction still holds a snapshot from before that commit. Reads consult the overlay first.
 *
 * Layout (named databases): `meta` (msgpack: format, logGeneration, snapshot, applied,
 * kvSlot, identity), and two kv slots `kv0/dedup0`, `kv1/dedup1`. One slot is live; the
 * other stages an incoming snapshot. Installing it flips `meta.kvSlot` in one transaction,
 * so an install is atomic and costs O(1) however large the state machine is; the old slot
 * is cleared afterwards. (`log` is only read to migrate a format-1 directory.)
 *
 * Parts: this file owns the environment, the in-memory log, held-back kv writes and
 * installs. The WAL is wal.ts (files), wal-codec.ts (bytes) and wal-replay.ts (recovery).
 * Write tracking (commit, flush, watchdog, failures) is in lmdb-writes.ts. Record layouts
 * are in lmdb-codec.ts, a kv slot and its overlay in lmdb-slot.ts, the merged overlay/LMDB
 * cursor in lmdb-cursor.ts, snapshot reads in lmdb-snapshot.ts; what the in-memory twin
 * shares (checks, sizes, dedup table, kv write transaction, staging, chunking) has files of
 * its own.
 *
 * Must never: acknowledge before the fsync, run a synchronous LMDB write transaction or any
 * sync fs call after open, compact the log beyond kv.durableAppliedIndex() or delete a WAL
 * segment before LMDB durably says the log starts after it, queue a kv write before the WAL
 * holds its entries, report a kv write in kv.durableAppliedIndex() before its flush, let a
 * kv group overtake an earlier one, or write an install's reset record before its LMDB flip
 * is durable.
 */

import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { open } from 'lmdb';
import type { Database, RootDatabase, RootDatabaseOptionsWithPath } from 'lmdb';
import type { ClusterConfig, HardState, LogReader, SnapshotMeta } from '../core/types.js';
import { assert, AssertionError } from '../stdx/assert.js';
import { checkIndex, checkPositiveSafeInt, isIndex } from '../stdx/safe-int.js';
import { checkIdentity, checkPersistBatch } from './checks.js';
import type { LogBounds } from './checks.js';
import { UndoKvTx } from './kv-tx.js';
import { decodeDedup, encodeDedup, keyBytes, readIdentity, readSnapshotMeta } from './lmdb-codec.js';
import type { OverlayItem } from './lmdb-cursor.js';
import { pagesInUseBytes } from './lmdb-usage.js';
import { DeferredKvWrites } from './lmdb-held.js';
import { finishWalCreation, walCreationFromLmdb } from './lmdb-wal-setup.js';
import { WriteTracker } from './lmdb-writes.js';
import type { ChainDb, DurableCallback, StorageFailure } from './lmdb-writes.js';

export type { StorageFailure } from './lmdb-writes.js';
import { KvSlot, SEQ_UNASSIGNED, slotState } from './lmdb-slot.js';
import { LmdbSnapshotSource } from './lmdb-snapshot.js';
import { compactionMeta, freshHardState, initialSnapshotMeta, snapshotSourceMeta } from './meta.js';
import { DedupTable } from './dedup.js';
import { EntryLog } from './entry-log.js';
import { encodeRecord } from './record-codec.js';
import { StagingTracker } from './staging.js';
import { openWal, WAL_SEGMENT_BYTES_DEFAULT } from './wal.js';
import type { Wal, WalCreation, WalFailureStage } from './wal.js';
import { encodeEntries, encodeHardState, encodeReset } from './wal-codec.js';
import type { Replayed } from './wal-replay.js';
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
  /** Bytes each write-ahead log segment is preallocated to (wal.ts). Default 64 MiB. */
  readonly walSegmentBytes?: number;
  /**
   * Longest kv writes are held back, so that many apply batches share one LMDB transaction
   * and fsync (nothing waits for them: the WAL holds the entries they apply, and a restart
   * replays at most this much of it). 0 queues every kv write as soon as the WAL holds its
   * entries. Default 1 000 ms: a commit rewrites every page its keys touch, so on a hot key
   * set ten commits a second wrote the same pages ten times (docs/benchmarks.md, seventeenth
   * session: 10–20 % more writes/s than at 100 ms on the three paths measured).
   */
  readonly kvDeferMsMax?: number;
  /** Held-back kv writes (apply batches) beyond which they are all queued at once. Default 4 096. */
  readonly kvDeferredWritesMax?: number;
  /**
   * Distinct keys held back beyond which they are all queued at once. Default 2 048. Where
   * keys are many, each lands on a page of its own, so this bounds the pages one commit
   * writes (≈ 8 MiB at 2 048) and how long it holds the disk from the WAL's writes. A hot
   * set of 10 000 keys written 5 000 times a second reaches it in about half a second; a set
   * smaller than the cap never does.
   */
  readonly kvDeferredKeysMax?: number;
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
  /** Durable writes of the write-ahead log: each made one or more persists durable. */
  readonly walSyncs: number;
  /** Bytes of the write-ahead log's files (segments, preallocated, and the prepared spare). */
  readonly walBytes: number;
}

export interface LmdbStorage extends NodeStorage {
  stats(): LmdbStorageStats;
  /**
   * Null while the storage works. After a failure: resolves once every transaction queued
   * before it has settled (or the flush timeout passed, which makes it untrusted).
   */
  failureReport(): Promise<StorageFailure> | null;
  /**
   * Bytes of the pages the state machine's stores occupy now (B-tree branch, leaf and overflow
   * pages of every LMDB database; not the write-ahead log), not the file's size: LMDB reuses freed pages without shrinking its file, so
   * this falls when data is deleted, compacted or the log truncated. For --quota-bytes.
   */
  usedBytes(): number;
}

/** 1: the log in LMDB (migrated at open); 2: the log in the write-ahead log. */
const FORMAT_VERSION = 2;
const FORMAT_LOG_IN_LMDB = 1;
const FLUSH_TIMEOUT_MS_DEFAULT = 30_000;
const FAILED_CLOSE_WAIT_MS = 2_000;
const KV_DEFER_MS_DEFAULT = 1_000;
const KV_DEFERRED_WRITES_DEFAULT = 4_096;
const KV_DEFERRED_KEYS_DEFAULT = 2_048;
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
    return await openStorage(root, options);
  } catch (error) {
    await root.close();
    throw error;
  }
}

// --- the storage -------------------------------------------------------------------------

interface Databases {
  readonly root: RootDatabase;
  readonly metaDb: MetaDb;
  readonly chainDb: ChainDb;
  readonly slots: [KvSlot, KvSlot];
}

async function openStorage(root: RootDatabase, options: LmdbStorageOptions): Promise<LmdbNodeStorage> {
  const binary = { encoding: 'binary', keyEncoding: 'binary', compression: false, cache: false } as const;
  // msgpack without the record extension: plain maps, no shared structures to keep in sync.
  const metaOptions = { encoding: 'msgpack', keyEncoding: 'ordered-binary', compression: false, cache: false, useRecords: false } as const;
  const metaDb: MetaDb = root.openDB<unknown, string>('meta', metaOptions);
  const slots: [KvSlot, KvSlot] = [
    new KvSlot(0, root.openDB<Buffer, Buffer>('kv0', binary), root.openDB<Buffer, Buffer>('dedup0', binary)),
    new KvSlot(1, root.openDB<Buffer, Buffer>('kv1', binary), root.openDB<Buffer, Buffer>('dedup1', binary)),
  ];
  // One versioned key whose version counts writes; see WriteTracker.submit.
  const chainDb: ChainDb = root.openDB<Buffer, string>('chain', { encoding: 'binary', keyEncoding: 'ordered-binary', useVersions: true, compression: false, cache: false });

  // Reads at open are synchronous memory-map reads; this is the one place they may be long.
  const format = metaDb.get('format');
  assert(
    format === undefined || format === FORMAT_VERSION || format === FORMAT_LOG_IN_LMDB,
    () => `data directory ${options.dataDir} has storage format ${String(format)}, expected ${FORMAT_VERSION}`,
  );
  const storedSnapshot = readSnapshotMeta(metaDb.get('snapshot'));
  const snapshot = storedSnapshot ?? initialSnapshotMeta(options.initialConfig);
  const generation = checkIndex(metaDb.get('logGeneration') ?? 0, 'stored log generation');
  // A fresh directory gets a new WAL; one whose log is still in LMDB gets it moved into a new
  // WAL. Either way the WAL is complete and durable before LMDB says so (format 2), so a crash
  // in between only repeats this at the next open.
  const formerLogDb: LogDb | null =
    format === FORMAT_LOG_IN_LMDB ? root.openDB<Buffer, number>('log', { encoding: 'binary', keyEncoding: 'ordered-binary', compression: false, cache: false }) : null;
  const creation: WalCreation | null =
    format === undefined ? { generation: 0, hardState: freshHardState(), payloads: [] } : formerLogDb !== null ? walCreationFromLmdb(formerLogDb, metaDb, snapshot) : null;
  const walOptions = {
    dataDir: options.dataDir,
    segmentBytes: options.walSegmentBytes ?? WAL_SEGMENT_BYTES_DEFAULT,
    flushTimeoutMs: options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS_DEFAULT,
  };
  checkPositiveSafeInt(walOptions.segmentBytes, 'walSegmentBytes');
  let failed: ((error: Error, stage: WalFailureStage) => void) | null = null;
  const { wal, replayed } = await openWal(
    { ...walOptions, onFailure: (error, stage) => failed?.(error, stage) },
    { generation, snapshotIndex: snapshot.index },
    creation,
  );
  try {
    if (creation !== null) {
      await finishWalCreation(metaDb, formerLogDb, FORMAT_VERSION, generation, storedSnapshot === null ? snapshot : null);
    }
    const storage = new LmdbNodeStorage({ root, metaDb, chainDb, slots }, options, wal, replayed, snapshot, generation);
    failed = (error, stage) => storage.walFailed(error, stage);
    return storage;
  } catch (error) {
    await wal.close().catch(() => undefined);
    throw error;
  }
}

class LmdbNodeStorage implements LmdbStorage {
  readonly log: LogReader;
  readonly kv: KvBackend;

  private readonly root: RootDatabase;
  private readonly metaDb: MetaDb;
  private readonly slots: [KvSlot, KvSlot];
  private readonly onPersistDurable: ((observation: PersistObservation) => void) | undefined;
  private readonly kvDeferMsMax: number;
  private readonly kvDeferredWritesMax: number;
  private readonly kvDeferredKeysMax: number;
  private readonly kvDeferredBytesMax: number;
  /** The group collecting kv writes now. */
  private deferredKv: DeferredKvWrites | null = null;
  /** Groups closed (by time or size) and waiting for the WAL, oldest first. */
  private closedKv: DeferredKvWrites[] = [];
  /** Tags the overlay entries of each held-back kv group (negative: never an LMDB write's seq). */
  private heldGroupTag = 0;

  private readonly writes: WriteTracker;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | null = null;

  // Visible state.
  private identityValue: NodeIdentity | null;
  private hardStateValue: HardState;
  private snapshot: SnapshotMeta;
  /** The log after the snapshot, all of it in memory (the WAL is write-only). */
  private readonly entryLog: EntryLog;
  /** Installs done: a new generation's log replaces the one before it (wal-replay.ts). */
  private generation: number;
  /** The last log index as of the newest durable WAL append: applied kv writes up to it may go to LMDB. */
  private walDurableLast: number;
  /** Raised whenever a persist replaces entries (an install, a truncation): older persists no longer raise walDurableLast. */
  private walLogEpoch = 0;
  private active: KvSlot;
  private applied: number;
  private durableApplied: number;
  private readonly staging: StagingTracker;
  private readonly sources = new Set<LmdbSnapshotSource>();

  constructor(dbs: Databases, options: LmdbStorageOptions, private readonly wal: Wal, replayed: Replayed, snapshot: SnapshotMeta, generation: number) {
    const { root, metaDb, chainDb, slots } = dbs;
    this.root = root;
    this.metaDb = metaDb;
    this.slots = slots;
    const flushTimeoutMs = options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS_DEFAULT;
    this.writes = new WriteTracker(root, chainDb, flushTimeoutMs, {
      durableAppliedIs: (index) => {
        this.durableApplied = index;
      },
      failed: () => {
        // Held-back kv writes will never be written, nor will the WAL write anything more: an
        // install's reset record must not follow an LMDB flip that failed.
        this.dropDeferredKv();
        this.wal.fail(this.writes.failure);
      },
    });
    this.onPersistDurable = options.onPersistDurable;
    this.kvDeferMsMax = options.kvDeferMsMax ?? KV_DEFER_MS_DEFAULT;
    this.kvDeferredWritesMax = options.kvDeferredWritesMax ?? KV_DEFERRED_WRITES_DEFAULT;
    this.kvDeferredKeysMax = options.kvDeferredKeysMax ?? KV_DEFERRED_KEYS_DEFAULT;
    this.kvDeferredBytesMax = options.kvDeferredBytesMax ?? KV_DEFERRED_BYTES_DEFAULT;
    // Bounded by a minute: held-back writes are memory, and compaction waits for them.
    assert(
      Number.isSafeInteger(this.kvDeferMsMax) && this.kvDeferMsMax >= 0 && this.kvDeferMsMax <= 60_000,
      () => `kvDeferMsMax must be an integer in [0, 60000], got ${this.kvDeferMsMax}`,
    );
    checkPositiveSafeInt(this.kvDeferredWritesMax, 'kvDeferredWritesMax');
    checkPositiveSafeInt(this.kvDeferredKeysMax, 'kvDeferredKeysMax');
    checkPositiveSafeInt(this.kvDeferredBytesMax, 'kvDeferredBytesMax');
    checkPositiveSafeInt(flushTimeoutMs, 'flushTimeoutMs');
    this.staging = new StagingTracker(options.snapshotBytesMax);

    this.identityValue = readIdentity(metaDb.get('identity'));
    this.hardStateValue = replayed.hardState ?? freshHardState();
    this.snapshot = snapshot;
    this.generation = generation;
    this.entryLog = new EntryLog(snapshot.index, replayed.entries);
    this.walDurableLast = this.entryLog.lastIndex;
    this.applied = checkIndex(metaDb.get('applied') ?? 0, 'stored applied index');
    this.durableApplied = this.applied;
    assert(this.applied >= snapshot.index, () => `stored applied index ${this.applied} is below the snapshot's ${snapshot.index}`);
    const slotId = metaDb.get('kvSlot') ?? 0;
    assert(slotId === 0 || slotId === 1, () => `stored kv slot ${String(slotId)} is not 0 or 1`);

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

    this.log = this.makeLogReader();
    this.kv = this.makeKvBackend();
  }

  /**
   * The WAL failed: so does the storage. A write that found the disk full left at most a torn tail (the
   * directory reopens as after a crash, like a failed LMDB commit); any other failed write may
   * have lost pages and is never trusted.
   */
  walFailed(error: Error, stage: WalFailureStage): void {
    this.writes.fail(error, stage === 'write' ? 'commit' : stage === 'sync' ? 'flush' : 'hung');
  }

  // --- NodeStorage ---------------------------------------------------------------------

  hardState(): HardState {
    return this.hardStateValue;
  }

  logBytes(): number {
    return this.entryLog.bytes;
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
    const observe = this.onPersistDurable;
    const queuedAtMs = observe === undefined ? 0 : performance.now();

    const payloads: Uint8Array[] = [];
    let after: Promise<void> | null = null;
    if (snapshot !== null) {
      after = this.install(snapshot);
      payloads.push(encodeReset(this.generation, snapshot.index, snapshot.term));
    }
    const firstEntry = entries[0];
    if (firstEntry !== undefined) {
      payloads.push(encodeEntries(entries));
      // What these entries replace no longer counts as held by the WAL until they are durable.
      if (firstEntry.index <= this.entryLog.lastIndex) {
        this.walDurableLast = Math.min(this.walDurableLast, firstEntry.index - 1);
        this.walLogEpoch++;
      }
      this.entryLog.append(entries);
    }
    if (hardState !== null) {
      payloads.push(encodeHardState(hardState));
      this.hardStateValue = hardState;
    }
    const lastAfter = this.entryLog.lastIndex;
    const epoch = this.walLogEpoch;
    this.wal.append({
      payloads,
      maxIndex: firstEntry === undefined ? 0 : firstEntry.index + entries.length - 1,
      hardState,
      generation: snapshot !== null ? this.generation : null,
      after,
      onDurable: (error) => {
        if (error === null) {
          // A persist queued before a later one replaced part of the log says nothing about it.
          if (epoch === this.walLogEpoch) this.walDurableLast = lastAfter;
          if (this.closedKv.length > 0) this.submitClosedKv();
          observe?.({ durationMs: performance.now() - queuedAtMs, entries: entries.length });
        }
        onDurable(error);
      },
    });
  }

  /**
   * Makes the staged snapshot the state machine, at once for reads and, through one LMDB
   * write (the slot flip and a new log generation), durably. Returns the gate the WAL's reset
   * record waits behind: it may be written only after that flip is durable (wal-replay.ts).
   */
  private install(snapshot: SnapshotMeta): Promise<void> {
    const target = this.stagingSlot();
    // Held-back kv writes are of the state being replaced: dropped (dropDeferredKv below),
    // they never land after the flip.
    this.generation++;
    const generation = this.generation;
    let opened!: () => void;
    const gate = new Promise<void>((resolve) => {
      opened = resolve;
    });
    this.writes.submit(
      () => {
        void this.metaDb.put('snapshot', snapshot);
        void this.metaDb.put('applied', snapshot.index);
        void this.metaDb.put('kvSlot', target.id);
        void this.metaDb.put('logGeneration', generation);
      },
      // A failed flip fails the storage, and so the WAL, before the gate opens.
      { onDurable: () => opened(), durableApplied: snapshot.index },
      true, // durability of older kv writes says nothing about the installed state
    );
    this.dropDeferredKv();
    target.materializeStaged();
    const previous = this.active;
    this.active = target;
    this.applied = snapshot.index;
    this.durableApplied = Math.min(this.durableApplied, snapshot.index);
    this.staging.reset();
    this.snapshot = snapshot;
    this.entryLog.reset(snapshot.index);
    // The replaced log's durable entries say nothing about the new one's.
    this.walDurableLast = Math.min(this.walDurableLast, snapshot.index);
    this.walLogEpoch++;
    // Free the replaced state now rather than at the next staging: an install is rare
    // and the clear runs on lmdb-js's writer thread.
    this.clearSlot(previous);
    return gate;
  }

  compact(index: number, config: ClusterConfig): void {
    this.checkOpen();
    const meta = compactionMeta(index, config, this.snapshot, this.entryLog.lastIndex, this.durableApplied, (i) => this.termAt(i));
    if (meta === null || this.writes.failure !== null) return;
    // WAL segments holding only compacted entries go once LMDB durably says the log starts after them.
    this.writes.submit(() => void this.metaDb.put('snapshot', meta), { onDurable: (error) => error === null && this.wal.release(meta.index) });
    this.entryLog.compactThrough(meta.index);
    this.snapshot = meta;
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
    // The state machine's pages only, as etcd's quota counts its backend and not its WAL: the
    // log is bounded by compaction (--log-entries-max, --log-bytes-max) and its segments.
    return pagesInUseBytes([this.root, this.metaDb, ...this.slots.flatMap((s) => [s.kvDb, s.dedupDb])]);
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
      kvWritesDeferred: (this.deferredKv?.writes ?? 0) + this.closedKv.reduce((n, g) => n + g.writes, 0),
      walSyncs: this.wal.syncs,
      walBytes: this.wal.bytes(),
    };
  }

  // --- writes and their acknowledgement ------------------------------------------------

  private async closeNow(): Promise<void> {
    this.state = 'closing';
    // Bounded by the WAL's write timeout. Once it is drained, every applied kv write may go.
    await this.wal.drained();
    this.queueDeferredKv();
    for (const source of [...this.sources]) source.close();
    // Bounded by the flush watchdog, which fails (and so wakes) us on a hung disk.
    await this.writes.drained();
    this.writes.stopWatchdog();
    this.state = 'closed';
    await this.wal.close().catch(() => undefined);
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

  private termAt(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.entryLog.lastIndex) return undefined;
    return this.entryLog.termOf(index);
  }

  private bounds(): LogBounds {
    return { snapshotIndex: this.snapshot.index, lastIndex: this.entryLog.lastIndex, term: (i) => this.termAt(i) };
  }

  private makeLogReader(): LogReader {
    return {
      firstIndex: () => this.snapshot.index + 1,
      lastIndex: () => this.entryLog.lastIndex,
      term: (index) => this.termAt(index),
      entries: (lo, hi, bytesMax) => this.entryLog.read(lo, hi, bytesMax),
      snapshotMeta: () => this.snapshot,
    };
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
   * Closes the group of held-back kv writes, if any, and queues every closed group the WAL
   * allows, each as one atomic batch: its changes and its applied index commit together, so
   * a crash keeps all of a group or none.
   */
  private queueDeferredKv(): void {
    const group = this.deferredKv;
    if (group !== null) {
      this.deferredKv = null;
      if (group.timer !== null) clearTimeout(group.timer);
      this.closedKv.push(group);
    }
    this.submitClosedKv();
  }

  /**
   * Queues closed groups in order, but none before the WAL holds every entry it applies: LMDB
   * must never be ahead of the log it is replayed from. (A kv write past the log's end, as in
   * tests without a log, has no entries to wait for.) The rest go at the WAL's next durable append.
   */
  private submitClosedKv(): void {
    while (this.closedKv.length > 0) {
      const group = this.closedKv[0] as DeferredKvWrites;
      if (group.appliedIndex > this.walDurableLast && this.walDurableLast < this.entryLog.lastIndex) return;
      this.closedKv.shift();
      if (this.writes.failure !== null) continue;
      const { slot, puts, dedupPuts, appliedIndex, tag } = group;
      const keys = [...puts.keys()];
      this.writes.submit(
        () => {
          for (const p of puts.values()) void (p.value === null ? slot.kvDb.remove(p.keyBytes) : slot.kvDb.put(p.keyBytes, p.value));
          for (const d of dedupPuts.values()) void (d.value === null ? slot.dedupDb.remove(d.keyBytes) : slot.dedupDb.put(d.keyBytes, d.value));
          void this.metaDb.put('applied', appliedIndex);
        },
        { onCommitted: () => slot.release(keys, tag, puts), durableApplied: appliedIndex },
      );
    }
  }

  private dropDeferredKv(): void {
    const group = this.deferredKv;
    if (group !== null && group.timer !== null) clearTimeout(group.timer);
    this.deferredKv = null;
    this.closedKv = [];
  }

  private makeKvBackend(): KvBackend {
    return {
      get: (key) => this.active.get(key),
      range: (prefix, after, limit, reverse) => this.active.range(prefix, after, limit, reverse),
      getDedup: (clientId) => this.active.dedup.get(clientId),
      appliedIndex: () => this.applied,
      keyCount: () => this.active.keyCount,
      durableAppliedIndex: () => this.durableApplied,
      installs: () => this.generation, // the log generation: one more per install
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
          group = new DeferredKvWrites(slot, --this.heldGroupTag);
          this.deferredKv = group;
          if (this.kvDeferMsMax > 0) group.timer = setTimeout(() => this.queueDeferredKv(), this.kvDeferMsMax);
        }
        // Installs, the only way to change the live slot, queue held-back writes first.
        assert(group.slot === slot, () => `held-back kv writes target slot ${group.slot.id}, the live slot is ${slot.id}`);
        for (const [key, record] of tx.changes) {
          const change = { keyBytes: group.puts.get(key)?.keyBytes ?? keyBytes(key), value: record === null ? null : encodeRecord(record) };
          group.puts.set(key, change);
          group.bytes += change.keyBytes.length + (change.value?.length ?? 0);
          slot.overlay.set(key, { seq: group.tag, record });
        }
        for (const [clientId, record] of tx.dedupChanges) {
          const change = { keyBytes: group.dedupPuts.get(clientId)?.keyBytes ?? keyBytes(clientId), value: record === null ? null : encodeDedup(record) };
          group.dedupPuts.set(clientId, change);
          group.bytes += change.keyBytes.length + (change.value?.length ?? 0);
        }
        group.appliedIndex = appliedIndex;
        group.writes++;
        this.applied = appliedIndex;
        const full = group.writes >= this.kvDeferredWritesMax || group.puts.size >= this.kvDeferredKeysMax || group.bytes >= this.kvDeferredBytesMax;
        if (this.kvDeferMsMax === 0 || full) this.queueDeferredKv();
      },
    };
  }
}
