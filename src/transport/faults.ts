/**
 * A fault-injecting wrapper around any PeerTransport: extra delay, random loss and
 * one-way partitions, all switchable at run time (the admin route and the experiment
 * runner flip them live). It owns the rules, one queue of delayed messages ordered by due
 * time with a single timer, and the counts of what it dropped. It must never change what
 * the inner transport does when no rule applies, hold more than `delayedMessagesMax`
 * messages per peer, or leave its timer running after close().
 *
 * Fault drops look like network loss to the caller: send() still returns true. It
 * returns false only when the inner transport refuses, or when the delay queue for that
 * peer is full (back-pressure, as from a full socket queue). Messages with different
 * delays may overtake each other, as packets on a real network do; equal delays keep
 * their order. A partition is checked again when a delayed message falls due, so nothing
 * crosses a partition after it is set.
 */

import type { NodeId } from '../core/types.js';
import { createPrng } from '../stdx/prng.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';
import type { FaultRules, PeerLinkState, PeerTransport } from './types.js';

export interface FaultOptions<M = unknown> {
  /** Uniform source in [0, 1) for delays and drops. Default: a PRNG with a fixed seed. */
  readonly random?: () => number;
  /** Delayed messages held per destination peer; beyond it send() returns false. Default 10000. */
  readonly delayedMessagesMax?: number;
  /**
   * Which messages the delay applies to (default: all). The seeds' experiments delay only
   * leader-to-follower replication, not the acknowledgements coming back.
   */
  readonly delays?: (message: M) => boolean;
}

export type FaultyTransport<M> = PeerTransport<M> & {
  /** Changes the given fields; the others keep their values. Throws RangeError on invalid rules. */
  setRules(rules: Partial<FaultRules>): void;
  /** The rules in force now (a copy). */
  rules(): FaultRules;
};

export const noFaults: FaultRules = Object.freeze({
  delayMsMin: 0,
  delayMsMax: 0,
  dropRate: 0,
  blockedTo: Object.freeze([]),
  blockedFrom: Object.freeze([]),
});

const delayedMessagesMaxDefault = 10_000;
const defaultSeed = 0x0fa17;

export function validateFaultRules(rules: FaultRules): void {
  const { delayMsMin, delayMsMax, dropRate } = rules;
  if (!Number.isFinite(delayMsMin) || !Number.isFinite(delayMsMax) || delayMsMin < 0 || delayMsMax < delayMsMin) {
    throw new RangeError(`delays must satisfy 0 <= delayMsMin <= delayMsMax, got [${delayMsMin}, ${delayMsMax}]`);
  }
  if (!(dropRate >= 0 && dropRate <= 1)) throw new RangeError(`dropRate must be in [0, 1], got ${dropRate}`);
  for (const [name, ids] of [['blockedTo', rules.blockedTo], ['blockedFrom', rules.blockedFrom]] as const) {
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
      throw new RangeError(`${name} must be an array of node ids`);
    }
  }
}

interface Delayed<M> {
  readonly dueMs: number;
  /** Send order, so equal due times keep their order. */
  readonly seq: number;
  readonly to: NodeId;
  readonly message: M;
}

export function withFaults<M>(inner: PeerTransport<M>, rules: FaultRules, options: FaultOptions<M> = {}): FaultyTransport<M> {
  const random = options.random ?? createPrng(defaultSeed).nextFloat;
  const delayedMessagesMax = options.delayedMessagesMax ?? delayedMessagesMaxDefault;
  checkPositiveSafeInt(delayedMessagesMax, 'delayedMessagesMax');
  let current = freezeRules(rules);
  let blockedTo = new Set(current.blockedTo);
  let blockedFrom = new Set(current.blockedFrom);
  const heap = new DelayHeap<Delayed<M>>();
  const delayedByPeer = new Map<NodeId, number>();
  const dropped = new Map<NodeId, number>();
  let timer: NodeJS.Timeout | null = null;
  let timerDueMs = Infinity;
  let seq = 0;
  let closed = false;
  let handler: ((from: NodeId, message: M, fromMemberId: string | null) => void) | null = null;

  const countDrop = (peerId: NodeId): void => {
    dropped.set(peerId, (dropped.get(peerId) ?? 0) + 1);
  };

  const armTimer = (): void => {
    const next = heap.peek();
    if (next === undefined) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      timerDueMs = Infinity;
      return;
    }
    if (timer !== null && timerDueMs <= next.dueMs) return;
    if (timer !== null) clearTimeout(timer);
    timerDueMs = next.dueMs;
    timer = setTimeout(fire, Math.max(0, next.dueMs - performance.now()));
  };

  const fire = (): void => {
    timer = null;
    timerDueMs = Infinity;
    // Timers may fire up to a millisecond early relative to performance.now().
    const nowMs = performance.now() + 1;
    for (let next = heap.peek(); next !== undefined && next.dueMs <= nowMs; next = heap.peek()) {
      heap.pop();
      delayedByPeer.set(next.to, (delayedByPeer.get(next.to) ?? 1) - 1);
      if (blockedTo.has(next.to)) countDrop(next.to);
      else inner.send(next.to, next.message);
    }
    if (!closed) armTimer();
  };

  inner.onMessage((from, message, fromMemberId) => {
    if (blockedFrom.has(from)) {
      countDrop(from);
      return;
    }
    handler?.(from, message, fromMemberId);
  });

  return {
    send(to, message) {
      if (closed) return false;
      if (blockedTo.has(to) || (current.dropRate > 0 && random() < current.dropRate)) {
        countDrop(to);
        return true;
      }
      if (current.delayMsMax <= 0 || (options.delays !== undefined && !options.delays(message))) return inner.send(to, message);
      const waiting = delayedByPeer.get(to) ?? 0;
      if (waiting >= delayedMessagesMax) {
        countDrop(to);
        return false;
      }
      const delayMs = current.delayMsMin + random() * (current.delayMsMax - current.delayMsMin);
      delayedByPeer.set(to, waiting + 1);
      heap.push({ dueMs: performance.now() + delayMs, seq: seq++, to, message });
      armTimer();
      return true;
    },
    onMessage(h) {
      handler = h;
    },
    peerState(id): PeerLinkState {
      const state = inner.peerState(id);
      return {
        connected: state.connected,
        queuedMessages: state.queuedMessages + (delayedByPeer.get(id) ?? 0),
        queuedBytes: state.queuedBytes,
        droppedMessages: state.droppedMessages + (dropped.get(id) ?? 0),
      };
    },
    peerMeta: (id) => inner.peerMeta(id),
    close() {
      if (!closed) {
        closed = true;
        if (timer !== null) clearTimeout(timer);
        timer = null;
        heap.clear();
        delayedByPeer.clear();
      }
      return inner.close();
    },
    setRules(change) {
      const next = freezeRules({ ...current, ...change });
      validateFaultRules(next);
      current = next;
      blockedTo = new Set(current.blockedTo);
      blockedFrom = new Set(current.blockedFrom);
    },
    rules: () => current,
  };
}

function freezeRules(rules: FaultRules): FaultRules {
  const copy: FaultRules = {
    delayMsMin: rules.delayMsMin,
    delayMsMax: rules.delayMsMax,
    dropRate: rules.dropRate,
    blockedTo: Object.freeze([...rules.blockedTo]),
    blockedFrom: Object.freeze([...rules.blockedFrom]),
  };
  validateFaultRules(copy);
  return Object.freeze(copy);
}

/** A binary min-heap on (dueMs, seq). */
class DelayHeap<T extends { readonly dueMs: number; readonly seq: number }> {
  private items: T[] = [];

  peek(): T | undefined {
    return this.items[0];
  }

  clear(): void {
    this.items = [];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, items[parent] as T)) break;
      items[i] = items[parent] as T;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && before(items[right] as T, items[left] as T) ? right : left;
      if (!before(items[child] as T, last)) break;
      items[i] = items[child] as T;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function before(a: { readonly dueMs: number; readonly seq: number }, b: { readonly dueMs: number; readonly seq: number }): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq);
}
