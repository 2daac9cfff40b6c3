/**
 * Locks and leader election on leases, transactions and watches, as in etcd's concurrency
 * package. Both are a queue of keys under a prefix, one per contender, each attached to
 * its contender's lease: `<prefix><lease id>`. The contender whose key was created first
 * (the lowest creation version) holds the lock, or leads; the others watch the key just
 * before theirs and look again when it goes (released, resigned, or its lease expired).
 *
 * Fencing. Holding a lock is a belief that can be wrong (a paused process whose lease
 * expired meanwhile). Writes that must only happen under the lock go through
 * `lock.fenced(txn)`: a transaction whose compares include "my lock key still exists at its
 * version", so a holder that lost the lock cannot write, whatever it believes.
 *
 * Must never: report a lock acquired while an earlier contender's key exists, leave a
 * contender's key behind after a failed acquire, or wait past the deadline.
 */

import type { TxnInput as TxnBody, TxnResult as TxnResponse } from './txn-values.js';
import { DeadlineExceededError, QuorumKvError } from './errors.js';
import type { Lease } from './lease.js';
import type { Watch, WatchOptions } from './watch.js';
import type { Entry, ListOptions, ListPage, PutOptions, PutResult } from './types.js';
import { valueText } from './values.js';

/** What the queue needs from the client. */
export interface QueueCalls {
  lease(ttlMs: number): Promise<Lease>;
  put(key: string, value: string, options: PutOptions): Promise<PutResult>;
  delete(key: string, options: { readonly ifVersion?: number }): Promise<unknown>;
  list(options: ListOptions): Promise<ListPage>;
  txn(body: TxnBody): Promise<TxnResponse>;
  watch(prefix: string, options: WatchOptions): Watch;
}

export interface LockOptions {
  /** TTL of the lease the lock grants (default 10 s): how long a crashed holder blocks the others. */
  readonly ttlMs?: number;
  /** Hold the lock on this lease instead (it is not revoked on unlock). */
  readonly lease?: Lease;
  /** How long to wait for the lock (default 30 s). */
  readonly deadlineMs?: number;
}

/** The lock (or leadership) was lost: its key is gone (the lease expired or was revoked). */
export class LockLostError extends QuorumKvError {
  override name = 'LockLostError';
}

/** A contender's place in a queue: its key, the version that created it, and its lease. */
interface Place {
  readonly key: string;
  readonly version: number;
  readonly lease: Lease;
  readonly ownLease: boolean;
}

/** A held lock. `version` is its fencing token: it grows with every acquisition. */
export class Lock {
  /** @internal Use `kv.lock()`. */
  constructor(
    private readonly calls: QueueCalls,
    private readonly place: Place,
  ) {}

  get key(): string {
    return this.place.key;
  }
  get version(): number {
    return this.place.version;
  }
  get lease(): Lease {
    return this.place.lease;
  }

  /** `body` with one more compare: this lock's key still exists at its version (the transaction fails otherwise). */
  fenced(body: TxnBody): TxnBody {
    return { ...body, compare: [{ key: this.place.key, version: this.place.version }, ...(body.compare ?? [])] };
  }

  /** Releases the lock (deletes its key; revokes the lease if the lock granted it). */
  async unlock(): Promise<void> {
    await leave(this.calls, this.place);
  }
}

async function leave(calls: QueueCalls, place: Place): Promise<void> {
  await calls.delete(place.key, {});
  if (place.ownLease) await place.lease.revoke();
}

/**
 * Joins the queue under `prefix` with `value` and waits until first. On deadline or loss
 * the contender's key is removed before throwing.
 */
export async function joinAndWait(calls: QueueCalls, prefix: string, value: string, options: LockOptions): Promise<Place> {
  const deadline = performance.now() + (options.deadlineMs ?? 30_000);
  const ownLease = options.lease === undefined;
  const lease = options.lease ?? (await calls.lease(options.ttlMs ?? 10_000));
  const key = `${prefix}${String(lease.id).padStart(16, '0')}`;
  let place: Place | null = null;
  try {
    const put = await calls.put(key, value, { lease, ifVersion: 0 });
    place = { key, version: put.version, lease, ownLease };
    await waitFirst(calls, prefix, place, deadline);
    return place;
  } catch (error) {
    if (place !== null) await leave(calls, place).catch(() => undefined);
    else if (ownLease) await lease.revoke().catch(() => undefined);
    throw error;
  }
}

/** The queue's contenders in order of creation (a value's creation version is kept in elections; see Election). */
export async function contenders(calls: QueueCalls, prefix: string): Promise<{ readonly items: readonly (Entry & { readonly created: number })[]; readonly version: number }> {
  const items: (Entry & { created: number })[] = [];
  let version = 0;
  let after: string | undefined;
  for (;;) {
    const page = await calls.list({ prefix, limit: 1000, ...(after === undefined ? {} : { after }), ...(version === 0 ? {} : { atVersion: version }) });
    version ||= page.version;
    for (const e of page.items) items.push({ ...e, created: createdOf(e) });
    if (page.next === null) break;
    after = page.next;
  }
  items.sort((a, b) => a.created - b.created);
  return { items, version };
}

/**
 * A queue key's creation version: its version, unless an election's proclaim rewrote it.
 * Election values are stored as `<created>\0<value>` (created 0 until a proclaim), so the
 * place survives a proclaim whatever the value holds.
 */
function createdOf(e: Entry): number {
  const text = valueText(e.value);
  const at = text.indexOf('\u0000');
  if (at < 0) return e.version;
  const created = Number(text.slice(0, at));
  return Number.isSafeInteger(created) && created > 0 ? created : e.version;
}

async function waitFirst(calls: QueueCalls, prefix: string, place: Place, deadline: number): Promise<void> {
  for (;;) {
    const { items, version } = await contenders(calls, prefix);
    if (!items.some((e) => e.key === place.key)) throw new LockLostError('lease_not_found', `${place.key} is gone: the lease ended while waiting`, { key: place.key });
    const before = items.filter((e) => e.created < place.version);
    const last = before[before.length - 1];
    if (last === undefined) return;
    // Wait for the one just ahead to go (or anything to be deleted), then look again.
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw new DeadlineExceededError('deadline_exceeded', `not first in ${prefix} before the deadline`, { prefix, ahead: before.length });
    const watch = calls.watch(prefix, { fromVersion: version + 1 });
    const timer = setTimeout(() => watch.close(), remaining);
    try {
      for await (const event of watch) {
        if (event.changes.some((c) => c.type === 'delete')) break;
      }
    } finally {
      clearTimeout(timer);
      watch.close();
    }
  }
}

/**
 * Leader election under `prefix`: `campaign(value)` waits until this contender leads,
 * `proclaim(value)` changes what it announces, `leader()` says who leads, `observe()`
 * yields each new leader, `resign()` steps down.
 */
export class Election {
  private place: Place | null = null;
  /** The leader key's current version (a proclaim changes it; its place in the queue stays). */
  private current = 0;

  /** @internal Use `kv.elect()`. */
  constructor(
    private readonly calls: QueueCalls,
    readonly prefix: string,
    private readonly options: LockOptions,
  ) {}

  /** Waits until leading; resolves with the leadership's key and version (its fencing token). */
  async campaign(value: string, options: { readonly deadlineMs?: number } = {}): Promise<{ readonly key: string; readonly version: number }> {
    if (this.place !== null) throw new QuorumKvError('bad_request', 'this Election is campaigning or leads already; resign first');
    this.place = await joinAndWait(this.calls, this.prefix, `0\u0000${value}`, { ...this.options, ...options });
    this.current = this.place.version;
    return { key: this.place.key, version: this.place.version };
  }

  /** Announces a new value while leading; LockLostError if the leadership is gone. */
  async proclaim(value: string): Promise<void> {
    const place = this.place;
    if (place === null) throw new QuorumKvError('bad_request', 'not leading: campaign first');
    // The key keeps its place (its creation version travels in the value, see createdOf)
    // and its lease; it must still be the one this campaign put.
    try {
      this.current = (await this.calls.put(place.key, `${place.version}\u0000${value}`, { lease: place.lease, ifVersion: this.current })).version;
    } catch (error) {
      if (error instanceof QuorumKvError && (error.code === 'version_conflict' || error.code === 'lease_not_found')) {
        throw new LockLostError(error.code, `${place.key} is gone or changed: the leadership was lost`, { key: place.key });
      }
      throw error;
    }
  }

  /** The current leader's key, value and creation version, or undefined when nobody campaigns. */
  async leader(): Promise<{ readonly key: string; readonly value: string; readonly version: number } | undefined> {
    const first = (await contenders(this.calls, this.prefix)).items[0];
    return first === undefined ? undefined : { key: first.key, value: valueOf(first.value), version: first.created };
  }

  /** Yields the leader each time it changes (first the current one), until the loop is left. */
  async *observe(): AsyncGenerator<{ readonly key: string; readonly value: string; readonly version: number }> {
    let last = '';
    for (;;) {
      const { items, version } = await contenders(this.calls, this.prefix);
      const first = items[0];
      const now = first === undefined ? '' : `${first.key}\u0000${first.value}`;
      if (first !== undefined && now !== last) yield { key: first.key, value: valueOf(first.value), version: first.created };
      last = now;
      const watch = this.calls.watch(this.prefix, { fromVersion: version + 1 });
      try {
        for await (const _event of watch) break;
      } finally {
        watch.close();
      }
    }
  }

  /** Steps down (or stops campaigning): the next contender leads. */
  async resign(): Promise<void> {
    const place = this.place;
    this.place = null;
    if (place !== null) await leave(this.calls, place);
  }
}

function valueOf(value: Entry['value']): string {
  const stored = valueText(value);
  const at = stored.indexOf('\u0000');
  return at < 0 ? stored : stored.slice(at + 1);
}
