/**
 * Values as the client hands them over: text (`string`) or bytes (`Uint8Array`), read back
 * as the type they were written with. On the HTTP API's JSON a binary value travels as
 * base64 with `"encoding": "base64"` beside it; over gRPC in the messages' `binary` field.
 */

import { ProtocolError } from './transport.js';
import type { Value } from './types.js';

/** A value's JSON fields: text as is, bytes as base64 with their encoding. */
export function jsonValueOf(value: Value): { value: string; encoding?: 'base64' } {
  return typeof value === 'string' ? { value } : { value: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'), encoding: 'base64' };
}

/** The value of an answer's JSON object (`value`, and `encoding` when binary). */
export function valueFromJson(json: Readonly<Record<string, unknown>>, what = 'answer'): Value {
  const value = json['value'];
  if (typeof value !== 'string') throw new ProtocolError(`${what} field "value" is not a string`);
  const encoding = json['encoding'];
  if (encoding === undefined) return value;
  if (encoding !== 'base64') throw new ProtocolError(`${what} has an unknown value encoding ${JSON.stringify(encoding)}`);
  return bytesOf(Buffer.from(value, 'base64'));
}

/** A value as text: bytes decoded as UTF-8 (invalid sequences become U+FFFD). */
export function valueText(value: Value): string {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

/** A Buffer's bytes as a plain Uint8Array (what the client hands out). */
export function bytesOf(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Whether `value` is a value the client can store. */
export function isValue(value: unknown): value is Value {
  return typeof value === 'string' || value instanceof Uint8Array;
}
