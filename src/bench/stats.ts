/**
 * Latency and throughput statistics of one benchmark point: an HDR histogram per operation
 * type (microsecond resolution, 3 significant digits, up to 10 minutes), error counts by
 * code, and the summary every report prints (throughput, mean, p50, p95, p99, p99.9, max).
 *
 * Must never: allocate per recorded value (recording runs on the benchmark's hot path), or
 * mix failed operations into the latency histogram (they are counted, by code, apart).
 */

import * as hdr from 'hdr-histogram-js';

/** Operation types a workload issues. */
export type OpKind = 'read' | 'write';

const latencyUsMax = 600_000_000;

export function newHistogram(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: latencyUsMax, numberOfSignificantValueDigits: 3, autoResize: false });
}

/** Running figures of one operation type. */
export class OpRecorder {
  readonly histogram = newHistogram();
  errors = 0;
  /** Reads that found no value (an answer, not an error). */
  misses = 0;
  readonly errorCodes = new Map<string, number>();

  recordMs(latencyMs: number): void {
    const us = Math.round(latencyMs * 1000);
    this.histogram.recordValue(us < 1 ? 1 : us > latencyUsMax ? latencyUsMax : us);
  }

  recordError(code: string): void {
    this.errors++;
    this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
  }

  reset(): void {
    this.histogram.reset();
    this.errors = 0;
    this.misses = 0;
    this.errorCodes.clear();
  }
}

/** The summary of one operation type (or `all`) over a measured interval. */
export interface OpSummary {
  readonly op: OpKind | 'all';
  /** Successful operations. */
  readonly count: number;
  readonly errors: number;
  readonly misses: number;
  readonly opsPerSec: number;
  /** Values moved per second: opsPerSec × the value's bytes, in MB (10^6 bytes). */
  readonly mbPerSec: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly errorCodes: Readonly<Record<string, number>>;
  /** The whole HDR histogram (microseconds), compressed and base64-encoded: the raw figures. */
  readonly histogram: string;
}

export function summarize(op: OpKind | 'all', recorders: readonly OpRecorder[], elapsedMs: number, valueBytes = 0): OpSummary {
  let h: hdr.Histogram;
  if (recorders.length === 1) h = (recorders[0] as OpRecorder).histogram;
  else {
    h = newHistogram();
    for (const r of recorders) h.add(r.histogram);
  }
  const codes: Record<string, number> = {};
  let errors = 0;
  let misses = 0;
  for (const r of recorders) {
    errors += r.errors;
    misses += r.misses;
    for (const [code, n] of r.errorCodes) codes[code] = (codes[code] ?? 0) + n;
  }
  const count = h.totalCount;
  // A percentile is its bucket's highest equivalent value, which can exceed the exact
  // maximum recorded: clamp so that p50 <= … <= p99.9 <= max always holds.
  const maxUs = h.maxValue;
  const ms = (us: number): number => Math.round(Math.min(us, maxUs)) / 1000;
  const opsPerSec = elapsedMs > 0 ? (count * 1000) / elapsedMs : 0;
  return {
    op,
    count,
    errors,
    misses,
    opsPerSec,
    mbPerSec: (opsPerSec * valueBytes) / 1e6,
    meanMs: count === 0 ? 0 : Math.round(h.mean) / 1000,
    p50Ms: count === 0 ? 0 : ms(h.getValueAtPercentile(50)),
    p95Ms: count === 0 ? 0 : ms(h.getValueAtPercentile(95)),
    p99Ms: count === 0 ? 0 : ms(h.getValueAtPercentile(99)),
    p999Ms: count === 0 ? 0 : ms(h.getValueAtPercentile(99.9)),
    maxMs: count === 0 ? 0 : ms(maxUs),
    errorCodes: codes,
    histogram: hdr.encodeIntoCompressedBase64(h),
  };
}

/** Summary figures of plain latency samples (the quorum experiment's few hundred writes). */
export function summarizeSamplesMs(samplesMs: readonly number[]): { count: number; meanMs: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number } {
  const r = new OpRecorder();
  for (const s of samplesMs) r.recordMs(s);
  const s = summarize('write', [r], 1);
  return { count: s.count, meanMs: s.meanMs, p50Ms: s.p50Ms, p95Ms: s.p95Ms, p99Ms: s.p99Ms, maxMs: s.maxMs };
}
