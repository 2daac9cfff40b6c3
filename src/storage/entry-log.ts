/**
 * The log after the snapshot as both storages hold it in memory (the LMDB storage's WAL is
 * only written, never read, until the next open; the twin has nothing else), with the
 * running size of its entries so that compaction can bound the memory it takes.
 *
 * Must never: hold an entry at or below the snapshot index, or a gap: entries[i] is always
 * entry snapshotIndex + 1 + i.
 */

import { entryBytes } from '../core/log.js';
import type { Entry } from '../core/types.js';
import { checkEntriesRange } from './checks.js';

export class EntryLog {
  private entries: Entry[];
  private bytesValue = 0;

  constructor(
    private snapshotIndex: number,
    entries: readonly Entry[],
  ) {
    this.entries = [...entries];
    for (const e of this.entries) this.bytesValue += entryBytes(e);
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  /** Sum of entryBytes over the entries held (what core/log.ts counts against its byte limits). */
  get bytes(): number {
    return this.bytesValue;
  }

  /** The entries held, oldest first (a view: do not keep it across writes). */
  get all(): readonly Entry[] {
    return this.entries;
  }

  /** The term of entry `index`, which must be held (snapshotIndex < index <= lastIndex). */
  termOf(index: number): number {
    return (this.entries[index - this.snapshotIndex - 1] as Entry).term;
  }

  /** Truncates at the batch's first index (a conflict's overwrite) and appends the batch. */
  append(batch: readonly Entry[]): void {
    const first = batch[0];
    if (first === undefined) return;
    const keep = first.index - this.snapshotIndex - 1;
    for (let i = keep; i < this.entries.length; i++) this.bytesValue -= entryBytes(this.entries[i] as Entry);
    this.entries.length = keep;
    for (const entry of batch) {
      this.entries.push(entry);
      this.bytesValue += entryBytes(entry);
    }
  }

  /** Drops entries up to and including `index` (a compaction): the log now starts after it. */
  compactThrough(index: number): void {
    const drop = index - this.snapshotIndex;
    for (let i = 0; i < drop; i++) this.bytesValue -= entryBytes(this.entries[i] as Entry);
    this.entries.splice(0, drop);
    this.snapshotIndex = index;
  }

  /** Drops every entry: the log restarts after `snapshotIndex` (a snapshot install). */
  reset(snapshotIndex: number): void {
    this.entries = [];
    this.bytesValue = 0;
    this.snapshotIndex = snapshotIndex;
  }

  /** Entries lo..hi-1, stopping before bytesMax is passed (at least one entry). */
  read(lo: number, hi: number, bytesMax: number): Entry[] {
    checkEntriesRange(lo, hi, this.snapshotIndex + 1, this.lastIndex);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.entries[index - this.snapshotIndex - 1] as Entry;
      const size = entryBytes(entry);
      if (out.length > 0 && bytes + size > bytesMax) break;
      out.push(entry);
      bytes += size;
    }
    return out;
  }
}
