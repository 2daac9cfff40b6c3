/**
 * The byte layout of a transaction inside the kv codec (codec.ts frames it: format tag,
 * op 'txn', request id). Fields by position, as for single-key commands:
 *   compare:  [key, 'version', op, version] | [key, 'value', op, value] | [key, 'exists', op, bool]
 *   op:       ['put', key, value] | ['delete', key] | ['get', key] | ['list', prefix, limit]
 *             | ['list', prefix, limit, true] (in reverse; the field is absent otherwise, so
 *             entries of either kind decode as they always did)
 *   result:   [succeeded, version, [opResult…]] after the tag, where opResult is
 *             ['put', key, version] | ['delete', key, deleted] | ['get', key, value|null, version]
 *             | ['list', prefix, [[key, value, version]…], more]
 *
 * Must never accept what the state machine could not apply (an empty key, an unknown op,
 * a list without a positive limit): the encoder runs the same checks, so a transaction
 * that reached the log always decodes.
 */

import type { KvItem, KvValue } from '../storage/types.js';
import { checkIndex, checkString, checkValue, copyBytes, describe, KvCodecError } from './codec-checks.js';
import type { CompareOp, TxnCommand, TxnCompare, TxnOp, TxnOpResult } from './types.js';

const compareOps: ReadonlySet<string> = new Set(['=', '!=', '<', '>']);

export function txnToFields(txn: TxnCommand): unknown[] {
  return [txn.compare.map(compareToTuple), txn.success.map(opToTuple), txn.failure.map(opToTuple)];
}

/** The compare, success and failure lists of a txn command tuple (fields 2–4). */
export function txnFromFields(
  fields: readonly unknown[],
  context: string,
  copyValue: boolean,
): Pick<TxnCommand, 'compare' | 'success' | 'failure'> {
  return {
    compare: checkArray(fields[0], 'compare', context).map((c) => compareFromTuple(c, context, copyValue)),
    success: checkArray(fields[1], 'success', context).map((o) => opFromTuple(o, context, copyValue)),
    failure: checkArray(fields[2], 'failure', context).map((o) => opFromTuple(o, context, copyValue)),
  };
}

export function txnResultToFields(succeeded: boolean, version: number, results: readonly TxnOpResult[]): unknown[] {
  return [succeeded, version, results.map(opResultToTuple)];
}

export function txnResultFromFields(
  fields: readonly unknown[],
  context: string,
): { succeeded: boolean; version: number; results: TxnOpResult[] } {
  const succeeded = fields[0];
  if (typeof succeeded !== 'boolean') throw new KvCodecError(`Cannot ${context}: succeeded must be a boolean, got ${describe(succeeded)}`);
  return {
    succeeded,
    version: checkIndex(fields[1], 'version', context),
    results: checkArray(fields[2], 'results', context).map((r) => opResultFromTuple(r, context)),
  };
}

function compareToTuple(c: TxnCompare): unknown[] {
  switch (c.target) {
    case 'version':
      return [c.key, 'version', c.op, c.version];
    case 'value':
      return [c.key, 'value', c.op, c.value];
    case 'exists':
      return [c.key, 'exists', c.op, c.exists];
  }
}

function compareFromTuple(tuple: unknown, context: string, copyValue: boolean): TxnCompare {
  const [key, target, op, operand] = checkFields(tuple, [4], 'compare', context);
  const k = checkKey(key, context);
  if (typeof op !== 'string' || !compareOps.has(op)) throw new KvCodecError(`Cannot ${context}: compare op must be =, !=, < or >, got ${describe(op)}`);
  const cmp = op as CompareOp;
  switch (target) {
    case 'version':
      return { key: k, target, op: cmp, version: checkIndex(operand, 'compare version', context) };
    case 'value':
      return { key: k, target, op: cmp, value: ownValue(checkValue(operand, context), copyValue) };
    case 'exists':
      if (typeof operand !== 'boolean') throw new KvCodecError(`Cannot ${context}: compare exists must be a boolean, got ${describe(operand)}`);
      if (cmp !== '=' && cmp !== '!=') throw new KvCodecError(`Cannot ${context}: compare exists takes = or !=, got ${cmp}`);
      return { key: k, target, op: cmp, exists: operand };
    default:
      throw new KvCodecError(`Cannot ${context}: compare target must be version, value or exists, got ${describe(target)}`);
  }
}

function opToTuple(o: TxnOp): unknown[] {
  switch (o.op) {
    case 'put':
      return ['put', o.key, o.value];
    case 'delete':
      return ['delete', o.key];
    case 'get':
      return ['get', o.key];
    case 'list':
      return o.reverse === true ? ['list', o.prefix, o.limit, true] : ['list', o.prefix, o.limit];
  }
}

function opFromTuple(tuple: unknown, context: string, copyValue: boolean): TxnOp {
  const fields = checkFields(tuple, [2, 3, 4], 'txn op', context);
  const [op, a, b, c] = fields;
  const arity = (n: number): void => {
    if (fields.length !== n) throw new KvCodecError(`Cannot ${context}: a txn ${String(op)} has ${n} fields, got ${fields.length}`);
  };
  switch (op) {
    case 'put':
      arity(3);
      return { op, key: checkKey(a, context), value: ownValue(checkValue(b, context), copyValue) };
    case 'delete':
    case 'get':
      arity(2);
      return { op, key: checkKey(a, context) };
    case 'list': {
      if (fields.length === 4 && c !== true) throw new KvCodecError(`Cannot ${context}: a txn list's fourth field must be true (reverse), got ${describe(c)}`);
      const limit = checkIndex(b, 'list limit', context);
      if (limit < 1) throw new KvCodecError(`Cannot ${context}: list limit must be at least 1`);
      return { op, prefix: checkString(a, 'prefix', context), limit, ...(fields.length === 4 ? { reverse: true } : {}) };
    }
    default:
      throw new KvCodecError(`Cannot ${context}: txn op must be put, delete, get or list, got ${describe(op)}`);
  }
}

function opResultToTuple(r: TxnOpResult): unknown[] {
  switch (r.op) {
    case 'put':
      return ['put', r.key, r.version];
    case 'delete':
      return ['delete', r.key, r.deleted];
    case 'get':
      return ['get', r.key, r.record?.value ?? null, r.record?.version ?? 0];
    case 'list':
      return ['list', r.prefix, r.items.map((i) => [i.key, i.value, i.version]), r.more];
  }
}

function opResultFromTuple(tuple: unknown, context: string): TxnOpResult {
  const fields = checkFields(tuple, [3, 4], 'txn op result', context);
  const [op, a, b, c] = fields;
  switch (op) {
    case 'put':
      return { op, key: checkKey(a, context), version: checkIndex(b, 'version', context) };
    case 'delete':
      if (typeof b !== 'boolean') throw new KvCodecError(`Cannot ${context}: deleted must be a boolean, got ${describe(b)}`);
      return { op, key: checkKey(a, context), deleted: b };
    case 'get':
      return {
        op,
        key: checkKey(a, context),
        record: b === null ? null : { value: ownValue(checkValue(b, context), true), version: checkIndex(c, 'version', context) },
      };
    case 'list': {
      if (typeof c !== 'boolean') throw new KvCodecError(`Cannot ${context}: more must be a boolean, got ${describe(c)}`);
      const items: KvItem[] = checkArray(b, 'items', context).map((item) => {
        const [key, value, version] = checkFields(item, [3], 'list item', context);
        return { key: checkKey(key, context), value: ownValue(checkValue(value, context), true), version: checkIndex(version, 'version', context) };
      });
      return { op, prefix: checkString(a, 'prefix', context), items, more: c };
    }
    default:
      throw new KvCodecError(`Cannot ${context}: txn op result must be put, delete, get or list, got ${describe(op)}`);
  }
}

function checkKey(value: unknown, context: string): string {
  const key = checkString(value, 'key', context);
  if (key.length === 0) throw new KvCodecError(`Cannot ${context}: key must not be empty`);
  return key;
}

function checkArray(value: unknown, name: string, context: string): unknown[] {
  if (!Array.isArray(value)) throw new KvCodecError(`Cannot ${context}: ${name} must be an array, got ${describe(value)}`);
  return value as unknown[];
}

function checkFields(value: unknown, lengths: readonly number[], name: string, context: string): unknown[] {
  const fields = checkArray(value, name, context);
  if (!lengths.includes(fields.length)) {
    throw new KvCodecError(`Cannot ${context}: a ${name} has ${lengths.join(' or ')} fields, got ${fields.length}`);
  }
  return fields;
}

/** A decoded bin views the entry's bytes; a value kept in state or handed out gets its own. */
function ownValue(value: KvValue, copy: boolean): KvValue {
  return copy && typeof value !== 'string' ? copyBytes(value) : value;
}
