/**
 * The Raft replication core: a pure, synchronous state machine in the style of
 * etcd-io/raft. Inputs: `tick()`, `step(message)`, `propose(entries)`, `readIndex()` (on
 * followers too), membership changes and leadership transfer. Output: `takeMessages()`, `takeApplicable()` and `ready()`, each `Ready` acknowledged
 * with `advance(ready)`; the contract (what may leave before which flush, what may be
 * applied when, how many Readys may be in flight) is written once, at `Ready` in types.ts.
 *
 * It must never: read a clock other than the injected `clockTicks` (read leases only),
 * draw randomness other than from the injected Prng, do I/O, or await. It moves opaque
 * entries and knows nothing of the key-value state.
 *
 * The commit rule is pluggable (quorum.ts): `commitIndex` always follows the majority
 * (Raft's safety rests on it), while `ackedIndex` follows the configured write quorum and
 * decides what is applied and acknowledged.
 */

import { assert } from '../stdx/assert.js';
import type { Prng } from '../stdx/prng.js';
import { decodeConfig, encodeConfig, isWeakQuorum } from './config.js';
import { handleAppend, handleHeartbeat, handleSnapshot, type FollowerHost } from './follower.js';
import { inSyncAckIndex, isRelayed, nextInSyncChange } from './in-sync.js';
import { applyMembershipChange, configInLog, isReplica, mostCaughtUpVoter, isVoter, replicasOf, votersChanged, type MembershipChange } from './membership.js';
import { RaftLog } from './log.js';
import type { CoreOptions, PlantedBugs } from './options.js';
import { assertValidOptions } from './options-check.js';
import { Progress } from './progress.js';
import { ReadOnly, type ReadHost } from './read-only.js';
import { Rollback } from './rollback.js';
import { ackCount, countVotes, indexReachedBy, majoritySize } from './quorum.js';
import type {
  AppendMessage,
  AppendResponse,
  ClusterConfig,
  ConfigChangeResult,
  CoreStatus,
  Entry,
  EntryKind,
  HardState,
  HeartbeatMessage,
  HeartbeatResponse,
  Message,
  NodeId,
  PreVoteMessage,
  ProposeResult,
  ReadFailure,
  ReadIndexResult,
  ReadState,
  Ready,
  Role,
  SoftState,
  TransferResult,
  VoteMessage,
} from './types.js';

/** An append with no entries to a follower in replicate state: not sent, sent (answered), or sent quiet (a new commit index only). */
type EmptyAppend = 'skip' | 'send' | 'quiet';

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
  /** Ticks since this core was built (a node that has just started refuses votes, with read leases). */
  private ticksSinceStart = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private appendsDirty = false;
  /** Leadership transfer in progress (leader only): no proposals until it ends. */
  private transferee: NodeId | null = null;
  private transferElapsedTicks = 0;
  private commitChangedSinceBroadcast = false;

  private readonly reads: ReadOnly;
  private readonly follower: FollowerHost;

  private readonly rollback: Rollback;
  private messages: Message[] = [];
  private messagesAfterPersist: Message[] = [];
  private snapshotsToSend: NodeId[] = [];
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** Handed out by ready(), not yet advanced, oldest first. */
  private readiesInFlight: Ready[] = [];
  planted: PlantedBugs = {};

  constructor(options: CoreOptions) {
    assertValidOptions(options);
    this.opts = options;
    this.id = options.id;
    this.reads = new ReadOnly(this.readHost(), options);
    this.prng = options.prng;
    this.log = new RaftLog(options.log, options.hardState.commit, options.appliedIndex);
    this.rollback = new Rollback(this.log);
    this.follower = this.followerHost();
    this.term = options.hardState.term;
    this.vote = options.hardState.vote;
    const { config, index } = this.latestConfig();
    this.config = config;
    this.configIndex = index;
    // The applied index is not taken for committed, even outside weak write quorums: the
    // configuration may have been a weak one when those entries were applied (a mode switch,
    // or a membership change that made W smaller than a majority), and an entry acknowledged
    // then may still be replaced. The stored commit index is a lower bound; the leader raises it.
    this.prevSoft = { role: this.role, leader: this.leader };
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.resetRandomizedElectionTimeout();
  }

  // ---------------------------------------------------------------------------------
  // Inputs

  tick(): void {
    if (this.planted.configOnCommit === true) this.reloadConfig();
    this.ticksSinceStart++;
    this.reads.tick();
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

  /** Handles one message from a peer. Messages from nodes outside the configuration are ignored. */
  step(m: Message): void {
    this.stepMessage(m);
    if (this.planted.configOnCommit === true) this.reloadConfig();
  }

  private stepMessage(m: Message): void {
    if (m.to !== this.id) return;
    // Votes are answered whoever asks: a node whose log holds an older configuration may
    // be needed to elect a member it has not heard of yet (seed 328363765: no leader ever
    // again). What keeps a removed node that does not know it from disrupting is the
    // lease below (checkQuorum), as in etcd. A leader's messages are heeded from anyone:
    // our configuration may be one the leader's log is about to replace. Read-index
    // requests from outside the configuration are ignored: a non-member serves no reads.
    if (m.type === 'readIndex' && !isReplica(this.config, m.from)) return;
    if (m.term > this.term) {
      if ((m.type === 'preVote' || (m.type === 'vote' && !m.transfer)) && this.inLease()) return;
      if (m.type === 'preVote') {
        // A pre-vote does not change our term: the candidate has not campaigned yet.
      } else if (m.type === 'preVoteResp' && m.granted) {
        // Granted pre-votes carry the term we would campaign in.
      } else if (m.type === 'append') {
        this.becomeFollower(m.term, m.leader);
      } else if (m.type === 'heartbeat' || m.type === 'snapshot' || m.type === 'timeoutNow') {
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
        this.reads.refuseStaleRequest(m);
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
        this.becomeFollowerOf(m.leader);
        handleAppend(this.follower, m);
        return;
      case 'heartbeat':
        this.becomeFollowerOf(m.from);
        handleHeartbeat(this.follower, m);
        return;
      case 'snapshot':
        this.becomeFollowerOf(m.from);
        handleSnapshot(this.follower, m);
        return;
      case 'appendResp':
        if (this.role === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        if (this.role === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        this.reads.handleRequest(m);
        return;
      case 'readIndexResp':
        // Only the leader asked, in this term (the term check above), may answer: after a
        // change of leader or term the reads were failed and their ids are gone.
        if (this.role === 'follower' && m.from === this.leader) this.reads.handleResponse(m);
        return;
      case 'timeoutNow':
        // Our leader hands over: campaign at once, skipping the pre-vote (it would fail
        // while the others still hear from that leader).
        if (this.role !== 'leader' && m.from === this.leader && this.mayCampaign()) {
          this.electionElapsed = 0;
          this.campaign('vote', true);
        }
        return;
    }
  }

  /** Appends entries to the leader's log. They are replicated with the next Ready. */
  propose(items: readonly { readonly kind: EntryKind; readonly data: Uint8Array }[]): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    // Handing over: the transferee's log must stop growing to catch up; clients retry there.
    if (this.transferee !== null) return { ok: false, reason: 'notLeader', leader: null };
    const uncommitted = this.log.lastIndex() - this.log.committed;
    if (uncommitted + items.length > this.opts.uncommittedEntriesMax) {
      return { ok: false, reason: 'busy', uncommittedEntries: uncommitted };
    }
    const first = this.log.lastIndex() + 1;
    const entries: Entry[] = items.map((item, i) => ({ term: this.term, index: first + i, kind: item.kind, data: item.data }));
    this.appendAsLeader(entries);
    return { ok: true, index: first + entries.length - 1, term: this.term };
  }

  /** Asks for a linearizable read point, on the leader or a follower (read-only.ts says how). */
  readIndex(): ReadIndexResult {
    return this.reads.readIndex();
  }

  /**
   * Proposes a new configuration (mode switch, in-sync set change, membership change).
   * Every node switches when the entry is appended to its log, so all switch at the same
   * index. One change at a time, each at most one voter away from the last, and only once
   * this leader has committed an entry of its own term (membership.ts says why).
   */
  proposeConfig(config: ClusterConfig): ConfigChangeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    if (this.configIndex > this.log.committed) {
      return { ok: false, reason: 'busy', message: `the configuration change at index ${this.configIndex} is not committed yet` };
    }
    if (!this.committedInCurrentTerm() && this.planted.configChangeBeforeOwnTermCommit !== true) {
      return { ok: false, reason: 'busy', message: 'a new leader commits an entry of its own term before changing the configuration' };
    }
    if (votersChanged(this.config, config) > 1) {
      return { ok: false, reason: 'invalid', message: 'a configuration change may add or remove at most one voter' };
    }
    const r = this.propose([{ kind: 'config', data: encodeConfig(config) }]);
    if (!r.ok) return r.reason === 'notLeader' ? r : { ok: false, reason: 'busy', message: `${r.uncommittedEntries} entries wait for their commit` };
    return { ok: true, index: r.index, term: r.term, config };
  }

  /**
   * Adds, promotes or removes a member. A learner is promoted only once within
   * `promoteLagEntriesMax` entries of the leader's log (it must not slow the commit index
   * down the moment it counts); removing the leader itself is allowed: it leads until
   * the removal commits, then steps down and hands over (see maybeCommit).
   */
  proposeMembership(change: MembershipChange): ConfigChangeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    const next = applyMembershipChange(this.config, change);
    if (typeof next === 'string') return { ok: false, reason: 'invalid', message: next };
    if (change.kind === 'promote') {
      const lag = this.log.lastIndex() - (this.progress.get(change.id)?.match ?? 0);
      if (lag > this.opts.promoteLagEntriesMax) {
        return { ok: false, reason: 'lagging', message: `${change.id} is ${lag} entries behind the leader (at most ${this.opts.promoteLagEntriesMax} to promote)` };
      }
    }
    return this.proposeConfig(next);
  }

  /**
   * Hands leadership to voter `to` (Raft thesis §3.10): proposals stop, `to` is brought up
   * to date, then told to campaign at once (TimeoutNow). Abandoned after an election
   * timeout if `to` never catches up; leadership then stays here.
   */
  transferLeadership(to: NodeId): TransferResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    if (to === this.id) return { ok: true, to };
    if (!isVoter(this.config, to)) return { ok: false, reason: 'invalid', message: `${to} is not a voter` };
    if (this.planted.leaseKeptThroughTransfer !== true) this.reads.barLease();
    this.transferee = to;
    this.transferElapsedTicks = 0;
    const pr = this.progress.get(to);
    if (pr !== undefined && pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', from: this.id, to, term: this.term }, 'now');
    else this.sendAppendFully(to, 'send');
    return { ok: true, to };
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
      this.reads.hasUnsent() ||
      this.log.hasUnstableToPersist() ||
      this.log.hasCommittedToApply() ||
      this.reads.hasResults() ||
      this.snapshotsToSend.length > 0 ||
      this.rollback.hasReport() ||
      this.softChanged() ||
      this.hardChanged()
    );
  }

  /**
   * Messages that do not depend on anything being durable: they may leave at any time, even
   * with Readys in flight (the Ready contract in types.ts, step 2).
   */
  takeMessages(): Message[] {
    if (this.appendsDirty && this.role === 'leader') this.broadcastAppend();
    this.reads.sendFollowerReads();
    return this.drainMessages();
  }

  /** Hands out the messages queued so far; a read round among them has now left. */
  private drainMessages(): Message[] {
    const out = this.messages;
    this.messages = [];
    this.reads.messagesLeft();
    return out;
  }

  /**
   * Entries durable here and acknowledged, confirmed read points and failed reads: none
   * waits for a Ready in flight (the Ready contract in types.ts, step 3).
   */
  takeApplicable(): { committed: Entry[]; readStates: ReadState[]; readsFailed: ReadFailure[] } {
    if (this.planted.applyBeforeCommit === true) this.log.ackTo(this.log.lastIndex());
    const committed = this.log.takeCommitted(this.opts.applyEntriesMax, this.opts.applyBytesMax);
    const { readStates, readsFailed } = this.reads.takeResults();
    return { committed, readStates, readsFailed };
  }

  hasApplicable(): boolean {
    return this.reads.hasResults() || this.log.hasCommittedToApply();
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
   * Takes the pending effects as a Ready (the contract is at `Ready` in types.ts). Every
   * Ready must be advanced, in the order handed out; hasReady() says whether another may be
   * taken before that.
   */
  ready(): Ready {
    assert(this.mayHandOutReady(), () => `ready() called with ${this.readiesInFlight.length} Ready batches in flight (max ${this.opts.persistsInFlightMax}, or a snapshot install in flight)`);
    if (this.appendsDirty) this.broadcastAppend();
    this.reads.sendFollowerReads();
    const { snapshot, entries } = this.log.takeUnstable();
    if (this.planted.applyBeforeCommit === true) this.log.ackTo(this.log.lastIndex());
    const committed = this.log.takeCommitted(this.opts.applyEntriesMax, this.opts.applyBytesMax);
    const soft = this.softChanged() ? { role: this.role, leader: this.leader } : null;
    const hard = this.hardChanged() ? { term: this.term, vote: this.vote, commit: this.log.committed } : null;
    const { readStates, readsFailed } = this.reads.takeResults();
    const rd: Ready = {
      softState: soft,
      hardState: hard,
      snapshot,
      entries,
      messages: this.drainMessages(),
      messagesAfterPersist: this.messagesAfterPersist,
      committed,
      readStates,
      readsFailed,
      snapshotsToSend: this.snapshotsToSend,
      rolledBack: this.rollback.take(),
    };
    if (soft !== null) this.prevSoft = soft;
    if (hard !== null) this.prevHard = hard;
    this.messagesAfterPersist = [];
    this.snapshotsToSend = [];
    this.readiesInFlight.push(rd);
    return rd;
  }

  /**
   * `rd`, the oldest Ready in flight, and every earlier one are durable, and its
   * messagesAfterPersist have been sent: its entries join the stable log.
   */
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

  status(): CoreStatus {
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
      readsByLease: this.reads.leaseReads,
      progress: [...this.progress.entries()].map(([id, p]) => ({
        id,
        match: p.match,
        next: p.next,
        state: p.state,
        recentActive: p.recentActive,
        answeredRecently: id === this.id || p.silentTicks < this.opts.electionTimeoutTicks,
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

  currentConfigIndex(): number {
    return this.configIndex;
  }

  /** The voter this leader is handing leadership to (proposals wait meanwhile), or null. */
  handingOverTo(): NodeId | null {
    return this.transferee;
  }

  // ---------------------------------------------------------------------------------
  // Elections

  private mayCampaign(): boolean {
    if (this.opts.pinnedLeader !== null) return this.opts.pinnedLeader === this.id;
    return this.config.members.includes(this.id);
  }

  /**
   * Within an election timeout of hearing from a live leader: ignore vote requests. With
   * read leases also within one of starting: this node may have acknowledged a lease round
   * just before it restarted, and forgot which leader it heard.
   */
  private inLease(): boolean {
    if (!this.opts.checkQuorum) return false;
    if (this.leader !== null && this.electionElapsed < this.opts.electionTimeoutTicks) return true;
    return this.opts.readLeaseTicks > 0 && this.ticksSinceStart < this.opts.electionTimeoutTicks;
  }

  private campaign(kind: 'preVote' | 'vote', transfer = false): void {
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
    if (countVotes(this.config.members, this.votes).granted >= majoritySize(this.config.members.length)) {
      if (kind === 'preVote') this.campaign('vote');
      else this.becomeLeader();
      return;
    }
    for (const peer of this.config.members) {
      if (peer === this.id) continue;
      const base = { from: this.id, to: peer, term, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm() };
      const msg: PreVoteMessage | VoteMessage = kind === 'preVote' ? { type: kind, ...base } : { type: kind, ...base, transfer };
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
    const { granted: yes, refused: no } = countVotes(this.config.members, this.votes);
    const quorum = majoritySize(this.config.members.length);
    if (yes >= quorum) {
      if (kind === 'preVote') this.campaign('vote');
      else this.becomeLeader();
    } else if (no >= quorum) {
      this.becomeFollower(this.term, null);
    }
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    if (term !== this.term || leader !== this.leader) this.reads.failFollowerReads();
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
    this.reads.failFollowerReads();
    this.role = 'preCandidate';
    this.leader = null;
    this.dropLeaderState();
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become candidate');
    this.reads.failFollowerReads();
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
    this.rollback.repairMoot();
    this.resetTimers();
    this.progress = new Map();
    const next = this.log.lastIndex() + 1;
    for (const member of replicasOf(this.config)) {
      const pr = new Progress(next, this.opts.inflightMessagesMax);
      pr.recentActive = true;
      if (member === this.id) {
        // Our own match advances only as our writes become durable (advance()); the noop
        // below covers every earlier entry once it is.
        pr.becomeReplicate();
      }
      this.progress.set(member, pr);
    }
    // A leader that is no voter (its removal is in its log, not yet committed) still
    // tracks its own match: its log is what it replicates.
    if (!this.progress.has(this.id)) this.progress.set(this.id, new Progress(next, this.opts.inflightMessagesMax));
    this.progress.get(this.id)?.becomeReplicate();
    this.reads.becameLeader();
    // A new leader commits an entry of its own term: only then are earlier entries known
    // committed (Raft §5.4.2), and only then can it serve read-index reads.
    this.appendAsLeader([{ term: this.term, index: this.log.lastIndex() + 1, kind: 'noop', data: new Uint8Array(0) }]);
  }

  private dropLeaderState(): void {
    this.progress = new Map();
    this.transferee = null;
    this.reads.leadershipEnded();
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
    if (this.transferee !== null && ++this.transferElapsedTicks >= this.opts.electionTimeoutTicks) this.transferee = null;
    if (this.electionElapsed >= this.opts.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum && this.opts.pinnedLeader === null) {
        let active = 0;
        for (const [id, pr] of this.progress) {
          if (isVoter(this.config, id) && (id === this.id || pr.recentActive)) active++;
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
      this.reads.heartbeat();
    }
  }

  /** `all` and `chain`: one in-sync set change at a time, once the last one committed (in-sync.ts). */
  private maintainInSyncSet(): void {
    const c = this.config;
    if (c.writeQuorum !== 'all' && c.topology !== 'chain') return;
    if (this.configIndex > this.log.committed || !this.committedInCurrentTerm()) return;
    const next = nextInSyncChange({
      config: c,
      progress: this.progress,
      self: this.id,
      commitIndex: this.log.committed,
      lastIndex: this.log.lastIndex(),
      memberTimeoutTicks: this.opts.memberTimeoutTicks,
      appendEntriesMax: this.opts.appendEntriesMax,
    });
    if (next !== null) this.proposeConfig(next);
  }

  private appendAsLeader(entries: Entry[]): void {
    this.log.append(entries);
    for (const e of entries) {
      if (e.kind === 'config' && this.planted.configOnCommit !== true) {
        this.config = decodeConfig(e.data);
        this.configIndex = e.index;
        this.trackReplicas();
      }
    }
    this.appendsDirty = true;
    if (this.config.members.length === 1) this.maybeCommit();
  }

  /** Leader: a progress entry for every replica of the configuration in force, no other. */
  private trackReplicas(): void {
    const replicas = replicasOf(this.config);
    for (const id of [...this.progress.keys()]) if (id !== this.id && !replicas.includes(id)) this.progress.delete(id);
    for (const id of replicas) {
      if (this.progress.has(id)) continue;
      const pr = new Progress(this.log.lastIndex() + 1, this.opts.inflightMessagesMax);
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
    if (this.transferee !== null && !isVoter(this.config, this.transferee)) this.transferee = null;
  }

  private broadcastAppend(): void {
    const empty = this.commitChangedSinceBroadcast ? 'quiet' : 'skip';
    this.appendsDirty = false;
    this.commitChangedSinceBroadcast = false;
    for (const peer of this.peers()) this.sendAppendFully(peer, empty);
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
        acked: Math.min(match, this.ackedToSend()),
        readRound,
      };
      this.send(msg, 'now');
    }
  }

  /**
   * Sends the next batch of entries to `to` if flow control allows. With nothing new, a
   * follower in replicate state gets an append only as `empty` says (a probe's is always sent).
   */
  private sendAppend(to: NodeId, empty: EmptyAppend, direct = false): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    if (!direct && isRelayed(this.config, this.progress, this.id, to)) return false;
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
    // Nothing new for a follower that is in step: what `empty` asks decides whether it gets an append.
    const nothingNew = entries.length === 0 && pr.state === 'replicate';
    if (nothingNew && empty === 'skip') return false;
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
      acked: Math.min(this.ackedToSend(), lastSent),
      ...(nothingNew && empty === 'quiet' ? { quiet: true as const } : {}),
    };
    this.send(msg, 'now');
    pr.sentAppend(lastSent, entries.length);
    if (msg.quiet === true && this.planted.quietAppendCountsAsAck === true) pr.maybeUpdate(lastSent);
    return true;
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
      if (pr.maybeDecrTo(m.rejectedIndex, m.lastIndexHint)) this.sendAppendFully(m.from, 'send');
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.matchIndex)) {
      if (pr.state === 'probe' || pr.state === 'snapshot') pr.becomeReplicate();
      if (m.from === this.transferee && pr.match === this.log.lastIndex()) {
        this.send({ type: 'timeoutNow', from: this.id, to: m.from, term: this.term }, 'now');
      }
      if (this.maybeCommit()) {
        // Followers learn the new commit/acked index with the next broadcast, which is
        // coalesced: one per batch of responses, not one per response.
        this.commitChangedSinceBroadcast = true;
        this.appendsDirty = true;
      }
      this.sendAppendFully(m.from, 'skip');
    } else if (wasPaused && !pr.isPaused()) {
      this.sendAppendFully(m.from, 'skip');
    }
  }

  /** Sends as many appends as the window allows (a lagging follower catches up fast). */
  private sendAppendFully(to: NodeId, empty: EmptyAppend, direct = false): void {
    let first = empty;
    while (this.sendAppend(to, first, direct)) {
      first = 'skip';
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
    if (pr.match < this.log.lastIndex()) this.sendAppendFully(m.from, 'send', stalled);
    this.reads.handleHeartbeatResponse(m.from, m.readRound);
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
        ? inSyncAckIndex(this.config, this.progress, this.id)
        : indexReachedBy(matches, ackCount(this.config.writeQuorum, members.length));
    if (ackCandidate > this.log.acked && this.log.term(ackCandidate) === this.term) {
      this.log.ackTo(ackCandidate);
    }
    const moved = this.log.committed !== before.committed || this.log.acked !== before.acked;
    if (moved) this.reads.commitMoved();
    if (moved && this.log.committed >= this.configIndex && !isVoter(this.config, this.id)) this.stepDownRemoved();
    return moved;
  }

  /**
   * The configuration that removes this leader is committed: it stops leading (it is no
   * voter any more) and hands over to the most up-to-date voter, so the rest need not wait
   * for an election timeout.
   */
  private stepDownRemoved(): void {
    const best = mostCaughtUpVoter(this.config, this.id, (id) => this.progress.get(id)?.match ?? 0);
    if (best !== null && best.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', from: this.id, to: best.id, term: this.term }, 'now');
    this.becomeFollower(this.term, null);
  }

  /**
   * The acked index followers are told; outside weak quorums never beyond the commit index (a
   * restarted leader's acked index is its applied index, maybe from an earlier weak config).
   */
  private ackedToSend(): number {
    return isWeakQuorum(this.config) ? this.log.acked : Math.min(this.log.acked, this.log.committed);
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  // ---------------------------------------------------------------------------------
  // Read index (the rounds and pending reads live in read-only.ts)

  private readHost(): ReadHost {
    return {
      id: this.id,
      role: () => this.role,
      leader: () => this.leader,
      term: () => this.term,
      voters: () => this.config.members,
      committedInCurrentTerm: () => this.committedInCurrentTerm(),
      readPoint: () => this.readPoint(),
      send: (m) => this.send(m, 'now'),
      broadcastHeartbeat: (readRound) => this.broadcastHeartbeat(readRound),
      clock: () => (this.planted.readLeaseOnTickCount === true ? this.ticksSinceStart : this.opts.clockTicks()),
      readJoinsSentRound: () => this.planted.readJoinsSentRound === true,
    };
  }

  /**
   * The index a read must see: the commit index, or under a weak quorum the acknowledged
   * index beyond it, so that a read served by a follower shows every write a client was
   * told succeeded, as the leader's own state does (read-your-writes on any node).
   */
  private readPoint(): number {
    return Math.max(this.log.committed, this.log.acked);
  }

  // ---------------------------------------------------------------------------------
  // Follower (follower.ts takes the leader's log)

  private followerHost(): FollowerHost {
    return {
      id: this.id,
      log: this.log,
      rollback: this.rollback,
      term: () => this.term,
      config: () => this.config,
      configIndex: () => this.configIndex,
      reloadConfig: () => this.reloadConfig(),
      adoptConfig: (config, index) => {
        this.config = config;
        this.configIndex = index;
      },
      send: (m, when) => this.send(m, when),
    };
  }

  private reloadConfig(): void {
    const { config, index } = this.latestConfig();
    this.config = config;
    this.configIndex = index;
    if (this.role === 'leader') this.trackReplicas();
  }

  // ---------------------------------------------------------------------------------
  // Helpers

  private peers(): NodeId[] {
    return replicasOf(this.config).filter((m) => m !== this.id);
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

  /** The config in force: the latest config entry in the log, else the snapshot's (planted configOnCommit: the latest committed one). */
  private latestConfig(): { config: ClusterConfig; index: number } {
    const upTo = this.planted.configOnCommit === true ? Math.min(this.log.committed, this.log.lastIndex()) : this.log.lastIndex();
    return this.configAt(upTo);
  }

  /**
   * The configuration in force at `index` (the latest config entry at or before it, else
   * the snapshot's): what a snapshot taken at `index` must carry. Scanning back is bounded
   * by the log's length, itself bounded by compaction.
   */
  configAt(index: number): { config: ClusterConfig; index: number } {
    return configInLog(this.log, index);
  }
}
