/**
 * The replicated key-value state machine's commands and results. Commands travel inside
 * log entries (encoded by codec.ts); results go back to the client that proposed them.
 */

import type { KvItem, KvRecord, KvValue } from '../storage/types.js';

/**
 * The reserved key (leases.ts explains the NUL prefix) that holds users, roles and whether
 * auth is on: one JSON document (wire/auth.ts AuthState), written like any key (a put with
 * ifVersion, so concurrent changes cannot lose each other), hence replicated, in snapshots
 * and backups, and never seen by clients, the history or watches.
 */
export const authStateKey = '\u0000auth';

/** Identifies a client request for deduplication: a retry reuses both fields. */
export interface RequestId {
  readonly clientId: string;
  /** Strictly increasing per client; a request with seq <= the last applied one is a retry or stale. */
  readonly seq: number;
}

export type KvCommand =
  | {
      readonly op: 'put';
      readonly key: string;
      readonly value: KvValue;
      /** Compare-and-set: apply only if the key's version is this (0: the key must be absent). */
      readonly ifVersion?: number;
      /**
       * Attach the key to this lease (it must exist): the key is deleted when the lease ends.
       * Absent: a key that had a lease is detached from it (as etcd does).
       */
      readonly lease?: number;
      /** Sugar for a lease of the key's own: grant one of this TTL (id = the entry's index) and attach. */
      readonly ttlMs?: number;
      readonly requestId?: RequestId;
    }
  | {
      readonly op: 'delete';
      readonly key: string;
      readonly ifVersion?: number;
      readonly requestId?: RequestId;
    };

export type KvResult =
  | { readonly ok: true; readonly op: 'put'; readonly key: string; readonly version: number; readonly lease?: number }
  | {
      readonly ok: true;
      readonly op: 'delete';
      readonly key: string;
      readonly version: number;
      readonly deleted: boolean;
    }
  | {
      readonly ok: false;
      readonly error: 'version_conflict';
      readonly key: string;
      readonly expectedVersion: number;
      /** 0 when the key does not exist. */
      readonly actualVersion: number;
    }
  | {
      /** A put that names a lease that does not exist (never granted, revoked or expired). */
      readonly ok: false;
      readonly error: 'lease_not_found';
      readonly key: string;
      readonly lease: number;
    }
  | {
      /** A request whose seq is below the client's last applied seq: its reply is gone. */
      readonly ok: false;
      readonly error: 'stale_request';
      readonly key: string;
      readonly lastSeq: number;
    };

/** The stale-request answer of a transaction: it names no key. */
export interface StaleTxn {
  readonly ok: false;
  readonly error: 'stale_request';
  readonly key: '';
  readonly lastSeq: number;
}

export type CompareOp = '=' | '!=' | '<' | '>';

/**
 * One condition of a transaction, on the key's state just before the transaction applies.
 * As in etcd: an absent key has version 0, and a value comparison on an absent key is
 * false whatever the operator; values compare by the bytes of their UTF-8 (or raw) form.
 */
export type TxnCompare =
  | { readonly key: string; readonly target: 'version'; readonly op: CompareOp; readonly version: number }
  | { readonly key: string; readonly target: 'value'; readonly op: CompareOp; readonly value: KvValue }
  | { readonly key: string; readonly target: 'exists'; readonly op: '=' | '!='; readonly exists: boolean };

/** One operation of a transaction branch; each sees the effects of the ones before it. */
export type TxnOp =
  | { readonly op: 'put'; readonly key: string; readonly value: KvValue }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'get'; readonly key: string }
  /** `reverse`: descending key order (absent: ascending, as every entry before it existed). */
  | { readonly op: 'list'; readonly prefix: string; readonly limit: number; readonly reverse?: boolean };

/**
 * An atomic conditional multi-key operation: if every compare holds, `success` runs, else
 * `failure`; either way in one log entry, so no other command is applied in between and
 * every write it makes has the same version (the entry's index).
 */
export interface TxnCommand {
  readonly op: 'txn';
  readonly compare: readonly TxnCompare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
  readonly requestId?: RequestId;
}

export type TxnOpResult =
  | { readonly op: 'put'; readonly key: string; readonly version: number }
  | { readonly op: 'delete'; readonly key: string; readonly deleted: boolean }
  | { readonly op: 'get'; readonly key: string; readonly record: { readonly value: KvValue; readonly version: number } | null }
  | { readonly op: 'list'; readonly prefix: string; readonly items: readonly KvItem[]; readonly more: boolean };

export type TxnResult =
  | {
      readonly ok: true;
      readonly op: 'txn';
      /** Whether every compare held (success ran) or not (failure ran). */
      readonly succeeded: boolean;
      /** The transaction's log index: the version of every write it made. */
      readonly version: number;
      readonly results: readonly TxnOpResult[];
    }
  | StaleTxn;

/**
 * Leases: granted through the log (the id is the grant's index, unique cluster-wide) and
 * ended through the log, by a client's revoke or by the leader once the lease's TTL passed
 * without a keep-alive (node/leases.ts decides that; keep-alives never enter the log).
 * Ending a lease deletes every key attached to it, at the revoke's version.
 */
export type LeaseCommand =
  | { readonly op: 'lease-grant'; readonly ttlMs: number; readonly requestId?: RequestId }
  | { readonly op: 'lease-revoke'; readonly id: number; readonly reason: 'revoked' | 'expired'; readonly requestId?: RequestId };

export type LeaseResult =
  | { readonly ok: true; readonly op: 'lease-grant'; readonly id: number; readonly ttlMs: number; readonly version: number }
  | { readonly ok: true; readonly op: 'lease-revoke'; readonly id: number; readonly found: boolean; readonly keysDeleted: number; readonly version: number };

/**
 * Compaction of the history of changes (history.ts): drops the recorded changes below
 * `beforeVersion` (a bounded number per entry; `compactedBelow` says how far it got).
 */
export interface CompactCommand {
  readonly op: 'compact';
  readonly beforeVersion: number;
  readonly requestId?: RequestId;
}

export interface CompactResult {
  readonly ok: true;
  readonly op: 'compact';
  readonly compactedBelow: number;
  readonly removed: number;
  readonly version: number;
}

/** What a `normal` log entry carries, and what applying it answers. */
export type Command = KvCommand | TxnCommand | LeaseCommand | CompactCommand;
export type CommandResult = KvResult | TxnResult | LeaseResult | CompactResult;

/** One key's change at a version (history.ts): `value` undefined means deleted; `prev` what it held before (undefined: absent). */
export interface KeyChange {
  readonly key: string;
  readonly value: KvValue | undefined;
  readonly prev: KvRecord | undefined;
}

/** The changes one version made to client keys. */
export interface VersionChanges {
  readonly version: number;
  readonly changes: readonly KeyChange[];
}
