/**
 * In-process peer links for unit tests of the node driver: every node that joins a
 * network can send to every other one. It owns one bounded FIFO per (sender, receiver)
 * link and delivers asynchronously (setImmediate), in order per link, never inside the
 * sender's send() call. It must never deliver to a closed transport, grow a queue past
 * its limit, or keep a timer alive after every member has closed.
 *
 * Messages are passed by reference, not serialised: the message types are readonly, so
 * sharing is safe, but a test that needs the TCP codec's exact behaviour (e.g. Buffer
 * payloads arriving as Uint8Array) should set `encode: true`.
 */

import type { NodeId } from '../core/types.js';
import { BoundedQueue } from '../stdx/bounded-queue.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';
import { FrameDecoder, FrameEncoder } from './frame.js';
import type { PeerLinkState, PeerTransport } from './types.js';

export interface MemoryNetworkOptions {
  /** Per-link limit of messages sent and not yet delivered. Default 1024. */
  readonly queueMessagesMax?: number;
  /** Round-trip every message through the frame codec, as TCP would. Default false. */
  readonly encode?: boolean;
  /** Largest encoded message when `encode` is on. Default 16 MiB. */
  readonly frameBytesMax?: number;
}

export interface MemoryNetwork<M> {
  /**
   * Adds a node. Throws if a transport with this id is open already; after it closes the
   * id may join again (a restart), and messages still in flight to it reach the new one.
   */
  join(nodeId: NodeId, meta?: Readonly<Record<string, string>>): PeerTransport<M>;
  /** Ids of the members whose transports are open. */
  members(): NodeId[];
  /** Messages sent and not yet delivered or dropped, over every link. */
  inFlight(): number;
}

const queueMessagesMaxDefault = 1024;
const frameBytesMaxDefault = 16 * 1024 * 1024;

/** One direction between two members, created on first send. */
interface Link<M> {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly queue: BoundedQueue<M>;
  scheduled: NodeJS.Immediate | null;
}

interface Member<M> {
  readonly nodeId: NodeId;
  readonly meta: Readonly<Record<string, string>>;
  handler: ((from: NodeId, message: M, fromMemberId: string | null) => void) | null;
  /** Outgoing links, by receiver id. */
  readonly links: Map<NodeId, Link<M>>;
  readonly droppedMessages: Map<NodeId, number>;
  open: boolean;
}

export function createMemoryNetwork<M>(options: MemoryNetworkOptions = {}): MemoryNetwork<M> {
  const queueMessagesMax = options.queueMessagesMax ?? queueMessagesMaxDefault;
  checkPositiveSafeInt(queueMessagesMax, 'queueMessagesMax');
  const roundTrip = options.encode === true ? createRoundTrip<M>(options.frameBytesMax ?? frameBytesMaxDefault) : null;
  /** Open members by id. */
  const open = new Map<NodeId, Member<M>>();
  /** Meta of every node that ever joined: what it "advertised when it last dialled". */
  const metas = new Map<NodeId, Readonly<Record<string, string>>>();
  let inFlight = 0;

  const deliver = (sender: Member<M>, link: Link<M>): void => {
    link.scheduled = null;
    // Deliver what was queued when this turn started; later sends wait for the next turn,
    // so a receiver that answers every message cannot starve the event loop.
    let count = link.queue.length;
    while (count-- > 0 && sender.open) {
      const message = link.queue.shift() as M;
      inFlight--;
      const receiver = open.get(link.to);
      if (receiver === undefined) {
        bumpDropped(sender, link.to);
        continue;
      }
      receiver.handler?.(sender.nodeId, message, null);
    }
    if (link.queue.length > 0 && sender.open) link.scheduled = setImmediate(deliver, sender, link);
  };

  const bumpDropped = (member: Member<M>, peerId: NodeId): void => {
    member.droppedMessages.set(peerId, (member.droppedMessages.get(peerId) ?? 0) + 1);
  };

  return {
    join(nodeId, meta = {}) {
      if (open.has(nodeId)) throw new Error(`Cannot join ${nodeId}: a transport with this id is already open`);
      const member: Member<M> = {
        nodeId,
        meta: Object.freeze({ ...meta }),
        handler: null,
        links: new Map(),
        droppedMessages: new Map(),
        open: true,
      };
      open.set(nodeId, member);
      metas.set(nodeId, member.meta);

      const transport: PeerTransport<M> = {
        send(to, message) {
          if (!member.open || to === nodeId || !metas.has(to)) return false;
          let link = member.links.get(to);
          if (link === undefined) {
            link = { from: nodeId, to, queue: new BoundedQueue<M>(queueMessagesMax), scheduled: null };
            member.links.set(to, link);
          }
          const carried = roundTrip === null ? message : roundTrip(message);
          if (carried === undefined || !link.queue.push(carried)) {
            bumpDropped(member, to);
            return false;
          }
          inFlight++;
          link.scheduled ??= setImmediate(deliver, member, link);
          return true;
        },
        onMessage(handler) {
          member.handler = handler;
        },
        peerState(id): PeerLinkState {
          return {
            connected: member.open && open.has(id) && id !== nodeId,
            queuedMessages: member.links.get(id)?.queue.length ?? 0,
            queuedBytes: 0,
            droppedMessages: member.droppedMessages.get(id) ?? 0,
          };
        },
        peerMeta(id) {
          return id === nodeId ? null : (metas.get(id) ?? null);
        },
        close() {
          if (!member.open) return Promise.resolve();
          member.open = false;
          member.handler = null;
          for (const link of member.links.values()) {
            if (link.scheduled !== null) clearImmediate(link.scheduled);
            link.scheduled = null;
            inFlight -= link.queue.drain().length;
          }
          if (open.get(nodeId) === member) open.delete(nodeId);
          return Promise.resolve();
        },
      };
      return transport;
    },
    members: () => [...open.keys()],
    inFlight: () => inFlight,
  };
}

/** Encodes and decodes a message with the TCP frame codec; undefined if it is too large. */
function createRoundTrip<M>(frameBytesMax: number): (message: M) => M | undefined {
  const encoder = new FrameEncoder({ frameBytesMax });
  let decoded: M | undefined;
  const decoder = new FrameDecoder({
    frameBytesMax,
    copyBinaries: true,
    onFrame: (message) => {
      decoded = message as M;
    },
  });
  return (message) => {
    const frame = encoder.encode(message);
    if (frame === null) return undefined;
    decoded = undefined;
    const error = decoder.push(frame);
    if (error !== null) throw new Error(`memory transport codec round trip failed: ${error.message}`);
    return decoded;
  };
}
