/**
 * The canonical trace of a simulator run: every event processed becomes one line, folded
 * into a 64-bit FNV-1a hash (two 32-bit lanes) and kept in a bounded ring for the
 * readable tail printed on failure. Two runs of one seed must produce the same hash; a
 * different hash means something nondeterministic leaked in (a clock, Math.random, Map
 * order of something not inserted deterministically, a promise).
 *
 * Must never: keep an unbounded number of lines (only the tail, unless a full trace was
 * asked for with a limit), or depend on anything but the lines given.
 */

import { assert } from '../stdx/assert.js';

const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit over the UTF-16 code units of `s`, continuing from `h`. */
export function fnv1a32(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h >>> 0;
}

/** FNV-1a 32-bit over bytes. */
export function fnv1a32Bytes(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, FNV_PRIME) >>> 0;
  }
  return h >>> 0;
}

export interface TraceOptions {
  /** Lines kept for the failure report. */
  readonly tailLines: number;
  /** Keep every line (up to fullLinesMax) for --trace. */
  readonly full: boolean;
  readonly fullLinesMax: number;
}

export class Trace {
  private h1 = 0x811c9dc5;
  /** Second lane: a different offset basis, so the pair behaves like a 64-bit hash. */
  private h2 = 0x050c5d1f;
  private readonly ring: string[];
  private ringNext = 0;
  private ringCount = 0;
  private readonly fullLines: string[] = [];
  private readonly notes: string[] = [];
  lines = 0;

  constructor(private readonly options: TraceOptions) {
    assert(options.tailLines > 0, 'tailLines must be positive');
    this.ring = new Array<string>(options.tailLines);
  }

  add(line: string): void {
    this.lines++;
    let h1 = this.h1;
    let h2 = this.h2;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, FNV_PRIME) >>> 0;
      h2 = Math.imul(h2 ^ c, FNV_PRIME) >>> 0;
    }
    // A separator, so that line boundaries are part of the hash.
    this.h1 = Math.imul(h1 ^ 10, FNV_PRIME) >>> 0;
    this.h2 = Math.imul(h2 ^ 10 ^ 0x5a, FNV_PRIME) >>> 0;
    this.ring[this.ringNext] = line;
    this.ringNext = (this.ringNext + 1) % this.ring.length;
    if (this.ringCount < this.ring.length) this.ringCount++;
    if (this.options.full && this.fullLines.length < this.options.fullLinesMax) this.fullLines.push(line);
  }

  /** A notable line (fault, leader change, crash): hashed like any line, and kept in its own tail. */
  note(line: string): void {
    this.add(line);
    this.notes.push(line);
    if (this.notes.length > this.options.tailLines * 2) this.notes.splice(0, this.notes.length - this.options.tailLines);
  }

  /** The last notable lines (at most tailLines). */
  notesTail(): string[] {
    return this.notes.slice(-this.options.tailLines);
  }

  /** 16 hex digits. */
  hash(): string {
    return this.h1.toString(16).padStart(8, '0') + this.h2.toString(16).padStart(8, '0');
  }

  tail(): string[] {
    const out: string[] = [];
    const start = (this.ringNext - this.ringCount + this.ring.length) % this.ring.length;
    for (let i = 0; i < this.ringCount; i++) out.push(this.ring[(start + i) % this.ring.length] as string);
    return out;
  }

  full(): string[] {
    return [...this.fullLines];
  }
}
