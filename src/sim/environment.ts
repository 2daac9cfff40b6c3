/**
 * What the simulated world's parts (network, disks, faults, healer) share: the event and
 * node records, the run's counters, and `SimEnv`, the narrow view of the world each part
 * is given (virtual time, the event queue, the nodes, the trace).
 *
 * Owns these shapes only. Must never hold state or behaviour: the world owns the event
 * queue and the nodes, and each part owns its own state.
 */

import type { ClusterConfig, NodeId } from '../core/types.js';
import type { NodeDriver } from '../node/driver.js';
import type { MemoryStorage, MemoryStorageImage } from '../storage/memory.js';
import type { PeerMessage } from '../node/messages.js';
import type { PeerTransport } from '../transport/types.js';
import type { Scheduled } from './event-queue.js';
import type { SwarmConfig } from './swarm.js';
import type { Trace } from './trace.js';

export interface SimEvent extends Scheduled {
  /** Node the event happens on, or -1 for the environment and clients. */
  readonly node: number;
  /** Incarnation it belongs to; -1: whichever incarnation is up when it is due (messages). */
  readonly inc: number;
  readonly label: string;
  readonly run: () => void;
  /** Called instead of `run` when the event's node is down (or the incarnation is gone). */
  readonly dropped: (() => void) | null;
}

/** A node's end of the simulated network: the network hands it what arrives. */
export interface DeliveringTransport extends PeerTransport<PeerMessage> {
  deliver(from: NodeId, message: PeerMessage, fromMemberId: string): void;
}

export type NodeStatus = 'up' | 'down' | 'paused';

/**
 * Where a node slot stands in the cluster (membership.ts): `member` (a voter or learner of
 * the committed configuration), `joining` (its addition is proposed, not yet committed),
 * `spare` (not in the cluster; it starts with a wiped disk when added), `removed` (a
 * committed configuration left it out: stopped for good, until recycled as a spare).
 */
export type SlotMembership = 'member' | 'joining' | 'spare' | 'removed';

export interface SimNode {
  readonly index: number;
  readonly id: NodeId;
  status: NodeStatus;
  incarnation: number;
  storage: MemoryStorage | null;
  image: MemoryStorageImage | null;
  driver: NodeDriver | null;
  transport: DeliveringTransport | null;
  /** Events that arrived while paused, in arrival order. */
  deferred: SimEvent[];
  flushScheduled: boolean;
  readonly tickPeriodUs: number;
  /** Disk latency multiplier (1: normal; more while a slow-disk fault holds). */
  diskFactor: number;
  /** Bumped whenever the disk speed changes, so a stale "back to normal" event does nothing. */
  diskToken: number;
  /** A follower Ready carried entries during the current event. */
  appendedEntries: boolean;
  membership: SlotMembership;
  /**
   * The member id of the node in this slot now: `n2#0` for a first member, a new one each
   * time the slot joins again. Peers refuse what comes from (or goes to) a member id other
   * than the one their configuration holds, as a real node's handshake does.
   */
  memberId: string;
  /** Log index of the configuration entry that added it (while joining). */
  joinIndex: number;
}

export interface WorldStats {
  events: number;
  messages: number;
  messagesLost: number;
  faults: number;
  crashes: number;
  restarts: number;
  pauses: number;
  partitions: number;
  flushes: number;
  /** Membership changes proposed and accepted by a leader, and how many removed that leader itself. */
  memberChanges: number;
  leaderRemovals: number;
  /** Leadership hand-overs a leader started (hand-overs.ts). */
  handOvers: number;
}

export type WorldPhase = 'fault' | 'heal' | 'done';

/** The world as its parts see it. */
export interface SimEnv {
  readonly config: SwarmConfig;
  readonly nodeIds: readonly NodeId[];
  readonly nodes: readonly SimNode[];
  readonly trace: Trace;
  readonly stats: WorldStats;
  readonly phase: WorldPhase;
  nowUs(): number;
  /** Runs `run` in the environment after `delayUs`. */
  at(delayUs: number, label: string, run: () => void): void;
  /** Schedules an event on node `node` (incarnation `inc`, -1: whichever is up then). */
  push(delayUs: number, node: number, inc: number, label: string, run: () => void, dropped: (() => void) | null): void;
  node(index: number): SimNode;
  /** The up node leading the highest term (the first such node on a tie), or null. */
  leader(): SimNode | null;
  violation(property: string, details: string): never;
}

/** Node lifecycle operations the fault scheduler and the healer apply through the world. */
export interface NodeControl {
  /** kill -9 (clean: flush everything first, as a clean stop does). */
  crash(n: SimNode, clean: boolean): void;
  restart(n: SimNode): void;
  pause(n: SimNode): void;
  resume(n: SimNode): void;
  /** Starts spare `n` with a wiped disk as a new member that `config` (committed or not, at `index`) holds. */
  join(n: SimNode, config: ClusterConfig, index: number): void;
  /** Stops `n` for good: a committed configuration removed it (`spare`: its addition was lost; it may join again). */
  retire(n: SimNode, to: 'removed' | 'spare'): void;
  /** A removed slot becomes a spare again (a new machine with a wiped disk, under the old name). */
  recycle(n: SimNode): void;
}
