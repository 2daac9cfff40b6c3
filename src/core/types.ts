/**
 * The replication core's vocabulary: log entries, hard state, messages between cores,
 * cluster configuration and the `Ready` batch of effects the core hands its driver.
 *
 * The core moves opaque entries. It knows nothing of keys and values, sockets, disks or
 * clocks: time is `tick()`, randomness a seeded `Prng`, I/O is data in `Ready`.
 */

export type NodeId = string;

/**
 * `normal` carries a state-machine command (opaque bytes), `noop` is the entry a new
 * leader appends to commit its term, `config` carries an encoded `ClusterConfig`
 * (see config.ts) that takes effect at its index on every node.
 */
export type EntryKind = 'normal' | 'noop' | 'config';

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/** What must be on disk before a node speaks: its term, its vote and its commit index. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

/**
 * How many follower acks make an entry acknowledged (applied and answered):
 * `majority` is Raft, `all` is synchronous replication to the in-sync set,
 * a number W means the leader plus W followers.
 */
export type WriteQuorum = 'majority' | 'all' | number;

/** star: the leader sends to every follower. chain: head -> f1 -> ... -> tail. */
export type Topology = 'star' | 'chain';

export interface ClusterConfig {
  /** Voting members. Elections and the commit index always use a majority of these. */
  readonly members: readonly NodeId[];
  readonly writeQuorum: WriteQuorum;
  readonly topology: Topology;
  /**
   * The replica set that `all` and `chain` wait for, in chain order (absent: every member).
   * A replica that stops answering is removed by a config entry and re-added once caught
   * up; the leader never shrinks it below a majority.
   */
  readonly inSync?: readonly NodeId[];
}

/** The state a snapshot stands for: everything up to and including `index`. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly config: ClusterConfig;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term (for pre-vote requests: the term it would campaign in). */
  readonly term: number;
}

export interface PreVoteMessage extends MessageBase {
  readonly type: 'preVote';
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export interface PreVoteResponse extends MessageBase {
  readonly type: 'preVoteResp';
  readonly granted: boolean;
}

export interface VoteMessage extends MessageBase {
  readonly type: 'vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'voteResp';
  readonly granted: boolean;
}

export interface AppendMessage extends MessageBase {
  readonly type: 'append';
  /**
   * The leader that produced the entries. Equals `from` except in the chain topology,
   * where a member relays the append to its successor after persisting it; the successor
   * answers the leader directly.
   */
  readonly leader: NodeId;
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  /** Leader's commit index (majority rule). */
  readonly commit: number;
  /** Leader's acked index (write-quorum rule); equals `commit` in majority mode. */
  readonly acked: number;
}

export interface AppendResponse extends MessageBase {
  readonly type: 'appendResp';
  /** On success: the highest index this node now holds durably that matches the leader. */
  readonly matchIndex: number;
  /** On rejection: the prevIndex that did not match, and this node's last index as a hint. */
  readonly reject: boolean;
  readonly rejectedIndex: number;
  readonly lastIndexHint: number;
  /**
   * This node applied entries the leader's log does not contain (possible only with a
   * write quorum weaker than a majority): it can only be repaired by a snapshot.
   */
  readonly needSnapshot: boolean;
}

export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  /** min(leader commit, follower's match): never asks a follower to commit what it lacks. */
  readonly commit: number;
  readonly acked: number;
  /** Read-index round this heartbeat confirms leadership for (0: none). */
  readonly readRound: number;
}

export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeatResp';
  readonly readRound: number;
}

/**
 * Steps a follower onto a snapshot. The bulk data travels beside the core (the driver
 * streams it in chunks and stages it); this message is stepped into the follower's core
 * only once the data is staged, and asks it to adopt `meta`.
 */
export interface SnapshotMessage extends MessageBase {
  readonly type: 'snapshot';
  readonly meta: SnapshotMeta;
  /**
   * The leader's commit index when the snapshot was taken. Under a weak write quorum the
   * snapshot may hold entries no majority has yet: the receiver counts as committed only
   * min(meta.index, commit).
   */
  readonly commit: number;
}

/**
 * Most request ids one `readIndex` (or its answer) carries. A follower splits a larger
 * batch of reads into several messages; the decode boundary refuses longer lists.
 */
export const readIndexRequestIdsMax = 1024;

/**
 * A follower asks its leader for a linearizable read point (Raft §6.4, etcd's ReadIndex
 * from followers). `requestIds` are the follower's own read ids, answered together.
 */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'readIndex';
  readonly requestIds: readonly number[];
}

/** Why a leader (or a node that no longer leads) refused a follower's read-index request. */
export type ReadIndexRefusal = 'notLeader' | 'busy';

/**
 * The leader's answer to `readIndex`: once a majority confirmed its leadership in this
 * term after the request arrived, `index` is the read point (what its own linearizable
 * read would wait for); the follower serves the reads once it has applied `index`.
 */
export interface ReadIndexResponse extends MessageBase {
  readonly type: 'readIndexResp';
  readonly requestIds: readonly number[];
  /** The read point; 0 with a refusal. */
  readonly index: number;
  readonly refusal: ReadIndexRefusal | null;
}

export type Message =
  | PreVoteMessage
  | PreVoteResponse
  | VoteMessage
  | VoteResponse
  | AppendMessage
  | AppendResponse
  | HeartbeatMessage
  | HeartbeatResponse
  | SnapshotMessage
  | ReadIndexMessage
  | ReadIndexResponse;

export type MessageType = Message['type'];

/** A linearizable read may be served once the node has applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

/**
 * A read that will get no read point: `notLeader` (this node or the leader it asked lost
 * leadership, or the leader or term changed while a follower's request was out), `busy`
 * (the leader has too many reads pending), `timeout` (a follower's request or its answer
 * was lost: no answer within `readIndexTimeoutTicks`). Nothing stale is ever served.
 */
export interface ReadFailure {
  readonly requestId: number;
  readonly reason: ReadIndexRefusal | 'timeout';
}

export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId | null;
}

/**
 * One batch of effects. The driver handles a Ready in this order, and only one at a time:
 *   1. send `messages` (they do not depend on this Ready being durable);
 *   2. persist `snapshot` (if any), then `entries` (truncating the stored log from
 *      `entries[0].index` first) and `hardState`, and wait for the flush;
 *   3. send `messagesAfterPersist` (votes, acks: their meaning depends on durability);
 *   4. apply `committed` to the state machine, serve `readStates` once applied, fail
 *      `readsFailed`;
 *   5. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly committed: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Reads that will get no read point (see ReadFailure). */
  readonly readsFailed: readonly ReadFailure[];
  /** Followers that need a snapshot: the driver streams one to each (see SnapshotMessage). */
  readonly snapshotsToSend: readonly NodeId[];
  /**
   * Entries this node held beyond the commit index that the new leader's log replaces,
   * reported only under a weak write quorum (where they may have been acknowledged):
   * writes lost to a failover. The driver records each in the rollback report before
   * anything else; if any had been applied, the state is rebuilt from a snapshot.
   */
  readonly rolledBack: readonly Entry[];
}

/**
 * The stable log the core reads from (the persisted part; the core keeps the unstable
 * tail itself). Reads are synchronous: the LMDB implementation reads a memory map.
 */
export interface LogReader {
  /** Index of the first entry still in the log (snapshot index + 1 after compaction). */
  firstIndex(): number;
  /** Index of the last stable entry, or the snapshot index when the log is empty. */
  lastIndex(): number;
  /** Term of the entry at `index`; the snapshot's term at the snapshot index; else undefined. */
  term(index: number): number | undefined;
  /** Entries in [lo, hi), at least one if any, then stopping before `bytesMax` is exceeded. */
  entries(lo: number, hi: number, bytesMax: number): Entry[];
  /** Meta of the snapshot the log starts after (index 0, term 0 for a fresh log). */
  snapshotMeta(): SnapshotMeta;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'busy'; readonly uncommittedEntries: number };

export type ReadIndexResult =
  | { readonly ok: true; readonly requestId: number }
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'busy'; readonly pendingReads: number };
