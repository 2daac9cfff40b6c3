/**
 * How the HTTP API reads what its schemas cannot check: the body's media type and JSON
 * (kept as raw bytes too, to forward unchanged), a strict query-string parser, and the
 * conversion of decimal text the schemas accepted into safe integers. Every refusal is a
 * QkvError with the code the API documents, raised before anything reaches the node.
 */

import { isUtf8 } from 'node:buffer';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { Unpackr } from 'msgpackr';
import type { RequestId } from '../kv/types.js';
import { QkvError } from '../wire/errors.js';
import { requestIdOf } from './request-id.js';
import { batchRoute, clientIdHeader, msgpackMediaType, requestSeqHeader } from '../wire/types.js';

/** Most query parameters parsed from one URL; more is 400. */
const queryParamsMax = 16;
/** Longest text quoted back in an error message. */
const quotedCharsMax = 200;

// --- body ---

// Plain MessagePack, nothing else: no record structures or extensions, an integer past
// 2^53 a bigint (which the schemas refuse), a map an object (msgpackr never sets __proto__).
const bodyUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, int64AsType: 'bigint' });

/**
 * The catch-all content-type parser: checks the media type, keeps the raw bytes of JSON (to
 * forward to the leader as received) and parses the body, so the route's body schema can
 * check it. JSON everywhere; MessagePack too on POST /batch (wire msgpackMediaType: the same
 * object), whose operations are run, not forwarded as bytes. An empty body becomes
 * `undefined`, which a body schema refuses as empty.
 */
export function acceptBody(request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: unknown) => void): void {
  const type = request.headers['content-type'];
  // JSON first: its exact type is the common case and costs one comparison.
  const json = type === undefined || isJsonMediaType(type);
  const msgpack = !json && isMsgpackMediaType(type) && request.routeOptions.url === batchRoute;
  if (!json && !msgpack) {
    done(new QkvError('bad_request', `Content-Type ${quoteValue(type)} is not supported: send application/json`));
    return;
  }
  if (body.length === 0) {
    done(null, undefined);
    return;
  }
  if (!msgpack) (request as RawBodyHolder)[rawBodyField] = body;
  let parsed: unknown;
  try {
    parsed = msgpack ? msgpackBody(body) : parseJsonBody(body);
  } catch (error) {
    done(error instanceof Error ? error : new Error(String(error)));
    return;
  }
  done(null, parsed);
}

/** A JSON body's value; one that is not UTF-8 or not JSON is refused with invalid_json. */
export function parseJsonBody(body: Buffer): unknown {
  if (!isUtf8(body)) throw new QkvError('invalid_json', 'Request body is not valid UTF-8');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new QkvError('invalid_json', `Request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function msgpackBody(body: Buffer): unknown {
  try {
    return bodyUnpackr.unpack(body);
  } catch (error) {
    throw new QkvError('invalid_json', `Request body is not valid MessagePack: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function isMsgpackMediaType(type: string): boolean {
  return type === msgpackMediaType || type.toLowerCase().split(';')[0]?.trim() === msgpackMediaType;
}

/** application/json, optionally with a UTF-8 charset (JSON is UTF-8 by RFC 8259). */
export function isJsonMediaType(type: string): boolean {
  if (type === 'application/json') return true;
  const parts = type.toLowerCase().split(';');
  if (parts[0]?.trim() !== 'application/json') return false;
  for (let i = 1; i < parts.length; i++) {
    const [name, value] = (parts[i] ?? '').split('=', 2).map((s) => s.trim());
    if (name === 'charset' && value !== 'utf-8' && value !== 'utf8' && value !== '"utf-8"') return false;
  }
  return true;
}

/**
 * The request field holding its raw JSON body: declared on every request up front
 * (`decorateRequest`, see http.ts) so requests keep one shape; a WeakMap keyed by short-lived
 * requests would cost the garbage collector on every request.
 */
export const rawBodyField = 'qkvRawBody';
type RawBodyHolder = FastifyRequest & { [rawBodyField]?: Buffer | null };

/** The request's JSON body as received (null when empty). */
export function rawJsonBody(request: FastifyRequest): Buffer | null {
  return (request as RawBodyHolder)[rawBodyField] ?? null;
}

// --- query string ---

/** Query parameters: a null-prototype map; a parse problem is recorded, not thrown. */
export type ParsedQuery = Record<string, string | undefined> & { [queryProblemKey]?: string };
const queryProblemKey = Symbol('queryProblem');
/**
 * The parameter name a parse problem also sets, so that the route's query schema (which
 * allows no such name) refuses the request without a hook; the formatter then reports the
 * problem recorded under queryProblemKey.
 */
export const queryProblemMarker = '\u0000';

function recordProblem(query: ParsedQuery, problem: string): ParsedQuery {
  query[queryProblemKey] = problem;
  query[queryProblemMarker] = '';
  return query;
}

/** The parse problem recorded in `query`, if any. */
export function queryProblemOf(query: unknown): string | undefined {
  return typeof query === 'object' && query !== null ? (query as ParsedQuery)[queryProblemKey] : undefined;
}

/**
 * The router's query-string parser. Unlike fastify's default (which keeps an undecodable
 * `%FF` as literal text), a value that is not percent-encoded UTF-8, a repeated name or too
 * many parameters is recorded as a problem that the route's query schema refuses with 400. It must
 * not throw: it runs inside the router.
 */
export function parseQuery(text: string): ParsedQuery {
  const query = Object.create(null) as ParsedQuery;
  let count = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (end > start) {
      if (++count > queryParamsMax) return recordProblem(query, `More than ${queryParamsMax} query parameters`);
      const equals = text.indexOf('=', start);
      const nameEnd = equals === -1 || equals > end ? end : equals;
      const name = decodeQueryPart(text.slice(start, nameEnd));
      const value = nameEnd === end ? '' : decodeQueryPart(text.slice(nameEnd + 1, end));
      if (name === null || value === null) {
        return recordProblem(query, `Query parameter ${quoteValue(text.slice(start, nameEnd))} is not valid percent-encoded UTF-8`);
      }
      if (query[name] !== undefined) return recordProblem(query, `Query parameter ${quoteValue(name)} is given more than once`);
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


// --- numbers and the idempotency pair ---

const decimal = /^(?:0|[1-9][0-9]{0,15})$/;

/** A non-negative safe integer written in plain decimal, else null. */
export function parseDecimal(text: string): number | null {
  if (!decimal.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

/** A version the query schema accepted as decimal text, as a number (it must also be a safe integer). */
export function optionalIndex(text: string | undefined, name: 'minVersion' | 'ifVersion' | 'atVersion'): number | undefined {
  if (text === undefined) return undefined;
  const value = parseDecimal(text);
  if (value === null) {
    throw new QkvError('bad_request', `Query parameter ${name} must be a safe integer >= 0, got ${quoteValue(text)}`);
  }
  return value;
}

/** The idempotency headers (their form and pairing also stated by the route's schema) as a request id. */
export function readRequestId(request: { readonly headers: IncomingHttpHeaders }): RequestId | null {
  return requestIdOf(request.headers[clientIdHeader], request.headers[requestSeqHeader], {
    clientId: `Header ${clientIdHeader}`,
    seq: `Header ${requestSeqHeader}`,
  });
}

// --- quoting ---

/** Request text (a URL, a value) cut to a length fit for an error message. */
export function shortened(text: string): string {
  return text.length > quotedCharsMax ? `${text.slice(0, quotedCharsMax)}…` : text;
}

export function quoteValue(text: string): string {
  return JSON.stringify(shortened(text));
}

export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
