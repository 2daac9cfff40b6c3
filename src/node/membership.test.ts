import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyMembershipChange, majoritiesOverlap } from '../core/membership.js';
import type { ClusterConfig } from '../core/types.js';
import { addChange, changeProblem } from './membership.js';

const three: ClusterConfig = { members: ['n1', 'n2', 'n3'], writeQuorum: 'majority', topology: 'star' };

test('a pinned leader refuses its own removal with pinned_leader; unknown and existing members get not_found and member_exists', () => {
  assert.equal(changeProblem(three, { kind: 'remove', id: 'n2' }, 'n2')?.code, 'pinned_leader');
  assert.equal(changeProblem(three, { kind: 'remove', id: 'n3' }, 'n2'), null);
  assert.equal(changeProblem(three, { kind: 'remove', id: 'n9' }, null)?.code, 'not_found');
  assert.equal(changeProblem(three, { kind: 'promote', id: 'n9' }, null)?.code, 'not_found');
  assert.equal(changeProblem(three, { kind: 'addLearner', id: 'n1' }, null)?.code, 'member_exists');
});

test('adding a voter at once needs force; a learner is the default', () => {
  assert.throws(() => addChange({ id: 'n4', peer: 'h:1', learner: false }, 'm4'), /unsafe/);
  assert.equal(addChange({ id: 'n4', peer: 'h:1', learner: false, force: true }, 'm4').kind, 'addVoter');
  assert.equal(addChange({ id: 'n4', peer: 'h:1' }, 'm4').kind, 'addLearner');
});

test('single-server changes keep old and new majorities overlapping; two voters at once would not', () => {
  const four = applyMembershipChange(three, { kind: 'addVoter', id: 'n4' }) as ClusterConfig;
  assert.ok(majoritiesOverlap(three.members, four.members));
  const two = applyMembershipChange(three, { kind: 'remove', id: 'n3' }) as ClusterConfig;
  assert.ok(majoritiesOverlap(three.members, two.members));
  assert.equal(majoritiesOverlap(['n1', 'n2', 'n3'], ['n1', 'n4', 'n5']), false, 'replacing two voters at once can form disjoint majorities');
  assert.match(applyMembershipChange({ ...three, members: ['n1'] }, { kind: 'remove', id: 'n1' }) as string, /only voter/);
});

test('under all, a new voter joins the in-sync set only once caught up, unless the set would fall below a majority', () => {
  const all: ClusterConfig = { ...three, writeQuorum: 'all' };
  const four = applyMembershipChange(all, { kind: 'addVoter', id: 'n4' }) as ClusterConfig;
  assert.deepEqual(four.inSync, ['n1', 'n2', 'n3']);
  const narrowed: ClusterConfig = { ...all, members: ['n1', 'n2', 'n3', 'n4'], inSync: ['n1', 'n2', 'n3'] };
  const five = applyMembershipChange(narrowed, { kind: 'addVoter', id: 'n5' }) as ClusterConfig;
  assert.deepEqual(five.inSync, ['n1', 'n2', 'n3'], '3 of 5 is still a majority');
  const six = applyMembershipChange({ ...five, members: ['n1', 'n2', 'n3', 'n4', 'n5'] }, { kind: 'addVoter', id: 'n6' }) as ClusterConfig;
  assert.deepEqual(six.inSync, ['n1', 'n2', 'n3', 'n6'], '3 of 6 is not a majority: the new voter is waited for');
});
