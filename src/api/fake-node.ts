/**
 * An in-memory KvNode for the API's tests: a Map whose versions come from a counter (like
 * log indexes), a dedup table, a switchable leader and injectable failures, plus a record of
 * every call so tests can assert what reached the node (and that bad input did not).
 *
 * Must never: be wired into a real node (cli/ uses node/'s driver); it replicates nothing
 * and its reads ignore consistency beyond the KvNode contract's role rules: `leader` reads
 * need it to lead, `linearizable` ones a known leader (a follower then reads its own store,
 * as if the leader's read index were already applied), `local` ones nothing.
 */

import type { ForwardChannel } from '../node/forwarding.js';
import type { KvNode, LeaseGrant, LeaseInfo, LeaseRevoke, ListOptions, ListResult, ModeChange, ReadOptions } from '../node/types.js';
import type { KvCommand, KvResult, TxnCommand, TxnResult } from '../kv/types.js';
import { authStateKey } from '../kv/types.js';
import type { BackupSource, ItemsChunk, KvItem, KvRecord } from '../storage/types.js';
import { QkvError } from '../wire/errors.js';
import type { AddMemberBody, LeaderInfo, MemberStatus, MembersResponse, MembershipChangeResponse, StatusResponse } from '../wire/types.js';

export interface FakeNodeOptions {
  readonly id: string;
  /** Who leads at the start; default: this node (with no HTTP address). */
  readonly leader?: LeaderInfo | null;
}

export type FakeCall =
  | { readonly op: 'write'; readonly command: KvCommand; readonly timeoutMs: number }
  | { readonly op: 'txn'; readonly command: TxnCommand; readonly timeoutMs: number }
  | { readonly op: 'read'; readonly key: string; readonly options: ReadOptions }
  | { readonly op: 'list'; readonly options: ListOptions };

/** Calls kept for inspection; older ones are dropped past this. */
const callsMax = 10_000;

export class FakeKvNode implements KvNode {
  readonly id: string;
  readonly store = new Map<string, KvRecord>();
  /** Every write/read/list call that reached the node, oldest first. */
  readonly calls: FakeCall[] = [];
  /**
   * Runs at the start of each write, before the leader check: scenarios use it to move
   * leadership while a request is in flight.
   */
  beforeWrite: ((command: KvCommand) => void) | null = null;
  /**
   * How a transaction is answered, given the next version. Transactions' meaning is the
   * state machine's (kv/txn.ts, tested there); the API's tests set the answer they need.
   */
  txnAnswer: ((command: TxnCommand, version: number) => TxnResult) | null = null;
  /** The peer link for forwarded operations (KvNode.forwarding); tests attach one to a memory network. */
  forwarding: ForwardChannel | undefined = undefined;

  private writeGate: Promise<void> | null = null;
  private currentLeader: LeaderInfo | null;
  private lastIndex = 0;
  private readonly failures: Error[] = [];
  /** Leases by id -> TTL: no expiry (the API's tests drive the routes, node/ tests the timing). */
  private readonly leases = new Map<number, number>();
  private readonly dedup = new Map<string, { readonly seq: number; readonly result: KvResult }>();
  private readonly leaderWaiters = new Set<(leader: LeaderInfo) => void>();
  private readonly indexWaiters = new Set<() => void>();

  constructor(options: FakeNodeOptions) {
    this.id = options.id;
    this.currentLeader = options.leader === undefined ? { id: options.id, http: null, grpc: null } : options.leader;
  }

  /** Writes that reached the node, oldest first. */
  get commands(): KvCommand[] {
    const commands: KvCommand[] = [];
    for (const call of this.calls) if (call.op === 'write') commands.push(call.command);
    return commands;
  }

  setLeader(leader: LeaderInfo | null): void {
    this.currentLeader = leader;
    if (leader === null) return;
    for (const resolve of this.leaderWaiters) resolve(leader);
    this.leaderWaiters.clear();
  }

  /** The next write, read or list call throws `error` (queued in order). */
  failNext(error: Error): void {
    this.failures.push(error);
  }

  /** Writes wait (after being recorded) until the returned function is called. */
  holdWrites(): () => void {
    let release = (): void => undefined;
    this.writeGate = new Promise<void>((resolve) => {
      release = () => {
        this.writeGate = null;
        resolve();
      };
    });
    return release;
  }

  leader(): LeaderInfo | null {
    return this.currentLeader;
  }

  async write(command: KvCommand, options: { readonly timeoutMs: number }): Promise<KvResult> {
    this.record({ op: 'write', command, timeoutMs: options.timeoutMs });
    this.beforeWrite?.(command);
    if (this.writeGate !== null) await this.writeGate;
    this.throwInjected();
    this.requireLeader();
    const requestId = command.requestId;
    if (requestId !== undefined) {
      const seen = this.dedup.get(requestId.clientId);
      if (seen !== undefined && requestId.seq === seen.seq) return seen.result;
      if (seen !== undefined && requestId.seq < seen.seq) {
        return { ok: false, error: 'stale_request', key: command.key, lastSeq: seen.seq };
      }
    }
    const result = this.apply(command);
    if (requestId !== undefined) this.dedup.set(requestId.clientId, { seq: requestId.seq, result });
    for (const wake of this.indexWaiters) wake();
    return result;
  }

  async txn(command: TxnCommand, options: { readonly timeoutMs: number }): Promise<TxnResult> {
    this.record({ op: 'txn', command, timeoutMs: options.timeoutMs });
    this.throwInjected();
    this.requireLeader();
    if (this.txnAnswer === null) throw new Error('FakeKvNode: set txnAnswer before sending a transaction');
    const result = this.txnAnswer(command, ++this.lastIndex);
    for (const wake of this.indexWaiters) wake();
    return result;
  }

  async leaseGrant(ttlMs: number): Promise<LeaseGrant> {
    this.requireLeader();
    const id = ++this.lastIndex;
    this.leases.set(id, ttlMs);
    return { id, ttlMs, version: id };
  }

  async leaseRevoke(id: number): Promise<LeaseRevoke> {
    this.requireLeader();
    const found = this.leases.delete(id);
    return { id, found, keysDeleted: 0, version: ++this.lastIndex };
  }

  async leaseKeepAlive(id: number): Promise<{ readonly id: number; readonly ttlMs: number }> {
    this.requireLeader();
    const ttlMs = this.leases.get(id);
    if (ttlMs === undefined) throw new QkvError('lease_not_found', `Lease ${id} does not exist`, { lease: id });
    return { id, ttlMs };
  }

  async watch(): Promise<number> {
    throw new QkvError('busy', 'the fake node serves no watches', {});
  }

  unwatch(): void {}

  async compact(): Promise<{ readonly compactedBelow: number; readonly removed: number }> {
    this.throwInjected();
    return { compactedBelow: this.lastIndex + 1, removed: 0 };
  }

  async leaseInfo(id: number): Promise<LeaseInfo | undefined> {
    this.requireLeader();
    const ttlMs = this.leases.get(id);
    return ttlMs === undefined ? undefined : { id, ttlMs, remainingMs: ttlMs, keys: [] };
  }

  async read(key: string, options: ReadOptions): Promise<KvRecord | undefined> {
    this.record({ op: 'read', key, options });
    this.throwInjected();
    this.requireRoleFor(options.consistency);
    await this.waitForIndex(options.minVersion ?? 0, options.timeoutMs);
    return this.store.get(key);
  }

  async list(options: ListOptions): Promise<ListResult> {
    this.record({ op: 'list', options });
    this.throwInjected();
    this.requireRoleFor(options.consistency);
    await this.waitForIndex(options.minVersion ?? 0, options.timeoutMs);
    return { items: this.range(options.prefix, options.after, options.limit, options.reverse === true), version: this.lastIndex };
  }

  waitForLeader(timeoutMs: number): Promise<LeaderInfo | null> {
    if (this.currentLeader !== null) return Promise.resolve(this.currentLeader);
    return new Promise((resolve) => {
      const onLeader = (leader: LeaderInfo): void => {
        clearTimeout(timer);
        resolve(leader);
      };
      const timer = setTimeout(() => {
        this.leaderWaiters.delete(onLeader);
        resolve(null);
      }, timeoutMs);
      this.leaderWaiters.add(onLeader);
    });
  }

  status(): StatusResponse {
    const leading = this.currentLeader?.id === this.id;
    return {
      id: this.id,
      clusterId: 'fake-cluster',
      pid: process.pid,
      role: leading ? 'leader' : 'follower',
      term: 1,
      leader: this.currentLeader,
      commitIndex: this.lastIndex,
      ackedIndex: this.lastIndex,
      appliedIndex: this.lastIndex,
      lastIndex: this.lastIndex,
      firstIndex: 1,
      keyCount: this.store.size,
      mode: { writeQuorum: 'majority', topology: 'star', sinceIndex: 0, inSync: [this.id] },
      peers: [],
      membership: this.members(),
      rollbackCount: 0,
      uptimeMs: 0,
    };
  }

  /** The members this fake reports: itself as the one voter until tests add more. */
  private memberList: MemberStatus[] | null = null;

  members(): MembersResponse {
    this.memberList ??= [{ id: this.id, role: 'voter', memberId: 'fake0000', peer: null, http: null, grpc: null, isLeader: this.currentLeader?.id === this.id, matchIndex: null, lag: null }];
    return { configIndex: this.lastIndex, members: this.memberList };
  }

  addMember(body: AddMemberBody): Promise<MembershipChangeResponse> {
    return this.changeMembers(body.id, 'add', () => {
      const role = body.learner === false ? 'voter' : 'learner';
      if (role === 'voter' && body.force !== true) throw new QkvError('bad_request', `adding ${body.id} as a voter at once is unsafe: pass force`);
      return [...this.members().members, { id: body.id, role, memberId: body.memberId ?? 'fake0001', peer: body.peer, http: body.http ?? null, grpc: body.grpc ?? null, isLeader: false, matchIndex: null, lag: null }];
    });
  }

  promoteMember(id: string): Promise<MembershipChangeResponse> {
    return this.changeMembers(id, 'change', () => this.members().members.map((m) => (m.id === id ? { ...m, role: 'voter' as const } : m)));
  }

  removeMember(id: string): Promise<MembershipChangeResponse> {
    return this.changeMembers(id, 'change', () => this.members().members.filter((m) => m.id !== id));
  }

  /** Membership changes and transfers that reached the node (refused ones included). */
  changeAttempts = 0;
  private readonly changeFailures: Error[] = [];

  /** The next membership change or transfer throws `error` (queued in order), before it acts. */
  failNextChange(error: Error): void {
    this.changeFailures.push(error);
  }

  private throwInjectedChange(): void {
    this.changeAttempts++;
    const failure = this.changeFailures.shift();
    if (failure !== undefined) throw failure;
  }

  private changeMembers(id: string, kind: 'add' | 'change', next: () => MemberStatus[]): Promise<MembershipChangeResponse> {
    try {
      this.throwInjectedChange();
      if (this.currentLeader?.id !== this.id) throw new QkvError('not_leader', 'not the leader', { leader: this.leader() });
      const exists = this.members().members.some((m) => m.id === id);
      if (kind === 'add' && exists) throw new QkvError('member_exists', `${id} is already a member`, { id });
      if (kind === 'change' && !exists) throw new QkvError('not_found', `${id} is not a member`, { id });
      this.memberList = next();
      this.lastIndex++;
      const voters = this.memberList.filter((m) => m.role === 'voter').map((m) => m.id);
      const learners = this.memberList.filter((m) => m.role === 'learner').map((m) => m.id);
      // Members added through the API are in the directory, as a real leader records them.
      const directory: Record<string, { memberId: string; peer: string; http?: string; grpc?: string }> = {};
      for (const m of this.memberList) {
        if (m.peer === null || m.memberId === null) continue;
        directory[m.id] = { memberId: m.memberId, peer: m.peer, ...(m.http === null ? {} : { http: m.http }), ...(m.grpc === null ? {} : { grpc: m.grpc }) };
      }
      return Promise.resolve({
        ...this.members(),
        clusterId: 'fake-cluster',
        config: {
          members: voters,
          ...(learners.length > 0 ? { learners } : {}),
          writeQuorum: 'majority',
          topology: 'star',
          ...(Object.keys(directory).length > 0 ? { directory } : {}),
        },
      });
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** Leadership handed over by transferLeader, newest last. */
  readonly transfers: (string | null)[] = [];

  transferLeader(to: string | null): Promise<{ readonly leader: string }> {
    try {
      this.throwInjectedChange();
    } catch (e) {
      return Promise.reject(e as Error);
    }
    if (this.currentLeader?.id !== this.id) return Promise.reject(new QkvError('not_leader', 'not the leader', { leader: this.leader() }));
    this.transfers.push(to);
    return Promise.resolve({ leader: to ?? this.id });
  }

  /** Mode changes asked of this fake, newest last. */
  readonly modeChanges: ModeChange[] = [];

  changeMode(change: ModeChange): Promise<{ readonly index: number }> {
    if (this.currentLeader?.id !== this.id) return Promise.reject(new QkvError('not_leader', 'not the leader', { leader: this.leader() }));
    this.modeChanges.push(change);
    return Promise.resolve({ index: ++this.lastIndex });
  }

  /** A point-in-time copy of the map, handed out in chunks of `itemsPerChunk` items. */
  openBackup(): BackupSource {
    const items: KvItem[] = [...this.store.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, r]) => ({ key, ...r }));
    const appliedIndex = items.reduce((m, i) => Math.max(m, i.version), 0);
    let seq = 0;
    let offset = 0;
    const itemsPerChunk = 100;
    return {
      meta: { index: appliedIndex, term: 1, config: { members: [this.id], writeQuorum: 'majority', topology: 'star' } },
      readItems: (): ItemsChunk | null => {
        if (offset > items.length || (offset === items.length && seq > 0)) return null;
        const chunk = items.slice(offset, offset + itemsPerChunk);
        offset += itemsPerChunk;
        return { seq: seq++, items: chunk, dedup: [], last: offset >= items.length };
      },
      close: () => undefined,
    };
  }

  authRecord(): KvRecord | undefined {
    return this.store.get(authStateKey);
  }

  dumpStore(after: string | undefined, limit: number): KvItem[] {
    return this.range('', after, limit);
  }

  private apply(command: KvCommand): KvResult {
    const current = this.store.get(command.key);
    const index = ++this.lastIndex;
    if (command.ifVersion !== undefined && command.ifVersion !== (current?.version ?? 0)) {
      return {
        ok: false,
        error: 'version_conflict',
        key: command.key,
        expectedVersion: command.ifVersion,
        actualVersion: current?.version ?? 0,
      };
    }
    if (command.op === 'put') {
      this.store.set(command.key, { value: command.value, version: index });
      return { ok: true, op: 'put', key: command.key, version: index };
    }
    const deleted = this.store.delete(command.key);
    return { ok: true, op: 'delete', key: command.key, version: index, deleted };
  }

  private range(prefix: string, after: string | undefined, limit: number, reverse = false): KvItem[] {
    const sorted = [...this.store.keys()].filter((key) => key.startsWith(prefix)).sort();
    const keys = (reverse ? sorted.reverse().filter((key) => after === undefined || key < after) : sorted.filter((key) => after === undefined || key > after)).slice(0, limit);
    return keys.map((key) => {
      const record = this.store.get(key);
      if (record === undefined) throw new Error(`fake store lost key ${key}`);
      return { key, value: record.value, version: record.version };
    });
  }

  private async waitForIndex(index: number, timeoutMs: number): Promise<void> {
    if (this.lastIndex >= index) return;
    await new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        if (this.lastIndex < index) return;
        clearTimeout(timer);
        this.indexWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(() => {
        this.indexWaiters.delete(wake);
        reject(new QkvError('timeout', `Node ${this.id} did not reach version ${index} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.indexWaiters.add(wake);
    });
  }

  private requireRoleFor(consistency: ReadOptions['consistency']): void {
    if (consistency === 'leader') this.requireLeader();
    if (consistency === 'linearizable' && this.currentLeader === null) {
      throw new QkvError('not_leader', `Node ${this.id} knows no leader to ask for a read index`, { leader: null }, 500);
    }
  }

  private requireLeader(): void {
    if (this.currentLeader?.id !== this.id) {
      throw new QkvError('not_leader', `Node ${this.id} is not the leader`, { leader: this.currentLeader }, 500);
    }
  }

  private throwInjected(): void {
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
  }

  private record(call: FakeCall): void {
    if (this.calls.length >= callsMax) this.calls.shift();
    this.calls.push(call);
  }
}
