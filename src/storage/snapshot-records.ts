/**
 * The kv records of a snapshot chunk as one byte string: how a chunk carries them from a
 * leader to a joining node (and out to a backup). Each record is laid out the way LMDB
 * stores it (record-codec.ts), so the LMDB storage hands out records as it reads them and a
 * joining node writes them as they come, neither decoding a value: decoding every record
 * into strings and encoding it again held a 10-million-key catch-up to ≈ 20 MB/s.
 *
 * Layout, record after record, keys strictly ascending in UTF-8 byte order:
 *   [key bytes u16 LE][key, UTF-8][record bytes u32 LE][record: record-codec.ts layout]
 *
 * Must never: accept what the decoded form would refuse (an empty, oversized or not UTF-8
 * key, a record whose tag, version or text is invalid, keys out of order or repeated), or
 * hand out a view that outlives the bytes it was read from without saying so.
 */

import { isUtf8 } from 'node:buffer';
import { checkEncodedRecord, decodeRecord, encodeRecord } from './record-codec.js';
import { KV_KEY_BYTES_MAX } from './sizes.js';
import type { ItemsChunk, KvItem, SnapshotChunk } from './types.js';

const KEY_LENGTH_BYTES = 2;
const RECORD_LENGTH_BYTES = 4;

/** Bytes one record takes in a chunk's `records`. */
export function packedRecordBytes(keyBytes: number, recordBytes: number): number {
  return KEY_LENGTH_BYTES + keyBytes + RECORD_LENGTH_BYTES + recordBytes;
}

/** A record as LMDB holds it: its key's UTF-8 and its encoded record. */
export interface RawRecord {
  readonly key: Uint8Array;
  readonly record: Uint8Array;
}

/** Packs records (already in key order) into one buffer, copying each once. */
export function packRecords(records: readonly RawRecord[]): Buffer {
  let total = 0;
  for (const r of records) total += packedRecordBytes(r.key.byteLength, r.record.byteLength);
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const r of records) {
    out.writeUInt16LE(r.key.byteLength, offset);
    out.set(r.key, offset + KEY_LENGTH_BYTES);
    offset += KEY_LENGTH_BYTES + r.key.byteLength;
    out.writeUInt32LE(r.record.byteLength, offset);
    out.set(r.record, offset + RECORD_LENGTH_BYTES);
    offset += RECORD_LENGTH_BYTES + r.record.byteLength;
  }
  return out;
}

/** An item's raw form (what the in-memory twin and a restored backup hand to `packRecords`). */
export function rawRecordOf(item: KvItem): RawRecord {
  return { key: Buffer.from(item.key, 'utf8'), record: encodeRecord(item) };
}

/** Packs items (in key order) as a chunk's `records`. */
export function packItems(items: readonly KvItem[]): Buffer {
  return packRecords(items.map(rawRecordOf));
}

/** Why `records` is refused, thrown by `walkRecords`: the bytes came from a peer or a file. */
export class PackedRecordsError extends Error {
  override readonly name = 'PackedRecordsError';
}

/**
 * Walks packed records, checking each (lengths, key, record header and text, key order
 * after `previousKey`), and calls `each` with views into `records` (valid as long as it is).
 * Returns the count and the last key's view. Throws PackedRecordsError on the first fault,
 * before `each` sees the faulty record (but after it saw the ones before).
 *
 * The views are plain Uint8Arrays, not Buffers: a Buffer view costs a constructor call, and
 * a 10-million-key snapshot makes 20 million of them.
 */
export function walkRecords(
  records: Uint8Array,
  previousKey: Uint8Array | undefined,
  each: (key: Uint8Array, record: Uint8Array) => void,
): { count: number; lastKey: Uint8Array | undefined } {
  const bytes = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
  const view = new Uint8Array(records.buffer, records.byteOffset, records.byteLength);
  let offset = 0;
  let count = 0;
  let lastKey = previousKey;
  const fail = (why: string): never => {
    throw new PackedRecordsError(`snapshot record ${count} (at byte ${offset}): ${why}`);
  };
  while (offset < bytes.length) {
    if (bytes.length - offset < KEY_LENGTH_BYTES) fail('truncated key length');
    const keyLength = bytes.readUInt16LE(offset);
    if (keyLength === 0 || keyLength > KV_KEY_BYTES_MAX) fail(`key of ${keyLength} bytes (1 … ${KV_KEY_BYTES_MAX} allowed)`);
    const keyStart = offset + KEY_LENGTH_BYTES;
    const recordLengthAt = keyStart + keyLength;
    if (bytes.length - recordLengthAt < RECORD_LENGTH_BYTES) fail('truncated key or record length');
    const recordLength = bytes.readUInt32LE(recordLengthAt);
    const recordStart = recordLengthAt + RECORD_LENGTH_BYTES;
    if (bytes.length - recordStart < recordLength) fail(`record of ${recordLength} bytes runs past the end`);
    const key = view.subarray(keyStart, recordLengthAt);
    if (!isUtf8(key)) fail('key is not UTF-8');
    if (lastKey !== undefined && Buffer.compare(lastKey, key) >= 0) fail('keys out of order or repeated');
    const record = view.subarray(recordStart, recordStart + recordLength);
    const fault = checkEncodedRecord(bytes, recordStart, recordStart + recordLength);
    if (fault !== null) fail(fault);
    each(key, record);
    lastKey = key;
    count++;
    offset = recordStart + recordLength;
  }
  return { count, lastKey };
}

/**
 * The item a record's views (from `walkRecords`) stand for. The value is copied out:
 * `decodeRecord` hands out views, and a bytes value would otherwise keep the whole chunk
 * (a peer's buffer) alive.
 */
export function itemOf(keyView: Uint8Array, recordView: Uint8Array): KvItem {
  // walkRecords checked that the key is UTF-8.
  const key = Buffer.from(keyView.buffer, keyView.byteOffset, keyView.byteLength).toString('utf8');
  const { value, version } = decodeRecord(key, Buffer.from(recordView));
  return { key, value, version };
}

/** The decoded items of packed records (backups, the in-memory twin, tests). */
export function unpackItems(records: Uint8Array): KvItem[] {
  const items: KvItem[] = [];
  walkRecords(records, undefined, (key, record) => void items.push(itemOf(key, record)));
  return items;
}

/** A chunk with its records decoded: `readItems` of every snapshot source. */
export function itemsChunk(chunk: SnapshotChunk | null): ItemsChunk | null {
  return chunk === null ? null : { seq: chunk.seq, items: unpackItems(chunk.records), dedup: chunk.dedup, last: chunk.last };
}
