import { checkPositiveSafeInt } from './safe-int.js';

/**
 * A FIFO with a hard capacity. `push` reports a full queue instead of growing: the caller
 * turns that into back-pressure or a typed error. Amortised O(1) shift via a head offset.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private head = 0;

  constructor(readonly capacityMax: number) {
    checkPositiveSafeInt(capacityMax, 'capacityMax');
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get isFull(): boolean {
    return this.length >= this.capacityMax;
  }

  /** Returns false (and stores nothing) when the queue is full. */
  push(item: T): boolean {
    if (this.isFull) return false;
    this.items.push(item);
    return true;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined as T;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
}
