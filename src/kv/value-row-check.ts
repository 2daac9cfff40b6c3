/**
 * The value rows' invariant (value-rows.ts), checked over a whole state: every row has
 * exactly one owner, the key whose record names it or the history change that replaced that
 * record, and every record that names a row has it. The simulator checks it on every node
 * after every apply (property `value-rows`); it reads everything, so it is for small states.
 */

import { isInRow, type KvItem, type KvReader } from '../storage/types.js';
import { readStoredChanges } from './history.js';
import { afterReserved } from './leases.js';
import { valueRowKey, valueRowPrefix } from './value-rows.js';

const pageItems = 1024;

/** What breaks the invariant in `reader`'s state, or null when nothing does. */
export function valueRowProblem(reader: KvReader): string | null {
  const owners = new Map<string, string>();
  const own = (rowKey: string, owner: string): string | null => {
    const other = owners.get(rowKey);
    if (other !== undefined) return `${printable(rowKey)} is named by ${other} and by ${owner}`;
    owners.set(rowKey, owner);
    return null;
  };
  for (const item of itemsOf(reader, '', afterReserved)) {
    const problem = isInRow(item) ? own(valueRowKey(item.key, item.version), `the record of ${JSON.stringify(item.key)}`) : null;
    if (problem !== null) return problem;
  }
  for (const { version, changes } of readStoredChanges(reader, 1, Number.MAX_SAFE_INTEGER)) {
    for (const c of changes) {
      const problem = c.prev !== undefined && isInRow(c.prev) ? own(valueRowKey(c.key, c.prev.version), `the change of ${JSON.stringify(c.key)} at version ${version}`) : null;
      if (problem !== null) return problem;
    }
  }
  const rows = new Set<string>();
  for (const row of itemsOf(reader, valueRowPrefix, undefined)) {
    if (!owners.has(row.key)) return `${printable(row.key)} has no owner: nothing names it`;
    rows.add(row.key);
  }
  for (const [rowKey, owner] of owners) if (!rows.has(rowKey)) return `${owner} names ${printable(rowKey)}, which is not there`;
  return null;
}

/** Every item under `prefix` after `after`, a page at a time. */
function* itemsOf(reader: KvReader, prefix: string, after: string | undefined): Generator<KvItem> {
  for (let cursor = after; ; ) {
    const page = reader.range(prefix, cursor, pageItems);
    yield* page;
    if (page.length < pageItems) return;
    cursor = page[page.length - 1]?.key;
  }
}

function printable(rowKey: string): string {
  return `value row ${JSON.stringify(rowKey.slice(1))}`;
}
