/**
 * What a node driver is configured with, from the CLI's flags or the simulator's scenario
 * (ms already turned into ticks).
 */

import type { NodeId } from '../core/types.js';
import type { HistoryRetentionOptions } from './history-retention.js';
import type { WatchHubOptions } from './watch.js';

/** DriverOptions.clockFastPermilleMax when not given. */
export const clockFastPermilleMaxDefault = 10;

export interface DriverOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  /** This node's member id (see core MemberInfo). */
  readonly memberId: string;
  /** The member id of a member the configuration holds without a directory entry (bootstrapped by --peers). */
  readonly bootstrapMemberId: (id: NodeId) => string;
  /** This node's client URL, shown in /status and to forwarding peers. */
  readonly selfHttp: string | null;
  /** This node's gRPC address (host:port), null when it serves no gRPC API. */
  readonly selfGrpc: string | null;
  readonly pid: number;
  /** Real milliseconds per tick (only used to convert client timeouts into ticks). */
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly pinnedLeader: NodeId | null;
  readonly inflightMessagesMax: number;
  readonly appendBytesMax: number;
  readonly appendEntriesMax: number;
  readonly uncommittedEntriesMax: number;
  /**
   * Linearizable reads in progress on this node (waiting for a read point or for it to be
   * applied), leader or follower alike. Beyond it: busy.
   */
  readonly readsPendingMax: number;
  /**
   * A follower's read-index request to the leader that is not answered within this fails
   * with `timeout` even if the client allows longer: the request or its answer was lost.
   * Default: two election timeouts (a dead or replaced leader fails them sooner).
   */
  readonly readIndexTimeoutTicks?: number;
  /** Client writes waiting for their entry to apply. Beyond it: busy. */
  readonly pendingWritesMax: number;
  readonly applyEntriesMax: number;
  /** Ready batches persisting at once (see CoreOptions.persistsInFlightMax). Default 1. */
  readonly persistsInFlightMax?: number;
  /** A learner further behind the leader than this is not promoted. Default appendEntriesMax. */
  readonly promoteLagEntriesMax?: number;
  /** Compact the log once it holds more entries than this (keeping the newer half). */
  readonly logEntriesMax: number;
  /**
   * Compact the log once its entries take more bytes than this (storage.logBytes(): the log
   * after the snapshot is held in memory), keeping about half of it. Default: no bound.
   */
  readonly logBytesMax?: number;
  readonly snapshotChunkBytes: number;
  readonly snapshotTimeoutTicks: number;
  /** With `all`/`chain`: silence before a replica leaves the in-sync set (default 3 election timeouts). */
  readonly memberTimeoutTicks?: number;
  /** A write not acknowledged by its quorum within this answers quorum_timeout (default: no cap). */
  readonly replicationTimeoutTicks?: number;
  /** Rolled-back writes already recorded by earlier runs (for /status). */
  readonly rollbackCountAtStart?: number;
  /** Watches (watch.ts) and the history they read, kept by the rule of history-retention.ts, then compacted by the leader. */
  readonly watch: WatchHubOptions & HistoryRetentionOptions;
  readonly dedupClientsMax: number;
  /**
   * How far a node's clock (and so its ticks) may run from real time, per mille, either way:
   * key lease deadlines are stretched by it and read leases shortened (default 10).
   */
  readonly clockFastPermilleMax?: number;
  /**
   * Linearizable reads served by the leader under a read lease (core/read-only.ts, sized by
   * read-lease.ts) instead of a heartbeat round each; needs checkQuorum and the deps' clock.
   * Every node of a cluster must agree on it (default true).
   */
  readonly readLease?: boolean;
}
