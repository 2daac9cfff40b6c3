/**
 * The core's settings (limits, timeouts, the pipelining depth of Ready batches) and the
 * bugs a test may plant on purpose. Data only: it must never hold behaviour.
 */

import type { Prng } from '../stdx/prng.js';
import type { HardState, LogReader, NodeId } from './types.js';

export interface CoreOptions {
  readonly id: NodeId;
  readonly log: LogReader;
  readonly hardState: HardState;
  /** The state machine's applied index at start (entries after it are re-applied). */
  readonly appliedIndex: number;
  readonly prng: Prng;
  /** Base election timeout; each node draws its own in [base, 2*base). */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  /** A leader that has not heard from a majority within an election timeout steps down. */
  readonly checkQuorum: boolean;
  /** Unacknowledged appends per follower in replicate state. */
  readonly inflightMessagesMax: number;
  readonly appendBytesMax: number;
  readonly appendEntriesMax: number;
  /** Proposals are refused with `busy` beyond this many entries past the commit index. */
  readonly uncommittedEntriesMax: number;
  /**
   * Reads waiting for a read point: on a leader its own and its followers' (request ids),
   * on a follower those it asked the leader about. Beyond it readIndex() answers `busy`.
   */
  readonly readsPendingMax: number;
  /**
   * A follower's read-index request unanswered this long fails with `timeout`: the request
   * or its answer was lost (a leader that dies or is replaced fails them sooner, by the
   * leader change). Bounds how long the follower keeps track of it.
   */
  readonly readIndexTimeoutTicks: number;
  /**
   * Read lease (0: off; needs checkQuorum): for this long after a heartbeat round it sent
   * was acknowledged by a majority, by `clockTicks`, the leader serves linearizable reads
   * without a round of its own. Sound because a follower that heard from a leader refuses
   * votes for an election timeout of its ticks (inLease), and so does a node that has just
   * started; so it must stay below the shortest time `electionTimeoutTicks - 1` ticks may
   * take on any node (node/read-lease.ts sizes it for clock drift and timer granularity).
   */
  readonly readLeaseTicks: number;
  /**
   * Monotonic real time in ticks (fractional; any origin), read only to time read leases.
   * Not the tick count: ticks lag real time while a node stalls, and a lease timed by them
   * would outlive itself. Unused while readLeaseTicks is 0.
   */
  readonly clockTicks: () => number;
  /** Entries handed out for applying in one Ready. */
  readonly applyEntriesMax: number;
  readonly applyBytesMax: number;
  /** A follower in snapshot state for this long goes back to probing. */
  readonly snapshotTimeoutTicks: number;
  /** Elections off: only this node ever campaigns (the seeds' fixed-leader setups). */
  readonly pinnedLeader: NodeId | null;
  /**
   * With `all` or `chain`: an in-sync replica silent this long is removed from the set by
   * a config entry (so one dead replica does not stop writes); it is re-added once caught up.
   */
  readonly memberTimeoutTicks: number;
  /**
   * Ready batches handed to the driver and not yet advanced. 1: the driver persists one
   * batch at a time and entries proposed meanwhile wait for the flush to end. More: the
   * next batch is written while the previous one's flush runs (pipelined persistence, as
   * etcd raft's asynchronous storage writes); batches still become durable, and are
   * advanced, in the order they were handed out. A Ready carrying a snapshot is never
   * pipelined: it waits for every earlier one and no later one starts before it is advanced.
   */
  readonly persistsInFlightMax: number;
  /** A learner further than this many entries behind the leader's log is not promoted. */
  readonly promoteLagEntriesMax: number;
}

/** What a test-only hook may break on purpose, to prove the simulator's checkers bite. */
export interface PlantedBugs {
  /** Figure 8: commit entries of an old term by counting replicas. */
  commitOldTermByCount?: boolean;
  /** Grant votes without the up-to-date log check. */
  voteWithoutLogCheck?: boolean;
  /** Hand entries to the state machine as soon as they are in the log, before commit. */
  applyBeforeCommit?: boolean;
  /** Driver: send acks and votes before the flush that makes them true. */
  ackBeforeFlush?: boolean;
  /** Driver: a follower serves a linearizable read once the leader gave the read point, without applying up to it. */
  followerReadBeforeApply?: boolean;
  /** A read joins the read round in flight even when that round's heartbeats left before it arrived. */
  readJoinsSentRound?: boolean;
  /** A read lease is timed by the tick count (which stops while the node stalls) instead of the clock. */
  readLeaseOnTickCount?: boolean;
  /** A leader handing leadership over keeps serving reads by lease (the transferee's election ignores the followers' lease promise). */
  leaseKeptThroughTransfer?: boolean;
  /** A leader takes a quiet append (a new commit index only, never answered when accepted) as answered: the follower's match moves to what it was sent. */
  quietAppendCountsAsAck?: boolean;
  /** A configuration takes effect when committed instead of when appended (so several may be in flight). */
  configOnCommit?: boolean;
  /** A new leader changes the configuration before committing an entry of its own term. */
  configChangeBeforeOwnTermCommit?: boolean;
  /** Driver: a transaction's writes are proposed as two log entries (the second unconditional). */
  txnSplitAcrossEntries?: boolean;
  /** Driver: every node times leases on its own clock from the grant, and a new leader keeps those deadlines. */
  leaseDeadlinesOnFollowerClock?: boolean;
  /** Driver: a watch starts after its fromVersion instead of at it. */
  watchSkipsFromVersion?: boolean;
  /** State machine: the history gives each put the value its key holds now, not the one the put wrote. */
  historyValueFromCurrent?: boolean;
  /** State machine: a large value's row is deleted when its key is put again, while the history still names it. */
  valueRowFreedOnChange?: boolean;
  /** State machine: compaction leaves the value rows of the changes it removes. */
  valueRowKeptAtCompaction?: boolean;
}
