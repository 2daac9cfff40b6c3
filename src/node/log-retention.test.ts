import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logEntriesToKeep } from './log-retention.js';

test('a log within both bounds is not compacted; past the entry bound the newer half stays', () => {
  assert.equal(logEntriesToKeep(1_000, 100_000, 1_000, 64 << 20), null);
  assert.equal(logEntriesToKeep(1_001, 100_000, 1_000, 64 << 20), 500);
});

test('a log of large entries past the byte bound keeps only what fits in half of it', () => {
  // 100 entries of 1 MiB against 64 MiB: keep 32 of them, though the count bound would keep 10,000.
  assert.equal(logEntriesToKeep(100, 100 << 20, 20_000, 64 << 20), 32);
  // Both bounds passed: the smaller keep wins.
  assert.equal(logEntriesToKeep(30_000, 30_000 * 8192, 20_000, 64 << 20), 4_096); // 32 MiB of 8 KiB entries
});
