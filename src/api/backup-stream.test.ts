import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRecord } from '../client/backup-file.js';
import { valueInRow, type BackupSource, type KvItem } from '../storage/types.js';
import { BackupItem } from '../wire/gen/quorumkv.js';
import { backupJsonValue, backupLines, backupValueOf } from './backup-stream.js';
import { backupItemValue } from './grpc-kv.js';

/** A text value, a byte value, an empty byte value (not the marker) and a record whose value is in its row. */
const items: readonly KvItem[] = [
  { key: 'bytes', value: new Uint8Array([0, 255]), version: 2 },
  { key: 'empty', value: new Uint8Array(0), version: 3 },
  { key: 'in-row', value: valueInRow, version: 4 },
  { key: 'text', value: 'héllo', version: 1 },
];

function sourceOf(chunkItems: readonly KvItem[]): BackupSource {
  let read = false;
  return {
    meta: { index: 4, term: 1, config: { members: ['n1'], writeQuorum: 'majority', topology: 'star' } },
    readItems: () => {
      if (read) return null;
      read = true;
      return { seq: 0, items: chunkItems, dedup: [], last: true };
    },
    close: () => undefined,
  };
}

test('the backup stream writes a record whose value is in its value row as {"inRow": true}, and an empty byte value still as base64', async () => {
  const lines: string[] = [];
  for await (const line of backupLines(sourceOf(items), 'n1', 'c1')) lines.push(line);
  assert.equal(lines.length, 3, 'header, one chunk, end');
  const chunk = JSON.parse(lines[1] as string) as unknown;
  assert.deepEqual((chunk as { items: unknown }).items, [
    ['bytes', { base64: 'AP8=' }, 2],
    ['empty', { base64: '' }, 3],
    ['in-row', { inRow: true }, 4],
    ['text', 'héllo', 1],
  ]);
  assert.deepEqual(checkRecord(chunk), { type: 'chunk', seq: 0, items: (chunk as { items: unknown }).items, dedup: [] }, 'the strict reader takes the chunk as written');
});

test('a value in its value row is null on the way out, whatever encoding carries it, and no other value is', () => {
  assert.equal(backupValueOf({ value: valueInRow, version: 4 }), null);
  const empty = new Uint8Array(0);
  assert.equal(backupValueOf({ value: empty, version: 3 }), empty, 'an empty byte value is a value');
  assert.equal(backupValueOf({ value: 'x', version: 1 }), 'x');
  assert.deepEqual(backupJsonValue(null), { inRow: true });
  assert.deepEqual(backupJsonValue(empty), { base64: '' });
});

test('the gRPC Backup call sends a record whose value is in its value row as the in_row case, and it survives the wire', () => {
  const value = backupItemValue(backupValueOf({ value: valueInRow, version: 4 }));
  assert.deepEqual(value, { $case: 'inRow', inRow: true });
  const decoded = BackupItem.decode(BackupItem.encode({ key: 'in-row', value, version: 4 }).finish());
  assert.deepEqual(decoded, { key: 'in-row', value: { $case: 'inRow', inRow: true }, version: 4 });
  assert.deepEqual(backupItemValue(backupValueOf({ value: new Uint8Array(0), version: 3 })), { $case: 'binary', binary: Buffer.alloc(0) }, 'an empty byte value stays bytes');
  assert.deepEqual(backupItemValue(backupValueOf({ value: 'x', version: 1 })), { $case: 'text', text: 'x' });
});
