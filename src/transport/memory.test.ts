import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryNetwork } from './memory.js';
import type { ContractMessage } from './testing/contract.js';
import { peerTransportContract, waitFor } from './testing/contract.js';
import type { PeerTransport } from './types.js';

for (const encode of [false, true]) {
  peerTransportContract(`memory transport (encode: ${encode})`, () => {
    const network = createMemoryNetwork<ContractMessage>({ encode });
    const nodes = new Map<string, PeerTransport<ContractMessage>>(
      ['n1', 'n2', 'n3'].map((id) => [id, network.join(id, { name: id })]),
    );
    return Promise.resolve({
      nodes,
      close: async () => {
        await Promise.all([...nodes.values()].map((n) => n.close()));
      },
    });
  });
}

test('a message is delivered after send() returns, never inside it', async () => {
  const network = createMemoryNetwork<string>();
  const a = network.join('a');
  const b = network.join('b');
  const got: string[] = [];
  b.onMessage((_from, message) => got.push(message));
  a.send('b', 'hello');
  assert.deepEqual(got, []);
  assert.equal(network.inFlight(), 1);
  await waitFor(() => got.length === 1, 'delivery');
  assert.equal(network.inFlight(), 0);
  await Promise.all([a.close(), b.close()]);
});

test('a full link refuses further messages and counts them as dropped', async () => {
  const network = createMemoryNetwork<number>({ queueMessagesMax: 3 });
  const a = network.join('a');
  const b = network.join('b');
  const got: number[] = [];
  b.onMessage((_from, n) => got.push(n));
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => a.send('b', n)), [true, true, true, false, false]);
  assert.deepEqual(a.peerState('b'), { connected: true, queuedMessages: 3, queuedBytes: 0, droppedMessages: 2 });
  await waitFor(() => got.length === 3, 'the queued messages');
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(a.send('b', 6), true, 'the link accepts again once it has drained');
  await Promise.all([a.close(), b.close()]);
});

test('a node that restarts under the same id receives messages sent while it was down', async () => {
  const network = createMemoryNetwork<string>();
  const a = network.join('a');
  const b1 = network.join('b', { v: '1' });
  await b1.close();
  assert.throws(() => network.join('a'), /already open/);
  assert.equal(a.send('b', 'while down'), true);
  assert.equal(a.peerState('b').connected, false);
  const b2 = network.join('b', { v: '2' });
  const got: string[] = [];
  b2.onMessage((from, message) => got.push(`${from}:${message}`));
  await waitFor(() => got.length === 1, 'delivery to the restarted node');
  assert.deepEqual(got, ['a:while down']);
  assert.deepEqual(a.peerMeta('b'), { v: '2' });
  assert.deepEqual(network.members().sort(), ['a', 'b']);
  await Promise.all([a.close(), b2.close()]);
});

test('messages in flight to a node that stays down are dropped and counted', async () => {
  const network = createMemoryNetwork<string>();
  const a = network.join('a');
  const b = network.join('b');
  a.send('b', 'lost');
  await b.close();
  await waitFor(() => network.inFlight() === 0, 'the message to be dropped');
  assert.equal(a.peerState('b').droppedMessages, 1);
  await a.close();
});

test('with encode on, Buffers arrive as Uint8Array and oversized messages are refused', async () => {
  const network = createMemoryNetwork<{ data: Uint8Array }>({ encode: true, frameBytesMax: 1024 });
  const a = network.join('a');
  const b = network.join('b');
  const got: Uint8Array[] = [];
  b.onMessage((_from, message) => got.push(message.data));
  assert.equal(a.send('b', { data: Buffer.from('abc') }), true);
  assert.equal(a.send('b', { data: new Uint8Array(2000) }), false);
  await waitFor(() => got.length === 1, 'delivery');
  assert.equal(got[0]?.constructor, Uint8Array);
  assert.deepEqual(got[0], new Uint8Array([97, 98, 99]));
  await Promise.all([a.close(), b.close()]);
});
