/**
 * The quorumkv client: leader discovery, retries with capped exponential backoff and
 * jitter inside a per-call deadline, idempotency keys on every write, session versions,
 * and the typed errors callers see. Transports (HTTP, gRPC) do single attempts; every
 * decision about what a failure means and where to try next is made here.
 *
 * Idempotency. A write carries (clientId, seq). The server's dedup table keeps, per client
 * id, only the LAST applied seq, so one id must never have two writes in flight (a later
 * seq applied first would make the earlier one `stale_request`). The client therefore
 * keeps "lanes": ids `<clientId>.<n>`, each with its own seq counter and at most one write
 * in flight; a write takes a free lane (or opens one) and returns it when it settles. The
 * number of lanes is the client's peak write concurrency.
 *
 * Must never: give up on a write after it may have been sent without saying so
 * (OutcomeUnknownError), retry a write with a new seq (that could apply it twice), wait past
 * a call's deadline, or keep a timer alive after close().
 */

import { randomBytes } from 'node:crypto';
import { isClientId, leaseTtlMsMax } from '../wire/types.js';
import type { LeaderInfo, LeaseInfoResponse, LeaseKeepAliveResponse, LeaseRevokeResponse, MembershipChangeResponse, NodeAddresses, ReadConsistency } from '../wire/types.js';
import { txnBodyOf, txnResultOf } from './txn-values.js';
import type { TxnInput, TxnResult } from './txn-values.js';
import { BackupFileWriter } from './backup-file.js';
import {
  ClientClosedError,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  OutcomeUnknownError,
  QuorumKvError,
  QuorumTimeoutError,
  UnavailableError,
  errorForCode,
} from './errors.js';
import { Lease, type LeaseCalls } from './lease.js';
import { Watch, type WatchOptions } from './watch.js';
import { Election, Lock, joinAndWait, type LockOptions, type QueueCalls } from './concurrency.js';
import { changeOutcomeUnknown, changePolicy, checkMemberId, checkNewMember } from './members.js';
import type { MemberCalls, RetryPolicy } from './members.js';
import { AttemptError, ProtocolError } from './transport.js';
import type { ClientTransport, DeleteRequest, GetRequest, ListRequest, MemberChangeRequest, PutRequest, TxnRequest, WriteRequestId } from './transport.js';
import type {
  BackupOptions,
  BackupResult,
  CallOptions,
  ClusterStatus,
  ConnectOptions,
  DeleteOptions,
  DeleteResult,
  DieOptions,
  Entry,
  EndpointStatus,
  GetOptions,
  LeaseOptions,
  ListOptions,
  ListPage,
  PutOptions,
  PutResult,
  Value,
} from './types.js';
import { isValue } from './values.js';

const deadlineMsDefault = 10_000;
const backupDeadlineMsDefault = 10 * 60_000;
const backoffMsMinDefault = 25;
const backoffMsMaxDefault = 1_000;
/**
 * Below this much time left, no new attempt is started: the server would get almost no
 * budget and answer `timeout`, which for a write cannot be told apart from "may apply".
 */
const attemptMsMin = 50;
/** Budget of one /status probe during discovery. */
const statusTimeoutMs = 1_000;
/** Discovery runs at most this often when calls keep asking for it. */
const refreshGapMs = 100;
/** While calls flow, the leader is re-checked this often (a deposed leader still forwards). */
const refreshIntervalMs = 2_000;
/** An endpoint that refused connections is skipped this long. */
const endpointDownMs = 500;
/**
 * While the client looks for a leader (an election, a leader that went away), it asks again
 * at least this often: an election ends within an election timeout or two, and a client
 * whose backoff had grown to its maximum learned of the new leader up to 0.7 s after it
 * (measured on kill -9 of a leader). Refusals for load (busy, too many requests) and unknown
 * outcomes still back off to backoffMsMax.
 */
const leaderSearchBackoffMsMax = 100;
/** Retries to another endpoint without waiting, in a row, before backoff applies. */
const quickRetriesMax = 4;
/** Endpoints learned from /status are added up to this many in total. */
const endpointsMax = 32;
/** Longest user-given client id (the server allows 128 characters; lanes add a suffix). */
const clientIdBaseCharsMax = 100;

/** Wire codes that say the request was refused before anything was done: nothing applied. */
const refusedBeforeActing: ReadonlySet<string> = new Set(['not_leader', 'no_leader', 'busy', 'too_many_requests', 'shutting_down']);
/** Wire codes after which a write may still apply; retried with the same idempotency key. */
const outcomeUnknownCodes: ReadonlySet<string> = new Set(['timeout', 'quorum_timeout', 'outcome_unknown']);

interface Endpoint {
  readonly address: string;
  /** Learned from the node's status; null until it answered once. */
  nodeId: string | null;
  /** performance.now() before which the endpoint is skipped (0: up). */
  downUntilMs: number;
}

interface Lane {
  readonly clientId: string;
  seq: number;
}

type Attempt<T> = (endpoint: Endpoint, timeoutMs: number) => Promise<T>;

/** One call as the retry loop runs it. */
interface CallSpec {
  readonly kind: 'write' | 'read';
  /** Sent to the leader when one is known (else to any endpoint, which forwards). */
  readonly leaderBound: boolean;
  readonly deadlineMs: number;
  /** A kv write's idempotency key: retried with it, and named in OutcomeUnknownError. */
  readonly requestId?: WriteRequestId;
  /** Refusals retried beyond the usual ones (membership changes). */
  readonly policy?: RetryPolicy;
}

/**
 * A connection to a quorumkv cluster. Create it with {@link connect}; share one instance
 * across an application (it is safe for any number of concurrent calls) and `close()` it
 * at the end.
 *
 * Every call takes a deadline (`deadlineMs`, default from {@link ConnectOptions}): within
 * it the client finds the leader, retries on `not_leader`, lost connections and 503s with
 * capped exponential backoff and jitter, and then either answers or throws a typed error:
 * {@link UnavailableError} (nothing was done), {@link OutcomeUnknownError} (a write may have
 * been applied — exactly once if so), {@link DeadlineExceededError} (a read ran out of
 * time), or a definite refusal ({@link VersionConflictError}, {@link InvalidArgumentError}).
 */
export class KvClient {
  private readonly transport: ClientTransport;
  private readonly endpoints: Endpoint[] = [];
  private leader: Endpoint | null = null;
  private roundRobin = 0;
  private readonly deadlineMs: number;
  private readonly backoffMsMin: number;
  private readonly backoffMsMax: number;
  private readonly clientIdBase: string;
  private readonly seqStart: number;
  private readonly freeLanes: Lane[] = [];
  private lanesOpened = 0;
  private sessionVersionValue = 0;
  private refreshing: Promise<void> | null = null;
  private lastRefreshStartMs = -Infinity;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly sleepers = new Set<() => void>();
  /** ConnectOptions.linearizableReadsFrom is `leader`. */
  private readonly linearizableReadsToLeader: boolean;
  /** Leases kept alive by this client (ended quietly by close()). */
  private readonly leases = new Set<Lease>();
  /** Watches opened by this client (closed by close()). */
  private readonly watches = new Set<Watch>();

  /**
   * Membership: `list()`, `add()`, `promote()`, `remove()`. Changes go to the leader, one at
   * a time (members.ts: which refusals are retried, and why a change is never repeated once
   * it may have acted).
   */
  readonly members: MemberCalls = {
    // async: a refused argument rejects the promise like every other call, never throws.
    list: async (options = {}) =>
      this.run({ kind: 'read', leaderBound: true, deadlineMs: this.deadlineOf(options) }, (ep, timeoutMs) => this.transport.members(ep.address, timeoutMs)),
    add: async (member, options = {}) => this.changeMembers({ op: 'add', member: checkNewMember(member) }, options),
    promote: async (id, options = {}) => this.changeMembers({ op: 'promote', id: checkMemberId(id, 'promote() id') }, options),
    remove: async (id, options = {}) => this.changeMembers({ op: 'remove', id: checkMemberId(id, 'remove() id') }, options),
  };

  /** @internal Use {@link connect}. */
  constructor(transport: ClientTransport, options: ConnectOptions) {
    this.transport = transport;
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new InvalidArgumentError('bad_request', 'connect() needs at least one endpoint');
    }
    for (const raw of options.endpoints) this.addEndpoint(transport.normalize(raw), true);
    this.deadlineMs = positive(options.deadlineMs, deadlineMsDefault, 'deadlineMs');
    this.backoffMsMin = positive(options.backoffMsMin, backoffMsMinDefault, 'backoffMsMin');
    this.backoffMsMax = positive(options.backoffMsMax, backoffMsMaxDefault, 'backoffMsMax');
    if (this.backoffMsMax < this.backoffMsMin) {
      throw new InvalidArgumentError('bad_request', `backoffMsMax ${this.backoffMsMax} is below backoffMsMin ${this.backoffMsMin}`);
    }
    const clientId = options.clientId ?? `qkv-${randomBytes(8).toString('hex')}`;
    if (!isClientId(clientId, clientIdBaseCharsMax)) {
      throw new InvalidArgumentError('bad_request', `clientId must be 1 to ${clientIdBaseCharsMax} visible ASCII characters`);
    }
    this.clientIdBase = clientId;
    const readsFrom = options.linearizableReadsFrom ?? 'leader';
    if (readsFrom !== 'leader' && readsFrom !== 'any') {
      throw new InvalidArgumentError('bad_request', `linearizableReadsFrom must be leader or any, got ${JSON.stringify(readsFrom)}`);
    }
    this.linearizableReadsToLeader = readsFrom === 'leader';
    // From the clock, so a restarted process that reuses its client id continues above the
    // sequence numbers it used before (1,000 per millisecond per lane is out of reach).
    this.seqStart = Date.now() * 1000;
  }

  /** The client id writes are tagged with (each lane appends `.<n>`). */
  get clientId(): string {
    return this.clientIdBase;
  }

  /**
   * The highest version this client has written or read: `session` reads ask any node
   * for at least this version (read-your-writes and monotonic reads).
   */
  get sessionVersion(): number {
    return this.sessionVersionValue;
  }

  /** The leader's node id as last learned, or null while unknown. */
  get leaderId(): string | null {
    return this.leader?.nodeId ?? null;
  }

  /** Endpoints in use, learned ones included, in canonical form. */
  get knownEndpoints(): readonly string[] {
    return this.endpoints.map((e) => e.address);
  }

  /**
   * Writes `value` under `key` and returns the version it got. A string is stored as text,
   * a Uint8Array as bytes; either is read back as the type it was written with. With `ifVersion`, writes only
   * if the key's current version is that (0: only if absent), else VersionConflictError.
   * Retried within the deadline with the same idempotency key: applied at most once.
   * @throws InvalidArgumentError, VersionConflictError, UnavailableError, OutcomeUnknownError, ClientClosedError
   */
  async put(key: string, value: Value, options: PutOptions = {}): Promise<PutResult> {
    checkKey(key);
    if (!isValue(value)) throw new InvalidArgumentError('invalid_value', `value must be a string or a Uint8Array, got ${typeof value}`);
    const ifVersion = optionalIndex(options.ifVersion, 'ifVersion');
    const lease = options.lease === undefined ? undefined : optionalIndex(typeof options.lease === 'number' ? options.lease : options.lease.id, 'lease');
    const deadlineMs = this.deadlineOf(options);
    const lane = this.acquireLane();
    const request: PutRequest = { key, value, ifVersion, ...(lease === undefined ? {} : { lease }), requestId: { clientId: lane.clientId, seq: ++lane.seq } };
    try {
      const result = await this.run({ kind: 'write', leaderBound: true, deadlineMs, requestId: request.requestId }, (ep, timeoutMs) => this.transport.put(ep.address, request, timeoutMs));
      this.observe(result.version);
      return result;
    } finally {
      this.freeLanes.push(lane);
    }
  }

  /**
   * Deletes `key`. The answer has a version even when the key was absent (`deleted: false`).
   * Same retry and idempotency rules as {@link put}.
   * @throws InvalidArgumentError, VersionConflictError, UnavailableError, OutcomeUnknownError, ClientClosedError
   */
  async delete(key: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    checkKey(key);
    const ifVersion = optionalIndex(options.ifVersion, 'ifVersion');
    const deadlineMs = this.deadlineOf(options);
    const lane = this.acquireLane();
    const request: DeleteRequest = { key, ifVersion, requestId: { clientId: lane.clientId, seq: ++lane.seq } };
    try {
      const result = await this.run({ kind: 'write', leaderBound: true, deadlineMs, requestId: request.requestId }, (ep, timeoutMs) => this.transport.delete(ep.address, request, timeoutMs));
      this.observe(result.version);
      return result;
    } finally {
      this.freeLanes.push(lane);
    }
  }

  /**
   * Runs a transaction: if every `compare` holds on the leader's state, the `success`
   * operations, else the `failure` ones — atomically, as one log entry (no other write lands
   * in between; every write gets the answer's `version`). Same retry and idempotency rules
   * as {@link put}: a retried transaction is answered from the first run, never run twice.
   * Values are text or bytes, as in {@link put}.
   * @throws InvalidArgumentError, UnavailableError, OutcomeUnknownError, ClientClosedError
   */
  async txn(input: TxnInput, options: CallOptions = {}): Promise<TxnResult> {
    const body = txnBodyOf(input);
    for (const c of body.compare ?? []) checkKey(c.key);
    for (const o of [...(body.success ?? []), ...(body.failure ?? [])]) {
      if (o.op !== 'list') checkKey(o.key);
      else if (o.prefix !== '') checkKey(o.prefix);
      // Until the gRPC txn list takes an order, it would come back ascending.
    }
    const deadlineMs = this.deadlineOf(options);
    const lane = this.acquireLane();
    const request: TxnRequest = { body, requestId: { clientId: lane.clientId, seq: ++lane.seq } };
    try {
      const result = await this.run({ kind: 'write', leaderBound: true, deadlineMs, requestId: request.requestId }, (ep, timeoutMs) => this.transport.txn(ep.address, request, timeoutMs));
      this.observe(result.version);
      return txnResultOf(result);
    } finally {
      this.freeLanes.push(lane);
    }
  }

  /**
   * Grants a lease of `ttlMs` and keeps it alive in the background (every TTL/3) until
   * `revoke()`, `release()`, `close()` or the process exits (see lease.ts for what
   * `safeUntilMs` and `lost` promise). Attach keys with `put(key, value, { lease })`.
   * @throws InvalidArgumentError, UnavailableError, OutcomeUnknownError, ClientClosedError
   */
  async lease(ttlMs: number, options: LeaseOptions = {}): Promise<Lease> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > leaseTtlMsMax) {
      throw new InvalidArgumentError('bad_request', `ttlMs must be an integer from 1 to ${leaseTtlMsMax}, got ${String(ttlMs)}`);
    }
    const deadlineMs = this.deadlineOf(options);
    const lane = this.acquireLane();
    const requestId = { clientId: lane.clientId, seq: ++lane.seq };
    const sentMs = performance.now();
    try {
      const grant = await this.run({ kind: 'write', leaderBound: true, deadlineMs, requestId }, (ep, timeoutMs) => this.transport.leaseGrant(ep.address, ttlMs, requestId, timeoutMs));
      this.observe(grant.version);
      const lease = new Lease(this.leaseCalls, grant, sentMs, options.keepAlive ?? true);
      if (this.closed) lease.closeQuietly();
      else {
        this.leases.add(lease);
        void lease.lost.then(() => this.leases.delete(lease));
      }
      return lease;
    } finally {
      this.freeLanes.push(lane);
    }
  }

  /**
   * One lease call by id, for a lease this process does not hold as a `Lease` (the CLI):
   * `undefined` when the lease does not exist (keepalive, info).
   * @throws InvalidArgumentError, UnavailableError, OutcomeUnknownError (revoke), ClientClosedError
   */
  async leaseCall(action: 'keepalive' | 'revoke' | 'info', id: number, options: CallOptions = {}): Promise<LeaseKeepAliveResponse | LeaseRevokeResponse | LeaseInfoResponse | undefined> {
    const deadlineMs = this.deadlineOf(options);
    if (action === 'revoke') return this.leaseCalls.revoke(id, deadlineMs);
    if (action === 'info') return this.leaseCalls.info(id, 1_000, deadlineMs);
    return this.leaseCalls.keepAlive(id, deadlineMs).catch((e: unknown) => {
      if (e instanceof NotFoundError && e.code === 'lease_not_found') return undefined;
      throw e;
    });
  }

  private readonly leaseCalls: LeaseCalls = {
    keepAlive: (id, deadlineMs) =>
      this.run({ kind: 'read', leaderBound: true, deadlineMs }, (ep, timeoutMs) => this.transport.leaseKeepAlive(ep.address, id, timeoutMs)),
    revoke: async (id, deadlineMs) => {
      const lane = this.acquireLane();
      const requestId = { clientId: lane.clientId, seq: ++lane.seq };
      try {
        const r = await this.run({ kind: 'write', leaderBound: true, deadlineMs, requestId }, (ep, timeoutMs) => this.transport.leaseRevoke(ep.address, id, requestId, timeoutMs));
        this.observe(r.version);
        return r;
      } finally {
        this.freeLanes.push(lane);
      }
    },
    info: (id, keysMax, deadlineMs) =>
      this.run({ kind: 'read', leaderBound: true, deadlineMs }, (ep, timeoutMs) => this.transport.leaseInfo(ep.address, id, keysMax, timeoutMs)),
  };

  /**
   * Watches the changes under `prefix` ('' for all): an async iterator of {@link WatchEvent}s
   * that reconnects to any endpoint and resumes after the last version it delivered (see
   * watch.ts). End it with `close()` or by leaving the `for await` loop.
   * @throws (from the iterator) CompactedError when it must resume from a compacted version
   */
  watch(prefix: string, options: WatchOptions = {}): Watch {
    if (typeof prefix !== 'string') throw new InvalidArgumentError('bad_request', 'prefix must be a string');
    if (prefix !== '') checkKey(prefix);
    if (options.fromVersion !== undefined) optionalIndex(options.fromVersion, 'fromVersion');
    if (this.closed) throw new ClientClosedError();
    const watch = new Watch(
      {
        transport: this.transport,
        // In the order given: any node serves watches, and they need not load the leader.
        endpoints: () => this.endpoints.map((e) => e.address),
        backoffMsMin: this.backoffMsMin,
        backoffMsMax: this.backoffMsMax,
        connectTimeoutMs: this.deadlineMs,
        onClose: () => this.watches.delete(watch),
      },
      prefix,
      options,
    );
    this.watches.add(watch);
    return watch;
  }

  /**
   * Acquires the lock `name` (keys under `locks/<name>/`, one per contender, on a lease of
   * `ttlMs`, default 10 s), waiting up to `deadlineMs` (default 30 s). Guard writes with
   * `lock.fenced(txn)` so they only land while the lock is still held (concurrency.ts).
   * @throws DeadlineExceededError, LockLostError, and what put/list/watch throw
   */
  async lock(name: string, options: LockOptions = {}): Promise<Lock> {
    checkKey(name);
    const place = await joinAndWait(this.queueCalls, `locks/${name}/`, '', options);
    return new Lock(this.queueCalls, place);
  }

  /** Leader election `name` (keys under `elections/<name>/`): campaign, proclaim, leader, observe, resign. */
  elect(name: string, options: LockOptions = {}): Election {
    checkKey(name);
    return new Election(this.queueCalls, `elections/${name}/`, options);
  }

  private readonly queueCalls: QueueCalls = {
    lease: (ttlMs) => this.lease(ttlMs),
    put: (key, value, options) => this.put(key, value, options),
    delete: (key, options) => this.delete(key, options),
    list: (options) => this.list(options),
    txn: (body) => this.txn(body),
    watch: (prefix, options) => this.watch(prefix, options),
  };

  /**
   * Reads `key`; `undefined` when it does not exist (a missing key is an answer, not an
   * error). See {@link Consistency} for what each level promises.
   * @throws InvalidArgumentError, UnavailableError, DeadlineExceededError, ClientClosedError
   */
  async get(key: string, options: GetOptions = {}): Promise<Entry | undefined> {
    checkKey(key);
    const mode = this.readMode(options);
    const atVersion = optionalIndex(options.atVersion, 'atVersion');
    const request: GetRequest = { key, consistency: mode.consistency, minVersion: mode.minVersion, ...(atVersion === undefined ? {} : { atVersion }) };
    const entry = await this.run({ kind: 'read', leaderBound: mode.leaderBound, deadlineMs: this.deadlineOf(options) }, (ep, timeoutMs) => this.transport.get(ep.address, request, timeoutMs));
    if (entry !== undefined) this.observe(entry.version);
    return entry;
  }

  /**
   * One page of keys (with values and versions) in UTF-8 byte order, descending with
   * `reverse`. Pass `next` as `after` for the following page (in the same order), or use
   * {@link listAll} / {@link listPages}.
   * @throws InvalidArgumentError, UnavailableError, DeadlineExceededError, ClientClosedError
   */
  async list(options: ListOptions = {}): Promise<ListPage> {
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string') throw new InvalidArgumentError('bad_request', 'prefix must be a string');
    if (options.after !== undefined && typeof options.after !== 'string') throw new InvalidArgumentError('bad_request', 'after must be a string');
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
      throw new InvalidArgumentError('bad_request', `limit must be an integer >= 1, got ${String(limit)}`);
    }
    const reverse = options.reverse ?? false;
    if (typeof reverse !== 'boolean') throw new InvalidArgumentError('bad_request', `reverse must be true or false, got ${String(reverse)}`);
    const mode = this.readMode(options);
    const atVersion = optionalIndex(options.atVersion, 'atVersion');
    const request: ListRequest = { prefix, after: options.after, limit, consistency: mode.consistency, minVersion: mode.minVersion, ...(atVersion === undefined ? {} : { atVersion }), ...(reverse ? { reverse } : {}) };
    const page = await this.run({ kind: 'read', leaderBound: mode.leaderBound, deadlineMs: this.deadlineOf(options) }, (ep, timeoutMs) => this.transport.list(ep.address, request, timeoutMs));
    let highest = 0;
    for (const item of page.items) if (item.version > highest) highest = item.version;
    this.observe(highest);
    return page;
  }

  /**
   * Every page from `options.after` to the end, one request per page (`limit` is the page
   * size). Each page has its own deadline; pages are separate reads, not one snapshot.
   */
  async *listPages(options: ListOptions = {}): AsyncGenerator<ListPage, void, undefined> {
    let after = options.after;
    let atVersion = options.atVersion;
    for (;;) {
      const base = atVersion === undefined ? options : { ...options, atVersion };
      const page = await this.list(after === undefined ? without(base, 'after') : { ...base, after });
      yield page;
      if (page.next === null) return;
      after = page.next;
      // Every later page shows the state at the first one's version: the scan is consistent
      // while writes go on (HTTP; over gRPC pages carry no version and are read one by one).
      if (atVersion === undefined && page.version > 0) atVersion = page.version;
    }
  }

  /** Every entry matching `options` (all pages), in key order (descending with `reverse`). */
  async *listAll(options: ListOptions = {}): AsyncGenerator<Entry, void, undefined> {
    for await (const page of this.listPages(options)) yield* page.items;
  }

  /**
   * Asks every known endpoint for its status (in parallel) and says who leads. Never
   * throws for an unreachable node: its entry carries the error.
   */
  async status(options: CallOptions = {}): Promise<ClusterStatus> {
    this.checkOpen();
    const results = await this.refresh(Math.min(this.deadlineOf(options), statusTimeoutMs * 5));
    return { leader: leaderIdOf(results), nodes: results };
  }

  /**
   * Streams a consistent snapshot of one node's state (default: the leader's) into
   * `toFile` (see backup-file.ts for the format): written as `<toFile>.partial`, checked
   * (record order, counts, SHA-256 trailer) and renamed only when complete. Another node
   * is tried if the stream breaks. Default deadline 10 minutes.
   * @throws UnavailableError, DeadlineExceededError, NotFoundError (unknown nodeId), QuorumKvError('protocol')
   */
  async backup(toFile: string, options: BackupOptions = {}): Promise<BackupResult> {
    this.checkOpen();
    const deadlineMs = positive(options.deadlineMs, backupDeadlineMsDefault, 'deadlineMs');
    let only: Endpoint | null = null;
    if (options.nodeId !== undefined) only = await this.endpointOfNode(options.nodeId);
    const attempt: Attempt<BackupResult> = async (ep, timeoutMs) => {
      const target = only ?? ep;
      const writer = await BackupFileWriter.create(toFile);
      try {
        await this.transport.backup(target.address, writer, timeoutMs);
        const done = await writer.finish();
        return {
          file: toFile,
          nodeId: done.header.nodeId,
          clusterId: done.header.clusterId,
          index: done.header.index,
          term: done.header.term,
          items: done.items,
          keys: done.keys,
          dedupRecords: done.dedup,
          chunks: done.chunks,
          bytes: done.bytes,
          sha256: done.sha256,
        };
      } finally {
        await writer.abort();
      }
    };
    return this.run({ kind: 'read', leaderBound: true, deadlineMs }, attempt);
  }

  /**
   * Stops node `nodeId`: cleanly (`clean: true`: flush and exit, the seeds' die(clean)) or at
   * once (default: SIGKILL, no flush). The node must run with `--faults` (else
   * NotFoundError `unknown_route`). Resolves once the node accepted; it dies just after.
   * @throws NotFoundError, UnavailableError, InvalidArgumentError
   */
  async die(nodeId: string, options: DieOptions = {}): Promise<void> {
    this.checkOpen();
    if (typeof nodeId !== 'string' || nodeId.length === 0) throw new InvalidArgumentError('bad_request', 'die() needs a node id');
    const ep = await this.endpointOfNode(nodeId);
    try {
      await this.transport.die(ep.address, nodeId, options.clean === true, this.deadlineOf(options));
    } catch (error) {
      if (error instanceof AttemptError) {
        if (error.kind === 'refused' && error.code !== null && !refusedBeforeActing.has(error.code)) throw errorForCode(error.code, error.message, error.details);
        throw new UnavailableError(error.code ?? 'unavailable', `die(${nodeId}) at ${ep.address} failed: ${error.message}`, error.details);
      }
      throw this.unexpected(error, ep);
    }
    if (this.leader === ep) this.leader = null;
    ep.downUntilMs = performance.now() + endpointDownMs;
  }

  /**
   * Hands leadership to voter `to` (default: the most up-to-date voter) and resolves with the
   * new leader's id once it leads. Retried like a membership change (members.ts).
   * @throws InvalidArgumentError, QuorumKvError pinned_leader, UnavailableError, ChangeOutcomeUnknownError
   */
  async transferLeader(to?: string, options: CallOptions = {}): Promise<{ readonly leader: string }> {
    const target = to === undefined ? null : checkMemberId(to, 'transferLeader() to');
    const call = { kind: 'write', leaderBound: true, deadlineMs: this.deadlineOf(options), policy: changePolicy } as const;
    const result = await this.run(call, (ep, timeoutMs) => this.transport.transferLeader(ep.address, target, timeoutMs));
    // The leader moved to the one the answer names: go to it directly if this client knows
    // its endpoint, and look again either way (its address may be new to the client).
    this.leader = this.endpoints.find((e) => e.nodeId === result.leader) ?? null;
    this.refreshSoon();
    return result;
  }

  private async changeMembers(change: MemberChangeRequest, options: CallOptions): Promise<MembershipChangeResponse> {
    const call = { kind: 'write', leaderBound: true, deadlineMs: this.deadlineOf(options), policy: changePolicy } as const;
    const result = await this.run(call, (ep, timeoutMs) => this.transport.changeMembers(ep.address, change, timeoutMs));
    // Endpoints and the leader may have changed (a removed leader hands over): look again.
    this.refreshSoon();
    return result;
  }

  /**
   * Closes every connection. Calls in flight finish or fail with ClientClosedError; later
   * calls throw it. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    for (const wake of [...this.sleepers]) wake();
    for (const lease of [...this.leases]) lease.closeQuietly();
    for (const watch of [...this.watches]) watch.close();
    this.closing = (async () => {
      await this.refreshing;
      await this.transport.close();
    })();
    return this.closing;
  }

  /**
   * @internal connect(): probes the endpoints until one answers (learning the leader on
   * the way), with backoff, for at most `timeoutMs`.
   */
  async ready(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (let failures = 1; ; failures++) {
      const remaining = deadline - performance.now();
      const results = await this.refresh(Math.max(1, Math.min(statusTimeoutMs, remaining)));
      if (results.some((r) => r.ok)) return;
      const delay = this.backoff(failures, this.backoffMsMax);
      if (this.closed) throw new ClientClosedError();
      if (performance.now() + delay >= deadline) {
        const reasons = results.map((r) => `${r.endpoint}: ${r.ok ? 'ok' : r.error.message}`).join('; ');
        throw new UnavailableError('unavailable', `No endpoint answered within ${timeoutMs} ms (${reasons})`);
      }
      await this.sleep(delay);
    }
  }

  // --- the retry loop ----------------------------------------------------------------------

  private async run<T>(call: CallSpec, attempt: Attempt<T>): Promise<T> {
    this.checkOpen();
    const started = performance.now();
    const deadline = started + call.deadlineMs;
    let failures = 0;
    let quickRetries = 0;
    let maybeApplied = false;
    let last: AttemptError | null = null;
    let next: Endpoint | null = null;
    const retried = new Map<string, number>();
    for (let attempts = 0; ; attempts++) {
      const remaining = deadline - performance.now();
      // The first attempt runs whatever the budget (a caller may choose a tiny deadline).
      if (remaining < (attempts === 0 ? 1 : attemptMsMin)) break;
      const ep = next ?? this.pick(call.leaderBound);
      next = null;
      try {
        return await attempt(ep, remaining);
      } catch (error) {
        if (!(error instanceof AttemptError)) throw this.unexpected(error, ep);
        if (this.closed) throw new ClientClosedError();
        last = error;
        const step = this.afterFailure(ep, error, call, retried);
        if (step.maybeApplied && call.policy?.unsafeToRepeat === true) throw changeOutcomeUnknown(error);
        if (step.maybeApplied) maybeApplied = true;
        if (step.next !== null && quickRetries < quickRetriesMax) {
          quickRetries++;
          next = step.next;
          continue;
        }
        quickRetries = 0;
        const delay = this.backoff(++failures, step.searching ? Math.min(this.backoffMsMax, leaderSearchBackoffMsMax) : this.backoffMsMax);
        const left = deadline - performance.now() - attemptMsMin;
        if (left <= 0) break;
        await this.sleep(Math.min(delay, left));
        if (this.closed) throw new ClientClosedError();
      }
    }
    throw this.deadlineError(call, last, maybeApplied);
  }

  /**
   * What an attempt's failure means: updates what the client knows (leader, endpoint
   * health), decides whether a write may have been applied, and names an endpoint to try
   * at once (or null: back off), and whether the client is looking for a leader (a short
   * backoff) rather than waiting out load. Throws the typed error when the refusal is definite.
   * `retried` counts, per call, the retries of the codes the call's policy adds.
   */
  private afterFailure(ep: Endpoint, error: AttemptError, call: CallSpec, retried: Map<string, number>): { readonly maybeApplied: boolean; readonly next: Endpoint | null; readonly searching?: true } {
    const { kind, leaderBound } = call;
    if (error.kind === 'unreachable') {
      this.markDown(ep);
      return { maybeApplied: false, next: this.anyUp(leaderBound), searching: true };
    }
    if (error.kind === 'lost') {
      this.forgetLeader(ep);
      return { maybeApplied: kind === 'write', next: null, searching: true };
    }
    const code = error.code ?? 'internal';
    switch (code) {
      case 'not_leader': {
        const hinted = this.leaderFromHint(error.details['leader']);
        if (hinted !== null && hinted !== ep) {
          this.leader = hinted;
          return { maybeApplied: false, next: hinted, searching: true };
        }
        this.forgetLeader(ep);
        return { maybeApplied: false, next: null, searching: true };
      }
      case 'no_leader':
        this.forgetLeader(ep);
        return { maybeApplied: false, next: null, searching: true };
      case 'shutting_down':
        this.markDown(ep);
        return { maybeApplied: false, next: this.anyUp(leaderBound), searching: true };
      case 'busy':
      case 'too_many_requests':
        return { maybeApplied: false, next: null };
      case 'no_space':
        // A node whose own disk filled refuses everything before acting, while the others go
        // on: try them. (The cluster's alarm, from the leader, is the caller's to see.)
        if (error.details['scope'] === 'node') {
          this.markDown(ep);
          return { maybeApplied: false, next: this.anyUp(leaderBound) };
        }
        throw errorForCode(code, error.message, error.details);
      default: {
        if (outcomeUnknownCodes.has(code)) {
          // A leader that cannot reach its quorum may be partitioned: look again.
          if (leaderBound) this.refreshSoon();
          return { maybeApplied: kind === 'write', next: null };
        }
        const allowed = call.policy?.retryCodes.get(code) ?? 0;
        const done = retried.get(code) ?? 0;
        if (done < allowed) {
          // Refused before acting (the policy names only such codes): back off, then again.
          retried.set(code, done + 1);
          return { maybeApplied: false, next: null };
        }
        throw errorForCode(code, error.message, error.details);
      }
    }
  }

  private deadlineError(call: CallSpec, last: AttemptError | null, maybeApplied: boolean): QuorumKvError {
    const { kind, deadlineMs, requestId } = call;
    const lastText = last === null ? 'no attempt could start' : `last attempt: ${last.message}`;
    const details = last === null ? {} : last.details;
    if (kind === 'write' && maybeApplied && requestId !== undefined) {
      const message = `The write's outcome is unknown after ${deadlineMs} ms: an attempt may have reached a node and no answer settled it (${lastText}). It was applied at most once; read the key to find out`;
      return last?.code === 'quorum_timeout'
        ? new QuorumTimeoutError('quorum_timeout', message, details, requestId)
        : new OutcomeUnknownError(last?.code ?? 'deadline_exceeded', message, details, requestId);
    }
    const refusedFirst = last !== null && last.code !== null && (refusedBeforeActing.has(last.code) || call.policy?.retryCodes.has(last.code) === true);
    if (last !== null && (last.kind === 'unreachable' || refusedFirst)) {
      return new UnavailableError(last.code ?? 'unavailable', `No node could serve the request within ${deadlineMs} ms; nothing was done (${lastText})`, details);
    }
    return new DeadlineExceededError(last?.code ?? 'deadline_exceeded', `The call did not complete within ${deadlineMs} ms (${lastText})`, details);
  }

  private unexpected(error: unknown, ep: Endpoint): unknown {
    if (error instanceof ProtocolError) return new QuorumKvError('protocol', `${ep.address}: ${error.message}`, { endpoint: ep.address }, { cause: error });
    if (error instanceof AttemptError) return new QuorumKvError(error.code ?? 'unavailable', error.message, error.details);
    return error;
  }

  /** Full-jitter-ish exponential backoff: between half and all of min * 2^(n-1), capped at `capMs`. */
  private backoff(failures: number, capMs: number): number {
    const exp = Math.min(capMs, this.backoffMsMin * 2 ** Math.min(failures - 1, 20));
    return exp * (0.5 + Math.random() * 0.5);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  // --- endpoints and the leader ------------------------------------------------------------

  private pick(leaderBound: boolean): Endpoint {
    const now = performance.now();
    if (now - this.lastRefreshStartMs > refreshIntervalMs) this.refreshSoon();
    if (leaderBound) {
      const leader = this.leader;
      if (leader !== null && leader.downUntilMs <= now) return leader;
      this.refreshSoon();
    }
    const n = this.endpoints.length;
    let soonest = this.endpoints[0] as Endpoint;
    for (let i = 0; i < n; i++) {
      this.roundRobin = (this.roundRobin + 1) % n;
      const ep = this.endpoints[this.roundRobin] as Endpoint;
      if (ep.downUntilMs <= now) return ep;
      if (ep.downUntilMs < soonest.downUntilMs) soonest = ep;
    }
    return soonest;
  }

  /** An endpoint that is up (the leader first for leader-bound calls), or null. */
  private anyUp(leaderBound: boolean): Endpoint | null {
    const now = performance.now();
    if (leaderBound && this.leader !== null && this.leader.downUntilMs <= now) return this.leader;
    for (const ep of this.endpoints) if (ep.downUntilMs <= now) return ep;
    return null;
  }

  private markDown(ep: Endpoint): void {
    ep.downUntilMs = performance.now() + endpointDownMs;
    this.forgetLeader(ep);
  }

  private forgetLeader(ep: Endpoint): void {
    if (this.leader === ep) this.leader = null;
    this.refreshSoon();
  }

  private leaderFromHint(hint: unknown): Endpoint | null {
    if (typeof hint !== 'object' || hint === null) return null;
    const { id, http, grpc } = hint as { id?: unknown; http?: unknown; grpc?: unknown };
    if (typeof id !== 'string') return null;
    const known = this.endpoints.find((e) => e.nodeId === id);
    if (known !== undefined) return known;
    const address = this.endpointOf({ http: typeof http === 'string' ? http : null, grpc: typeof grpc === 'string' ? grpc : null });
    if (address === null) return null;
    const ep = this.addEndpoint(address, false);
    if (ep !== null && ep.nodeId === null) ep.nodeId = id;
    return ep;
  }

  private addEndpoint(address: string, given: boolean): Endpoint | null {
    const found = this.endpoints.find((e) => e.address === address);
    if (found !== undefined) return found;
    if (!given && this.endpoints.length >= endpointsMax) return null;
    const ep: Endpoint = { address, nodeId: null, downUntilMs: 0 };
    this.endpoints.push(ep);
    return ep;
  }

  private async endpointOfNode(nodeId: string): Promise<Endpoint> {
    let ep = this.endpoints.find((e) => e.nodeId === nodeId);
    if (ep === undefined) {
      await this.refresh(statusTimeoutMs);
      ep = this.endpoints.find((e) => e.nodeId === nodeId);
    }
    if (ep === undefined) {
      throw new NotFoundError('not_found', `No endpoint of this client is node ${JSON.stringify(nodeId)} (known: ${this.endpoints.map((e) => `${e.nodeId ?? '?'}=${e.address}`).join(', ')})`);
    }
    return ep;
  }

  /** Starts a discovery round unless one runs or ran very recently. Never throws. */
  private refreshSoon(): void {
    if (this.refreshing !== null || this.closed) return;
    if (performance.now() - this.lastRefreshStartMs < refreshGapMs) return;
    this.refreshing = this.refresh(statusTimeoutMs).then(
      () => {
        this.refreshing = null;
      },
      () => {
        this.refreshing = null;
      },
    );
  }

  /** Asks every endpoint for its status; learns node ids, members (HTTP) and the leader. */
  private async refresh(timeoutMs: number): Promise<EndpointStatus[]> {
    this.lastRefreshStartMs = performance.now();
    const endpoints = this.endpoints.slice();
    const results = await Promise.all(
      endpoints.map(async (ep): Promise<EndpointStatus> => {
        try {
          const status = await this.transport.status(ep.address, timeoutMs);
          ep.nodeId = status.id;
          ep.downUntilMs = 0;
          return { endpoint: ep.address, ok: true, status };
        } catch (error) {
          if (error instanceof AttemptError && error.kind === 'unreachable') ep.downUntilMs = performance.now() + endpointDownMs;
          return { endpoint: ep.address, ok: false, error: publicError(error, ep.address) };
        }
      }),
    );
    if (this.closed) return results;
    let best: { readonly term: number; readonly leader: LeaderInfo } | null = null;
    for (const r of results) {
      if (!r.ok) continue;
      for (const peer of r.status.peers) this.learn(peer);
      const leader = r.status.leader;
      if (leader !== null && (best === null || r.status.term > best.term)) best = { term: r.status.term, leader };
    }
    if (best === null) {
      if (results.some((r) => r.ok)) this.leader = null;
      return results;
    }
    this.leader = this.leaderFromHint(best.leader);
    return results;
  }

  private learn(peer: NodeAddresses): void {
    const address = this.endpointOf(peer);
    if (address !== null) this.addEndpoint(address, false);
  }

  /** A node's endpoint for this client's transport (its `http` or its `grpc` address), if usable. */
  private endpointOf(addresses: NodeAddresses): string | null {
    const address = addresses[this.transport.kind];
    if (address === null) return null;
    try {
      return this.transport.normalize(address);
    } catch {
      return null;
    }
  }

  // --- small helpers -----------------------------------------------------------------------

  private acquireLane(): Lane {
    this.checkOpen();
    return this.freeLanes.pop() ?? { clientId: `${this.clientIdBase}.${this.lanesOpened++}`, seq: this.seqStart };
  }

  private observe(version: number): void {
    if (version > this.sessionVersionValue) this.sessionVersionValue = version;
  }

  private readMode(options: GetOptions): { readonly consistency: ReadConsistency | undefined; readonly minVersion: number | undefined; readonly leaderBound: boolean } {
    const given = optionalIndex(options.minVersion, 'minVersion');
    const consistency = options.consistency;
    switch (consistency) {
      case undefined:
        return { consistency: undefined, minVersion: given, leaderBound: given === undefined && this.linearizableReadsToLeader };
      case 'session': {
        const floor = Math.max(this.sessionVersionValue, given ?? 0);
        return { consistency: 'local', minVersion: floor > 0 ? floor : undefined, leaderBound: false };
      }
      case 'local':
        return { consistency, minVersion: given, leaderBound: false };
      case 'linearizable':
        return { consistency, minVersion: given, leaderBound: this.linearizableReadsToLeader };
      case 'leader':
        return { consistency, minVersion: given, leaderBound: true };
      default:
        throw new InvalidArgumentError('bad_request', `consistency must be linearizable, leader, local or session, got ${JSON.stringify(consistency)}`);
    }
  }

  private deadlineOf(options: CallOptions): number {
    return positive(options.deadlineMs, this.deadlineMs, 'deadlineMs');
  }

  private checkOpen(): void {
    if (this.closed) throw new ClientClosedError();
  }
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidArgumentError('invalid_key', 'key must be a non-empty string');
}

function optionalIndex(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError('bad_request', `${what} must be a safe integer >= 0, got ${String(value)}`);
  }
  return value;
}

function positive(value: unknown, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError('bad_request', `${what} must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}

function without<T extends object, K extends keyof T>(value: T, key: K): Omit<T, K> {
  const copy = { ...value };
  delete copy[key];
  return copy;
}

function leaderIdOf(results: readonly EndpointStatus[]): string | null {
  let best: { term: number; id: string } | null = null;
  for (const r of results) {
    if (!r.ok || r.status.leader === null) continue;
    if (best === null || r.status.term > best.term) best = { term: r.status.term, id: r.status.leader.id };
  }
  return best?.id ?? null;
}

function publicError(error: unknown, endpoint: string): QuorumKvError {
  if (error instanceof QuorumKvError) return error;
  if (error instanceof AttemptError) {
    if (error.kind === 'refused' && error.code !== null) return errorForCode(error.code, error.message, error.details);
    return new UnavailableError('unavailable', error.message);
  }
  if (error instanceof ProtocolError) return new QuorumKvError('protocol', `${endpoint}: ${error.message}`);
  return new QuorumKvError('internal', `${endpoint}: ${error instanceof Error ? error.message : String(error)}`);
}
