import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createPrng } from '../stdx/prng.js';
import { createTcpTransport } from './tcp.js';
import type { TcpTransport } from './tcp.js';
import { startTcpProxy } from './tcp-proxy.js';
import { waitFor } from './testing/contract.js';
import type { TcpTransportOptions } from './types.js';

const host = '127.0.0.1';

async function startEchoServer(): Promise<{ server: net.Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

interface Client {
  readonly socket: net.Socket;
  readonly received: () => string;
  readonly closed: () => boolean;
  readonly error: () => string | null;
}

function connectClient(port: number): Client {
  const socket = net.connect({ host, port });
  let received = '';
  let closed = false;
  let error: string | null = null;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  socket.on('close', () => (closed = true));
  return { socket, received: () => received, closed: () => closed, error: () => error };
}

test('bytes pass through the proxy unchanged in both directions', async () => {
  const echo = await startEchoServer();
  const proxy = await startTcpProxy({ listen: { host, port: 0 }, target: { host, port: echo.port } });
  const client = connectClient(proxy.address.port);
  try {
    client.socket.write('ping ');
    client.socket.write('pong');
    await waitFor(() => client.received() === 'ping pong', 'the echo');
    assert.equal(proxy.connectionCount(), 1);
  } finally {
    client.socket.destroy();
    await proxy.close();
    await echo.close();
  }
});

test('cutAll resets the connections in flight; new ones still get through', async () => {
  const echo = await startEchoServer();
  const proxy = await startTcpProxy({ listen: { host, port: 0 }, target: { host, port: echo.port } });
  const first = connectClient(proxy.address.port);
  let second: Client | null = null;
  try {
    first.socket.write('a');
    await waitFor(() => first.received() === 'a', 'the first echo');
    proxy.cutAll();
    await waitFor(() => first.closed(), 'the cut connection to close');
    assert.equal(first.error(), 'ECONNRESET');
    assert.equal(proxy.connectionCount(), 0);
    second = connectClient(proxy.address.port);
    second.socket.write('b');
    await waitFor(() => second?.received() === 'b', 'an echo over a new connection');
  } finally {
    first.socket.destroy();
    second?.socket.destroy();
    await proxy.close();
    await echo.close();
  }
});

test('while blocked, new connections are closed at once; unblocking lets them through', async () => {
  const echo = await startEchoServer();
  const proxy = await startTcpProxy({ listen: { host, port: 0 }, target: { host, port: echo.port } });
  proxy.setBlocked(true);
  const refused = connectClient(proxy.address.port);
  let admitted: Client | null = null;
  try {
    refused.socket.write('x');
    await waitFor(() => refused.closed(), 'the blocked connection to close');
    assert.equal(refused.received(), '');
    proxy.setBlocked(false);
    admitted = connectClient(proxy.address.port);
    admitted.socket.write('y');
    await waitFor(() => admitted?.received() === 'y', 'an echo once unblocked');
  } finally {
    refused.socket.destroy();
    admitted?.socket.destroy();
    await proxy.close();
    await echo.close();
  }
});

test('a connection to a target that is down is closed', async () => {
  const echo = await startEchoServer();
  const deadPort = echo.port;
  await echo.close();
  const proxy = await startTcpProxy({ listen: { host, port: 0 }, target: { host, port: deadPort } });
  const client = connectClient(proxy.address.port);
  try {
    await waitFor(() => client.closed(), 'the client to be closed');
    assert.equal(proxy.connectionCount(), 0);
  } finally {
    client.socket.destroy();
    await proxy.close();
  }
});

function transportOptions(nodeId: string, peers: Record<string, { host: string; port: number }>): TcpTransportOptions {
  return {
    self: { nodeId, clusterId: 'proxy-test', memberId: nodeId },
    meta: {},
    listen: { host, port: 0 },
    peers: new Map(Object.entries(peers)),
    frameBytesMax: 1 << 16,
    queueBytesMax: 1 << 20,
    queueMessagesMax: 1000,
    reconnectDelayMsMin: 10,
    reconnectDelayMsMax: 100,
  };
}

test('a transport dialling through the proxy reconnects after a cut and after a block is lifted', async () => {
  // n2 listens first; n1 reaches it only through the proxy.
  const n2 = await createTcpTransport<number>(transportOptions('n2', { n1: { host, port: 1 } }), {
    random: createPrng(1).nextFloat,
  });
  const proxy = await startTcpProxy({ listen: { host, port: 0 }, target: n2.address });
  let n1: TcpTransport<number> | null = null;
  const got: number[] = [];
  n2.onMessage((_from, n) => got.push(n));
  try {
    n1 = await createTcpTransport<number>(transportOptions('n1', { n2: proxy.address }), { random: createPrng(2).nextFloat });
    const a = n1;
    a.send('n2', 1);
    await waitFor(() => got.includes(1), 'the first message through the proxy');

    proxy.cutAll();
    await waitFor(() => !a.peerState('n2').connected, 'n1 to notice the cut');
    a.send('n2', 2);
    await waitFor(() => got.includes(2), 'a message after reconnecting through the proxy');

    proxy.setBlocked(true);
    proxy.cutAll();
    await waitFor(() => !a.peerState('n2').connected, 'n1 to notice the second cut');
    a.send('n2', 3);
    // Each dial is accepted by the proxy and closed before n2 can acknowledge it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(a.peerState('n2').connected, false);
    assert.equal(got.includes(3), false);
    proxy.setBlocked(false);
    await waitFor(() => got.includes(3), 'the queued message once the block is lifted');
    assert.equal(a.peerState('n2').connected, true);
  } finally {
    await n1?.close();
    await proxy.close();
    await n2.close();
  }
});
