/**
 * Gathers the key operations a client's callers issue in one event-loop turn into one
 * POST /batch per node ("smart batching": nothing waits for a timer). An operation waits
 * only while `inFlightMax` batches to its node are already out; the busier the client,
 * the larger the batches, and a lone caller's operation leaves within the same turn. On a
 * small machine this removes most of the per-operation HTTP cost on both sides (a request
 * parse, a route, a response write), which is what bounds throughput there.
 *
 * Reads and writes travel in separate batches, so a read never waits for a write's quorum
 * that happens to share its batch.
 *
 * Must never: hold an operation past its own deadline (a batch's budget is the smallest of
 * its operations'), let the queue grow past `queuedOpsMax` (refused as `busy`), or decide a
 * retry (client.ts does; every operation fails or succeeds on its own).
 */

import type { BatchOpBody, BatchResultItem } from '../wire/types.js';
import { AttemptError, ProtocolError } from './transport.js';

export interface BatchLimits {
  /** Most operations per batch (the server accepts up to wire batchOpsMax). */
  readonly opsMax: number;
  /** Most JSON bytes of operations per batch (well below the server's body limit). */
  readonly bytesMax: number;
  /** Batches outstanding to one node; more operations queue and go in the next. */
  readonly inFlightMax: number;
  /** Operations waiting for one node; more are refused as busy. */
  readonly queuedOpsMax: number;
}

export const defaultBatchLimits: BatchLimits = Object.freeze({
  opsMax: 256,
  // Below 128 KiB: a body that long becomes one string on each side (the JSON the client
  // writes, the text the server parses), and V8 puts a string over 128 KiB in its large-object
  // space, fresh pages each time: ≈ 1 ms per batch on a VM where page faults are dear, more
  // than the extra requests cost.
  bytesMax: 112 * 1024,
  inFlightMax: 8,
  queuedOpsMax: 16_384,
});

/** Sends one batch body to a node within `timeoutMs`; returns the results or throws AttemptError. */
export type SendBatch = (endpoint: string, ops: readonly BatchOpBody[], timeoutMs: number) => Promise<readonly BatchResultItem[]>;

export type BatchKind = 'read' | 'write';

interface Waiting {
  readonly op: BatchOpBody;
  readonly bytes: number;
  /** performance.now() at which the operation's attempt is over. */
  readonly deadlineMs: number;
  readonly resolve: (item: BatchResultItem) => void;
  readonly reject: (error: Error) => void;
}

interface Lane {
  readonly read: Waiting[];
  readonly write: Waiting[];
  inFlight: number;
  scheduled: boolean;
}

export class Batcher {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly send: SendBatch,
    private readonly limits: BatchLimits = defaultBatchLimits,
  ) {}

  /** Queues one operation for `endpoint`; settles with its own result item. */
  submit(endpoint: string, kind: BatchKind, op: BatchOpBody, bytes: number, timeoutMs: number): Promise<BatchResultItem> {
    let lane = this.lanes.get(endpoint);
    if (lane === undefined) {
      lane = { read: [], write: [], inFlight: 0, scheduled: false };
      this.lanes.set(endpoint, lane);
    }
    const queue = lane[kind];
    if (lane.read.length + lane.write.length >= this.limits.queuedOpsMax) {
      return Promise.reject(new AttemptError('refused', 'busy', `More than ${this.limits.queuedOpsMax} operations wait for ${endpoint} in this client`, {}, 50));
    }
    return new Promise((resolve, reject) => {
      queue.push({ op, bytes, deadlineMs: performance.now() + timeoutMs, resolve, reject });
      this.schedule(endpoint, lane);
    });
  }

  private schedule(endpoint: string, lane: Lane): void {
    if (lane.scheduled) return;
    lane.scheduled = true;
    // After every callback of this turn has queued its operation.
    setImmediate(() => {
      lane.scheduled = false;
      this.flush(endpoint, lane);
    });
  }

  private flush(endpoint: string, lane: Lane): void {
    while (lane.inFlight < this.limits.inFlightMax) {
      // Writes first: they take longer, so starting them early keeps latency even.
      const queue = lane.write.length > 0 ? lane.write : lane.read;
      if (queue.length === 0) break;
      this.dispatch(endpoint, lane, this.take(queue));
    }
    this.releaseIfIdle(endpoint, lane);
  }

  /** Forgets an idle node's lane (a later operation makes a fresh one). */
  private releaseIfIdle(endpoint: string, lane: Lane): void {
    const idle = lane.inFlight === 0 && !lane.scheduled && lane.read.length === 0 && lane.write.length === 0;
    if (idle && this.lanes.get(endpoint) === lane) this.lanes.delete(endpoint);
  }

  /** The next batch from the head of `queue`, within the operation and byte limits. */
  private take(queue: Waiting[]): Waiting[] {
    let count = 0;
    let bytes = 0;
    while (count < queue.length && count < this.limits.opsMax) {
      const next = queue[count] as Waiting;
      if (count > 0 && bytes + next.bytes > this.limits.bytesMax) break;
      bytes += next.bytes;
      count++;
    }
    return queue.splice(0, count);
  }

  private dispatch(endpoint: string, lane: Lane, batch: Waiting[]): void {
    const now = performance.now();
    let budgetMs = Infinity;
    for (const w of batch) budgetMs = Math.min(budgetMs, w.deadlineMs - now);
    if (budgetMs < 1) {
      // Waited out its time in the queue: never sent, so safe to retry anywhere.
      const error = new AttemptError('unreachable', null, `The operation waited in the client's queue for ${endpoint} until its time was up`);
      for (const w of batch) w.reject(error);
      return;
    }
    lane.inFlight++;
    this.send(endpoint, batch.map((w) => w.op), budgetMs).then(
      (results) => {
        if (results.length !== batch.length) {
          const error = new ProtocolError(`A batch of ${batch.length} operations was answered with ${results.length} results`);
          for (const w of batch) w.reject(error);
        } else {
          for (let i = 0; i < batch.length; i++) (batch[i] as Waiting).resolve(results[i] as BatchResultItem);
        }
      },
      (error: unknown) => {
        const failure = error instanceof Error ? error : new Error(String(error));
        for (const w of batch) w.reject(failure);
      },
    ).finally(() => {
      lane.inFlight--;
      if (lane.read.length > 0 || lane.write.length > 0) this.schedule(endpoint, lane);
      else this.releaseIfIdle(endpoint, lane);
    });
  }
}
