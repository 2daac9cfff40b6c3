/**
 * Size accounting and size limits shared by both storage implementations, so that the twin
 * and LMDB cut snapshot chunks at the same records, count staged snapshots against
 * `snapshotBytesMax` alike and refuse the same keys. A log entry's size is the core's
 * `entryBytes` (core/log.ts): the storage's `entries(…, bytesMax)` must count as the core's
 * replication batching does.
 *
 * Must never: allocate to measure (UTF-8 lengths are counted, not encoded) or depend on how
 * an implementation encodes a record on disk: these are the contract's sizes, not LMDB's.
 */

import { utf8Length } from '../stdx/utf8.js';
import type { DedupRecord, KvItem, KvValue, SnapshotChunk } from './types.js';

/** Fixed per-record cost counted by snapshot chunking on top of key and value bytes. */
export const SNAPSHOT_RECORD_OVERHEAD_BYTES = 16;
/**
 * Longest key (and dedup client id) in UTF-8 bytes: LMDB's limit with its default 4 KiB
 * pages is 1978 bytes. The twin enforces the same limit so that both accept the same data.
 */
export const KV_KEY_BYTES_MAX = 1978;

/** A value's bytes as the contract counts them: UTF-8 for a string, length for bytes. */
function valueBytes(value: KvValue): number {
  return typeof value === 'string' ? utf8Length(value) : value.byteLength;
}

/** Size counted for one kv item in a snapshot chunk. */
export function kvItemBytes(item: KvItem): number {
  return utf8Length(item.key) + valueBytes(item.value) + SNAPSHOT_RECORD_OVERHEAD_BYTES;
}

/** Size counted for one dedup record in a snapshot chunk. */
export function dedupRecordBytes(record: DedupRecord): number {
  return utf8Length(record.clientId) + record.reply.byteLength + SNAPSHOT_RECORD_OVERHEAD_BYTES;
}

/** Size counted for a snapshot chunk: against `snapshotBytesMax` when staging, and by the simulator's network. */
export function chunkBytes(chunk: SnapshotChunk): number {
  let bytes = 0;
  for (const item of chunk.items) bytes += kvItemBytes(item);
  for (const record of chunk.dedup) bytes += dedupRecordBytes(record);
  return bytes;
}
