import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Entry, HardState } from '../core/types.js';
import { encodeEntries, encodeHardState, encodeHeader, encodeReset, frames, segmentFileName, WalCorruptError } from './wal-codec.js';
import { replaySegments } from './wal-replay.js';
import type { SegmentBytes } from './wal-replay.js';
import { openWal, WAL_DIR_NAME } from './wal.js';
import type { Wal, WalAppend } from './wal.js';

const encoder = new TextEncoder();
const entry = (index: number, term = 1, text = `entry ${index}`): Entry => ({ index, term, kind: 'normal', data: encoder.encode(text) });
const entries = (from: number, to: number, term = 1): Entry[] => Array.from({ length: to - from + 1 }, (_, k) => entry(from + k, term));
const hs = (term: number, vote: string | null = 'n1', commit = 0): HardState => ({ term, vote, commit });

/** A segment's bytes: its header and `payloads`, framed with chained crcs, then `zeros` zero bytes. */
function segment(seq: number, generation: number, hardState: HardState, payloads: Uint8Array[], zeros = 64): Buffer {
  return Buffer.concat([...frames([encodeHeader(seq, generation, hardState), ...payloads], 0).buffers, Buffer.alloc(zeros)]);
}

const indexes = (es: readonly Entry[]): number[] => es.map((e) => e.index);
const terms = (es: readonly Entry[]): number[] => es.map((e) => e.term);

// --- replay rules (pure) -------------------------------------------------------------------

test('replay: later entries replace the tail they overlap, the newest hard state wins', () => {
  const seg = segment(1, 0, hs(1), [encodeEntries(entries(1, 5)), encodeHardState(hs(2, 'n2', 3)), encodeEntries(entries(4, 6, 2))]);
  const r = replaySegments([{ seq: 1, bytes: seg }], { generation: 0, snapshotIndex: 0 });
  assert.deepEqual(indexes(r.entries), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(terms(r.entries), [1, 1, 1, 2, 2, 2]);
  assert.deepEqual(r.hardState, hs(2, 'n2', 3));
  assert.equal(new TextDecoder().decode(r.entries[5]?.data), 'entry 6');
  assert.equal(r.tornTail, false);
});

test('replay: the entries kept hold their own bytes, not views into the segment read (which is then freed)', () => {
  const seg = segment(1, 0, hs(1), [encodeEntries(entries(1, 4))]);
  const r = replaySegments([{ seq: 1, bytes: seg }], { generation: 0, snapshotIndex: 2 });
  assert.deepEqual(indexes(r.entries), [3, 4]);
  for (const e of r.entries) assert.notEqual(e.data.buffer, seg.buffer, `entry ${e.index} views the segment`);
  seg.fill(0);
  assert.deepEqual(r.entries.map((e) => new TextDecoder().decode(e.data)), ['entry 3', 'entry 4']);
});

test('replay: entries at or below the snapshot are dropped; a gap after it is an error', () => {
  const seg = segment(1, 0, hs(1), [encodeEntries(entries(1, 10))]);
  assert.deepEqual(indexes(replaySegments([{ seq: 1, bytes: seg }], { generation: 0, snapshotIndex: 7 }).entries), [8, 9, 10]);
  // Segments before 2 were deleted after a compaction to 5: the log resumes at 6.
  const later = segment(2, 0, hs(1), [encodeEntries(entries(6, 12))]);
  assert.deepEqual(indexes(replaySegments([{ seq: 2, bytes: later }], { generation: 0, snapshotIndex: 5 }).entries), [6, 7, 8, 9, 10, 11, 12]);
  assert.throws(() => replaySegments([{ seq: 2, bytes: later }], { generation: 0, snapshotIndex: 3 }), /entries are missing/);
  const gap = segment(1, 0, hs(1), [encodeEntries(entries(1, 3)), encodeEntries(entries(5, 6))]);
  assert.throws(() => replaySegments([{ seq: 1, bytes: gap }], { generation: 0, snapshotIndex: 0 }), /entries 4\.\.4 are missing/);
});

test('replay: a reset starts a new generation; entries of a generation LMDB has replaced are ignored', () => {
  const seg = segment(1, 0, hs(1), [encodeEntries(entries(1, 20)), encodeReset(1, 50, 3), encodeEntries(entries(51, 52, 3))]);
  const r = replaySegments([{ seq: 1, bytes: seg }], { generation: 1, snapshotIndex: 50 });
  assert.deepEqual(indexes(r.entries), [51, 52]);
  // The install's flip reached LMDB (generation 1) but its reset record never reached the WAL:
  // the old generation's entries, which may conflict with the snapshot, are not the log.
  const before = segment(1, 0, hs(1), [encodeEntries(entries(1, 80))]);
  assert.deepEqual(replaySegments([{ seq: 1, bytes: before }], { generation: 1, snapshotIndex: 50 }).entries, []);
  // A WAL ahead of LMDB cannot come from the install order: refused, not guessed at.
  assert.throws(() => replaySegments([{ seq: 1, bytes: seg }], { generation: 0, snapshotIndex: 0 }), /log generation 1/);
});

test('replay: a torn last frame ends the log there; a torn frame in an earlier segment is an error', () => {
  const good = segment(1, 0, hs(1), [encodeEntries(entries(1, 3)), encodeEntries(entries(4, 6))]);
  const torn = Buffer.from(good);
  // Damage one byte of the last record's payload: its crc no longer matches.
  const lastPayloadAt = torn.length - 64 - 5;
  torn[lastPayloadAt] = (torn[lastPayloadAt] as number) ^ 0xff;
  const r = replaySegments([{ seq: 1, bytes: torn }], { generation: 0, snapshotIndex: 0 });
  assert.deepEqual(indexes(r.entries), [1, 2, 3]);
  assert.equal(r.tornTail, true);
  const second = segment(2, 0, hs(1), [encodeEntries(entries(7, 8))]);
  assert.throws(() => replaySegments([{ seq: 1, bytes: torn }, { seq: 2, bytes: second }], { generation: 0, snapshotIndex: 0 }), WalCorruptError);
});

test('replay: a frame left over from a batch that never became durable does not pass for one, even after newer frames', () => {
  // The crash tore the batch [entries 4..6, hard state 3]; after the restart the node wrote
  // entries 4..5 of term 2 over its beginning. The old hard state frame still lies after them,
  // intact, but its crc was chained from the frame it followed then.
  const start = frames([encodeHeader(1, 0, hs(1)), encodeEntries(entries(1, 3))], 0);
  const oldBatch = Buffer.concat(frames([encodeEntries(entries(4, 6)), encodeHardState(hs(3, 'n3'))], start.crc).buffers);
  const newFrames = Buffer.concat(frames([encodeEntries([entry(4, 2, 'entry 4 again, but longer than before'), entry(5, 2)])], start.crc).buffers);
  const oldHardStateFrame = oldBatch.subarray(oldBatch.length - (8 + encodeHardState(hs(3, 'n3')).length));
  const bytes = Buffer.concat([...start.buffers, newFrames, oldHardStateFrame, Buffer.alloc(64)]);
  const r = replaySegments([{ seq: 1, bytes }], { generation: 0, snapshotIndex: 0 });
  assert.deepEqual(indexes(r.entries), [1, 2, 3, 4, 5]);
  assert.deepEqual(r.hardState, hs(1), 'the stale hard state is not read');
});

// --- the writer, on files --------------------------------------------------------------------

async function withDir(body: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'quorumkv-wal-'));
  try {
    await body(dataDir);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

const walOptions = (dataDir: string, segmentBytes = 4096) => ({ dataDir, segmentBytes, flushTimeoutMs: 10_000, onFailure: () => {} });
const base = { generation: 0, snapshotIndex: 0 };
const creation = { generation: 0, hardState: hs(0, null), payloads: [] };

function appendNow(wal: Wal, write: Omit<WalAppend, 'onDurable'>): Promise<void> {
  return new Promise((resolve, reject) => wal.append({ ...write, onDurable: (error) => (error === null ? resolve() : reject(error)) }));
}

const entriesWrite = (es: Entry[], hardState: HardState | null = null): Omit<WalAppend, 'onDurable'> => ({
  payloads: [encodeEntries(es), ...(hardState !== null ? [encodeHardState(hardState)] : [])],
  maxIndex: (es[es.length - 1] as Entry).index,
  hardState,
  generation: null,
  after: null,
});

test('a failure reaches the owner before any waiting append hears of it, with its stage (a full disk: a write that may be retried)', () =>
  withDir(async (dataDir) => {
    const heard: string[] = [];
    const { wal } = await openWal({ ...walOptions(dataDir), onFailure: (error, stage) => void heard.push(`owner: ${stage} ${error.message}`) }, base, creation);
    const failed = new Promise<void>((resolve) => {
      wal.append({ ...entriesWrite(entries(1, 1)), onDurable: (error) => void (heard.push(`append: ${error?.message ?? 'durable'}`), resolve()) });
    });
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    wal.fail(full); // before the append's write starts (appends of one turn are written together, after it)
    await failed;
    assert.deepEqual(heard, ['owner: write ENOSPC: no space left on device, write', 'append: ENOSPC: no space left on device, write']);
    await wal.close();
  }));

test('appends are durable in queue order, start new segments as they fill, and replay after a reopen', () =>
  withDir(async (dataDir) => {
    const { wal } = await openWal(walOptions(dataDir), base, creation);
    const order: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const es = entries(i * 10 + 1, i * 10 + 10);
      all.push(appendNow(wal, entriesWrite(es, hs(1, 'n1', i * 10))).then(() => void order.push(i)));
      if (i % 4 === 3) await all[i]; // batches of four appends, one write each
    }
    await Promise.all(all);
    assert.deepEqual(order, Array.from({ length: 40 }, (_, i) => i));
    await wal.close();
    const files = (await readdir(path.join(dataDir, WAL_DIR_NAME))).filter((n) => n.endsWith('.wal'));
    assert.ok(files.length >= 3, `400 entries in 4 KiB segments: ${files.join(', ')}`);
    const { wal: reopened, replayed } = await openWal(walOptions(dataDir), base, null);
    assert.deepEqual(indexes(replayed.entries), Array.from({ length: 400 }, (_, k) => k + 1));
    assert.deepEqual(replayed.hardState, hs(1, 'n1', 390));
    // It goes on where it stopped, in the last segment.
    await appendNow(reopened, entriesWrite(entries(401, 402)));
    await reopened.close();
    const again = await openWal(walOptions(dataDir), base, null);
    assert.equal(again.replayed.entries.length, 402);
    await again.wal.close();
  }));

test('release deletes the oldest segments whose entries are all compacted, and a new segment keeps the hard state', () =>
  withDir(async (dataDir) => {
    const { wal } = await openWal(walOptions(dataDir), base, creation);
    await appendNow(wal, { payloads: [encodeHardState(hs(7, 'n3', 0))], maxIndex: 0, hardState: hs(7, 'n3', 0), generation: null, after: null });
    for (let i = 0; i < 30; i++) await appendNow(wal, entriesWrite(entries(i * 10 + 1, i * 10 + 10)));
    const segmentsDir = path.join(dataDir, WAL_DIR_NAME);
    const before = (await readdir(segmentsDir)).filter((n) => n.endsWith('.wal')).length;
    wal.release(250);
    await wal.close();
    const after = (await readdir(segmentsDir)).filter((n) => n.endsWith('.wal')).length;
    assert.ok(after < before && after >= 1, `segments: ${before} before, ${after} after`);
    const { wal: reopened, replayed } = await openWal(walOptions(dataDir), { generation: 0, snapshotIndex: 250 }, null);
    assert.deepEqual(indexes(replayed.entries), Array.from({ length: 50 }, (_, k) => k + 251));
    assert.deepEqual(replayed.hardState, hs(7, 'n3', 0), 'the hard state written in a deleted segment survives in the headers after it');
    await reopened.close();
  }));

test('an append gated on a promise waits for it, and the appends behind it wait too', () =>
  withDir(async (dataDir) => {
    const { wal } = await openWal(walOptions(dataDir, 1 << 20), base, creation);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const done: string[] = [];
    wal.append({ ...entriesWrite(entries(1, 1)), onDurable: () => done.push('first') });
    wal.append({ payloads: [encodeReset(1, 10, 2)], maxIndex: 0, hardState: null, generation: 1, after: gate, onDurable: () => done.push('reset') });
    wal.append({ ...entriesWrite(entries(11, 12, 2)), onDurable: () => done.push('after') });
    await new Promise<void>((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(done, ['first']);
    open();
    await wal.drained();
    assert.deepEqual(done, ['first', 'reset', 'after']);
    await wal.close();
    const { wal: reopened, replayed } = await openWal(walOptions(dataDir, 1 << 20), { generation: 1, snapshotIndex: 10 }, null);
    assert.deepEqual(indexes(replayed.entries), [11, 12]);
    await reopened.close();
  }));

test('a torn tail found at open is zeroed, and what is written after it replays', () =>
  withDir(async (dataDir) => {
    const { wal } = await openWal(walOptions(dataDir, 1 << 20), base, creation);
    await appendNow(wal, entriesWrite(entries(1, 5)));
    await appendNow(wal, entriesWrite(entries(6, 10)));
    await wal.close();
    // Tear the second batch: garbage over its last bytes, as a crash mid-write leaves.
    const file = path.join(dataDir, WAL_DIR_NAME, segmentFileName(1));
    const bytes = await readFile(file);
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('torn!'), 0, 5, end - 5);
    await fh.close();
    const first = await openWal(walOptions(dataDir, 1 << 20), base, null);
    assert.deepEqual(indexes(first.replayed.entries), [1, 2, 3, 4, 5]);
    assert.equal(first.replayed.tornTail, true);
    await appendNow(first.wal, entriesWrite(entries(6, 7, 2)));
    await first.wal.close();
    const second = await openWal(walOptions(dataDir, 1 << 20), base, null);
    assert.deepEqual(indexes(second.replayed.entries), [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(terms(second.replayed.entries).slice(5), [2, 2]);
    assert.equal(second.replayed.tornTail, false);
    await second.wal.close();
  }));

test('a missing WAL, or a damaged segment before the last, stops the open with an error', () =>
  withDir(async (dataDir) => {
    await assert.rejects(openWal(walOptions(dataDir), base, null), /write-ahead log .* is missing/);
    const { wal } = await openWal(walOptions(dataDir), base, creation);
    for (let i = 0; i < 20; i++) await appendNow(wal, entriesWrite(entries(i * 10 + 1, i * 10 + 10)));
    await wal.close();
    const file = path.join(dataDir, WAL_DIR_NAME, segmentFileName(1));
    const bytes = await readFile(file);
    bytes[200] = (bytes[200] as number) ^ 0x55;
    await writeFile(file, bytes);
    await assert.rejects(openWal(walOptions(dataDir), base, null), WalCorruptError);
  }));

test('segment bytes round-trip through replay for every record kind', () => {
  const seqs: SegmentBytes[] = [{ seq: 3, bytes: segment(3, 2, hs(4, null, 9), [encodeReset(2, 100, 4), encodeEntries(entries(101, 101, 4))]) }];
  const r = replaySegments(seqs, { generation: 2, snapshotIndex: 100 });
  assert.deepEqual(r.hardState, hs(4, null, 9));
  assert.equal(r.generation, 2);
  assert.deepEqual(indexes(r.entries), [101]);
  assert.deepEqual(r.segments, [{ seq: 3, maxIndex: 101 }]);
  assert.throws(() => replaySegments([{ seq: 4, bytes: seqs[0]?.bytes as Buffer }], { generation: 2, snapshotIndex: 100 }), /header for segment 3/);
});
