/**
 * POST /batch: the body rules of a batch of independent key operations (wire/types.ts
 * BatchBody). A batch saves a client the per-request cost of HTTP — parsing, routing,
 * one answer write per operation — which on a small machine is most of a write's CPU; the
 * client library gathers the operations its callers issue in one event-loop turn into one
 * batch (client/batcher.ts). Each operation keeps its own semantics: its own idempotency
 * pair, compare-and-set, consistency, and its own answer. A batch is not a transaction.
 *
 * The whole body is validated before anything runs, so a batch with one malformed
 * operation is refused as a whole (400, naming the operation's index) and changes nothing.
 *
 * Must never: let an operation through that its single-key route would refuse as input,
 * or accept more than `opsMax` operations.
 */

import type { KvCommand, RequestId } from '../kv/types.js';
import { isIndex } from '../stdx/safe-int.js';
import { QkvError } from '../wire/errors.js';
import { readConsistencies } from '../wire/types.js';
import type { ReadConsistency } from '../wire/types.js';
import { valueOfJson } from './json-values.js';
import { deleteCommand, putCommand } from './ops.js';
import { requestIdOf } from './request-id.js';
import type { InputValidator } from './validation.js';

/** A validated batch operation, ready to run. */
export type BatchOp =
  | { readonly op: 'write'; readonly command: KvCommand }
  | { readonly op: 'get'; readonly key: string; readonly consistency: ReadConsistency; readonly minVersion: number | undefined };

const usage = 'POST /batch needs {"ops": [{"op": "put"|"get"|"delete", "key": "...", ...}, ...]}';
const fieldsOf = {
  put: ['op', 'key', 'value', 'encoding', 'ifVersion', 'clientId', 'seq'],
  delete: ['op', 'key', 'ifVersion', 'clientId', 'seq'],
  get: ['op', 'key', 'consistency', 'minVersion'],
} as const;

/** Validates a parsed batch body; throws QkvError (400/413) naming the first bad operation. */
export function parseBatch(body: Record<string, unknown>, validate: InputValidator, opsMax: number): BatchOp[] {
  for (const name in body) {
    if (name !== 'ops') throw new QkvError('bad_request', `Unknown body field ${JSON.stringify(name)}: ${usage}`);
  }
  const ops = body['ops'];
  if (!Array.isArray(ops) || ops.length === 0) throw new QkvError('bad_request', `Body field "ops" must be a non-empty array: ${usage}`);
  if (ops.length > opsMax) throw new QkvError('bad_request', `A batch carries at most ${opsMax} operations, got ${ops.length}`, { opsMax });
  return ops.map((raw: unknown, index) => {
    try {
      return parseOp(raw, validate);
    } catch (error) {
      if (!(error instanceof QkvError)) throw error;
      throw new QkvError(error.code, `Operation ${index}: ${error.message}; nothing in the batch was run`, { ...error.details, index });
    }
  });
}

function parseOp(raw: unknown, validate: InputValidator): BatchOp {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new QkvError('bad_request', 'must be a JSON object');
  const op = raw as Record<string, unknown>;
  const kind = op['op'];
  if (kind !== 'put' && kind !== 'delete' && kind !== 'get') {
    throw new QkvError('bad_request', `field "op" must be "put", "get" or "delete", got ${JSON.stringify(kind) ?? 'nothing'}`);
  }
  const allowed: readonly string[] = fieldsOf[kind];
  for (const name in op) {
    if (!allowed.includes(name)) throw new QkvError('bad_request', `unknown field ${JSON.stringify(name)} for "${kind}": expected ${allowed.join(', ')}`);
  }
  const key = op['key'];
  if (typeof key !== 'string') throw new QkvError('invalid_key', 'field "key" must be a string');
  const keyProblem = validate.key(key);
  if (keyProblem !== null) throw new QkvError(keyProblem.code, keyProblem.message, { key });
  if (kind === 'get') {
    const minVersion = optionalIndex(op, 'minVersion');
    const consistency = op['consistency'];
    if (consistency !== undefined && !(readConsistencies as readonly unknown[]).includes(consistency)) {
      throw new QkvError('bad_request', `field "consistency" must be one of ${readConsistencies.join(', ')}`);
    }
    // As GET /kv/{key}: linearizable by default, local when only minVersion is given.
    const chosen = (consistency as ReadConsistency | undefined) ?? (minVersion === undefined ? 'linearizable' : 'local');
    return { op: 'get', key, consistency: chosen, minVersion };
  }
  const ifVersion = optionalIndex(op, 'ifVersion');
  const requestId = readRequestId(op);
  if (kind === 'delete') {
    return { op: 'write', command: deleteCommand(key, ifVersion, requestId) };
  }
  if (typeof op['value'] !== 'string') throw new QkvError('invalid_value', op['value'] === undefined ? 'field "value" is missing' : 'field "value" must be a string');
  const value = valueOfJson(op, 'field "value"');
  const valueProblem = validate.value(value);
  if (valueProblem !== null) throw new QkvError(valueProblem.code, valueProblem.message, { key });
  return { op: 'write', command: putCommand(key, value, ifVersion, requestId) };
}

function optionalIndex(op: Record<string, unknown>, name: 'ifVersion' | 'minVersion'): number | undefined {
  const value = op[name];
  if (value === undefined) return undefined;
  if (!isIndex(value)) throw new QkvError('bad_request', `field "${name}" must be a safe integer >= 0`);
  return value;
}

function readRequestId(op: Record<string, unknown>): RequestId | null {
  return requestIdOf(op['clientId'], op['seq'], { clientId: 'field "clientId"', seq: 'field "seq"' });
}
