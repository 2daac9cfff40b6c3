import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fullDiskAlarm, isRecoverableFullDisk, looksLikeFullDisk, SPACE_TO_RESUME_BYTES_MIN } from './disk-full.js';
import type { StorageFailure } from '../storage/lmdb.js';

const failure = (o: Partial<StorageFailure> & { readonly said?: string; readonly causeSaid?: string }): StorageFailure => ({
  error: new Error(o.said ?? 'Commit failed'),
  cause: o.causeSaid === undefined ? null : new Error(o.causeSaid),
  stage: o.stage ?? 'commit',
  trusted: o.trusted ?? true,
});

test('a failed commit that says ENOSPC, or one with the disk nearly empty, is a full disk the node waits out', () => {
  assert.equal(isRecoverableFullDisk(failure({ causeSaid: 'ENOSPC: no space left on device, write' }), 10 * 2 ** 30), true);
  assert.equal(isRecoverableFullDisk(failure({ said: 'Input/output error' }), SPACE_TO_RESUME_BYTES_MIN - 1), true, 'LMDB reports a short write as EIO');
  assert.equal(isRecoverableFullDisk(failure({ said: 'Input/output error' }), 10 * 2 ** 30), false, 'an I/O error with space to spare is not a full disk');
  assert.equal(isRecoverableFullDisk(failure({ said: 'Input/output error' }), null), false, 'free space unknown: only the message can tell');
});

test('a full disk the directory cannot be trusted after (failed flush, a later commit, a hung disk) ends the process instead', () => {
  assert.equal(isRecoverableFullDisk(failure({ said: 'ENOSPC', trusted: false }), 0), false);
  assert.equal(isRecoverableFullDisk(failure({ said: 'ENOSPC', stage: 'flush', trusted: false }), 0), false);
});

test('before the storage has settled, the error and the free space alone tell whether the disk looks full', () => {
  assert.equal(looksLikeFullDisk('ENOSPC: no space left on device, write', null), true);
  assert.equal(looksLikeFullDisk('Disk quota exceeded', 10 * 2 ** 30), true);
  assert.equal(looksLikeFullDisk('File too large', 10 * 2 ** 30), true);
  assert.equal(looksLikeFullDisk('MDB_CORRUPTED', 0), true, 'nothing free: whatever it says');
  assert.equal(looksLikeFullDisk('MDB_CORRUPTED', 10 * 2 ** 30), false);
});

test("the alarm says the disk is full, what the system said, and the bytes the node waits for", () => {
  const alarm = fullDiskAlarm('ENOSPC: no space left on device, write', 4096, SPACE_TO_RESUME_BYTES_MIN);
  assert.match(alarm, /disk is full/);
  assert.match(alarm, /ENOSPC: no space left on device, write; 4096 bytes free/);
  assert.match(alarm, new RegExp(`until ${SPACE_TO_RESUME_BYTES_MIN} bytes are free`));
  assert.match(fullDiskAlarm('EIO', null, 1), /\? bytes free/);
});
