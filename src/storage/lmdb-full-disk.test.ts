import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Entry } from '../core/types.js';
import { contractStorageOptions } from './testing/contract.js';
import { mountSmallDisk } from './testing/small-disk.js';
import { openLmdbStorage } from './lmdb.js';
import type { LmdbStorage } from './lmdb.js';
import type { PersistBatch } from './types.js';

/** A tmpfs of `sizeMiB` at a fresh directory, or null (the test skipped) where this process may not mount one. */
async function smallDisk(t: TestContext, sizeMiB: number): Promise<{ dir: string; resize(sizeMiB: number): Promise<void> } | null> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'quorumkv-full-'));
  const disk = await mountSmallDisk(dir, sizeMiB);
  if (typeof disk === 'string') {
    await rm(dir, { recursive: true, force: true });
    t.skip(`cannot mount a small tmpfs here (${disk}): a full disk needs one`);
    return null;
  }
  t.after(async () => {
    await disk.unmount();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, resize: disk.resize };
}

const entryBytes = 4000;
const entry = (index: number): Entry => ({ index, term: 1, kind: 'normal', data: new Uint8Array(entryBytes).fill(index % 251) });
const append = (entries: Entry[]): PersistBatch => ({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit: 0 } });

/** Appends batches of 8 entries, one batch per event turn, until a write fails; returns the last index acknowledged. */
async function fillUntilRefused(storage: LmdbStorage): Promise<{ ackedTo: number; error: Error }> {
  let ackedTo = 0;
  let refusal: Error | null = null;
  let next = storage.log.lastIndex() + 1;
  for (let turn = 0; turn < 10_000 && refusal === null; turn++) {
    const batch = Array.from({ length: 8 }, (_, k) => entry(next + k));
    next += batch.length;
    const last = next - 1;
    storage.persist(append(batch), (error) => {
      if (error !== null) refusal ??= error;
      else ackedTo = Math.max(ackedTo, last);
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  while (refusal === null) await new Promise<void>((resolve) => setTimeout(resolve, 5));
  return { ackedTo, error: refusal };
}

test('a disk that fills fails the storage cleanly: nothing acknowledged is lost, and the directory reopens once space is back', async (t) => {
  const disk = await smallDisk(t, 6);
  if (disk === null) return;
  const options = { ...contractStorageOptions, dataDir: path.join(disk.dir, 'node') };
  const storage = await openLmdbStorage(options);
  assert.equal(storage.failureReport(), null, 'a working storage reports no failure');

  const { ackedTo, error } = await fillUntilRefused(storage);
  assert.ok(ackedTo > 100, `some writes were acknowledged before the disk filled (${ackedTo})`);
  const report = await storage.failureReport();
  assert.ok(report !== null);
  assert.equal(report.error, error, 'the report names the error the writes got');
  assert.equal(report.stage, 'commit');
  assert.equal(report.trusted, true, `nothing committed after the failed transaction (${report.error.message})`);
  let refusedLater: Error | null = null;
  storage.persist(append([entry(storage.log.lastIndex() + 1)]), (e) => {
    refusedLater = e;
  });
  await new Promise<void>((resolve) => setTimeout(resolve, 10));
  assert.ok(refusedLater !== null, 'a failed storage refuses every later write');
  await storage.close();

  await disk.resize(64);
  const reopened = await openLmdbStorage(options);
  try {
    const last = reopened.log.lastIndex();
    assert.ok(last >= ackedTo, `the reopened log ends at ${last}, before the acknowledged ${ackedTo}`);
    const entries = reopened.log.entries(1, last + 1, Number.MAX_SAFE_INTEGER);
    assert.equal(entries.length, last, 'no hole in the log');
    for (const e of entries) assert.equal(e.data[0], e.index % 251, `entry ${e.index} reads back as written`);
    const resumed = await new Promise<Error | null>((resolve) => reopened.persist(append([entry(last + 1)]), resolve));
    assert.equal(resumed, null, 'writes resume once space is back');
  } finally {
    await reopened.close();
  }
});
