import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackupFormatError, checkRecord, decodeBackupValue } from './backup-file.js';

const chunk = (value: unknown): unknown => ({ type: 'chunk', seq: 0, items: [['big', value, 7]], dedup: [] });

test('a backup item whose value is in its value row reads as {"inRow": true}, and only that exact shape is taken', () => {
  assert.deepEqual(checkRecord(chunk({ inRow: true })), { type: 'chunk', seq: 0, items: [['big', { inRow: true }, 7]], dedup: [] });
  assert.equal(decodeBackupValue({ inRow: true }), null, 'restore is told the value is in its row');
  assert.equal(decodeBackupValue('text'), 'text');
  assert.deepEqual(decodeBackupValue({ base64: 'AP8=' }), new Uint8Array([0, 255]));
  for (const bad of [{ inRow: false }, { inRow: 1 }, { inRow: 'true' }, { inRow: true, base64: '' }, { inRow: true, version: 7 }, {}]) {
    assert.throws(() => checkRecord(chunk(bad)), (e: unknown) => e instanceof BackupFormatError && /neither a string, \{"base64": …\} nor \{"inRow": true\}/.test(e.message), JSON.stringify(bad));
  }
});
