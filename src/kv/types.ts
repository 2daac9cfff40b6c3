/**
 * The replicated key-value state machine's commands and results. Commands travel inside
 * log entries (encoded by codec.ts); results go back to the client that proposed them.
 */

import type { KvValue } from '../storage/types.js';

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
      readonly requestId?: RequestId;
    }
  | {
      readonly op: 'delete';
      readonly key: string;
      readonly ifVersion?: number;
      readonly requestId?: RequestId;
    };

export type KvResult =
  | { readonly ok: true; readonly op: 'put'; readonly key: string; readonly version: number }
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
      /** A request whose seq is below the client's last applied seq: its reply is gone. */
      readonly ok: false;
      readonly error: 'stale_request';
      readonly key: string;
      readonly lastSeq: number;
    };
