import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createPrng } from '../stdx/prng.js';
import { FrameDecoder, FrameEncoder } from './frame.js';
import { createTcpTransport, reconnectDelayMs } from './tcp.js';
import type { TcpTransport, TcpTransportExtras } from './tcp.js';
import type { ContractMessage } from './testing/contract.js';
import { peerTransportContract, waitFor } from './testing/contract.js';
import type { TcpTransportOptions } from './types.js';

const host = '127.0.0.1';
type Address = { host: string; port: number; memberId?: string };

/** Ports that were free a moment ago (listen on 0, note the port, close). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen({ host, port: 0 }, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function options(
  nodeId: string,
  port: number,
  peers: Record<string, Address>,
  overrides: Partial<TcpTransportOptions> = {},
): TcpTransportOptions {
  return {
    self: { nodeId, clusterId: 'test-cluster', memberId: `${nodeId}-m` },
    meta: { name: nodeId },
    listen: { host, port },
    peers: new Map(Object.entries(peers)),
    frameBytesMax: 1 << 20,
    queueBytesMax: 4 << 20,
    queueMessagesMax: 1000,
    reconnectDelayMsMin: 10,
    reconnectDelayMsMax: 100,
    ...overrides,
  };
}

const extras: TcpTransportExtras = { random: createPrng(5).nextFloat, handshakeTimeoutMs: 2000 };

/** n1..n<count> on fresh ports, every one knowing every other. */
async function tcpCluster<M>(count: number): Promise<{ nodes: Map<string, TcpTransport<M>>; close(): Promise<void> }> {
  const ports = await freePorts(count);
  const ids = ports.map((_, i) => `n${i + 1}`);
  const nodes = new Map<string, TcpTransport<M>>();
  for (const [i, id] of ids.entries()) {
    const peers = Object.fromEntries(ids.flatMap((other, j) => (other === id ? [] : [[other, { host, port: ports[j] as number }]])));
    nodes.set(id, await createTcpTransport<M>(options(id, ports[i] as number, peers), extras));
  }
  return {
    nodes,
    close: async () => {
      await Promise.all([...nodes.values()].map((n) => n.close()));
    },
  };
}

peerTransportContract('tcp transport', () => tcpCluster<ContractMessage>(3));

test('the transport reports the port it bound when asked for port 0', async () => {
  const t = await createTcpTransport(options('n1', 0, {}), extras);
  assert.equal(t.address.host, host);
  assert.ok(t.address.port > 0);
  await t.close();
});

test('inconsistent limits are refused at start-up with the numbers', async () => {
  await assert.rejects(
    createTcpTransport(options('n1', 0, {}, { queueBytesMax: 100, frameBytesMax: 1000 })),
    /queueBytesMax 100 cannot hold one frame of frameBytesMax 1000/,
  );
  await assert.rejects(
    createTcpTransport(options('n1', 0, {}, { reconnectDelayMsMin: 50, reconnectDelayMsMax: 10 })),
    /reconnectDelayMsMax 10 is below reconnectDelayMsMin 50/,
  );
  await assert.rejects(createTcpTransport(options('n1', 0, { n1: { host, port: 1 } })), /must not include this node/);
});

test('a port already in use is reported, not thrown later', async () => {
  const first = await createTcpTransport(options('n1', 0, {}), extras);
  await assert.rejects(createTcpTransport(options('n2', first.address.port, {}), extras), /Cannot listen for peers/);
  await first.close();
});

test('reconnect delays grow from the minimum to the maximum and stay within them', () => {
  const prng = createPrng(3);
  for (let attempt = 0; attempt < 40; attempt++) {
    for (let i = 0; i < 50; i++) {
      const delayMs = reconnectDelayMs(attempt, 10, 2000, prng.nextFloat);
      assert.ok(delayMs >= 10 && delayMs <= 2000, `attempt ${attempt}: ${delayMs} ms`);
    }
  }
  assert.equal(reconnectDelayMs(0, 10, 2000, () => 0), 10);
  assert.equal(reconnectDelayMs(3, 10, 2000, () => 0.999999), 80);
  assert.equal(reconnectDelayMs(30, 10, 2000, () => 0), 1000, 'half the cap at least, once capped');
  assert.equal(reconnectDelayMs(30, 10, 2000, () => 0.999999), 2000);
});

test('a stranger from another cluster is refused and both sides say why', async () => {
  const [port1, portStranger] = await freePorts(2);
  const rejectsAtN1: string[] = [];
  const rejectsAtStranger: string[] = [];
  const n1 = await createTcpTransport<string>(
    options('n1', port1 as number, { n2: { host, port: portStranger as number } }, { onReject: (r) => rejectsAtN1.push(r) }),
    extras,
  );
  const stranger = await createTcpTransport<string>(
    options('n2', portStranger as number, { n1: { host, port: port1 as number } }, {
      self: { nodeId: 'n2', clusterId: 'other-cluster', memberId: 'n2-m' },
      onReject: (r) => rejectsAtStranger.push(r),
    }),
    extras,
  );
  const got: string[] = [];
  n1.onMessage((_from, m) => got.push(m));
  try {
    stranger.send('n1', 'let me in');
    await waitFor(() => rejectsAtN1.length > 0 && rejectsAtStranger.length > 0, 'both onReject calls');
    assert.match(rejectsAtN1[0] ?? '', /handshake from 127\.0\.0\.1:\d+ refused: cluster id "other-cluster" is not "test-cluster"/);
    assert.match(rejectsAtStranger[0] ?? '', /peer n1 at 127\.0\.0\.1:\d+ refused our handshake: cluster id/);
    assert.equal(stranger.peerState('n1').connected, false);
    assert.equal(stranger.peerState('n1').queuedMessages, 1, 'nothing is sent over a refused connection');
    assert.equal(n1.peerMeta('n2'), null);
    assert.deepEqual(got, []);
  } finally {
    await Promise.all([n1.close(), stranger.close()]);
  }
});

test('a node dialling the wrong node is refused; an unknown node is a member newer than the configuration and is heard, with the member id it presented', async () => {
  const [port1, portA, portB] = (await freePorts(3)) as [number, number, number];
  const rejects: string[] = [];
  const received: string[] = [];
  const n1 = await createTcpTransport<string>(options('n1', port1, { n2: { host, port: portA, memberId: 'n2-m' } }, { onReject: (r) => rejects.push(r) }), extras);
  n1.onMessage((from, m, memberId) => received.push(`${from}/${memberId ?? '?'}:${m}`));
  // n9 is not in n1's configuration: a member newer than it, heard.
  const newer = await createTcpTransport<string>(options('n9', portA, { n1: { host, port: port1 } }), extras);
  // Right cluster, but it believes n1's address belongs to n3.
  const confused = await createTcpTransport<string>(options('n2', portB, { n3: { host, port: port1 } }), extras);
  try {
    newer.send('n1', 'hello');
    await waitFor(
      () => received.includes('n9/n9-m:hello') && rejects.some((r) => /addressed to node "n3", but this is node "n1"/.test(r)),
      'the newer member heard with its member id, and the refusal',
    );
    assert.equal(confused.peerState('n3').connected, false);
  } finally {
    await Promise.all([n1.close(), newer.close(), confused.close()]);
  }
});
test('setPeers dials a peer that joined and forgets one that left', async () => {
  const [port1, port2] = (await freePorts(2)) as [number, number];
  const n1 = await createTcpTransport<string>(options('n1', port1, {}), extras);
  const n2 = await createTcpTransport<string>(options('n2', port2, {}), extras);
  const got: string[] = [];
  n2.onMessage((from, m) => got.push(`${from}:${m}`));
  try {
    assert.equal(n1.send('n2', 'before'), false, 'n2 is no peer yet');
    n1.setPeers(new Map([['n2', { host, port: port2, memberId: 'n2-m' }]]));
    assert.equal(n1.send('n2', 'after'), true);
    await waitFor(() => got.includes('n1:after'), 'n2 hears n1 once it is a peer');
    n1.setPeers(new Map());
    assert.equal(n1.send('n2', 'gone'), false, 'a peer that left gets nothing');
    assert.equal(n1.peerState('n2').connected, false);
  } finally {
    await Promise.all([n1.close(), n2.close()]);
  }
});

test('a connection that never sends its handshake is closed after the handshake timeout', async () => {
  const rejects: string[] = [];
  const n1 = await createTcpTransport(options('n1', 0, {}, { onReject: (r) => rejects.push(r) }), {
    ...extras,
    handshakeTimeoutMs: 100,
  });
  const silent = net.connect(n1.address);
  silent.on('error', () => {});
  let closed = false;
  silent.on('close', () => {
    closed = true;
  });
  try {
    await waitFor(() => closed, 'the silent connection to be closed');
    assert.match(rejects[0] ?? '', /no handshake within 100 ms/);
  } finally {
    silent.destroy();
    await n1.close();
  }
});

test('a peer that is down at first is reached once it starts, with what was queued meanwhile', async () => {
  const [port1, port2] = (await freePorts(2)) as [number, number];
  const n1 = await createTcpTransport<string>(options('n1', port1, { n2: { host, port: port2 } }), extras);
  let n2: TcpTransport<string> | null = null;
  try {
    assert.equal(n1.send('n2', 'early 1'), true);
    assert.equal(n1.send('n2', 'early 2'), true);
    assert.equal(n1.peerState('n2').connected, false);
    assert.equal(n1.peerState('n2').queuedMessages, 2);
    // Nothing to wait on here: give n1 time to fail a few dials and back off.
    await new Promise((resolve) => setTimeout(resolve, 50));
    n2 = await createTcpTransport<string>(options('n2', port2, { n1: { host, port: port1 } }), extras);
    const got: string[] = [];
    n2.onMessage((from, m) => got.push(`${from}:${m}`));
    await waitFor(() => got.length === 2, 'the queued messages');
    assert.deepEqual(got, ['n1:early 1', 'n1:early 2']);
    assert.equal(n1.peerState('n2').connected, true);
    assert.equal(n1.peerState('n2').queuedMessages, 0);
  } finally {
    await Promise.all([n1.close(), n2?.close()]);
  }
});

test('after a peer restarts on the same port, messages flow again both ways', async () => {
  const [port1, port2] = (await freePorts(2)) as [number, number];
  const n1 = await createTcpTransport<string>(options('n1', port1, { n2: { host, port: port2 } }), extras);
  const atN1: string[] = [];
  n1.onMessage((from, m) => atN1.push(`${from}:${m}`));
  let n2 = await createTcpTransport<string>(
    options('n2', port2, { n1: { host, port: port1 } }, { meta: { generation: '1' } }),
    extras,
  );
  try {
    n2.send('n1', 'hello from generation 1');
    await waitFor(() => atN1.length === 1, 'the first message');
    assert.deepEqual(n1.peerMeta('n2'), { generation: '1' });
    await waitFor(() => n1.peerState('n2').connected, 'n1 to be connected to n2');

    await n2.close();
    await waitFor(() => !n1.peerState('n2').connected, 'n1 to notice that n2 went away');
    n2 = await createTcpTransport<string>(
      options('n2', port2, { n1: { host, port: port1 } }, { meta: { generation: '2' } }),
      extras,
    );
    const atN2: string[] = [];
    n2.onMessage((from, m) => atN2.push(`${from}:${m}`));
    n1.send('n2', 'welcome back');
    n2.send('n1', 'hello from generation 2');
    await waitFor(() => atN2.length === 1 && atN1.length === 2, 'messages both ways');
    assert.deepEqual(atN2, ['n1:welcome back']);
    assert.equal(atN1[1], 'n2:hello from generation 2');
    assert.deepEqual(n1.peerMeta('n2'), { generation: '2' });
  } finally {
    await Promise.all([n1.close(), n2.close()]);
  }
});

test('the queue for a peer that never started stops at queueMessagesMax and counts drops', async () => {
  const [port1, port2] = (await freePorts(2)) as [number, number];
  const n1 = await createTcpTransport<string>(
    options('n1', port1, { n2: { host, port: port2 } }, { queueMessagesMax: 10 }),
    extras,
  );
  try {
    const results = Array.from({ length: 15 }, (_, i) => n1.send('n2', `m${i}`));
    assert.deepEqual(results, [...Array(10).fill(true), ...Array(5).fill(false)]);
    const state = n1.peerState('n2');
    assert.equal(state.queuedMessages, 10);
    assert.equal(state.droppedMessages, 5);
  } finally {
    await n1.close();
  }
});

test('a peer that stops reading fills the queue up to queueBytesMax and no further', async () => {
  // A fake peer: answers the handshake, then never reads again.
  const encoder = new FrameEncoder({ frameBytesMax: 1024 });
  const sockets: net.Socket[] = [];
  const fake = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    const decoder = new FrameDecoder({
      frameBytesMax: 1 << 16,
      copyBinaries: false,
      onFrame: () => {
        decoder.stop();
        socket.pause();
        socket.write(encoder.encode({ type: 'ack', from: 'n2' }) as Buffer);
      },
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
  await new Promise<void>((resolve) => fake.listen({ host, port: 0 }, resolve));
  const queueBytesMax = 1 << 20;
  const n1 = await createTcpTransport<{ pad: Uint8Array }>(
    options('n1', 0, { n2: { host, port: (fake.address() as AddressInfo).port } }, {
      queueBytesMax,
      frameBytesMax: 64 * 1024,
      queueMessagesMax: 100_000,
    }),
    extras,
  );
  try {
    await waitFor(() => n1.peerState('n2').connected, 'the handshake with the fake peer');
    const message = { pad: new Uint8Array(8 * 1024) };
    let refusedTurns = 0;
    let sent = 0;
    // Send turn after turn: the kernel buffers fill, then the socket buffer, then the queue.
    await waitFor(
      () => {
        let refused = false;
        for (let i = 0; i < 64 && !refused; i++) {
          if (n1.send('n2', message)) sent++;
          else refused = true;
        }
        const state = n1.peerState('n2');
        assert.ok(state.queuedBytes <= queueBytesMax, `queued ${state.queuedBytes} bytes > ${queueBytesMax}`);
        refusedTurns = refused ? refusedTurns + 1 : 0;
        return refusedTurns >= 20;
      },
      'sends to be refused for 20 polls in a row',
      20_000,
    );
    const state = n1.peerState('n2');
    assert.ok(state.droppedMessages >= 20);
    assert.ok(state.queuedBytes > queueBytesMax - 2 * 8 * 1024, `queue is full: ${state.queuedBytes} bytes`);
    assert.ok(sent > 0);
  } finally {
    await n1.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => fake.close(resolve));
  }
});

test('a message larger than frameBytesMax is not sent and a peer sending one is cut off', async () => {
  const rejects: string[] = [];
  const n1 = await createTcpTransport<{ pad: Uint8Array }>(
    options('n1', 0, { n2: { host, port: 1 } }, { frameBytesMax: 1000, queueBytesMax: 10_000, onReject: (r) => rejects.push(r) }),
    extras,
  );
  const client = net.connect(n1.address);
  client.on('error', () => {});
  let closed = false;
  client.on('close', () => {
    closed = true;
  });
  try {
    assert.equal(n1.send('n2', { pad: new Uint8Array(2000) }), false);
    assert.equal(n1.peerState('n2').droppedMessages, 1);

    // Handshake properly as n2, wait for the ack, then announce an oversized frame.
    const encoder = new FrameEncoder({ frameBytesMax: 1000 });
    let acked = false;
    const replies = new FrameDecoder({ frameBytesMax: 1000, copyBinaries: false, onFrame: () => (acked = true) });
    client.on('data', (chunk: Buffer) => replies.push(chunk));
    client.write(encoder.encode({ clusterId: 'test-cluster', from: 'n2', to: 'n1', memberId: 'n2-m', toMemberId: '', meta: {} }) as Buffer);
    await waitFor(() => acked, 'the ack');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1001, 0);
    client.write(header);
    await waitFor(() => closed, 'n1 to close the connection');
    assert.match(rejects.at(-1) ?? '', /connection from n2 at .* closed: frame body of 1001 bytes exceeds the limit of 1000 bytes/);
  } finally {
    client.destroy();
    await n1.close();
  }
});

test('close() leaves no socket, server or timer behind', async () => {
  const before = countResources();
  const cluster = await tcpCluster<string>(3);
  const [ids, nodes] = [[...cluster.nodes.keys()], [...cluster.nodes.values()]];
  for (const n of nodes) for (const id of ids) n.send(id, 'x');
  // One more transport dialling a peer that does not exist: a retry timer is pending.
  const lonely = await createTcpTransport<string>(options('n1', 0, { n2: { host, port: (await freePorts(1))[0] as number } }), extras);
  await waitFor(() => nodes.every((n) => ids.every((id) => n.peerMeta(id) !== null || n === cluster.nodes.get(id))), 'the cluster to connect');
  await Promise.all([cluster.close(), lonely.close()]);
  await waitFor(() => {
    const after = countResources();
    return [...new Set([...before.keys(), ...after.keys()])].every((k) => (after.get(k) ?? 0) <= (before.get(k) ?? 0));
  }, 'every handle to be released');
});

function countResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

test('with a peer secret, peers that share it connect; a wrong secret or none is refused, and the secret appears in no message', async () => {
  const [port1, port2, port3, port4] = (await freePorts(4)) as [number, number, number, number];
  const secret = new TextEncoder().encode('correct horse battery staple');
  const wrong = new TextEncoder().encode('incorrect horse');
  const logs: string[] = [];
  const log = { onReject: (r: string) => logs.push(r) };
  const peersOf = (self: string): Record<string, Address> =>
    Object.fromEntries(Object.entries({ n1: port1, n2: port2, n3: port3, n4: port4 }).filter(([id]) => id !== self).map(([id, port]) => [id, { host, port }]));
  const n1 = await createTcpTransport<string>(options('n1', port1, peersOf('n1'), { ...log, peerSecret: secret }), extras);
  const n2 = await createTcpTransport<string>(options('n2', port2, peersOf('n2'), { ...log, peerSecret: secret }), extras);
  const n3 = await createTcpTransport<string>(options('n3', port3, peersOf('n3'), { ...log, peerSecret: wrong }), extras);
  const n4 = await createTcpTransport<string>(options('n4', port4, peersOf('n4'), log), extras);
  const got: string[] = [];
  n2.onMessage((from, m) => got.push(`${from}:${m}`));
  n1.onMessage((from, m) => got.push(`${from}:${m}`));
  try {
    n1.send('n2', 'hello');
    n3.send('n1', 'intruder');
    n4.send('n1', 'stranger');
    await waitFor(
      () => got.includes('n1:hello') && logs.some((r) => /n3 did not prove the peer secret/.test(r)) && logs.some((r) => /n4 did not prove the peer secret/.test(r)),
      'the pair with the secret talks, the others are refused',
    );
    assert.ok(n1.peerState('n2').connected);
    assert.equal(n3.peerState('n1').connected, false, 'the wrong secret never connects');
    assert.equal(n4.peerState('n1').connected, false, 'no secret never connects');
    assert.ok(!got.some((m) => m.startsWith('n3:') || m.startsWith('n4:')), 'nothing from them is delivered');
    for (const line of logs) {
      assert.ok(!line.includes('horse'), `a log line shows a secret: ${line}`);
    }
  } finally {
    await Promise.all([n1.close(), n2.close(), n3.close(), n4.close()]);
  }
});
