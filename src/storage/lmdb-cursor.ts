/**
 * Reading the LMDB storage's kv data as the process sees it: a cursor that merges an LMDB
 * range (committed writes, in key-byte order) with the sorted overlay of writes queued but
 * not yet committed. The overlay wins on equal keys, and an overlay deletion hides the LMDB
 * key it shadows. Range reads and snapshot chunks both read through it.
 *
 * Must never: write, or keep an LMDB iterator open past `close()` (it pins a read
 * transaction's cursor).
 */

import type { Peekable } from './chunks.js';
import { decodeRecord } from './record-codec.js';
import type { KvItem, KvRecord } from './types.js';

/** A queued-but-uncommitted kv write (null: a delete) with its key's UTF-8 bytes, for merging. */
export interface OverlayItem {
  readonly key: string;
  readonly keyBytes: Buffer;
  readonly record: KvRecord | null;
}

/** What a cursor hands out for a committed (LMDB) record and for a queued (overlay) one. */
export interface CursorView<T> {
  fromBase(key: Buffer, value: Buffer): T;
  fromOverlay(item: OverlayItem, record: KvRecord): T;
}

/** Items decoded for reads. */
export const decodedItems: CursorView<KvItem> = {
  fromBase: (keyBytes, value) => {
    const key = keyBytes.toString('utf8');
    const record = decodeRecord(key, value);
    return { key, value: record.value, version: record.version };
  },
  fromOverlay: (item, record) => ({ key: item.key, value: record.value, version: record.version }),
};

/**
 * Merges an LMDB range (bytes order, or descending with `descending`) with overlay items
 * sorted the same way; the overlay wins on equal keys.
 */
export class MergedCursor<T = KvItem> implements Peekable<T> {
  private baseHead: { key: Buffer; value: Buffer } | undefined | null = null; // null: not fetched yet
  private current: T | undefined | null = null; // null: not computed yet
  private fromBase = false;
  /** Bytes of the last key consumed by `advance`, if any. */
  lastKey: Buffer | undefined;

  constructor(
    private readonly base: Iterator<{ key: Buffer; value: Buffer }> | null,
    private readonly overlay: readonly OverlayItem[],
    public overlayPosition: number,
    /** LMDB keys up to and including this one (descending: from it up) are skipped: an exclusive start. */
    private readonly baseAfter: Buffer | undefined = undefined,
    private readonly descending = false,
    private readonly view: CursorView<T> = decodedItems as unknown as CursorView<T>,
  ) {}

  peek(): T | undefined {
    if (this.current === null) this.current = this.compute();
    return this.current;
  }

  advance(): void {
    if (this.peek() === undefined) return;
    if (this.fromBase) {
      this.lastKey = (this.baseHead as { key: Buffer }).key;
      this.baseHead = null;
    } else {
      this.lastKey = (this.overlay[this.overlayPosition] as OverlayItem).keyBytes;
      this.overlayPosition++;
    }
    this.current = null;
  }

  close(): void {
    this.base?.return?.();
  }

  private head(): { key: Buffer; value: Buffer } | undefined {
    while (this.baseHead === null) {
      const next = this.base?.next();
      this.baseHead = next === undefined || next.done === true ? undefined : next.value;
      if (this.baseHead !== undefined && this.baseAfter !== undefined && this.order(this.baseHead.key, this.baseAfter) <= 0) this.baseHead = null;
    }
    return this.baseHead;
  }

  /** Negative when `a` comes first in this cursor's direction. */
  private order(a: Buffer, b: Buffer): number {
    return this.descending ? Buffer.compare(b, a) : Buffer.compare(a, b);
  }

  private compute(): T | undefined {
    for (;;) {
      const base = this.head();
      const pending = this.overlay[this.overlayPosition];
      if (pending === undefined) {
        if (base === undefined) return undefined;
        this.fromBase = true;
        return this.view.fromBase(base.key, base.value);
      }
      const order = base === undefined ? 1 : this.order(base.key, pending.keyBytes);
      if (order < 0 && base !== undefined) {
        this.fromBase = true;
        return this.view.fromBase(base.key, base.value);
      }
      if (order === 0) this.baseHead = null; // shadowed by the overlay
      if (pending.record === null) {
        this.overlayPosition++;
        continue;
      }
      this.fromBase = false;
      return this.view.fromOverlay(pending, pending.record);
    }
  }
}

/** First position in `items` whose key is greater than `key`. */
export function overlayUpperBound(items: readonly OverlayItem[], key: Buffer): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Buffer.compare((items[mid] as OverlayItem).keyBytes, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
