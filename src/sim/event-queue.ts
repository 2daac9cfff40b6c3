/**
 * The simulator's agenda: a binary min-heap of events ordered by (virtual time, sequence).
 * The sequence number is assigned at push time, so two events due at the same instant run
 * in the order they were scheduled; that tie-break is what makes a run a pure function of
 * its seed.
 *
 * Owns only ordering. It must never look at what an event does, read a clock, or grow past
 * `eventsMax` (a run that schedules that many pending events is a runaway and throws).
 */

import { assert } from '../stdx/assert.js';

export interface Scheduled {
  /** Virtual time in microseconds at which the event is due. */
  readonly atUs: number;
  /** Tie-break: push order. */
  readonly seq: number;
}

export class EventQueue<E extends Scheduled> {
  private readonly heap: E[] = [];
  private nextSeqValue = 0;

  constructor(readonly eventsMax: number) {
    assert(Number.isSafeInteger(eventsMax) && eventsMax > 0, () => `eventsMax must be a positive integer, got ${eventsMax}`);
  }

  get size(): number {
    return this.heap.length;
  }

  /** The sequence number the next pushed event must carry. */
  nextSeq(): number {
    return this.nextSeqValue++;
  }

  push(event: E): void {
    assert(this.heap.length < this.eventsMax, () => `event queue holds eventsMax=${this.eventsMax} events: runaway simulation`);
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as E;
      if (!before(event, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  peek(): E | undefined {
    return this.heap[0];
  }

  pop(): E | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as E;
    if (heap.length === 0) return top;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let child = l;
      if (r < n && before(heap[r] as E, heap[l] as E)) child = r;
      const c = heap[child] as E;
      if (!before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.atUs < b.atUs || (a.atUs === b.atUs && a.seq < b.seq);
}
