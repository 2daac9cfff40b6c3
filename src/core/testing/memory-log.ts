/**
 * A minimal in-memory stable log for the core's own tests (the full storage twin lives
 * in storage/memory.ts, which core may not import). Persisting is immediate.
 */

import { assert } from '../../stdx/assert.js';
import type { ClusterConfig, Entry, LogReader, SnapshotMeta } from '../types.js';

export class MemoryLog implements LogReader {
  private entriesList: Entry[] = [];
  private snap: SnapshotMeta;

  constructor(config: ClusterConfig) {
    this.snap = { index: 0, term: 0, config };
  }

  firstIndex(): number {
    return this.snap.index + 1;
  }

  lastIndex(): number {
    return this.snap.index + this.entriesList.length;
  }

  term(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    return this.entriesList[index - this.snap.index - 1]?.term;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    assert(lo >= this.firstIndex() && hi <= this.lastIndex() + 1, () => `entries [${lo},${hi}) out of range`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entriesList[i - this.snap.index - 1] as Entry;
      bytes += e.data.byteLength + 24;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  snapshotMeta(): SnapshotMeta {
    return this.snap;
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index <= this.lastIndex() + 1, () => `gap: appending ${first.index} after ${this.lastIndex()}`);
    this.entriesList = this.entriesList.slice(0, first.index - this.snap.index - 1).concat(entries);
  }

  installSnapshot(meta: SnapshotMeta): void {
    this.snap = meta;
    this.entriesList = [];
  }

  compact(index: number, config: ClusterConfig): void {
    const term = this.term(index);
    assert(term !== undefined, () => `cannot compact to ${index}`);
    this.entriesList = this.entriesList.slice(index - this.snap.index);
    this.snap = { index, term, config };
  }
}
