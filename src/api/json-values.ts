/**
 * Values in the JSON APIs (HTTP bodies, watch lines, txn ops, forwarded writes): text as
 * it is, bytes as base64 with `"encoding": "base64"` beside the value.
 */

import type { KvValue } from '../storage/types.js';
import { QkvError } from '../wire/errors.js';

/**
 * A value in JSON: text as it is, bytes as base64 with `"encoding": "base64"` beside it
 * (the field is absent for text), so a binary value never passes for text.
 */
export function jsonValue(value: KvValue): { value: string; encoding?: 'base64' } {
  return typeof value === 'string' ? { value } : { value: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'), encoding: 'base64' };
}

/** Canonical base64 (RFC 4648 section 4, padded): anything else is refused, not guessed at. */
const base64Text = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The value of a JSON object (a request body, a txn op, a leader's answer): `value` as text,
 * or its bytes when `encoding` is "base64". Throws bad_request naming `where` otherwise.
 */
export function valueOfJson(body: Readonly<Record<string, unknown>>, where = 'value'): KvValue {
  const value = body['value'];
  const encoding = body['encoding'];
  if (typeof value !== 'string') throw new QkvError('bad_request', `${where} must be a string`);
  if (encoding === undefined || encoding === 'utf8') return value;
  if (encoding !== 'base64') throw new QkvError('bad_request', `encoding must be "utf8" or "base64", got ${JSON.stringify(encoding)}`);
  if (!base64Text.test(value)) throw new QkvError('invalid_value', `${where} is not canonical base64 (A-Z a-z 0-9 + /, padded with =)`);
  const bytes = Buffer.from(value, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
