/**
 * The write-ahead log: the Raft log and hard state of a node, appended to segment files with
 * one durable write per batch (group commit: every append queued while a batch is on its way
 * to the disk goes into the next one). Segments are open with O_DSYNC, so a write returns
 * once its data (and whatever is needed to read it back) is on disk: a write and an
 * fdatasync in one system call, and one trip to the thread pool instead of two (0.1 ms less
 * per persist with three nodes on one disk). It replaces LMDB for the log because such a
 * write to a preallocated file costs a third of an LMDB commit's flush on this kind of disk
 * (docs/architecture.md, "The Raft log: LMDB, then a WAL").
 *
 * Files: `wal/{seq, 16 hex digits}.wal`, written in frames (wal-codec.ts). Each is zero-filled
 * ahead of the writes, `preallocateStepBytes` at a time in the background, up to
 * `segmentBytes`: an append into zero-filled space changes no file size, so its sync
 * writes no metadata. A new segment is started once the current one is full; the next one is
 * prepared in the background (`{seq}.wal.tmp`, renamed when it is taken). Segments whose
 * entries are all compacted are deleted, oldest first.
 *
 * Must never: acknowledge an append before the durable write that covers it, write a batch
 * before the batch queued ahead of it is durable (a torn write can then only be the last
 * one), start writing a batch whose `after` gate is still closed, or go on writing after a
 * failed write or sync (the kernel may have dropped the pages: the WAL fails for good, and
 * every waiting and later append is told so).
 */

import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { HardState } from '../core/types.js';
import { freshHardState } from './meta.js';
import { encodeHeader, frames, FRAME_HEADER_BYTES, segmentFileName, segmentSeqOf } from './wal-codec.js';
import { replaySegments } from './wal-replay.js';
import type { Replayed, ReplayBase, SegmentBytes } from './wal-replay.js';

export const WAL_DIR_NAME = 'wal';
export const WAL_SEGMENT_BYTES_DEFAULT = 64 << 20;
const ZERO_CHUNK_BYTES = 1 << 20;
/** Zero-filled ahead of the writes per step: small enough that a fresh node writes little. */
const PREALLOCATE_STEP_BYTES = 4 << 20;
const SPARE_SUFFIX = '.tmp';
/** Appends written by one write at most: a batch of batches, still one durable write. */
const APPENDS_PER_WRITE_MAX = 1024;

/**
 * What failed: `write` (a write found no space: nothing of it reached the disk but at most a
 * torn tail, which replay discards, so the directory reopens as after a crash), `sync` (any
 * other failed write, a synchronous one included: the kernel may have dropped pages, the
 * file is not to be trusted), or `hung` (a write took longer than flushTimeoutMs).
 */
export type WalFailureStage = 'write' | 'sync' | 'hung';

/** A write that did not become durable within flushTimeoutMs. */
class HungError extends Error {}

/** What a failure was: a hang, a full disk (the one error a write leaves nothing but a torn tail after), or anything else. */
function stageOf(error: Error): WalFailureStage {
  if (error instanceof HungError) return 'hung';
  return (error as { code?: string }).code === 'ENOSPC' ? 'write' : 'sync';
}

/** Segments are written through O_DSYNC: each write returns once durable. */
const SEGMENT_FLAGS = constants.O_RDWR | constants.O_DSYNC;

export interface WalOptions {
  /** The node's data directory; the WAL lives in its `wal/` folder. */
  readonly dataDir: string;
  readonly segmentBytes: number;
  /** A durable write that takes longer than this fails the WAL: a hung disk is as fatal as a failed one. */
  readonly flushTimeoutMs: number;
  /** Called once, on the first failure, with its stage (WalFailureStage). */
  readonly onFailure: (error: Error, stage: WalFailureStage) => void;
}

/** How to start a WAL that does not exist yet: its first segment's generation, hard state and records. */
export interface WalCreation {
  readonly generation: number;
  readonly hardState: HardState;
  readonly payloads: readonly Uint8Array[];
}

export interface WalAppend {
  /** Encoded records (wal-codec.ts), written in this order. */
  readonly payloads: readonly Uint8Array[];
  /** Highest entry index among them, 0 if none. */
  readonly maxIndex: number;
  /** The hard state in force after them, if they change it (a new segment's header repeats it). */
  readonly hardState: HardState | null;
  /** The generation they start, if they hold a reset record. */
  readonly generation: number | null;
  /** Written only once this has resolved (an install's LMDB flip is durable). It never rejects. */
  readonly after: Promise<void> | null;
  readonly onDurable: (error: Error | null) => void;
}

interface Segment {
  readonly seq: number;
  maxIndex: number;
  /** Bytes on disk: zero-filled ahead of the writes, or written past that by a large batch. */
  bytes: number;
}

export interface OpenedWal {
  readonly wal: Wal;
  readonly replayed: Replayed;
}

/**
 * Opens the WAL in `options.dataDir`, creating it from `creation` (after removing whatever
 * was there) when given, and replays it against what LMDB holds.
 */
export async function openWal(options: WalOptions, base: ReplayBase, creation: WalCreation | null): Promise<OpenedWal> {
  const dir = path.join(options.dataDir, WAL_DIR_NAME);
  await mkdir(dir, { recursive: true });
  const names = await readdir(dir);
  for (const name of names) {
    if (name.endsWith(SPARE_SUFFIX) || (creation !== null && segmentSeqOf(name) !== null)) await unlink(path.join(dir, name));
  }
  if (creation !== null) await createFirstSegment(dir, options.segmentBytes, creation);
  const seqs = (await readdir(dir)).map(segmentSeqOf).filter((s): s is number => s !== null).sort((a, b) => a - b);
  if (seqs.length === 0) throw new Error(`the write-ahead log in ${dir} is missing: the data directory is incomplete`);
  const segments: SegmentBytes[] = [];
  for (const seq of seqs) segments.push({ seq, bytes: await readFile(path.join(dir, segmentFileName(seq))) });
  const replayed = replaySegments(segments, base);
  const tail = replayed.tail as NonNullable<Replayed['tail']>;
  const last = segments[segments.length - 1] as SegmentBytes;
  const fh = await open(path.join(dir, segmentFileName(tail.seq)), SEGMENT_FLAGS);
  try {
    if (replayed.tornTail) {
      // Zero what the torn batch left, so that no part of it can ever be read as a frame.
      await writeZeros(fh, tail.offset, last.bytes.length);
    }
  } catch (error) {
    await fh.close();
    throw error;
  }
  const summaries = replayed.segments.map((s, i) => ({ seq: s.seq, maxIndex: s.maxIndex, bytes: (segments[i] as SegmentBytes).bytes.length }));
  const wal = new Wal(dir, options, summaries, fh, tail, replayed.hardState, replayed.generation);
  return { wal, replayed };
}

async function createFirstSegment(dir: string, segmentBytes: number, creation: WalCreation): Promise<void> {
  const seq = 1;
  const framed = frames([encodeHeader(seq, creation.generation, creation.hardState), ...creation.payloads], 0);
  const tmp = path.join(dir, segmentFileName(seq) + SPARE_SUFFIX);
  const fh = await open(tmp, 'w');
  try {
    const written = await writeAll(fh, framed.buffers, 0);
    await writeZeros(fh, written, Math.max(preallocateStep(segmentBytes), written + FRAME_HEADER_BYTES));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path.join(dir, segmentFileName(seq)));
  await syncDir(dir);
}

function preallocateStep(segmentBytes: number): number {
  return Math.min(segmentBytes, PREALLOCATE_STEP_BYTES);
}

async function writeAll(fh: FileHandle, buffers: Uint8Array[], position: number): Promise<number> {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  let done = 0;
  let pending = buffers;
  while (done < total) {
    const { bytesWritten } = await fh.writev(pending, position + done);
    if (bytesWritten === 0) throw new Error('WAL write made no progress');
    done += bytesWritten;
    pending = remainingAfter(pending, bytesWritten);
  }
  return total;
}

function remainingAfter(buffers: Uint8Array[], written: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = written;
  for (const b of buffers) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

async function writeZeros(fh: FileHandle, from: number, to: number): Promise<void> {
  const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, Math.max(0, to - from)));
  for (let at = from; at < to; at += zeros.length) await writeAll(fh, [zeros.subarray(0, Math.min(zeros.length, to - at))], at);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class Wal {
  private readonly queue: WalAppend[] = [];
  private writing = false;
  private pumpScheduled = false;
  private failureValue: Error | null = null;
  private drainWaiters: (() => void)[] = [];
  private spare: Promise<FileHandle> | null = null;
  /** Zero-filling the current segment further ahead of the writes, if under way. */
  private extending: Promise<void> | null = null;
  private deleting: Promise<void> | null = null;
  private releasedThrough = 0;
  private offset: number;
  private crc: number;
  private needsHeader: boolean;
  private syncsValue = 0;

  constructor(
    private readonly dir: string,
    private readonly options: WalOptions,
    private readonly segments: Segment[],
    private fh: FileHandle,
    tail: { readonly offset: number; readonly crc: number },
    private hardState: HardState | null,
    private generation: number,
  ) {
    this.offset = tail.offset;
    this.crc = tail.crc;
    this.needsHeader = tail.offset === 0;
    this.prepareSpare();
  }

  /** The first failure, which every later append gets too; null while the disk works. */
  get failure(): Error | null {
    return this.failureValue;
  }

  /** Durable writes done: each made one or more appends durable. */
  get syncs(): number {
    return this.syncsValue;
  }

  /** Bytes of the WAL's files on disk (segments and the prepared spare). */
  bytes(): number {
    let total = this.spare !== null ? preallocateStep(this.options.segmentBytes) : 0;
    for (const s of this.segments) total += s.bytes;
    return total;
  }

  append(write: WalAppend): void {
    const failure = this.failureValue;
    if (failure !== null) {
      queueMicrotask(() => write.onDurable(failure));
      return;
    }
    this.queue.push(write);
    // Every append of this synchronous run (a Ready's, a turn's) goes into one write.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      queueMicrotask(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /** Deletes, oldest first, the segments (not the current one) whose entries are all at or below `index`. */
  release(index: number): void {
    this.releasedThrough = Math.max(this.releasedThrough, index);
    if (this.deleting !== null || this.failureValue !== null) return;
    this.deleting = this.deleteReleased().then(
      () => {
        this.deleting = null;
      },
      (error: unknown) => {
        this.deleting = null;
        this.fail(error);
      },
    );
  }

  /** Resolves once every append queued so far is durable or failed. */
  drained(): Promise<void> {
    if (!this.writing && (this.queue.length === 0 || this.failureValue !== null)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.drained();
    if (this.deleting !== null) await this.deleting;
    if (this.extending !== null) await this.extending;
    const spare = this.spare;
    this.spare = null;
    await this.fh.close();
    if (spare !== null) {
      const fh = await spare.catch(() => null);
      await fh?.close();
      await unlink(this.sparePath()).catch(() => undefined);
    }
  }

  fail(error: unknown): void {
    if (this.failureValue !== null) return;
    const failure = error instanceof Error ? error : new Error(String(error));
    this.failureValue = failure;
    // The owner first: a waiting append's callback may ask the storage what failed at once
    // (a node whose disk filled decides there whether to wait for space or to exit).
    this.options.onFailure(failure, stageOf(failure));
    const waiting = this.queue.splice(0);
    for (const w of waiting) w.onDurable(failure);
    this.wakeDrainWaiters();
  }

  // --- writing ---------------------------------------------------------------------------

  private pump(): void {
    if (this.writing || this.queue.length === 0 || this.failureValue !== null) return;
    this.writing = true;
    this.writeNext().then(
      () => {
        this.writing = false;
        if (this.failureValue === null && this.queue.length > 0) this.pump();
        else this.wakeDrainWaiters();
      },
      (error: unknown) => {
        this.writing = false;
        this.fail(error);
      },
    );
  }

  private wakeDrainWaiters(): void {
    if (this.writing || (this.queue.length > 0 && this.failureValue === null)) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private async writeNext(): Promise<void> {
    const head = this.queue[0] as WalAppend;
    if (head.after !== null) {
      await head.after;
      if (this.failureValue !== null) return;
      this.queue[0] = { ...head, after: null };
    }
    let n = 1;
    while (n < this.queue.length && n < APPENDS_PER_WRITE_MAX && (this.queue[n] as WalAppend).after === null) n++;
    const batch = this.queue.splice(0, n);
    if (this.offset >= this.options.segmentBytes) await this.cut();

    const current = this.segments[this.segments.length - 1] as Segment;
    const payloads: Uint8Array[] = this.needsHeader ? [encodeHeader(current.seq, this.generation, this.hardState ?? freshHardState())] : [];
    let maxIndex = current.maxIndex;
    for (const w of batch) {
      payloads.push(...w.payloads);
      maxIndex = Math.max(maxIndex, w.maxIndex);
    }
    const { buffers, bytes: total, crc } = frames(payloads, this.crc);
    // Never write where a zero-fill is under way: its zeros could land over these frames.
    if (this.extending !== null && this.offset + total > current.bytes) await this.extending;
    if (this.failureValue !== null) return;
    const written = await this.withinTimeout(() => writeAll(this.fh, buffers, this.offset));
    if (this.failureValue !== null) return;
    this.syncsValue++;
    this.offset += written;
    this.crc = crc;
    this.needsHeader = false;
    current.maxIndex = maxIndex;
    current.bytes = Math.max(current.bytes, this.offset);
    for (const w of batch) {
      if (w.hardState !== null) this.hardState = w.hardState;
      if (w.generation !== null) this.generation = w.generation;
    }
    for (const w of batch) w.onDurable(null);
    this.extendAhead(current);
  }

  /** Zero-fills the next step of the current segment once the writes come within half a step of the end. */
  private extendAhead(current: Segment): void {
    const step = preallocateStep(this.options.segmentBytes);
    if (this.extending !== null || current.bytes >= this.options.segmentBytes || current.bytes - this.offset > step / 2) return;
    const fh = this.fh;
    const from = current.bytes;
    const to = Math.min(this.options.segmentBytes, from + step);
    this.extending = (async () => {
      await writeZeros(fh, from, to);
      current.bytes = Math.max(current.bytes, to);
    })().then(
      () => {
        this.extending = null;
      },
      (error: unknown) => {
        this.extending = null;
        this.fail(error);
      },
    );
  }

  private async withinTimeout<T>(work: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | null = null;
    const timeout = new Promise<never>((_, reject) => {
      const message = `a WAL write took more than ${this.options.flushTimeoutMs} ms to be durable: the disk is hung`;
      timer = setTimeout(() => reject(new HungError(message)), this.options.flushTimeoutMs);
    });
    try {
      return await Promise.race([work(), timeout]);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  // --- segments --------------------------------------------------------------------------

  private sparePath(): string {
    const seq = (this.segments[this.segments.length - 1] as Segment).seq + 1;
    return path.join(this.dir, segmentFileName(seq) + SPARE_SUFFIX);
  }

  /** Zero-fills the next segment in the background, so that taking it costs a rename. */
  private prepareSpare(): void {
    const file = this.sparePath();
    const bytes = preallocateStep(this.options.segmentBytes);
    const ready = (async () => {
      const fh = await open(file, SEGMENT_FLAGS | constants.O_CREAT | constants.O_TRUNC);
      try {
        await writeZeros(fh, 0, bytes);
        return fh;
      } catch (error) {
        await fh.close();
        throw error;
      }
    })();
    ready.catch(() => undefined); // observed when taken (cut) or at close
    this.spare = ready;
  }

  private async cut(): Promise<void> {
    const ready = this.spare as Promise<FileHandle>;
    const from = this.sparePath();
    const seq = (this.segments[this.segments.length - 1] as Segment).seq + 1;
    const fh = await ready;
    await rename(from, path.join(this.dir, segmentFileName(seq)));
    await syncDir(this.dir);
    if (this.extending !== null) await this.extending;
    const previous = this.fh;
    this.fh = fh;
    this.segments.push({ seq, maxIndex: 0, bytes: preallocateStep(this.options.segmentBytes) });
    this.offset = 0;
    this.crc = 0;
    this.needsHeader = true;
    this.prepareSpare();
    await previous.close();
    this.release(this.releasedThrough);
  }

  private async deleteReleased(): Promise<void> {
    while (this.segments.length > 1 && (this.segments[0] as Segment).maxIndex <= this.releasedThrough && this.failureValue === null) {
      const oldest = this.segments[0] as Segment;
      await unlink(path.join(this.dir, segmentFileName(oldest.seq)));
      this.segments.shift();
    }
  }
}
