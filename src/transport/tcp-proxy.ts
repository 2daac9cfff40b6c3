/**
 * A tiny TCP forwarder that integration tests put between two nodes so they can cut the
 * connection between them (cutAll) or keep it from coming back (setBlocked) without
 * touching either process. It owns its listening server and every connection pair it
 * forwards. It must never inspect or alter the bytes, buffer without bound (each
 * direction is a pipe with back-pressure), or leave a socket open after close().
 */

import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface TcpProxyOptions {
  /** Where the proxy listens, e.g. { host: '127.0.0.1', port: 0 }. */
  readonly listen: { readonly host: string; readonly port: number };
  /** Where it forwards every accepted connection. */
  readonly target: { readonly host: string; readonly port: number };
}

export interface TcpProxy {
  /** The bound address: give this to the dialling side instead of the target's. */
  readonly address: { readonly host: string; readonly port: number };
  /** Abruptly closes (TCP reset) every connection being forwarded now. */
  cutAll(): void;
  /** While blocked, new connections are accepted and closed at once; current ones live on. */
  setBlocked(blocked: boolean): void;
  /** Connections forwarded now. */
  connectionCount(): number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let blocked = false;
  let closing: Promise<void> | null = null;

  const server = net.createServer({ noDelay: true }, (client) => {
    if (blocked || closing !== null) {
      client.on('error', () => {});
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: options.target.host, port: options.target.port });
    upstream.setNoDelay(true);
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const teardown = (): void => {
      if (!pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    // Either side failing or closing ends both: a half-forwarded stream is worse than none.
    for (const socket of [client, upstream]) {
      socket.on('error', teardown);
      socket.on('close', teardown);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(new Error(`Cannot start proxy on ${options.listen.host}:${options.listen.port}: ${error.message}`));
    };
    server.once('error', onError);
    server.listen({ host: options.listen.host, port: options.listen.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;

  const cutAll = (): void => {
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      for (const socket of [pair.client, pair.upstream]) {
        // A reset, not a FIN, is what a cut cable or a dead middlebox looks like to both ends.
        if (socket.destroyed || socket.connecting) socket.destroy();
        else socket.resetAndDestroy();
      }
    }
  };

  return {
    address: { host: bound.address, port: bound.port },
    cutAll,
    setBlocked(value) {
      blocked = value;
    },
    connectionCount: () => pairs.size,
    close() {
      if (closing !== null) return closing;
      closing = new Promise<void>((resolve) => server.close(() => resolve()));
      cutAll();
      return closing;
    },
  };
}
