/**
 * Workloads: the mix of reads and writes and how keys are chosen. The named workloads are
 * the seeds' and YCSB's:
 *
 * | name | reads | key choice |
 * | --- | --- | --- |
 * | write | 0% | uniform |
 * | read | 100% | uniform |
 * | mixed | 50% | uniform |
 * | read-heavy | 90% | uniform |
 * | write-heavy | 20% | uniform |
 * | ycsb-a | 50% (update heavy) | zipfian |
 * | ycsb-b | 95% (read mostly) | zipfian |
 * | ycsb-c | 100% (read only) | zipfian |
 * | hot-cold | 50% | 90% of operations on 10% of the keys |
 * | zipf | 50% | zipfian (θ = 0.99, YCSB's constant) |
 * | txn | 0% | uniform: each operation one transaction, if key A exists put A and B |
 * | fill | 0% | every key once, in order: a load of `--keys` new keys, then the run ends |
 *
 * Keys and the value are made once, before a run (`makeKeys`, `makeValue`), so choosing an
 * operation allocates nothing. Randomness comes from a seeded Prng: one seed reproduces a
 * run's operation sequence.
 *
 * Must never: allocate strings while choosing operations.
 */

import type { Prng } from '../stdx/prng.js';

export const workloadNames = ['write', 'read', 'mixed', 'read-heavy', 'write-heavy', 'ycsb-a', 'ycsb-b', 'ycsb-c', 'hot-cold', 'zipf', 'txn', 'fill'] as const;
export type WorkloadName = (typeof workloadNames)[number];

export type KeyDistribution = 'uniform' | 'hot-cold' | 'zipf';
export const keyDistributions: readonly KeyDistribution[] = ['uniform', 'hot-cold', 'zipf'];

export interface WorkloadSpec {
  /** A workload name, or a label for a custom mix (the matrix experiment). */
  readonly name: string;
  /** Share of operations that are reads, in [0, 1]. */
  readonly readFraction: number;
  readonly distribution: KeyDistribution;
  /** Writes are transactions over two keys (compare one exists, put both) instead of puts. */
  readonly txn?: boolean;
  /**
   * Write every key exactly once, in order, and stop: the run is the keys' count of
   * operations, with no warm-up (each key is new, so none can be spent warming up).
   */
  readonly fill?: boolean;
}

const mixes: Readonly<Record<WorkloadName, { readFraction: number; distribution: KeyDistribution }>> = {
  write: { readFraction: 0, distribution: 'uniform' },
  read: { readFraction: 1, distribution: 'uniform' },
  mixed: { readFraction: 0.5, distribution: 'uniform' },
  'read-heavy': { readFraction: 0.9, distribution: 'uniform' },
  'write-heavy': { readFraction: 0.2, distribution: 'uniform' },
  'ycsb-a': { readFraction: 0.5, distribution: 'zipf' },
  'ycsb-b': { readFraction: 0.95, distribution: 'zipf' },
  'ycsb-c': { readFraction: 1, distribution: 'zipf' },
  'hot-cold': { readFraction: 0.5, distribution: 'hot-cold' },
  zipf: { readFraction: 0.5, distribution: 'zipf' },
  txn: { readFraction: 0, distribution: 'uniform' },
  fill: { readFraction: 0, distribution: 'uniform' },
};

export function workload(name: WorkloadName): WorkloadSpec {
  return { name, ...mixes[name], ...(name === 'txn' ? { txn: true } : {}), ...(name === 'fill' ? { fill: true } : {}) };
}

/** Share of the keys that are hot, and share of operations that go to them (hot-cold). */
export const hotKeyFraction = 0.1;
export const hotOpFraction = 0.9;
/** YCSB's zipfian constant. */
export const zipfTheta = 0.99;

/** Picks a key index in [0, keyCount) from a Prng; allocation-free. */
export type KeyChooser = (rng: Prng) => number;

export function keyChooser(distribution: KeyDistribution, keyCount: number): KeyChooser {
  if (!Number.isSafeInteger(keyCount) || keyCount < 1) throw new RangeError(`keyCount must be >= 1, got ${keyCount}`);
  switch (distribution) {
    case 'uniform':
      return (rng) => Math.floor(rng.nextFloat() * keyCount);
    case 'hot-cold': {
      const hot = Math.max(1, Math.floor(keyCount * hotKeyFraction));
      const cold = keyCount - hot;
      return (rng) => (cold === 0 || rng.nextFloat() < hotOpFraction ? Math.floor(rng.nextFloat() * hot) : hot + Math.floor(rng.nextFloat() * cold));
    }
    case 'zipf':
      return zipfChooser(keyCount, zipfTheta);
  }
}

/**
 * Gray et al.'s zipfian generator ("Quickly generating billion-record synthetic databases",
 * as in YCSB): rank 0 is the most popular key; O(n) set-up, O(1) per draw.
 */
export function zipfChooser(n: number, theta: number): KeyChooser {
  let zetaN = 0;
  for (let i = 1; i <= n; i++) zetaN += 1 / Math.pow(i, theta);
  const zeta2 = 1 + 1 / Math.pow(2, theta);
  const alpha = 1 / (1 - theta);
  const eta = (1 - Math.pow(2 / n, 1 - theta)) / (1 - zeta2 / zetaN);
  const half = 1 + Math.pow(0.5, theta);
  return (rng) => {
    const u = rng.nextFloat();
    const uz = u * zetaN;
    if (uz < 1) return 0;
    if (uz < half) return Math.min(1, n - 1);
    const rank = Math.floor(n * Math.pow(eta * u - eta + 1, alpha));
    return rank >= n ? n - 1 : rank;
  };
}

/**
 * `count` distinct keys of exactly `keyBytes` ASCII bytes each (`k` + zero-padded index,
 * then `-` padding), so a key's size is what the flag says.
 */
export function makeKeys(count: number, keyBytes: number, prefix = 'k'): string[] {
  const digits = String(Math.max(0, count - 1)).length;
  if (keyBytes < prefix.length + digits) throw new RangeError(`--key-bytes ${keyBytes} is too small for ${count} distinct keys (needs ${prefix.length + digits})`);
  const keys = new Array<string>(count);
  for (let i = 0; i < count; i++) keys[i] = `${prefix}${String(i).padStart(digits, '0')}`.padEnd(keyBytes, '-');
  return keys;
}

/** A value of exactly `valueBytes` printable ASCII bytes, made once and reused by every write. */
export function makeValue(valueBytes: number, rng: Prng): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let s = '';
  for (let i = 0; i < valueBytes; i++) s += alphabet[rng.nextU32() % alphabet.length];
  return s;
}
