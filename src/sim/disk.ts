/**
 * The simulated disks: every node's writes are queued on a manual-flush memory twin; a
 * flush event after a random latency makes the writes queued at its start durable
 * (sometimes only part of them, in order). A crash keeps only what was flushed; a slow
 * disk multiplies the latency for a while. Durable batches reach the checker first.
 *
 * Owns disk timing and disk images. Must never decide when a disk is slowed or a node
 * crashes (faults.ts and the world do), or draw from any generator but the disks' own.
 */

import type { ClusterConfig } from '../core/types.js';
import type { Prng } from '../stdx/prng.js';
import {
  createMemoryStorage,
  restoreMemoryStorage,
  type MemoryStorage,
  type MemoryStorageImage,
  type MemoryStorageOptions,
} from '../storage/memory.js';
import type { NodeStorage, PersistBatch } from '../storage/types.js';
import { formatUs } from './checkers.js';
import type { SimEnv, SimNode } from './environment.js';

export class SimDisks {
  private readonly storageOptions: MemoryStorageOptions;

  constructor(
    private readonly env: SimEnv,
    private readonly prng: Prng,
    clusterConfig: ClusterConfig,
  ) {
    this.storageOptions = { initialConfig: clusterConfig, snapshotBytesMax: 64 * 1024 * 1024, flushMode: 'manual' };
  }

  /** A fresh disk (`fresh`, bootstrapped with `bootstrap` or the cluster's first configuration), or the one `n` crashed with. */
  open(n: SimNode, fresh: boolean, bootstrap?: ClusterConfig): MemoryStorage {
    if (fresh) {
      const storage = createMemoryStorage(bootstrap === undefined ? this.storageOptions : { ...this.storageOptions, initialConfig: bootstrap });
      storage.setIdentity({ nodeId: n.id, clusterId: 'sim' }, () => {});
      storage.flushPending();
      return storage;
    }
    if (n.image === null) throw new Error(`restart of ${n.id} without a disk image`);
    return restoreMemoryStorage(n.image, this.storageOptions);
  }

  /** Power off: what is not flushed is lost (`flushFirst`: a clean stop flushes everything first). */
  powerOff(storage: MemoryStorage, options: { readonly flushFirst: boolean }): MemoryStorageImage {
    if (options.flushFirst) storage.flushPending();
    return storage.crash();
  }

  /** Schedules a flush of `n`'s queued writes unless one is scheduled or nothing is queued. */
  maybeScheduleFlush(n: SimNode): void {
    const storage = n.storage;
    if (n.flushScheduled || storage === null || storage.pendingCount() === 0) return;
    n.flushScheduled = true;
    const count = storage.pendingCount();
    const c = this.env.config;
    const latencyUs = this.prng.intBetween(c.diskLatencyUsMin, Math.max(c.diskLatencyUsMin, c.diskLatencyUsMax)) * n.diskFactor;
    const partial = count > 1 && this.prng.chance(c.partialFlushRate) ? this.prng.intBetween(1, count - 1) : count;
    this.env.push(latencyUs, n.index, n.incarnation, `${n.id} flush ${partial}/${count}`, () => {
      n.flushScheduled = false;
      this.env.stats.flushes++;
      storage.flushPending(partial);
    }, null);
  }

  /** `x`'s disk is `factor` times slower for `durUs`. */
  slowDown(x: SimNode, factor: number, durUs: number): void {
    const env = this.env;
    const token = ++x.diskToken;
    x.diskFactor = factor;
    env.trace.note(`${env.nowUs()} * ${x.id} disk ${x.diskFactor}x slower for ${formatUs(durUs)}`);
    env.at(durUs, `${x.id} disk back to normal`, () => {
      if (x.diskToken === token) x.diskFactor = 1;
    });
  }

  /** `n`'s disk back to normal speed for good. */
  heal(n: SimNode): void {
    n.diskToken++;
    n.diskFactor = 1;
  }
}

/** Storage seen by the driver: the memory twin, with durable batches reported to the checker first. */
export function observeStorage(inner: MemoryStorage, onDurable: (batch: PersistBatch) => void): NodeStorage {
  return {
    log: inner.log,
    kv: inner.kv,
    hardState: () => inner.hardState(),
    logBytes: () => inner.logBytes(),
    identity: () => inner.identity(),
    setIdentity: (identity, cb) => inner.setIdentity(identity, cb),
    persist: (batch, cb) =>
      inner.persist(batch, (error) => {
        if (error === null) onDurable(batch);
        cb(error);
      }),
    compact: (index, config) => inner.compact(index, config),
    openSnapshot: (config) => inner.openSnapshot(config),
    stageSnapshotChunk: (chunk) => inner.stageSnapshotChunk(chunk),
    close: () => inner.close(),
  };
}
