/**
 * The key-value operations the APIs run on this node through the leader router: their
 * shapes and the one way each becomes a KvNode call. Shared by the HTTP routes, the batch
 * route and the gRPC service, so a read or a write means the same thing in every API.
 */

import type { KvCommand, KvResult, RequestId, TxnCommand, TxnResult } from '../kv/types.js';
import type { KvNode, CompactOutcome, LeaseGrant, LeaseInfo, LeaseRevoke, ListOptions, ListResult, ModeChange, ReadOptions } from '../node/types.js';
import type { KvRecord, KvValue } from '../storage/types.js';
import type { ReadConsistency } from '../wire/types.js';
import { LazyForwardSpec } from './forward.js';
import { jsonValue } from '../wire/values.js';
import type { ForwardSpec, LocalExec } from './forward.js';

export interface ReadOp {
  readonly key: string;
  readonly consistency: ReadConsistency;
  readonly minVersion: number | undefined;
  /** Read the key as it was at this version. */
  readonly atVersion?: number | undefined;
}

export interface ListOp {
  readonly prefix: string;
  readonly after: string | undefined;
  readonly limit: number;
  readonly consistency: ReadConsistency;
  readonly minVersion: number | undefined;
  /** Every page of a consistent scan reads at one version. */
  readonly atVersion?: number | undefined;
  /** Descending key order, `after` being the cursor in it. */
  readonly reverse?: boolean | undefined;
}

/** How a put hangs on a lease: an existing one, or one of its own with this TTL. */
export type PutLease = { readonly lease: number } | { readonly ttlMs: number } | null;

/** A put as every API builds it: optional fields only when given (the codec omits absent ones). */
export function putCommand(key: string, value: KvValue, ifVersion: number | undefined, requestId: RequestId | null, lease: PutLease = null): KvCommand {
  return { op: 'put', key, value, ...(ifVersion === undefined ? {} : { ifVersion }), ...(lease ?? {}), ...(requestId === null ? {} : { requestId }) };
}

export function deleteCommand(key: string, ifVersion: number | undefined, requestId: RequestId | null): KvCommand {
  return { op: 'delete', key, ...(ifVersion === undefined ? {} : { ifVersion }), ...(requestId === null ? {} : { requestId }) };
}

export const writeExec: LocalExec<KvCommand, KvResult> = {
  run: (node, command, timeoutMs) => node.write(command, { timeoutMs }),
};

export const txnExec: LocalExec<TxnCommand, TxnResult> = {
  run: (node, command, timeoutMs) => node.txn(command, { timeoutMs }),
};

/** A lease grant or revoke: its subject (a TTL, a lease id) and the idempotency pair, if any. */
export interface LeaseWrite {
  readonly value: number;
  readonly requestId: RequestId | null;
}

export const leaseGrantExec: LocalExec<LeaseWrite, LeaseGrant> = {
  run: (node, w, timeoutMs) => node.leaseGrant(w.value, { timeoutMs, ...(w.requestId === null ? {} : { requestId: w.requestId }) }),
};

export const leaseRevokeExec: LocalExec<LeaseWrite, LeaseRevoke> = {
  run: (node, w, timeoutMs) => node.leaseRevoke(w.value, { timeoutMs, ...(w.requestId === null ? {} : { requestId: w.requestId }) }),
};

export const leaseKeepAliveExec: LocalExec<number, { readonly id: number; readonly ttlMs: number }> = {
  run: (node, id, timeoutMs) => node.leaseKeepAlive(id, { timeoutMs }),
};

export const leaseInfoExec: LocalExec<{ readonly id: number; readonly keysMax: number }, LeaseInfo | undefined> = {
  run: (node, q, timeoutMs) => node.leaseInfo(q.id, q.keysMax, { timeoutMs }),
};

export const modeExec: LocalExec<ModeChange, { readonly index: number }> = {
  run: (node, change, timeoutMs) => node.changeMode(change, { timeoutMs }),
};

export const compactExec: LocalExec<number | null, CompactOutcome> = {
  run: (node, beforeVersion, timeoutMs) => node.compact(beforeVersion, { timeoutMs }),
};

export const readExec: LocalExec<ReadOp, KvRecord | undefined> = {
  run: (node, op, timeoutMs) => node.read(op.key, readOptions(op.consistency, op.minVersion, timeoutMs, op.atVersion)),
};

export const listExec: LocalExec<ListOp, ListResult> = {
  run: (node, op, timeoutMs) => node.list(listOptions(op, timeoutMs)),
};

export function readOptions(consistency: ReadConsistency, minVersion: number | undefined, timeoutMs: number, atVersion?: number): ReadOptions {
  return { consistency, timeoutMs, ...(minVersion === undefined ? {} : { minVersion }), ...(atVersion === undefined ? {} : { atVersion }) };
}

export function listOptions(op: ListOp, timeoutMs: number): ListOptions {
  const base = { consistency: op.consistency, timeoutMs, prefix: op.prefix, limit: op.limit };
  const withAfter = op.after === undefined ? base : { ...base, after: op.after };
  const withAt = op.atVersion === undefined ? withAfter : { ...withAfter, atVersion: op.atVersion };
  const withOrder = op.reverse === true ? { ...withAt, reverse: true } : withAt;
  return op.minVersion === undefined ? withOrder : { ...withOrder, minVersion: op.minVersion };
}

/**
 * Keys under the prefix (after `after`), counted page by page at one version, so the count
 * is of one state. Never forwarded: `leader` is read as linearizable, which any node serves.
 */
export async function countKeys(node: KvNode, op: ListOp, pageMax: number, timeoutMs: number): Promise<{ readonly count: number; readonly version: number }> {
  let count = 0;
  let pageOp: ListOp = { ...op, limit: pageMax, consistency: op.consistency === 'leader' ? 'linearizable' : op.consistency };
  for (;;) {
    // The first page fixes the version (linearizable when asked); the rest read at it, here.
    const r = await node.list(listOptions(pageOp, timeoutMs));
    count += r.items.length;
    const last = r.items[r.items.length - 1];
    if (r.items.length < pageOp.limit || last === undefined) return { count, version: r.version };
    pageOp = { ...pageOp, after: last.key, atVersion: r.version, consistency: 'local', minVersion: undefined };
  }
}

export function keyPath(key: string): string {
  return `/kv/${encodeURIComponent(key)}`;
}

export function readUrl(path: string, consistency: ReadConsistency, minVersion: number | undefined, query: readonly string[], atVersion?: number): string {
  const all = [...query, `consistency=${consistency}`];
  if (minVersion !== undefined) all.push(`minVersion=${minVersion}`);
  if (atVersion !== undefined) all.push(`atVersion=${atVersion}`);
  return `${path}?${all.join('&')}`;
}

/** The single-key HTTP request a write stands for, as the router forwards it to the leader. */
/** `from`: whether the request was forwarded to this node, and its sender's bearer token (passed on). */
export interface SpecSource {
  readonly forwardedIn: boolean;
  readonly token: string | null;
}

export function writeSpec(command: KvCommand, deadlineMs: number, from: SpecSource): ForwardSpec {
  const requestId = command.requestId ?? null;
  const { ifVersion } = command;
  if (command.op === 'delete') {
    const url = ifVersion === undefined ? keyPath(command.key) : `${keyPath(command.key)}?ifVersion=${ifVersion}`;
    return new LazyForwardSpec({ method: 'DELETE', url, requestId, isWrite: true, servedByFollower: false, deadlineMs, makeBody: null, write: command, ...from });
  }
  const lease = command.lease === undefined ? {} : { lease: command.lease };
  const ttl = command.ttlMs === undefined ? {} : { ttlMs: command.ttlMs };
  const body = (): string => JSON.stringify({ ...jsonValue(command.value), ...(ifVersion === undefined ? {} : { ifVersion }), ...lease, ...ttl });
  return new LazyForwardSpec({ method: 'PUT', url: keyPath(command.key), requestId, isWrite: true, servedByFollower: false, deadlineMs, makeBody: body, write: command, ...from });
}

/** The single-key HTTP request a read stands for; a linearizable one is served here, not forwarded. */
export function readSpec(op: ReadOp, deadlineMs: number, from: SpecSource): ForwardSpec {
  const url = readUrl(keyPath(op.key), op.consistency, op.minVersion, [], op.atVersion);
  return new LazyForwardSpec({ method: 'GET', url, requestId: null, isWrite: false, servedByFollower: op.consistency === 'linearizable', deadlineMs, makeBody: null, read: op, ...from });
}

/** The GET /kv request a list stands for; a linearizable one is served here, not forwarded. */
export function listSpec(op: ListOp, deadlineMs: number, from: SpecSource): ForwardSpec {
  const query: string[] = [`limit=${op.limit}`];
  if (op.prefix.length > 0) query.push(`prefix=${encodeURIComponent(op.prefix)}`);
  if (op.after !== undefined) query.push(`after=${encodeURIComponent(op.after)}`);
  if (op.reverse === true) query.push('reverse=true');
  const url = readUrl('/kv', op.consistency, op.minVersion, query, op.atVersion);
  return new LazyForwardSpec({ method: 'GET', url, requestId: null, isWrite: false, servedByFollower: op.consistency === 'linearizable', deadlineMs, makeBody: null, ...from });
}
