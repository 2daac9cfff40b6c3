/**
 * Assertions for programmer errors. They stay on in production: a broken invariant in a
 * replicated store must crash the node (recovery from disk and peers takes over) rather
 * than let it keep serving wrong data. Expected failures are values, never assertions.
 */

export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new AssertionError(typeof message === 'function' ? message() : message);
  }
}

/** For exhaustive switches: the compiler proves `value` is `never`. */
export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable ${what}: ${JSON.stringify(value)}`);
}
