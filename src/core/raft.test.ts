/**
 * Tests mapped to the rules of the Raft paper (Ongaro & Ousterhout, 2014, Figure 2 and
 * §5), driven through the interaction harness. Scenario scripts with full message
 * traces live in testdata/; these assert the rule itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreOptions } from './options.js';
import type { RaftCore } from './raft.js';
import { MemoryLog } from './testing/memory-log.js';
import { Interaction } from './testing/interaction.js';
import { newUnitCore } from './testing/unit-core.js';
import { readIndexRequestIdsMax } from './types.js';
import type { ClusterConfig, Entry } from './types.js';

const config3: ClusterConfig = { members: ['n1', 'n2', 'n3'], writeQuorum: 'majority', topology: 'star' };

function newCore(id: string, overrides: Partial<CoreOptions> = {}): RaftCore {
  return newUnitCore(id, new MemoryLog(config3), overrides);
}

function elected(flags = ''): Interaction {
  const it = new Interaction();
  it.run(`add-nodes 3 ${flags}\ncampaign n1\nstabilize quiet`);
  return it;
}

test('§5.1: a node that sees a higher term adopts it and becomes a follower', () => {
  const it = elected();
  it.run('isolate n1');
  const leaderOf = () => [it.core('n2'), it.core('n3')].find((c) => c.status().role === 'leader');
  for (let round = 0; round < 20 && leaderOf() === undefined; round++) it.run('tick n2 7\ntick n3 5\nstabilize quiet');
  it.run('heal\ntick n2 1\ntick n3 1\nstabilize quiet');
  const s1 = it.core('n1').status();
  const leader = leaderOf();
  assert.ok(leader, 'the majority side elected a leader');
  assert.equal(s1.role, 'follower');
  assert.equal(s1.term, leader.status().term);
});

test('§5.2: a follower grants at most one vote per term', () => {
  const core = newCore('n3');
  core.step({ type: 'vote', from: 'n1', to: 'n3', term: 1, lastIndex: 0, lastTerm: 0, transfer: false });
  core.step({ type: 'vote', from: 'n2', to: 'n3', term: 1, lastIndex: 0, lastTerm: 0, transfer: false });
  const rd = core.ready();
  const votes = rd.messagesAfterPersist.filter((m) => m.type === 'voteResp');
  assert.deepEqual(votes.map((m) => [m.to, m.type === 'voteResp' && m.granted]), [['n1', true], ['n2', false]]);
  assert.equal(rd.hardState?.vote, 'n1', 'the vote is persisted with the Ready that carries the response');
  assert.equal(rd.messages.filter((m) => m.type === 'voteResp').length, 0, 'vote responses never leave before the flush');
});

test('a vote is granted to a candidate the voter\'s configuration does not hold yet: a lagging voter may be needed to elect a newer member', () => {
  // n2's log stops before n4 was added; n4 (a voter in the newer configuration, with a
  // longer log) needs n2's vote when the node holding the newest log has removed itself.
  for (const type of ['preVote', 'vote'] as const) {
    const voter = newCore('n2', { checkQuorum: false });
    voter.step({ type, from: 'n4', to: 'n2', term: 2, lastIndex: 89, lastTerm: 1, transfer: false });
    const rd = voter.ready();
    const resp = [...rd.messages, ...rd.messagesAfterPersist].find((m) => m.type === `${type}Resp`);
    assert.ok(resp && (resp.type === 'preVoteResp' || resp.type === 'voteResp') && resp.granted, `${type} granted to n4`);
  }
});

test('§5.4.1: a vote is refused to a candidate whose log is less up to date', () => {
  const it = elected('prevote=false checkquorum=false');
  it.run('propose n1 x\nstabilize quiet');
  const voter = it.core('n2');
  voter.step({ type: 'vote', from: 'n3', to: 'n2', term: 5, lastIndex: 1, lastTerm: 1, transfer: false });
  const rd = voter.ready();
  const resp = rd.messagesAfterPersist.find((m) => m.type === 'voteResp');
  assert.ok(resp && resp.type === 'voteResp' && !resp.granted);
  voter.advance(rd);
});

test('§5.4.1 planted bug: without the up-to-date check the same vote is granted', () => {
  const it = elected('prevote=false checkquorum=false');
  it.run('propose n1 x\nstabilize quiet');
  const voter = it.core('n2');
  voter.planted.voteWithoutLogCheck = true;
  voter.step({ type: 'vote', from: 'n3', to: 'n2', term: 5, lastIndex: 1, lastTerm: 1, transfer: false });
  const resp = voter.ready().messagesAfterPersist.find((m) => m.type === 'voteResp');
  assert.ok(resp && resp.type === 'voteResp' && resp.granted);
});

test('§5.3: entries are applied in order, once, and only after they are committed', () => {
  const it = elected();
  it.run('cut n1->n2\ncut n1->n3\npropose n1 a\nstabilize quiet');
  assert.deepEqual(it.applied('n1').map((e) => e.index), [1], 'no majority yet: nothing new applied');
  it.run('heal\ntick n1 1\nstabilize quiet\npropose n1 b c\nstabilize quiet');
  for (const id of ['n1', 'n2', 'n3']) {
    assert.deepEqual(it.applied(id).map((e) => e.index), [1, 2, 3, 4], `${id} applied each entry once, in order`);
  }
});

test('§5.4.2 planted bug: counting replicas of an old-term entry commits it too early', () => {
  const script = (planted: boolean): number => {
    const it = new Interaction();
    it.run(
      'add-nodes 5 prevote=false checkquorum=false entries=1\ncampaign n1\nstabilize quiet\n' +
        'cut n1->n3\ncut n1->n4\ncut n1->n5\npropose n1 old\nstabilize quiet\ncrash n1\nheal\n' +
        'isolate n2\ncampaign n5\nisolate n5\nstabilize quiet\ncrash n5\nheal\nrestart n1\nisolate n5\ncut n1->n4\ncampaign n1\ndeliver\ndeliver',
    );
    it.core('n1').planted.commitOldTermByCount = planted;
    it.run('deliver\ndeliver\ndeliver\ndeliver');
    return it.core('n1').status().commitIndex;
  };
  assert.equal(script(false), 1, 'the correct rule leaves the old-term entry uncommitted');
  assert.equal(script(true), 2, 'the planted bug commits it by counting');
});

test('a leader refuses proposals beyond uncommittedEntriesMax instead of growing its log', () => {
  const core = newCore('n1');
  core.campaignNow();
  core.step({ type: 'voteResp', from: 'n2', to: 'n1', term: 1, granted: true });
  const r = core.propose(Array.from({ length: 20 }, () => ({ kind: 'normal' as const, data: new Uint8Array(1) })));
  assert.deepEqual(r, { ok: false, reason: 'busy', uncommittedEntries: 1 });
});

test('read-index requests are bounded on the leader and on followers, and refused by a node that knows no leader', () => {
  const it = elected();
  const leader = it.core('n1');
  const results = Array.from({ length: 102 }, () => leader.readIndex());
  assert.equal(results.filter((r) => !r.ok).length, 2, 'readsPendingMax (100 in the harness) bounds pending reads');
  const onFollower = Array.from({ length: 102 }, () => it.core('n2').readIndex());
  assert.equal(onFollower.filter((r) => !r.ok).length, 2, 'a follower bounds the reads it asked the leader about');

  const leaderless = new Interaction();
  leaderless.run('add-nodes 3');
  assert.deepEqual(leaderless.core('n2').readIndex(), { ok: false, reason: 'notLeader', leader: null });
});

test('a leader counts its followers\' read ids against readsPendingMax and refuses a batch beyond it as busy', () => {
  const it = elected();
  const out = it.run('read n2 60\nread n3 60\nstabilize');
  assert.match(out, /n2->n1 readIndex t=1 reads=1,2,3,.*,60\n/);
  assert.match(out, /n1->n3 readIndexResp t=1 reads=1,.*,60 refused=busy\n/);
  assert.match(out, /n3 read#60 failed: busy\n/);
  assert.match(out, /n2 read#60 ready at index 1\n/);
  // The busy refusal freed nothing it had not taken: the next batch fits again.
  assert.match(it.run('read n3 40\nstabilize'), /n3 read#100 ready at index 1\n/);
});

test('a follower splits a large batch of reads into messages of at most readIndexRequestIdsMax ids', () => {
  const follower = newCore('n2', { readsPendingMax: 5000 });
  follower.step({ type: 'heartbeat', from: 'n1', to: 'n2', term: 1, commit: 0, acked: 0, readRound: 0 });
  follower.takeMessages();
  for (let i = 0; i < readIndexRequestIdsMax * 2 + 1; i++) assert.equal(follower.readIndex().ok, true);
  const sizes = follower.takeMessages().flatMap((m) => (m.type === 'readIndex' ? [m.requestIds.length] : []));
  assert.deepEqual(sizes, [readIndexRequestIdsMax, readIndexRequestIdsMax, 1]);
});

test('the same seed elects the same leader at the same tick', () => {
  const trace = (): string => {
    const it = new Interaction();
    return it.run('add-nodes 5 seed=9\ntick all 25\nstabilize\nstatus');
  };
  assert.equal(trace(), trace());
});

test('weak quorum: a stale append from the leader whose snapshot put a follower ahead of the commit index is answered, not taken for a divergence', () => {
  const async3: ClusterConfig = { members: ['n1', 'n2', 'n3'], writeQuorum: 0, topology: 'star' };
  const log = new MemoryLog(async3);
  const core = newUnitCore('n2', log);
  // Plays the driver: persists what the Ready asks, then acknowledges it.
  const settle = (): ReturnType<RaftCore['ready']> => {
    const rd = core.ready();
    if (rd.snapshot !== null) log.installSnapshot(rd.snapshot);
    if (rd.entries.length > 0) log.append(rd.entries);
    core.advance(rd);
    return rd;
  };
  const entry = (index: number): Entry => ({ term: 2, index, kind: 'normal', data: new Uint8Array([index]) });
  // The term-2 leader's snapshot ends at 5, beyond its commit index 3 (a weak quorum's).
  core.step({ type: 'snapshot', from: 'n1', to: 'n2', term: 2, meta: { index: 5, term: 2, config: async3 }, commit: 3 });
  assert.equal(settle().snapshot?.index, 5);

  // An append the leader sent before that snapshot, overtaken by it.
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 2, leader: 'n1', prevIndex: 3, prevTerm: 2, entries: [entry(4)], commit: 3, acked: 4 });
  const stale = settle();
  assert.deepEqual(stale.rolledBack, [], 'no write is reported lost');
  const resp = stale.messagesAfterPersist.find((m) => m.type === 'appendResp');
  assert.ok(resp?.type === 'appendResp' && !resp.reject && !resp.needSnapshot && resp.matchIndex === 5, `answered with what it holds: ${JSON.stringify(resp)}`);

  // And the leader's next entry follows the snapshot as usual (no repair awaited).
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 2, leader: 'n1', prevIndex: 5, prevTerm: 2, entries: [entry(6)], commit: 3, acked: 6 });
  const next = settle().messagesAfterPersist.find((m) => m.type === 'appendResp');
  assert.ok(next?.type === 'appendResp' && !next.reject && next.matchIndex === 6, JSON.stringify(next));
  assert.equal(log.lastIndex(), 6);
});

test('a quiet append (a new commit index only) is taken without an answer when the follower holds its prev entry, and answered with a refusal when it does not', () => {
  const log = new MemoryLog(config3);
  const core = newUnitCore('n2', log);
  const settle = (): ReturnType<RaftCore['ready']> => {
    const rd = core.ready();
    if (rd.entries.length > 0) log.append(rd.entries);
    core.advance(rd);
    return rd;
  };
  const answers = (rd: ReturnType<RaftCore['ready']>): unknown[] => [...rd.messages, ...rd.messagesAfterPersist].filter((m) => m.type === 'appendResp');
  const entry = (index: number): Entry => ({ term: 1, index, kind: 'normal', data: new Uint8Array([index]) });
  const append = { type: 'append', from: 'n1', to: 'n2', term: 1, leader: 'n1', acked: 0 } as const;
  core.step({ ...append, prevIndex: 0, prevTerm: 0, entries: [entry(1), entry(2)], commit: 0 });
  assert.equal(answers(settle()).length, 1, 'an append with entries is answered');

  core.step({ ...append, prevIndex: 2, prevTerm: 1, entries: [], commit: 2, quiet: true });
  assert.deepEqual(answers(settle()), [], 'an accepted quiet append is not answered');
  assert.equal(core.log.committed, 2, 'its commit index is taken');

  core.step({ ...append, prevIndex: 3, prevTerm: 1, entries: [], commit: 3, quiet: true });
  const refused = answers(settle());
  assert.equal(refused.length, 1, 'a quiet append the follower cannot match is answered');
  assert.ok((refused[0] as { reject: boolean }).reject);
  assert.equal(core.log.committed, 2, 'and its commit index is not taken');
});
