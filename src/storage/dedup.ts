/**
 * The client dedup table as both storage implementations hold it in memory: client id ->
 * its latest record, listable oldest index first so the state machine can expire the
 * oldest sessions.
 *
 * Must never: persist anything (each implementation writes its own changes) or grow past
 * what callers put in; its size is bounded by the state machine's session limit.
 */

import { assert } from '../stdx/assert.js';
import type { DedupRecord } from './types.js';

/**
 * The client dedup table, held in memory by both implementations (its size is bounded by
 * the state machine's session limit). Map insertion order is kept equal to `index` order,
 * so `oldest(count)` is O(count); an out-of-order put marks it for one lazy re-sort.
 */
export class DedupTable {
  private byClient = new Map<string, DedupRecord>();
  private maxIndex = 0;
  private ordered = true;

  static from(records: Iterable<DedupRecord>): DedupTable {
    const table = new DedupTable();
    for (const record of records) table.put(record);
    return table;
  }

  get size(): number {
    return this.byClient.size;
  }

  get(clientId: string): DedupRecord | undefined {
    return this.byClient.get(clientId);
  }

  put(record: DedupRecord): void {
    this.byClient.delete(record.clientId);
    this.byClient.set(record.clientId, record);
    if (record.index < this.maxIndex) this.ordered = false;
    else this.maxIndex = record.index;
  }

  delete(clientId: string): boolean {
    return this.byClient.delete(clientId);
  }

  oldest(count: number): DedupRecord[] {
    assert(Number.isSafeInteger(count) && count >= 0, () => `oldestDedup count must be a non-negative integer, got ${count}`);
    this.sortIfNeeded();
    const out: DedupRecord[] = [];
    if (count === 0) return out;
    for (const record of this.byClient.values()) {
      out.push(record);
      if (out.length >= count) break;
    }
    return out;
  }

  /** Every record, oldest index first. */
  all(): DedupRecord[] {
    this.sortIfNeeded();
    return [...this.byClient.values()];
  }

  clone(): DedupTable {
    return DedupTable.from(this.all());
  }

  private sortIfNeeded(): void {
    if (this.ordered) return;
    // Array.prototype.sort is stable: equal indexes keep their insertion order.
    const sorted = [...this.byClient.values()].sort((a, b) => a.index - b.index);
    this.byClient = new Map(sorted.map((r) => [r.clientId, r]));
    this.ordered = true;
  }
}
