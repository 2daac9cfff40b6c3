/**
 * How the HTTP API answers: kv results as status and body (shared by the single-key routes
 * and POST /batch), errors in the one error model, a leader's forwarded answer passed through,
 * list pages, and the response schemas fastify compiles its serializers from.
 */

import type { FastifyError, FastifyReply } from 'fastify';
import type { KvResult } from '../kv/types.js';
import type { KvItem, KvRecord } from '../storage/types.js';
import { QkvError, errorStatus } from '../wire/errors.js';
import { requestSeqHeader } from '../wire/types.js';
import type { BatchResultItem, ListItem } from '../wire/types.js';
import { forwardedFields, servedByHeader } from './forward.js';
import { jsonValue } from '../wire/values.js';
import type { ForwardedResponse } from './forward.js';

// --- response schemas (compiled once by fast-json-stringify) ---

export const putResponseSchema = {
  type: 'object',
  properties: { key: { type: 'string' }, version: { type: 'integer' }, lease: { type: 'integer' } },
  required: ['key', 'version'],
} as const;

export const getResponseSchema = {
  type: 'object',
  properties: { key: { type: 'string' }, value: { type: 'string' }, encoding: { type: 'string' }, version: { type: 'integer' } },
  required: ['key', 'value', 'version'],
} as const;

export const deleteResponseSchema = {
  type: 'object',
  properties: { key: { type: 'string' }, version: { type: 'integer' }, deleted: { type: 'boolean' } },
  required: ['key', 'version', 'deleted'],
} as const;

/** A page (`items`, `next`; values absent with keysOnly) or a count (countOnly), and the version it shows the state at. */
export const listResponseSchema = {
  type: 'object',
  properties: {
    items: { type: 'array', items: { type: 'object', properties: getResponseSchema.properties, required: ['key', 'version'] } },
    next: { type: ['string', 'null'] },
    count: { type: 'integer' },
    version: { type: 'integer' },
  },
} as const;

export const healthResponseSchema = {
  type: 'object',
  properties: { ok: { type: 'boolean' } },
  required: ['ok'],
} as const;



export function writeAnswer(reply: FastifyReply, result: KvResult): unknown {
  const answer = writeResult(result);
  if (answer.status !== 200) reply.code(answer.status);
  return answer.body;
}

/** What a single-key route answers, also a batch item's status and fields. */
export interface RouteAnswer {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
}

/** A read's answer as status and body: the entry, or 404 not_found. */
export function readResult(key: string, record: KvRecord | undefined): RouteAnswer {
  if (record === undefined) return { status: errorStatus.not_found, body: { error: 'not_found', message: 'Key not found', key } };
  return { status: 200, body: { key, ...jsonValue(record.value), version: record.version } };
}

/** A write's answer as status and body; a stale request is thrown (an error in every API). */
export function writeResult(result: KvResult): RouteAnswer {
  if (result.ok) {
    return {
      status: 200,
      body: result.op === 'put'
        ? result.lease === undefined ? { key: result.key, version: result.version } : { key: result.key, version: result.version, lease: result.lease }
        : { key: result.key, version: result.version, deleted: result.deleted },
    };
  }
  if (result.error === 'version_conflict') {
    return {
      status: errorStatus.version_conflict,
      body: {
        error: 'version_conflict',
        message: `Key version is ${result.actualVersion}, not the expected ${result.expectedVersion}; nothing was written`,
        key: result.key,
        expectedVersion: result.expectedVersion,
        actualVersion: result.actualVersion,
      },
    };
  }
  if (result.error === 'lease_not_found') throw leaseNotFound(result.key, result.lease);
  // 409: the request conflicts with what this client already did; do not retry it as is.
  throw new QkvError(
    'stale_request',
    `Stale request: sequence numbers up to ${result.lastSeq} of this client were already applied and this reply is gone; use a new ${requestSeqHeader}`,
    { reason: 'stale_request', key: result.key, lastSeq: result.lastSeq },
  );
}

export function leaseNotFound(key: string, lease: number): QkvError {
  return new QkvError('lease_not_found', `Lease ${lease} does not exist (never granted, revoked or expired); nothing was written`, { key, lease });
}

/** A forwarded single-key answer as a batch item (the leader's fields, its status, who served it). */
export function forwardedItem(response: ForwardedResponse): BatchResultItem {
  const body = forwardedFields(response) ?? { error: 'internal', message: `The leader ${response.leaderId} answered with a body that is not JSON` };
  const retryAfterSeconds = response.retryAfter === null ? NaN : Number(response.retryAfter);
  return {
    ...body,
    status: response.statusCode,
    servedBy: response.servedBy,
    ...(response.statusCode === 503 ? { retryAfterMs: Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1_000 : 1_000 } : {}),
  };
}

export function sendError(reply: FastifyReply, error: QkvError): FastifyReply {
  reply.code(error.status);
  const retryAfter = retryAfterOf(error);
  if (retryAfter !== null) reply.header('retry-after', retryAfter);
  return reply.send(error.toBody());
}

/** The Retry-After header of an error answer: whole seconds (at least 1) on a 503 or 429, else none. */
export function retryAfterOf(error: QkvError): string | null {
  if (error.status !== 503 && error.status !== 429) return null;
  return String(Math.max(1, Math.ceil((error.retryAfterMs ?? 1_000) / 1_000)));
}

/** The leader's answer, passed through byte for byte, naming the node that served it. */
export function sendForwarded(reply: FastifyReply, response: ForwardedResponse): FastifyReply {
  return reply.code(response.statusCode).headers(forwardedHeaders(response)).send(response.body);
}

/** The headers a forwarded answer is passed on with (fastify's routes and the fast path): the leader's type, who served it, its Retry-After. */
export function forwardedHeaders(response: ForwardedResponse): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': response.contentType, [servedByHeader]: response.servedBy };
  if (response.retryAfter !== null) headers['retry-after'] = response.retryAfter;
  return headers;
}

export function page(items: readonly KvItem[], limit: number): { items: readonly ListItem[]; next: string | null } {
  const last = items.length === limit ? items[items.length - 1] : undefined;
  // The serializer picks key/value/version by schema; only byte values need converting.
  return {
    items: items.every(hasTextValue) ? (items as readonly ListItem[]) : items.map(toListItem),
    next: last === undefined ? null : last.key,
  };
}

function hasTextValue(item: KvItem): boolean {
  return typeof item.value === 'string';
}

function toListItem(item: KvItem): ListItem {
  return { key: item.key, ...jsonValue(item.value), version: item.version };
}

/** Any error a route or fastify raised, as the API's error model (unexpected ones are `internal`). */
export function toQkvError(error: FastifyError | QkvError | Error, bodyBytesMax: number): QkvError {
  if (error instanceof QkvError) return error;
  const code = (error as FastifyError).code;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new QkvError('body_too_large', `Request body is larger than ${bodyBytesMax} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new QkvError('bad_request', 'Content-Type is malformed or not supported: send application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new QkvError('bad_request', 'Request body length does not match its Content-Length');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new QkvError('invalid_json', `Request body is not valid JSON`);
    default:
      break;
  }
  const statusCode = (error as FastifyError).statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    // e.g. the client aborted while sending its body.
    return new QkvError('bad_request', error.message);
  }
  return new QkvError('internal', `Internal error: ${error.message}`);
}
