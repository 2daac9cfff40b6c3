/**
 * How the HTTP API reads a request: JSON bodies, query strings (decoded strictly, unknown
 * parameters refused), the idempotency header pair and the read options. Every refusal is a
 * QkvError with the code and message the API documents, thrown before anything reaches the
 * node.
 */

import { isUtf8 } from 'node:buffer';
import type { FastifyRequest } from 'fastify';
import type { RequestId } from '../kv/types.js';
import { isIndex } from '../stdx/safe-int.js';
import { QkvError } from '../wire/errors.js';
import { clientIdCharsMax, clientIdHeader, isClientId, readConsistencies, requestSeqHeader } from '../wire/types.js';
import type { ReadConsistency } from '../wire/types.js';

/** Most query parameters parsed from one URL; more is 400. */
const queryParamsMax = 16;
/** Longest text quoted back in an error message. */
const quotedCharsMax = 200;


export function acceptJsonBody(request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: unknown) => void): void {
  const type = request.headers['content-type'];
  if (type !== undefined && !isJsonMediaType(type)) {
    done(new QkvError('bad_request', `Content-Type ${quoteValue(type)} is not supported: send application/json`));
    return;
  }
  done(null, body);
}

/** application/json, optionally with a UTF-8 charset (JSON is UTF-8 by RFC 8259). */
function isJsonMediaType(type: string): boolean {
  if (type === 'application/json') return true;
  const parts = type.toLowerCase().split(';');
  if (parts[0]?.trim() !== 'application/json') return false;
  for (let i = 1; i < parts.length; i++) {
    const [name, value] = (parts[i] ?? '').split('=', 2).map((s) => s.trim());
    if (name === 'charset' && value !== 'utf-8' && value !== 'utf8' && value !== '"utf-8"') return false;
  }
  return true;
}

export function bodyBuffer(body: unknown): Buffer | null {
  return Buffer.isBuffer(body) && body.length > 0 ? body : null;
}

export function parseJsonObject(raw: Buffer | null, emptyMessage: string): Record<string, unknown> {
  if (raw === null) throw new QkvError('invalid_json', `Request body is empty: ${emptyMessage}`);
  if (!isUtf8(raw)) throw new QkvError('invalid_json', 'Request body is not valid UTF-8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new QkvError('invalid_json', `Request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new QkvError('bad_request', `Request body must be a JSON object: ${emptyMessage}`);
  }
  return parsed as Record<string, unknown>;
}

export function parsePutBody(raw: Buffer | null): { readonly value: string; readonly ifVersion: number | undefined } {
  const body = parseJsonObject(raw, 'PUT /kv/{key} needs {"value": "..."} and optionally "ifVersion"');
  for (const name in body) {
    if (name !== 'value' && name !== 'ifVersion') {
      throw new QkvError('bad_request', `Unknown body field ${quoteValue(name)}: expected "value" and optionally "ifVersion"`);
    }
  }
  const value = body['value'];
  if (typeof value !== 'string') {
    throw new QkvError(
      'invalid_value',
      value === undefined ? 'Body field "value" is missing' : `Body field "value" must be a string, got ${jsonType(value)}`,
    );
  }
  const ifVersion = body['ifVersion'];
  if (ifVersion !== undefined && !isIndex(ifVersion)) {
    throw new QkvError('bad_request', `Body field "ifVersion" must be a safe integer >= 0, got ${quoteValue(JSON.stringify(ifVersion))}`);
  }
  return { value, ifVersion };
}

export function readRequestId(request: FastifyRequest): RequestId | null {
  const clientId = request.headers[clientIdHeader];
  const seqText = request.headers[requestSeqHeader];
  if (clientId === undefined && seqText === undefined) return null;
  if (typeof clientId !== 'string' || typeof seqText !== 'string') {
    throw new QkvError('bad_request', `Send both ${clientIdHeader} and ${requestSeqHeader} (once each), or neither`);
  }
  if (!isClientId(clientId)) {
    throw new QkvError('bad_request', `Header ${clientIdHeader} must be 1 to ${clientIdCharsMax} visible ASCII characters`);
  }
  const seq = parseDecimal(seqText);
  if (seq === null || seq < 1) {
    throw new QkvError('bad_request', `Header ${requestSeqHeader} must be a safe integer >= 1, got ${quoteValue(seqText)}`);
  }
  return { clientId, seq };
}

const decimal = /^(?:0|[1-9][0-9]{0,15})$/;

/** A non-negative safe integer written in plain decimal, else null. */
export function parseDecimal(text: string): number | null {
  if (!decimal.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

/** Query parameters: a null-prototype map; a parse problem is recorded, not thrown. */
export type ParsedQuery = Record<string, string | undefined> & { [queryProblem]?: string };
const queryProblem = Symbol('queryProblem');

/**
 * The router's query-string parser. Unlike fastify's default (which keeps an undecodable
 * `%FF` as literal text), a value that is not percent-encoded UTF-8, a repeated name or too
 * many parameters is recorded as a problem that the route answers with 400. It must not
 * throw: it runs inside the router.
 */
export function parseQuery(text: string): ParsedQuery {
  const query = Object.create(null) as ParsedQuery;
  let count = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (end > start) {
      if (++count > queryParamsMax) {
        query[queryProblem] = `More than ${queryParamsMax} query parameters`;
        return query;
      }
      const equals = text.indexOf('=', start);
      const nameEnd = equals === -1 || equals > end ? end : equals;
      const name = decodeQueryPart(text.slice(start, nameEnd));
      const value = nameEnd === end ? '' : decodeQueryPart(text.slice(nameEnd + 1, end));
      if (name === null || value === null) {
        query[queryProblem] = `Query parameter ${quoteValue(text.slice(start, nameEnd))} is not valid percent-encoded UTF-8`;
        return query;
      }
      if (query[name] !== undefined) {
        query[queryProblem] = `Query parameter ${quoteValue(name)} is given more than once`;
        return query;
      }
      query[name] = value;
    }
    start = end + 1;
  }
  return query;
}

function decodeQueryPart(part: string): string | null {
  const spaced = part.includes('+') ? part.replaceAll('+', ' ') : part;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return null;
  }
}

export const noParams: readonly string[] = [];
export const getParams: readonly string[] = ['consistency', 'minVersion'];
export const deleteParams: readonly string[] = ['ifVersion'];
export const listParams: readonly string[] = ['prefix', 'after', 'limit', 'consistency', 'minVersion'];
export const debugStoreParams: readonly string[] = ['after', 'limit'];

/** Refuses parse problems and parameters the route does not know (typos must not pass). */
export function checkQuery(raw: unknown, allowed: readonly string[]): ParsedQuery {
  const query = raw as ParsedQuery;
  const problem = query[queryProblem];
  if (problem !== undefined) throw new QkvError('bad_request', problem);
  for (const name in query) {
    if (!allowed.includes(name)) {
      throw new QkvError(
        'bad_request',
        allowed.length === 0
          ? `Unknown query parameter ${quoteValue(name)}: this route takes none`
          : `Unknown query parameter ${quoteValue(name)}: expected ${allowed.join(', ')}`,
      );
    }
  }
  return query;
}

export function optionalIndex(query: ParsedQuery, name: 'minVersion' | 'ifVersion'): number | undefined {
  const text = query[name];
  if (text === undefined) return undefined;
  const value = parseDecimal(text);
  if (value === null) {
    throw new QkvError('bad_request', `Query parameter ${name} must be a safe integer >= 0, got ${quoteValue(text)}`);
  }
  return value;
}

export function readConsistency(query: ParsedQuery, minVersion: number | undefined): ReadConsistency {
  const text = query['consistency'];
  if (text === undefined) return minVersion === undefined ? 'linearizable' : 'local';
  if (!(readConsistencies as readonly string[]).includes(text)) {
    throw new QkvError('bad_request', `Query parameter consistency must be one of ${readConsistencies.join(', ')}, got ${quoteValue(text)}`);
  }
  return text as ReadConsistency;
}


export function quoteValue(text: string): string {
  return JSON.stringify(text.length > quotedCharsMax ? `${text.slice(0, quotedCharsMax)}…` : text);
}

export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

