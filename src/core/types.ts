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

/**
 * What the cluster records about a member beside its id (opaque to the core, which only
 * carries it): the random member id created when it was added (a node whose data
 * directory holds another one is not this member: see node identity in docs/operations.md)
 * and the addresses its peers and clients reach it at.
 */
export interface MemberInfo {
  readonly memberId: string;
  /** host:port of its peer listener. */
  readonly peer: string;
  readonly http?: string;
  readonly grpc?: string;
}

export interface ClusterConfig {
  /** Voting members. Elections and the commit index always use a majority of these. */
  readonly members: readonly NodeId[];
  /**
   * Learners: they receive the log like any follower but never vote, campaign or count
   * toward a commit, an acknowledgement or check-quorum (membership.ts). Absent: none.
   */
  readonly learners?: readonly NodeId[];
  /** Member ids and addresses, by node id (absent for a cluster bootstrapped before they existed). */
  readonly directory?: Readonly<Record<NodeId, MemberInfo>>;
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
  /**
   * The campaign follows a leader's TimeoutNow (a leadership transfer): voters grant it
   * even while they still hear from that leader (the check-quorum lease).
   */
  readonly transfer: boolean;
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
  /**
   * Sent only to tell a follower of a new commit (or acked) index: no entries, to a follower
   * the leader replicates to. Accepted, it is not answered: the answer would tell the
   * leader nothing it does not know, and for a write that comes alone it was a third of
   * the messages. Refused (the follower's log does not hold prevIndex/prevTerm), it is
   * answered as any append. Absent on every other append.
   */
  readonly quiet?: true;
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
/**
 * A leader hands over its leadership (Raft thesis §3.10): the recipient, whose log the
 * leader has just seen match its own, campaigns at once without a pre-vote.
 */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeoutNow';
}

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
  | ReadIndexResponse
  | TimeoutNowMessage;

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

/** The core's state as its driver reports it (/status) and tests inspect it. */
export interface CoreStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId | null;
  leader: NodeId | null;
  commitIndex: number;
  ackedIndex: number;
  appliedIndex: number;
  lastIndex: number;
  firstIndex: number;
  config: ClusterConfig;
  configIndex: number;
  /** Read points this node gave by its read lease as leader (its own reads and its followers'), since it started. */
  readsByLease: number;
  /**
   * The leader's view of each replica. `answeredRecently`: it answered an append or a
   * heartbeat within the last election timeout (the window check-quorum judges by); false
   * for a peer that is dead, partitioned or paused, whose link may still look open.
   */
  progress: { id: NodeId; match: number; next: number; state: string; recentActive: boolean; answeredRecently: boolean }[];
}

export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId | null;
}

/**
 * The contract between the core and its driver: the one written statement of the order of
 * effects (node/driver.ts implements it; the simulator and the interaction tests drive it).
 *
 * The core hands out its effects through three calls. Each effect comes out exactly once,
 * through whichever call drains it first:
 *
 *   - `takeMessages()`: messages whose meaning does not depend on anything being durable
 *     here: a leader's appends and heartbeats, heartbeat responses, read-index requests
 *     and answers. A leader sends its entries before its own flush of them (Raft §10.2.1):
 *     it counts itself toward the commit index only once they are durable (`advance`).
 *   - `takeApplicable()`: entries to apply, confirmed read points, failed reads.
 *   - `ready()`: a `Ready`, the batch to persist, with whatever of the above accumulated
 *     since the last take (in `messages`, `committed`, `readStates`, `readsFailed`).
 *
 * The first two may be called at any time, as often as the driver likes (it calls them
 * after every input); they never wait for a Ready in flight, which is what lets a leader's
 * appends and its applies proceed while its own fsyncs run. `ready()` may be called only
 * while `hasReady()` is true; every Ready it returns must be advanced.
 *
 * For each Ready, in this order:
 *   1. record `rolledBack` in the rollback report, before anything else of this Ready;
 *   2. send `messages` at once (what `takeMessages()` yields, the same way);
 *   3. apply `committed` at once, in index order (entries from `takeApplicable()` and from
 *      Readys form one gap-free sequence), then serve the reads in `readStates` once the
 *      state machine has applied their `index`, and fail `readsFailed`. Applying never
 *      waits for a flush: the core hands out only entries acknowledged by the write-quorum
 *      rule AND already durable in this node's log (written by a Ready already advanced,
 *      or found on disk at start);
 *   4. start persisting: `snapshot` (if any), then `entries` (truncating the stored log
 *      from `entries[0].index` first) and `hardState`, as one write. Writes become durable
 *      in the order the Readys were handed out. A `hardState` that differs from the last
 *      one written only in `commit` may instead ride with a later write: the stored commit
 *      index is a lower bound a restarted node raises when the leader tells it;
 *   5. once this Ready's write AND every earlier Ready's are durable (a Ready with nothing
 *      to write waits for the earlier ones too): send `messagesAfterPersist` (votes, vote
 *      and append responses, chain relays: each promises durable state, so none leaves
 *      before the flush that covers it), start streaming a snapshot to each of
 *      `snapshotsToSend`, then call `advance(ready)`.
 *
 * Steps 2 and 3 never wait for step 4; a driver whose store is synchronous may as well do
 * them after it (the interaction tests do).
 *
 * In flight: up to `persistsInFlightMax` Readys (CoreOptions) may be handed out and not yet
 * advanced, so the next batch is written while the last one syncs; `hasReady()` is false
 * at the limit, and proposals and messages arriving meanwhile form the next Ready (group
 * commit). Readys are advanced strictly in the order handed out. A Ready carrying a
 * snapshot is handed out only when no other is in flight, and none after it until it is
 * advanced. `advance(ready)` tells the core that everything `ready` wrote is durable: its
 * entries join the stable log, a leader counts them toward its own match (so the commit
 * index may move), and they become applicable.
 *
 * `softState` is volatile: the driver may observe it at any time (it does so at step 5).
 */
export interface Ready {
  /** The role or leader changed (null: unchanged). */
  readonly softState: SoftState | null;
  /** To persist with `entries` (null: unchanged; see step 4 for a change of commit alone). */
  readonly hardState: HardState | null;
  /** A snapshot to adopt (its data is staged already): the stored log restarts after it. */
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
  /** May leave at once (step 2). */
  readonly messages: readonly Message[];
  /** Leave only once this Ready and every earlier one are durable (step 5). */
  readonly messagesAfterPersist: readonly Message[];
  /** Durable here and acknowledged: apply at once (step 3). */
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

/**
 * `index`: the read point, when the leader's read lease confirmed the read at once (no
 * ReadState follows: serve once applied up to it); null: it comes later, as a ReadState
 * or a ReadFailure with the same requestId.
 */
export type ReadIndexResult =
  | { readonly ok: true; readonly requestId: number; readonly index: number | null }
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'busy'; readonly pendingReads: number };

/**
 * Why a configuration change was refused: `notLeader`; `busy` (the previous change is not
 * committed yet, or this leader has not committed an entry of its own term); `invalid`
 * (the change makes no sense for this configuration, `message` says why); `lagging` (a
 * learner to promote is more than `promoteLagEntriesMax` entries behind the leader).
 */
export type ConfigChangeResult =
  | { readonly ok: true; readonly index: number; readonly term: number; readonly config: ClusterConfig }
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'busy' | 'invalid' | 'lagging'; readonly message: string };

export type TransferResult =
  | { readonly ok: true; readonly to: NodeId }
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'invalid'; readonly message: string };
