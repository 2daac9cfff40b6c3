/**
 * A kv write in progress, shared by both storage implementations: the `KvWriter` a state
 * machine mutates inside `kv.write`. Changes are checked, visible to reads inside the write
 * at once and recorded for the caller to persist; an undo log lets a `mutate` that throws
 * leave no trace.
 *
 * Must never: persist anything or decide durability; the implementation queues
 * `changes` and `dedupChanges` once `mutate` returns.
 */

import { checkDedupRecord, checkKey, checkRecord } from './checks.js';
import type { DedupTable } from './dedup.js';
import type { DedupRecord, KvItem, KvRecord, KvWriter } from './types.js';

/**
 * The visible kv state a transaction mutates, as each implementation holds it: the memory
 * twin's sorted map, or an LMDB slot's overlay over its committed data.
 */
export interface UndoableKvState {
  get(key: string): KvRecord | undefined;
  range(prefix: string, after: string | undefined, limit: number, reverse?: boolean): KvItem[];
  keyCount(): number;
  readonly dedup: DedupTable;
  /** Sets `key` (null: deletes it) so reads see it at once; returns how to undo exactly that. */
  write(key: string, record: KvRecord | null): () => void;
}

/**
 * A kv write in progress, shared by both implementations: changes are visible to reads
 * inside the write at once and recorded (for the caller to persist), with an undo log so a
 * `mutate` that throws leaves no trace.
 */
export class UndoKvTx implements KvWriter {
  readonly changes = new Map<string, KvRecord | null>();
  readonly dedupChanges = new Map<string, DedupRecord | null>();
  private readonly undo: (() => void)[] = [];

  constructor(
    private readonly state: UndoableKvState,
    private readonly applied: number,
  ) {}

  get(key: string): KvRecord | undefined {
    return this.state.get(key);
  }
  range(prefix: string, after: string | undefined, limit: number, reverse = false): KvItem[] {
    return this.state.range(prefix, after, limit, reverse);
  }
  getDedup(clientId: string): DedupRecord | undefined {
    return this.state.dedup.get(clientId);
  }
  appliedIndex(): number {
    return this.applied;
  }
  keyCount(): number {
    return this.state.keyCount();
  }
  put(key: string, record: KvRecord): void {
    checkRecord(key, record);
    this.undo.push(this.state.write(key, record));
    this.changes.set(key, record);
  }
  delete(key: string): void {
    checkKey(key, 'key');
    this.undo.push(this.state.write(key, null));
    this.changes.set(key, null);
  }
  putDedup(record: DedupRecord): void {
    checkDedupRecord(record);
    this.rememberDedup(record.clientId);
    this.state.dedup.put(record);
    this.dedupChanges.set(record.clientId, record);
  }
  deleteDedup(clientId: string): void {
    checkKey(clientId, 'dedup client id');
    this.rememberDedup(clientId);
    this.state.dedup.delete(clientId);
    this.dedupChanges.set(clientId, null);
  }
  dedupCount(): number {
    return this.state.dedup.size;
  }
  oldestDedup(count: number): DedupRecord[] {
    return this.state.dedup.oldest(count);
  }

  rollback(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) (this.undo[i] as () => void)();
  }

  private rememberDedup(clientId: string): void {
    const dedup = this.state.dedup;
    const previous = dedup.get(clientId);
    this.undo.push(() => {
      if (previous === undefined) dedup.delete(clientId);
      else dedup.put(previous);
    });
  }
}
