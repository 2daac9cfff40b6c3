/**
 * Which versions changed each key, within the history kept (history.ts): the index a read at
 * a past version needs ("the first change of k after v"). Held in memory, as etcd's
 * keyIndex is, and rebuilt from the history records when the state beneath it was replaced
 * (a snapshot install) or at start: it is derived state, never written, so keeping it costs
 * the write path no disk page.
 *
 * Must never: answer from versions that are not in the history records, or go stale
 * silently (`sync` rebuilds whenever the backend's applied index is not the one it saw).
 */

import type { KvBackend, KvReader } from '../storage/types.js';

/** Reads the history records from a version, at most `versionsMax`: which keys each version changed (history.ts readStoredChanges). */
export type HistoryReader = (reader: KvReader, fromVersion: number, versionsMax: number) => readonly { readonly version: number; readonly changes: readonly { readonly key: string }[] }[];

export class KeyIndex {
  private readonly byKey = new Map<string, number[]>();
  /** Keys in UTF-8 byte order, built when a listing needs them and dropped on any change of the key set. */
  private sorted: string[] | null = null;
  /** The applied index this index matches (-1: rebuild before use). */
  private at = -1;
  /** The backend's install count when it was built (KvBackend.installs). */
  private installs = -1;

  constructor(private readonly readHistory: HistoryReader) {}

  /**
   * Rebuilds from the history records unless the index already matches `backend`: its applied
   * index, and its install count. An install may land on the applied index the node had, with
   * other history records: two nodes at one applied index hold the same keys but not always
   * the same records (a compaction keeps whole the record of an apply batch that straddles its
   * target, and batches differ from node to node).
   */
  sync(backend: KvBackend): void {
    const applied = backend.appliedIndex();
    const installs = backend.installs();
    if (this.at === applied && this.installs === installs) return;
    this.byKey.clear();
    this.sorted = null;
    for (let from = 1; ; ) {
      const page = this.readHistory(backend, from, 1024);
      for (const r of page) for (const c of r.changes) this.add(c.key, r.version);
      const last = page[page.length - 1];
      if (last === undefined || page.length < 1024) break;
      from = last.version + 1;
    }
    this.at = applied;
    this.installs = installs;
  }

  /**
   * An apply batch took the state from `fromApplied` to `toApplied`, recording `added`
   * changes and compacting `removed` ones. When the index did not match `fromApplied`, it
   * stays stale and the next `sync` rebuilds it.
   */
  applied(fromApplied: number, toApplied: number, added: readonly (readonly [string, number])[], removed: readonly (readonly [string, number])[]): void {
    if (this.at !== fromApplied) {
      this.at = -1;
      return;
    }
    for (const [key, version] of added) this.add(key, version);
    for (const [key, version] of removed) this.remove(key, version);
    this.at = toApplied;
  }

  /** The first version after `version` that changed `key`, or undefined. */
  nextChange(key: string, version: number): number | undefined {
    const versions = this.byKey.get(key);
    if (versions === undefined) return undefined;
    let lo = 0;
    let hi = versions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((versions[mid] as number) <= version) lo = mid + 1;
      else hi = mid;
    }
    return versions[lo];
  }

  /** The first key starting with `prefix` strictly after `after`, in UTF-8 byte order, that the history saw change. */
  keyAfter(prefix: string, after: string | undefined): string | undefined {
    const sorted = (this.sorted ??= [...this.byKey.keys()].sort(utf8Compare));
    const from = after === undefined || utf8Compare(after, prefix) < 0 ? prefix : after;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = utf8Compare(sorted[mid] as string, from);
      if (c < 0 || (c === 0 && from === after)) lo = mid + 1;
      else hi = mid;
    }
    const key = sorted[lo];
    return key !== undefined && key.startsWith(prefix) ? key : undefined;
  }

  /** The last key starting with `prefix` strictly before `before` (none: from the end), in UTF-8 byte order, that the history saw change. */
  keyBefore(prefix: string, before: string | undefined): string | undefined {
    const sorted = (this.sorted ??= [...this.byKey.keys()].sort(utf8Compare));
    // The first position at or past `before`, and past every key starting with `prefix`.
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const k = sorted[mid] as string;
      if (k.startsWith(prefix) ? before === undefined || utf8Compare(k, before) < 0 : utf8Compare(k, prefix) < 0) lo = mid + 1;
      else hi = mid;
    }
    const key = sorted[lo - 1];
    return key !== undefined && key.startsWith(prefix) ? key : undefined;
  }

  private add(key: string, version: number): void {
    const versions = this.byKey.get(key);
    if (versions === undefined) {
      this.byKey.set(key, [version]);
      this.sorted = null;
    } else if (versions[versions.length - 1] !== version) {
      versions.push(version);
    }
  }

  private remove(key: string, version: number): void {
    const versions = this.byKey.get(key);
    if (versions === undefined) return;
    const i = versions.indexOf(version);
    if (i >= 0) versions.splice(i, 1);
    if (versions.length === 0) {
      this.byKey.delete(key);
      this.sorted = null;
    }
  }
}

export function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
