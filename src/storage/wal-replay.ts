/**
 * Recovery: what the write-ahead log's segments say the log and hard state are, given what
 * LMDB says (the generation of the log it holds state for, and the snapshot the log starts
 * after). Pure: segment bytes in, log out, so every rule is tested without files.
 *
 * Rules (wal-codec.ts has the layout):
 * - Records are read in segment order; a later entries record starting at index i replaces
 *   every entry from i on (a truncation after a conflict), a reset record drops the log and
 *   restarts it after its index, the newest hard state record wins.
 * - A generation counts snapshot installs. LMDB flips to the installed state (and raises its
 *   generation) durably *before* the reset record is written, so entries of an older
 *   generation than LMDB's are ignored: they belong to a log the install replaced. A WAL
 *   whose generation is newer than LMDB's cannot be (the order above) and is an error.
 * - The last segment may end in a torn frame (a batch that never became durable): reading
 *   stops there, and the writer goes on from that offset. Any other segment must end
 *   cleanly: one cut short is an error, never silently shortened.
 * - Entries at or below LMDB's snapshot index are dropped (compacted); the rest must run
 *   without a gap from snapshot index + 1.
 */

import type { Entry, HardState } from '../core/types.js';
import { ByteArena } from '../stdx/byte-arena.js';
import { decodeRecord, readFrame, WalCorruptError } from './wal-codec.js';

export interface SegmentBytes {
  readonly seq: number;
  readonly bytes: Buffer;
}

export interface ReplayBase {
  /** LMDB's log generation: installs done. */
  readonly generation: number;
  /** LMDB's snapshot index: the log starts after it. */
  readonly snapshotIndex: number;
}

export interface SegmentSummary {
  readonly seq: number;
  /** Highest entry index written in it (0 if none): it may be deleted once the log is compacted past it. */
  readonly maxIndex: number;
}

export interface Replayed {
  /** Entries snapshotIndex + 1 .. last, in order. */
  readonly entries: Entry[];
  /** The newest hard state written, or null if the WAL has none (no segment). */
  readonly hardState: HardState | null;
  /** The generation of the last record read. */
  readonly generation: number;
  readonly segments: readonly SegmentSummary[];
  /** Where the writer continues: the last segment, the offset after its last good frame, and that frame's crc. */
  readonly tail: { readonly seq: number; readonly offset: number; readonly crc: number } | null;
  /** True if the last segment ended in a frame that did not check out (a write cut by a crash). */
  readonly tornTail: boolean;
}

export function replaySegments(segments: readonly SegmentBytes[], base: ReplayBase): Replayed {
  let generation = 0;
  let hardState: HardState | null = null;
  let log: Entry[] = [];
  let logStart = -1; // index of log[0]; -1 until known
  const summaries: SegmentSummary[] = [];
  let tail: Replayed['tail'] = null;
  let tornTail = false;

  segments.forEach((segment, i) => {
    const isLast = i === segments.length - 1;
    const where = `WAL segment ${segment.seq}`;
    let at = 0;
    let crc = 0;
    let maxIndex = 0;
    for (let n = 0; ; n++) {
      const frame = readFrame(segment.bytes, at, crc);
      if (frame === 'torn') {
        if (!isLast) throw new WalCorruptError(`${where} is corrupt at offset ${at}: a frame does not check out, and later segments exist`);
        tornTail = true;
        break;
      }
      if (frame === null) break;
      const record = decodeRecord(frame.payload);
      if (n === 0 && record.kind !== 'header') throw new WalCorruptError(`${where} does not start with a header`);
      switch (record.kind) {
        case 'header':
          if (n !== 0 || record.segmentSeq !== segment.seq) throw new WalCorruptError(`${where} has a header for segment ${record.segmentSeq} at offset ${at}`);
          generation = record.generation;
          hardState = record.hardState;
          break;
        case 'hardState':
          hardState = record.hardState;
          break;
        case 'reset':
          generation = record.generation;
          log = [];
          logStart = record.index + 1;
          break;
        case 'entries': {
          const first = (record.entries[0] as Entry).index;
          maxIndex = Math.max(maxIndex, first + record.entries.length - 1);
          if (generation !== base.generation) break;
          if (log.length === 0 || first < logStart) {
            // The first entries seen (older segments may be deleted), or a rewrite from before them.
            log = [];
            logStart = first;
          } else if (first > logStart + log.length) {
            throw new WalCorruptError(`${where}: entries ${logStart + log.length}..${first - 1} are missing`);
          }
          log.length = first - logStart;
          for (const e of record.entries) log.push(e);
          break;
        }
      }
      if (generation > base.generation) {
        throw new WalCorruptError(`${where} is of log generation ${generation}, but the state machine knows only ${base.generation}: the data directory is inconsistent`);
      }
      at = frame.end;
      crc = frame.crc;
    }
    if (at === 0 && !isLast) throw new WalCorruptError(`${where} is empty, and later segments exist`);
    summaries.push({ seq: segment.seq, maxIndex });
    if (isLast) tail = { seq: segment.seq, offset: at, crc };
  });

  if (generation !== base.generation) log = []; // the install's reset never became durable
  const entries = logStart === -1 ? [] : log.slice(Math.max(0, base.snapshotIndex + 1 - logStart));
  const first = entries[0];
  if (first !== undefined && first.index !== base.snapshotIndex + 1) {
    throw new WalCorruptError(`the WAL's log starts at ${first.index}, but the snapshot ends at ${base.snapshotIndex}: entries are missing`);
  }
  // The entries kept leave the segments' buffers (read whole, and large): their data are
  // copied, into shared blocks, since the log frees them oldest first (stdx/byte-arena.ts).
  // Entries at or below the snapshot, most of a segment after a compaction, are not copied
  // at all. (A buffer of its own for each entry read cost ≈ 2.6 µs apiece.)
  const arena = new ByteArena();
  const kept = entries.map((e): Entry => ({ ...e, data: arena.copy(e.data) }));
  return { entries: kept, hardState, generation, segments: summaries, tail, tornTail };
}
