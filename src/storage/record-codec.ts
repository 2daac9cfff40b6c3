/**
 * How a kv record is laid out in bytes: `[tag u8][version f64 LE][value]`, the tag telling
 * UTF-8 string, UTF-16LE string (a string with a lone surrogate, which has no UTF-8 form),
 * bytes, or "in its value row" (no value bytes: the value is stored in a record of its own,
 * kv/value-rows.ts; the record's `value` is then `valueInRow`, storage/types.ts). LMDB stores
 * records so, and snapshot chunks carry them so (snapshot-records.ts),
 * which is why this is its own file: both storages and the chunk format share it.
 *
 * Must never: hand out a view of a buffer that lmdb-js may reuse (decoders view lmdb-js's
 * private copy of a value), or accept a version that is not a safe integer.
 */

import { isUtf8 } from 'node:buffer';
import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';
import { isWellFormed } from '../stdx/utf8.js';
import { valueInRow, type KvRecord, type KvValue } from './types.js';

const RECORD_HEADER_BYTES = 9;
const VALUE_STRING = 0;
const VALUE_BYTES = 1;
const VALUE_STRING_UTF16 = 2;
const VALUE_IN_ROW = 3;

/** The bytes a record was decoded from (`decodeOwnedRecord`): encoding it again is free. */
const encodedRecords = new WeakMap<KvRecord, Buffer>();

export function encodeRecord(record: KvRecord): Buffer {
  const known = encodedRecords.get(record);
  if (known !== undefined) return known;
  const { value, version } = record;
  if (value === valueInRow) return newRecordBuffer(VALUE_IN_ROW, version, 0);
  if (typeof value !== 'string') {
    const buffer = newRecordBuffer(VALUE_BYTES, version, value.byteLength);
    buffer.set(value, RECORD_HEADER_BYTES);
    return buffer;
  }
  const encoding = isWellFormed(value) ? 'utf8' : 'utf16le';
  const buffer = newRecordBuffer(encoding === 'utf8' ? VALUE_STRING : VALUE_STRING_UTF16, version, Buffer.byteLength(value, encoding));
  buffer.write(value, RECORD_HEADER_BYTES, encoding);
  return buffer;
}

/** A record's buffer with its header written, the value's `valueBytes` left to fill. */
function newRecordBuffer(tag: number, version: number, valueBytes: number): Buffer {
  const buffer = Buffer.allocUnsafe(RECORD_HEADER_BYTES + valueBytes);
  buffer[0] = tag;
  buffer.writeDoubleLE(version, 1);
  return buffer;
}

export function decodeRecord(key: string, buffer: Buffer): KvRecord {
  const { version, tag } = checkedHeader(key, buffer);
  return { value: valueOf(buffer, tag), version };
}

/** The version and value tag of the record in `buffer`, refused when corrupt. */
function checkedHeader(key: string, buffer: Buffer): { readonly version: number; readonly tag: number } {
  assert(buffer.length >= RECORD_HEADER_BYTES, () => `kv record ${JSON.stringify(key)} is corrupt: ${buffer.length} bytes`);
  const version = buffer.readDoubleLE(1);
  assert(isIndex(version), () => `kv record ${JSON.stringify(key)} is corrupt: version ${version}`);
  const tag = buffer[0] as number;
  assert(tag === VALUE_STRING || tag === VALUE_STRING_UTF16 || tag === VALUE_BYTES || (tag === VALUE_IN_ROW && buffer.length === RECORD_HEADER_BYTES), () => `kv record ${JSON.stringify(key)} is corrupt: value tag ${tag}`);
  return { version, tag };
}

function valueOf(buffer: Buffer, tag: number): KvValue {
  if (tag === VALUE_IN_ROW) return valueInRow;
  if (tag === VALUE_STRING) return buffer.toString('utf8', RECORD_HEADER_BYTES);
  if (tag === VALUE_STRING_UTF16) return buffer.toString('utf16le', RECORD_HEADER_BYTES);
  // A plain Uint8Array (not a Buffer) so that values compare equal to what was stored.
  return new Uint8Array(buffer.buffer, buffer.byteOffset + RECORD_HEADER_BYTES, buffer.length - RECORD_HEADER_BYTES);
}

/**
 * Values up to this many bytes are decoded at once: a lazily decoded record (an accessor
 * object, and a WeakMap entry for `encodeRecord`) cost ≈ 2 µs to make, ten times the
 * decoding of a short value, and encoding a short one again is as cheap.
 */
const eagerValueBytesMax = 1024;

/**
 * The record in `bytes`, a buffer the caller will reuse (lmdb-js' `getBinaryFast`): nothing
 * returned views it. A short value is decoded now (a byte value copied), a longer one copied
 * once and decoded on use (`decodeOwnedRecord`). With `kept`, a copy has memory of its own
 * rather than a slice of Node's shared 8 KiB pool: a record kept for long (recent-records.ts)
 * would otherwise hold a whole pool slab alive, shared with allocations long gone.
 */
export function decodeRecordCopy(key: string, bytes: Buffer, kept = false): KvRecord {
  const { version, tag } = checkedHeader(key, bytes);
  const valueBytes = bytes.length - RECORD_HEADER_BYTES;
  if (valueBytes > eagerValueBytesMax) return decodeOwnedRecord(key, copyOf(bytes, 0, kept));
  if (tag !== VALUE_BYTES) return { value: valueOf(bytes, tag), version };
  const copy = copyOf(bytes, RECORD_HEADER_BYTES, kept);
  return { value: new Uint8Array(copy.buffer, copy.byteOffset, valueBytes), version };
}

/** `bytes` from `start` on, copied: into pooled memory, or with `own` into memory of its own. */
function copyOf(bytes: Buffer, start: number, own: boolean): Buffer {
  const copy = own ? Buffer.allocUnsafeSlow(bytes.length - start) : Buffer.allocUnsafe(bytes.length - start);
  bytes.copy(copy, 0, start);
  return copy;
}

/**
 * `decodeRecord` for a buffer the caller owns and never changes: the header is checked now,
 * a long value decoded on first use, and `encodeRecord` gives the same buffer back. A record
 * read only for its version, or only to be stored again (the history keeps the record a
 * change replaced), so never turns a large value into a string and back.
 */
export function decodeOwnedRecord(key: string, buffer: Buffer): KvRecord {
  const { version, tag } = checkedHeader(key, buffer);
  if (buffer.length - RECORD_HEADER_BYTES <= eagerValueBytesMax) return { value: valueOf(buffer, tag), version };
  let value: KvValue | undefined;
  const record: KvRecord = {
    get value(): KvValue {
      value ??= valueOf(buffer, tag);
      return value;
    },
    version,
  };
  encodedRecords.set(record, buffer);
  return record;
}

/**
 * The record of a text value given as its UTF-8 bytes (a put's value as the log entry holds
 * it), built without making it a string: the bytes are copied once, behind the header. Null
 * when they are not UTF-8 (the caller then takes the decoded text, as it always did).
 */
export function textRecordOf(key: string, utf8: Uint8Array, version: number): KvRecord | null {
  if (!isUtf8(utf8)) return null;
  const buffer = newRecordBuffer(VALUE_STRING, version, utf8.byteLength);
  buffer.set(utf8, RECORD_HEADER_BYTES);
  return decodeOwnedRecord(key, buffer);
}

/**
 * Bytes `record`'s value takes: of its encoded form when it was built from bytes (so a long
 * text value is not decoded to be measured), else its UTF-8 length or byte length.
 */
export function storedValueBytes(record: KvRecord): number {
  const known = encodedRecords.get(record);
  if (known !== undefined) return known.length - RECORD_HEADER_BYTES;
  const { value } = record;
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.byteLength;
}

/** Whether `record` was built from its bytes (valid by construction: its value is not read to check it). */
export function isEncodedRecord(record: KvRecord): boolean {
  return encodedRecords.has(record);
}

/**
 * Why the encoded record at `bytes[start, end)` (from a peer or a file) would not decode, or
 * null when it would. Reads in place: snapshot staging checks millions of records.
 */
export function checkEncodedRecord(bytes: Buffer, start: number, end: number): string | null {
  const length = end - start;
  if (length < RECORD_HEADER_BYTES) return `record of ${length} bytes (at least ${RECORD_HEADER_BYTES})`;
  const version = bytes.readDoubleLE(start + 1);
  if (!isIndex(version)) return `version ${version}`;
  const tag = bytes[start];
  if (tag === VALUE_STRING) return isUtf8(new Uint8Array(bytes.buffer, bytes.byteOffset + start + RECORD_HEADER_BYTES, length - RECORD_HEADER_BYTES)) ? null : 'text value is not UTF-8';
  if (tag === VALUE_STRING_UTF16) return (length - RECORD_HEADER_BYTES) % 2 === 0 ? null : 'UTF-16 value of an odd length';
  if (tag === VALUE_IN_ROW) return length === RECORD_HEADER_BYTES ? null : `record in its value row with ${length - RECORD_HEADER_BYTES} value bytes`;
  return tag === VALUE_BYTES ? null : `value tag ${tag}`;
}
