import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as hdr from 'hdr-histogram-js';
import { OpRecorder, summarize, summarizeSamplesMs } from './stats.js';

test('a summary gives throughput over the measured time and percentiles in order, never above the maximum', () => {
  const r = new OpRecorder();
  for (let i = 1; i <= 1000; i++) r.recordMs(i / 10); // 0.1 … 100 ms
  r.recordError('timeout');
  r.recordError('timeout');
  const s = summarize('write', [r], 2000);
  assert.equal(s.count, 1000);
  assert.equal(s.errors, 2);
  assert.deepEqual(s.errorCodes, { timeout: 2 });
  assert.equal(s.opsPerSec, 500);
  assert.ok(Math.abs(s.p50Ms - 50) < 0.1, `p50 ${s.p50Ms}`);
  assert.ok(Math.abs(s.p99Ms - 99) < 0.1, `p99 ${s.p99Ms}`);
  assert.ok(s.p50Ms <= s.p95Ms && s.p95Ms <= s.p99Ms && s.p99Ms <= s.p999Ms && s.p999Ms <= s.maxMs);
  assert.ok(Math.abs(s.meanMs - 50.05) < 0.1, `mean ${s.meanMs}`);
  const decoded = hdr.decodeFromCompressedBase64(s.histogram);
  assert.equal(decoded.totalCount, 1000, 'the raw histogram round-trips');
});

test('summaries of several recorders merge their histograms and errors', () => {
  const a = new OpRecorder();
  const b = new OpRecorder();
  a.recordMs(1);
  b.recordMs(3);
  b.recordError('busy');
  const s = summarize('all', [a, b], 1000);
  assert.equal(s.count, 2);
  assert.equal(s.errors, 1);
  assert.ok(s.maxMs >= 2.99 && s.maxMs <= 3.01);
  assert.equal(summarizeSamplesMs([]).count, 0);
  assert.equal(summarizeSamplesMs([5, 5, 5]).p50Ms, 5);
});
