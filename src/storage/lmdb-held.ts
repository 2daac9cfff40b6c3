/**
 * The LMDB storage's held-back kv writes (lmdb.ts explains why kv writes are held back):
 * what one group holds until it is queued. Data only; lmdb.ts decides when a group starts,
 * grows and is queued.
 */

import type { KvSlot } from './lmdb-slot.js';

export interface HeldChange {
  readonly keyBytes: Buffer;
  readonly value: Buffer | null;
}

/**
 * Kv writes held back, merged key by key (the newest change wins), to be queued as one
 * atomic batch. `tag` marks the overlay entries the group made (negative, so never an LMDB
 * write's seq): they leave the overlay when the group's write commits, unless a newer write
 * replaced them.
 */
export class DeferredKvWrites {
  /** Key -> its UTF-8 bytes and encoded record (null: delete). */
  readonly puts = new Map<string, HeldChange>();
  /** Client id -> its UTF-8 bytes and encoded dedup record (null: delete). */
  readonly dedupPuts = new Map<string, HeldChange>();
  appliedIndex = 0;
  writes = 0;
  bytes = 0;
  timer: NodeJS.Timeout | null = null;

  constructor(
    readonly slot: KvSlot,
    readonly tag: number,
  ) {}
}
