/**
 * The write-ahead log's bytes: how a record is framed in a segment file and what each kind
 * of record holds. A segment is a run of frames, `[payload bytes u32][crc u32][payload]`,
 * ended by a zero length (segments are preallocated with zeros). A frame's crc is CRC-32 of
 * its payload *chained* from the crc of the frame before it (0 at a segment's start), so a
 * frame left over from a batch that never became durable cannot pass for a valid one once
 * newer frames are written over its beginning: its crc was chained from other bytes.
 *
 * Payloads start with a kind byte:
 *   1 header    [version u8][segment seq f64][generation f64][hard state]   first in every segment
 *   2 entries   [first index f64][count u32] then per entry [data bytes u32][kind u8][term f64][data]
 *   3 hard state [term f64][commit f64][vote bytes u16, 0xffff: none][vote utf8]
 *   4 reset     [generation f64][index f64][term f64]   the log restarts after (index, term)
 * A segment's header repeats the hard state and generation in force when it was started, so
 * older segments can be deleted without losing them.
 *
 * Must never: return a record it has not checked (lengths, kinds, safe integers), or hand
 * out views of a segment's buffer (decoded entry data is copied, so a replayed log does not
 * keep whole segment files alive).
 */

import { crc32 } from 'node:zlib';
import type { Entry, EntryKind, HardState } from '../core/types.js';
import { isIndex } from '../stdx/safe-int.js';

export const FRAME_HEADER_BYTES = 8;
/** A payload this large is a corrupt length, not a record (a persist batch is far smaller). */
export const PAYLOAD_BYTES_MAX = 1 << 30;
const WAL_FORMAT_VERSION = 1;
const VOTE_NONE = 0xffff;
const ENTRY_HEADER_BYTES = 13;
const ENTRY_KINDS: readonly EntryKind[] = ['normal', 'noop', 'config'];
const ENTRY_KIND_CODES: Readonly<Record<EntryKind, number>> = { normal: 0, noop: 1, config: 2 };

const KIND_HEADER = 1;
const KIND_ENTRIES = 2;
const KIND_HARD_STATE = 3;
const KIND_RESET = 4;

export type WalRecord =
  | { readonly kind: 'header'; readonly segmentSeq: number; readonly generation: number; readonly hardState: HardState }
  | { readonly kind: 'entries'; readonly entries: readonly Entry[] }
  | { readonly kind: 'hardState'; readonly hardState: HardState }
  | { readonly kind: 'reset'; readonly generation: number; readonly index: number; readonly term: number };

/** A segment's file name: its sequence number in 16 hex digits, so names sort in order. */
export function segmentFileName(seq: number): string {
  return `${seq.toString(16).padStart(16, '0')}.wal`;
}

/** The sequence number in a segment's file name, or null if the name is not a segment's. */
export function segmentSeqOf(name: string): number | null {
  const m = /^([0-9a-f]{16})\.wal$/.exec(name);
  if (m === null) return null;
  const seq = Number.parseInt(m[1] as string, 16);
  return isIndex(seq) ? seq : null;
}

// --- encoding ------------------------------------------------------------------------------

function hardStateBytes(hs: HardState): Buffer | null {
  return hs.vote === null ? null : Buffer.from(hs.vote, 'utf8');
}

function writeHardState(out: Buffer, at: number, hs: HardState, vote: Buffer | null): number {
  out.writeDoubleLE(hs.term, at);
  out.writeDoubleLE(hs.commit, at + 8);
  out.writeUInt16LE(vote === null ? VOTE_NONE : vote.length, at + 16);
  if (vote !== null) out.set(vote, at + 18);
  return at + 18 + (vote?.length ?? 0);
}

export function encodeHeader(segmentSeq: number, generation: number, hardState: HardState): Buffer {
  const vote = hardStateBytes(hardState);
  const out = Buffer.allocUnsafe(18 + 18 + (vote?.length ?? 0));
  out[0] = KIND_HEADER;
  out[1] = WAL_FORMAT_VERSION;
  out.writeDoubleLE(segmentSeq, 2);
  out.writeDoubleLE(generation, 10);
  writeHardState(out, 18, hardState, vote);
  return out;
}

export function encodeHardState(hardState: HardState): Buffer {
  const vote = hardStateBytes(hardState);
  const out = Buffer.allocUnsafe(1 + 18 + (vote?.length ?? 0));
  out[0] = KIND_HARD_STATE;
  writeHardState(out, 1, hardState, vote);
  return out;
}

export function encodeReset(generation: number, index: number, term: number): Buffer {
  const out = Buffer.allocUnsafe(25);
  out[0] = KIND_RESET;
  out.writeDoubleLE(generation, 1);
  out.writeDoubleLE(index, 9);
  out.writeDoubleLE(term, 17);
  return out;
}

/** Consecutive entries in one payload: one copy of each entry's data, straight into it. */
export function encodeEntries(entries: readonly Entry[]): Buffer {
  let bytes = 13;
  for (const e of entries) bytes += ENTRY_HEADER_BYTES + e.data.byteLength;
  const out = Buffer.allocUnsafe(bytes);
  out[0] = KIND_ENTRIES;
  out.writeDoubleLE((entries[0] as Entry).index, 1);
  out.writeUInt32LE(entries.length, 9);
  let at = 13;
  for (const e of entries) {
    out.writeUInt32LE(e.data.byteLength, at);
    out[at + 4] = ENTRY_KIND_CODES[e.kind];
    out.writeDoubleLE(e.term, at + 5);
    out.set(e.data, at + ENTRY_HEADER_BYTES);
    at += ENTRY_HEADER_BYTES + e.data.byteLength;
  }
  return out;
}

/**
 * `payloads` as frames chained from `previousCrc`: the buffers to write (each frame's header,
 * then its payload, which is not copied), their total size, and the last frame's crc.
 */
export function frames(payloads: readonly Uint8Array[], previousCrc: number): { readonly buffers: Uint8Array[]; readonly bytes: number; readonly crc: number } {
  const buffers: Uint8Array[] = [];
  let crc = previousCrc;
  let bytes = 0;
  for (const payload of payloads) {
    crc = crc32(payload, crc);
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    header.writeUInt32LE(payload.byteLength, 0);
    header.writeUInt32LE(crc, 4);
    buffers.push(header, payload);
    bytes += FRAME_HEADER_BYTES + payload.byteLength;
  }
  return { buffers, bytes, crc };
}

// --- decoding ------------------------------------------------------------------------------

/** A payload that cannot be what its frame claims, though its crc matched: written by a bug or another program. */
export class WalCorruptError extends Error {
  override readonly name = 'WalCorruptError';
}

function need(ok: boolean, what: string): asserts ok {
  if (!ok) throw new WalCorruptError(`WAL record is corrupt: ${what}`);
}

function readIndex(p: Buffer, at: number, what: string): number {
  need(at + 8 <= p.length, `${what} is cut short`);
  const v = p.readDoubleLE(at);
  need(isIndex(v), `${what} ${v} is not a safe index`);
  return v;
}

function readHardState(p: Buffer, at: number): HardState {
  const term = readIndex(p, at, 'hard state term');
  const commit = readIndex(p, at + 8, 'hard state commit');
  need(at + 18 <= p.length, 'hard state is cut short');
  const voteBytes = p.readUInt16LE(at + 16);
  if (voteBytes === VOTE_NONE) return { term, vote: null, commit };
  need(at + 18 + voteBytes <= p.length, 'hard state vote is cut short');
  return { term, vote: p.toString('utf8', at + 18, at + 18 + voteBytes), commit };
}

/**
 * One record of a frame's payload. An entries record's data are views into `p`, not copies:
 * replay reads every entry of every segment and keeps only those past the snapshot, so it
 * copies what it keeps (wal-replay.ts).
 */
export function decodeRecord(p: Buffer): WalRecord {
  need(p.length >= 1, 'empty payload');
  switch (p[0]) {
    case KIND_HEADER: {
      need(p.length >= 18 && p[1] === WAL_FORMAT_VERSION, `segment header version ${String(p[1])}`);
      return { kind: 'header', segmentSeq: readIndex(p, 2, 'segment seq'), generation: readIndex(p, 10, 'generation'), hardState: readHardState(p, 18) };
    }
    case KIND_ENTRIES:
      return { kind: 'entries', entries: decodeEntries(p) };
    case KIND_HARD_STATE:
      return { kind: 'hardState', hardState: readHardState(p, 1) };
    case KIND_RESET:
      return { kind: 'reset', generation: readIndex(p, 1, 'generation'), index: readIndex(p, 9, 'reset index'), term: readIndex(p, 17, 'reset term') };
    default:
      throw new WalCorruptError(`WAL record is corrupt: kind ${String(p[0])}`);
  }
}

function decodeEntries(p: Buffer): Entry[] {
  const first = readIndex(p, 1, 'first index');
  need(p.length >= 13, 'entries header is cut short');
  const count = p.readUInt32LE(9);
  need(count > 0, 'no entries');
  const entries: Entry[] = [];
  let at = 13;
  for (let i = 0; i < count; i++) {
    need(at + ENTRY_HEADER_BYTES <= p.length, `entry ${first + i} is cut short`);
    const dataBytes = p.readUInt32LE(at);
    const kind = ENTRY_KINDS[p[at + 4] as number];
    need(kind !== undefined, `entry ${first + i} has kind code ${String(p[at + 4])}`);
    const term = readIndex(p, at + 5, `entry ${first + i} term`);
    const start = at + ENTRY_HEADER_BYTES;
    need(start + dataBytes <= p.length, `entry ${first + i} data is cut short`);
    entries.push({ index: first + i, term, kind, data: new Uint8Array(p.buffer, p.byteOffset + start, dataBytes) });
    at = start + dataBytes;
  }
  need(at === p.length, `${p.length - at} bytes after the last entry`);
  return entries;
}

/** One frame read from a segment: its payload (a view), where the next frame starts, and its crc. */
export interface Frame {
  readonly payload: Buffer;
  readonly end: number;
  readonly crc: number;
}

/**
 * Reads the frame at `at`: null at the end of the segment's records (a zero length, or the
 * end of the file), 'torn' when the frame does not check out (cut short, or its crc does
 * not match: a write that never became durable, or a frame left from one).
 */
export function readFrame(segment: Buffer, at: number, previousCrc: number): Frame | null | 'torn' {
  if (at + FRAME_HEADER_BYTES > segment.length) return at === segment.length ? null : 'torn';
  const bytes = segment.readUInt32LE(at);
  if (bytes === 0) return null;
  const end = at + FRAME_HEADER_BYTES + bytes;
  if (bytes > PAYLOAD_BYTES_MAX || end > segment.length) return 'torn';
  const payload = segment.subarray(at + FRAME_HEADER_BYTES, end);
  const crc = crc32(payload, previousCrc);
  if (crc !== segment.readUInt32LE(at + 4)) return 'torn';
  return { payload, end, crc };
}
