/**
 * GET /admin/backup's body: a snapshot as NDJSON records (a header with the snapshot's index,
 * term and configuration, chunks of items and dedup entries, an end record with counts), read
 * one chunk at a time so a large store never sits in memory at once.
 */

import { isInRow, type BackupSource, type KvRecord } from '../storage/types.js';

/** Bytes of state per backup chunk record. */
const backupChunkBytes = 1024 * 1024;

/** The NDJSON records of one backup; closes `source` when done or abandoned. */
export async function* backupLines(source: BackupSource, nodeId: string, clusterId: string): AsyncGenerator<string> {
  try {
    const { index, term, config } = source.meta;
    yield JSON.stringify({
      type: 'header',
      format: 'quorumkv-backup',
      formatVersion: 1,
      nodeId,
      clusterId,
      index,
      term,
      config: { members: config.members, writeQuorum: config.writeQuorum, topology: config.topology },
    }) + '\n';
    let chunks = 0;
    let items = 0;
    let dedup = 0;
    for (;;) {
      const chunk = source.readItems(backupChunkBytes);
      if (chunk === null) break;
      yield JSON.stringify({
        type: 'chunk',
        seq: chunks,
        items: chunk.items.map((item) => [item.key, backupJsonValue(backupValueOf(item)), item.version]),
        dedup: chunk.dedup.map((d) => [d.clientId, d.seq, d.index, base64Of(d.reply)]),
      }) + '\n';
      chunks++;
      items += chunk.items.length;
      dedup += chunk.dedup.length;
    }
    yield JSON.stringify({ type: 'end', chunks, items, dedup }) + '\n';
  } finally {
    source.close();
  }
}

/**
 * What a backup carries for `record`'s value: its text or bytes, or null when the record only
 * says its value is in its value row (kv/value-rows.ts; the row is another item of the same
 * backup). The one place that knows `valueInRow` on the way out: this stream and the gRPC
 * `Backup` call (grpc-kv.ts) both take values through it, so neither can write the marker,
 * an empty byte array, as an empty value. `decodeBackupValue` (client/backup-file.ts) is its
 * inverse on the way back.
 */
export function backupValueOf(record: KvRecord): string | Uint8Array | null {
  return isInRow(record) ? null : record.value;
}

/** A backup value as a chunk record writes it (client/backup-file.ts, `BackupValue`). */
export function backupJsonValue(value: string | Uint8Array | null): string | { readonly base64: string } | { readonly inRow: true } {
  if (value === null) return { inRow: true };
  return typeof value === 'string' ? value : { base64: base64Of(value) };
}

function base64Of(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

