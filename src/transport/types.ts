/**
 * Peer transport interfaces. Implementations: framed TCP (tcp.ts, production), in-memory
 * links (memory.ts, unit tests), and a fault wrapper (faults.ts) that delays, drops or
 * partitions messages of any inner transport, switchable at run time.
 *
 * A transport delivers whole messages, possibly out of order across reconnects, possibly
 * not at all; it never blocks and never grows without bound. Raft tolerates loss,
 * duplication and reordering, so the transport does not retransmit.
 */

import type { NodeId } from '../core/types.js';
import type { ReloadableTls } from './tls-files.js';

export interface PeerTransport<M> {
  /**
   * Queues `message` for `to`. Returns false (and drops it) when `to` is unknown or its
   * outbound queue is at its limit: the caller's protocol retries, no buffer grows.
   * Never throws on network errors; a broken connection is re-dialled with backoff.
   */
  send(to: NodeId, message: M): boolean;

  /**
   * Sets the one handler that receives every incoming message, with the sender's id and
   * the member id it presented when it connected (null where the transport has none).
   */
  onMessage(handler: (from: NodeId, message: M, fromMemberId: string | null) => void): void;

  /** What /status shows per peer. */
  peerState(id: NodeId): PeerLinkState;

  /** The `meta` the peer advertised when it last dialled us, or null if it never has. */
  peerMeta(id: NodeId): Readonly<Record<string, string>> | null;

  /** Stops listening, closes every connection, drops queued messages. */
  close(): Promise<void>;
}

export interface PeerLinkState {
  /** An outbound connection to the peer is established and handshaken. */
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Messages dropped (queue full, unknown peer, fault rules) since start. */
  readonly droppedMessages: number;
}

/** Identity exchanged on every new connection; a mismatch closes the connection. */
export interface Handshake {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The dialler's member id (created when it was added; see core MemberInfo). */
  readonly memberId: string;
  /** What the dialling node advertises about itself, e.g. { http: 'http://127.0.0.1:7001' }. */
  readonly meta: Readonly<Record<string, string>>;
}

/** Where a peer listens, and the member id this node's configuration holds for it (absent: not known). */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
  readonly memberId?: string;
}

export interface TcpTransportOptions {
  readonly self: { readonly nodeId: NodeId; readonly clusterId: string; readonly memberId: string };
  /** Sent in every handshake this node makes (see Handshake.meta). */
  readonly meta: Readonly<Record<string, string>>;
  /** Where to listen for peers, e.g. { host: '127.0.0.1', port: 0 } (0: any free port). */
  readonly listen: { readonly host: string; readonly port: number };
  /**
   * Every other member and the exact address to dial it at (setPeers changes the set as
   * the configuration changes). A node not in it may still dial in: it is a member newer
   * than this node's configuration. Member ids are not checked here: the receiver judges
   * each message by the member id its sender presented (node/driver.ts).
   */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /** Largest encoded message accepted or sent; larger ones are dropped / close the link. */
  readonly frameBytesMax: number;
  /** Per-peer outbound queue limits: bytes buffered in the socket plus waiting. */
  readonly queueBytesMax: number;
  readonly queueMessagesMax: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  /**
   * Called, for logs, when a connection is refused or closed for a protocol reason: a
   * handshake refused either way (wrong cluster, unknown node) or a frame over the limit.
   */
  readonly onReject?: (reason: string) => void;
  /** Facts about this node an acceptor adds to its ack, for the dialler (e.g. whether it has seen the dialler before). */
  readonly ackInfo?: (dialler: NodeId) => Readonly<Record<string, string>>;
  /** A peer acknowledged our handshake, with its ackInfo. */
  readonly onAck?: (peer: NodeId, info: Readonly<Record<string, string>>) => void;
  /**
   * The cluster's shared peer secret (peer-secret.ts): peers prove they know it by an HMAC
   * challenge in the handshake, both ways; a peer that cannot is refused. Never logged.
   */
  readonly peerSecret?: Uint8Array;
  /**
   * Mutual TLS between peers: this node's certificate and key, and the cluster CA that must
   * have signed every peer's. A connection whose certificate is not from that CA, or does
   * not name the node id it claims (CN or DNS name), is refused before its handshake is
   * read; the dialler checks the acceptor names the node it dialled. Reloaded material
   * (SIGHUP) serves the next connections.
   */
  readonly tls?: ReloadableTls;
}

/** Fault rules for faults.ts; every field may be changed at run time. */
export interface FaultRules {
  /** Uniform extra delay per outgoing message, in ms (0, 0: none). */
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  /** Probability of dropping an outgoing message. */
  readonly dropRate: number;
  /** Peers this node must not send to (one-way partition; set both sides for two-way). */
  readonly blockedTo: readonly NodeId[];
  /** Peers whose incoming messages this node discards. */
  readonly blockedFrom: readonly NodeId[];
}
