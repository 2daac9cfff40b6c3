/**
 * The fast path for the two requests plain HTTP clients send most: `PUT /kv/{key}` and
 * `GET /kv/{key}`, served from Node's request event without fastify's request lifecycle.
 * For a one-key request that lifecycle (hooks, content-type parser, schema runs on params,
 * query and headers, reply serialization) cost about twice Node's own HTTP handling; see
 * docs/benchmarks.md, "Plain HTTP".
 *
 * It takes a request only in its plainest form: no `x-qkv-*` header; a GET without a body,
 * whose query string, if any, the route's query schema accepts; a PUT without a query string,
 * with a JSON body (or none named) whose Content-Length is within the body limit. It declines
 * every other request before reading a byte of it, and fastify's routes then serve it with
 * their full rules, so an unusual request can never be judged by a shortcut. What it serves it serves by the same rules, in the same order as the route:
 * the client's request budget, its credentials, the body (parsed by http-input.ts and checked
 * by the route's own schema, compiled by the same compiler and told by the same formatter),
 * the closing check, then the route's own handler (routes/kv.ts putKey/getKey), the same
 * answers and error model, and the same request metrics.
 *
 * Must never: answer a request it did not read whole, nor decline one it has started to
 * read (fastify could not read the body again).
 */

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { ValidateFunction } from 'ajv';
import { QkvError } from '../wire/errors.js';
import type { PerClientLimit } from './client-limits.js';
import { servedByHeader } from './forward.js';
import { forwardedHeaders, getResponseSchema, putResponseSchema, retryAfterOf, toQkvError } from './http-answers.js';
import { keyParamCharsMax } from './http-context.js';
import type { HttpContext, RequestFacts } from './http-context.js';
import { isJsonMediaType, parseJsonBody, parseQuery } from './http-input.js';
import { getQuery, putBody, schemaProblem } from './http-schemas.js';
import { getKey, putKey, putProblems } from './routes/kv.js';
import type { GetQuery, KvAnswer, PutBody } from './routes/kv.js';
import { compileSchema, compileSerializer } from './schema-compiler.js';

/** The route pattern the fast path's requests are counted under: the fastify route's. */
const kvRoute = '/kv/*';
const keyPrefix = '/kv/';
const jsonType = 'application/json; charset=utf-8';
/** A GET without a query string: every parameter at its default. */
const emptyQuery: GetQuery = Object.freeze({});

export interface KvFastPathOptions {
  readonly ctx: HttpContext;
  /** The same per-client budget fastify's routes take from. */
  readonly budget: PerClientLimit;
  /** Logs a request that failed for an unexpected reason (fastify's error handler does the same). */
  readonly logError: (error: unknown) => void;
}

/**
 * Returns the request listener's first step: true when it took the request (and will answer
 * it), false when fastify must serve it.
 */
export function kvFastPath(options: KvFastPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { ctx, budget, logError } = options;
  const validatePut: ValidateFunction = compileSchema(putBody);
  const validateGetQuery: ValidateFunction = compileSchema(getQuery);
  // 200 answers are written by the routes' response schemas, as fastify writes them.
  const writeAnswer = { PUT: compileSerializer(putResponseSchema), GET: compileSerializer(getResponseSchema) } as const;
  const putBodyProblem = schemaProblem(putProblems);
  const bodyBytesMax = ctx.limits.bodyBytesMax;
  const shapeLimits = { bodyBytesMax, keyCharsMax: keyParamCharsMax(ctx.limits) };

  /** Writes one answer: status, its headers (the type among them) and the body with its length. */
  const finish = (res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string>): void => {
    headers['content-length'] = String(Buffer.byteLength(body));
    try {
      res.writeHead(status, headers);
      res.end(body);
    } catch (error) {
      // Node refuses a header it cannot send (a forwarded answer's, say). Nothing can be
      // answered on this response any more; the request's listener must not throw.
      logError(error);
      res.destroy();
    }
  };

  const answerError = (res: ServerResponse, error: unknown, servedBy: boolean): void => {
    const qkvError = toQkvError(error instanceof Error ? error : new Error(String(error)), bodyBytesMax);
    if (qkvError.code === 'internal') logError(error);
    const headers: Record<string, string> = { 'content-type': jsonType };
    if (servedBy) headers[servedByHeader] = ctx.node.id;
    const retryAfter = retryAfterOf(qkvError);
    if (retryAfter !== null) headers['retry-after'] = retryAfter;
    finish(res, qkvError.status, JSON.stringify(qkvError.toBody()), headers);
  };

  const answerKv = (res: ServerResponse, method: 'GET' | 'PUT', answer: KvAnswer): void => {
    if (answer.via === 'here') {
      const body = answer.status === 200 ? writeAnswer[method](answer.body) : JSON.stringify(answer.body);
      finish(res, answer.status, body, { 'content-type': jsonType, [servedByHeader]: ctx.node.id });
      return;
    }
    finish(res, answer.response.statusCode, answer.response.body, forwardedHeaders(answer.response));
  };

  /** The route's handler stage: the closing check, then the answer (any refusal after it names this node, as the route's do). */
  const handle = (res: ServerResponse, method: 'GET' | 'PUT', run: () => Promise<KvAnswer>): void => {
    try {
      ctx.refuseIfClosing();
    } catch (error) {
      answerError(res, error, false);
      return;
    }
    run().then(
      (answer) => answerKv(res, method, answer),
      (error: unknown) => answerError(res, error, true),
    );
  };

  return (req, res) => {
    const plain = plainKvRequest(req.method, req.url, req.headers, shapeLimits);
    if (plain === null) return false;
    const { method, url, rawKey } = plain;
    // A query is parsed and checked as the router and the route's schema do it; one they would refuse is theirs to refuse.
    let query = emptyQuery;
    if (plain.query !== null) {
      const parsed = parseQuery(plain.query);
      if (!validateGetQuery(parsed)) return false;
      query = parsed as GetQuery;
    }
    const headers = req.headers;

    // Taken: from here on this path answers.
    const startedAt = performance.now();
    const release = budget.take(req.socket.remoteAddress ?? '');
    res.once('close', () => {
      release?.();
      // Counted once answered, as the routes' onResponse hook counts (not when the client left first).
      if (res.writableFinished) ctx.metrics.observeRequest(kvRoute, method, res.statusCode, performance.now() - startedAt);
    });
    const facts: RequestFacts = { url, headers };
    try {
      if (release === null) throw budget.refusal('requests in flight', 'wait for their answers, or back off');
      ctx.principal(facts);
    } catch (error) {
      answerError(res, error, false);
      return true;
    }
    if (method === 'GET') {
      handle(res, 'GET', () => getKey(ctx, facts, rawKey, query));
      return true;
    }
    readBody(req, (error, raw) => {
      if (raw === null) {
        answerError(res, error, false);
        return;
      }
      let body: unknown;
      try {
        body = parseJsonBody(raw);
        if (!validatePut(body)) throw putBodyProblem(validatePut.errors ?? [], 'body');
      } catch (problem) {
        answerError(res, problem, false);
        return;
      }
      handle(res, 'PUT', () => putKey(ctx, facts, rawKey, body as PutBody, raw));
    });
    return true;
  };
}

/** A request the fast path takes: its method, URL, key (decoded), query text (a GET's, after `?`) and body length. */
export interface PlainKvRequest {
  readonly method: 'GET' | 'PUT';
  readonly url: string;
  readonly rawKey: string;
  readonly query: string | null;
  readonly bodyBytes: number;
}

/**
 * The request as the fast path takes it, or null when it is not in the plainest form: GET or
 * PUT of `/kv/{key}` (a key no longer than `keyCharsMax` encoded, validly percent-encoded),
 * no `x-qkv-*` header, no chunked body; a GET without a body (its query string is the
 * caller's to check), a PUT without a query string, with a Content-Length from 1 to
 * `bodyBytesMax` and a JSON Content-Type or none.
 */
export function plainKvRequest(method: string | undefined, url: string | undefined, headers: IncomingHttpHeaders, limits: { readonly bodyBytesMax: number; readonly keyCharsMax: number }): PlainKvRequest | null {
  if ((method !== 'PUT' && method !== 'GET') || url === undefined || !url.startsWith(keyPrefix) || url.includes('#')) return null;
  const queryAt = url.indexOf('?');
  const keyEnd = queryAt === -1 ? url.length : queryAt;
  if (keyEnd - keyPrefix.length > limits.keyCharsMax || (queryAt !== -1 && method === 'PUT')) return null;
  for (const name in headers) if (name.startsWith('x-qkv-')) return null;
  if (headers['transfer-encoding'] !== undefined) return null;
  const bodyBytes = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
  if (method === 'GET' ? bodyBytes !== 0 : !(bodyBytes > 0 && bodyBytes <= limits.bodyBytesMax)) return null;
  const type = headers['content-type'];
  if (method === 'PUT' && type !== undefined && !isJsonMediaType(type)) return null;
  const rawKey = decodedKey(url.slice(keyPrefix.length, keyEnd));
  return rawKey === null ? null : { method, url, rawKey, query: queryAt === -1 ? null : url.slice(queryAt + 1), bodyBytes };
}

/** The key part of `/kv/{key}` percent-decoded as the router decodes a path parameter; null when it is not valid (the router then tells why). */
function decodedKey(encoded: string): string | null {
  if (!encoded.includes('%')) return encoded;
  try {
    return decodeURIComponent(encoded);
  } catch {
    return null;
  }
}

/**
 * Reads the whole body. Node's parser holds a request to its Content-Length: 'end' comes after
 * exactly that many bytes, and a client that leaves mid-body ends it with 'error' instead.
 * (Events, not `stream/consumers`: its async iteration cost this path twice its CPU per request.)
 */
function readBody(req: IncomingMessage, done: (...result: [error: QkvError, body: null] | [error: null, body: Buffer]) => void): void {
  const chunks: Buffer[] = [];
  let settled = false;
  const settle = (...result: [error: QkvError, body: null] | [error: null, body: Buffer]): void => {
    if (settled) return;
    settled = true;
    done(...result);
  };
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.once('end', () => settle(null, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
  // The client went away mid-body: there is no one to answer; the socket is closed.
  req.once('error', (error) => settle(new QkvError('bad_request', error.message), null));
}
