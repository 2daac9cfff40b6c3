/**
 * The Raft replication core: a pure, synchronous state machine in the style of
 * etcd-io/raft. Inputs: `tick()`, `step(message)`, `propose(entries)`, `readIndex()`.
 * `readIndex()` works on a follower too: it asks the leader for a read point (a
 * `readIndex` message), so linearizable reads can be served where they arrive.
 * Output: one `Ready` at a time (see types.ts for the order the driver must follow),
 * acknowledged with `advance(ready)`.
 *
 * It must never: read a clock, draw randomness other than from the injected Prng, do
 * I/O, or await. It moves opaque entries and knows nothing of the key-value state.
 *
 * The commit rule is pluggable (quorum.ts): `commitIndex` always follows the majority
 * (Raft's safety rests on it), while `ackedIndex` follows the configured write quorum and
 * decides what is applied and acknowledged.
 */

import { assert } from '../stdx/assert.js';
import type { Prng } from '../stdx/prng.js';
import { chainOrder, decodeConfig, encodeConfig, inSyncOf, isWeakQuorum } from './config.js';
import { RaftLog, entryBytes } from './log.js';
import { Progress } from './progress.js';
import { ackCount, indexReachedBy, majoritySize } from './quorum.js';
import type {
  AppendMessage,
  AppendResponse,
  ClusterConfig,
  Entry,
  EntryKind,
  HardState,
  HeartbeatMessage,
  HeartbeatResponse,
  LogReader,
  Message,
  NodeId,
  PreVoteMessage,
  ProposeResult,
  ReadFailure,
  ReadIndexMessage,
  ReadIndexRefusal,
  ReadIndexResponse,
  ReadIndexResult,
  ReadState,
  Ready,
  Role,
  SnapshotMessage,
  SnapshotMeta,
  SoftState,
  VoteMessage,
} from './types.js';
import { readIndexRequestIdsMax } from './types.js';

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
}

/**
 * Who waits for a read point on a leader: its own read (`node` is the leader itself, one
 * id) or one `readIndex` message of a follower (its ids, answered together).
 */
interface ReadRequester {
  readonly node: NodeId;
  readonly requestIds: readonly number[];
}

interface PendingRead {
  readonly requester: ReadRequester;
  /** The commit index when the request arrived: the read point once the round confirms. */
  readonly index: number;
  readonly round: number;
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
}

export class RaftCore {
  readonly id: NodeId;
  private readonly opts: CoreOptions;
  private readonly prng: Prng;
  readonly log: RaftLog;

  private term: number;
  private vote: NodeId | null;
  private role: Role = 'follower';
  private leader: NodeId | null = null;
  private config: ClusterConfig;
  private configIndex: number;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private appendsDirty = false;
  private commitChangedSinceBroadcast = false;

  private readRound = 0;
  private readRoundInFlight = 0;
  /**
   * The round in flight has not left the core yet: its heartbeats still wait in `messages`.
   * A read that arrives now may join it, since every ack of it will be sent after the read
   * arrived. (Once the heartbeats are handed out, new reads wait for the next round.)
   */
  private readRoundOpen = false;
  private readAcks = new Set<NodeId>();
  private pendingReads: PendingRead[] = [];
  /** Reads asked before this leader committed an entry of its term: served after. */
  private readsWaitingForTermCommit: ReadRequester[] = [];
  /** Request ids in pendingReads and readsWaitingForTermCommit (at most readsPendingMax). */
  private readsPendingCount = 0;
  private readStates: ReadState[] = [];
  private readsFailed: ReadFailure[] = [];
  private nextReadRequestId = 1;
  /**
   * Follower: reads asked of `this.leader` in this term, by request id, with the tick they
   * were asked at (Map order is ask order). Any change of leader or term fails them all: an
   * answer from another leader or term could be stale.
   */
  private followerReads = new Map<number, number>();
  /** Follower: ids of followerReads not sent yet; they leave in batches with the next messages. */
  private followerReadsUnsent: number[] = [];
  /** Ticks since this core started (read-index timeouts). */
  private ticksElapsed = 0;

  /**
   * Set while a rollback was found (applied entries conflict with the leader's) and we wait
   * for a snapshot to rebuild from: our log's entries from this index on are in the rollback
   * report already.
   */
  private repairReportedFrom: number | null = null;
  /** Term of the leader whose snapshot we installed last (0: none since start): its log holds the snapshot. */
  private snapshotLeaderTerm = 0;
  private rolledBack: Entry[] = [];
  private messages: Message[] = [];
  private messagesAfterPersist: Message[] = [];
  private snapshotsToSend: NodeId[] = [];
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** Handed out by ready(), not yet advanced, oldest first. */
  private readiesInFlight: Ready[] = [];
  planted: PlantedBugs = {};

  constructor(options: CoreOptions) {
    assert(options.electionTimeoutTicks > options.heartbeatIntervalTicks, () =>
      `electionTimeoutTicks ${options.electionTimeoutTicks} must exceed heartbeatIntervalTicks ${options.heartbeatIntervalTicks}`,
    );
    assert(options.inflightMessagesMax >= 1, 'inflightMessagesMax must be >= 1');
    assert(Number.isSafeInteger(options.persistsInFlightMax) && options.persistsInFlightMax >= 1, 'persistsInFlightMax must be an integer >= 1');
    // A live leader may take up to an election timeout to confirm a round (check-quorum
    // deposes it after that): a follower that gave up sooner would fail reads needlessly.
    assert(options.readIndexTimeoutTicks >= options.electionTimeoutTicks, () =>
      `readIndexTimeoutTicks ${options.readIndexTimeoutTicks} must be at least electionTimeoutTicks ${options.electionTimeoutTicks}`,
    );
    this.opts = options;
    this.id = options.id;
    this.prng = options.prng;
    this.log = new RaftLog(options.log, options.hardState.commit, options.appliedIndex);
    this.term = options.hardState.term;
    this.vote = options.hardState.vote;
    const { config, index } = this.latestConfig();
    this.config = config;
    this.configIndex = index;
    // Outside weak write quorums only committed entries are ever applied, so the applied
    // index (durable with the state) is known committed even if the hard state lagged it.
    if (!isWeakQuorum(config)) this.log.commitTo(this.log.applied);
    this.prevSoft = { role: this.role, leader: this.leader };
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.resetRandomizedElectionTimeout();
  }

  // ---------------------------------------------------------------------------------
  // Inputs

  tick(): void {
    this.ticksElapsed++;
    if (this.followerReads.size > 0) this.expireFollowerReads();
    if (this.role === 'leader') {
      this.tickLeader();
    } else {
      this.electionElapsed++;
      if (this.mayCampaign() && this.electionElapsed >= this.randomizedElectionTimeout) {
        this.electionElapsed = 0;
        this.campaign(this.opts.preVote ? 'preVote' : 'vote');
      }
    }
  }

  /** Starts an election now (pre-vote first if enabled), as if the timeout had fired. */
  campaignNow(): void {
    if (this.role === 'leader' || !this.mayCampaign()) return;
    this.electionElapsed = 0;
    this.campaign(this.opts.preVote ? 'preVote' : 'vote');
  }

  /** Handles one message from a peer. Messages from unknown nodes are ignored. */
  step(m: Message): void {
    if (m.to !== this.id || !this.config.members.includes(m.from)) return;
    if (m.term > this.term) {
      if ((m.type === 'vote' || m.type === 'preVote') && this.inLease()) return;
      if (m.type === 'preVote') {
        // A pre-vote does not change our term: the candidate has not campaigned yet.
      } else if (m.type === 'preVoteResp' && m.granted) {
        // Granted pre-votes carry the term we would campaign in.
      } else if (m.type === 'append') {
        this.becomeFollower(m.term, m.leader);
      } else if (m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // Tell a stale leader about the newer term so it steps down.
        this.send(
          { type: 'appendResp', from: this.id, to: m.type === 'append' ? m.leader : m.from, term: this.term, matchIndex: 0, reject: true, rejectedIndex: 0, lastIndexHint: 0, needSnapshot: false },
          'afterPersist',
        );
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, granted: false }, 'afterPersist');
      } else if (m.type === 'readIndex') {
        // A follower of an older term: refuse in ours, so it learns the newer term and
        // fails its reads at once instead of waiting for a timeout.
        this.refuseRead({ node: m.from, requestIds: m.requestIds }, 'notLeader');
      }
      return;
    }

    switch (m.type) {
      case 'preVote':
      case 'vote':
        this.handleVoteRequest(m);
        return;
      case 'preVoteResp':
        if (this.role === 'preCandidate') this.handleVoteResponse(m.from, m.granted, 'preVote');
        return;
      case 'voteResp':
        if (this.role === 'candidate' && m.term === this.term) this.handleVoteResponse(m.from, m.granted, 'vote');
        return;
      case 'append':
        if (!this.config.members.includes(m.leader)) return;
        this.becomeFollowerOf(m.leader);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollowerOf(m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollowerOf(m.from);
        this.handleSnapshot(m);
        return;
      case 'appendResp':
        if (this.role === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        if (this.role === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        this.handleReadIndexRequest(m);
        return;
      case 'readIndexResp':
        // Only the leader asked, in this term (the term check above), may answer: after a
        // change of leader or term the reads were failed and their ids are gone.
        if (this.role === 'follower' && m.from === this.leader) this.handleReadIndexResponse(m);
        return;
    }
  }

  /** Appends entries to the leader's log. They are replicated with the next Ready. */
  propose(items: readonly { readonly kind: EntryKind; readonly data: Uint8Array }[]): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    const uncommitted = this.log.lastIndex() - this.log.committed;
    if (uncommitted + items.length > this.opts.uncommittedEntriesMax) {
      return { ok: false, reason: 'busy', uncommittedEntries: uncommitted };
    }
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = items.map((item, i) => ({ term: this.term, index: first + i, kind: item.kind, data: item.data }));
    this.appendAsLeader(entries);
    return { ok: true, index: first + entries.length - 1, term: this.term };
  }

  /**
   * Asks for a linearizable read point. The answer arrives as a `ReadState` with the same
   * requestId (serve the read once the state machine has applied its `index`), or as a
   * `ReadFailure` (serve nothing; the client may retry).
   *
   * On the leader: once a majority confirmed in a heartbeat round, started after this call,
   * that it still leads (and it has committed an entry of its term), at its commit index as
   * of this call. On a follower that knows its leader: the follower asks the leader with a
   * `readIndex` message, and the leader answers with the index its own read would use, by
   * the same rule. Refused (`notLeader`) on a node that knows no leader.
   */
  readIndex(): ReadIndexResult {
    if (this.role === 'leader') {
      if (this.readsPendingCount >= this.opts.readsPendingMax) return { ok: false, reason: 'busy', pendingReads: this.readsPendingCount };
      const requestId = this.nextReadRequestId++;
      this.acceptRead({ node: this.id, requestIds: [requestId] });
      return { ok: true, requestId };
    }
    if (this.role !== 'follower' || this.leader === null) return { ok: false, reason: 'notLeader', leader: this.leader };
    if (this.followerReads.size >= this.opts.readsPendingMax) return { ok: false, reason: 'busy', pendingReads: this.followerReads.size };
    const requestId = this.nextReadRequestId++;
    this.followerReads.set(requestId, this.ticksElapsed);
    this.followerReadsUnsent.push(requestId);
    return { ok: true, requestId };
  }

  /**
   * Proposes a new configuration (mode switch, in-sync set change). Every node switches
   * when the entry is appended to its log, so all switch at the same index.
   */
  proposeConfig(config: ClusterConfig): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    if (this.configIndex > this.log.committed) {
      return { ok: false, reason: 'busy', uncommittedEntries: this.log.lastIndex() - this.log.committed };
    }
    return this.propose([{ kind: 'config', data: encodeConfig(config) }]);
  }

  /** The driver could not deliver a snapshot to `to`: probe again. */
  reportSnapshotFailed(to: NodeId): void {
    const pr = this.progress.get(to);
    if (pr !== undefined && pr.state === 'snapshot') pr.becomeProbe();
  }

  // ---------------------------------------------------------------------------------
  // Output

  hasReady(): boolean {
    if (!this.mayHandOutReady()) return false;
    if (this.appendsDirty) return true;
    return (
      this.messages.length > 0 ||
      this.messagesAfterPersist.length > 0 ||
      this.followerReadsUnsent.length > 0 ||
      this.log.hasUnstableToPersist() ||
      this.log.hasCommittedToApply() ||
      this.readStates.length > 0 ||
      this.readsFailed.length > 0 ||
      this.snapshotsToSend.length > 0 ||
      this.rolledBack.length > 0 ||
      this.softChanged() ||
      this.hardChanged()
    );
  }

  /**
   * Messages that do not depend on anything being durable (leader appends and heartbeats,
   * heartbeat responses, read-index requests and answers) may leave at any time: the driver
   * takes them after every input so the leader's network path does not wait for its own fsync.
   */
  takeMessages(): Message[] {
    if (this.appendsDirty && this.role === 'leader') this.broadcastAppend();
    this.sendFollowerReads();
    return this.drainMessages();
  }

  /** Hands out the messages queued so far; a read round among them has now left. */
  private drainMessages(): Message[] {
    const out = this.messages;
    this.messages = [];
    this.readRoundOpen = false;
    return out;
  }

  /**
   * Entries that are durable and acknowledged, confirmed read points and failed reads: none
   * waits for the Ready in flight, so the driver takes them after every input too. Applying
   * a commit then costs no extra fsync on the leader.
   */
  takeApplicable(): { committed: Entry[]; readStates: ReadState[]; readsFailed: ReadFailure[] } {
    if (this.planted.applyBeforeCommit === true) this.log.ackTo(this.log.lastIndex());
    const committed = this.log.takeCommitted(this.opts.applyEntriesMax, this.opts.applyBytesMax);
    const readStates = this.readStates;
    const readsFailed = this.readsFailed;
    this.readStates = [];
    this.readsFailed = [];
    return { committed, readStates, readsFailed };
  }

  hasApplicable(): boolean {
    return this.readStates.length > 0 || this.readsFailed.length > 0 || this.log.hasCommittedToApply();
  }

  /**
   * Whether another Ready may be handed out now: fewer than persistsInFlightMax in flight,
   * and no snapshot install in flight or waiting to be handed out behind earlier ones.
   */
  private mayHandOutReady(): boolean {
    const inFlight = this.readiesInFlight.length;
    if (inFlight === 0) return true;
    if (inFlight >= this.opts.persistsInFlightMax) return false;
    if (this.log.hasSnapshotToPersist()) return false;
    return !this.readiesInFlight.some((rd) => rd.snapshot !== null);
  }

  /**
   * Takes the pending effects. Every Ready must be advanced, in the order handed out;
   * hasReady() says whether another may be taken before that.
   */
  ready(): Ready {
    assert(this.mayHandOutReady(), () => `ready() called with ${this.readiesInFlight.length} Ready batches in flight (max ${this.opts.persistsInFlightMax}, or a snapshot install in flight)`);
    if (this.appendsDirty) this.broadcastAppend();
    this.sendFollowerReads();
    const { snapshot, entries } = this.log.takeUnstable();
    if (this.planted.applyBeforeCommit === true) this.log.ackTo(this.log.lastIndex());
    const committed = this.log.takeCommitted(this.opts.applyEntriesMax, this.opts.applyBytesMax);
    const soft = this.softChanged() ? { role: this.role, leader: this.leader } : null;
    const hard = this.hardChanged() ? { term: this.term, vote: this.vote, commit: this.log.committed } : null;
    const rd: Ready = {
      softState: soft,
      hardState: hard,
      snapshot,
      entries,
      messages: this.drainMessages(),
      messagesAfterPersist: this.messagesAfterPersist,
      committed,
      readStates: this.readStates,
      readsFailed: this.readsFailed,
      snapshotsToSend: this.snapshotsToSend,
      rolledBack: this.rolledBack,
    };
    this.rolledBack = [];
    if (soft !== null) this.prevSoft = soft;
    if (hard !== null) this.prevHard = hard;
    this.messagesAfterPersist = [];
    this.readStates = [];
    this.readsFailed = [];
    this.snapshotsToSend = [];
    this.readiesInFlight.push(rd);
    return rd;
  }

  /** The driver has persisted, sent and applied `rd`, the oldest Ready in flight. */
  advance(rd: Ready): void {
    assert(this.readiesInFlight[0] === rd, 'advance() of a Ready that is not the oldest in flight');
    this.readiesInFlight.shift();
    if (rd.snapshot !== null) this.log.snapshotStable(rd.snapshot);
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) {
      this.log.stableTo(last.index, last.term);
      if (this.role === 'leader' && last.term === this.term) {
        const self = this.progress.get(this.id);
        if (self !== undefined && self.maybeUpdate(last.index)) this.maybeCommit();
      }
    }
  }

  // ---------------------------------------------------------------------------------
  // Introspection (for the driver's /status and for tests)

  status(): {
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
    progress: { id: NodeId; match: number; next: number; state: string; recentActive: boolean }[];
  } {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commitIndex: this.log.committed,
      ackedIndex: this.log.acked,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      config: this.config,
      configIndex: this.configIndex,
      progress: [...this.progress.entries()].map(([id, p]) => ({
        id,
        match: p.match,
        next: p.next,
        state: p.state,
        recentActive: p.recentActive,
      })),
    };
  }

  /** Cheap reads for hot paths (status() builds a full report). */
  currentRole(): Role {
    return this.role;
  }

  currentLeader(): NodeId | null {
    return this.leader;
  }

  currentTerm(): number {
    return this.term;
  }

  currentConfig(): ClusterConfig {
    return this.config;
  }

  // ---------------------------------------------------------------------------------
  // Elections

  private mayCampaign(): boolean {
    if (this.opts.pinnedLeader !== null) return this.opts.pinnedLeader === this.id;
    return this.config.members.includes(this.id);
  }

  /** Within an election timeout of hearing from a live leader: ignore vote requests. */
  private inLease(): boolean {
    return this.opts.checkQuorum && this.leader !== null && this.electionElapsed < this.opts.electionTimeoutTicks;
  }

  private campaign(kind: 'preVote' | 'vote'): void {
    if (kind === 'preVote') {
      this.becomePreCandidate();
    } else {
      this.becomeCandidate();
    }
    const term = kind === 'preVote' ? this.term + 1 : this.term;
    // Our own vote counts at once for pre-votes (no state changes). For real votes it counts
    // too: vote requests leave only after the Ready carrying our vote is durable, so no
    // other node can learn of this candidacy before the self-vote is on disk.
    this.votes = new Map([[this.id, true]]);
    if (this.countVotes().granted >= majoritySize(this.config.members.length)) {
      if (kind === 'preVote') this.campaign('vote');
      else this.becomeLeader();
      return;
    }
    for (const peer of this.peers()) {
      const msg: PreVoteMessage | VoteMessage = {
        type: kind,
        from: this.id,
        to: peer,
        term,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
      };
      this.send(msg, 'afterPersist');
    }
  }

  private handleVoteRequest(m: PreVoteMessage | VoteMessage): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === null) ||
      (m.type === 'preVote' && m.term > this.term);
    const upToDate =
      this.planted.voteWithoutLogCheck === true ||
      m.lastTerm > this.log.lastTerm() ||
      (m.lastTerm === this.log.lastTerm() && m.lastIndex >= this.log.lastIndex());
    const granted = canVote && upToDate;
    const respType = m.type === 'preVote' ? 'preVoteResp' : 'voteResp';
    if (granted && m.type === 'vote') {
      this.electionElapsed = 0;
      this.vote = m.from;
    }
    // A granted pre-vote answers in the candidate's proposed term; a refusal in ours.
    const term = granted && m.type === 'preVote' ? m.term : this.term;
    this.send({ type: respType, from: this.id, to: m.from, term, granted }, 'afterPersist');
  }

  private handleVoteResponse(from: NodeId, granted: boolean, kind: 'preVote' | 'vote'): void {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const { granted: yes, refused: no } = this.countVotes();
    const quorum = majoritySize(this.config.members.length);
    if (yes >= quorum) {
      if (kind === 'preVote') this.campaign('vote');
      else this.becomeLeader();
    } else if (no >= quorum) {
      this.becomeFollower(this.term, null);
    }
  }

  private countVotes(): { granted: number; refused: number } {
    let granted = 0;
    let refused = 0;
    for (const member of this.config.members) {
      const v = this.votes.get(member);
      if (v === true) granted++;
      else if (v === false) refused++;
    }
    return { granted, refused };
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    if (term !== this.term || leader !== this.leader) this.failFollowerReads();
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.resetTimers();
    this.dropLeaderState();
  }

  private becomeFollowerOf(leader: NodeId): void {
    if (this.role !== 'follower' || this.leader !== leader) this.becomeFollower(this.term, leader);
    this.electionElapsed = 0;
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become pre-candidate');
    this.failFollowerReads();
    this.role = 'preCandidate';
    this.leader = null;
    this.dropLeaderState();
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become candidate');
    this.failFollowerReads();
    this.term++;
    this.vote = this.id;
    this.role = 'candidate';
    this.leader = null;
    this.resetTimers();
    this.dropLeaderState();
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `becomeLeader from ${this.role}`);
    this.role = 'leader';
    this.leader = this.id;
    // A node waiting for a repair snapshot can still win an election (its log may be the
    // most up to date). Its applied state is a prefix of its own log, which now rules: the
    // repair is moot, and leaving the flag set would make it, once a follower again, take
    // the next leader's snapshot as that repair and skip reporting the entries it replaces.
    // (The writes it reported when the flag was set survive after all: the report errs on
    // the side of reporting.)
    this.repairReportedFrom = null;
    this.resetTimers();
    this.progress = new Map();
    const next = this.log.lastIndex() + 1;
    for (const member of this.config.members) {
      const pr = new Progress(next, this.opts.inflightMessagesMax);
      pr.recentActive = true;
      if (member === this.id) {
        // Our own match advances only as our writes become durable (advance()); the noop
        // below covers every earlier entry once it is.
        pr.becomeReplicate();
      }
      this.progress.set(member, pr);
    }
    this.readRound = 0;
    this.readRoundInFlight = 0;
    // A new leader commits an entry of its own term: only then are earlier entries known
    // committed (Raft §5.4.2), and only then can it serve read-index reads.
    this.appendAsLeader([{ term: this.term, index: this.log.lastIndex() + 1, kind: 'noop', data: new Uint8Array(0) }]);
  }

  private dropLeaderState(): void {
    this.progress = new Map();
    // Reads waiting for a round of a leadership that ended get no read point, ours or a
    // follower's: a later round (of another leader) could not vouch for this one.
    for (const r of this.pendingReads) this.refuseRead(r.requester, 'notLeader');
    for (const r of this.readsWaitingForTermCommit) this.refuseRead(r, 'notLeader');
    this.pendingReads = [];
    this.readsWaitingForTermCommit = [];
    this.readsPendingCount = 0;
    this.readAcks = new Set();
    this.readRoundInFlight = 0;
    this.appendsDirty = false;
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
  }

  private resetRandomizedElectionTimeout(): void {
    const base = this.opts.electionTimeoutTicks;
    this.randomizedElectionTimeout = base + this.prng.intBetween(0, base - 1);
  }

  // ---------------------------------------------------------------------------------
  // Leader

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.opts.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum && this.opts.pinnedLeader === null) {
        let active = 0;
        for (const [id, pr] of this.progress) {
          if (id === this.id || pr.recentActive) active++;
          pr.recentActive = false;
        }
        if (active < majoritySize(this.config.members.length)) {
          this.becomeFollower(this.term, null);
          return;
        }
      }
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      pr.silentTicks++;
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.opts.snapshotTimeoutTicks) pr.becomeProbe();
    }
    this.maintainInSyncSet();
    if (this.heartbeatElapsed >= this.opts.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(this.readRoundInFlight);
    }
  }

  /**
   * `all` and `chain` wait for every replica in the in-sync set. One silent replica is
   * removed (never below a majority), one caught-up member is re-added (at the chain's
   * tail), one change at a time, each by a config entry committed like any other.
   */
  private maintainInSyncSet(): void {
    const c = this.config;
    if (c.writeQuorum !== 'all' && c.topology !== 'chain') return;
    if (this.configIndex > this.log.committed || !this.committedInCurrentTerm()) return;
    const inSync = inSyncOf(c);
    const majority = majoritySize(c.members.length);
    for (const id of inSync) {
      const pr = this.progress.get(id);
      if (id === this.id || pr === undefined) continue;
      if (pr.silentTicks >= this.opts.memberTimeoutTicks && inSync.length - 1 >= majority) {
        this.proposeConfig({ ...c, inSync: inSync.filter((m) => m !== id) });
        return;
      }
    }
    for (const id of c.members) {
      const pr = this.progress.get(id);
      if (inSync.includes(id) || pr === undefined) continue;
      // Caught up: replicating and within one append batch of our log. Under steady writes
      // the commit index keeps moving, so "match >= commit" might never hold at a tick.
      const caughtUp = pr.match >= this.log.committed || (pr.state === 'replicate' && this.log.lastIndex() - pr.match <= this.opts.appendEntriesMax);
      if (pr.silentTicks < this.opts.memberTimeoutTicks && caughtUp) {
        this.proposeConfig({ ...c, inSync: [...inSync, id] });
        return;
      }
    }
  }

  private appendAsLeader(entries: Entry[]): void {
    this.log.append(entries);
    for (const e of entries) {
      if (e.kind === 'config') {
        this.config = decodeConfig(e.data);
        this.configIndex = e.index;
      }
    }
    this.appendsDirty = true;
    if (this.config.members.length === 1) this.maybeCommit();
  }

  private broadcastAppend(): void {
    const evenIfEmpty = this.commitChangedSinceBroadcast;
    this.appendsDirty = false;
    this.commitChangedSinceBroadcast = false;
    for (const peer of this.peers()) this.sendAppendFully(peer, evenIfEmpty);
  }

  private broadcastHeartbeat(readRound: number): void {
    for (const peer of this.peers()) {
      const pr = this.progress.get(peer);
      const match = pr?.match ?? 0;
      const msg: HeartbeatMessage = {
        type: 'heartbeat',
        from: this.id,
        to: peer,
        term: this.term,
        commit: Math.min(match, this.log.committed),
        acked: Math.min(match, this.log.acked),
        readRound,
      };
      this.send(msg, 'now');
    }
  }

  /**
   * Sends the next batch of entries to `to` if flow control allows. With `evenIfEmpty`, a
   * probe is sent even with no new entries (to learn where the follower's log matches).
   */
  private sendAppend(to: NodeId, evenIfEmpty: boolean, direct = false): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    if (!direct && this.isRelayed(to)) return false;
    const last = this.log.lastIndex();
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries =
      prevTerm === undefined
        ? null
        : this.log.slice(pr.next, Math.min(last + 1, pr.next + this.opts.appendEntriesMax), this.opts.appendBytesMax);
    if (prevTerm === undefined || entries === null) {
      // The follower needs entries we compacted away: it gets a snapshot instead.
      pr.becomeSnapshot();
      this.snapshotsToSend.push(to);
      return true;
    }
    if (entries.length === 0 && !evenIfEmpty && pr.state === 'replicate') return false;
    const lastSent = entries.length > 0 ? (entries[entries.length - 1] as Entry).index : prevIndex;
    const msg: AppendMessage = {
      type: 'append',
      from: this.id,
      to,
      leader: this.id,
      term: this.term,
      prevIndex,
      prevTerm,
      entries,
      commit: Math.min(this.log.committed, lastSent),
      acked: Math.min(this.log.acked, lastSent),
    };
    this.send(msg, 'now');
    pr.sentAppend(lastSent, entries.length);
    return true;
  }

  /**
   * Chain topology: a member whose predecessor is replicating receives entries by relay,
   * not from the leader. Members catching up (probe, snapshot) or outside the chain are
   * served directly by the leader until they replicate again.
   */
  private isRelayed(to: NodeId): boolean {
    if (this.config.topology !== 'chain') return false;
    const chain = chainOrder(this.config, this.id);
    const pos = chain.indexOf(to);
    if (pos <= 1) return false;
    const pr = this.progress.get(to);
    const pred = this.progress.get(chain[pos - 1] as NodeId);
    return pr !== undefined && pred !== undefined && pr.state === 'replicate' && pred.state === 'replicate';
  }

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.silentTicks = 0;
    if (m.reject) {
      if (m.needSnapshot) {
        if (pr.state !== 'snapshot') {
          pr.becomeSnapshot();
          this.snapshotsToSend.push(m.from);
        }
        return;
      }
      if (pr.maybeDecrTo(m.rejectedIndex, m.lastIndexHint)) this.sendAppendFully(m.from, true);
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.matchIndex)) {
      if (pr.state === 'probe' || pr.state === 'snapshot') pr.becomeReplicate();
      if (this.maybeCommit()) {
        // Followers learn the new commit/acked index with the next broadcast, which is
        // coalesced: one per batch of responses, not one per response.
        this.commitChangedSinceBroadcast = true;
        this.appendsDirty = true;
      }
      this.sendAppendFully(m.from, false);
    } else if (wasPaused && !pr.isPaused()) {
      this.sendAppendFully(m.from, false);
    }
  }

  /** Sends as many appends as the window allows (a lagging follower catches up fast). */
  private sendAppendFully(to: NodeId, evenIfEmpty: boolean, direct = false): void {
    let first = evenIfEmpty;
    while (this.sendAppend(to, first, direct)) {
      first = false;
      const pr = this.progress.get(to);
      if (pr === undefined || pr.state !== 'replicate' || pr.next > this.log.lastIndex()) break;
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.silentTicks = 0;
    pr.probeSent = false;
    // Appends in flight may all have been lost: a heartbeat answer frees one slot of a
    // full window so replication resumes (as etcd does), else the follower starves forever.
    if (pr.state === 'replicate' && pr.isPaused()) pr.inflight.shift();
    // A relayed chain member that made no progress since the last heartbeat lost a relayed
    // append (or its predecessor stalled): the leader repairs it directly.
    const stalled = pr.match === pr.matchAtLastHeartbeat;
    pr.matchAtLastHeartbeat = pr.match;
    if (pr.match < this.log.lastIndex()) this.sendAppendFully(m.from, true, stalled);
    if (m.readRound !== 0 && m.readRound === this.readRoundInFlight) {
      this.readAcks.add(m.from);
      if (this.readAcks.size + 1 >= majoritySize(this.config.members.length)) this.finishReadRound();
    }
  }

  /** Recomputes commit and acked indexes from the match indexes. True if either moved. */
  private maybeCommit(): boolean {
    const members = this.config.members;
    const matches = members.map((id) => this.progress.get(id)?.match ?? 0);
    const majority = majoritySize(members.length);
    const before = { committed: this.log.committed, acked: this.log.acked };
    const candidate = indexReachedBy(matches, majority);
    if (candidate > this.log.committed) {
      if (this.log.term(candidate) === this.term || this.planted.commitOldTermByCount === true) {
        this.log.commitTo(candidate);
      }
    }
    const ackCandidate =
      this.config.writeQuorum === 'all' || this.config.topology === 'chain'
        ? this.inSyncAckIndex()
        : indexReachedBy(matches, ackCount(this.config.writeQuorum, members.length));
    if (ackCandidate > this.log.acked && this.log.term(ackCandidate) === this.term) {
      this.log.ackTo(ackCandidate);
    }
    const moved = this.log.committed !== before.committed || this.log.acked !== before.acked;
    if (moved && this.committedInCurrentTerm() && this.readsWaitingForTermCommit.length > 0) {
      const waiting = this.readsWaitingForTermCommit;
      this.readsWaitingForTermCommit = [];
      for (const requester of waiting) this.addRead(requester);
    }
    return moved;
  }

  /** The index every in-sync replica (and the leader) holds. */
  private inSyncAckIndex(): number {
    let min = this.progress.get(this.id)?.match ?? 0;
    for (const id of inSyncOf(this.config)) min = Math.min(min, this.progress.get(id)?.match ?? 0);
    return min;
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  // ---------------------------------------------------------------------------------
  // Read index

  /** Leader: takes a read (its own or a follower's) into the read-index rounds. */
  private acceptRead(requester: ReadRequester): void {
    this.readsPendingCount += requester.requestIds.length;
    if (!this.committedInCurrentTerm()) {
      this.readsWaitingForTermCommit.push(requester);
      return;
    }
    this.addRead(requester);
  }

  private addRead(requester: ReadRequester): void {
    if (this.config.members.length === 1) {
      this.readsPendingCount -= requester.requestIds.length;
      this.resolveRead(requester, this.readPoint());
      return;
    }
    // Reads join the next round: a round already sent left before they arrived. A round
    // whose heartbeats have not left yet is still ahead of them: they join it.
    const joinsInFlight = this.readRoundOpen || this.planted.readJoinsSentRound === true;
    const round = this.readRoundInFlight !== 0 && joinsInFlight ? this.readRoundInFlight : this.readRound + 1;
    this.pendingReads.push({ requester, index: this.readPoint(), round });
    if (this.readRoundInFlight === 0) this.startReadRound();
  }

  /**
   * The index a read must see: the commit index, or under a weak quorum the acknowledged
   * index beyond it, so that a read served by a follower shows every write a client was
   * told succeeded, as the leader's own state does (read-your-writes on any node).
   */
  private readPoint(): number {
    return Math.max(this.log.committed, this.log.acked);
  }

  /** Hands out a confirmed read point: as ReadStates here, or in an answer to the follower. */
  private resolveRead(requester: ReadRequester, index: number): void {
    if (requester.node === this.id) {
      for (const requestId of requester.requestIds) this.readStates.push({ requestId, index });
      return;
    }
    const msg: ReadIndexResponse = { type: 'readIndexResp', from: this.id, to: requester.node, term: this.term, requestIds: requester.requestIds, index, refusal: null };
    this.send(msg, 'now');
  }

  private refuseRead(requester: ReadRequester, refusal: ReadIndexRefusal): void {
    if (requester.node === this.id) {
      for (const requestId of requester.requestIds) this.readsFailed.push({ requestId, reason: refusal });
      return;
    }
    const msg: ReadIndexResponse = { type: 'readIndexResp', from: this.id, to: requester.node, term: this.term, requestIds: requester.requestIds, index: 0, refusal };
    this.send(msg, 'now');
  }

  /** Leader: a follower asks for a read point; it is treated exactly like our own read. */
  private handleReadIndexRequest(m: ReadIndexMessage): void {
    const requester: ReadRequester = { node: m.from, requestIds: m.requestIds };
    if (this.role !== 'leader') return this.refuseRead(requester, 'notLeader');
    if (this.readsPendingCount + m.requestIds.length > this.opts.readsPendingMax) return this.refuseRead(requester, 'busy');
    this.acceptRead(requester);
  }

  /** Follower: the leader we asked, in this term, answered some of our reads. */
  private handleReadIndexResponse(m: ReadIndexResponse): void {
    for (const requestId of m.requestIds) {
      // Not ours any more (answered by a duplicate, timed out): ignore.
      if (!this.followerReads.delete(requestId)) continue;
      if (m.refusal === null) this.readStates.push({ requestId, index: m.index });
      else this.readsFailed.push({ requestId, reason: m.refusal });
    }
  }

  /** Follower: sends the reads asked since the last batch to the leader, in bounded messages. */
  private sendFollowerReads(): void {
    if (this.followerReadsUnsent.length === 0) return;
    const ids = this.followerReadsUnsent.filter((id) => this.followerReads.has(id));
    this.followerReadsUnsent = [];
    const leader = this.leader;
    // A change of role, leader or term failed every follower read (failFollowerReads).
    assert(ids.length === 0 || (this.role === 'follower' && leader !== null), () => `${ids.length} follower reads to send as ${this.role} with leader ${leader ?? 'none'}`);
    if (leader === null) return;
    for (let i = 0; i < ids.length; i += readIndexRequestIdsMax) {
      const msg: ReadIndexMessage = { type: 'readIndex', from: this.id, to: leader, term: this.term, requestIds: ids.slice(i, i + readIndexRequestIdsMax) };
      this.send(msg, 'now');
    }
  }

  /**
   * Follower: the leader or the term changes (or this node campaigns): every read asked of
   * the old leader fails. Its answer, if one still comes, is ignored: the ids are gone.
   */
  private failFollowerReads(): void {
    for (const requestId of this.followerReads.keys()) this.readsFailed.push({ requestId, reason: 'notLeader' });
    this.followerReads.clear();
    this.followerReadsUnsent = [];
  }

  /** Follower: requests unanswered for readIndexTimeoutTicks were lost (or their answers were). */
  private expireFollowerReads(): void {
    for (const [requestId, askedTick] of this.followerReads) {
      if (this.ticksElapsed - askedTick < this.opts.readIndexTimeoutTicks) break;
      this.followerReads.delete(requestId);
      this.readsFailed.push({ requestId, reason: 'timeout' });
    }
  }

  private startReadRound(): void {
    this.readRound++;
    this.readRoundInFlight = this.readRound;
    this.readAcks = new Set();
    this.broadcastHeartbeat(this.readRound);
    this.readRoundOpen = true;
  }

  private finishReadRound(): void {
    const done = this.readRoundInFlight;
    const remaining: PendingRead[] = [];
    for (const r of this.pendingReads) {
      if (r.round <= done) {
        this.readsPendingCount -= r.requester.requestIds.length;
        this.resolveRead(r.requester, r.index);
      } else {
        remaining.push(r);
      }
    }
    this.pendingReads = remaining;
    this.readRoundInFlight = 0;
    if (remaining.length > 0) this.startReadRound();
  }

  // ---------------------------------------------------------------------------------
  // Follower

  private handleAppend(m: AppendMessage): void {
    if (this.awaitingRepair) return this.rejectNeedingSnapshot(m.leader, m.prevIndex);
    const snapIndex = this.log.firstIndex() - 1;
    if (m.prevIndex < snapIndex && snapIndex > this.log.committed) {
      if (this.leaderLogHoldsSnapshot(m.term)) {
        // A stale append from a leader whose log holds our snapshot (it sent the snapshot,
        // or made its last entry): nothing diverges, and we hold its log up to the snapshot.
        this.respondAppend(m.leader, snapIndex);
        return;
      }
      // Our state came from a snapshot holding entries no majority had (weak quorum), and
      // the leader's log diverges below it: we cannot tell which of those writes survive.
      // Rebuild from the leader's snapshot. The writes inside that snapshot are reported by
      // the nodes whose logs still hold them (compaction never passes the commit index);
      // the entries of our own log after it are ours to report (we may have acknowledged
      // them as a leader since).
      this.awaitRepair(this.log.firstIndex());
      return this.rejectNeedingSnapshot(m.leader, m.prevIndex);
    }
    if (m.prevIndex < this.log.committed) {
      this.respondAppend(m.leader, this.log.committed);
      return;
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const conflict = this.log.findConflict(m.prevIndex, m.entries);
      assert(conflict === null || conflict > this.log.committed, () => `entry ${conflict ?? 0} conflicts with committed entry (commit ${this.log.committed})`);
      if (conflict !== null && conflict <= this.log.applied) {
        // We applied entries (acknowledged under a weak write quorum) that the leader's log
        // does not contain. They are lost: report each, then rebuild from a snapshot.
        this.awaitRepair(conflict);
        return this.rejectNeedingSnapshot(m.leader, m.prevIndex);
      }
      if (conflict !== null && isWeakQuorum(this.config)) {
        // Under a weak quorum an entry may have been acknowledged to a client before a
        // majority held it (by us as leader before a crash, say), even if never applied
        // here. Truncating it loses that write: report it rather than guess.
        this.reportRolledBack(conflict);
      }
      const configChanged = (conflict !== null && conflict <= this.configIndex) || m.entries.some((e) => e.kind === 'config');
      const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.entries);
      assert(lastNew !== null, 'append matched its prev entry but was refused');
      if (configChanged) this.reloadConfig();
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.log.ackTo(Math.min(m.acked, lastNew));
      this.respondAppend(m.leader, lastNew);
      this.relay(m);
      return;
    }
    const hint = this.conflictHint(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.send(
      { type: 'appendResp', from: this.id, to: m.leader, term: this.term, matchIndex: 0, reject: true, rejectedIndex: m.prevIndex, lastIndexHint: hint, needSnapshot: false },
      'afterPersist',
    );
  }

  /** Chain topology: pass an accepted append on to our successor once it is durable here. */
  private relay(m: AppendMessage): void {
    if (this.config.topology !== 'chain' || m.entries.length === 0) return;
    const chain = chainOrder(this.config, m.leader);
    const pos = chain.indexOf(this.id);
    const next = pos >= 0 ? chain[pos + 1] : undefined;
    if (next === undefined) return;
    this.send({ ...m, from: this.id, to: next }, 'afterPersist');
  }

  /**
   * Reports our log's entries from `from` up to `to` (default: its end) as rolled back (the
   * rollback report). Entries below our first index came inside a snapshot (beyond the
   * commit index: a weak quorum's) and are not ours to report: the nodes whose logs still
   * hold them do.
   */
  private reportRolledBack(from: number, to = this.log.lastIndex() + 1): void {
    const start = Math.max(from, this.log.firstIndex());
    if (start >= to) return;
    const entries = this.log.slice(start, to, Number.MAX_SAFE_INTEGER);
    if (entries !== null) this.rolledBack.push(...entries);
  }

  /**
   * Whether the log of the leader of `leaderTerm` surely holds our snapshot's last entry:
   * the leader made it (an entry of its term exists only in its log and those copied from
   * it), or it sent us the snapshot.
   */
  private leaderLogHoldsSnapshot(leaderTerm: number): boolean {
    return this.log.snapshotMeta().term === leaderTerm || this.snapshotLeaderTerm === leaderTerm;
  }

  private get awaitingRepair(): boolean {
    return this.repairReportedFrom !== null;
  }

  /** Reports our entries from `from` on as lost and waits for a snapshot to rebuild from. */
  private awaitRepair(from: number): void {
    this.reportRolledBack(from);
    this.repairReportedFrom = Math.max(from, this.log.firstIndex());
  }

  private rejectNeedingSnapshot(to: NodeId, prevIndex: number): void {
    this.send(
      { type: 'appendResp', from: this.id, to, term: this.term, matchIndex: 0, reject: true, rejectedIndex: prevIndex, lastIndexHint: this.log.lastIndex(), needSnapshot: true },
      'afterPersist',
    );
  }

  private reloadConfig(): void {
    const { config, index } = this.latestConfig();
    this.config = config;
    this.configIndex = index;
  }

  /** The largest index <= `index` whose term is <= `term`: where the leader should retry. */
  private conflictHint(index: number, term: number): number {
    let i = index;
    while (i > this.log.committed) {
      const t = this.log.term(i);
      if (t === undefined || t <= term) break;
      i--;
    }
    return i;
  }

  private respondAppend(to: NodeId, matchIndex: number): void {
    this.send(
      { type: 'appendResp', from: this.id, to, term: this.term, matchIndex, reject: false, rejectedIndex: 0, lastIndexHint: this.log.lastIndex(), needSnapshot: false },
      'afterPersist',
    );
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.log.ackTo(Math.min(m.acked, this.log.lastIndex()));
    // Heartbeat responses do not depend on durable state: they may leave at once.
    this.send({ type: 'heartbeatResp', from: this.id, to: m.from, term: this.term, readRound: m.readRound }, 'now');
  }

  private handleSnapshot(m: SnapshotMessage): void {
    const meta: SnapshotMeta = m.meta;
    if (this.awaitingRepair ? meta.index < this.log.committed : meta.index <= this.log.committed) {
      this.respondAppend(m.from, this.log.committed);
      return;
    }
    if (!this.awaitingRepair && this.log.matchTerm(meta.index, meta.term)) {
      // Our log already holds the snapshot's last entry: keep the entries after it (Raft
      // Figure 13, step 6). Resetting the log would drop entries we acknowledged.
      this.respondAppend(m.from, meta.index);
      return;
    }
    const base = this.log.snapshotMeta();
    if (!this.awaitingRepair && meta.index < base.index && meta.term === base.term) {
      // An older snapshot of the log our own snapshot came from (one term has one leader,
      // whose log only grows): a stale or overtaken message. Installing it would drop
      // entries we acknowledged; both hold everything up to its index, so say just that.
      this.respondAppend(m.from, meta.index);
      return;
    }
    if (isWeakQuorum(this.config) && this.log.lastIndex() > this.log.committed) {
      // The snapshot replaces our whole log. Under a weak quorum our entries past the commit
      // index may have been acknowledged; some may survive in the snapshot, but we cannot
      // tell which: report them all rather than lose one silently. Waiting for a repair, we
      // reported those from the conflict with an earlier leader on; this snapshot may come
      // from a later one whose log diverges below that, so the entries before it go too.
      this.reportRolledBack(this.log.committed + 1, this.repairReportedFrom ?? undefined);
    }
    this.log.restore(meta, this.awaitingRepair, m.commit);
    this.repairReportedFrom = null;
    this.snapshotLeaderTerm = this.term;
    this.config = meta.config;
    this.configIndex = meta.index;
    this.respondAppend(m.from, meta.index);
  }

  // ---------------------------------------------------------------------------------
  // Helpers

  private peers(): NodeId[] {
    return this.config.members.filter((m) => m !== this.id);
  }

  private send(m: Message, when: 'now' | 'afterPersist'): void {
    if (when === 'now') this.messages.push(m);
    else this.messagesAfterPersist.push(m);
  }

  private softChanged(): boolean {
    return this.prevSoft.role !== this.role || this.prevSoft.leader !== this.leader;
  }

  private hardChanged(): boolean {
    return this.prevHard.term !== this.term || this.prevHard.vote !== this.vote || this.prevHard.commit !== this.log.committed;
  }

  /** The config in force: the latest config entry in the log, else the snapshot's. */
  private latestConfig(): { config: ClusterConfig; index: number } {
    const snap = this.log.snapshotMeta();
    const first = this.log.firstIndex();
    for (let i = this.log.lastIndex(); i >= first; i--) {
      const entries = this.log.slice(i, i + 1, Number.MAX_SAFE_INTEGER);
      const e = entries?.[0];
      if (e !== undefined && e.kind === 'config') return { config: decodeConfig(e.data), index: e.index };
      // Scanning a long log at start-up is bounded by the compaction threshold.
    }
    return { config: snap.config, index: snap.index };
  }
}

export { entryBytes };
