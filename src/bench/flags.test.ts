import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlagError, parseBytes, parseCountList, parseDurationMs, parseFlags } from './flags.js';

test('durations, sizes and lists read the way the help text writes them', () => {
  assert.equal(parseDurationMs('2s', 'd'), 2000);
  assert.equal(parseDurationMs('500ms', 'd'), 500);
  assert.equal(parseDurationMs('1m', 'd'), 60_000);
  assert.equal(parseDurationMs('1.5', 'd'), 1500);
  assert.throws(() => parseDurationMs('soon', 'duration'), /--duration must be a duration/);
  assert.equal(parseBytes('4k', 'b'), 4096);
  assert.deepEqual(parseCountList('5,10,20', 'c'), [5, 10, 20]);
  assert.deepEqual(parseCountList('1..3,8', 'c'), [1, 2, 3, 8]);
  assert.throws(() => parseCountList('3..1', 'c'), FlagError);
});

test('unknown flags are refused unless they pass through, with their values', () => {
  const defs = { workload: { kind: 'value', help: '' }, 'no-preload': { kind: 'bool', help: '' } } as const;
  assert.throws(() => parseFlags(['--wrokload', 'x'], defs), /unknown option '--wrokload'/);
  assert.throws(() => parseFlags(['--work', 'x'], defs), /unknown option '--work'/);
  const pass = { 'write-quorum': { kind: 'value', help: '' }, faults: { kind: 'bool', help: '' } } as const;
  const p = parseFlags(['--workload=mixed', '--write-quorum', '2', '--faults', '--no-preload'], defs, pass);
  assert.equal(p.values.get('workload'), 'mixed');
  assert.equal(p.values.get('no-preload'), 'true');
  assert.deepEqual(p.rest, ['--write-quorum', '2', '--faults']);
});
