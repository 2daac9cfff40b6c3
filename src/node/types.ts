/**
 * What a running node offers the layers above it (api/, cli/). Expected failures are
 * thrown as `QkvError` with a wire error code; nothing here knows about HTTP.
 */

import type { NodeId } from '../core/types.js';
import type { KvCommand, KvResult, LeaseResult, RequestId, TxnCommand, TxnResult } from '../kv/types.js';
import type { BackupSource, KvItem, KvRecord } from '../storage/types.js';
import type { WatchRequest, WatchSink } from './watch.js';
import type { ForwardChannel } from './forwarding.js';
import type { AddMemberBody, LeaderInfo, MembersResponse, MembershipChangeResponse, ReadConsistency, StatusResponse } from '../wire/types.js';

export interface ReadOptions {
  readonly consistency: ReadConsistency;
  /** Session read: wait until this node has applied at least this version (index). */
  readonly minVersion?: number;
  /**
   * Read the state as it was at this version (waiting until it is applied here, as
   * minVersion does); rejects with `compacted` (details.oldestVersion) when the history
   * kept no longer reaches it.
   */
  readonly atVersion?: number;
  readonly timeoutMs: number;
}

export interface ListOptions extends ReadOptions {
  readonly prefix: string;
  /** The cursor: keys after it in the listing's order (with `reverse`, the keys before it). */
  readonly after?: string;
  readonly limit: number;
  /** Descending UTF-8 byte order of keys (default: ascending). */
  readonly reverse?: boolean;
}

export interface CompactOutcome {
  /** Versions below this are gone from the history now. */
  readonly compactedBelow: number;
  /** History records removed. */
  readonly removed: number;
}

export interface ListResult {
  readonly items: KvItem[];
  readonly version: number;
}

export interface WriteOptions {
  readonly timeoutMs: number;
  /** Idempotency: a retry with the same id is answered from the first run (see RequestId). */
  readonly requestId?: RequestId;
}

export type LeaseGrant = Omit<Extract<LeaseResult, { op: 'lease-grant' }>, 'ok' | 'op'>;
export type LeaseRevoke = Omit<Extract<LeaseResult, { op: 'lease-revoke' }>, 'ok' | 'op'>;

export interface LeaseInfo {
  readonly id: number;
  readonly ttlMs: number;
  readonly remainingMs: number;
  /** Attached keys in key order, at most the number asked for. */
  readonly keys: readonly string[];
}

export interface ModeChange {
  readonly writeQuorum?: 'majority' | 'all' | number;
  readonly topology?: 'star' | 'chain';
}

export interface KvNode {
  readonly id: NodeId;

  /**
   * The peer link for forwarded client operations (forwarding.ts), when this node has one:
   * the API sends a follower's writes to the leader through it and serves those forwarded
   * to this node. Absent (tests, older wiring): forwarding goes over HTTP.
   */
  readonly forwarding?: ForwardChannel | undefined;

  /** The leader as this node knows it (itself when leading), or null during an election. */
  leader(): LeaderInfo | null;

  /**
   * Proposes a write on this node, which must be the leader (else QkvError not_leader with
   * details.leader). Resolves once the write is applied under the write-quorum rule, with
   * its result (a version conflict is a result, not an error). Rejects with quorum_timeout,
   * outcome_unknown, busy or shutting_down; in every rejection after proposing, the write
   * may still be applied later.
   */
  write(command: KvCommand, options: { readonly timeoutMs: number }): Promise<KvResult>;

  /**
   * Reads one key. `linearizable` works on any node that knows a leader: the leader
   * confirms its leadership with a majority (read index); a follower asks the leader for
   * that read index and answers from its own state once it has applied it. Rejects with
   * not_leader (details.leader: the leader this node knows now, if any) when no leader is
   * known or leadership changed before the read point was confirmed, timeout when the read
   * point or its application did not come within `timeoutMs`, busy beyond the pending-read
   * limit; nothing is ever answered from an unconfirmed state. `leader` needs this node to
   * lead but skips confirmation; `local` reads whatever this node applied.
   */
  /**
   * Proposes a transaction (leader only), applied atomically as one log entry; resolves
   * with which branch ran and each operation's result. Rejects as `write` does.
   */
  txn(command: TxnCommand, options: { readonly timeoutMs: number }): Promise<TxnResult>;

  /** Grants a lease (leader only; its id is the grant's log index). Rejects as `write` does. */
  leaseGrant(ttlMs: number, options: WriteOptions): Promise<LeaseGrant>;

  /** Ends a lease and deletes its keys (leader only). `found: false` when it did not exist. */
  leaseRevoke(id: number, options: WriteOptions): Promise<LeaseRevoke>;

  /**
   * Restarts a lease's TTL (leader only, after a read-index round confirmed the leadership).
   * Rejects with not_found when the lease does not exist, not_leader, timeout.
   */
  leaseKeepAlive(id: number, options: WriteOptions): Promise<{ readonly id: number; readonly ttlMs: number }>;

  /** A lease with its TTL, the time left (by this leader's clock) and its keys (leader only); undefined when it does not exist. */
  leaseInfo(id: number, keysMax: number, options: WriteOptions): Promise<LeaseInfo | undefined>;

  read(key: string, options: ReadOptions): Promise<KvRecord | undefined>;

  /**
   * Starts a watch on this node's own state (watch.ts); `linearizable` first waits for a
   * read index, so the stream includes every change committed before the call. Resolves
   * with the watcher's id (for `unwatch`); rejects with busy at the node's watcher limit.
   */
  watch(request: WatchRequest, sink: WatchSink, options: ReadOptions): Promise<number>;
  /** The consumer went away. */
  unwatch(id: number): void;

  /**
   * Compacts the history below `beforeVersion` (null: below the applied index), through the
   * log, in as many entries as it takes (leader only; not_leader elsewhere).
   */
  compact(beforeVersion: number | null, options: { readonly timeoutMs: number }): Promise<CompactOutcome>;

  /** A page of keys, and the version it shows the state at (atVersion, or the applied index when read). */
  list(options: ListOptions): Promise<ListResult>;

  /**
   * Switches the replication mode live (leader only, else not_leader): proposes a config
   * entry that every node adopts at the same log index. Resolves with that index once it is
   * applied here. Rejects with bad_request for an invalid mode, busy while another
   * configuration change is being committed.
   */
  changeMode(change: ModeChange, options: { readonly timeoutMs: number }): Promise<{ readonly index: number }>;

  /** Voters and learners of the configuration in force here, with the leader's view of their lag. */
  members(): MembersResponse;

  /**
   * Adds a member (a learner unless `learner: false`, which needs `force`), leader only.
   * Resolves once the configuration is applied here. Rejects with not_leader,
   * member_exists, membership_busy (one change at a time; a new leader first commits an
   * entry of its own term), bad_request, timeout.
   */
  addMember(body: AddMemberBody, options: { readonly timeoutMs: number }): Promise<MembershipChangeResponse>;

  /** Promotes learner `id` to voter (learner_lagging while it is behind; not_found if no learner). */
  promoteMember(id: string, options: { readonly timeoutMs: number }): Promise<MembershipChangeResponse>;

  /** Removes member `id`, the leader included (it hands over once the removal commits). */
  removeMember(id: string, options: { readonly timeoutMs: number }): Promise<MembershipChangeResponse>;

  /**
   * Hands leadership to voter `to` (null: the most up-to-date voter) and resolves with the
   * new leader's id once it leads; timeout if no handover happened within `timeoutMs`.
   */
  transferLeader(to: string | null, options: { readonly timeoutMs: number }): Promise<{ readonly leader: string }>;

  /** Resolves when a leader is known, or with null once `timeoutMs` passes. */
  waitForLeader(timeoutMs: number): Promise<LeaderInfo | null>;

  status(): StatusResponse;

  /** The auth document (kv/types.ts authStateKey) as this node applied it, or undefined if never written. */
  authRecord(): KvRecord | undefined;

  /** Every key with value and version, in key order, after `after` (debug route). */
  dumpStore(after: string | undefined, limit: number): KvItem[];

  /**
   * A consistent read of this node's whole state machine at its applied index, for backups.
   * The caller must close() it (each open source pins an LMDB read slot).
   */
  openBackup(): BackupSource;
}
