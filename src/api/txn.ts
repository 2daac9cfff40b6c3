/**
 * POST /txn: the body rules of a transaction (wire/types.ts TxnBody) and the answer's shape.
 * The whole body is validated before anything is proposed, so a transaction with one bad
 * compare or operation is refused as a whole (400/413, naming where) and changes nothing.
 * Shared by the HTTP route and the client's JSON; the meaning of a transaction is the state
 * machine's (kv/txn.ts).
 *
 * Must never: let a key or value through that PUT /kv/{key} would refuse, accept more than
 * `txnOpsMax` compares or operations per branch, or a list longer than the node's page.
 */

import type { RequestId, TxnCommand, TxnCompare, TxnOp, TxnOpResult, TxnResult } from '../kv/types.js';
import { isIndex } from '../stdx/safe-int.js';
import { QkvError } from '../wire/errors.js';
import { txnOpsMax, type TxnOpResponse, type TxnResponse } from '../wire/types.js';
import { jsonValue } from '../wire/values.js';
import { valueOfJson } from './json-values.js';
import type { InputValidator } from './validation.js';

export const txnUsage =
  'POST /txn needs {"compare": [{"key", "version"|"value"|"exists", "op"?}], "success": [ops], "failure": [ops]}, ops being {"op": "put"|"delete"|"get"|"list", ...}';

const compareOps: readonly unknown[] = ['=', '!=', '<', '>'];
const opFields = {
  put: ['op', 'key', 'value', 'encoding'],
  delete: ['op', 'key'],
  get: ['op', 'key'],
  list: ['op', 'prefix', 'limit', 'reverse'],
} as const;

export interface TxnLimits {
  /** The longest list an operation may ask for (the node's page size). */
  readonly listLimitMax: number;
}

/** Validates a parsed /txn body into a command; throws QkvError naming the first problem. */
export function parseTxn(body: Record<string, unknown>, validate: InputValidator, limits: TxnLimits, requestId: RequestId | null): TxnCommand {
  for (const name in body) {
    if (name !== 'compare' && name !== 'success' && name !== 'failure') throw new QkvError('bad_request', `Unknown body field ${JSON.stringify(name)}: ${txnUsage}`);
  }
  const compare = listOf(body, 'compare', (raw) => parseCompare(raw, validate));
  const success = listOf(body, 'success', (raw) => parseOp(raw, validate, limits));
  const failure = listOf(body, 'failure', (raw) => parseOp(raw, validate, limits));
  return { op: 'txn', compare, success, failure, ...(requestId === null ? {} : { requestId }) };
}

function listOf<T>(body: Record<string, unknown>, field: 'compare' | 'success' | 'failure', parse: (raw: unknown) => T): T[] {
  const raw = body[field];
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new QkvError('bad_request', `Body field "${field}" must be an array: ${txnUsage}`);
  if (raw.length > txnOpsMax) throw new QkvError('bad_request', `Body field "${field}" holds at most ${txnOpsMax} entries, got ${raw.length}`, { txnOpsMax });
  return raw.map((item: unknown, index) => {
    try {
      return parse(item);
    } catch (error) {
      if (!(error instanceof QkvError)) throw error;
      throw new QkvError(error.code, `${field}[${index}]: ${error.message}; nothing was run`, { ...error.details, field, index });
    }
  });
}

function objectOf(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new QkvError('bad_request', 'must be a JSON object');
  return raw as Record<string, unknown>;
}

function checkedKey(raw: unknown, validate: InputValidator, field = 'key'): string {
  if (typeof raw !== 'string') throw new QkvError('invalid_key', `field "${field}" must be a string`);
  const problem = validate.key(raw);
  if (problem !== null) throw new QkvError(problem.code, problem.message, { key: raw });
  return raw;
}

function parseCompare(raw: unknown, validate: InputValidator): TxnCompare {
  const c = objectOf(raw);
  for (const name in c) {
    if (!['key', 'op', 'version', 'value', 'encoding', 'exists'].includes(name)) throw new QkvError('bad_request', `unknown field ${JSON.stringify(name)}: a compare takes key, op and one of version, value (and its encoding), exists`);
  }
  const key = checkedKey(c['key'], validate);
  const op = c['op'] ?? '=';
  if (!compareOps.includes(op)) throw new QkvError('bad_request', `field "op" must be "=", "!=", "<" or ">", got ${JSON.stringify(op)}`);
  const targets = (['version', 'value', 'exists'] as const).filter((t) => c[t] !== undefined);
  if (targets.length !== 1) throw new QkvError('bad_request', `a compare needs exactly one of "version", "value", "exists", got ${targets.length === 0 ? 'none' : targets.join(' and ')}`);
  const cmp = op as TxnCompare['op'];
  switch (targets[0]) {
    case 'version': {
      const version = c['version'];
      if (!isIndex(version)) throw new QkvError('bad_request', 'field "version" must be a safe integer >= 0 (0: the key is absent)');
      return { key, target: 'version', op: cmp, version };
    }
    case 'value': {
      if (typeof c['value'] !== 'string') throw new QkvError('invalid_value', 'field "value" must be a string');
      const value = valueOfJson(c, 'field "value"');
      const problem = validate.value(value);
      if (problem !== null) throw new QkvError(problem.code, problem.message, { key });
      return { key, target: 'value', op: cmp, value };
    }
    default: {
      const exists = c['exists'];
      if (typeof exists !== 'boolean') throw new QkvError('bad_request', 'field "exists" must be true or false');
      if (cmp !== '=' && cmp !== '!=') throw new QkvError('bad_request', `"exists" compares with "=" or "!=", got "${cmp}"`);
      return { key, target: 'exists', op: cmp, exists };
    }
  }
}

function parseOp(raw: unknown, validate: InputValidator, limits: TxnLimits): TxnOp {
  const o = objectOf(raw);
  const kind = o['op'];
  if (kind !== 'put' && kind !== 'delete' && kind !== 'get' && kind !== 'list') {
    throw new QkvError('bad_request', `field "op" must be "put", "delete", "get" or "list", got ${JSON.stringify(kind) ?? 'nothing'}`);
  }
  const allowed: readonly string[] = opFields[kind];
  for (const name in o) {
    if (!allowed.includes(name)) throw new QkvError('bad_request', `unknown field ${JSON.stringify(name)} for "${kind}": expected ${allowed.join(', ')}`);
  }
  switch (kind) {
    case 'put': {
      const key = checkedKey(o['key'], validate);
      if (typeof o['value'] !== 'string') throw new QkvError('invalid_value', o['value'] === undefined ? 'field "value" is missing' : 'field "value" must be a string');
      const value = valueOfJson(o, 'field "value"');
      const problem = validate.value(value);
      if (problem !== null) throw new QkvError(problem.code, problem.message, { key });
      return { op: 'put', key, value };
    }
    case 'delete':
    case 'get':
      return { op: kind, key: checkedKey(o['key'], validate) };
    case 'list': {
      const prefix = o['prefix'] ?? '';
      if (typeof prefix !== 'string') throw new QkvError('bad_request', 'field "prefix" must be a string');
      if (prefix.length > 0) checkedKey(prefix, validate, 'prefix');
      const limit = o['limit'] ?? limits.listLimitMax;
      if (!isIndex(limit) || limit < 1 || limit > limits.listLimitMax) {
        throw new QkvError('bad_request', `field "limit" must be an integer from 1 to ${limits.listLimitMax}`, { listLimitMax: limits.listLimitMax });
      }
      const reverse = o['reverse'] ?? false;
      if (typeof reverse !== 'boolean') throw new QkvError('bad_request', `field "reverse" must be true or false, got ${JSON.stringify(reverse)}`);
      return { op: 'list', prefix, limit, ...(reverse ? { reverse } : {}) };
    }
  }
}

/** A transaction's answer as JSON; a stale request is an error, as for single-key writes. */
export function txnAnswer(result: TxnResult): TxnResponse {
  if (!result.ok) {
    throw new QkvError('stale_request', `Stale request: sequence numbers up to ${result.lastSeq} of this client were already applied and this reply is gone`, {
      reason: 'stale_request',
      lastSeq: result.lastSeq,
    });
  }
  return { succeeded: result.succeeded, version: result.version, results: result.results.map(opAnswer) };
}

function opAnswer(r: TxnOpResult): TxnOpResponse {
  switch (r.op) {
    case 'put':
    case 'delete':
      return r;
    case 'get':
      return r.record === null ? { op: 'get', key: r.key, found: false } : { op: 'get', key: r.key, found: true, ...jsonValue(r.record.value), version: r.record.version };
    case 'list':
      return { op: 'list', prefix: r.prefix, items: r.items.map((i) => ({ key: i.key, ...jsonValue(i.value), version: i.version })), more: r.more };
  }
}
