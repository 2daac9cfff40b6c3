/**
 * The value rows' invariant (value-rows.ts), checked over a whole state: every row has
 * exactly one owner, the key whose record names it or the history change that replaced that
 * record, and every record that names a row has it. The simulator checks it on every node
 * after every apply (property `value-rows`); it reads everything, so it is for small states.
 */

import { isInRow } from '../storage/record-codec.js';
import type { KvReader } from '../storage/types.js';
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
  for (let after: string | undefined = afterReserved; ; ) {
    const page = reader.range('', after, pageItems);
    for (const item of page) {
      const problem = isInRow(item) ? own(valueRowKey(item.key, item.version), `the record of ${JSON.stringify(item.key)}`) : null;
      if (problem !== null) return problem;
    }
    if (page.length < pageItems) break;
    after = page[page.length - 1]?.key;
  }
  for (const { version, changes } of readStoredChanges(reader, 1, Number.MAX_SAFE_INTEGER)) {
    for (const c of changes) {
      const problem = c.prev !== undefined && isInRow(c.prev) ? own(valueRowKey(c.key, c.prev.version), `the change of ${JSON.stringify(c.key)} at version ${version}`) : null;
      if (problem !== null) return problem;
    }
  }
  const rows = new Set<string>();
  for (let after: string | undefined; ; ) {
    const page = reader.range(valueRowPrefix, after, pageItems);
    for (const row of page) {
      if (!owners.has(row.key)) return `${printable(row.key)} has no owner: nothing names it`;
      rows.add(row.key);
    }
    if (page.length < pageItems) break;
    after = page[page.length - 1]?.key;
  }
  for (const [rowKey, owner] of owners) if (!rows.has(rowKey)) return `${owner} names ${printable(rowKey)}, which is not there`;
  return null;
}

function printable(rowKey: string): string {
  return `value row ${JSON.stringify(rowKey.slice(1))}`;
}
