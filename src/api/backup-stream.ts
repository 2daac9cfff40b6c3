/**
 * GET /admin/backup's body: a snapshot as NDJSON records (a header with the snapshot's index,
 * term and configuration, chunks of items and dedup entries, an end record with counts), read
 * one chunk at a time so a large store never sits in memory at once.
 */

import { isInRow, type BackupSource } from '../storage/types.js';

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
        items: chunk.items.map((item) => [item.key, isInRow(item) ? { inRow: true } : typeof item.value === 'string' ? item.value : { base64: base64Of(item.value) }, item.version]),
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

function base64Of(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

