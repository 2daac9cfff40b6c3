/**
 * Size accounting and size limits shared by both storage implementations, so that the twin
 * and LMDB cut snapshot chunks at the same records, count staged snapshots against
 * `snapshotBytesMax` alike and refuse the same keys. A log entry's size is the core's
 * `entryBytes` (core/log.ts): the storage's `entries(…, bytesMax)` must count as the core's
 * replication batching does.
 *
 * Must never: allocate to measure (UTF-8 lengths are counted, not encoded). A chunk's kv
 * records count as their packed bytes (snapshot-records.ts), which both implementations
 * produce alike.
 */

import { utf8Length } from '../stdx/utf8.js';
import type { DedupRecord, SnapshotChunk } from './types.js';

/**
 * Fixed cost counted per dedup record in a snapshot chunk on top of its client id and reply
 * (kv records count their packed bytes, snapshot-records.ts).
 */
export const SNAPSHOT_RECORD_OVERHEAD_BYTES = 16;
/**
 * Longest key (and dedup client id) in UTF-8 bytes: LMDB's limit with its default 4 KiB
 * pages is 1978 bytes. The twin enforces the same limit so that both accept the same data.
 */
export const KV_KEY_BYTES_MAX = 1978;

/** Size counted for one dedup record in a snapshot chunk. */
export function dedupRecordBytes(record: DedupRecord): number {
  return utf8Length(record.clientId) + record.reply.byteLength + SNAPSHOT_RECORD_OVERHEAD_BYTES;
}

/** Size counted for a snapshot chunk: against `snapshotBytesMax` when staging, and by the simulator's network. */
export function chunkBytes(chunk: SnapshotChunk): number {
  let bytes = chunk.records.byteLength;
  for (const record of chunk.dedup) bytes += dedupRecordBytes(record);
  return bytes;
}
