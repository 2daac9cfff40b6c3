/**
 * Pipelined persistence (CoreOptions.persistsInFlightMax): several Ready batches may be
 * persisting at once, but they are advanced strictly in order, a batch's entries count
 * as durable only when it is advanced, and a snapshot install never overlaps another batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RaftCore } from './raft.js';
import { MemoryLog } from './testing/memory-log.js';
import { newUnitCore } from './testing/unit-core.js';
import type { ClusterConfig, Entry, Ready } from './types.js';

const solo: ClusterConfig = { members: ['n1'], writeQuorum: 'majority', topology: 'star' };
const three: ClusterConfig = { members: ['n1', 'n2', 'n3'], writeQuorum: 'majority', topology: 'star' };

interface Node {
  readonly core: RaftCore;
  /** What the driver does when a batch's flush ends: store it, then advance. */
  readonly persisted: (rd: Ready) => void;
}

function newNode(id: string, config: ClusterConfig, persistsInFlightMax: number): Node {
  const log = new MemoryLog(config);
  const core = newUnitCore(id, log, { persistsInFlightMax });
  const persisted = (rd: Ready): void => {
    if (rd.snapshot !== null) log.installSnapshot(rd.snapshot);
    log.append(rd.entries);
    core.advance(rd);
  };
  return { core, persisted };
}

const data = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A single-member leader whose election Ready has been persisted and advanced. */
function soloLeader(persistsInFlightMax: number): Node {
  const node = newNode('n1', solo, persistsInFlightMax);
  node.core.campaignNow();
  while (node.core.hasReady()) node.persisted(node.core.ready());
  assert.equal(node.core.status().role, 'leader');
  return node;
}

test('persistsInFlightMax 1: no second Ready until the first is advanced', () => {
  const { core, persisted } = soloLeader(1);
  core.propose([{ kind: 'normal', data: data('a') }]);
  const first = core.ready();
  core.propose([{ kind: 'normal', data: data('b') }]);
  assert.equal(core.hasReady(), false, 'the new proposal waits for the batch in flight');
  assert.throws(() => core.ready(), /in flight/);
  persisted(first);
  assert.equal(core.hasReady(), true);
  assert.deepEqual(core.ready().entries.map((e) => e.data), [data('b')]);
});

test('persistsInFlightMax 2: the next batch is handed out while the first persists, and commits wait for their own advance', () => {
  const { core, persisted } = soloLeader(2);
  const before = core.status().lastIndex;
  core.propose([{ kind: 'normal', data: data('a') }]);
  const first = core.ready();
  core.propose([{ kind: 'normal', data: data('b') }, { kind: 'normal', data: data('c') }]);
  assert.equal(core.hasReady(), true, 'a second batch may start persisting');
  const second = core.ready();
  assert.deepEqual(second.entries.map((e) => e.index), [before + 2, before + 3], 'only the entries not already in flight');
  core.propose([{ kind: 'normal', data: data('d') }]);
  assert.equal(core.hasReady(), false, 'two batches in flight is the limit');

  assert.throws(() => core.advance(second), /oldest/, 'batches are advanced in the order handed out');
  assert.equal(core.status().commitIndex, before, 'nothing of the new batches is durable yet');
  persisted(first);
  assert.equal(core.status().commitIndex, before + 1, 'the first batch alone is durable: only its entry commits');
  persisted(second);
  assert.equal(core.status().commitIndex, before + 3);
  const applied = core.takeApplicable().committed.map((e: Entry) => e.index);
  assert.deepEqual(applied.slice(-3), [before + 1, before + 2, before + 3]);
});

test('a follower acks an appended batch only after its own persist, even with batches pipelined', () => {
  const { core, persisted } = newNode('n2', three, 4);
  const entry = (index: number): Entry => ({ term: 1, index, kind: 'normal', data: data(`e${index}`) });
  const append = (prevIndex: number, entries: Entry[]) =>
    core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, leader: 'n1', prevIndex, prevTerm: prevIndex === 0 ? 0 : 1, entries, commit: 0, acked: 0 });
  append(0, [entry(1), entry(2)]);
  const first = core.ready();
  append(2, [entry(3)]);
  const second = core.ready();
  const acks = (rd: typeof first) => rd.messagesAfterPersist.flatMap((m) => (m.type === 'appendResp' ? [m.matchIndex] : []));
  assert.deepEqual(acks(first), [2]);
  assert.deepEqual(acks(second), [3], 'each batch promises only what it persists itself');
  assert.equal(first.messages.some((m) => m.type === 'appendResp'), false, 'no ack leaves before a flush');
  persisted(first);
  persisted(second);
  assert.equal(core.hasReady(), false);
});

test('a snapshot install is never pipelined with other batches', () => {
  const { core, persisted } = newNode('n2', three, 4);
  const entry = (index: number): Entry => ({ term: 1, index, kind: 'normal', data: data(`e${index}`) });
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, leader: 'n1', prevIndex: 0, prevTerm: 0, entries: [entry(1)], commit: 0, acked: 0 });
  const first = core.ready();
  core.step({ type: 'snapshot', from: 'n1', to: 'n2', term: 1, meta: { index: 10, term: 1, config: three }, commit: 10 });
  assert.equal(core.hasReady(), false, 'the snapshot waits for the batch in flight');
  persisted(first);
  const install = core.ready();
  assert.equal(install.snapshot?.index, 10);
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, leader: 'n1', prevIndex: 10, prevTerm: 1, entries: [entry(11)], commit: 10, acked: 10 });
  assert.equal(core.hasReady(), false, 'nothing starts persisting while the snapshot does');
  persisted(install);
  assert.deepEqual(core.ready().entries.map((e) => e.index), [11]);
});
