/**
 * Values as the client hands them over: text (`string`) or bytes (`Uint8Array`), read back
 * as the type they were written with. On the HTTP API's JSON a binary value travels as
 * base64 with `"encoding": "base64"` beside it; over gRPC in the messages' `binary` field.
 */

import { bufferOf, bytesOf } from '../wire/values.js';
import { ProtocolError } from './transport.js';
import type { Value } from './types.js';

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
  return typeof value === 'string' ? value : bufferOf(value).toString('utf8');
}

/** Whether `value` is a value the client can store. */
export function isValue(value: unknown): value is Value {
  return typeof value === 'string' || value instanceof Uint8Array;
}
