import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusResponse } from '../../wire/types.js';
import { eventsBetween, viewOf } from './snapshot.js';
import type { NodeObservation } from './snapshot.js';

const ids = ['n1', 'n2', 'n3'];

/** A status as node `id` would report it, with `leader` leading in `term`. */
function status(id: string, leader: string, term: number, overrides: Partial<StatusResponse> = {}): StatusResponse {
  return {
    id,
    clusterId: 'c',
    pid: 1,
    role: id === leader ? 'leader' : 'follower',
    term,
    leader: { id: leader, http: `http://${leader}`, grpc: null },
    commitIndex: 10,
    ackedIndex: 10,
    appliedIndex: 10,
    lastIndex: 10,
    firstIndex: 1,
    keyCount: 3,
    mode: { writeQuorum: 'majority', topology: 'star', sinceIndex: 0, inSync: ids },
    peers: ids.filter((p) => p !== id).map((p) => ({ id: p, http: `http://${p}`, grpc: null, matchIndex: id === leader ? 10 : null, lag: id === leader ? 0 : null, reachable: true })),
    membership: {
      configIndex: 1,
      members: ids.map((m) => ({ id: m, role: 'voter' as const, memberId: null, peer: null, http: `http://${m}`, grpc: null, isLeader: m === leader, matchIndex: null, lag: id === leader ? 0 : null })),
    },
    rollbackCount: 0,
    uptimeMs: 1,
    ...overrides,
  };
}

function observe(statuses: Record<string, StatusResponse | null>): NodeObservation[] {
  return ids.map((id) => ({ id, http: `http://${id}`, status: statuses[id] ?? null, error: statuses[id] ? null : 'ECONNREFUSED' }));
}

test('the view takes roles, indexes and the mode from the answers and marks a silent node down', () => {
  const view = viewOf({ observations: observe({ n1: status('n1', 'n1', 3), n2: status('n2', 'n1', 3, { lastIndex: 7, commitIndex: 7 }), n3: null }), servedBy: 'n2', faults: false, atMs: 5 });
  assert.equal(view.leaderId, 'n1');
  assert.equal(view.termMax, 3);
  assert.deepEqual(view.nodes.map((n) => n.role), ['leader', 'follower', 'down']);
  assert.deepEqual(view.nodes.map((n) => n.reachable), [true, true, false]);
  assert.equal(view.nodes[2]?.commitIndex, null, 'a down node shows no old numbers');
  assert.equal(view.nodes[2]?.error, 'ECONNREFUSED');
  assert.deepEqual(view.chain, [], 'no chain in star topology');
});

test('lag is the leader’s view, else the leader’s last index minus the node’s', () => {
  const leader = status('n1', 'n1', 2, {
    lastIndex: 20,
    membership: { configIndex: 1, members: ids.map((m) => ({ id: m, role: 'voter' as const, memberId: null, peer: null, http: null, grpc: null, isLeader: m === 'n1', matchIndex: null, lag: m === 'n2' ? 4 : null })) },
    peers: [{ id: 'n2', http: null, grpc: null, matchIndex: 16, lag: 4, reachable: true }, { id: 'n3', http: null, grpc: null, matchIndex: null, lag: null, reachable: false }],
  });
  const view = viewOf({ observations: observe({ n1: leader, n2: status('n2', 'n1', 2), n3: status('n3', 'n1', 2, { lastIndex: 15 }) }), servedBy: 'n1', faults: false, atMs: 0 });
  assert.deepEqual(view.nodes.map((n) => n.lagEntries), [0, 4, 5]);
  assert.deepEqual(view.nodes.map((n) => n.peerReachable), [null, true, false]);
});

test('the chain is drawn leader first, then the in-sync set in its order', () => {
  const mode = { writeQuorum: 'all' as const, topology: 'chain' as const, sinceIndex: 4, inSync: ['n1', 'n3', 'n2'] };
  const view = viewOf({ observations: observe({ n1: status('n1', 'n3', 5, { mode }), n2: status('n2', 'n3', 5, { mode }), n3: status('n3', 'n3', 5, { mode }) }), servedBy: 'n1', faults: true, atMs: 0 });
  assert.deepEqual(view.chain, ['n3', 'n1', 'n2']);
});

test('events tell a failover: the leader stops answering, a new term begins, another node leads', () => {
  const before = viewOf({ observations: observe({ n1: status('n1', 'n1', 1), n2: status('n2', 'n1', 1), n3: status('n3', 'n1', 1) }), servedBy: 'n2', faults: false, atMs: 0 });
  const after = viewOf({ observations: observe({ n1: null, n2: status('n2', 'n2', 2), n3: status('n3', 'n2', 2) }), servedBy: 'n2', faults: false, atMs: 1 });
  const events = eventsBetween(before, after, 7);
  assert.deepEqual(events.map((e) => [e.seq, e.kind, e.node]), [
    [7, 'term', null],
    [8, 'leader', 'n2'],
    [9, 'unreachable', 'n1'],
  ]);
  assert.deepEqual(eventsBetween(null, after, 1), [], 'the first view has no history');
  assert.deepEqual(eventsBetween(after, after, 1), [], 'nothing changed, nothing to tell');
});

test('events tell a mode switch and a node coming back', () => {
  const chain = { writeQuorum: 'majority' as const, topology: 'chain' as const, sinceIndex: 9, inSync: ids };
  const before = viewOf({ observations: observe({ n1: status('n1', 'n1', 1), n2: status('n2', 'n1', 1), n3: null }), servedBy: 'n1', faults: false, atMs: 0 });
  const after = viewOf({ observations: observe({ n1: status('n1', 'n1', 1, { mode: chain }), n2: status('n2', 'n1', 1), n3: status('n3', 'n1', 1) }), servedBy: 'n1', faults: false, atMs: 1 });
  assert.deepEqual(eventsBetween(before, after, 1).map((e) => e.kind), ['mode', 'reachable']);
});

test('a silent member its supervisor paused is shown paused, not down; one that answers is its own word', () => {
  const processes = new Map([['n1', 'running'], ['n2', 'paused'], ['n3', 'exited']] as const);
  const view = viewOf({ observations: observe({ n1: status('n1', 'n1', 4), n2: null, n3: null }), processes, servedBy: 'n1', faults: true, atMs: 0 });
  assert.deepEqual(view.nodes.map((n) => n.role), ['leader', 'paused', 'down']);
  assert.deepEqual(view.nodes.map((n) => n.process), ['running', 'paused', 'exited']);
  assert.equal(view.nodes[1]?.reachable, false, 'paused is still unreachable');
  assert.equal(view.nodes[1]?.term, null, 'and shows no old numbers');
  const resumedEarly = viewOf({ observations: observe({ n1: status('n1', 'n1', 4), n2: status('n2', 'n1', 4), n3: null }), processes, servedBy: 'n1', faults: true, atMs: 1 });
  assert.equal(resumedEarly.nodes[1]?.role, 'follower', 'an answer outranks the supervisor’s older word');
  const noSupervisor = viewOf({ observations: observe({ n1: status('n1', 'n1', 4), n2: null, n3: null }), processes: null, servedBy: 'n1', faults: true, atMs: 2 });
  assert.deepEqual(noSupervisor.nodes.map((n) => [n.role, n.process]), [['leader', null], ['down', null], ['down', null]]);
});

test('events tell a pause and a resume: the paused member stops answering, then answers again', () => {
  const paused = new Map([['n2', 'paused']] as const);
  const all = observe({ n1: status('n1', 'n1', 1), n2: status('n2', 'n1', 1), n3: status('n3', 'n1', 1) });
  const before = viewOf({ observations: all, servedBy: 'n1', faults: true, atMs: 0 });
  const during = viewOf({ observations: observe({ n1: status('n1', 'n1', 1), n2: null, n3: status('n3', 'n1', 1) }), processes: paused, servedBy: 'n1', faults: true, atMs: 1 });
  const pausing = eventsBetween(before, during, 1);
  assert.deepEqual(pausing.map((e) => [e.kind, e.node]), [['unreachable', 'n2']]);
  assert.match(pausing[0]?.text ?? '', /n2 is paused/);
  const after = viewOf({ observations: all, processes: new Map([['n2', 'running']] as const), servedBy: 'n1', faults: true, atMs: 2 });
  assert.deepEqual(eventsBetween(during, after, 2).map((e) => [e.kind, e.node, e.text]), [['reachable', 'n2', 'n2 answers again, as follower']]);
  const downLater = viewOf({ observations: observe({ n1: status('n1', 'n1', 1), n2: null, n3: status('n3', 'n1', 1) }), processes: null, servedBy: 'n1', faults: true, atMs: 3 });
  assert.deepEqual(eventsBetween(during, downLater, 3).map((e) => e.text), ['n2 is now down (was paused)'], 'the supervisor no longer vouches for it');
});
