/**
 * Values in the gRPC messages: text in `value`, bytes in `binary` (then `value` is empty).
 */

import type { KvValue } from '../storage/types.js';
import { QkvError } from '../wire/errors.js';

/** A value as the messages carry it: text in `value`, bytes in `binary` (then `value` is empty). */
export function valueFields(value: KvValue): { value: string; binary?: Buffer } {
  return typeof value === 'string' ? { value } : { value: '', binary: Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

/** A request's value: its text, or its bytes when `binary` is set (and then the text must be empty). */
export function valueOf(text: string, binary: Buffer | undefined, key: string): KvValue {
  if (binary === undefined) return text;
  if (text.length > 0) throw new QkvError('bad_request', 'Set value or binary, not both', { key });
  return new Uint8Array(binary.buffer, binary.byteOffset, binary.byteLength);
}
