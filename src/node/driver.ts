/**
 * The node driver: feeds the core (ticks, peer messages, client proposals and reads) and
 * carries out its effects as the Ready contract says, written once at `Ready` in
 * core/types.ts. Here, step by step:
 *
 *   - process(): after every input, send what `takeMessages()` yields and apply what
 *     `takeApplicable()` yields, then hand out Readys while `hasReady()` allows;
 *   - startReady(): steps 1–3 (rollback report, messages, apply and serve reads), then
 *     step 4, the persist, queued to storage (a change of commit alone is held back to
 *     ride with the next write: `commitToPersist`);
 *   - finishDurableReadies(): step 5, for the oldest Readys whose write and every earlier
 *     one's is durable, in the order they were handed out; then the log may be compacted.
 *
 * Up to `persistsInFlightMax` Readys persist at once (the CLI's --persists-in-flight-max).
 *
 * Every decision here is synchronous: finished I/O comes back as a call (the persist
 * callback, `receive`, `tick`), never as code resuming after an await, so the simulator
 * drives this same driver from its own event queue. Time is `tick()`; deadlines are in
 * ticks. It owns no timer (node/ticker.ts does) and never touches the disk or network
 * except through the NodeStorage and PeerTransport interfaces.
 */

import { configProblem, isWeakQuorum } from '../core/config.js';
import type { PlantedBugs } from '../core/options.js';
import { RaftCore } from '../core/raft.js';
import { isReplica, type MembershipChange } from '../core/membership.js';
import type { ClusterConfig, ConfigChangeResult, Entry, HardState, NodeId, ReadFailure, ReadState, Ready, TransferResult } from '../core/types.js';
import { encodeCommand } from '../kv/codec.js';
import { createKvStateMachine, type KvStateMachine } from '../kv/state-machine.js';
import type { ReadAt } from '../kv/history.js';
import type { Command, CommandResult, CompactResult, KvCommand, KvResult, LeaseCommand, LeaseResult, TxnCommand, TxnResult } from '../kv/types.js';
import { authStateKey } from '../kv/types.js';
import { joinSplitResults, splitTxn } from './planted.js';
import { LeaseKeeper } from './leases.js';
import { logEntriesToKeep } from './log-retention.js';
import { freesSpace } from '../kv/commands.js';
import { assert } from '../stdx/assert.js';
import type { BackupSource, KvItem, KvRecord, SnapshotChunk } from '../storage/types.js';
import { QkvError } from '../wire/errors.js';
import type { AddMemberBody, LeaderInfo, MembersResponse, MembershipChangeResponse, NodeAddresses, StatusResponse } from '../wire/types.js';
import { addChange, bestTransferee, changeProblem, membersView, newMemberId, refusalError } from './membership.js';
import { MemberIds } from './member-ids.js';
import { WatchHub, type WatchRequest, type WatchSink } from './watch.js';
import { HistoryRetention } from './history-retention.js';
import { compactUntil } from './compact-on-demand.js';
import { clockFastPermilleMaxDefault, type DriverOptions } from './driver-options.js';
import type { Prng } from '../stdx/prng.js';
import type { NodeStorage } from '../storage/types.js';
import type { PeerTransport } from '../transport/types.js';
import { decodePeerMessage, type PeerMessage } from './messages.js';
import { SnapshotReceiver } from './snapshot-receiving.js';
import type { PeerForwarding } from './forwarding.js';
import { readFailureError } from './read-failure.js';
import { coreReadLease } from './read-lease.js';
import { sendSnapshotChunks } from './snapshot-sending.js';
import type { OutgoingSnapshot } from './snapshot-sending.js';
import { statusView } from './status.js';
import type { CompactOutcome, KvNode, LeaseGrant, LeaseInfo, LeaseRevoke, ListOptions, ListResult, ModeChange, ReadOptions, WriteOptions } from './types.js';

export type { DriverOptions } from './driver-options.js';

export interface DriverDeps {
  readonly storage: NodeStorage;
  readonly transport: PeerTransport<PeerMessage>;
  readonly prng: Prng;
  /** Elapsed ms, never slower than real time (node/elapsed-clock.ts; the simulator's clock), timing read leases; absent: no lease. */
  readonly clockMs?: () => number;
  /** Runs `fn` soon, after the current input is handled (setImmediate in production). */
  readonly schedule: (fn: () => void) => void;
  /** A broken invariant or failed flush: the node must stop (recovery takes over). */
  readonly onFatal: (error: Error) => void;
  /** Optional observer of every Ready, for the simulator's checkers and metrics. */
  readonly onReady?: (ready: Ready, driver: NodeDriver) => void;
  readonly onApplied?: (entries: readonly Entry[], results: ReadonlyMap<number, CommandResult>) => void;
  /**
   * Acknowledged writes this node had applied that the new leader's log lacks (weak write
   * quorums only). Called before the state is rebuilt; the production wiring appends each
   * to DATA_DIR/rollback.jsonl. Lost writes are never silent.
   */
  readonly onRollback?: (entries: readonly Entry[], appliedIndex: number) => void;
  /** A committed configuration no longer holds this node: removed, it must stop (nobody replicates to it or counts it). Called once. */
  readonly onRemoved?: (configIndex: number) => void;
  /** The configuration in force changed (appended, truncated or from a snapshot): who the peers are and where. */
  readonly onConfigChange?: (config: ClusterConfig, index: number) => void;
  /** A snapshot chunk from `from` was staged (for the operator's log: how big, how fast). */
  readonly onSnapshotChunkStaged?: (from: NodeId, chunk: SnapshotChunk) => void;
  /** A snapshot chunk from `from` was refused (malformed records, out of order, too large) and its snapshot dropped. */
  readonly onSnapshotRefused?: (from: NodeId, reason: string) => void;
  /** Client operations forwarded to the leader over this transport (forwarding.ts); absent: such messages are dropped. */
  readonly forwarding?: PeerForwarding;
}

type Callback<T> = (error: QkvError | null, value?: T) => void;

interface PendingWrite {
  readonly term: number;
  readonly deadlineTick: number;
  readonly callback: Callback<CommandResult>;
}

interface PendingRead {
  readonly deadlineTick: number;
  /** Whether this node led when the read was asked (the leader confirms itself; a follower asks it). */
  readonly askedAs: 'leader' | 'follower';
  /** Set once the read point is confirmed (by this leader or the one asked): serve when applied >= index. */
  index: number | null;
  readonly serve: () => void;
  readonly fail: (error: QkvError) => void;
}

interface Waiter {
  readonly deadlineTick: number;
  readonly ready: () => boolean;
  readonly done: (ok: boolean) => void;
}

export class NodeDriver implements KvNode {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly stateMachine: KvStateMachine;
  private readonly opts: DriverOptions;
  private readonly deps: DriverDeps;

  private nowTick = 0;
  /** Readys handed out by the core, oldest first, with whether their persist is done. */
  private readiesInFlight: { readonly rd: Ready; durable: boolean }[] = [];
  private processScheduled = false;
  private snapshotsScheduled = false;
  private stopped = false;
  /** The hard state last handed to storage (its term and vote are durable or on their way). */
  private hardStateQueued: HardState;
  /**
   * A newer hard state that differs from `hardStateQueued` only in its commit index, not
   * written yet: it rides with the next persist instead of costing a transaction and an
   * fsync of its own. Raft's commit index is volatile state; the stored one is a lower
   * bound that a restarted node raises from its applied index or learns from the leader
   * (etcd raft's MustSync makes the same choice).
   */
  private commitToPersist: HardState | null = null;

  private pendingWrites = new Map<number, PendingWrite>();
  private pendingReads = new Map<number, PendingRead>();
  /** Reads and session waits blocked on the applied index. */
  private waiters: Waiter[] = [];
  private leaderWaiters: Waiter[] = [];
  private removedNoticed = false;
  /** Why writes are refused for want of disk space (null: no alarm); set by the node's disk watch. */
  private spaceAlarm: string | null = null;
  private readonly memberIds: MemberIds;
  /** The configuration index the transport was last told of (onConfigChange). */
  private configIndexSeen = -1;
  private outgoingSnapshots = new Map<NodeId, OutgoingSnapshot>();
  private readonly snapshotReceiver: SnapshotReceiver;
  private rollbackCount: number;
  /** When each lease expires, while this node leads (leases.ts). */
  private readonly leases: LeaseKeeper;
  private readonly watches: WatchHub;
  private compactInFlight = false;
  private readonly retention: HistoryRetention;
  /** Linearizable reads served here since start, by the role that asked for the read point (metrics, simulator). */
  readonly linearizableReadsServed = { asLeader: 0, asFollower: 0 };

  constructor(options: DriverOptions, deps: DriverDeps) {
    this.id = options.id;
    this.opts = options;
    this.deps = deps;
    this.rollbackCount = options.rollbackCountAtStart ?? 0;
    this.memberIds = new MemberIds(options.bootstrapMemberId);
    assert(deps.storage.identity()?.nodeId === options.id, () => `storage belongs to ${deps.storage.identity()?.nodeId ?? 'nobody'}, not ${options.id}`);
    this.stateMachine = createKvStateMachine(deps.storage.kv, { dedupClientsMax: options.dedupClientsMax });
    this.hardStateQueued = deps.storage.hardState();
    this.snapshotReceiver = new SnapshotReceiver({ stage: (chunk) => deps.storage.stageSnapshotChunk(chunk), onChunkStaged: deps.onSnapshotChunkStaged, onRefused: deps.onSnapshotRefused });
    this.core = new RaftCore({
      id: options.id,
      log: deps.storage.log,
      hardState: this.hardStateQueued,
      appliedIndex: this.stateMachine.appliedIndex(),
      prng: deps.prng,
      electionTimeoutTicks: options.electionTimeoutTicks,
      heartbeatIntervalTicks: options.heartbeatIntervalTicks,
      preVote: options.preVote,
      checkQuorum: options.checkQuorum,
      inflightMessagesMax: options.inflightMessagesMax,
      appendBytesMax: options.appendBytesMax,
      appendEntriesMax: options.appendEntriesMax,
      uncommittedEntriesMax: options.uncommittedEntriesMax,
      readsPendingMax: options.readsPendingMax,
      readIndexTimeoutTicks: options.readIndexTimeoutTicks ?? options.electionTimeoutTicks * 2,
      applyEntriesMax: options.applyEntriesMax,
      applyBytesMax: options.appendBytesMax,
      snapshotTimeoutTicks: options.snapshotTimeoutTicks,
      pinnedLeader: options.pinnedLeader,
      memberTimeoutTicks: options.memberTimeoutTicks ?? options.electionTimeoutTicks * 3,
      persistsInFlightMax: options.persistsInFlightMax ?? 1,
      promoteLagEntriesMax: options.promoteLagEntriesMax ?? options.appendEntriesMax,
      ...coreReadLease(options, deps.clockMs),
    });
    this.leases = new LeaseKeeper({ tickMs: options.tickMs, clockFastPermilleMax: options.clockFastPermilleMax ?? clockFastPermilleMaxDefault, revokeRetryTicks: options.electionTimeoutTicks * 2 });
    this.watches = new WatchHub(this.stateMachine, options.watch);
    this.retention = new HistoryRetention(options.watch);
    deps.forwarding?.attach(deps.transport);
    deps.transport.onMessage((from, raw, fromMemberId) => this.receive(from, raw, fromMemberId));
    this.scheduleProcess();
  }

  /** Test-only: plant a classic bug in the core (simulator checkers must catch it). */
  plant(bugs: PlantedBugs): void {
    this.core.planted = bugs;
    this.leases.followerClock = bugs.leaseDeadlinesOnFollowerClock === true;
    this.watches.skipFromVersion = bugs.watchSkipsFromVersion === true;
    this.stateMachine.planted.valueFromCurrent = bugs.historyValueFromCurrent === true;
    this.stateMachine.planted.valueRowFreedOnChange = bugs.valueRowFreedOnChange === true;
    this.stateMachine.planted.valueRowKeptAtCompaction = bugs.valueRowKeptAtCompaction === true;
  }

  // -----------------------------------------------------------------------------------
  // Inputs

  tick(): void {
    if (this.stopped) return;
    this.nowTick++;
    this.core.tick();
    // A hand-over abandoned after an election timeout changes no soft state: look each tick.
    this.releaseWaiters(this.leaderWaiters);
    this.noticeRemoval();
    this.expireDeadlines();
    this.continueSnapshots();
    this.expireLeases();
    this.compactHistory();
    this.watches.tick();
    this.deps.forwarding?.tick(this.core.currentLeader());
    this.process();
  }

  receive(from: NodeId, raw: unknown, fromMemberId: string | null = null): void {
    if (this.stopped) return;
    const m = decodePeerMessage(raw, from);
    if (typeof m === 'string') return; // malformed or misaddressed: dropped (Raft tolerates loss)
    if (m.to !== this.id) return;
    if (fromMemberId !== null && this.memberIds.fromAnother(this.core.currentConfig(), m.type, from, fromMemberId)) return;
    if (m.type === 'forwardBatch' || m.type === 'forwardReply') return this.deps.forwarding?.receive(from, m);
    if (m.type === 'snapshotChunk') {
      const whole = this.snapshotReceiver.receive(m, this.core.currentTerm(), this.nowTick, this.opts.snapshotTimeoutTicks);
      if (whole !== null) this.core.step(whole);
    } else this.core.step(m);
    this.scheduleProcess();
  }

  /** Stops taking inputs; pending requests fail with shutting_down. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const err = new QkvError('shutting_down', 'the node is stopping', {}, 1000);
    for (const w of this.pendingWrites.values()) w.callback(new QkvError('outcome_unknown', 'the node stopped before the write was applied', {}, 1000));
    for (const r of this.pendingReads.values()) r.fail(err);
    for (const w of [...this.waiters, ...this.leaderWaiters]) w.done(false);
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.waiters = [];
    this.leaderWaiters = [];
    for (const s of this.outgoingSnapshots.values()) s.source.close();
    this.outgoingSnapshots.clear();
    this.watches.stop();
    this.deps.forwarding?.stop();
  }

  // -----------------------------------------------------------------------------------
  // Client operations, callback style (the simulator uses these directly)

  submitWrite(command: Command, timeoutMs: number, callback: Callback<CommandResult>): void {
    this.proposeWrite(command, this.deadline(timeoutMs), callback);
  }

  private proposeWrite(command: Command, deadlineTick: number, callback: Callback<CommandResult>): void {
    if (this.stopped) return callback(new QkvError('shutting_down', 'the node is stopping', {}, 1000));
    // A full disk is an alarm, not an outage: what frees space (deletes) still goes through.
    if (this.spaceAlarm !== null && !freesSpace(command) && this.core.currentRole() === 'leader') {
      return callback(new QkvError('no_space', `writes are refused: ${this.spaceAlarm}; reads and deletes still work`, { alarm: this.spaceAlarm }));
    }
    if (this.pendingWrites.size >= this.opts.pendingWritesMax) {
      return callback(new QkvError('busy', `${this.pendingWrites.size} writes already pending`, {}, 100));
    }
    const split = this.core.planted.txnSplitAcrossEntries === true && command.op === 'txn' ? splitTxn(command) : null;
    const commands: readonly Command[] = split ?? [command];
    const r = this.core.propose(commands.map((c) => ({ kind: 'normal', data: encodeCommand(c) })));
    if (!r.ok) {
      if (r.reason === 'notLeader' && this.core.handingOverTo() !== null) return this.holdDuringHandOver(command, deadlineTick, callback);
      if (r.reason === 'notLeader') return callback(this.notLeaderError());
      return callback(new QkvError('busy', `${r.uncommittedEntries} entries not yet committed`, {}, 100));
    }
    const ackDeadlineTick = Math.min(deadlineTick, this.nowTick + (this.opts.replicationTimeoutTicks ?? Number.MAX_SAFE_INTEGER));
    if (split !== null) {
      let first: CommandResult | undefined;
      this.pendingWrites.set(r.index - 1, { term: r.term, deadlineTick: ackDeadlineTick, callback: (_err, result) => void (first = result) });
      this.pendingWrites.set(r.index, { term: r.term, deadlineTick: ackDeadlineTick, callback: (err, second) => callback(err, err === null ? joinSplitResults(first, second) : undefined) });
      return this.scheduleProcess();
    }
    this.pendingWrites.set(r.index, { term: r.term, deadlineTick: ackDeadlineTick, callback });
    this.scheduleProcess();
  }

  /**
   * A write that reaches a leader handing over waits for the hand-over to end (a round trip
   * once the transferee has caught up; an election timeout at most): then it is proposed
   * here if leadership stayed, or refused naming the new leader, whom the client tries at
   * once. Refused at once instead, it sent the client back and forth to a leader that could
   * take nothing, its backoff doubling until the hand-over ended: up to 800 ms without a
   * write in a rolling restart. Never proposed meanwhile, so any refusal is a clean one.
   */
  private holdDuringHandOver(command: Command, deadlineTick: number, callback: Callback<CommandResult>): void {
    if (this.leaderWaiters.length >= this.opts.pendingWritesMax) return callback(this.notLeaderError());
    this.leaderWaiters.push({
      deadlineTick,
      ready: () => this.core.handingOverTo() === null,
      done: (ok) => (ok ? this.proposeWrite(command, deadlineTick, callback) : callback(this.notLeaderError())),
    });
  }

  /** Proposes a new mode (write quorum, topology, in-sync set); resolves once applied. */
  submitConfig(config: ClusterConfig, timeoutMs: number, callback: Callback<number>): void {
    if (this.stopped) return callback(new QkvError('shutting_down', 'the node is stopping', {}, 1000));
    const r = this.core.proposeConfig(config);
    if (!r.ok) {
      if (r.reason === 'notLeader') return callback(this.notLeaderError());
      return callback(new QkvError('busy', 'another configuration change is still being committed', {}, 200));
    }
    this.pendingWrites.set(r.index, { term: r.term, deadlineTick: this.deadline(timeoutMs), callback: (err) => callback(err, r.index) });
    this.scheduleProcess();
  }

  submitRead<T>(options: ReadOptions, read: () => T, callback: Callback<T>): void {
    if (this.stopped) return callback(new QkvError('shutting_down', 'the node is stopping', {}, 1000));
    const serveLocal = (): void => {
      try {
        callback(null, read());
      } catch (e) {
        this.deps.onFatal(e as Error);
      }
    };
    if (options.minVersion !== undefined && options.minVersion > this.stateMachine.appliedIndex()) {
      // Session read: wait (bounded in time and in number) until this node has applied the version asked for.
      if (this.waiters.length >= this.opts.readsPendingMax) {
        return callback(new QkvError('busy', `${this.waiters.length} reads already wait for a version on ${this.id}`, {}, 100));
      }
      const minVersion = options.minVersion;
      this.waiters.push({
        deadlineTick: this.deadline(options.timeoutMs),
        ready: () => this.stateMachine.appliedIndex() >= minVersion,
        done: (ok) => (ok ? this.submitRead({ ...options, minVersion: 0 }, read, callback) : callback(new QkvError('timeout', `version ${minVersion} not applied here within ${options.timeoutMs} ms`, { minVersion }, 100))),
      });
      return;
    }
    if (options.consistency === 'local') return serveLocal();
    if (options.consistency === 'leader') {
      if (this.core.currentRole() !== 'leader') return callback(this.notLeaderError());
      return serveLocal();
    }
    // Linearizable: the leader confirms its own leadership (read-index round); a follower
    // that knows the leader asks it for the read point, then serves from its own state once
    // it has applied that point. A node that knows no leader refuses (not_leader, retry).
    if (this.pendingReads.size >= this.opts.readsPendingMax) {
      return callback(new QkvError('busy', `${this.pendingReads.size} linearizable reads already pending on ${this.id}`, {}, 100));
    }
    const askedAs = this.core.currentRole() === 'leader' ? 'leader' : 'follower';
    const r = this.core.readIndex();
    if (!r.ok) {
      if (r.reason === 'notLeader') return callback(this.notLeaderError());
      return callback(new QkvError('busy', `${r.pendingReads} reads pending for a read point`, {}, 100));
    }
    // Confirmed at once by the leader's lease: served now when applied up to its point.
    if (r.index !== null && r.index <= this.stateMachine.appliedIndex()) {
      this.linearizableReadsServed.asLeader++;
      return serveLocal();
    }
    this.pendingReads.set(r.requestId, {
      deadlineTick: this.deadline(options.timeoutMs),
      askedAs,
      index: r.index,
      serve: serveLocal,
      fail: (e) => callback(e),
    });
    this.scheduleProcess();
  }

  // -----------------------------------------------------------------------------------
  // KvNode (promise style, for api/)

  leader(): LeaderInfo | null {
    const id = this.core.currentLeader();
    if (id === null) return null;
    if (id === this.id) return { id, http: this.opts.selfHttp, grpc: this.opts.selfGrpc };
    return { id, ...this.peerAddresses(id) };
  }

  /** A peer's client addresses, as its handshake announced them (null until it connected). */
  private peerAddresses(id: NodeId): NodeAddresses {
    const meta = this.deps.transport.peerMeta(id);
    return { http: meta?.['http'] ?? null, grpc: meta?.['grpc'] ?? null };
  }

  write(command: KvCommand, options: { readonly timeoutMs: number }): Promise<KvResult> {
    // A single-key command gets a single-key result (the state machine answers in kind).
    return new Promise((resolve, reject) => this.submitWrite(command, options.timeoutMs, (err, v) => (err ? reject(err) : resolve(v as KvResult))));
  }

  txn(command: TxnCommand, options: { readonly timeoutMs: number }): Promise<TxnResult> {
    return new Promise((resolve, reject) => this.submitWrite(command, options.timeoutMs, (err, v) => (err ? reject(err) : resolve(v as TxnResult))));
  }

  leaseGrant(ttlMs: number, options: WriteOptions): Promise<LeaseGrant> {
    return this.leaseWrite({ op: 'lease-grant', ttlMs }, options);
  }

  leaseRevoke(id: number, options: WriteOptions): Promise<LeaseRevoke> {
    return this.leaseWrite({ op: 'lease-revoke', id, reason: 'revoked' }, options);
  }

  private leaseWrite<T>(command: LeaseCommand, options: WriteOptions): Promise<T> {
    const withId = options.requestId === undefined ? command : { ...command, requestId: options.requestId };
    return new Promise((resolve, reject) =>
      this.submitWrite(withId, options.timeoutMs, (err, r) => {
        if (err !== null) return reject(err);
        if (r === undefined || !r.ok) return reject(new QkvError('stale_request', 'Stale request: this client already sent a newer one; this reply is gone', {}));
        const { ok: _ok, op: _op, ...answer } = r as LeaseResult;
        resolve(answer as T);
      }),
    );
  }

  leaseKeepAlive(id: number, options: WriteOptions): Promise<{ readonly id: number; readonly ttlMs: number }> {
    return new Promise((resolve, reject) => this.submitKeepAlive(id, options.timeoutMs, (err, v) => (err ? reject(err) : resolve(v as { id: number; ttlMs: number }))));
  }

  leaseInfo(id: number, keysMax: number, options: WriteOptions): Promise<LeaseInfo | undefined> {
    if (this.core.currentRole() !== 'leader') return Promise.reject(this.notLeaderError());
    const read = (): LeaseInfo | undefined => {
      const lease = this.stateMachine.lease(id);
      if (lease === undefined) return undefined;
      return { ...lease, remainingMs: this.syncLeases().remainingMs(id, this.nowTick) ?? lease.ttlMs, keys: this.stateMachine.leaseKeys(id, keysMax) };
    };
    return new Promise((resolve, reject) => this.submitRead({ consistency: 'linearizable', timeoutMs: options.timeoutMs }, read, (err, v) => (err ? reject(err) : resolve(v))));
  }

  read(key: string, options: ReadOptions): Promise<KvRecord | undefined> {
    const at = options.atVersion;
    return this.readAt(options, () => (at === undefined ? { ok: true, value: this.stateMachine.get(key) } : this.stateMachine.getAt(key, at)));
  }

  list(options: ListOptions): Promise<ListResult> {
    const { prefix, after, limit, atVersion: at, reverse = false } = options;
    return this.readAt(options, (): ReadAt<ListResult> => {
      if (at === undefined) return { ok: true, value: { items: this.stateMachine.range(prefix, after, limit, reverse), version: this.stateMachine.appliedIndex() } };
      const r = this.stateMachine.rangeAt(prefix, after, limit, at, reverse);
      return r.ok ? { ok: true, value: { items: r.value, version: at } } : r;
    });
  }

  /** A read, at a past version when asked (the node must have applied it: it waits as for minVersion). */
  private readAt<T>(options: ReadOptions, read: () => ReadAt<T>): Promise<T> {
    const minVersion = Math.max(options.minVersion ?? 0, options.atVersion ?? 0);
    return new Promise((resolve, reject) =>
      this.submitRead(minVersion > 0 ? { ...options, minVersion } : options, read, (err, r) => {
        if (err !== null || r === undefined) return reject(err);
        if (r.ok) return resolve(r.value);
        reject(new QkvError('compacted', `Version ${options.atVersion ?? 0} is older than the history kept (${r.compactedBelow - 1} is the oldest readable)`, { oldestVersion: r.compactedBelow - 1 }));
      }),
    );
  }

  changeMode(change: ModeChange, options: { readonly timeoutMs: number }): Promise<{ readonly index: number }> {
    const { inSync: _inSync, ...current } = this.core.currentConfig();
    const next: ClusterConfig = {
      ...current,
      writeQuorum: change.writeQuorum ?? current.writeQuorum,
      topology: change.topology ?? current.topology,
    };
    const problem = configProblem(next);
    if (problem !== null) return Promise.reject(new QkvError('bad_request', `invalid mode: ${problem}`));
    return new Promise((resolve, reject) =>
      this.submitConfig(next, options.timeoutMs, (err, index) => (err ? reject(err) : resolve({ index: index as number }))),
    );
  }

  // -----------------------------------------------------------------------------------
  // Membership and leadership transfer

  /** Proposes a membership change now (the simulator calls this; the API goes through the methods below). */
  proposeMembership(change: MembershipChange): ConfigChangeResult {
    if (this.stopped) return { ok: false, reason: 'notLeader', leader: null };
    const r = this.core.proposeMembership(change);
    if (r.ok) this.scheduleProcess();
    return r;
  }

  /** Starts handing leadership to `to` (the simulator calls this; the API uses transferLeader). */
  transferLeadership(to: NodeId): TransferResult {
    if (this.stopped) return { ok: false, reason: 'notLeader', leader: null };
    const r = this.core.transferLeadership(to);
    if (r.ok) this.scheduleProcess();
    return r;
  }

  /** The node's disk watch raises (a reason) or clears (null) the space alarm. */
  setSpaceAlarm(reason: string | null): void {
    this.spaceAlarm = reason;
  }

  members(): MembersResponse {
    return membersView(this.core.status(), (id) => this.peerAddresses(id), { http: this.opts.selfHttp, grpc: this.opts.selfGrpc });
  }

  addMember(body: AddMemberBody, options: { readonly timeoutMs: number }): Promise<MembershipChangeResponse> {
    try {
      return this.changeMembership(addChange(body, body.memberId ?? newMemberId(this.deps.prng)), options.timeoutMs);
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  promoteMember(id: string, options: { readonly timeoutMs: number }): Promise<MembershipChangeResponse> {
    return this.changeMembership({ kind: 'promote', id }, options.timeoutMs);
  }

  removeMember(id: string, options: { readonly timeoutMs: number }): Promise<MembershipChangeResponse> {
    return this.changeMembership({ kind: 'remove', id }, options.timeoutMs);
  }

  private changeMembership(change: MembershipChange, timeoutMs: number): Promise<MembershipChangeResponse> {
    if (this.stopped) return Promise.reject(new QkvError('shutting_down', 'the node is stopping', {}, 1000));
    if (this.core.currentRole() !== 'leader') return Promise.reject(this.notLeaderError());
    const problem = changeProblem(this.core.currentConfig(), change, this.opts.pinnedLeader);
    if (problem !== null) return Promise.reject(problem);
    const r = this.proposeMembership(change);
    if (!r.ok) return Promise.reject(refusalError(r, () => this.notLeaderError()));
    return new Promise((resolve, reject) => {
      this.pendingWrites.set(r.index, {
        term: r.term,
        deadlineTick: this.deadline(timeoutMs),
        callback: (err) => (err ? reject(err) : resolve({ ...this.members(), configIndex: r.index, clusterId: this.opts.clusterId, config: r.config })),
      });
    });
  }

  transferLeader(to: string | null, options: { readonly timeoutMs: number }): Promise<{ readonly leader: string }> {
    if (this.stopped) return Promise.reject(new QkvError('shutting_down', 'the node is stopping', {}, 1000));
    if (this.core.currentRole() !== 'leader') return Promise.reject(this.notLeaderError());
    if (this.opts.pinnedLeader !== null) return Promise.reject(new QkvError('pinned_leader', `the leader is pinned to ${this.opts.pinnedLeader} (--leader): it does not hand over`));
    const target = to ?? bestTransferee(this.core.status());
    if (target === null) return Promise.reject(new QkvError('bad_request', 'there is no other voter to hand over to'));
    if (target === this.id) return Promise.resolve({ leader: this.id });
    const r = this.transferLeadership(target);
    if (!r.ok) return Promise.reject(r.reason === 'notLeader' ? this.notLeaderError() : new QkvError('bad_request', r.message));
    return new Promise((resolve, reject) => {
      this.leaderWaiters.push({
        deadlineTick: this.deadline(options.timeoutMs),
        ready: () => this.core.currentLeader() !== null && this.core.currentLeader() !== this.id,
        done: (ok) =>
          ok ? resolve({ leader: this.core.currentLeader() ?? target }) : reject(new QkvError('timeout', `${target} did not take over within ${options.timeoutMs} ms; ${this.id} still leads`, {}, 500)),
      });
    });
  }

  /**
   * This node was removed from the cluster and stops for good. Under a weak write quorum
   * the entries it holds beyond what it knows committed may have been acknowledged by it
   * and may be in no other log: they go to the rollback report (some may have survived;
   * a report errs on the side of listing). Then it stops.
   */
  leaveCluster(): void {
    if (this.stopped) return;
    const log = this.core.log;
    if (isWeakQuorum(this.core.currentConfig()) && log.lastIndex() > log.committed) {
      const entries = log.slice(Math.max(log.committed + 1, log.firstIndex()), log.lastIndex() + 1, Number.MAX_SAFE_INTEGER) ?? [];
      if (entries.length > 0) {
        this.rollbackCount += entries.length;
        this.deps.onRollback?.(entries, this.stateMachine.appliedIndex());
      }
    }
    this.stop();
  }

  /** Once a committed configuration leaves this node out (or holds another member under its name), it says so once (onRemoved). */
  private noticeRemoval(): void {
    if (this.removedNoticed) return;
    const config = this.core.currentConfig();
    if (isReplica(config, this.id) && this.memberIds.of(config, this.id) === this.opts.memberId) return;
    const index = this.core.currentConfigIndex();
    if (index > this.core.log.committed) return;
    this.removedNoticed = true;
    this.deps.onRemoved?.(index);
  }

  waitForLeader(timeoutMs: number): Promise<LeaderInfo | null> {
    const now = this.leader();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.leaderWaiters.push({
        deadlineTick: this.deadline(timeoutMs),
        ready: () => this.core.currentLeader() !== null,
        done: () => resolve(this.leader()),
      });
    });
  }

  /** Watchers this node serves now (for the metrics). */
  watcherCount(): number {
    return this.watches.size;
  }

  authRecord(): KvRecord | undefined {
    return this.stateMachine.get(authStateKey);
  }

  dumpStore(after: string | undefined, limit: number): KvItem[] {
    return this.stateMachine.range('', after, limit);
  }

  openBackup(): BackupSource {
    return this.deps.storage.openSnapshot(this.configAtApplied());
  }

  status(): StatusResponse {
    return statusView(this.core.status(), {
      id: this.id,
      clusterId: this.opts.clusterId,
      pid: this.opts.pid,
      leader: this.leader(),
      appliedIndex: this.stateMachine.appliedIndex(),
      keyCount: this.stateMachine.keyCount(),
      addresses: (id) => this.peerAddresses(id),
      connected: (id) => this.deps.transport.peerState(id).connected,
      self: { http: this.opts.selfHttp, grpc: this.opts.selfGrpc },
      rollbackCount: this.rollbackCount,
      spaceAlarm: this.spaceAlarm,
      uptimeMs: this.nowTick * this.opts.tickMs,
    });
  }

  // -----------------------------------------------------------------------------------
  // The Ready loop

  private scheduleProcess(): void {
    if (this.processScheduled || this.stopped) return;
    this.processScheduled = true;
    this.deps.schedule(() => {
      this.processScheduled = false;
      this.process();
    });
  }

  private process(): void {
    if (this.stopped) return;
    try {
      this.sendAll(this.core.takeMessages());
      // Durable, acknowledged entries and confirmed reads never wait for a Ready in flight.
      while (this.core.hasApplicable()) {
        const { committed, readStates, readsFailed } = this.core.takeApplicable();
        this.applyAndServe(committed, readStates, readsFailed);
      }
    } catch (e) {
      return this.fatal(e as Error);
    }
    while (!this.stopped && this.core.hasReady()) this.startReady(this.core.ready());
  }

  /** Steps 1–4 of the Ready contract (core/types.ts); step 5 waits for this write and every earlier one. */
  private startReady(rd: Ready): void {
    const slot = { rd, durable: false };
    this.readiesInFlight.push(slot);
    this.deps.onReady?.(rd, this);
    if (rd.rolledBack.length > 0) {
      // Recorded before anything else happens: a lost write must never be silent.
      this.rollbackCount += rd.rolledBack.length;
      this.deps.onRollback?.(rd.rolledBack, this.stateMachine.appliedIndex());
      this.watches.rolledBack(rd.rolledBack[0]?.index ?? 1);
    }
    this.sendAll(rd.messages);
    try {
      this.applyAndServe(rd.committed, rd.readStates, rd.readsFailed);
    } catch (e) {
      return this.fatal(e as Error);
    }
    if (this.core.planted.ackBeforeFlush === true) this.sendAll(rd.messagesAfterPersist);
    let hardState = rd.hardState;
    if (hardState !== null && rd.snapshot === null && rd.entries.length === 0 && hardState.term === this.hardStateQueued.term && hardState.vote === this.hardStateQueued.vote) {
      this.commitToPersist = hardState;
      hardState = null;
    }
    if (rd.snapshot !== null || rd.entries.length > 0 || hardState !== null) {
      hardState ??= this.commitToPersist; // a Ready's own hard state is the newest
      this.commitToPersist = null;
      if (hardState !== null) this.hardStateQueued = hardState;
      // Storage makes batches durable in the order they were queued; the callbacks may
      // still be seen in any order (a batch without writes completes at once), hence the queue.
      this.deps.storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState }, (error) => {
        if (error !== null) return this.fatal(error);
        if (rd.snapshot !== null) this.snapshotReceiver.installed();
        slot.durable = true;
        if (this.finishDurableReadies()) this.process();
      });
    } else {
      // Nothing to write, but its acks still promise what earlier batches persist:
      // it finishes only behind them. (process() is already looping over Readys.)
      slot.durable = true;
      this.finishDurableReadies();
    }
  }

  /**
   * Step 5 of the Ready contract for the oldest Readys whose write (and every earlier
   * one's) is durable. Returns whether any finished.
   */
  private finishDurableReadies(): boolean {
    let finished = false;
    while (!this.stopped) {
      const head = this.readiesInFlight[0];
      if (head === undefined || !head.durable) break;
      this.readiesInFlight.shift();
      const rd = head.rd;
      try {
        if (this.core.planted.ackBeforeFlush !== true) this.sendAll(rd.messagesAfterPersist);
        if (rd.softState !== null && rd.softState.leader !== null) this.releaseWaiters(this.leaderWaiters);
        for (const to of rd.snapshotsToSend) this.startSnapshot(to);
        this.core.advance(rd);
      } catch (e) {
        this.fatal(e as Error);
        return false;
      }
      finished = true;
    }
    if (finished) this.maybeCompact();
    return finished;
  }

  private applyAndServe(committed: readonly Entry[], readStates: readonly ReadState[], readsFailed: readonly ReadFailure[]): void {
    this.applyCommitted(committed);
    for (const rs of readStates) {
      const pending = this.pendingReads.get(rs.requestId);
      if (pending === undefined) continue;
      pending.index = this.core.planted.followerReadBeforeApply === true && pending.askedAs === 'follower' ? 0 : rs.index;
    }
    for (const f of readsFailed) {
      const pending = this.pendingReads.get(f.requestId);
      if (pending === undefined) continue;
      this.pendingReads.delete(f.requestId);
      pending.fail(readFailureError(f, this.id, this.leader(), () => this.notLeaderError()));
    }
    if (committed.length > 0 || readStates.length > 0) {
      this.serveReads();
      this.releaseWaiters(this.waiters);
    }
  }

  private applyCommitted(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const results = this.stateMachine.apply(entries);
    this.noteLeases(results);
    this.deps.onApplied?.(entries, results);
    this.watches.applied();
    for (const e of entries) {
      const pending = this.pendingWrites.get(e.index);
      if (pending === undefined) continue;
      this.pendingWrites.delete(e.index);
      if (e.term !== pending.term) {
        // Another leader's entry took this index: ours was never committed.
        pending.callback(new QkvError('not_leader', 'leadership changed before the write committed; it was not applied', { leader: this.leader() }, 100));
        continue;
      }
      const result = results.get(e.index);
      if (e.kind === 'normal') {
        assert(result !== undefined, () => `no result for applied entry ${e.index}`);
        pending.callback(null, result);
      } else {
        pending.callback(null);
      }
    }
  }

  // -----------------------------------------------------------------------------------
  // Leases: the table is the state machine's; expiry is this node's while it leads.

  /** The lease keeper, told first whether this node took or left office since it last looked. */
  private syncLeases(): LeaseKeeper {
    const leading = this.core.currentRole() === 'leader';
    if (leading && !this.leases.isLeading) this.leases.becameLeader(this.nowTick, this.stateMachine.leases());
    else if (!leading && this.leases.isLeading) this.leases.steppedDown();
    return this.leases;
  }

  private noteLeases(results: ReadonlyMap<number, CommandResult>): void {
    const keeper = this.syncLeases();
    for (const r of results.values()) {
      if (!r.ok) continue;
      if (r.op === 'lease-revoke') keeper.ended(r.id);
      const granted = r.op === 'lease-grant' ? r.id : r.op === 'put' && r.lease === r.version ? r.lease : null;
      // A retried grant answers from the dedup table: track only a lease that still exists.
      const lease = granted === null ? undefined : this.stateMachine.lease(granted);
      if (lease !== undefined) keeper.granted(lease.id, lease.ttlMs, this.nowTick);
    }
  }

  /** The leader keeps the history to its retention (history-retention.ts), one compact entry in flight at most. */
  private compactHistory(): void {
    this.retention.noteApplied(this.stateMachine.appliedIndex(), this.nowTick);
    const below = this.compactInFlight || this.core.currentRole() !== 'leader' ? null : this.retention.compactBelow(this.stateMachine, this.nowTick);
    if (below === null) return;
    this.compactInFlight = true;
    this.submitWrite({ op: 'compact', beforeVersion: below }, this.opts.tickMs * this.opts.electionTimeoutTicks * 2, () => (this.compactInFlight = false));
  }

  watch(request: WatchRequest, sink: WatchSink, options: ReadOptions): Promise<number> {
    return new Promise((resolve, reject) => this.submitWatch(request, sink, options, (err, id) => (err ? reject(err) : resolve(id as number))));
  }

  /** `watch`, callback style (the simulator's clients use this). */
  submitWatch(request: WatchRequest, sink: WatchSink, options: ReadOptions, callback: Callback<number>): void {
    const open = (): void => {
      const id = this.stopped ? null : this.watches.open(request, sink);
      if (id === null) return callback(new QkvError('busy', `this node serves ${this.watches.size} watches already`, {}, 1000));
      callback(null, id);
    };
    if (options.consistency !== 'linearizable') return open();
    this.submitRead(options, () => undefined, (err) => (err !== null ? callback(err) : open()));
  }

  compact(beforeVersion: number | null, options: { readonly timeoutMs: number }): Promise<CompactOutcome> {
    const target = Math.min(beforeVersion ?? this.stateMachine.appliedIndex(), this.stateMachine.appliedIndex() + 1);
    return compactUntil(target, options.timeoutMs, (below, timeoutMs) =>
      new Promise((resolve, reject) => this.submitWrite({ op: 'compact', beforeVersion: below }, timeoutMs, (err, r) => (err ? reject(err) : resolve(r as CompactResult)))),
    );
  }

  unwatch(id: number): void {
    this.watches.close(id);
  }

  /** Proposes the revoke of every lease past its deadline (a few per tick; retried if lost). */
  private expireLeases(): void {
    const timeoutMs = this.opts.tickMs * this.opts.electionTimeoutTicks * 2;
    for (const id of this.syncLeases().due(this.nowTick, 16)) this.submitWrite({ op: 'lease-revoke', id, reason: 'expired' }, timeoutMs, () => undefined);
  }

  /**
   * Restarts lease `id`'s TTL, once a read-index round has confirmed this node still leads
   * (see leases.ts for why that matters). lease_not_found when no such lease exists.
   */
  submitKeepAlive(id: number, timeoutMs: number, callback: Callback<{ readonly id: number; readonly ttlMs: number }>): void {
    if (this.core.currentRole() !== 'leader') return callback(this.notLeaderError());
    this.submitRead({ consistency: 'linearizable', timeoutMs }, () => this.syncLeases().keptAlive(id, this.nowTick), (err, ttlMs) => {
      if (err !== null) return callback(err);
      if (ttlMs === null || ttlMs === undefined) return callback(new QkvError('lease_not_found', `Lease ${id} does not exist (never granted, revoked or expired)`, { lease: id }));
      callback(null, { id, ttlMs });
    });
  }

  private serveReads(): void {
    const applied = this.stateMachine.appliedIndex();
    for (const [id, r] of this.pendingReads) {
      if (r.index !== null && r.index <= applied) {
        this.pendingReads.delete(id);
        if (r.askedAs === 'leader') this.linearizableReadsServed.asLeader++;
        else this.linearizableReadsServed.asFollower++;
        r.serve();
      }
    }
  }

  private releaseWaiters(list: Waiter[]): void {
    if (list.length === 0) return;
    const keep: Waiter[] = [];
    const done: Waiter[] = [];
    for (const w of list) (w.ready() ? done : keep).push(w);
    list.length = 0;
    list.push(...keep);
    for (const w of done) w.done(true);
  }

  private expireDeadlines(): void {
    const now = this.nowTick;
    let report: ReturnType<RaftCore['status']> | null = null;
    for (const [index, w] of this.pendingWrites) {
      if (w.deadlineTick > now) continue;
      this.pendingWrites.delete(index);
      const status = (report ??= this.core.status());
      if (status.role === 'leader' && status.term === w.term) {
        const acks = status.progress.filter((p) => p.match >= index).length;
        w.callback(new QkvError('quorum_timeout', `write at index ${index} not acknowledged by its quorum in time; it may still commit`, { acks, required: status.config.writeQuorum, index }, 100));
      } else {
        w.callback(new QkvError('outcome_unknown', `leadership changed while the write at index ${index} was in flight; it may still commit`, { index }, 100));
      }
    }
    for (const [id, r] of this.pendingReads) {
      if (r.deadlineTick > now) continue;
      this.pendingReads.delete(id);
      const why =
        r.index !== null
          ? `${this.id} had applied up to ${this.stateMachine.appliedIndex()}, short of the read point ${r.index}, when the deadline passed`
          : r.askedAs === 'leader'
            ? 'leadership could not be confirmed in time'
            : `the leader did not give ${this.id} a read point in time`;
      r.fail(new QkvError('timeout', why, {}, 100));
    }
    for (const list of [this.waiters, this.leaderWaiters]) {
      const expired = list.filter((w) => w.deadlineTick <= now);
      if (expired.length === 0) continue;
      const keep = list.filter((w) => w.deadlineTick > now);
      list.length = 0;
      list.push(...keep);
      for (const w of expired) w.done(false);
    }
  }

  // -----------------------------------------------------------------------------------
  // Snapshots: streamed in chunks beside the core, staged, then stepped in as one message

  private startSnapshot(to: NodeId): void {
    if (this.outgoingSnapshots.has(to)) return;
    const source = this.deps.storage.openSnapshot(this.configAtApplied());
    this.outgoingSnapshots.set(to, { source, term: this.core.currentTerm(), commit: this.core.log.committed, seq: 0 });
    this.continueSnapshots();
  }

  /** Sends the chunks each link takes now (snapshot-sending.ts); goes on next turn, or next tick when a link is full. */
  private continueSnapshots(): void {
    let more = false;
    for (const [to, out] of this.outgoingSnapshots) {
      const leading = this.core.currentRole() === 'leader' && this.core.currentTerm() === out.term;
      const outcome = leading ? sendSnapshotChunks(this.id, to, out, this.deps.transport, this.opts.snapshotChunkBytes) : null;
      if (outcome === 'more') more = true;
      if (outcome === 'more' || outcome === 'wait') continue;
      if (outcome === 'dropped') this.core.reportSnapshotFailed(to);
      out.source.close();
      this.outgoingSnapshots.delete(to);
    }
    if (more && !this.snapshotsScheduled) {
      this.snapshotsScheduled = true;
      this.deps.schedule(() => {
        this.snapshotsScheduled = false;
        if (!this.stopped) this.continueSnapshots();
      });
    }
  }

  private maybeCompact(): void {
    const log = this.core.log;
    const s = { lastIndex: log.lastIndex(), firstIndex: log.firstIndex(), appliedIndex: log.applied, commitIndex: log.committed };
    const keep = logEntriesToKeep(s.lastIndex - s.firstIndex + 1, this.deps.storage.logBytes(), this.opts.logEntriesMax, this.opts.logBytesMax ?? Infinity);
    if (keep === null) return;
    // Never past the commit index: a snapshot (the compacted prefix) holds committed entries only.
    const upTo = Math.min(this.deps.storage.kv.durableAppliedIndex(), s.lastIndex - keep, s.appliedIndex, s.commitIndex);
    if (upTo < s.firstIndex) return;
    this.deps.storage.compact(upTo, this.core.configAt(upTo).config);
  }

  /**
   * A snapshot holds the state at the applied index: it carries the configuration in
   * force there, not a later one that may still be replaced.
   */
  private configAtApplied(): ClusterConfig {
    return this.core.configAt(this.stateMachine.appliedIndex()).config;
  }

  // -----------------------------------------------------------------------------------
  // Helpers

  private sendAll(messages: readonly PeerMessage[]): void {
    // A configuration that just took effect may name new peers: the transport learns them first.
    if (this.core.currentConfigIndex() !== this.configIndexSeen) {
      this.configIndexSeen = this.core.currentConfigIndex();
      this.deps.onConfigChange?.(this.core.currentConfig(), this.configIndexSeen);
    }
    for (const m of messages) this.deps.transport.send(m.to, m);
  }

  private deadline(timeoutMs: number): number {
    return this.nowTick + Math.max(1, Math.ceil(timeoutMs / this.opts.tickMs));
  }

  private notLeaderError(): QkvError {
    const leader = this.leader();
    return new QkvError('not_leader', leader ? `not the leader; the leader is ${leader.id}` : 'no leader is known (election under way)', { leader }, leader ? null : 500);
  }

  private fatal(error: Error): void {
    if (this.stopped) return;
    this.stop();
    this.deps.onFatal(error);
  }
}
