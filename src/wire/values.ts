/**
 * How a value travels, the same for the servers, the client and the CLI: text as it is;
 * bytes in JSON as canonical base64 with `"encoding": "base64"` beside the value, and in
 * the gRPC messages in `binary` (then `value` is empty).
 */

import { QkvError } from './errors.js';

/** A value: text, or bytes (a Uint8Array, whatever its backing buffer). */
export type WireValue = string | Uint8Array;

/** A value's JSON fields: text as is, bytes as base64 with their encoding (absent for text). */
export function jsonValue(value: WireValue): { value: string; encoding?: 'base64' } {
  return typeof value === 'string' ? { value } : { value: bufferOf(value).toString('base64'), encoding: 'base64' };
}

/** Canonical base64 (RFC 4648 section 4, padded): anything else is refused, not guessed at. */
const base64Text = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of canonical base64 text, or null when the text is not that. */
export function bytesOfBase64(text: string): Uint8Array | null {
  return base64Text.test(text) ? bytesOf(Buffer.from(text, 'base64')) : null;
}

/** A value as the gRPC messages carry it: text in `value`, bytes in `binary`. */
export function messageFields(value: WireValue): { value: string; binary?: Buffer } {
  return typeof value === 'string' ? { value } : { value: '', binary: bufferOf(value) };
}

/** A Buffer's bytes as a plain Uint8Array over the same memory (what callers are handed). */
export function bytesOf(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/**
 * A request message's value: its text, or its bytes when `binary` is set, and then its text
 * must be empty (bad_request otherwise, naming `key`).
 */
export function requestValue(text: string, binary: Buffer | undefined, key: string): WireValue {
  if (binary === undefined) return text;
  if (text.length > 0) throw new QkvError('bad_request', 'Set value or binary, not both', { key });
  return bytesOf(binary);
}

/** A message's value: its bytes when `binary` is set, else its text. */
export function valueOfMessage(m: { readonly value: string; readonly binary?: Buffer | undefined }): WireValue {
  return m.binary === undefined ? m.value : bytesOf(m.binary);
}

/** The bytes of a value as a Buffer over the same memory (no copy). */
export function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
