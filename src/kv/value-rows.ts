/**
 * Large values live in rows of their own. A put of a client key whose value takes at least
 * `valueRowBytesMin` bytes stores the record (value and version) under a reserved key named
 * by the version and the key, its value row, and the key's own record holds only the
 * version, its value being `valueInRow` (storage/types.ts):
 *   \0v/{version, 14 hex digits}/{key}  -> the record as the put wrote it
 *
 * Why: the history keeps, for each change, the record the change replaced (history.ts). With
 * the value in the key's record, every overwrite read the old value out of LMDB and wrote it
 * again into the history row; at 16 KiB that read alone was a quarter of the leader's main
 * thread (page faults on freshly written pages) and the copy a third of the bytes each node
 * wrote. A value row is written once and never moved: the history's row keeps the key's short
 * record, and the value stays where it is until the change that replaced it is compacted
 * away (`compactHistory` then deletes the row), which is when no read can reach it any more.
 *
 * Who owns a value row: the key's record while it names it, then the history change that
 * replaced that record. Exactly one owner at any time, so the row is deleted exactly once.
 *
 * Must never: hand a reader a record whose value is `valueInRow` (every read of a client
 * record goes through `inRowResolved`), decide by anything but the command (every replica
 * must lay the same state out the same way), or write two values to one row (a key put twice
 * in one version, which a transaction may do, keeps the second value in its record).
 */

import { storedValueBytes } from '../storage/record-codec.js';
import { isInRow, valueInRow, type KvItem, type KvReader, type KvRecord } from '../storage/types.js';
import { KvCodecError } from './codec-checks.js';

export const valueRowPrefix = '\u0000v/';

/** Values of at least this many bytes get a row of their own: below it, LMDB keeps a record inline in its page and the copy the history makes is cheap. */
export const valueRowBytesMin = 2048;

export function valueRowKey(key: string, version: number): string {
  return valueRowPrefix + version.toString(16).padStart(14, '0') + '/' + key;
}

/** Whether a put of `record` to a client key stores its value in a row of its own. */
export function belongsInRow(record: KvRecord): boolean {
  return !isInRow(record) && storedValueBytes(record) >= valueRowBytesMin;
}

/** The record a key holds when its value is in its row. */
export function inRowRecord(version: number): KvRecord {
  return { value: valueInRow, version };
}

/** `record` of `key` with its value read from its row when it is there (anything else as it is). */
export function inRowResolved(reader: KvReader, key: string, record: KvRecord): KvRecord;
export function inRowResolved(reader: KvReader, key: string, record: KvRecord | undefined): KvRecord | undefined;
export function inRowResolved(reader: KvReader, key: string, record: KvRecord | undefined): KvRecord | undefined {
  if (record === undefined || !isInRow(record)) return record;
  const row = reader.get(valueRowKey(key, record.version));
  if (row === undefined || row.version !== record.version || isInRow(row)) {
    throw new KvCodecError(`the value of ${JSON.stringify(key)} at version ${record.version} is not in its row (${row === undefined ? 'no row' : `a row of version ${row.version}`})`);
  }
  return row;
}

/** Items with their values read from their rows (a listing's). */
export function inRowResolvedItems(reader: KvReader, items: KvItem[]): KvItem[] {
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as KvItem;
    if (!isInRow(item)) continue;
    const row = inRowResolved(reader, item.key, item);
    items[i] = { key: item.key, value: row.value, version: row.version };
  }
  return items;
}

/**
 * `record` with its value read from its row only when asked for: a put reads the record it
 * replaces for its version, and reading a 16 KiB value for that was the cost this file removes.
 * Only for use before the transaction it reads ends (the row may be compacted away after).
 */
export function inRowOnUse(reader: KvReader, key: string, record: KvRecord | undefined): KvRecord | undefined {
  if (record === undefined || !isInRow(record)) return record;
  let resolved: KvRecord | undefined;
  return {
    get value() {
      resolved ??= inRowResolved(reader, key, record);
      return resolved.value;
    },
    version: record.version,
  };
}
