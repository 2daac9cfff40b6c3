/**
 * A seeded pseudo-random generator (xoshiro128**, seeded through splitmix32). The only
 * source of randomness the core, kv and the simulator may use: the same seed gives the
 * same sequence on every machine, which is what makes a simulator run replayable.
 */

export interface Prng {
  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number;
  /** A float in [0, 1). */
  nextFloat(): number;
  /** An integer in [lo, hi], both inclusive. */
  intBetween(lo: number, hi: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** A new generator whose sequence is determined by this one's next output. */
  fork(): Prng;
}

function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function createPrng(seed: number): Prng {
  const init = splitmix32(seed);
  let s0 = init();
  let s1 = init();
  let s2 = init();
  let s3 = init();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;

  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    s0 >>>= 0;
    s1 >>>= 0;
    s2 >>>= 0;
    return result;
  };

  const prng: Prng = {
    nextU32,
    nextFloat: () => nextU32() / 0x1_0000_0000,
    intBetween: (lo, hi) => {
      if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) {
        throw new RangeError(`intBetween needs integers lo <= hi, got [${lo}, ${hi}]`);
      }
      return lo + Math.floor(prng.nextFloat() * (hi - lo + 1));
    },
    chance: (p) => prng.nextFloat() < p,
    fork: () => createPrng(nextU32()),
  };
  return prng;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
