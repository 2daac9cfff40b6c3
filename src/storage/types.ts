/**
 * Storage interfaces. Two implementations stand side by side: LMDB (lmdb.ts and its
 * lmdb-*.ts parts, production) and an in-memory twin (memory.ts, unit tests and the
 * simulator). Neither imports the other: what they share (checks.ts, sizes.ts, meta.ts,
 * dedup.ts, kv-tx.ts, staging.ts, chunks.ts) has files of its own, and one contract suite
 * (testing/contract.ts) runs against both.
 *
 * Durability model: a write is queued synchronously and becomes *visible* to reads at
 * once; it is *durable* only when its `onDurable` callback fires (after fsync; with
 * lmdb-js that is the `flushed` promise, never `committed`). Nothing that depends on a
 * write being durable (a vote, an append ack, a client reply) may happen before that.
 * A failed flush is reported as an error: the caller crashes the node.
 */

import type { ClusterConfig, Entry, HardState, LogReader, NodeId, SnapshotMeta } from '../core/types.js';

export type KvValue = string | Uint8Array;

/** One key's current state. `version` is the log index of the write that produced it. */
export interface KvRecord {
  readonly value: KvValue;
  readonly version: number;
}

/**
 * The value of a record whose value is stored in its value row (kv/value-rows.ts), compared by
 * identity. One shared instance, so copies of a record (`{ value: r.value, version }`, as both
 * storages make) keep saying so; it is empty, and no caller ever writes to it. Storage lays
 * such a record out with a tag of its own (record-codec.ts).
 */
export const valueInRow: Uint8Array = Object.freeze(new Uint8Array(0)) as Uint8Array;

/** Whether `record`'s value is stored in its value row rather than in the record. */
export function isInRow(record: KvRecord): boolean {
  return record.value === valueInRow;
}

export interface KvItem extends KvRecord {
  readonly key: string;
}

/**
 * The last reply the state machine gave to a client session, so a retried request
 * (same client id and sequence) is answered from here instead of applied twice.
 */
export interface DedupRecord {
  readonly clientId: string;
  readonly seq: number;
  /** Log index at which `seq` was applied (used to evict the oldest sessions first). */
  readonly index: number;
  /** Encoded reply, opaque to storage. */
  readonly reply: Uint8Array;
}

export interface KvReader {
  get(key: string): KvRecord | undefined;
  /**
   * Keys starting with `prefix`, strictly after `after` (if given), in byte order of their
   * UTF-8 encoding, at most `limit` items. With `reverse`, in descending order, and `after`
   * is still the cursor in that order: the keys strictly before it.
   */
  range(prefix: string, after: string | undefined, limit: number, reverse?: boolean): KvItem[];
  getDedup(clientId: string): DedupRecord | undefined;
  /** Highest log index whose effects are in this state (visible, maybe not yet durable). */
  appliedIndex(): number;
  /** Number of keys (for /status and tests). */
  keyCount(): number;
}

/** Mutations of one apply batch; all of them and the applied index commit together. */
export interface KvWriter extends KvReader {
  put(key: string, record: KvRecord): void;
  delete(key: string): void;
  putDedup(record: DedupRecord): void;
  deleteDedup(clientId: string): void;
  /** Every dedup record, oldest `index` first; used for eviction. */
  dedupCount(): number;
  oldestDedup(count: number): DedupRecord[];
}

export interface KvBackend extends KvReader {
  /**
   * Runs `mutate` and records `appliedIndex` in the same transaction. Effects are visible
   * to every read as soon as this returns (read-your-writes), and durable later.
   */
  write(appliedIndex: number, mutate: (tx: KvWriter) => void): void;
  /** Highest applied index known to be on disk: the log may be compacted up to here. */
  durableAppliedIndex(): number;
  /**
   * Moves with every snapshot install: when it does, the state was replaced beneath its
   * readers, whatever the applied index (an install may land on the one the node already
   * had), and what they derived from it is stale.
   */
  installs(): number;
}

/**
 * A consistent, chunked read of the whole state machine as decoded items: what a backup
 * writes out. Reads are synchronous and bounded, so the caller interleaves them with other
 * work.
 */
export interface BackupSource {
  /** Applied index and term of the state being read, and the config in force there. */
  readonly meta: SnapshotMeta;
  /** The next chunk of at most about `bytesMax` bytes, its records decoded, or null after the last one. */
  readItems(bytesMax: number): ItemsChunk | null;
  /** Releases the read transaction. Idempotent. */
  close(): void;
}

/** The same read for a snapshot sent to a peer: chunks whose records stay as LMDB holds them. */
export interface SnapshotSource extends BackupSource {
  /** The next chunk of at most about `bytesMax` bytes, or null after the last one. */
  readChunk(bytesMax: number): SnapshotChunk | null;
}

/** A snapshot chunk with its kv records decoded (`readItems`). */
export interface ItemsChunk {
  readonly seq: number;
  readonly items: readonly KvItem[];
  readonly dedup: readonly DedupRecord[];
  readonly last: boolean;
}

export interface SnapshotChunk {
  /** 0, 1, 2, … in order. */
  readonly seq: number;
  /**
   * The chunk's kv records, packed as LMDB holds them (snapshot-records.ts: `packItems`,
   * `unpackItems`), keys strictly ascending across the whole snapshot.
   */
  readonly records: Uint8Array;
  readonly dedup: readonly DedupRecord[];
  /** True on the final chunk. */
  readonly last: boolean;
}

export interface PersistBatch {
  /**
   * Install the snapshot staged by `stageSnapshotChunk`: replace the state machine with the
   * staged data (applied index = meta.index), drop the whole log and restart it after
   * meta.index. Happens before `entries` in the same batch.
   */
  readonly snapshot: SnapshotMeta | null;
  /** Appended after truncating the stored log from `entries[0].index` (if it overlaps). */
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

export interface NodeIdentity {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /**
   * The member id this node was added under (see core MemberInfo). Absent in data
   * directories of members bootstrapped before member ids existed: theirs is derived.
   */
  readonly memberId?: string;
}

export interface NodeStorage {
  /** The stable log, read synchronously by the core. Includes queued (visible) writes. */
  readonly log: LogReader;
  readonly kv: KvBackend;

  /** Hard state as of the last queued write (term 0, vote null, commit 0 when fresh). */
  hardState(): HardState;

  /**
   * Size of the log after the snapshot (entryBytes summed), all of which is held in memory:
   * compaction keeps it under the driver's logBytesMax.
   */
  logBytes(): number;

  /** The identity recorded in this data directory, or null if it was never initialised. */
  identity(): NodeIdentity | null;
  /** Records the identity (once, at first start); durable before `onDurable`. */
  setIdentity(identity: NodeIdentity, onDurable: (error: Error | null) => void): void;

  /**
   * Queues one Ready's log writes as one transaction. `onDurable` is called once, after
   * the flush covering them (or with an error, which is fatal for the node). Batches are
   * durable in the order they were queued.
   */
  persist(batch: PersistBatch, onDurable: (error: Error | null) => void): void;

  /**
   * Drops log entries up to and including `index`, which must be <= kv.durableAppliedIndex().
   * The snapshot meta becomes (index, term(index), config). Best effort, asynchronous.
   */
  compact(index: number, config: ClusterConfig): void;

  /** A consistent read of the state machine at its current applied index. */
  openSnapshot(config: ClusterConfig): SnapshotSource;

  /** Starts (seq 0 clears any earlier staging) or continues staging an incoming snapshot. */
  stageSnapshotChunk(chunk: SnapshotChunk): void;

  /** Flushes and closes. */
  close(): Promise<void>;
}

export interface StorageOptions {
  /**
   * The configuration a fresh log starts with (from --peers and the mode flags): returned
   * in `log.snapshotMeta()` as (index 0, term 0, initialConfig) until a compaction or a
   * snapshot install replaces it.
   */
  readonly initialConfig: ClusterConfig;
  /** Largest total encoded size of a staged snapshot; beyond it staging throws. */
  readonly snapshotBytesMax: number;
}
