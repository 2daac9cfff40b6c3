import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import type { Entry } from '../core/types.js';
import { contractStorageOptions, storageContract } from './testing/contract.js';
import { encodeEntry } from './lmdb-codec.js';
import { openLmdbStorage } from './lmdb.js';
import type { LmdbStorage, LmdbStorageOptions } from './lmdb.js';
import type { KvRecord, KvWriter, PersistBatch } from './types.js';

const DEADLINE_MS = 20_000;

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'quorumkv-lmdb-'));
}

function lmdbHarness(extra: Partial<LmdbStorageOptions>) {
  return async () => {
    const dataDir = await tempDir();
    const options: LmdbStorageOptions = { ...contractStorageOptions, dataDir, ...extra };
    let current: LmdbStorage = await openLmdbStorage(options);
    return {
      storage: current,
      reopen: async () => {
        await current.close();
        current = await openLmdbStorage(options);
        return current;
      },
      cleanup: async () => {
        await current.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  };
}

storageContract('lmdb', lmdbHarness({}));
// Segments of 4 KiB: the contract's logs start new segments and delete old ones all the time.
storageContract('lmdb with tiny WAL segments', lmdbHarness({ walSegmentBytes: 4096 }));

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const entry = (index: number, term = 1): Entry => ({ index, term, kind: 'normal', data: encoder.encode(`entry ${index}`) });
const append = (entries: Entry[], commit = 0): PersistBatch => ({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit } });

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > DEADLINE_MS) throw new Error(`timed out after ${DEADLINE_MS} ms waiting for ${what}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

test('a thousand persist calls in one event turn share one durable WAL write and no LMDB transaction', async () => {
  const dataDir = await tempDir();
  const storage = await openLmdbStorage({ ...contractStorageOptions, dataDir });
  try {
    let warm = false;
    storage.persist(append([entry(1)]), () => {
      warm = true;
    });
    await waitFor(() => warm, 'warm-up write');
    const before = storage.stats();
    const acked: number[] = [];
    for (let i = 2; i <= 1001; i++) {
      storage.persist(append([entry(i)], i - 1), (error) => {
        assert.equal(error, null);
        acked.push(i);
      });
    }
    await waitFor(() => acked.length === 1000, 'all 1000 acknowledgements');
    const after = storage.stats();
    assert.deepEqual(acked, Array.from({ length: 1000 }, (_, k) => k + 2), 'acknowledged in queue order');
    assert.equal(after.walSyncs - before.walSyncs, 1, '1000 persists of one turn: one durable write');
    assert.equal(after.lastTxnId, before.lastTxnId, 'the log does not go through LMDB');
    assert.equal(storage.log.lastIndex(), 1001);
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('onPersistDurable reports each log batch once it is durable: its entries and how long it waited', async () => {
  const dataDir = await tempDir();
  const seen: { durationMs: number; entries: number; ackedBefore: boolean }[] = [];
  let acked = 0;
  const storage = await openLmdbStorage({
    ...contractStorageOptions,
    dataDir,
    onPersistDurable: (o) => seen.push({ ...o, ackedBefore: acked > seen.length }),
  });
  try {
    storage.persist(append([entry(1), entry(2), entry(3)]), () => acked++);
    storage.persist(append([entry(4)], 3), () => acked++);
    await waitFor(() => acked === 2, 'both acknowledgements');
    assert.deepEqual(seen.map((o) => o.entries), [3, 1]);
    assert.ok(seen.every((o) => Number.isFinite(o.durationMs) && o.durationMs >= 0), JSON.stringify(seen));
    assert.ok(seen.every((o) => !o.ackedBefore), 'observed before the writer hears that its batch is durable');
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('compaction deletes the WAL segments that hold only compacted entries, and a reopen finds the rest', async () => {
  const dataDir = await tempDir();
  const options: LmdbStorageOptions = { ...contractStorageOptions, dataDir, walSegmentBytes: 8192 };
  const walFiles = async (): Promise<string[]> => (await readdir(path.join(dataDir, 'wal'))).filter((name) => name.endsWith('.wal'));
  let storage = await openLmdbStorage(options);
  try {
    const entries = Array.from({ length: 1000 }, (_, k) => entry(k + 1));
    let durable = 0;
    for (let i = 0; i < 1000; i += 50) {
      storage.persist(append(entries.slice(i, i + 50)), () => durable++);
      await waitFor(() => durable === i / 50 + 1, 'the batch to be durable'); // one write each
    }
    storage.kv.write(950, (tx) => tx.put('k', { value: 'v', version: 950 }));
    await waitFor(() => storage.kv.durableAppliedIndex() === 950, 'the kv write to be durable');
    const segmentsBefore = (await walFiles()).length;
    assert.ok(segmentsBefore >= 3, `1000 entries in 8 KiB segments: ${segmentsBefore} segments`);
    storage.compact(950, contractStorageOptions.initialConfig);
    assert.equal(storage.log.firstIndex(), 951);
    const deadline = Date.now() + DEADLINE_MS;
    while ((await walFiles()).length >= segmentsBefore && Date.now() < deadline) await new Promise<void>((resolve) => setTimeout(resolve, 10));
    assert.ok((await walFiles()).length < segmentsBefore, `segments left after compacting 950 of 1000 entries: ${(await walFiles()).length} of ${segmentsBefore}`);
    await storage.close();
    storage = await openLmdbStorage(options);
    assert.equal(storage.log.firstIndex(), 951);
    assert.equal(storage.log.lastIndex(), 1000);
    assert.deepEqual(storage.log.entries(951, 1001, Infinity), entries.slice(950));
    assert.deepEqual(storage.hardState(), { term: 1, vote: 'n1', commit: 0 });
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

/** The child appends 10-entry batches with a kv write each, as fast as it can, and prints
 * "log <index>" when a batch is durable and "kv <index>" when the applied index is. Like a
 * node, it first re-applies what the log holds beyond the kv state's applied index. */
const appenderScript = `
  const { openLmdbStorage } = await import(process.argv[1]);
  const storage = await openLmdbStorage({
    initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' },
    snapshotBytesMax: 1 << 20,
    dataDir: process.argv[2],
  });
  for (let last = storage.kv.appliedIndex() + 10; last <= storage.log.lastIndex(); last += 10) {
    storage.kv.write(last, (tx) => tx.put('k' + last, { value: 'v' + last, version: last }));
  }
  let next = storage.log.lastIndex() + 1;
  let reportedApplied = storage.kv.durableAppliedIndex();
  const encoder = new TextEncoder();
  function round() {
    for (let b = 0; b < 5; b++) {
      const entries = [];
      for (let i = 0; i < 10; i++, next++) entries.push({ index: next, term: 1, kind: 'normal', data: encoder.encode('entry ' + next) });
      const last = next - 1;
      storage.persist({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit: last } }, (error) => {
        if (error) { console.error(error); process.exit(2); }
        process.stdout.write('log ' + last + '\\n');
      });
      storage.kv.write(last, (tx) => tx.put('k' + last, { value: 'v' + last, version: last }));
    }
    const applied = storage.kv.durableAppliedIndex();
    if (applied > reportedApplied) { reportedApplied = applied; process.stdout.write('kv ' + applied + '\\n'); }
    setImmediate(round);
  }
  round();
`;

/** Runs an appender script until it has acknowledged `acksMin` more batches, then kills it with SIGKILL. */
async function appendUntilKilled(dataDir: string, acksMin: number, script = appenderScript): Promise<{ logAcked: number; kvAcked: number }> {
  const modulePath = new URL('./lmdb.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, modulePath, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const acked = { logAcked: 0, kvAcked: 0 };
  let logAcks = 0;
  let stderr = '';
  let buffered = '';
  child.stderr.on('data', (data: Buffer) => {
    stderr += data.toString();
  });
  child.stdout.on('data', (data: Buffer) => {
    buffered += data.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const [kind, value] = line.split(' ');
      if (kind === 'log') {
        logAcks++;
        acked.logAcked = Math.max(acked.logAcked, Number(value));
      } else if (kind === 'kv') acked.kvAcked = Math.max(acked.kvAcked, Number(value));
    }
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  try {
    await waitFor(() => (logAcks >= acksMin && acked.kvAcked > 0) || child.exitCode !== null, `${acksMin} acknowledgements from the child (stderr: ${stderr})`);
    assert.equal(child.exitCode, null, `child exited early: ${stderr}`);
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    // Lines already in the pipe were printed before the kill: they are acknowledgements too.
    await new Promise<void>((resolve) => setImmediate(resolve));
    return acked;
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

test('kill -9 at any moment loses no acknowledged log entry or kv write, restart after restart', async () => {
  const dataDir = await tempDir();
  try {
    for (let crash = 1; crash <= 3; crash++) {
      const { logAcked, kvAcked } = await appendUntilKilled(dataDir, 200);
      const storage = await openLmdbStorage({ ...contractStorageOptions, dataDir });
      try {
        assert.ok(storage.log.lastIndex() >= logAcked, `crash ${crash}: lastIndex ${storage.log.lastIndex()} lost acknowledged entry ${logAcked}`);
        const stored = storage.log.entries(1, logAcked + 1, Infinity);
        assert.equal(stored.length, logAcked, `crash ${crash}: entries 1..${logAcked}`);
        for (const e of stored) {
          assert.equal(e.term, 1);
          assert.equal(decoder.decode(e.data), `entry ${e.index}`);
        }
        assert.ok(storage.hardState().commit >= logAcked, `crash ${crash}: hard state commit ${storage.hardState().commit} < ${logAcked}`);
        assert.ok(storage.kv.appliedIndex() >= kvAcked, `crash ${crash}: applied ${storage.kv.appliedIndex()} lost acknowledged ${kvAcked}`);
        for (let index = 10; index <= kvAcked; index += 10) {
          assert.deepEqual(storage.kv.get(`k${index}`), { value: `v${index}`, version: index }, `crash ${crash}: kv write ${index}`);
        }
      } finally {
        await storage.close();
      }
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

/**
 * The kv write a node makes when it applies the 10-entry batch ending at `last`: overwrites,
 * deletes and a dedup record, and a key holding `last` itself, so a state that mixes two
 * batches cannot pass for either. Runs in the crash child too (as source text).
 */
function applyBatch(tx: Pick<KvWriter, 'put' | 'delete' | 'putDedup'>, last: number): void {
  tx.put('k' + (last % 13), { value: 'v' + last, version: last });
  if (last % 30 === 0) tx.delete('k' + ((last * 7 + 5) % 13));
  tx.put('applied', { value: String(last), version: last });
  tx.putDedup({ clientId: 'c' + (last % 5), seq: last, index: last, reply: new Uint8Array([last % 256]) });
}

/** The appender of the test above, but as a node applies: in later event turns than it persists,
 * with pauses in persisting, so kv writes are held back, merged and written by every trigger
 * (the next persist, the write count bound, the timer). */
const heldBackAppenderScript = `
  const { openLmdbStorage } = await import(process.argv[1]);
  const storage = await openLmdbStorage({
    initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' },
    snapshotBytesMax: 1 << 20,
    dataDir: process.argv[2],
    kvDeferMsMax: 5,
    kvDeferredWritesMax: 4,
  });
  const applyBatch = ${applyBatch.toString()};
  let applied = storage.kv.appliedIndex();
  let durableLog = storage.log.lastIndex();
  let next = durableLog + 1;
  let inFlight = 0;
  let round = 0;
  let reportedApplied = storage.kv.durableAppliedIndex();
  const encoder = new TextEncoder();
  // Like a node, re-apply what the log holds beyond the kv state; one kv write per batch.
  function applyUpTo(target) {
    while (applied + 10 <= target) {
      const last = applied + 10;
      storage.kv.write(last, (tx) => applyBatch(tx, last));
      applied = last;
    }
  }
  applyUpTo(durableLog);
  function step() {
    round++;
    if (round % 20 < 15 && inFlight < 3) {
      const entries = [];
      for (let i = 0; i < 10; i++, next++) entries.push({ index: next, term: 1, kind: 'normal', data: encoder.encode('entry ' + next) });
      const last = next - 1;
      inFlight++;
      storage.persist({ snapshot: null, entries, hardState: { term: 1, vote: 'n1', commit: last } }, (error) => {
        if (error) { console.error(error); process.exit(2); }
        inFlight--;
        durableLog = last;
        process.stdout.write('log ' + last + '\\n');
      });
    }
    setImmediate(() => applyUpTo(durableLog));
    const durableApplied = storage.kv.durableAppliedIndex();
    if (durableApplied > reportedApplied) { reportedApplied = durableApplied; process.stdout.write('kv ' + durableApplied + '\\n'); }
    if (round % 20 === 19) setTimeout(step, 8);
    else setImmediate(step);
  }
  step();
`;

test('kill -9 while kv writes are held back leaves the kv state exactly as of its applied index, never part of a batch', async () => {
  const dataDir = await tempDir();
  try {
    for (let crash = 1; crash <= 3; crash++) {
      const { logAcked, kvAcked } = await appendUntilKilled(dataDir, 150, heldBackAppenderScript);
      const storage = await openLmdbStorage({ ...contractStorageOptions, dataDir });
      try {
        assert.ok(storage.log.lastIndex() >= logAcked, `crash ${crash}: lastIndex ${storage.log.lastIndex()} lost acknowledged entry ${logAcked}`);
        assert.equal(storage.log.entries(1, logAcked + 1, Infinity).length, logAcked, `crash ${crash}: entries 1..${logAcked}`);
        const applied = storage.kv.appliedIndex();
        assert.ok(applied >= kvAcked, `crash ${crash}: applied ${applied} lost acknowledged ${kvAcked}`);
        assert.ok(applied % 10 === 0 && applied <= storage.log.lastIndex(), `crash ${crash}: applied ${applied} is not a batch end in the log`);
        // Replay every batch up to the applied index in memory: the stored state must be exactly that.
        const expected = new Map<string, KvRecord>();
        const expectedDedup = new Map<string, { seq: number; index: number }>();
        for (let last = 10; last <= applied; last += 10) {
          applyBatch(
            {
              put: (key, record) => void expected.set(key, record),
              delete: (key) => void expected.delete(key),
              putDedup: (record) => void expectedDedup.set(record.clientId, { seq: record.seq, index: record.index }),
            },
            last,
          );
        }
        const keys = [...expected.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        assert.deepEqual(
          storage.kv.range('', undefined, 1000),
          keys.map((key) => ({ key, ...(expected.get(key) as KvRecord) })),
          `crash ${crash}: kv state at applied index ${applied}`,
        );
        assert.equal(storage.kv.keyCount(), expected.size);
        for (let c = 0; c < 5; c++) {
          const stored = storage.kv.getDedup(`c${c}`);
          const want = expectedDedup.get(`c${c}`);
          assert.deepEqual(stored === undefined ? undefined : { seq: stored.seq, index: stored.index }, want, `crash ${crash}: dedup c${c}`);
        }
      } finally {
        await storage.close();
      }
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

/** Opens a storage in a fresh directory with `extra` options, runs `body`, closes and removes it. */
async function withStorage(extra: Partial<LmdbStorageOptions>, body: (storage: LmdbStorage, options: LmdbStorageOptions) => Promise<void>): Promise<void> {
  const dataDir = await tempDir();
  const options: LmdbStorageOptions = { ...contractStorageOptions, dataDir, ...extra };
  const storage = await openLmdbStorage(options);
  try {
    await body(storage, options);
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function persistWarmUp(storage: LmdbStorage, index: number): Promise<void> {
  let durable = false;
  storage.persist(append([entry(index)]), () => {
    durable = true;
  });
  await waitFor(() => durable, `warm-up persist ${index}`);
}

test('kv writes of many apply batches share one LMDB transaction, and never reach LMDB before the WAL holds their entries', () =>
  withStorage({ kvDeferMsMax: 0 }, async (storage) => {
    await persistWarmUp(storage, 1);
    const before = storage.stats();
    let durable = false;
    storage.persist(append([entry(2), entry(3)], 3), () => {
      durable = true;
    });
    // Applied before the WAL holds entries 2 and 3 (a leader may apply what its followers hold):
    // held back although kvDeferMsMax is 0, visible at once.
    storage.kv.write(2, (tx) => tx.put('a', { value: 'two', version: 2 }));
    storage.kv.write(3, (tx) => tx.put('b', { value: 'three', version: 3 }));
    assert.deepEqual(storage.kv.get('a'), { value: 'two', version: 2 });
    assert.equal(storage.stats().kvWritesDeferred, 2);
    assert.equal(storage.stats().lastTxnId, before.lastTxnId, 'no LMDB transaction before the WAL is durable');
    await waitFor(() => durable, 'the persist to be durable');
    await waitFor(() => storage.kv.durableAppliedIndex() === 3, 'the kv writes to be durable');
    const after = storage.stats();
    assert.equal(after.lastTxnId - before.lastTxnId, 1, 'one transaction for both kv writes');
    assert.equal(after.overlayKeys, 0);
  }));

test('a held-back kv write with no persist after it is written once kvDeferMsMax has passed', () =>
  withStorage({ kvDeferMsMax: 100 }, async (storage) => {
    await persistWarmUp(storage, 1);
    const before = storage.stats();
    const writtenAtMs = Date.now();
    storage.kv.write(1, (tx) => tx.put('a', { value: 'one', version: 1 }));
    await waitFor(() => storage.kv.durableAppliedIndex() === 1, 'the held-back kv write to be durable');
    const elapsedMs = Date.now() - writtenAtMs;
    // Timers never fire early; a millisecond of slack for clock rounding.
    assert.ok(elapsedMs >= 99, `durable after ${elapsedMs} ms: it was not held back for kvDeferMsMax`);
    assert.equal(storage.stats().lastTxnId - before.lastTxnId, 1);
    assert.equal(storage.stats().kvWritesDeferred, 0);
  }));

test('held-back kv writes beyond kvDeferredKeysMax distinct keys are written at once, however few the writes', () =>
  withStorage({ kvDeferMsMax: 60_000, kvDeferredWritesMax: 100, kvDeferredKeysMax: 3 }, async (storage) => {
    // Writing one key again and again keeps the group open: a hot key dirties one page.
    for (let i = 1; i <= 5; i++) storage.kv.write(i, (tx) => tx.put('hot', { value: `v${i}`, version: i }));
    storage.kv.write(6, (tx) => tx.put('a', { value: 'one', version: 6 }));
    assert.equal(storage.stats().kvWritesDeferred, 6, 'two distinct keys are held back');
    storage.kv.write(7, (tx) => {
      tx.put('b', { value: 'two', version: 7 });
      tx.put('c', { value: 'three', version: 7 });
    });
    assert.equal(storage.stats().kvWritesDeferred, 0, 'four distinct keys went at once');
    await waitFor(() => storage.kv.durableAppliedIndex() === 7, 'the group to be durable');
    assert.equal(storage.kv.get('hot')?.value, 'v5');
  }));

test('held-back kv writes beyond kvDeferredWritesMax or kvDeferredBytesMax are written at once', () =>
  withStorage({ kvDeferMsMax: 60_000, kvDeferredWritesMax: 3, kvDeferredBytesMax: 4096 }, async (storage) => {
    storage.kv.write(1, (tx) => tx.put('a', { value: 'one', version: 1 }));
    storage.kv.write(2, (tx) => tx.put('b', { value: 'two', version: 2 }));
    assert.equal(storage.stats().kvWritesDeferred, 2);
    storage.kv.write(3, (tx) => tx.put('c', { value: 'three', version: 3 }));
    assert.equal(storage.stats().kvWritesDeferred, 0);
    await waitFor(() => storage.kv.durableAppliedIndex() === 3, 'three kv writes to be durable');
    storage.kv.write(4, (tx) => tx.put('big', { value: 'x'.repeat(5000), version: 4 }));
    assert.equal(storage.stats().kvWritesDeferred, 0);
    await waitFor(() => storage.kv.durableAppliedIndex() === 4, 'a large kv write to be durable');
  }));

test('a read made once a write is durable sees it, even when lmdb-js reports the flush before it has noticed the commit', () =>
  // lmdb-js serves reads from one shared read transaction, which it resets when it resolves a
  // commit promise. It may resolve a transaction's `flushed` promise first (its write worker's
  // completion callback), with the read transaction still on a snapshot taken before that
  // commit. The driver applies entries right in the durable callback, so a read there that
  // went to that snapshot would see the state from before writes the state machine already
  // made: a transfer compared against stale versions, replicas that disagree (the bank test's
  // wrong totals). The race is made likely here, round after round: a large write keeps the
  // writer busy, a read renews the snapshot before it commits, a small write queues behind it.
  withStorage({ kvDeferMsMax: 0 }, async (storage) => {
    const filler = 'f'.repeat(200);
    const stale: string[] = [];
    for (let round = 1; round <= 40; round++) {
      const x = 2 * round - 1;
      const y = 2 * round;
      storage.kv.write(x, (tx) => {
        tx.put('k', { value: `v${x}`, version: x });
        for (let i = 0; i < 3000; i++) tx.put(`filler${i}`, { value: filler, version: x });
      });
      const atDurable: { done: boolean; seen?: KvRecord | undefined } = { done: false };
      storage.persist(append([entry(x)], x), () => {
        atDurable.seen = storage.kv.get('k');
        atDurable.done = true;
      });
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          storage.kv.get('never-written'); // not in the overlay: lmdb-js renews its read snapshot
          storage.kv.write(y, (tx) => tx.put('other', { value: `v${y}`, version: y }));
          storage.persist(append([entry(y)], y), () => {});
          // Held synchronously while x commits and the writer finishes: its completion is
          // then handled before lmdb-js's timer resets the snapshot.
          const startMs = Date.now();
          while (Date.now() - startMs < 30);
          resolve();
        }, 0),
      );
      await waitFor(() => atDurable.done, `write ${x} to be durable`);
      if (atDurable.seen?.version !== x) stale.push(`round ${round}: read v${String(atDurable.seen?.version)} when write ${x} was durable`);
    }
    assert.deepEqual(stale, []);
  }));

test('reads after each committed put and delete of a key see that write, never a record held from before it', () =>
  // The slot keeps records it read (recent-records.ts); each committed write must replace what
  // it keeps, a delete included, and a key read while absent must not stay absent.
  withStorage({ kvDeferMsMax: 0 }, async (storage) => {
    const commit = async (index: number, mutate: (tx: KvWriter) => void): Promise<void> => {
      storage.kv.write(index, mutate);
      storage.persist(append([entry(index)], index), () => {});
      await waitFor(() => storage.kv.durableAppliedIndex() === index, `write ${index} durable`);
    };
    assert.equal(storage.kv.get('k'), undefined);
    await commit(1, (tx) => tx.put('k', { value: 'one', version: 1 }));
    assert.deepEqual(storage.kv.get('k'), { value: 'one', version: 1 });
    assert.equal(storage.kv.keyCount(), 1);
    await commit(2, (tx) => tx.put('k', { value: 'two', version: 2 }));
    assert.deepEqual(storage.kv.get('k'), { value: 'two', version: 2 });
    await commit(3, (tx) => tx.delete('k'));
    assert.equal(storage.kv.get('k'), undefined);
    assert.equal(storage.kv.keyCount(), 0);
    await commit(4, (tx) => tx.put('k', { value: 'four', version: 4 }));
    assert.deepEqual(storage.kv.get('k'), { value: 'four', version: 4 });
    assert.equal(storage.kv.keyCount(), 1);
    // A byte value kept for later reads has memory of its own: a slice of Node's shared pool
    // would keep a whole 8 KiB slab alive for as long as the record is kept.
    await commit(5, (tx) => tx.put('bytes', { value: new Uint8Array([1, 2, 3]), version: 5 }));
    const kept = storage.kv.get('bytes')?.value;
    assert.ok(kept instanceof Uint8Array && kept.length === 3 && kept.buffer.byteLength === 3, `kept value over ${String((kept as Uint8Array | undefined)?.buffer.byteLength)} bytes`);
    // A write that is rolled back leaves what was committed.
    assert.throws(() =>
      storage.kv.write(6, (tx) => {
        tx.put('k', { value: 'five', version: 6 });
        throw new Error('rolled back');
      }),
    );
    assert.deepEqual(storage.kv.get('k'), { value: 'four', version: 4 });
  }));

test('closing writes held-back kv writes at once, and a reopen finds them', async () => {
  const dataDir = await tempDir();
  const options: LmdbStorageOptions = { ...contractStorageOptions, dataDir, kvDeferMsMax: 60_000 };
  try {
    const storage = await openLmdbStorage(options);
    storage.kv.write(1, (tx) => tx.put('a', { value: 'one', version: 1 }));
    await new Promise<void>((resolve) => setImmediate(resolve));
    storage.kv.write(2, (tx) => {
      tx.delete('a');
      tx.put('b', { value: 'two', version: 2 });
      tx.putDedup({ clientId: 'c1', seq: 1, index: 2, reply: new Uint8Array([7]) });
    });
    const closingAtMs = Date.now();
    await storage.close();
    assert.ok(Date.now() - closingAtMs < 30_000, 'close did not wait for kvDeferMsMax');
    assert.equal(storage.kv.durableAppliedIndex(), 2);
    const reopened = await openLmdbStorage(options);
    try {
      assert.equal(reopened.kv.appliedIndex(), 2);
      assert.equal(reopened.kv.get('a'), undefined);
      assert.deepEqual(reopened.kv.get('b'), { value: 'two', version: 2 });
      assert.deepEqual(reopened.kv.getDedup('c1'), { clientId: 'c1', seq: 1, index: 2, reply: new Uint8Array([7]) });
    } finally {
      await reopened.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('closing waits for queued writes to become durable and acknowledges them first', async () => {
  const dataDir = await tempDir();
  const options: LmdbStorageOptions = { ...contractStorageOptions, dataDir };
  const storage = await openLmdbStorage(options);
  const acked: number[] = [];
  for (let i = 1; i <= 20; i++) storage.persist(append([entry(i)]), () => acked.push(i));
  storage.kv.write(20, (tx) => tx.put('k', { value: 'v', version: 20 }));
  await storage.close();
  assert.equal(acked.length, 20);
  assert.throws(() => storage.persist(append([entry(21)]), () => {}), /closed/);
  const reopened = await openLmdbStorage(options);
  try {
    assert.equal(reopened.log.lastIndex(), 20);
    assert.equal(reopened.kv.appliedIndex(), 20);
  } finally {
    await reopened.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a flush that stalls past flushTimeoutMs fails every waiting write, and later ones, with an error', async () => {
  const dataDir = await tempDir();
  const storage = await openLmdbStorage({ ...contractStorageOptions, dataDir, flushTimeoutMs: 300 });
  // Another process takes LMDB's writer lock (shared through the lock file) and never lets
  // go: our commits, and so our flushes, stall as on a hung disk.
  const script = `
    const { open } = await import(process.argv[1]);
    const root = open({ path: process.argv[2], overlappingSync: true, noSync: false, compression: false, encoding: 'binary' });
    root.transactionSync(() => {
      process.stdout.write('locked\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, import.meta.resolve('lmdb'), dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (data: Buffer) => {
    output += data.toString();
  });
  child.stderr.on('data', (data: Buffer) => {
    output += data.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    await waitFor(() => output.includes('locked') || child.exitCode !== null, `the child to take the writer lock (output: ${output})`);
    assert.equal(child.exitCode, null, `child exited: ${output}`);
    const errors: (Error | null)[] = [];
    storage.setIdentity({ nodeId: 'n1', clusterId: 'c1' }, (error) => errors.push(error));
    await waitFor(() => errors.length === 1, 'the write to fail');
    assert.match(String(errors[0]), /flush made no progress for 300 ms/);
    // The log (in the WAL, which still works) stops too: a failed storage takes no write.
    const later: (Error | null)[] = [];
    storage.persist(append([entry(1)]), (error) => later.push(error));
    assert.deepEqual(later, [], 'reported asynchronously, like any acknowledgement');
    await waitFor(() => later.length === 1, 'the later write to fail');
    assert.equal(later[0], errors[0]);
    assert.throws(() => storage.kv.write(2, () => {}), /flush made no progress/);
  } finally {
    child.kill('SIGKILL');
    await exited;
    // With the lock released (LMDB recovers a dead owner's mutex) close can finish.
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a data directory written before the WAL (its log in LMDB) is moved into a WAL at its first open, log and hard state intact', async () => {
  const dataDir = await tempDir();
  try {
    // What format 1 left: the log and hard state in LMDB, a compaction to 3 done.
    const root = open({ path: dataDir, maxDbs: 16, pageSize: 4096, compression: false, encoding: 'binary' });
    const metaOptions = { encoding: 'msgpack', keyEncoding: 'ordered-binary', compression: false, useRecords: false } as const;
    const metaDb = root.openDB<unknown, string>('meta', metaOptions);
    const logDb = root.openDB<Buffer, number>('log', { encoding: 'binary', keyEncoding: 'ordered-binary', compression: false });
    await root.transaction(() => {
      void metaDb.put('format', 1);
      void metaDb.put('hardState', { term: 4, vote: 'n2', commit: 9 });
      void metaDb.put('snapshot', { index: 3, term: 2, config: contractStorageOptions.initialConfig });
      void metaDb.put('applied', 3);
      for (let index = 1; index <= 10; index++) void logDb.put(index, encodeEntry(entry(index, index <= 3 ? 2 : 4)));
    });
    await root.close();

    const storage = await openLmdbStorage({ ...contractStorageOptions, dataDir });
    try {
      assert.deepEqual(storage.hardState(), { term: 4, vote: 'n2', commit: 9 });
      assert.equal(storage.log.firstIndex(), 4);
      assert.deepEqual(storage.log.entries(4, 11, Infinity), Array.from({ length: 7 }, (_, k) => entry(k + 4, 4)));
      const next: PersistBatch = { snapshot: null, entries: [entry(11, 4)], hardState: { term: 4, vote: 'n2', commit: 10 } };
      await new Promise<void>((resolve, reject) => storage.persist(next, (error) => (error === null ? resolve() : reject(error))));
    } finally {
      await storage.close();
    }
    assert.ok((await readdir(path.join(dataDir, 'wal'))).some((name) => name.endsWith('.wal')));
    const reopened = await openLmdbStorage({ ...contractStorageOptions, dataDir });
    try {
      assert.equal(reopened.log.lastIndex(), 11);
      assert.deepEqual(reopened.hardState(), { term: 4, vote: 'n2', commit: 10 });
    } finally {
      await reopened.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
