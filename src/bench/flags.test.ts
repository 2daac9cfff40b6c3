import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlagError, legacyPlainArgs, parseBytes, parseCountList, parseDurationMs, parseFlags, pathChoice } from './flags.js';
import type { PathChoice } from './flags.js';

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

test('--plain leader|follower|any, the older spelling, reads as --plain --to …; other arguments pass unchanged', () => {
  assert.deepEqual(legacyPlainArgs(['--plain', 'follower', '--workload', 'write']), ['--plain', '--to', 'follower', '--workload', 'write']);
  assert.deepEqual(legacyPlainArgs(['--plain=any']), ['--plain', '--to', 'any']);
  assert.deepEqual(legacyPlainArgs(['--plain', '--to', 'leader']), ['--plain', '--to', 'leader']);
  assert.deepEqual(legacyPlainArgs(['--workload', 'fill', '--plain']), ['--workload', 'fill', '--plain']);
});

test('--plain, --to, --transport and --reads-from: what each combination means, and the ones refused', () => {
  const defs = {
    plain: { kind: 'bool', help: '' }, to: { kind: 'value', help: '' }, transport: { kind: 'value', help: '' }, 'reads-from': { kind: 'value', help: '' },
  } as const;
  const choose = (...argv: string[]): PathChoice => pathChoice(parseFlags(legacyPlainArgs(argv), defs).values);
  assert.deepEqual(choose(), { plain: false, to: null, transport: 'http', linearizableReadsFrom: 'leader' });
  assert.deepEqual(choose('--plain', 'follower'), { plain: true, to: 'follower', transport: 'http', linearizableReadsFrom: 'leader' });
  assert.deepEqual(choose('--plain', '--to', 'follower'), choose('--plain', 'follower'));
  assert.deepEqual(choose('--plain'), { plain: true, to: null, transport: 'http', linearizableReadsFrom: 'leader' });
  // The client library finds the leader; --to any spreads its linearizable reads.
  assert.deepEqual(choose('--to', 'any', '--transport', 'grpc'), { plain: false, to: 'any', transport: 'grpc', linearizableReadsFrom: 'any' });
  assert.throws(() => choose('--to', 'follower'), /--to follower needs --plain/);
  assert.throws(() => choose('--plain', '--transport', 'grpc'), /--plain sends plain HTTP/);
  assert.throws(() => choose('--to', 'any', '--reads-from', 'leader'), /disagree/);
  assert.throws(() => choose('--plain', 'any', '--reads-from', 'any'), /--reads-from applies to the client library/);
  assert.throws(() => choose('--to', 'somewhere'), /--to: "somewhere" is not one of leader, follower, any/);
  assert.throws(() => choose('--to', 'leader,any'), /--to takes one of/);
});
