/**
 * Size and well-formedness limits for keys and values, checked where a request enters the
 * system (api/ calls these before proposing). Owns: the limits' shape and defaults and the
 * rules for what a key may contain. UTF-8 length and well-formedness come from stdx/utf8.ts,
 * the same functions storage uses, so the two layers count and check a string alike.
 *
 * Must never: be consulted while applying committed entries. Limits are per-node
 * configuration and may differ between nodes or change across restarts; an entry that is
 * already in the log must apply the same way everywhere, so the state machine applies
 * whatever was committed and only the request path refuses oversized or malformed input.
 *
 * Key rules (decided here, documented in the README's data-model section):
 * - not empty;
 * - well-formed UTF-16, i.e. no lone surrogates: such a string has no UTF-8 encoding, so it
 *   could not be stored, compared in byte order, or round-trip through the codec exactly;
 * - no NUL (U+0000): reserved so storage and tools may use it as a separator or
 *   terminator; every other valid character, control characters included, is allowed
 *   (clients percent-encode them in URLs);
 * - at most `keyBytesMax` bytes of UTF-8.
 * String values must be well-formed too (same reason); byte values may hold anything.
 *
 * The problem codes are the same literal strings as `ErrorCode` in wire/errors.ts (kv may
 * not import wire), so api/ can pass `problem.code` straight into a QkvError.
 */

import { isWellFormed, utf8Length, utf8LengthExceeds } from '../stdx/utf8.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';
import type { KvValue } from '../storage/types.js';

export interface KvLimits {
  /** Largest key, in bytes of its UTF-8 encoding. */
  readonly keyBytesMax: number;
  /** Largest value: UTF-8 bytes for a string value, length for a byte value. */
  readonly valueBytesMax: number;
}

export const defaultKvLimits: KvLimits = Object.freeze({
  keyBytesMax: 1024,
  valueBytesMax: 1024 * 1024,
});

export interface KeyProblem {
  readonly code: 'invalid_key' | 'key_too_large';
  readonly message: string;
}

export interface ValueProblem {
  readonly code: 'invalid_value' | 'value_too_large';
  readonly message: string;
}

/**
 * Longest client id (the dedup-table key of a request id), in UTF-8 bytes. Fixed rather
 * than configurable: the codec refuses longer ids, so every replica can store every id
 * that reaches the log (storage keys have a hard size limit, LMDB's 1978 bytes).
 */
export const clientIdBytesMax = 128;

export interface ClientIdProblem {
  readonly code: 'bad_request';
  readonly message: string;
}

/** Returns null when `clientId` may be used in a request id, otherwise why not. */
export function validateClientId(clientId: string): ClientIdProblem | null {
  if (clientId.length === 0) return { code: 'bad_request', message: 'Client id must not be empty' };
  if (utf8LengthExceeds(clientId, clientIdBytesMax)) {
    return { code: 'bad_request', message: `Client id is larger than ${clientIdBytesMax} bytes of UTF-8` };
  }
  if (!isWellFormed(clientId)) {
    return { code: 'bad_request', message: 'Client id contains a lone surrogate (not valid Unicode)' };
  }
  return null;
}

/** Throws if the limits are not positive safe integers (checked once at start-up). */
export function checkKvLimits(limits: KvLimits): KvLimits {
  for (const name of ['keyBytesMax', 'valueBytesMax'] as const) {
    checkPositiveSafeInt(limits[name], `KvLimits.${name}`);
  }
  return limits;
}

/** Returns null when `key` is acceptable, otherwise the first problem found. */
export function validateKey(key: string, limits: KvLimits): KeyProblem | null {
  if (key.length === 0) return { code: 'invalid_key', message: 'Key must not be empty' };
  const bytesMax = limits.keyBytesMax;
  if (utf8LengthExceeds(key, bytesMax)) {
    return {
      code: 'key_too_large',
      message: `Key is larger than ${bytesMax} bytes of UTF-8 (${describeLength(key, bytesMax)})`,
    };
  }
  if (!isWellFormed(key)) {
    return { code: 'invalid_key', message: 'Key contains a lone surrogate (not valid Unicode, has no UTF-8 encoding)' };
  }
  const nulAt = key.indexOf('\u0000');
  if (nulAt !== -1) {
    return { code: 'invalid_key', message: `Key contains a NUL character (U+0000) at position ${nulAt}` };
  }
  return null;
}

/** Returns null when `value` is acceptable, otherwise the first problem found. */
export function validateValue(value: KvValue, limits: KvLimits): ValueProblem | null {
  const bytesMax = limits.valueBytesMax;
  if (typeof value !== 'string') {
    if (value.byteLength > bytesMax) {
      return {
        code: 'value_too_large',
        message: `Value is ${value.byteLength} bytes, larger than the limit of ${bytesMax} bytes`,
      };
    }
    return null;
  }
  if (utf8LengthExceeds(value, bytesMax)) {
    return {
      code: 'value_too_large',
      message: `Value is larger than ${bytesMax} bytes of UTF-8 (${describeLength(value, bytesMax)})`,
    };
  }
  if (!isWellFormed(value)) {
    return {
      code: 'invalid_value',
      message: 'String value contains a lone surrogate (not valid Unicode, has no UTF-8 encoding); send bytes instead',
    };
  }
  return null;
}

function describeLength(text: string, bytesMax: number): string {
  // Only the request path's error message: count exactly when cheap, else give a bound.
  return text.length > bytesMax * 4 ? `at least ${text.length} bytes` : `${utf8Length(text)} bytes`;
}

/** `limits` as the check an API runs on every key and value it is given. */
export function kvValidator(limits: KvLimits): { key(key: string): KeyProblem | null; value(value: KvValue): ValueProblem | null } {
  return { key: (key) => validateKey(key, limits), value: (value) => validateValue(value, limits) };
}
