/**
 * The answers of single-key operations as the batch route gives them (status and the body
 * of the operation's own route), turned into results or the AttemptError the client
 * retries or reports. Shared by the HTTP transport (POST /batch) and the gRPC one (Batch,
 * whose results are put in the same shape), with the operations themselves as both send them.
 */

import { isErrorCode } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import type { BatchOpBody, BatchResultItem } from '../wire/types.js';
import { AttemptError, ProtocolError, decodedIndex } from './transport.js';
import type { DeleteRequest, GetRequest, PutRequest } from './transport.js';
import type { DeleteResult, Entry } from './types.js';
import { jsonValue } from '../wire/values.js';
import { valueFromJson } from './values.js';

/** A batch operation's 200 body, or its refusal thrown as parseError would. */
export function okItem(item: BatchResultItem): Record<string, unknown> {
  if (item.status === 200) return item;
  const { status, retryAfterMs, servedBy: _servedBy, ...body } = item;
  throw refusal(status, body, `HTTP ${status} for one operation of a batch`, typeof retryAfterMs === 'number' ? retryAfterMs : null);
}

export function refusal(status: number, body: Record<string, unknown>, fallbackMessage: string, retryAfterMs: number | null): AttemptError {
  const { error, message, ...details } = body;
  let code: ErrorCode;
  if (isErrorCode(error)) code = error;
  // Conservative for unknown answers: a 503 may still apply a write (timeout: retry with
  // the same idempotency key); other 5xx are internal; 4xx refused the request as sent.
  else code = status === 503 ? 'timeout' : status >= 500 ? 'internal' : 'bad_request';
  // The HTTP API reports a stale sequence number as bad_request with reason stale_request.
  if (code === 'bad_request' && details['reason'] === 'stale_request') code = 'stale_request';
  return new AttemptError('refused', code, typeof message === 'string' ? message : fallbackMessage, details, retryAfterMs);
}

export function stringField(json: Record<string, unknown>, name: string): string {
  const value = json[name];
  if (typeof value !== 'string') throw new ProtocolError(`answer field "${name}" is not a string`);
  return value;
}

export function deleteResult(json: Record<string, unknown>): DeleteResult {
  const deleted = json['deleted'];
  if (typeof deleted !== 'boolean') throw new ProtocolError('delete answer has no boolean "deleted"');
  return { key: stringField(json, 'key'), version: decodedIndex(json['version'], 'version'), deleted };
}

export function entryOf(json: Record<string, unknown>): Entry {
  return { key: stringField(json, 'key'), value: valueFromJson(json), version: decodedIndex(json['version'], 'version') };
}

/** Values longer than this (UTF-16 units, or bytes) go in a request of their own, not a batch. */
export const batchValueCharsMax = 16 * 1024;

/** Whether `request` may go in a batch (a lease, or a long value, goes on its own). */
export function batchablePut(request: PutRequest): boolean {
  return request.value.length <= batchValueCharsMax && request.lease === undefined;
}

export function putOp(request: PutRequest): BatchOpBody {
  const { clientId, seq } = request.requestId;
  return request.ifVersion === undefined
    ? { op: 'put', key: request.key, ...jsonValue(request.value), clientId, seq }
    : { op: 'put', key: request.key, ...jsonValue(request.value), ifVersion: request.ifVersion, clientId, seq };
}

export function deleteOp(request: DeleteRequest): BatchOpBody {
  const { clientId, seq } = request.requestId;
  return request.ifVersion === undefined ? { op: 'delete', key: request.key, clientId, seq } : { op: 'delete', key: request.key, ifVersion: request.ifVersion, clientId, seq };
}

export function getOp(request: GetRequest): BatchOpBody {
  return { op: 'get', key: request.key, ...(request.consistency === undefined ? {} : { consistency: request.consistency }), ...(request.minVersion === undefined ? {} : { minVersion: request.minVersion }) };
}
