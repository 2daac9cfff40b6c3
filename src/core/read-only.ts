/**
 * Linearizable reads without a log entry (Raft §6.4, etcd raft's read_only.go): the
 * read-index rounds a leader runs to confirm it still leads, the reads (its own and its
 * followers') waiting for a round, and on a follower the reads it asked its leader about.
 * Its output is data the core hands out with its Ready: `ReadState`s (serve once applied
 * up to the index), `ReadFailure`s, and read-index messages queued through the host.
 *
 * With a read lease (CoreOptions.readLeaseTicks), the leader also serves reads at once for
 * a while after a round a majority confirmed: every node that acknowledged it refuses votes
 * for an election timeout after hearing it (the core's inLease), so no other leader can be
 * elected before the lease, timed from the round's sending by the host's clock, runs out.
 *
 * It must never hand out a read point that neither a round started after the read arrived
 * nor a lease holding when the point was chosen has confirmed, nor keep a follower's read
 * across a change of leader or term (an answer from another leader or term could be
 * stale). It owns no role, term or log: it asks the host.
 */

import { assert } from '../stdx/assert.js';
import { majoritySize } from './quorum.js';
import type {
  Message,
  NodeId,
  ReadFailure,
  ReadIndexMessage,
  ReadIndexRefusal,
  ReadIndexResponse,
  ReadIndexResult,
  ReadState,
  Role,
} from './types.js';
import { readIndexRequestIdsMax } from './types.js';

/** What the read machinery needs from the core it lives in. */
export interface ReadHost {
  readonly id: NodeId;
  role(): Role;
  leader(): NodeId | null;
  term(): number;
  /** The voters of the configuration in force: only their answers confirm leadership (learners never count). */
  voters(): readonly NodeId[];
  /** Whether the leader has committed an entry of its term (only then may it serve reads). */
  committedInCurrentTerm(): boolean;
  /** The index a read asked now must see (see RaftCore). */
  readPoint(): number;
  /** Queues a message that does not depend on durable state (it may leave at once). */
  send(m: Message): void;
  /** Queues one heartbeat per follower carrying `readRound` (0: none). */
  broadcastHeartbeat(readRound: number): void;
  /** Monotonic real time in ticks (CoreOptions.clockTicks): what read leases are timed by. */
  clock(): number;
  /** Planted bug: a read joins a round whose heartbeats already left. */
  readJoinsSentRound(): boolean;
}

export interface ReadLimits {
  /** Request ids waiting for a read point, leader or follower; beyond it readIndex() answers `busy`. */
  readonly readsPendingMax: number;
  /** A follower's request unanswered this long fails with `timeout`. */
  readonly readIndexTimeoutTicks: number;
  /** How long, by the host's clock, a confirmed round vouches for reads (0: no lease). */
  readonly readLeaseTicks: number;
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

export class ReadOnly {
  private readRound = 0;
  private readRoundInFlight = 0;
  /**
   * The round in flight has not left the core yet: its heartbeats still wait in `messages`.
   * A read that arrives now may join it, since every ack of it will be sent after the read
   * arrived. (Once the heartbeats are handed out, new reads wait for the next round.)
   */
  private readRoundOpen = false;
  private readAcks = new Set<NodeId>();
  /** Clock when the round in flight was first sent: each of its acks was sent after it. */
  private roundSentAt = 0;
  /** Clock when the newest round a majority confirmed was sent (-Infinity: none in this leadership). */
  private leaseFrom = -Infinity;
  /**
   * No read is served by lease in this leadership: leases are off, or a leadership transfer
   * started (the transferee's election does not respect leases: its votes are granted at once).
   */
  private leaseBarred: boolean;
  /** Reads (request ids) served by the lease since start. */
  leaseReads = 0;
  private pendingReads: PendingRead[] = [];
  /** Reads asked before this leader committed an entry of its term: served after. */
  private readsWaitingForTermCommit: ReadRequester[] = [];
  /** Request ids in pendingReads and readsWaitingForTermCommit (at most readsPendingMax). */
  private readsPendingCount = 0;
  private readStates: ReadState[] = [];
  private readsFailed: ReadFailure[] = [];
  private nextReadRequestId = 1;
  /**
   * Follower: reads asked of the leader in this term, by request id, with the tick they
   * were asked at (Map order is ask order). Any change of leader or term fails them all: an
   * answer from another leader or term could be stale.
   */
  private followerReads = new Map<number, number>();
  /** Follower: ids of followerReads not sent yet; they leave in batches with the next messages. */
  private followerReadsUnsent: number[] = [];
  /** Ticks since this core started (read-index timeouts). */
  private ticksElapsed = 0;

  constructor(
    private readonly host: ReadHost,
    private readonly limits: ReadLimits,
  ) {
    this.leaseBarred = limits.readLeaseTicks === 0;
  }

  // ---------------------------------------------------------------------------------
  // Inputs from the core

  tick(): void {
    this.ticksElapsed++;
    if (this.followerReads.size > 0) this.expireFollowerReads();
  }

  /**
   * Asks for a linearizable read point. The answer arrives as a `ReadState` with the same
   * requestId (serve the read once the state machine has applied its `index`), or as a
   * `ReadFailure` (serve nothing; the client may retry); or at once, in the result, when the
   * leader's lease holds.
   *
   * On the leader: once a majority confirmed in a heartbeat round, started after this call,
   * that it still leads (and it has committed an entry of its term), at its commit index as
   * of this call. On a follower that knows its leader: the follower asks the leader with a
   * `readIndex` message, and the leader answers with the index its own read would use, by
   * the same rule. Refused (`notLeader`) on a node that knows no leader.
   */
  readIndex(): ReadIndexResult {
    const host = this.host;
    if (host.role() === 'leader') {
      const index = this.leaseReadPoint(1);
      if (index !== null) return { ok: true, requestId: this.nextReadRequestId++, index };
      if (this.readsPendingCount >= this.limits.readsPendingMax) return { ok: false, reason: 'busy', pendingReads: this.readsPendingCount };
      const requestId = this.nextReadRequestId++;
      this.acceptRead({ node: host.id, requestIds: [requestId] });
      return { ok: true, requestId, index: null };
    }
    const leader = host.leader();
    if (host.role() !== 'follower' || leader === null) return { ok: false, reason: 'notLeader', leader };
    if (this.followerReads.size >= this.limits.readsPendingMax) return { ok: false, reason: 'busy', pendingReads: this.followerReads.size };
    const requestId = this.nextReadRequestId++;
    this.followerReads.set(requestId, this.ticksElapsed);
    this.followerReadsUnsent.push(requestId);
    return { ok: true, requestId, index: null };
  }

  /** Leader: a follower asks for a read point; it is treated exactly like our own read. */
  handleRequest(m: ReadIndexMessage): void {
    const requester: ReadRequester = { node: m.from, requestIds: m.requestIds };
    if (this.host.role() !== 'leader') return this.refuseRead(requester, 'notLeader');
    const index = this.leaseReadPoint(m.requestIds.length);
    if (index !== null) return this.resolveRead(requester, index);
    if (this.readsPendingCount + m.requestIds.length > this.limits.readsPendingMax) return this.refuseRead(requester, 'busy');
    this.acceptRead(requester);
  }

  /**
   * A request from a follower of an older term: refused in ours, so it learns the newer
   * term and fails its reads at once instead of waiting for a timeout.
   */
  refuseStaleRequest(m: ReadIndexMessage): void {
    this.refuseRead({ node: m.from, requestIds: m.requestIds }, 'notLeader');
  }

  /** Follower: the leader we asked, in this term, answered some of our reads. */
  handleResponse(m: ReadIndexResponse): void {
    for (const requestId of m.requestIds) {
      // Not ours any more (answered by a duplicate, timed out): ignore.
      if (!this.followerReads.delete(requestId)) continue;
      if (m.refusal === null) this.readStates.push({ requestId, index: m.index });
      else this.readsFailed.push({ requestId, reason: m.refusal });
    }
  }

  /** Leader: `from` answered a heartbeat of `readRound`. */
  handleHeartbeatResponse(from: NodeId, readRound: number): void {
    if (readRound !== 0 && readRound === this.readRoundInFlight) {
      this.readAcks.add(from);
      if (this.confirmedByMajority()) this.finishReadRound();
    }
  }

  /** Leader: the commit or acked index moved; reads waiting for the term's first commit may go. */
  commitMoved(): void {
    if (!this.host.committedInCurrentTerm() || this.readsWaitingForTermCommit.length === 0) return;
    const waiting = this.readsWaitingForTermCommit;
    this.readsWaitingForTermCommit = [];
    for (const requester of waiting) this.addRead(requester);
  }

  /**
   * Leader: a regular heartbeat is due. It carries the round in flight; with a lease and no
   * round in flight it starts one, so the lease renews while no read comes.
   */
  heartbeat(): void {
    if (this.readRoundInFlight === 0 && !this.leaseBarred) this.startReadRound();
    else this.host.broadcastHeartbeat(this.readRoundInFlight);
  }

  /** Leader: a leadership transfer starts; no read is served by lease until another leadership. */
  barLease(): void {
    this.leaseBarred = true;
    this.leaseFrom = -Infinity;
  }

  /** A new leadership: rounds count from 1 again, and no lease holds until one is confirmed. */
  becameLeader(): void {
    this.readRound = 0;
    this.readRoundInFlight = 0;
    this.leaseFrom = -Infinity;
    this.leaseBarred = this.limits.readLeaseTicks === 0;
  }

  /**
   * Leadership ended: reads waiting for a round, ours or a follower's, get no read point:
   * a later round (of another leader) could not vouch for this one.
   */
  leadershipEnded(): void {
    for (const r of this.pendingReads) this.refuseRead(r.requester, 'notLeader');
    for (const r of this.readsWaitingForTermCommit) this.refuseRead(r, 'notLeader');
    this.pendingReads = [];
    this.readsWaitingForTermCommit = [];
    this.readsPendingCount = 0;
    this.readAcks = new Set();
    this.readRoundInFlight = 0;
    this.leaseFrom = -Infinity;
  }

  /**
   * Follower: the leader or the term changes (or this node campaigns): every read asked of
   * the old leader fails. Its answer, if one still comes, is ignored: the ids are gone.
   */
  failFollowerReads(): void {
    for (const requestId of this.followerReads.keys()) this.readsFailed.push({ requestId, reason: 'notLeader' });
    this.followerReads.clear();
    this.followerReadsUnsent = [];
  }

  // ---------------------------------------------------------------------------------
  // Output, taken by the core when it hands out messages and Readys

  /** Follower: sends the reads asked since the last batch to the leader, in bounded messages. */
  sendFollowerReads(): void {
    if (this.followerReadsUnsent.length === 0) return;
    const ids = this.followerReadsUnsent.filter((id) => this.followerReads.has(id));
    this.followerReadsUnsent = [];
    const role = this.host.role();
    const leader = this.host.leader();
    // A change of role, leader or term failed every follower read (failFollowerReads).
    assert(ids.length === 0 || (role === 'follower' && leader !== null), () => `${ids.length} follower reads to send as ${role} with leader ${leader ?? 'none'}`);
    if (leader === null) return;
    for (let i = 0; i < ids.length; i += readIndexRequestIdsMax) {
      const msg: ReadIndexMessage = { type: 'readIndex', from: this.host.id, to: leader, term: this.host.term(), requestIds: ids.slice(i, i + readIndexRequestIdsMax) };
      this.host.send(msg);
    }
  }

  /** The core handed out its queued messages: a read round among them has now left. */
  messagesLeft(): void {
    this.readRoundOpen = false;
  }

  hasUnsent(): boolean {
    return this.followerReadsUnsent.length > 0;
  }

  hasResults(): boolean {
    return this.readStates.length > 0 || this.readsFailed.length > 0;
  }

  /** Confirmed read points and failed reads since the last call. */
  takeResults(): { readStates: ReadState[]; readsFailed: ReadFailure[] } {
    const out = { readStates: this.readStates, readsFailed: this.readsFailed };
    this.readStates = [];
    this.readsFailed = [];
    return out;
  }

  // ---------------------------------------------------------------------------------
  // Rounds

  /**
   * Leader: the read point a read asked now may use at once, by the lease; null when no
   * lease holds. The point is taken before the clock is read, so that the lease still held
   * when the point was chosen (a stall between the two then only shortens the lease).
   */
  private leaseReadPoint(reads: number): number | null {
    if (this.leaseBarred || !this.host.committedInCurrentTerm()) return null;
    const index = this.host.readPoint();
    if (this.host.clock() - this.leaseFrom >= this.limits.readLeaseTicks) return null;
    this.leaseReads += reads;
    return index;
  }

  /** Leader: takes a read (its own or a follower's) into the read-index rounds. */
  private acceptRead(requester: ReadRequester): void {
    this.readsPendingCount += requester.requestIds.length;
    if (!this.host.committedInCurrentTerm()) {
      this.readsWaitingForTermCommit.push(requester);
      return;
    }
    this.addRead(requester);
  }

  /** The voters that answered this round, and this leader if it votes, are a majority. */
  private confirmedByMajority(): boolean {
    const voters = this.host.voters();
    let yes = 0;
    for (const id of voters) if (id === this.host.id || this.readAcks.has(id)) yes++;
    return yes >= majoritySize(voters.length);
  }

  private addRead(requester: ReadRequester): void {
    const voters = this.host.voters();
    if (voters.length === 1 && voters[0] === this.host.id) {
      this.readsPendingCount -= requester.requestIds.length;
      this.resolveRead(requester, this.host.readPoint());
      return;
    }
    // Reads join the next round: a round already sent left before they arrived. A round
    // whose heartbeats have not left yet is still ahead of them: they join it.
    const joinsInFlight = this.readRoundOpen || this.host.readJoinsSentRound();
    const round = this.readRoundInFlight !== 0 && joinsInFlight ? this.readRoundInFlight : this.readRound + 1;
    this.pendingReads.push({ requester, index: this.host.readPoint(), round });
    if (this.readRoundInFlight === 0) this.startReadRound();
  }

  /** Hands out a confirmed read point: as ReadStates here, or in an answer to the follower. */
  private resolveRead(requester: ReadRequester, index: number): void {
    if (requester.node === this.host.id) {
      for (const requestId of requester.requestIds) this.readStates.push({ requestId, index });
      return;
    }
    const msg: ReadIndexResponse = { type: 'readIndexResp', from: this.host.id, to: requester.node, term: this.host.term(), requestIds: requester.requestIds, index, refusal: null };
    this.host.send(msg);
  }

  private refuseRead(requester: ReadRequester, refusal: ReadIndexRefusal): void {
    if (requester.node === this.host.id) {
      for (const requestId of requester.requestIds) this.readsFailed.push({ requestId, reason: refusal });
      return;
    }
    const msg: ReadIndexResponse = { type: 'readIndexResp', from: this.host.id, to: requester.node, term: this.host.term(), requestIds: requester.requestIds, index: 0, refusal };
    this.host.send(msg);
  }

  /** Follower: requests unanswered for readIndexTimeoutTicks were lost (or their answers were). */
  private expireFollowerReads(): void {
    for (const [requestId, askedTick] of this.followerReads) {
      if (this.ticksElapsed - askedTick < this.limits.readIndexTimeoutTicks) break;
      this.followerReads.delete(requestId);
      this.readsFailed.push({ requestId, reason: 'timeout' });
    }
  }

  private startReadRound(): void {
    this.readRound++;
    this.readRoundInFlight = this.readRound;
    this.readAcks = new Set();
    this.roundSentAt = this.host.clock();
    this.host.broadcastHeartbeat(this.readRound);
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
    // Every voter that acked heard from this leader after roundSentAt, and refuses votes for
    // an election timeout of its ticks from then: the lease runs from the sending.
    if (!this.leaseBarred) this.leaseFrom = Math.max(this.leaseFrom, this.roundSentAt);
    if (remaining.length > 0) this.startReadRound();
  }
}
