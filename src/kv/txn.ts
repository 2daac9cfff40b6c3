/**
 * What a transaction does to the state machine: evaluate every compare against the state
 * just before it, then run one branch's operations in order, each seeing the ones before.
 * Called by the state machine inside the apply batch's transaction, so the whole
 * transaction lands with the entry that carries it or not at all.
 *
 * Must never: read anything but `tx` (every replica must reach the same answer), or write
 * with any version but the entry's index.
 */

import { unreachable } from '../stdx/assert.js';
import { compareUtf8 } from '../stdx/utf8.js';
import type { KvRecord, KvValue, KvWriter } from '../storage/types.js';
import { afterReserved, detachKey, isReservedKey, type LeaseAttachments } from './leases.js';
import type { CompareOp, TxnCommand, TxnCompare, TxnOp, TxnOpResult, TxnResult } from './types.js';

export function executeTxn(tx: KvWriter, txn: TxnCommand, index: number, attachments: LeaseAttachments): TxnResult {
  const succeeded = txn.compare.every((c) => holds(c, tx.get(c.key)));
  const ops = succeeded ? txn.success : txn.failure;
  return { ok: true, op: 'txn', succeeded, version: index, results: ops.map((o) => runOp(tx, o, index, attachments)) };
}

function holds(c: TxnCompare, record: KvRecord | undefined): boolean {
  switch (c.target) {
    case 'version':
      return compareNumbers(record?.version ?? 0, c.op, c.version);
    case 'exists':
      return (record !== undefined) === (c.op === '=' ? c.exists : !c.exists);
    case 'value':
      // As etcd: a value comparison on an absent key is false, whatever the operator.
      return record !== undefined && compareNumbers(compareValues(record.value, c.value), c.op, 0);
    default:
      return unreachable(c, 'compare target');
  }
}

function compareNumbers(a: number, op: CompareOp, b: number): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '>':
      return a > b;
    default:
      return unreachable(op, 'compare op');
  }
}

/** Byte order of the stored forms (a string by its UTF-8), as keys are ordered. */
function compareValues(a: KvValue, b: KvValue): number {
  if (typeof a === 'string' && typeof b === 'string') return compareUtf8(a, b);
  return Buffer.compare(asBytes(a), asBytes(b));
}

function asBytes(v: KvValue): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

function runOp(tx: KvWriter, o: TxnOp, index: number, attachments: LeaseAttachments): TxnOpResult {
  switch (o.op) {
    case 'put':
      tx.put(o.key, { value: o.value, version: index });
      detachKey(tx, o.key, attachments);
      return { op: 'put', key: o.key, version: index };
    case 'delete': {
      const present = tx.get(o.key) !== undefined;
      if (present) tx.delete(o.key);
      detachKey(tx, o.key, attachments);
      return { op: 'delete', key: o.key, deleted: present };
    }
    case 'get': {
      const record = tx.get(o.key);
      return { op: 'get', key: o.key, record: record === undefined ? null : { value: record.value, version: record.version } };
    }
    case 'list': {
      // One more than asked tells whether the list was cut short. Reserved records sort
      // below every client key: skipped forwards (afterReserved), cut off the end in reverse.
      const reverse = o.reverse === true;
      const found = reverse ? tx.range(o.prefix, undefined, o.limit + 1, true) : tx.range(o.prefix, o.prefix.length === 0 ? afterReserved : undefined, o.limit + 1);
      const cut = reverse ? found.findIndex((i) => isReservedKey(i.key)) : -1;
      const items = cut < 0 ? found : found.slice(0, cut);
      return { op: 'list', prefix: o.prefix, items: items.slice(0, o.limit), more: items.length > o.limit };
    }
    default:
      return unreachable(o, 'txn op');
  }
}
