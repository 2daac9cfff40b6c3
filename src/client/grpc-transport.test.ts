import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackupItem as BackupItemMessage } from '../wire/gen/quorumkv.js';
import { backupRecordOf } from './grpc-transport.js';
import { ProtocolError } from './transport.js';

const itemsMessage = (items: BackupItemMessage[]) => ({ part: { $case: 'items' as const, items: { seq: 0, items, dedup: [] } } });

test('a gRPC backup item in the in_row case becomes {"inRow": true}, beside text and bytes', () => {
  const record = backupRecordOf(
    itemsMessage([
      { key: 'text', value: { $case: 'text', text: '' }, version: 1 },
      { key: 'bytes', value: { $case: 'binary', binary: Buffer.from([0, 255]) }, version: 2 },
      { key: 'in-row', value: { $case: 'inRow', inRow: true }, version: 3 },
    ]),
  );
  assert.deepEqual(record, { type: 'chunk', seq: 0, items: [['text', '', 1], ['bytes', { base64: 'AP8=' }, 2], ['in-row', { inRow: true }, 3]], dedup: [] });
});

test('a gRPC backup item with no value (a case this client does not know) or in_row false is refused, never taken as empty', () => {
  assert.throws(() => backupRecordOf(itemsMessage([{ key: 'k', value: undefined, version: 1 }])), (e: unknown) => e instanceof ProtocolError && /"k" has no value this client knows/.test(e.message));
  assert.throws(() => backupRecordOf(itemsMessage([{ key: 'k', value: { $case: 'inRow', inRow: false }, version: 1 }])), (e: unknown) => e instanceof ProtocolError && /"k" has in_row false/.test(e.message));
});
