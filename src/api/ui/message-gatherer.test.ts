import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { MessageSampler } from '../../node/message-sampler.js';
import { MessageGatherer } from './message-gatherer.js';

function heartbeat(from: string, to: string) {
  return { type: 'heartbeat' as const, from, to, term: 2, commit: 5, acked: 5, readRound: 0 };
}

test('the gatherer draws news only: no backlog at first contact, each message once, a restarted member from its new start, a silent one skipped', async (t) => {
  let nowMs = 1_000;
  const own = new MessageSampler({ samplesPerKindPerSecondMax: 100, samplesKeptMax: 50 }, () => nowMs);
  let peer = new MessageSampler({ samplesPerKindPerSecondMax: 100, samplesKeptMax: 50 }, () => nowMs);
  const server = createServer((req, res) => {
    const after = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('after'));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(peer.since(after)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new Agent({ connections: 2 });
  t.after(async () => {
    await agent.close();
    server.close();
  });
  const members = [
    { id: 'n1', http: null },
    { id: 'n2', http: `http://127.0.0.1:${(server.address() as AddressInfo).port}` },
    { id: 'n3', http: 'http://127.0.0.1:1' }, // nobody listens there
  ];
  const gatherer = new MessageGatherer('n1', own);

  own.record(heartbeat('n1', 'n2'));
  peer.record(heartbeat('n2', 'n1'));
  let got = await gatherer.gather(members, agent, 300);
  assert.deepEqual(got.messages, [], 'what was sent before the first look is not replayed');
  assert.deepEqual(got.counts.sampled, { heartbeat: 2 });

  nowMs += 10;
  own.record(heartbeat('n1', 'n3'));
  nowMs += 10;
  peer.record({ type: 'voteResp', from: 'n2', to: 'n1', term: 3, granted: true });
  got = await gatherer.gather(members, agent, 300);
  assert.deepEqual(got.messages.map((m) => `${m.kind} ${m.from}>${m.to}`), ['heartbeat n1>n3', 'voteResp n2>n1'], 'both members, oldest first');
  got = await gatherer.gather(members, agent, 300);
  assert.deepEqual(got.messages, [], 'nothing twice');

  peer = new MessageSampler({ samplesPerKindPerSecondMax: 100, samplesKeptMax: 50 }, () => nowMs); // n2 restarted
  peer.record(heartbeat('n2', 'n3'));
  got = await gatherer.gather(members, agent, 300);
  assert.deepEqual(got.messages, [], 'asked past the new process end: nothing, and its cursor is reset');
  peer.record({ type: 'vote', from: 'n2', to: 'n3', term: 4, lastIndex: 9, lastTerm: 3, transfer: false });
  got = await gatherer.gather(members, agent, 300);
  assert.deepEqual(got.messages.map((m) => m.kind), ['vote'], 'the restarted member is drawn again');
  assert.deepEqual(got.counts.sampled, { heartbeat: 3, vote: 1 }, 'totals of the members that answered, the restarted one as it is now');
});
