import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HistoryRetention, type HistoryState } from './history-retention.js';
import type { VersionChanges } from '../kv/types.js';

/** A history whose every version changed a key, compacted below `compactedBelow`. */
function history(appliedIndex: number, compactedBelow: number, recorded = (v: number): boolean => v >= compactedBelow): HistoryState {
  return {
    appliedIndex: () => appliedIndex,
    compactedBelow: () => compactedBelow,
    changes: (from: number, versionsMax: number): VersionChanges[] => {
      const out: VersionChanges[] = [];
      for (let v = from; v <= appliedIndex && out.length < versionsMax; v++) if (recorded(v)) out.push({ version: v, changes: [] });
      return out;
    },
  };
}

test('by versions alone: the history is compacted once it is 10% beyond the versions kept, down to exactly that many', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 100 });
  assert.equal(r.compactBelow(history(100, 1), 0), null, 'all 100 versions are within the limit');
  assert.equal(r.compactBelow(history(109, 1), 0), null, 'only 9% over');
  assert.equal(r.compactBelow(history(110, 1), 0), 11, 'versions 11..110 stay');
  assert.equal(r.compactBelow(history(115, 11), 0), null);
});

test('a compaction that fired goes in steps, one entry after the other, until it reaches the limit, and then stops', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 100 }, undefined, 4);
  // 10% over: the target is 11 (versions 11..110 stay), reached in steps of at most 4.
  assert.equal(r.compactBelow(history(110, 1), 0), 5, 'the first step');
  // Each step is itself a version (the compact entry): the target moves with the applied index.
  assert.equal(r.compactBelow(history(111, 5), 1), 9, 'under way: the next step, though no longer 10% over');
  assert.equal(r.compactBelow(history(112, 9), 2), 13, 'the last step reaches the target of the moment (13)');
  assert.equal(r.compactBelow(history(113, 13), 3), null, 'reached: one version over is not 10% over, so no endless trail of compact entries');
  assert.equal(r.compactBelow(history(121, 13), 4), null, '9 versions over');
  assert.equal(r.compactBelow(history(122, 13), 5), 17, '10% over again: a new compaction, again in steps');
});

test('when writes outrun the steps, a step takes half of what lies beyond the slack, so the history stops growing', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 100 }, undefined, 4);
  // 40 versions over the limit, 30 beyond the slack of 10: this step takes 15 of them.
  assert.equal(r.compactBelow(history(140, 1), 0), 16);
  assert.equal(r.compactBelow(history(141, 16), 1), 24, 'the target is 42: 26 over, 16 beyond the slack, so a step of 8');
  assert.equal(r.compactBelow(history(142, 24), 2), 29, 'the target is 43: 19 over, 9 beyond the slack, so a step of 5');
  assert.equal(r.compactBelow(history(143, 29), 3), 33, 'the target is 44: 15 over, 5 beyond the slack; half of that is less than a step of 4');
});

test('a step that never applied (a lost entry, a new leader) is simply proposed again from where the history stands', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 100 }, undefined, 4);
  assert.equal(r.compactBelow(history(110, 1), 0), 5);
  assert.equal(r.compactBelow(history(111, 1), 1), 5, 'nothing was compacted: the same step');
});

test('by time: versions applied longer ago than the window are compacted, once the oldest kept change is 10% older than it', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 1_000_000, historyRetentionTicks: 100 });
  // One write a tick from tick 0 (version 1) to tick 199 (version 200).
  for (let t = 0; t < 200; t++) r.noteApplied(t + 1, t);
  const state = history(200, 1);
  assert.equal(r.compactBelow(state, 109), null, 'version 1 is 109 ticks old: within the slack');
  // At tick 110, version 1 is 110 ticks old: everything applied by tick 10 (versions 1..11) goes.
  assert.equal(r.compactBelow(state, 110), 12);
  assert.equal(r.compactBelow(history(200, 12), 115), null, 'the oldest kept (12, applied at tick 11) is only 104 ticks old');
  assert.equal(r.compactBelow(history(200, 12), 121), 23, 'at tick 121 the oldest kept is 110 ticks old: versions applied by tick 21 go');
});

test('either limit is enough, and when both fire the further target wins', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 50, historyRetentionTicks: 100 });
  for (let t = 0; t < 200; t++) r.noteApplied(t + 1, t);
  assert.equal(r.compactBelow(history(200, 1), 110), 151, 'the version limit reaches further than the time one (12)');
  const slow = new HistoryRetention({ historyRetentionVersions: 1000, historyRetentionTicks: 100 });
  for (let t = 0; t < 200; t++) slow.noteApplied(Math.floor(t / 10) + 1, t);
  assert.equal(slow.compactBelow(history(20, 1), 120), 4, 'twenty versions, far under the version limit, but 1..3 were applied 100 ticks ago or more');
});

test('an idle history stops being compacted once no recorded change is old enough', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 1000, historyRetentionTicks: 100 });
  r.noteApplied(10, 0);
  // Versions 11..13 were compact entries (no client change, so no record): nothing to remove.
  r.noteApplied(13, 50);
  const onlyOld = (v: number): boolean => v < 10;
  assert.equal(r.compactBelow(history(13, 11, onlyOld), 500), null, 'versions 11..13 change no key: a compact entry would only add a version');
  assert.equal(r.compactBelow(history(13, 5, onlyOld), 500), 14, 'records 5..9 are old: everything applied by tick 400 goes');
});

test('a node that knows no apply times (a restart, a new leader) keeps everything until its own samples age', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 1000, historyRetentionTicks: 100 });
  // Restarted at tick 5000 with 500 versions applied long ago: it dates them all at 5000.
  r.noteApplied(500, 5000);
  assert.equal(r.compactBelow(history(500, 1), 5100), null);
  assert.equal(r.compactBelow(history(500, 1), 5110), 501);
});

test('the samples stay bounded however long the node runs, and still reach a window back', () => {
  // Steps as large as the whole target: this is about where the target lies.
  const r = new HistoryRetention({ historyRetentionVersions: 10_000_000, historyRetentionTicks: 1000 }, 8, Number.MAX_SAFE_INTEGER);
  // Spaced 250 ticks apart (two windows over 8 samples): one write a tick for 100,000 ticks.
  for (let t = 0; t < 100_000; t++) r.noteApplied(t + 1, t);
  const below = r.compactBelow(history(100_000, 1), 100_000);
  assert.ok(below !== null && below <= 99_002 && below > 98_000, `compacts below ${String(below)}: version 99,001 was applied at tick 99,000; a sample's spacing is 250 ticks`);
});

test('no time limit: samples are not even taken', () => {
  const r = new HistoryRetention({ historyRetentionVersions: 100, historyRetentionTicks: 0 });
  for (let t = 0; t < 10_000; t++) r.noteApplied(t + 1, t);
  assert.equal(r.compactBelow(history(50, 1), 10_000), null);
});
