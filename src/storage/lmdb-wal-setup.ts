/**
 * Starting a data directory's write-ahead log: for a fresh directory, and for one written
 * before the WAL existed (storage format 1, the log and hard state in LMDB's `log` and
 * `meta` databases), whose log is moved into the WAL at its first open. Runs at open only,
 * so its LMDB reads are synchronous memory-map reads and its writes are awaited.
 *
 * Order, so that a crash at any point leaves a directory that opens: the WAL is written and
 * synced first; only then does LMDB record format 2 (and drop the old log), durably. A crash
 * before that leaves format 1 (or no format), and the next open starts over.
 */

import type { Database } from 'lmdb';
import type { Entry, SnapshotMeta } from '../core/types.js';
import { assert } from '../stdx/assert.js';
import { decodeEntry, readHardState } from './lmdb-codec.js';
import { encodeEntries } from './wal-codec.js';
import type { WalCreation } from './wal.js';

type CommitPromise = Promise<boolean> & { readonly flushed?: PromiseLike<unknown> };

/** Entries per WAL record when a format-1 log is moved: records stay a few MiB at most. */
const MIGRATED_ENTRIES_PER_RECORD = 1024;

/** Writes one meta record (with whatever else this event turn queued) and waits for its fsync. */
async function durablePut(db: Database<unknown, string>, key: string, value: unknown): Promise<void> {
  const put = db.put(key, value) as CommitPromise;
  await put;
  await put.flushed;
}

/** The WAL that holds a format-1 directory's log (entries after the snapshot) and hard state. */
export function walCreationFromLmdb(logDb: Database<Buffer, number>, metaDb: Database<unknown, string>, snapshot: SnapshotMeta): WalCreation {
  const payloads: Uint8Array[] = [];
  let run: Entry[] = [];
  let expected = snapshot.index + 1;
  for (const { key, value } of logDb.getRange({ start: snapshot.index + 1 })) {
    assert(key === expected, () => `log is corrupt: expected entry ${expected}, found ${key}`);
    run.push(decodeEntry(key, value));
    expected++;
    if (run.length === MIGRATED_ENTRIES_PER_RECORD) {
      payloads.push(encodeEntries(run));
      run = [];
    }
  }
  if (run.length > 0) payloads.push(encodeEntries(run));
  return { generation: 0, hardState: readHardState(metaDb.get('hardState')), payloads };
}

/**
 * The WAL is durable: LMDB now says so (format, with the log generation and, if LMDB had none
 * yet, the snapshot meta the log starts after, in one transaction and one fsync), and only
 * then does a format-1 log (`formerLogDb`) and hard state go: from here on they are never
 * read, so losing their removal is harmless.
 */
export async function finishWalCreation(
  metaDb: Database<unknown, string>,
  formerLogDb: Database<Buffer, number> | null,
  format: number,
  generation: number,
  snapshotToRecord: SnapshotMeta | null,
): Promise<void> {
  void metaDb.put('logGeneration', generation);
  if (snapshotToRecord !== null) void metaDb.put('snapshot', snapshotToRecord);
  await durablePut(metaDb, 'format', format);
  if (formerLogDb !== null) {
    await formerLogDb.clearAsync();
    await metaDb.remove('hardState');
  }
}
