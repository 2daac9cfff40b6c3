/**
 * Terms, log indexes and versions are plain numbers; every decode boundary checks them
 * here so a value past 2^53 or a negative one never enters the system silently.
 */

export function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Returns `value` if it is a safe non-negative integer, otherwise throws with `what` named. */
export function checkIndex(value: unknown, what: string): number {
  if (!isIndex(value)) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

/** Counts, sizes and timeouts given as options: a safe integer of at least 1. */
export function isPositiveSafeInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/** Returns `value` if it is a safe integer >= 1, otherwise throws a RangeError naming `what` (checked once, at start-up). */
export function checkPositiveSafeInt(value: unknown, what: string): number {
  if (!isPositiveSafeInt(value)) {
    throw new RangeError(`${what} must be a positive safe integer, got ${String(value)}`);
  }
  return value;
}
