/**
 * Values read from the JSON APIs (HTTP bodies, txn ops, a leader's answers), with the API's
 * refusals; how a value is written to JSON is wire/values.ts.
 */

import type { KvValue } from '../storage/types.js';
import { QkvError } from '../wire/errors.js';
import { bytesOfBase64 } from '../wire/values.js';

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
  const bytes = bytesOfBase64(value);
  if (bytes === null) throw new QkvError('invalid_value', `${where} is not canonical base64 (A-Z a-z 0-9 + /, padded with =)`);
  return bytes;
}
