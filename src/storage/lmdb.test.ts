import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import type { Entry } from '../core/types.js';
import { contractStorageOptions, storageContract } from './contract.js';
import { openLmdbStorage } from './lmdb.js';
import type { LmdbStorage, LmdbStorageOptions } from './lmdb.js';
import type { PersistBatch } from './types.js';

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
// Without the log cache every committed entry is read back from LMDB.
storageContract('lmdb without log cache', lmdbHarness({ logCacheBytesMax: 0 }));

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

test('a thousand persist calls in one event turn share one transaction and one flush', async () => {
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
    const transactions = after.lastTxnId - before.lastTxnId;
    const flushes = after.flushesCompleted - before.flushesCompleted;
    assert.ok(transactions >= 1 && transactions <= 2, `1000 persists took ${transactions} LMDB transactions`);
    assert.ok(flushes >= 1 && flushes <= 2, `1000 persists took ${flushes} flushes`);
    assert.equal(after.uncommittedLogEntries, 0);
    assert.equal(storage.log.lastIndex(), 1001);
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('compaction deletes the log prefix in bounded transactions and leaves no entry behind', async () => {
  const dataDir = await tempDir();
  const options: LmdbStorageOptions = { ...contractStorageOptions, dataDir, compactEntriesPerTxnMax: 100 };
  let storage = await openLmdbStorage(options);
  try {
    const entries = Array.from({ length: 1000 }, (_, k) => entry(k + 1));
    let durable = false;
    storage.persist(append(entries), () => {
      durable = true;
    });
    storage.kv.write(950, (tx) => tx.put('k', { value: 'v', version: 950 }));
    await waitFor(() => durable && storage.kv.durableAppliedIndex() === 950, 'log and kv durable');
    const before = storage.stats().lastTxnId;
    storage.compact(950, contractStorageOptions.initialConfig);
    assert.equal(storage.log.firstIndex(), 951);
    // Close at once: the background deletion stops after its current chunk and resumes at open.
    await storage.close();
    storage = await openLmdbStorage(options);
    assert.equal(storage.log.firstIndex(), 951);
    assert.equal(storage.log.lastIndex(), 1000);
    assert.deepEqual(storage.log.entries(951, 1001, Infinity), entries.slice(950));
    await waitFor(() => !storage.stats().compactionRunning, 'compaction to finish');
    const transactions = storage.stats().lastTxnId - before;
    assert.ok(transactions >= 10, `950 deletes in chunks of 100 need at least 10 transactions, used ${transactions}`);
    await storage.close();

    // Look at the raw database: nothing at or below the snapshot index remains.
    const root = open({ path: dataDir, readOnly: true });
    try {
      const logDb = root.openDB<Buffer, number>('log', { encoding: 'binary', keyEncoding: 'ordered-binary' });
      const keys = [...logDb.getKeys({})];
      assert.equal(keys.length, 50);
      assert.equal(keys[0], 951);
    } finally {
      await root.close();
    }
  } finally {
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

/** The child appends 10-entry batches with a kv write each, as fast as it can, and prints
 * "log <index>" when a batch is durable and "kv <index>" when the applied index is. */
const appenderScript = `
  const { openLmdbStorage } = await import(process.argv[1]);
  const storage = await openLmdbStorage({
    initialConfig: { members: ['n1'], writeQuorum: 'majority', topology: 'star' },
    snapshotBytesMax: 1 << 20,
    dataDir: process.argv[2],
  });
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

/** Runs the appender until it has acknowledged `acksMin` more batches, then kills it with SIGKILL. */
async function appendUntilKilled(dataDir: string, acksMin: number): Promise<{ logAcked: number; kvAcked: number }> {
  const modulePath = new URL('./lmdb.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', appenderScript, modulePath, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
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
    storage.persist(append([entry(1)]), (error) => errors.push(error));
    storage.setIdentity({ nodeId: 'n1', clusterId: 'c1' }, (error) => errors.push(error));
    await waitFor(() => errors.length === 2, 'both writes to fail');
    assert.match(String(errors[0]), /flush made no progress for 300 ms/);
    assert.equal(errors[1], errors[0]);
    const later: (Error | null)[] = [];
    storage.persist(append([entry(2)]), (error) => later.push(error));
    assert.deepEqual(later, [], 'reported asynchronously, like any acknowledgement');
    await waitFor(() => later.length === 1, 'the later write to fail');
    assert.equal(later[0], errors[0]);
    assert.throws(() => storage.kv.write(1, () => {}), /flush made no progress/);
  } finally {
    child.kill('SIGKILL');
    await exited;
    // With the lock released (LMDB recovers a dead owner's mutex) close can finish.
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
