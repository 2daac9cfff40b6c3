import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../core/types.js';
import type { PeerLinkState, PeerTransport } from '../transport/types.js';
import { MessageSampler, sampledTransport } from './message-sampler.js';
import type { PeerMessage } from './messages.js';

function heartbeat(to: string): Message {
  return { type: 'heartbeat', from: 'n1', to, term: 3, commit: 7, acked: 7, readRound: 0 };
}

function append(to: string, prevIndex: number, count: number): Message {
  const entries = Array.from({ length: count }, (_, i) => ({ term: 3, index: prevIndex + i + 1, kind: 'normal' as const, data: new Uint8Array(1) }));
  return { type: 'append', from: 'n1', to, term: 3, leader: 'n1', prevIndex, prevTerm: 3, entries, commit: prevIndex, acked: prevIndex };
}

test('a flood of heartbeats keeps at most the per-kind rate each second, counts the rest, and leaves room for a vote', () => {
  let nowMs = 10_000;
  const sampler = new MessageSampler({ samplesPerKindPerSecondMax: 3, samplesKeptMax: 100 }, () => nowMs);
  for (let i = 0; i < 50; i++) sampler.record(heartbeat('n2'));
  sampler.record({ type: 'vote', from: 'n1', to: 'n2', term: 4, lastIndex: 9, lastTerm: 3, transfer: false });
  let got = sampler.since(0);
  assert.deepEqual(got.samples.map((s) => s.kind), ['heartbeat', 'heartbeat', 'heartbeat', 'vote']);
  assert.deepEqual(got.sampledByKind, { heartbeat: 3, vote: 1 });
  assert.deepEqual(got.skippedByKind, { heartbeat: 47 });

  nowMs += 1_000; // the next second has its own budget
  for (let i = 0; i < 5; i++) sampler.record(heartbeat('n3'));
  got = sampler.since(got.seqNext - 1);
  assert.deepEqual(got.samples.map((s) => `${s.kind}>${s.to}`), ['heartbeat>n3', 'heartbeat>n3', 'heartbeat>n3']);
  assert.deepEqual(got.skippedByKind, { heartbeat: 49 });
});

test('a sample says what the message was: kind, ends, term, entries carried, the index it is about, granted or refused', () => {
  const sampler = new MessageSampler({ samplesPerKindPerSecondMax: 10, samplesKeptMax: 10 }, () => 5_000);
  sampler.record(append('n2', 41, 2));
  sampler.record({ type: 'appendResp', from: 'n2', to: 'n1', term: 3, matchIndex: 43, reject: false, rejectedIndex: 0, lastIndexHint: 43, needSnapshot: false });
  sampler.record({ type: 'voteResp', from: 'n3', to: 'n1', term: 4, granted: false });
  const [a, ack, vote] = sampler.since(0).samples;
  assert.deepEqual(a, { seq: 1, atMs: 5_000, from: 'n1', to: 'n2', kind: 'append', term: 3, entries: 2, index: 43, ok: null });
  assert.deepEqual({ kind: ack?.kind, index: ack?.index, ok: ack?.ok }, { kind: 'appendResp', index: 43, ok: true });
  assert.deepEqual({ kind: vote?.kind, from: vote?.from, ok: vote?.ok, index: vote?.index }, { kind: 'voteResp', from: 'n3', ok: false, index: null });
});

test('a reader gets only what follows its cursor, and never more than the ring holds', () => {
  const sampler = new MessageSampler({ samplesPerKindPerSecondMax: 1_000, samplesKeptMax: 4 }, () => 1_000);
  for (let i = 0; i < 10; i++) sampler.record(append('n2', i, 1));
  const all = sampler.since(0);
  assert.equal(all.seqNext, 11);
  assert.deepEqual(all.samples.map((s) => s.seq), [7, 8, 9, 10], 'the last samplesKeptMax');
  assert.deepEqual(sampler.since(8).samples.map((s) => s.seq), [9, 10]);
  assert.deepEqual(sampler.since(10).samples, []);
  assert.throws(() => new MessageSampler({ samplesPerKindPerSecondMax: 1, samplesKeptMax: 0 }, () => 0), /samplesKeptMax/);
});

test('the sampling transport notes only what the inner transport accepted, and passes everything through', async () => {
  const sent: string[] = [];
  let full = false;
  const inner: PeerTransport<PeerMessage> = {
    send: (to) => {
      if (full) return false;
      sent.push(to);
      return true;
    },
    onMessage: () => undefined,
    peerState: (): PeerLinkState => ({ connected: true, queuedMessages: 0, queuedBytes: 0, droppedMessages: 0 }),
    peerMeta: () => null,
    close: async () => undefined,
  };
  const sampler = new MessageSampler({ samplesPerKindPerSecondMax: 10, samplesKeptMax: 10 }, () => 0);
  const transport = sampledTransport(inner, sampler);
  assert.equal(transport.send('n2', heartbeat('n2')), true);
  full = true;
  assert.equal(transport.send('n3', heartbeat('n3')), false, 'a refusal is passed back');
  assert.deepEqual(sent, ['n2']);
  assert.deepEqual(sampler.since(0).samples.map((s) => s.to), ['n2'], 'the refused message is not drawn');
  await transport.close();
});
