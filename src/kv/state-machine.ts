/**
 * The replicated key-value state machine: applies committed log entries to a KvBackend
 * and answers reads from it. Owns the meaning of a command (versions, compare-and-set,
 * delete) and the client dedup table (a retried request is answered from its cached
 * reply, never applied twice).
 *
 * Must never: depend on anything but the entries and the backend's state (no clock, no
 * randomness, no local configuration such as size limits: every replica applying the
 * same entries must reach the same state and the same replies), skip or reorder an
 * entry, or apply part of a batch (one backend.write per batch: data, dedup table and
 * applied index commit together).
 *
 * Transactions (txn.ts) are one command like any other: one entry, one dedup record, all
 * their writes at the entry's index.
 *
 * Versions: a write's version is the index of the entry that carries it, so versions are
 * unique cluster-wide and increase. A delete of a missing key still consumes its index
 * (returns deleted: false with that version), which keeps "version = index" uniform.
 *
 * Dedup: a command with a requestId is checked against the client's record first. Same
 * seq: the cached reply, nothing applied. Lower seq: stale_request (its reply is gone).
 * Higher seq: applied, and its reply (conflicts included, so a retried CAS answers the
 * same) replaces the record. The table holds at most `dedupClientsMax` clients; beyond
 * that the client with the oldest record (lowest index) is evicted, which every replica
 * does identically. A client evicted and then retrying an old request gets it applied
 * again; the bound must be large enough that this only affects long-idle clients.
 */

import { assert, unreachable } from '../stdx/assert.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';
import type { Entry } from '../core/types.js';
import type { KvBackend, KvItem, KvRecord, KvWriter } from '../storage/types.js';
import { decodeCommandForApply, decodeResult, encodeResult, putTextOf } from './codec.js';
import { textRecordOf } from '../storage/record-codec.js';
import { afterReserved, attachKey, attachmentsIn, detachKey, getLease, grantLease, leaseKeys, listLeases, reservedPrefix, revokeLease, type LeaseAttachments, type LeaseRecord } from './leases.js';
import { addReservedCount, type CapturedChange, ChangeCapture, clientKeyCount, compactHistory, compactedBelow, listAt, readAt, readChanges, readStoredChanges, recordChanges, type HistoryPlanted, type ReadAt, type VersionChanges } from './history.js';
import { KeyIndex } from './key-index.js';
import { executeTxn } from './txn.js';
import { inRowResolved, inRowResolvedItems } from './value-rows.js';
import type { Command, CommandResult, KvCommand, KvResult } from './types.js';

export interface KvStateMachineOptions {
  /** Most client sessions kept in the dedup table; the oldest is evicted past it. */
  readonly dedupClientsMax: number;
}

export interface KvStateMachine {
  /**
   * Applies committed entries, in order, in one backend transaction, and returns the
   * result of each `normal` entry keyed by its index. `noop` and `config` entries only
   * advance the applied index. Entries at or below `appliedIndex()` are skipped (they are
   * re-delivered after a restart); the rest must continue it without a gap, else this
   * throws (a bug in the caller). Throws on an entry that does not decode (corruption).
   * Effects are visible to reads on return, durable when the backend says so.
   */
  apply(entries: readonly Entry[]): Map<number, CommandResult>;
  get(key: string): KvRecord | undefined;
  /**
   * Keys starting with `prefix`, strictly after `after`, in UTF-8 byte order, at most `limit`;
   * with `reverse` in descending order, `after` being the cursor in that order (the keys before it).
   */
  range(prefix: string, after: string | undefined, limit: number, reverse?: boolean): KvItem[];
  appliedIndex(): number;
  /** Test-only: bugs planted in the history's reads (the simulator must catch them); set at any time. */
  readonly planted: HistoryPlanted;
  keyCount(): number;
  /** Lease `id` with its TTL, or undefined when it does not exist (never granted, or ended). */
  lease(id: number): LeaseRecord | undefined;
  /** Every lease, in id order. */
  leases(): LeaseRecord[];
  /** The keys attached to lease `id`, in key order, at most `limit`. */
  leaseKeys(id: number, limit: number): string[];
  /** The recorded changes from `fromVersion` on, at most `versionsMax` versions (history.ts). */
  changes(fromVersion: number, versionsMax: number): VersionChanges[];
  /** Versions below this are no longer in the history. */
  compactedBelow(): number;
  /** `key` as it was at `version` (at most the applied index; history.ts). */
  getAt(key: string, version: number): ReadAt<KvRecord | undefined>;
  /** A page of keys under `prefix` as they were at `version` (in `range`'s order). */
  rangeAt(prefix: string, after: string | undefined, limit: number, version: number, reverse?: boolean): ReadAt<KvItem[]>;
}

export function createKvStateMachine(backend: KvBackend, options: KvStateMachineOptions): KvStateMachine {
  const dedupClientsMax = options.dedupClientsMax;
  checkPositiveSafeInt(dedupClientsMax, 'dedupClientsMax');

  // Built now (start-up reads the history kept once), then kept up to date by every apply.
  const keyIndex = new KeyIndex(readStoredChanges);
  const planted: HistoryPlanted = {};
  keyIndex.sync(backend);
  // Read afresh from the stored state whenever it was replaced (a snapshot installed).
  const attachments: LeaseAttachments = { maybe: attachmentsIn(backend) };
  let attachmentsReadAtInstall = backend.installs();

  const apply = (entries: readonly Entry[]): Map<number, CommandResult> => {
    const results = new Map<number, CommandResult>();
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) return results;

    for (let i = 0; i < entries.length; i++) {
      const index = entries[i]?.index;
      assert(
        Number.isSafeInteger(first.index) && first.index >= 1 && index === first.index + i,
        () => `Cannot apply entries: not contiguous, entry ${i} has index ${String(index)}, expected ${first.index + i}`,
      );
    }
    const appliedIndex = backend.appliedIndex();
    if (last.index <= appliedIndex) return results;
    assert(
      first.index <= appliedIndex + 1,
      () => `Cannot apply entries from ${first.index}: applied index is ${appliedIndex}, entries ${appliedIndex + 1}..${first.index - 1} are missing`,
    );

    // Decode everything before the transaction opens: a corrupt entry then throws with
    // nothing written, instead of in the middle of a batch.
    const pending: { readonly index: number; readonly command: Command | null }[] = [];
    for (const entry of entries) {
      if (entry.index <= appliedIndex) continue;
      switch (entry.kind) {
        case 'normal':
          pending.push({ index: entry.index, command: decodeEntry(entry) });
          break;
        case 'noop':
        case 'config':
          break;
        default:
          unreachable(entry.kind, 'entry kind');
      }
    }

    const added: [string, number][] = [];
    const removed: [string, number][] = [];
    if (attachmentsReadAtInstall !== backend.installs()) {
      attachments.maybe = attachmentsIn(backend);
      attachmentsReadAtInstall = backend.installs();
    }
    backend.write(last.index, (tx) => {
      let reservedDelta = 0;
      const batch: { version: number; changes: readonly CapturedChange[] }[] = [];
      for (const { index, command } of pending) {
        if (command === null) continue;
        const capture = new ChangeCapture(tx, planted);
        results.set(index, applyCommand(capture, command, index, removed));
        if (capture.changes.length > 0) batch.push({ version: index, changes: capture.changes });
        for (const c of capture.changes) added.push([c.key, index]);
        reservedDelta += capture.reservedDelta;
      }
      reservedDelta += recordChanges(tx, batch);
      addReservedCount(tx, reservedDelta, last.index);
    });
    keyIndex.applied(appliedIndex, last.index, added, removed);
    return results;
  };

  const applyCommand = (tx: KvWriter, command: Command, index: number, removed: [string, number][]): CommandResult => {
    const requestId = command.requestId;
    if (requestId === undefined) return execute(tx, command, index, removed, planted, attachments);

    const previous = tx.getDedup(requestId.clientId);
    if (previous !== undefined && requestId.seq === previous.seq) return decodeResult(previous.reply);
    if (previous !== undefined && requestId.seq < previous.seq) {
      return { ok: false, error: 'stale_request', key: 'key' in command ? command.key : '', lastSeq: previous.seq };
    }

    const result = execute(tx, command, index, removed, planted, attachments);
    tx.putDedup({ clientId: requestId.clientId, seq: requestId.seq, index, reply: encodeResult(result) });
    const excess = tx.dedupCount() - dedupClientsMax;
    if (excess > 0) {
      // The record just written has the highest index of all, so it is never evicted.
      for (const record of tx.oldestDedup(excess)) tx.deleteDedup(record.clientId);
    }
    return result;
  };

  return {
    apply,
    get: (key) => inRowResolved(backend, key, backend.get(key)),
    range: (prefix, after, limit, reverse = false) => inRowResolvedItems(backend, reverse ? clientItems(backend.range(prefix, after, limit, true)) : backend.range(prefix, clientAfter(prefix, after), limit)),
    appliedIndex: () => backend.appliedIndex(),
    planted,
    keyCount: () => clientKeyCount(backend),
    lease: (id) => getLease(backend, id),
    leases: () => {
      const all: LeaseRecord[] = [];
      for (let page = listLeases(backend, undefined, 1024); page.length > 0; page = listLeases(backend, page[page.length - 1]?.id, 1024)) all.push(...page);
      return all;
    },
    leaseKeys: (id, limit) => leaseKeys(backend, id, limit),
    changes: (fromVersion, versionsMax) => readChanges(backend, keyIndex, fromVersion, versionsMax, planted),
    compactedBelow: () => compactedBelow(backend),
    getAt: (key, version) => readAt(backend, keyIndex, key, version),
    rangeAt: (prefix, after, limit, version, reverse = false) => listAt(backend, keyIndex, { prefix, after, limit, reverse }, version),
  };
}

function decodeEntry(entry: Entry): Command {
  try {
    return decodeCommandForApply(entry.data);
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`Cannot apply entry ${entry.index} (term ${entry.term}): ${message}`, { cause });
  }
}

/** Applies one command with no dedup concerns; `index` is the version it writes. */
function execute(tx: KvWriter, command: Command, index: number, removed: [string, number][], planted: HistoryPlanted, attachments: LeaseAttachments): CommandResult {
  switch (command.op) {
    case 'txn':
      return executeTxn(tx, command, index, attachments);
    case 'lease-grant':
      grantLease(tx, index, command.ttlMs, index);
      return { ok: true, op: 'lease-grant', id: index, ttlMs: command.ttlMs, version: index };
    case 'lease-revoke':
      return { ok: true, op: 'lease-revoke', id: command.id, ...revokeLease(tx, command.id), version: index };
    case 'compact':
      return { ok: true, op: 'compact', ...compactHistory(tx, command.beforeVersion, index, removed, planted), version: index };
    default:
      return executeKeyCommand(tx, command, index, attachments);
  }
}

/**
 * Where a client's listing starts: past the reserved keys (leases.ts) when it lists from the
 * very start, which is the only way a client range can reach them (client keys and prefixes
 * never contain NUL).
 */
export function clientAfter(prefix: string, after: string | undefined): string | undefined {
  if (prefix.length > 0 || (after !== undefined && !after.startsWith(reservedPrefix))) return after;
  return afterReserved;
}

/**
 * A reverse listing's client keys: the reserved ones sort below every client key, so they
 * can only end it (client keys and prefixes never contain NUL).
 */
function clientItems(items: KvItem[]): KvItem[] {
  const reserved = items.findIndex((i) => i.key.startsWith(reservedPrefix));
  return reserved < 0 ? items : items.slice(0, reserved);
}

function executeKeyCommand(tx: KvWriter, command: KvCommand, index: number, attachments: LeaseAttachments): KvResult {
  const current = tx.get(command.key);
  const actualVersion = current?.version ?? 0;
  if (command.ifVersion !== undefined && command.ifVersion !== actualVersion) {
    return {
      ok: false,
      error: 'version_conflict',
      key: command.key,
      expectedVersion: command.ifVersion,
      actualVersion,
    };
  }
  switch (command.op) {
    case 'put': {
      const lease = command.ttlMs !== undefined ? index : command.lease;
      if (command.lease !== undefined && getLease(tx, command.lease) === undefined) {
        return { ok: false, error: 'lease_not_found', key: command.key, lease: command.lease };
      }
      if (command.ttlMs !== undefined) grantLease(tx, index, command.ttlMs, index);
      // A long text value goes from the entry's bytes into the record, never a string.
      const text = putTextOf(command);
      tx.put(command.key, (text !== undefined ? textRecordOf(command.key, text, index) : null) ?? { value: command.value, version: index });
      if (lease === undefined) {
        detachKey(tx, command.key, attachments);
        return { ok: true, op: 'put', key: command.key, version: index };
      }
      attachKey(tx, command.key, lease, index, attachments);
      return { ok: true, op: 'put', key: command.key, version: index, lease };
    }
    case 'delete':
      if (current !== undefined) tx.delete(command.key);
      detachKey(tx, command.key, attachments);
      return { ok: true, op: 'delete', key: command.key, version: index, deleted: current !== undefined };
    default:
      return unreachable(command, 'command op');
  }
}
