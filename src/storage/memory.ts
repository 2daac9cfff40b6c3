/**
 * The in-memory twin of the LMDB storage (unit tests and the deterministic simulator), plus
 * the small helpers both implementations share so that they cannot drift apart: UTF-8 key
 * order, size accounting for log reads and snapshot chunks, batch validation, the dedup
 * table and snapshot staging bookkeeping.
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

import type { ClusterConfig, Entry, EntryKind, HardState, LogReader, SnapshotMeta } from '../core/types.js';
import { assert, AssertionError } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import type {
  DedupRecord,
  KvBackend,
  KvItem,
  KvRecord,
  KvValue,
  KvWriter,
  NodeIdentity,
  NodeStorage,
  PersistBatch,
  SnapshotChunk,
  SnapshotSource,
  StorageOptions,
} from './types.js';

// ---------------------------------------------------------------------------------------
// Shared by memory.ts and lmdb.ts.
// ---------------------------------------------------------------------------------------

/** Fixed per-entry cost counted by `entries(…, bytesMax)` on top of the data bytes. */
export const LOG_ENTRY_OVERHEAD_BYTES = 16;
/** Fixed per-record cost counted by snapshot chunking on top of key and value bytes. */
export const SNAPSHOT_RECORD_OVERHEAD_BYTES = 16;
/**
 * Longest key (and dedup client id) in UTF-8 bytes: LMDB's limit with its default 4 KiB
 * pages is 1978 bytes. The twin enforces the same limit so that both accept the same data.
 */
export const KV_KEY_BYTES_MAX = 1978;

/** Size counted for one log entry against `bytesMax` (data plus a fixed header). */
export function logEntryBytes(entry: Entry): number {
  return entry.data.byteLength + LOG_ENTRY_OVERHEAD_BYTES;
}

/** Length of `s` encoded as UTF-8 (lone surrogates count as the 3 bytes of U+FFFD). */
export function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Orders strings as their UTF-8 encodings compare bytewise (that is, by code point).
 * UTF-16 code unit order agrees except that surrogates (code points >= 0x10000) must sort
 * after U+E000..U+FFFF; remapping the first differing unit fixes exactly that.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Rank(x) - utf8Rank(y);
  }
  return a.length - b.length;
}

function utf8Rank(codeUnit: number): number {
  if (codeUnit < 0xd800) return codeUnit;
  return codeUnit >= 0xe000 ? codeUnit - 0x800 : codeUnit + 0x2000;
}

export function valueBytes(value: KvValue): number {
  return typeof value === 'string' ? utf8Length(value) : value.byteLength;
}

export function kvItemBytes(item: KvItem): number {
  return utf8Length(item.key) + valueBytes(item.value) + SNAPSHOT_RECORD_OVERHEAD_BYTES;
}

export function dedupRecordBytes(record: DedupRecord): number {
  return utf8Length(record.clientId) + record.reply.byteLength + SNAPSHOT_RECORD_OVERHEAD_BYTES;
}

export function chunkBytes(chunk: SnapshotChunk): number {
  let bytes = 0;
  for (const item of chunk.items) bytes += kvItemBytes(item);
  for (const record of chunk.dedup) bytes += dedupRecordBytes(record);
  return bytes;
}

export function freshHardState(): HardState {
  return { term: 0, vote: null, commit: 0 };
}

export function initialSnapshotMeta(config: ClusterConfig): SnapshotMeta {
  return { index: 0, term: 0, config };
}

const ENTRY_KINDS: ReadonlySet<EntryKind> = new Set<EntryKind>(['normal', 'noop', 'config']);

/** Matches a lone surrogate: a JS string that is not valid Unicode and has no UTF-8 form. */
export const LONE_SURROGATE = /\p{Cs}/u;

export function checkKey(key: string, what: string): void {
  assert(typeof key === 'string' && key.length > 0, () => `${what} must be a non-empty string`);
  // Keys are stored (and ordered) as UTF-8, which cannot represent a lone surrogate.
  assert(!LONE_SURROGATE.test(key), () => `${what} ${JSON.stringify(key)} contains a lone surrogate (not valid Unicode)`);
  const bytes = utf8Length(key);
  assert(bytes <= KV_KEY_BYTES_MAX, () => `${what} is ${bytes} bytes of UTF-8, at most ${KV_KEY_BYTES_MAX} allowed`);
}

export function checkRecord(key: string, record: KvRecord): void {
  checkKey(key, 'key');
  assert(
    typeof record.value === 'string' || record.value instanceof Uint8Array,
    () => `value of key ${JSON.stringify(key)} must be a string or a Uint8Array`,
  );
  assert(isIndex(record.version), () => `version of key ${JSON.stringify(key)} must be a safe index, got ${record.version}`);
}

export function checkDedupRecord(record: DedupRecord): void {
  checkKey(record.clientId, 'dedup client id');
  assert(isIndex(record.seq), () => `dedup seq of ${record.clientId} must be a safe index, got ${record.seq}`);
  assert(isIndex(record.index), () => `dedup index of ${record.clientId} must be a safe index, got ${record.index}`);
  assert(record.reply instanceof Uint8Array, () => `dedup reply of ${record.clientId} must be a Uint8Array`);
}

export function checkHardState(hardState: HardState, current: HardState): void {
  assert(isIndex(hardState.term) && isIndex(hardState.commit), () => `hard state ${JSON.stringify(hardState)} has an invalid term or commit`);
  assert(hardState.vote === null || typeof hardState.vote === 'string', 'hard state vote must be a node id or null');
  assert(hardState.term >= current.term, () => `hard state term went back from ${current.term} to ${hardState.term}`);
}

export function checkSnapshotMeta(meta: SnapshotMeta): void {
  assert(isIndex(meta.index) && isIndex(meta.term), () => `snapshot meta index ${meta.index} / term ${meta.term} invalid`);
  assert(meta.config.members.length > 0, 'snapshot meta config has no members');
}

/** The shape of a log, enough to validate a batch against it. */
export interface LogBounds {
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  term(index: number): number | undefined;
}

/**
 * Checks a persist batch against the log it will be applied to: entries contiguous and of
 * valid shape, starting inside (snapshot, last + 1], terms never decreasing.
 */
export function checkPersistBatch(batch: PersistBatch, log: LogBounds, hardState: HardState, stagingComplete: boolean): void {
  let snapshotIndex = log.snapshotIndex;
  let lastIndex = log.lastIndex;
  let termBefore = (index: number): number | undefined => log.term(index);
  if (batch.snapshot !== null) {
    const meta = batch.snapshot;
    checkSnapshotMeta(meta);
    assert(stagingComplete, () => `Cannot install snapshot at index ${meta.index}: no complete staged snapshot (stage chunks up to last first)`);
    snapshotIndex = meta.index;
    lastIndex = meta.index;
    termBefore = (index) => (index === meta.index ? meta.term : undefined);
  }
  const entries = batch.entries;
  const first = entries[0];
  if (first !== undefined) {
    assert(
      first.index > snapshotIndex,
      () => `Cannot append entry ${first.index}: entries up to ${snapshotIndex} are compacted into the snapshot`,
    );
    assert(first.index <= lastIndex + 1, () => `Cannot append entry ${first.index}: log ends at ${lastIndex}`);
    let previousTerm = termBefore(first.index - 1) ?? 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as Entry;
      assert(entry.index === first.index + i, () => `Cannot append entry ${entry.index} at position ${i}: expected ${first.index + i}`);
      assert(isIndex(entry.term), () => `entry ${entry.index} has invalid term ${entry.term}`);
      assert(entry.term >= previousTerm, () => `entry ${entry.index} has term ${entry.term} below the previous entry's ${previousTerm}`);
      assert(ENTRY_KINDS.has(entry.kind), () => `entry ${entry.index} has unknown kind ${String(entry.kind)}`);
      assert(entry.data instanceof Uint8Array, () => `entry ${entry.index} data must be a Uint8Array`);
      previousTerm = entry.term;
    }
  }
  if (batch.hardState !== null) checkHardState(batch.hardState, hardState);
}

/** Expected failure of snapshot staging (input from a peer): bad order or too large. */
export class SnapshotStagingError extends Error {
  override readonly name = 'SnapshotStagingError';
}

/**
 * Sequence and size bookkeeping for one incoming snapshot. `accept` throws before anything
 * is written when the chunk is out of order or would exceed `snapshotBytesMax`.
 */
export class StagingTracker {
  private nextSeq = 0;
  private bytes = 0;
  private done = false;
  private started = false;

  constructor(private readonly snapshotBytesMax: number) {
    assert(isIndex(snapshotBytesMax) && snapshotBytesMax > 0, () => `snapshotBytesMax must be a positive integer, got ${snapshotBytesMax}`);
  }

  get complete(): boolean {
    return this.done;
  }

  /** Validates `chunk`; returns true when it starts a new staging (seq 0). */
  accept(chunk: SnapshotChunk): boolean {
    assert(isIndex(chunk.seq), () => `snapshot chunk seq must be a safe index, got ${chunk.seq}`);
    const restart = chunk.seq === 0;
    if (!restart) {
      if (!this.started) throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: no staging in progress (expected seq 0)`);
      if (this.done) throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: chunk ${this.nextSeq - 1} was the last`);
      if (chunk.seq !== this.nextSeq) {
        throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: expected chunk ${this.nextSeq}`);
      }
    }
    for (const item of chunk.items) checkRecord(item.key, item);
    for (const record of chunk.dedup) checkDedupRecord(record);
    const total = (restart ? 0 : this.bytes) + chunkBytes(chunk);
    if (total > this.snapshotBytesMax) {
      this.reset();
      throw new SnapshotStagingError(`Cannot stage snapshot chunk ${chunk.seq}: staged snapshot would be ${total} bytes, snapshotBytesMax is ${this.snapshotBytesMax}`);
    }
    this.started = true;
    this.bytes = total;
    this.nextSeq = chunk.seq + 1;
    this.done = chunk.last;
    return restart;
  }

  /** Forgets the staging (after an install, or when it failed). */
  reset(): void {
    this.nextSeq = 0;
    this.bytes = 0;
    this.done = false;
    this.started = false;
  }
}

/**
 * The client dedup table, held in memory by both implementations (its size is bounded by
 * the state machine's session limit). Map insertion order is kept equal to `index` order,
 * so `oldest(count)` is O(count); an out-of-order put marks it for one lazy re-sort.
 */
export class DedupTable {
  private byClient = new Map<string, DedupRecord>();
  private maxIndex = 0;
  private ordered = true;

  static from(records: Iterable<DedupRecord>): DedupTable {
    const table = new DedupTable();
    for (const record of records) table.put(record);
    return table;
  }

  get size(): number {
    return this.byClient.size;
  }

  get(clientId: string): DedupRecord | undefined {
    return this.byClient.get(clientId);
  }

  put(record: DedupRecord): void {
    this.byClient.delete(record.clientId);
    this.byClient.set(record.clientId, record);
    if (record.index < this.maxIndex) this.ordered = false;
    else this.maxIndex = record.index;
  }

  delete(clientId: string): boolean {
    return this.byClient.delete(clientId);
  }

  oldest(count: number): DedupRecord[] {
    assert(Number.isSafeInteger(count) && count >= 0, () => `oldestDedup count must be a non-negative integer, got ${count}`);
    this.sortIfNeeded();
    const out: DedupRecord[] = [];
    if (count === 0) return out;
    for (const record of this.byClient.values()) {
      out.push(record);
      if (out.length >= count) break;
    }
    return out;
  }

  /** Every record, oldest index first. */
  all(): DedupRecord[] {
    this.sortIfNeeded();
    return [...this.byClient.values()];
  }

  clone(): DedupTable {
    return DedupTable.from(this.all());
  }

  private sortIfNeeded(): void {
    if (this.ordered) return;
    // Array.prototype.sort is stable: equal indexes keep their insertion order.
    const sorted = [...this.byClient.values()].sort((a, b) => a.index - b.index);
    this.byClient = new Map(sorted.map((r) => [r.clientId, r]));
    this.ordered = true;
  }
}

/** A cursor that can look at its next element before consuming it. */
export interface Peekable<T> {
  peek(): T | undefined;
  advance(): void;
}

export class ArrayCursor<T> implements Peekable<T> {
  private position = 0;
  constructor(private readonly items: readonly T[]) {}
  peek(): T | undefined {
    return this.items[this.position];
  }
  advance(): void {
    this.position++;
  }
}

/**
 * Cuts the next snapshot chunk: kv items first, then dedup records, at least one record if
 * any remain, stopping before `bytesMax` would be exceeded.
 */
export function assembleChunk(seq: number, bytesMax: number, items: Peekable<KvItem>, dedup: Peekable<DedupRecord>): SnapshotChunk {
  assert(Number.isFinite(bytesMax) ? bytesMax >= 0 : bytesMax === Infinity, () => `bytesMax must be >= 0, got ${bytesMax}`);
  const outItems: KvItem[] = [];
  const outDedup: DedupRecord[] = [];
  let bytes = 0;
  let full = false;
  for (let item = items.peek(); item !== undefined; item = items.peek()) {
    const size = kvItemBytes(item);
    if (outItems.length > 0 && bytes + size > bytesMax) {
      full = true;
      break;
    }
    outItems.push(item);
    bytes += size;
    items.advance();
  }
  if (!full) {
    for (let record = dedup.peek(); record !== undefined; record = dedup.peek()) {
      const size = dedupRecordBytes(record);
      if (outItems.length + outDedup.length > 0 && bytes + size > bytesMax) break;
      outDedup.push(record);
      bytes += size;
      dedup.advance();
    }
  }
  const last = items.peek() === undefined && dedup.peek() === undefined;
  return { seq, items: outItems, dedup: outDedup, last };
}

// ---------------------------------------------------------------------------------------
// The in-memory twin.
// ---------------------------------------------------------------------------------------

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
  entries: Entry[];
  kv: Map<string, KvRecord>;
  dedup: DedupTable;
  appliedIndex: number;

  constructor(image: MemoryStorageImage) {
    this.identity = image.identity;
    this.hardState = image.hardState;
    this.snapshotMeta = image.snapshotMeta;
    this.entries = [...image.entries];
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
          this.entries = [];
          this.kv = new Map(write.staged.kv);
          this.dedup = write.staged.dedup.clone();
          this.appliedIndex = batch.snapshot.index;
        }
        appendToLog(this.entries, this.snapshotMeta.index, batch.entries);
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
        this.entries.splice(0, write.meta.index - this.snapshotMeta.index);
        this.snapshotMeta = write.meta;
        return;
    }
  }

  toImage(): MemoryStorageImage {
    return {
      identity: this.identity,
      hardState: this.hardState,
      snapshotMeta: this.snapshotMeta,
      entries: [...this.entries],
      kv: new Map(this.kv),
      dedup: this.dedup.all(),
      appliedIndex: this.appliedIndex,
    };
  }
}

/** Truncates `entries` (which start after `snapshotIndex`) at the batch's first index and appends. */
function appendToLog(entries: Entry[], snapshotIndex: number, batch: readonly Entry[]): void {
  const first = batch[0];
  if (first === undefined) return;
  entries.length = first.index - snapshotIndex - 1;
  for (const entry of batch) entries.push(entry);
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

  range(prefix: string, after: string | undefined, limit: number): KvItem[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, () => `range limit must be a non-negative integer, got ${limit}`);
    const out: KvItem[] = [];
    let i = after !== undefined && compareUtf8(after, prefix) >= 0 ? this.upperBound(after) : this.lowerBound(prefix);
    for (; i < this.keys.length && out.length < limit; i++) {
      const key = this.keys[i] as string;
      if (!key.startsWith(prefix)) break;
      const record = this.map.get(key) as KvRecord;
      out.push({ key, value: record.value, version: record.version });
    }
    return out;
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
  private entriesValue: Entry[];
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
    this.entriesValue = [...image.entries];
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
      this.entriesValue = [];
      this.data = new SortedKv(staged.kv);
      this.dedup = staged.dedup.clone();
      this.applied = batch.snapshot.index;
      // The old durable state may be ahead of the installed one; never let compaction trust it.
      this.durableApplied = Math.min(this.durableApplied, batch.snapshot.index);
      this.kvEpoch++;
    }
    appendToLog(this.entriesValue, this.snapshot.index, batch.entries);
    if (batch.hardState !== null) this.hardStateValue = batch.hardState;
    this.enqueue({ kind: 'persist', batch, staged, onDurable, kvEpoch: this.kvEpoch });
  }

  compact(index: number, config: ClusterConfig): void {
    this.checkOpen();
    const meta = compactionMeta(index, config, this.snapshot, this.lastIndex(), this.durableApplied, (i) => this.term(i));
    if (meta === null) return;
    this.entriesValue.splice(0, index - this.snapshot.index);
    this.snapshot = meta;
    this.enqueue({ kind: 'compact', meta });
  }

  openSnapshot(config: ClusterConfig): SnapshotSource {
    this.checkOpen();
    const meta = snapshotSourceMeta(this.applied, config, (i) => this.term(i));
    const items = new ArrayCursor(this.data.items());
    const dedup = new ArrayCursor(this.dedup.all());
    let seq = 0;
    let finished = false;
    return {
      meta,
      readChunk: (bytesMax) => {
        if (finished) return null;
        const chunk = assembleChunk(seq++, bytesMax, items, dedup);
        finished = chunk.last;
        return chunk;
      },
      close: () => {
        finished = true;
      },
    };
  }

  stageSnapshotChunk(chunk: SnapshotChunk): void {
    this.checkOpen();
    const restart = this.stagingTracker.accept(chunk);
    if (restart) this.staging = { kv: new Map(), dedup: new DedupTable() };
    const staging = this.staging as StagedData;
    for (const item of chunk.items) staging.kv.set(item.key, { value: item.value, version: item.version });
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
    return this.snapshot.index + this.entriesValue.length;
  }

  private term(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.lastIndex()) return undefined;
    return (this.entriesValue[index - this.snapshot.index - 1] as Entry).term;
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
        checkEntriesRange(lo, hi, this.snapshot.index + 1, this.lastIndex());
        const out: Entry[] = [];
        let bytes = 0;
        for (let index = lo; index < hi; index++) {
          const entry = this.entriesValue[index - this.snapshot.index - 1] as Entry;
          const size = logEntryBytes(entry);
          if (out.length > 0 && bytes + size > bytesMax) break;
          out.push(entry);
          bytes += size;
        }
        return out;
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
      range: (prefix, after, limit) => {
        this.checkAlive();
        return this.data.range(prefix, after, limit);
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
      write: (appliedIndex, mutate) => {
        this.checkOpen();
        assert(isIndex(appliedIndex) && appliedIndex >= this.applied, () => `kv write: applied index ${appliedIndex} is below the current ${this.applied}`);
        const data = this.data;
        const tx = new UndoKvTx(
          {
            get: (key) => data.get(key),
            range: (prefix, after, limit) => data.range(prefix, after, limit),
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

/**
 * The visible kv state a transaction mutates, as each implementation holds it: the memory
 * twin's sorted map, or an LMDB slot's overlay over its committed data.
 */
export interface UndoableKvState {
  get(key: string): KvRecord | undefined;
  range(prefix: string, after: string | undefined, limit: number): KvItem[];
  keyCount(): number;
  readonly dedup: DedupTable;
  /** Sets `key` (null: deletes it) so reads see it at once; returns how to undo exactly that. */
  write(key: string, record: KvRecord | null): () => void;
}

/**
 * A kv write in progress, shared by both implementations: changes are visible to reads
 * inside the write at once and recorded (for the caller to persist), with an undo log so a
 * `mutate` that throws leaves no trace.
 */
export class UndoKvTx implements KvWriter {
  readonly changes = new Map<string, KvRecord | null>();
  readonly dedupChanges = new Map<string, DedupRecord | null>();
  private readonly undo: (() => void)[] = [];

  constructor(
    private readonly state: UndoableKvState,
    private readonly applied: number,
  ) {}

  get(key: string): KvRecord | undefined {
    return this.state.get(key);
  }
  range(prefix: string, after: string | undefined, limit: number): KvItem[] {
    return this.state.range(prefix, after, limit);
  }
  getDedup(clientId: string): DedupRecord | undefined {
    return this.state.dedup.get(clientId);
  }
  appliedIndex(): number {
    return this.applied;
  }
  keyCount(): number {
    return this.state.keyCount();
  }
  put(key: string, record: KvRecord): void {
    checkRecord(key, record);
    this.undo.push(this.state.write(key, record));
    this.changes.set(key, record);
  }
  delete(key: string): void {
    checkKey(key, 'key');
    this.undo.push(this.state.write(key, null));
    this.changes.set(key, null);
  }
  putDedup(record: DedupRecord): void {
    checkDedupRecord(record);
    this.rememberDedup(record.clientId);
    this.state.dedup.put(record);
    this.dedupChanges.set(record.clientId, record);
  }
  deleteDedup(clientId: string): void {
    checkKey(clientId, 'dedup client id');
    this.rememberDedup(clientId);
    this.state.dedup.delete(clientId);
    this.dedupChanges.set(clientId, null);
  }
  dedupCount(): number {
    return this.state.dedup.size;
  }
  oldestDedup(count: number): DedupRecord[] {
    return this.state.dedup.oldest(count);
  }

  rollback(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) (this.undo[i] as () => void)();
  }

  private rememberDedup(clientId: string): void {
    const dedup = this.state.dedup;
    const previous = dedup.get(clientId);
    this.undo.push(() => {
      if (previous === undefined) dedup.delete(clientId);
      else dedup.put(previous);
    });
  }
}

// --- checks shared by both implementations ----------------------------------------------

export function checkIdentity(identity: NodeIdentity, current: NodeIdentity | null): void {
  assert(typeof identity.nodeId === 'string' && identity.nodeId.length > 0, 'identity nodeId must be a non-empty string');
  assert(typeof identity.clusterId === 'string' && identity.clusterId.length > 0, 'identity clusterId must be a non-empty string');
  assert(
    current === null || (current.nodeId === identity.nodeId && current.clusterId === identity.clusterId),
    () => `identity is already ${JSON.stringify(current)}; cannot change it to ${JSON.stringify(identity)}`,
  );
}

export function checkEntriesRange(lo: number, hi: number, firstIndex: number, lastIndex: number): void {
  assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), () => `entries(${lo}, ${hi}): bounds must be safe integers`);
  assert(lo >= firstIndex, () => `entries(${lo}, ${hi}): entries before ${firstIndex} are compacted`);
  assert(hi <= lastIndex + 1 || hi <= lo, () => `entries(${lo}, ${hi}): log ends at ${lastIndex}`);
}

/**
 * Validates a compaction request and returns the new snapshot meta, or null when the log
 * is already compacted that far.
 */
export function compactionMeta(
  index: number,
  config: ClusterConfig,
  current: SnapshotMeta,
  lastIndex: number,
  durableAppliedIndex: number,
  term: (index: number) => number | undefined,
): SnapshotMeta | null {
  assert(isIndex(index), () => `compact index must be a safe index, got ${index}`);
  assert(
    index <= durableAppliedIndex,
    () => `Cannot compact the log up to ${index}: the state machine is durable only up to ${durableAppliedIndex}`,
  );
  assert(index <= lastIndex, () => `Cannot compact the log up to ${index}: log ends at ${lastIndex}`);
  assert(config.members.length > 0, 'compaction config has no members');
  if (index <= current.index) return null;
  const t = term(index);
  assert(t !== undefined, () => `Cannot compact the log up to ${index}: no term for that index`);
  return { index, term: t, config };
}

/** Meta of a snapshot read at `appliedIndex`: its term comes from the log (or the snapshot it starts after). */
export function snapshotSourceMeta(appliedIndex: number, config: ClusterConfig, term: (index: number) => number | undefined): SnapshotMeta {
  const t = term(appliedIndex);
  assert(t !== undefined, () => `Cannot open a snapshot at applied index ${appliedIndex}: the log has no term for it`);
  return { index: appliedIndex, term: t, config };
}
