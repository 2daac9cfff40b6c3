/**
 * Framed TCP peer transport, the production PeerTransport. It owns one listening server,
 * one outbound connection per peer (used only for sending), the inbound connections
 * (used only for receiving), the handshake that names the two ends, reconnection with
 * backoff, and each peer's bounded outbound queue. It must never throw on a network
 * error, identify a peer by its source address, buffer without bound, or leave a socket
 * or timer behind after close().
 *
 * Per connection, dialler -> acceptor:
 *   1. the dialler sends a Handshake frame { clusterId, from, to, memberId, meta };
 *   2. the acceptor checks it (its cluster and its node id; an unknown dialler is a member
 *      newer than its configuration, and the member id travels with every message it
 *      sends, for the receiver to judge) and answers { type: 'ack', from, info } or
 *      { type: 'reject', reason } and closes;
 *   3. only after the ack does the dialler send data frames. The acceptor never writes
 *      after the ack, and the dialler treats anything it reads after the ack as a
 *      protocol error. A connection that breaks before the ack counts as a failed dial.
 *
 * Messages are encoded when send() is called (so the byte limits are exact) and written
 * once per event-loop turn per peer, several frames per write() call. Frames already in
 * a socket's buffer when it breaks are lost; the transport does not retransmit (see
 * types.ts). Exceptions thrown by the onMessage handler are not caught: they are the
 * receiver's bugs and crash the process like any failed assertion.
 */

import net from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { NodeId } from '../core/types.js';
import { splitHostPort } from '../stdx/host-port.js';
import { createPrng } from '../stdx/prng.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';
import { certificateNames } from './tls-files.js';
import { FrameDecoder, FrameEncoder, frameBodyBytesLimit, frameHeaderBytes } from './frame.js';
import { ackProof, handshakeProof, newChallenge, sameProof } from './peer-secret.js';
import type { Handshake, PeerAddress, PeerLinkState, PeerTransport, TcpTransportOptions } from './types.js';

export interface TcpTransportExtras {
  /**
   * Jitter source for reconnect delays, uniform in [0, 1). Default: a PRNG seeded from
   * the cluster and node ids, so nodes started together do not reconnect in lockstep.
   */
  readonly random?: () => number;
  /** How long a dial may take to connect and be acknowledged, and how long an
   * accepted connection may take to send its handshake. Default 5000. */
  readonly handshakeTimeoutMs?: number;
}

export type TcpTransport<M> = PeerTransport<M> & {
  /** The address the server is bound to (the real port when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number };
  /** Replaces the set of peers to dial (see TcpPeerTransport.setPeers). */
  setPeers(peers: ReadonlyMap<NodeId, PeerAddress>): void;
};

/** Largest handshake or handshake reply; unauthenticated peers cannot make us buffer more. */
export const handshakeBytesMax = 16 * 1024;
/** Connections that have not finished their handshake, beyond which new ones are closed. */
const pendingInboundMax = 64;
/** Frames smaller than this are copied together into one write; larger ones are written as they are. */
const coalesceFrameBytesMax = 16 * 1024;
/** Target size of one coalesced write. */
const writeBytesTarget = 64 * 1024;
/** Idle time before TCP keep-alive probes start, so a vanished peer is eventually noticed. */
const keepAliveInitialDelayMs = 10_000;
const handshakeTimeoutMsDefault = 5_000;

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry): exponential from
 * `delayMsMin`, capped at `delayMsMax`, with "equal jitter" (half fixed, half random) so
 * a flapping peer is never hammered and many nodes do not retry in step.
 */
export function reconnectDelayMs(attempt: number, delayMsMin: number, delayMsMax: number, random: () => number): number {
  const ceilingMs = Math.min(delayMsMax, delayMsMin * 2 ** Math.min(attempt, 30));
  const delayMs = ceilingMs / 2 + (random() * ceilingMs) / 2;
  return Math.round(Math.max(delayMsMin, Math.min(delayMsMax, delayMs)));
}

/**
 * Starts listening and begins dialling every peer. Resolves once the server is bound;
 * rejects if it cannot bind (e.g. the port is in use) or the options are inconsistent.
 */
export async function createTcpTransport<M>(
  options: TcpTransportOptions,
  extras: TcpTransportExtras = {},
): Promise<TcpTransport<M>> {
  validateOptions(options);
  const handshakeTimeoutMs = extras.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
  checkPositiveSafeInt(handshakeTimeoutMs, 'handshakeTimeoutMs');
  const random =
    extras.random ?? createPrng(hash32(`${options.self.clusterId}\u0000${options.self.nodeId}`)).nextFloat;

  const peerTls = options.tls;
  const server =
    peerTls === undefined
      ? net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: keepAliveInitialDelayMs })
      : // Only certificates of the cluster CA get through; the handshake then checks the name.
        tls.createServer({ ...peerTls.material(), requestCert: true, rejectUnauthorized: true, handshakeTimeout: handshakeTimeoutMs, noDelay: true, keepAlive: true, keepAliveInitialDelay: keepAliveInitialDelayMs });
  if (peerTls !== undefined) peerTls.onChange((material) => (server as tls.Server).setSecureContext({ ...material }));
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(new Error(`Cannot listen for peers on ${options.listen.host}:${options.listen.port}: ${error.message}`));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: options.listen.host, port: options.listen.port });
  });
  const bound = server.address() as AddressInfo;
  let transport: TcpPeerTransport<M>;
  try {
    transport = new TcpPeerTransport<M>(options, server, { host: bound.address, port: bound.port }, {
      random,
      handshakeTimeoutMs,
    });
  } catch (error) {
    server.close();
    throw error;
  }
  transport.start();
  return transport;
}

function validateOptions(options: TcpTransportOptions): void {
  for (const name of ['frameBytesMax', 'queueBytesMax', 'queueMessagesMax', 'reconnectDelayMsMin', 'reconnectDelayMsMax'] as const) {
    checkPositiveSafeInt(options[name], name);
  }
  if (options.frameBytesMax > frameBodyBytesLimit) {
    throw new RangeError(`frameBytesMax ${options.frameBytesMax} exceeds the uint32 length prefix (${frameBodyBytesLimit})`);
  }
  if (options.queueBytesMax < options.frameBytesMax + frameHeaderBytes) {
    throw new RangeError(
      `queueBytesMax ${options.queueBytesMax} cannot hold one frame of frameBytesMax ${options.frameBytesMax} (+${frameHeaderBytes} header bytes)`,
    );
  }
  if (options.reconnectDelayMsMax < options.reconnectDelayMsMin) {
    throw new RangeError(
      `reconnectDelayMsMax ${options.reconnectDelayMsMax} is below reconnectDelayMsMin ${options.reconnectDelayMsMin}`,
    );
  }
  if (options.peers.has(options.self.nodeId)) {
    throw new RangeError(`peers must not include this node itself ("${options.self.nodeId}")`);
  }
}

type LinkState = 'waiting' | 'dialling' | 'open' | 'closed';

/** The outbound side of one peer: its connection, its queue and its reconnect schedule. */
interface OutboundLink {
  readonly peerId: NodeId;
  readonly host: string;
  readonly port: number;
  state: LinkState;
  socket: Socket | null;
  /** Encoded frames not yet handed to the socket, oldest first. */
  frames: Buffer[];
  framesBytes: number;
  /** The last write() returned false: wait for 'drain' before writing more. */
  needsDrain: boolean;
  droppedMessages: number;
  /** Failed dials since the last acknowledged one. */
  attempt: number;
  retryTimer: NodeJS.Timeout | null;
  handshakeTimer: NodeJS.Timeout | null;
  /** With a peer secret: the challenge we sent in our handshake, for the acceptor's proof. */
  nonce: string;
}

/** An accepted connection: unauthenticated until its handshake names a known peer. */
interface InboundConnection {
  readonly socket: Socket;
  readonly decoder: FrameDecoder;
  peerId: NodeId | null;
  /** The member id it presented (once handshaken). */
  memberId: string | null;
  /** With a peer secret: the challenge we sent it. */
  readonly challenge: string;
  handshakeTimer: NodeJS.Timeout | null;
}

type HandshakeCheck = { readonly ok: true; readonly handshake: Handshake; readonly nonce: string } | { readonly ok: false; readonly reason: string };

class TcpPeerTransport<M> implements TcpTransport<M> {
  private readonly encoder: FrameEncoder;
  private readonly links = new Map<NodeId, OutboundLink>();
  private readonly inbound = new Set<InboundConnection>();
  private readonly inboundByPeer = new Map<NodeId, InboundConnection>();
  private readonly metas = new Map<NodeId, Readonly<Record<string, string>>>();
  private pendingInbound = 0;
  private handler: ((from: NodeId, message: M, fromMemberId: string | null) => void) | null = null;
  private readonly dirty = new Set<OutboundLink>();
  private flushImmediate: NodeJS.Immediate | null = null;
  private closing: Promise<void> | null = null;
  private started = false;
  /** The listening address each peer announced when it last dialled in. */
  private readonly announced = new Map<NodeId, { readonly host: string; readonly port: number }>();
  /** The member id the configuration holds for each peer (a change of it redials). */
  private readonly expectedMemberIds = new Map<NodeId, string>();

  constructor(
    private readonly options: TcpTransportOptions,
    private readonly server: Server,
    readonly address: { readonly host: string; readonly port: number },
    private readonly tuning: { readonly random: () => number; readonly handshakeTimeoutMs: number },
  ) {
    this.encoder = new FrameEncoder({ frameBytesMax: options.frameBytesMax });
    for (const [peerId, peerAddress] of options.peers) this.addLink(peerId, peerAddress);
  }

  private addLink(peerId: NodeId, address: PeerAddress): OutboundLink {
    const link: OutboundLink = {
      peerId,
      host: address.host,
      port: address.port,
      state: 'waiting',
      socket: null,
      frames: [],
      framesBytes: 0,
      needsDrain: false,
      droppedMessages: 0,
      attempt: 0,
      retryTimer: null,
      handshakeTimer: null,
      nonce: '',
    };
    this.links.set(peerId, link);
    if (address.memberId !== undefined) this.expectedMemberIds.set(peerId, address.memberId);
    else this.expectedMemberIds.delete(peerId);
    // Fail at once, not on the first dial, if the meta cannot fit a handshake.
    this.handshakeFrame(peerId);
    return link;
  }

  /**
   * The configuration changed: dial peers that joined, drop the links (and queued
   * messages) of those that left, redial one whose address or member id changed.
   */
  setPeers(given: ReadonlyMap<NodeId, PeerAddress>): void {
    if (this.closing !== null) return;
    // Where a peer said it listens when it dialled us is fresher than any configuration.
    const peers = new Map([...given].map(([id, address]) => [id, { ...address, ...this.announced.get(id) }]));
    for (const [peerId, link] of [...this.links]) {
      const next = peers.get(peerId);
      const expected = this.expectedMemberIds.get(peerId);
      if (next !== undefined && next.host === link.host && next.port === link.port && next.memberId === expected) continue;
      this.closeLink(link);
      this.links.delete(peerId);
      this.expectedMemberIds.delete(peerId);
    }
    for (const [peerId, address] of peers) {
      if (peerId === this.options.self.nodeId || this.links.has(peerId)) continue;
      const link = this.addLink(peerId, address);
      if (this.started) this.dial(link);
    }
  }

  /**
   * A known peer dialled in announcing another listening address than the one we dial
   * (it moved, or restarted on a new port): dial it there from now on.
   */
  private followMovedPeer(peerId: NodeId, announced: string | undefined): void {
    const hp = announced === undefined ? null : splitHostPort(announced);
    if (hp === null || hp.port === 0) return;
    const { host, port } = hp;
    this.announced.set(peerId, hp);
    const link = this.links.get(peerId);
    if (link === undefined || (host === link.host && port === link.port)) return;
    const memberId = this.expectedMemberIds.get(peerId);
    this.closeLink(link);
    this.links.delete(peerId);
    const moved = this.addLink(peerId, { host, port, ...(memberId !== undefined ? { memberId } : {}) });
    if (this.started) this.dial(moved);
  }

  private closeLink(link: OutboundLink): void {
    link.state = 'closed';
    this.clearLinkTimers(link);
    link.frames = [];
    link.framesBytes = 0;
    this.dirty.delete(link);
    const socket = link.socket;
    link.socket = null;
    socket?.destroy();
  }

  start(): void {
    this.started = true;
    if (this.options.tls === undefined) {
      this.server.on('connection', (socket) => this.accept(socket));
    } else {
      this.server.on('secureConnection', (socket: TLSSocket) => this.accept(socket));
      this.server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
        this.options.onReject?.(`connection from ${describeRemote(socket)} refused by TLS: ${error.message}`);
      });
    }
    // After listening, server errors (e.g. EMFILE on accept) are transient: keep serving.
    this.server.on('error', () => {});
    for (const link of this.links.values()) this.dial(link);
  }

  send(to: NodeId, message: M): boolean {
    if (this.closing !== null) return false;
    const link = this.links.get(to);
    if (link === undefined) return false;
    if (link.frames.length >= this.options.queueMessagesMax) {
      link.droppedMessages++;
      return false;
    }
    const frame = this.encoder.encode(message);
    if (frame === null) {
      link.droppedMessages++;
      return false;
    }
    const queuedBytes = link.framesBytes + (link.socket?.writableLength ?? 0);
    if (queuedBytes + frame.length > this.options.queueBytesMax) {
      link.droppedMessages++;
      return false;
    }
    link.frames.push(frame);
    link.framesBytes += frame.length;
    if (link.state === 'open' && !link.needsDrain) {
      this.dirty.add(link);
      this.flushImmediate ??= setImmediate(this.flushDirty);
    }
    return true;
  }

  onMessage(handler: (from: NodeId, message: M, fromMemberId: string | null) => void): void {
    this.handler = handler;
  }

  peerState(id: NodeId): PeerLinkState {
    const link = this.links.get(id);
    if (link === undefined) return { connected: false, queuedMessages: 0, queuedBytes: 0, droppedMessages: 0 };
    return {
      connected: link.state === 'open',
      queuedMessages: link.frames.length,
      queuedBytes: link.framesBytes + (link.socket?.writableLength ?? 0),
      droppedMessages: link.droppedMessages,
    };
  }

  peerMeta(id: NodeId): Readonly<Record<string, string>> | null {
    return this.metas.get(id) ?? null;
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.dirty.clear();
    for (const link of this.links.values()) this.closeLink(link);
    for (const connection of this.inbound) {
      if (connection.handshakeTimer !== null) clearTimeout(connection.handshakeTimer);
      connection.handshakeTimer = null;
      connection.socket.destroy();
    }
    this.closing = new Promise<void>((resolve) => {
      this.server.close(() => resolve());
    });
    return this.closing;
  }

  // ---- outbound ----

  private dial(link: OutboundLink): void {
    link.retryTimer = null;
    if (this.closing !== null || link.state === 'closed') return;
    link.state = 'dialling';
    link.needsDrain = false;
    link.nonce = '';
    const peerTls = this.options.tls;
    const socket =
      peerTls === undefined
        ? net.connect({ host: link.host, port: link.port })
        : tls.connect({
            host: link.host,
            port: link.port,
            secureContext: peerTls.secureContext(),
            servername: link.peerId,
            // The cluster CA signed it (checked by TLS); it must also be the node we dialled.
            checkServerIdentity: (_host, cert) =>
              certificateNames(cert).includes(link.peerId) ? undefined : new Error(`its certificate names ${certificateNames(cert).join(', ') || 'nothing'}, not ${link.peerId}`),
          });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, keepAliveInitialDelayMs);
    link.socket = socket;
    const decoder = new FrameDecoder({
      frameBytesMax: handshakeBytesMax,
      copyBinaries: false,
      onFrame: (reply) => this.onDialReply(link, socket, decoder, reply),
    });
    link.handshakeTimer = setTimeout(() => {
      link.handshakeTimer = null;
      this.dropConnection(link, socket);
    }, this.tuning.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      if (decoder.push(chunk) !== null) this.dropConnection(link, socket);
    });
    socket.on('drain', () => {
      if (link.socket !== socket) return;
      link.needsDrain = false;
      this.flushLink(link);
    });
    // 'close' always follows 'error'; reconnecting is done there, once.
    socket.on('error', (error: Error & { code?: string }) => {
      if (peerTls !== undefined && link.state !== 'open' && error.code !== 'ECONNREFUSED' && error.code !== 'ECONNRESET') {
        this.options.onReject?.(`peer ${link.peerId} at ${link.host}:${link.port}: TLS: ${error.message}`);
      }
    });
    socket.on('close', () => this.dropConnection(link, socket));
    // With a peer secret the acceptor speaks first (its challenge); see onDialReply.
    if (this.options.peerSecret === undefined) socket.write(this.handshakeFrame(link.peerId));
  }

  private onDialReply(link: OutboundLink, socket: Socket, decoder: FrameDecoder, reply: unknown): void {
    if (link.socket !== socket) return;
    if (link.state === 'open') {
      // The acceptor must not write after its ack: the stream is not what we think it is.
      decoder.stop();
      this.dropConnection(link, socket);
      return;
    }
    const secret = this.options.peerSecret;
    if (isRecord(reply) && reply['type'] === 'challenge' && typeof reply['challenge'] === 'string' && secret !== undefined && link.nonce === '') {
      link.nonce = newChallenge();
      socket.write(this.handshakeFrame(link.peerId, { challenge: reply['challenge'], nonce: link.nonce }));
      return;
    }
    const proven = secret === undefined || (isRecord(reply) && sameProof(reply['proof'], ackProof(secret, link.nonce, link.peerId)));
    if (isRecord(reply) && reply['type'] === 'ack' && reply['from'] === link.peerId && proven) {
      if (link.handshakeTimer !== null) clearTimeout(link.handshakeTimer);
      link.handshakeTimer = null;
      link.state = 'open';
      link.attempt = 0;
      this.options.onAck?.(link.peerId, isStringRecord(reply['info']) ? reply['info'] : {});
      this.flushLink(link);
      return;
    }
    decoder.stop();
    const reason =
      isRecord(reply) && reply['type'] === 'reject' && typeof reply['reason'] === 'string'
        ? reply['reason']
        : isRecord(reply) && reply['type'] === 'challenge'
          ? 'it asks for the peer secret, and this node has none (--peer-secret-file)'
          : isRecord(reply) && reply['type'] === 'ack' && !proven
            ? 'its answer does not prove the peer secret'
            : isRecord(reply) && reply['type'] === 'ack'
              ? `acknowledged as node ${JSON.stringify(reply['from'])}, expected "${link.peerId}"`
              : 'malformed handshake reply';
    this.options.onReject?.(`peer ${link.peerId} at ${link.host}:${link.port} refused our handshake: ${reason}`);
    this.dropConnection(link, socket);
  }

  /** Tears down `socket` if it is still the link's connection and schedules the next dial. */
  private dropConnection(link: OutboundLink, socket: Socket): void {
    if (link.socket !== socket) return;
    link.socket = null;
    link.needsDrain = false;
    if (link.state === 'closed') return;
    this.dirty.delete(link);
    if (link.handshakeTimer !== null) clearTimeout(link.handshakeTimer);
    link.handshakeTimer = null;
    socket.destroy();
    if (this.closing !== null) return;
    link.state = 'waiting';
    const delayMs = reconnectDelayMs(
      link.attempt,
      this.options.reconnectDelayMsMin,
      this.options.reconnectDelayMsMax,
      this.tuning.random,
    );
    link.attempt++;
    link.retryTimer = setTimeout(() => this.dial(link), delayMs);
  }

  private readonly flushDirty = (): void => {
    this.flushImmediate = null;
    for (const link of this.dirty) this.flushLink(link);
    this.dirty.clear();
  };

  /**
   * Hands every waiting frame to the socket: small frames are copied together into
   * writes of about writeBytesTarget, large ones written as they are, all within one
   * cork so the kernel sees few writev calls. Then honours write()'s back-pressure.
   */
  private flushLink(link: OutboundLink): void {
    const socket = link.socket;
    if (link.state !== 'open' || socket === null || link.needsDrain || link.frames.length === 0) return;
    const frames = link.frames;
    link.frames = [];
    link.framesBytes = 0;
    let writable = true;
    let run: Buffer[] = [];
    let runBytes = 0;
    const writeRun = (): void => {
      if (run.length === 0) return;
      writable = socket.write(run.length === 1 ? (run[0] as Buffer) : Buffer.concat(run, runBytes)) && writable;
      run = [];
      runBytes = 0;
    };
    socket.cork();
    for (const frame of frames) {
      if (frame.length >= coalesceFrameBytesMax) {
        writeRun();
        writable = socket.write(frame) && writable;
        continue;
      }
      if (runBytes + frame.length > writeBytesTarget) writeRun();
      run.push(frame);
      runBytes += frame.length;
    }
    writeRun();
    socket.uncork();
    if (!writable) link.needsDrain = true;
  }

  private clearLinkTimers(link: OutboundLink): void {
    if (link.retryTimer !== null) clearTimeout(link.retryTimer);
    if (link.handshakeTimer !== null) clearTimeout(link.handshakeTimer);
    link.retryTimer = null;
    link.handshakeTimer = null;
  }

  /** Our handshake to `peerId`; with a peer secret, the proof for the acceptor's `challenge` and our own `nonce`. */
  private handshakeFrame(peerId: NodeId, secretExchange?: { readonly challenge: string; readonly nonce: string }): Buffer {
    const handshake: Handshake = {
      clusterId: this.options.self.clusterId,
      from: this.options.self.nodeId,
      to: peerId,
      memberId: this.options.self.memberId,
      meta: this.options.meta,
    };
    const secret = this.options.peerSecret;
    const proof =
      secret !== undefined && secretExchange !== undefined
        ? { nonce: secretExchange.nonce, proof: handshakeProof(secret, secretExchange.challenge, { ...handshake, nonce: secretExchange.nonce }) }
        : {};
    const frame = this.encoder.encode({ ...handshake, ...proof });
    if (frame === null || frame.length - frameHeaderBytes > handshakeBytesMax) {
      throw new RangeError(`the handshake to ${peerId} does not fit in ${handshakeBytesMax} bytes: shorten meta`);
    }
    return frame;
  }

  private encodeControl(message: Record<string, string | Readonly<Record<string, string>>>): Buffer {
    const frame = this.encoder.encode(message);
    if (frame === null) throw new RangeError(`frameBytesMax ${this.options.frameBytesMax} is too small for control frames`);
    return frame;
  }

  // ---- inbound ----

  private accept(socket: Socket): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    if (this.pendingInbound >= pendingInboundMax) {
      this.options.onReject?.(
        `connection from ${describeRemote(socket)} refused: ${pendingInboundMax} connections are already waiting for their handshake`,
      );
      socket.destroy();
      return;
    }
    this.pendingInbound++;
    socket.on('error', () => {});
    const connection: InboundConnection = {
      socket,
      decoder: new FrameDecoder({
        frameBytesMax: handshakeBytesMax,
        // Received payloads (entries) may be retained long after the chunk they came in.
        copyBinaries: true,
        onFrame: (message) => this.onInboundFrame(connection, message),
      }),
      peerId: null,
      memberId: null,
      challenge: this.options.peerSecret !== undefined ? newChallenge() : '',
      handshakeTimer: setTimeout(() => {
        connection.handshakeTimer = null;
        if (connection.peerId === null && !connection.decoder.isStopped) {
          this.options.onReject?.(
            `connection from ${describeRemote(socket)} refused: no handshake within ${this.tuning.handshakeTimeoutMs} ms`,
          );
        }
        socket.destroy();
      }, this.tuning.handshakeTimeoutMs),
    };
    this.inbound.add(connection);
    if (this.options.peerSecret !== undefined) socket.write(this.encodeControl({ type: 'challenge', challenge: connection.challenge }));
    socket.on('data', (chunk: Buffer) => {
      const error = connection.decoder.push(chunk);
      if (error === null) return;
      this.options.onReject?.(
        `connection from ${connection.peerId ?? 'unidentified peer'} at ${describeRemote(socket)} closed: ${error.message}`,
      );
      socket.destroy();
    });
    socket.on('close', () => {
      if (connection.handshakeTimer !== null) clearTimeout(connection.handshakeTimer);
      connection.handshakeTimer = null;
      this.inbound.delete(connection);
      if (connection.peerId === null) this.pendingInbound--;
      else if (this.inboundByPeer.get(connection.peerId) === connection) this.inboundByPeer.delete(connection.peerId);
    });
  }

  private onInboundFrame(connection: InboundConnection, message: unknown): void {
    if (connection.peerId !== null) {
      // Peers are trusted once authenticated; the receiver validates message contents.
      this.handler?.(connection.peerId, message as M, connection.memberId);
      return;
    }
    const check = checkHandshake(message, this.options, connection.challenge);
    if (!check.ok) {
      connection.decoder.stop();
      this.options.onReject?.(`handshake from ${describeRemote(connection.socket)} refused: ${check.reason}`);
      // Tell the dialler why (for its logs), then close. The handshake timer stays armed
      // and destroys the socket if the dialler never closes its side.
      connection.socket.end(this.encodeControl({ type: 'reject', reason: check.reason }));
      return;
    }
    const peerId = check.handshake.from;
    if (this.options.tls !== undefined) {
      const names = certificateNames((connection.socket as TLSSocket).getPeerCertificate());
      if (!names.includes(peerId)) {
        const reason = `its certificate names ${names.join(', ') || 'nothing'}, not ${peerId}`;
        connection.decoder.stop();
        this.options.onReject?.(`handshake from ${describeRemote(connection.socket)} refused: ${reason}`);
        connection.socket.end(this.encodeControl({ type: 'reject', reason }));
        return;
      }
    }
    connection.peerId = peerId;
    connection.memberId = check.handshake.memberId;
    this.pendingInbound--;
    if (connection.handshakeTimer !== null) clearTimeout(connection.handshakeTimer);
    connection.handshakeTimer = null;
    connection.decoder.setFrameBytesMax(this.options.frameBytesMax);
    this.metas.set(peerId, Object.freeze({ ...check.handshake.meta }));
    this.followMovedPeer(peerId, check.handshake.meta['peer']);
    // The peer dials one connection at a time: an older one from it is dead or dying.
    const previous = this.inboundByPeer.get(peerId);
    this.inboundByPeer.set(peerId, connection);
    previous?.socket.destroy();
    const secret = this.options.peerSecret;
    const proof = secret !== undefined ? { proof: ackProof(secret, check.nonce, this.options.self.nodeId) } : {};
    connection.socket.write(this.encodeControl({ type: 'ack', from: this.options.self.nodeId, info: this.options.ackInfo?.(peerId) ?? {}, ...proof }));
  }
}

function checkHandshake(value: unknown, options: TcpTransportOptions, challenge: string): HandshakeCheck {
  if (!isRecord(value)) return { ok: false, reason: 'malformed handshake: not a map' };
  const { clusterId, from, to, memberId, meta } = value;
  if (typeof clusterId !== 'string' || typeof from !== 'string' || typeof to !== 'string' || typeof memberId !== 'string' || !isStringRecord(meta)) {
    return { ok: false, reason: 'malformed handshake: expected string clusterId, from, to, memberId and a string map meta' };
  }
  if (clusterId !== options.self.clusterId) {
    return { ok: false, reason: `cluster id ${JSON.stringify(clusterId)} is not ${JSON.stringify(options.self.clusterId)}` };
  }
  if (to !== options.self.nodeId) {
    return { ok: false, reason: `addressed to node ${JSON.stringify(to)}, but this is node ${JSON.stringify(options.self.nodeId)}` };
  }
  const nonce = typeof value['nonce'] === 'string' ? value['nonce'] : '';
  if (options.peerSecret !== undefined) {
    // One answer for a wrong and a missing secret: nothing to learn from the difference.
    if (nonce === '' || !sameProof(value['proof'], handshakeProof(options.peerSecret, challenge, { clusterId, from, to, memberId, nonce }))) {
      return { ok: false, reason: `${from} did not prove the peer secret` };
    }
  }
  return { ok: true, handshake: { clusterId, from, to, memberId, meta }, nonce };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isRecord(value) && Object.values(value).every((v) => typeof v === 'string');
}

function describeRemote(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

/** FNV-1a: a stable seed from a string (not for security). */
function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
