/**
 * The replicated half of leases: which leases exist, their TTL, and which keys hang on each.
 * Kept as records in the state machine's own key space under keys that start with NUL,
 * which no client key may contain (limits.ts reserves it), so snapshots, backups and replica
 * checks carry leases with no format of their own:
 *   \0lease/{id}        -> "{ttlMs}"          a lease that exists
 *   \0lk/{id}/{key}     -> ""                 key is attached to lease id (to delete them all)
 *   \0kl/{key}          -> "{id}"             the lease key is attached to (to detach it)
 * (ids are decimal, zero-padded to 16 digits so a prefix scan is one lease's keys only).
 *
 * Must never: read a clock or decide an expiry (the leader's node/leases.ts does, and commits
 * it as a revoke), or let a client key into the reserved space.
 */

import type { KvReader, KvWriter } from '../storage/types.js';

/** Every reserved key starts with this; client keys never do (limits.ts refuses NUL). */
export const reservedPrefix = '\u0000';
/** A key after every reserved one: client listings from the start begin here. */
export const afterReserved = '\u0000\u{10ffff}';

const leasePrefix = '\u0000lease/';
const keyLeasePrefix = '\u0000kl/';

function idText(id: number): string {
  return String(id).padStart(16, '0');
}

const leaseKey = (id: number): string => leasePrefix + idText(id);
const leaseKeysPrefix = (id: number): string => `\u0000lk/${idText(id)}/`;
const keyLeaseKey = (key: string): string => keyLeasePrefix + key;

export interface LeaseRecord {
  readonly id: number;
  readonly ttlMs: number;
}

export function isReservedKey(key: string): boolean {
  return key.startsWith(reservedPrefix);
}

export function getLease(reader: KvReader, id: number): LeaseRecord | undefined {
  const record = reader.get(leaseKey(id));
  return record === undefined ? undefined : { id, ttlMs: Number(record.value) };
}

/** Every lease, in id order, at most `limit` after `afterId`. */
export function listLeases(reader: KvReader, afterId: number | undefined, limit: number): LeaseRecord[] {
  const items = reader.range(leasePrefix, afterId === undefined ? undefined : leaseKey(afterId), limit);
  return items.map((item) => ({ id: Number(item.key.slice(leasePrefix.length)), ttlMs: Number(item.value) }));
}

/** The keys attached to lease `id`, in key order, at most `limit`. */
export function leaseKeys(reader: KvReader, id: number, limit: number): string[] {
  const prefix = leaseKeysPrefix(id);
  return reader.range(prefix, undefined, limit).map((item) => item.key.slice(prefix.length));
}

export function grantLease(tx: KvWriter, id: number, ttlMs: number, version: number): void {
  tx.put(leaseKey(id), { value: String(ttlMs), version });
}

/**
 * Whether a key may hang on a lease in the state being written: when none can, a put or a
 * delete does not look its key's attachment up. That lookup, of a reserved key that is
 * absent unless leases are in use, was ≈ 8 % of a put's apply and took a place among the
 * kept records (storage/recent-records.ts) for every key written. Conservative: `maybe` is
 * set by the first attachment and only cleared when the state is read afresh
 * (`attachmentsIn`, after a snapshot install or at start).
 */
export interface LeaseAttachments {
  maybe: boolean;
}

/** Whether the stored state holds any attachment of a key to a lease. */
export function attachmentsIn(reader: KvReader): boolean {
  return reader.range(keyLeasePrefix, undefined, 1).length > 0;
}

/** Attaches `key` to lease `id` (which must exist), detaching it from any other lease first. */
export function attachKey(tx: KvWriter, key: string, id: number, version: number, attachments: LeaseAttachments): void {
  detachKey(tx, key, attachments);
  attachments.maybe = true;
  tx.put(keyLeaseKey(key), { value: String(id), version });
  tx.put(leaseKeysPrefix(id) + key, { value: '', version });
}

/** Forgets which lease `key` hangs on, if any (a put without a lease, or a delete). */
export function detachKey(tx: KvWriter, key: string, attachments: LeaseAttachments): void {
  if (!attachments.maybe) return;
  const attached = tx.get(keyLeaseKey(key));
  if (attached === undefined) return;
  tx.delete(keyLeaseKey(key));
  tx.delete(leaseKeysPrefix(Number(attached.value)) + key);
}

/**
 * Ends lease `id`: deletes every key attached to it, its attachments and itself. Returns
 * whether it existed and how many client keys were deleted. The work is proportional to
 * the lease's keys; a lease holds as many keys as clients attached (no bound here: every
 * replica must end it the same way).
 */
export function revokeLease(tx: KvWriter, id: number): { readonly found: boolean; readonly keysDeleted: number } {
  if (tx.get(leaseKey(id)) === undefined) return { found: false, keysDeleted: 0 };
  const prefix = leaseKeysPrefix(id);
  let keysDeleted = 0;
  for (;;) {
    // Deleting as we go: each page starts at the front again.
    const page = tx.range(prefix, undefined, 256);
    if (page.length === 0) break;
    for (const item of page) {
      const key = item.key.slice(prefix.length);
      tx.delete(item.key);
      tx.delete(keyLeaseKey(key));
      if (tx.get(key) !== undefined) {
        tx.delete(key);
        keysDeleted++;
      }
    }
  }
  tx.delete(leaseKey(id));
  return { found: true, keysDeleted };
}
