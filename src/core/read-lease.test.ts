/**
 * Read leases (read-only.ts, CoreOptions.readLeaseTicks): when a leader may serve a
 * linearizable read without a round of its own, and what ends that right. Driven through
 * the interaction harness, whose `clock N` moves real time while no node ticks (a stall).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog } from './testing/memory-log.js';
import { Interaction } from './testing/interaction.js';
import { newUnitCore } from './testing/unit-core.js';
import type { ClusterConfig } from './types.js';

/** Three nodes with a 6-tick lease (election timeout 10), after an election and a few heartbeats. */
function leased(): Interaction {
  const it = new Interaction();
  it.run('add-nodes 3 readlease=6\nrun 40');
  assert.equal(it.core('n1').status().role, 'leader', 'n1 won the election in this seed');
  return it;
}

const heartbeats = /heartbeat/;

test('with a read lease the leader serves a read at once, without a heartbeat round', () => {
  const it = leased();
  const out = it.run('read n1\nstabilize');
  assert.match(out, /n1 read#\d+ ready at index 1 by lease\n/);
  assert.doesNotMatch(out, heartbeats);
  assert.equal(it.core('n1').status().readsByLease, 1);
});

test("a follower's read point comes from the leader's lease at once, without a round", () => {
  const it = leased();
  const out = it.run('read n2 3\nstabilize');
  assert.match(out, /n2->n1 readIndex t=1 reads=1,2,3\nn1->n2 readIndexResp t=1 reads=1,2,3 index=1\n/);
  assert.doesNotMatch(out, heartbeats);
  assert.equal(it.core('n1').status().readsByLease, 3);
});

test('the lease is timed by the clock, not by ticks: after a stall the leader confirms the read with a round', () => {
  const it = leased();
  const out = it.run('clock 6\nread n1\nstabilize');
  assert.match(out, /n1->n2 heartbeat t=1 commit=1 read=\d+\n/);
  assert.match(out, /n1 read#\d+ ready at index 1\n/);
  assert.equal(it.core('n1').status().readsByLease, 0);
  // That round renewed the lease: the next read goes at once again.
  assert.doesNotMatch(it.run('read n1\nstabilize'), heartbeats);
});

test('planted bug: a lease timed by the tick count survives the stall and serves the read without a round', () => {
  const it = leased();
  it.core('n1').planted = { readLeaseOnTickCount: true };
  const out = it.run('clock 6\nread n1\nstabilize');
  assert.doesNotMatch(out, heartbeats);
  assert.equal(it.core('n1').status().readsByLease, 1);
});

test('regular heartbeats renew the lease while no read comes', () => {
  const it = leased();
  // Far longer than the lease, in rounds: each tick and delivery keeps the heartbeats acked.
  it.run('run 30');
  assert.doesNotMatch(it.run('read n1\nstabilize'), heartbeats);
});

test('a leader whose heartbeats go unanswered loses its lease once it runs out', () => {
  const it = leased();
  it.run('isolate n1\nrun 6');
  const out = it.run('read n1');
  assert.match(out, /n1 read#\d+ pending\n/);
  assert.doesNotMatch(out, /ready/);
  assert.equal(it.core('n1').status().readsByLease, 0);
});

test('a leadership transfer ends the lease: the transferee is elected at once, leases or not', () => {
  const it = leased();
  const out = it.run('transfer n1 n2\nread n1');
  assert.doesNotMatch(out, /n1 read#\d+ ready/);
  assert.equal(it.core('n1').status().readsByLease, 0);
});

test('a node that has just started refuses votes for an election timeout when leases are on, and grants them after', () => {
  const config: ClusterConfig = { members: ['n1', 'n2', 'n3'], writeQuorum: 'majority', topology: 'star' };
  const ask = (core: ReturnType<typeof newUnitCore>, term: number): boolean | null => {
    core.step({ type: 'vote', from: 'n3', to: 'n2', term, lastIndex: 0, lastTerm: 0, transfer: false });
    const rd = core.ready();
    core.advance(rd);
    const resp = rd.messagesAfterPersist.find((m) => m.type === 'voteResp');
    return resp !== undefined && resp.type === 'voteResp' ? resp.granted : null;
  };
  const leasing = newUnitCore('n2', new MemoryLog(config), { checkQuorum: true, readLeaseTicks: 5 });
  assert.equal(ask(leasing, 1), null, 'ignored: it may have acknowledged a lease round just before it restarted');
  for (let i = 0; i < 10; i++) leasing.tick();
  assert.equal(ask(leasing, 1), true);
  // Without leases a fresh node votes at once, as before.
  assert.equal(ask(newUnitCore('n2', new MemoryLog(config), { checkQuorum: true }), 1), true);
});

test('a lease must be shorter than the election timeout and needs check-quorum', () => {
  const log = new MemoryLog({ members: ['n1'], writeQuorum: 'majority', topology: 'star' });
  assert.throws(() => newUnitCore('n1', log, { checkQuorum: true, readLeaseTicks: 10 }), /readLeaseTicks 10/);
  assert.throws(() => newUnitCore('n1', log, { checkQuorum: false, readLeaseTicks: 5 }), /needs checkQuorum/);
});
