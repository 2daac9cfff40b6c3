/**
 * The checks every decoder of the kv codec runs on a field (codec.ts for single-key
 * commands and results, txn-codec.ts for transactions), and the error they throw.
 */

import { isIndex } from '../stdx/safe-int.js';
import { isWellFormed } from '../stdx/utf8.js';
import type { KvValue } from '../storage/types.js';

/** A command or result that cannot be encoded or decoded: a programmer or disk error. */
export class KvCodecError extends Error {
  override readonly name = 'KvCodecError';
}

export function checkString(value: unknown, name: string, context: string): string {
  if (typeof value !== 'string') {
    throw new KvCodecError(`Cannot ${context}: ${name} must be a string, got ${describe(value)}`);
  }
  if (!isWellFormed(value)) {
    throw new KvCodecError(`Cannot ${context}: ${name} contains a lone surrogate (no UTF-8 encoding)`);
  }
  return value;
}

export function checkValue(value: unknown, context: string): KvValue {
  if (typeof value === 'string') return checkString(value, 'value', context);
  if (value instanceof Uint8Array) return value;
  throw new KvCodecError(`Cannot ${context}: value must be a string or a Uint8Array, got ${describe(value)}`);
}

export function checkIndex(value: unknown, name: string, context: string): number {
  if (!isIndex(value)) {
    throw new KvCodecError(`Cannot ${context}: ${name} must be a non-negative safe integer, got ${describe(value)}`);
  }
  return value;
}

export function optionalIndex(value: unknown, name: string, context: string): number | null {
  return value === null ? null : checkIndex(value, name, context);
}

export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === 'object' ? `an object (${Object.prototype.toString.call(value)})` : typeof value;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
