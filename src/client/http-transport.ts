/**
 * The client's HTTP/JSON transport: one keep-alive undici Pool per node, one request per
 * attempt, answers decoded into the client's result types and failures into AttemptError.
 * Owns the mapping of undici connection errors to `unreachable` (never sent) or `lost`
 * (may have been sent).
 *
 * Must never: retry (undici's pools do not; client.ts decides), follow redirects, or read
 * an unbounded body (responses are capped at `responseBytesMax`).
 */

import { jsonValue } from '../wire/values.js';
import { Packr } from 'msgpackr';
import { Agent, Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { requestNotSentCodes } from '../wire/errors.js';
import { batchRoute, clientIdHeader, msgpackMediaType, requestSeqHeader, txnRoute } from '../wire/types.js';
import type { BatchOpBody, BatchResultItem, LeaseGrantResponse, LeaseInfoResponse, LeaseKeepAliveResponse, LeaseRevokeResponse, MembersResponse, MembershipChangeResponse, TxnResponse } from '../wire/types.js';
import { Batcher } from './batcher.js';
import type { BatchKind, BatchLimits } from './batcher.js';
import { InvalidArgumentError } from './errors.js';
import { checkRecord, splitLines } from './backup-file.js';
import { changeOf, membersOf } from './member-answers.js';
import { AttemptError, ProtocolError, decodedIndex, serverBudgetMs } from './transport.js';
import type { BackupSink, ClientTransport, DeleteRequest, GetRequest, ListRequest, MemberChangeRequest, PutRequest, TxnRequest, WatchStream, WatchStreamRequest, WriteRequestId } from './transport.js';
import { txnResponseOf } from './txn-answer.js';
import { batchablePut, deleteOp, deleteResult, entryOf, getOp, okItem, putOp, refusal, stringField } from './batch-items.js';
import type { ClientTls, DeleteResult, Entry, ListPage, NodeStatus, PutResult } from './types.js';

export interface HttpTransportOptions {
  /** Open connections per node (each carries one request at a time). */
  readonly connectionsPerEndpoint: number;
  /** Gather concurrent get/put/delete calls into POST /batch requests (batcher.ts); null: one request each. */
  readonly batching: BatchLimits | null;
  /** Sent as `Authorization: Bearer <token>` with every request; null: none. */
  readonly token: string | null;
  /** TLS options for https:// endpoints (CA, client certificate); null: the system's CAs, no client certificate. */
  readonly tls: ClientTls | null;
}

/** JSON framing of one batch operation beyond its key and value. */
const batchOpOverheadBytes = 96;

/** The header the server reads an attempt's remaining time from (api/forward.ts). */
const timeoutHeader = 'x-qkv-timeout-ms';
/** Establishing a TCP connection; past it the request was never sent. */
const connectTimeoutMs = 1_000;
/** Idle keep-alive connections are closed after this (below the server's 65 s). */
const keepAliveMs = 4_000;
/** A watch stream silent this long is taken for dead (the server sends progress every few seconds). */
const watchGapMsMax = 30_000;
/** Largest answer accepted (a page of 1,000 values of 1 MiB is the worst case of /kv). */
const responseBytesMax = 1024 * 1024 * 1024;
/** Longest silence inside a backup stream before it is given up. */
const backupGapMsMax = 30_000;


const jsonHeaders = { 'content-type': 'application/json' };

/** Characters of values from which a batch goes as MessagePack (below, JSON is as fast or faster). */
const msgpackBatchValueCharsMin = 32 * 1024;

function valueChars(ops: readonly BatchOpBody[]): number {
  let chars = 0;
  for (const op of ops) if (op.op === 'put') chars += op.value.length;
  return chars;
}

/**
 * Batch bodies as plain MessagePack: maps and arrays as the JSON body has them, no records or
 * extensions, and, as JSON.stringify does, no field whose value is undefined (msgpackr's
 * skipValues, which its type declarations leave out).
 */
const batchPackr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false, skipValues: [undefined] } as ConstructorParameters<typeof Packr>[0]);

export class HttpTransport implements ClientTransport {
  readonly kind = 'http' as const;
  private readonly pools = new Map<string, Pool>();
  private watchAgent: Agent | null = null;
  private readonly watchBodies = new Set<Dispatcher.ResponseData['body']>();
  private readonly batcher: Batcher | null;
  /** Endpoints that refused a MessagePack batch body (a server from before it): sent JSON from then on. */
  private readonly jsonBatchesOnly = new Set<string>();
  private closed = false;

  /** undici's TLS options for every pool (empty without tls). */
  private readonly connect: { readonly connect?: { ca?: Buffer; cert?: Buffer; key?: Buffer } };
  /** The credentials every request carries (empty without a token). */
  private readonly auth: Readonly<Record<string, string>>;

  constructor(private readonly options: HttpTransportOptions) {
    this.auth = options.token === null ? {} : { authorization: `Bearer ${options.token}` };
    const t = options.tls;
    this.connect = t === null ? {} : { connect: { ...(t.ca === undefined ? {} : { ca: Buffer.from(t.ca) }), ...(t.cert === undefined ? {} : { cert: Buffer.from(t.cert) }), ...(t.key === undefined ? {} : { key: Buffer.from(t.key) }) } };
    this.batcher = options.batching === null ? null : new Batcher((endpoint, ops, timeoutMs) => this.sendBatch(endpoint, ops, timeoutMs), options.batching);
  }

  normalize(endpoint: string): string {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new InvalidArgumentError('bad_request', `Endpoint ${JSON.stringify(endpoint)} is not a URL (expected http://host:port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InvalidArgumentError('bad_request', `Endpoint ${JSON.stringify(endpoint)} must use http:// or https:// for the HTTP transport`);
    }
    if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
      throw new InvalidArgumentError('bad_request', `Endpoint ${JSON.stringify(endpoint)} must be a bare origin (http://host:port), without a path`);
    }
    return url.origin;
  }

  async put(endpoint: string, request: PutRequest, timeoutMs: number): Promise<PutResult> {
    // A long value goes on its own, as a batch of one in MessagePack: the same write
    // (idempotency pair and all) without the JSON body's two large strings on the server.
    const alone = this.batcher !== null && !batchablePut(request) && request.lease === undefined && request.value.length >= msgpackBatchValueCharsMin && !this.jsonBatchesOnly.has(endpoint);
    if (alone || (this.batcher !== null && batchablePut(request))) {
      const item = alone ? ((await this.sendBatch(endpoint, [putOp(request)], timeoutMs))[0] as BatchResultItem) : await this.batched(endpoint, 'write', putOp(request), request.key.length + request.value.length, timeoutMs);
      const json = okItem(item);
      return { key: stringField(json, 'key'), version: decodedIndex(json['version'], 'version') };
    }
    const body = JSON.stringify({
      ...jsonValue(request.value),
      ...(request.ifVersion === undefined ? {} : { ifVersion: request.ifVersion }),
      ...(request.lease === undefined ? {} : { lease: request.lease }),
    });
    const headers = {
      'content-type': 'application/json',
      [clientIdHeader]: request.requestId.clientId,
      [requestSeqHeader]: String(request.requestId.seq),
      [timeoutHeader]: String(serverBudgetMs(timeoutMs)),
    };
    const answer = await this.exchange(endpoint, 'PUT', keyPath(request.key), headers, body, timeoutMs);
    const json = okBody(answer);
    return { key: stringField(json, 'key'), version: decodedIndex(json['version'], 'version') };
  }

  async delete(endpoint: string, request: DeleteRequest, timeoutMs: number): Promise<DeleteResult> {
    if (this.batcher !== null) {
      return deleteResult(okItem(await this.batched(endpoint, 'write', deleteOp(request), request.key.length, timeoutMs)));
    }
    const path = request.ifVersion === undefined ? keyPath(request.key) : `${keyPath(request.key)}?ifVersion=${request.ifVersion}`;
    const headers = {
      [clientIdHeader]: request.requestId.clientId,
      [requestSeqHeader]: String(request.requestId.seq),
      [timeoutHeader]: String(serverBudgetMs(timeoutMs)),
    };
    const answer = await this.exchange(endpoint, 'DELETE', path, headers, null, timeoutMs);
    return deleteResult(okBody(answer));
  }

  async txn(endpoint: string, request: TxnRequest, timeoutMs: number): Promise<TxnResponse> {
    const headers = {
      'content-type': 'application/json',
      [clientIdHeader]: request.requestId.clientId,
      [requestSeqHeader]: String(request.requestId.seq),
      [timeoutHeader]: String(serverBudgetMs(timeoutMs)),
    };
    return txnResponseOf(okBody(await this.exchange(endpoint, 'POST', txnRoute, headers, JSON.stringify(request.body), timeoutMs)));
  }

  async leaseGrant(endpoint: string, ttlMs: number, requestId: WriteRequestId, timeoutMs: number): Promise<LeaseGrantResponse> {
    const json = okBody(await this.exchange(endpoint, 'POST', '/leases', { 'content-type': 'application/json', ...writeHeadersOf(requestId, timeoutMs) }, JSON.stringify({ ttlMs }), timeoutMs));
    return { id: decodedIndex(json['id'], 'lease id'), ttlMs: decodedIndex(json['ttlMs'], 'lease ttlMs'), version: decodedIndex(json['version'], 'version') };
  }

  async leaseKeepAlive(endpoint: string, id: number, timeoutMs: number): Promise<LeaseKeepAliveResponse> {
    const json = okBody(await this.exchange(endpoint, 'POST', `/leases/${id}/keepalive`, { [timeoutHeader]: String(serverBudgetMs(timeoutMs)) }, null, timeoutMs));
    return { id: decodedIndex(json['id'], 'lease id'), ttlMs: decodedIndex(json['ttlMs'], 'lease ttlMs') };
  }

  async leaseRevoke(endpoint: string, id: number, requestId: WriteRequestId, timeoutMs: number): Promise<LeaseRevokeResponse> {
    const json = okBody(await this.exchange(endpoint, 'DELETE', `/leases/${id}`, writeHeadersOf(requestId, timeoutMs), null, timeoutMs));
    if (typeof json['found'] !== 'boolean') throw new ProtocolError('lease revoke answer has no boolean "found"');
    return { id: decodedIndex(json['id'], 'lease id'), found: json['found'], keysDeleted: decodedIndex(json['keysDeleted'], 'keysDeleted'), version: decodedIndex(json['version'], 'version') };
  }

  async leaseInfo(endpoint: string, id: number, keysMax: number, timeoutMs: number): Promise<LeaseInfoResponse | undefined> {
    const answer = await this.exchange(endpoint, 'GET', `/leases/${id}?keys=${keysMax}`, { [timeoutHeader]: String(serverBudgetMs(timeoutMs)) }, null, timeoutMs);
    if (answer.status === 404) {
      const refusal = parseError(answer);
      if (refusal.code === 'lease_not_found') return undefined;
      throw refusal;
    }
    const json = okBody(answer);
    const keys = json['keys'];
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new ProtocolError('lease answer has no "keys" list of strings');
    return { id: decodedIndex(json['id'], 'lease id'), ttlMs: decodedIndex(json['ttlMs'], 'lease ttlMs'), remainingMs: decodedIndex(json['remainingMs'], 'remainingMs'), keys };
  }

  async watch(endpoint: string, request: WatchStreamRequest, timeoutMs: number): Promise<WatchStream> {
    if (this.closed) throw new AttemptError('unreachable', null, 'The client is closed');
    const query = new URLSearchParams({ prefix: request.prefix, consistency: request.consistency, ...(request.fromVersion === null ? {} : { fromVersion: String(request.fromVersion) }), ...(request.prevValue ? { prevValue: 'true' } : {}) });
    // Streams get their own dispatcher: they hold a connection for as long as they run and
    // are longer than any answer the request pools allow.
    this.watchAgent ??= new Agent({ connectTimeout: connectTimeoutMs, keepAliveTimeout: keepAliveMs, headersTimeout: 30_000, bodyTimeout: watchGapMsMax, ...this.connect });
    let response: Dispatcher.ResponseData;
    // Aborting is what ends a pending read of the body at once (destroy alone waits for data).
    const abort = new AbortController();
    try {
      response = await this.watchAgent.request({ origin: endpoint, method: 'GET', path: `/watch?${query.toString()}`, headers: this.auth, headersTimeout: Math.max(1, Math.ceil(timeoutMs)), bodyTimeout: watchGapMsMax, signal: abort.signal });
    } catch (error) {
      throw connectionFailure(error, endpoint);
    }
    if (response.statusCode !== 200) {
      const text = await readText(response);
      throw parseError({ status: response.statusCode, text, retryAfter: header(response.headers['retry-after']) });
    }
    const body = response.body;
    this.watchBodies.add(body);
    body.once('close', () => this.watchBodies.delete(body));
    return {
      messages: watchMessages(body, endpoint),
      close: () => {
        abort.abort();
        body.destroy();
      },
    };
  }

  async get(endpoint: string, request: GetRequest, timeoutMs: number): Promise<Entry | undefined> {
    if (this.batcher !== null && request.atVersion === undefined) {
      const item = await this.batched(endpoint, 'read', getOp(request), request.key.length, timeoutMs);
      if (item.status === 404 && item['error'] === 'not_found') return undefined;
      return entryOf(okItem(item));
    }
    let path = keyPath(request.key);
    if (request.consistency !== undefined) path += `?consistency=${request.consistency}`;
    if (request.minVersion !== undefined) path += `${request.consistency === undefined ? '?' : '&'}minVersion=${request.minVersion}`;
    if (request.atVersion !== undefined) path += `${path.includes('?') ? '&' : '?'}atVersion=${request.atVersion}`;
    const answer = await this.exchange(endpoint, 'GET', path, { [timeoutHeader]: String(serverBudgetMs(timeoutMs)) }, null, timeoutMs);
    if (answer.status === 404) {
      const refusal = parseError(answer);
      if (refusal.code === 'not_found') return undefined;
      throw refusal;
    }
    return entryOf(okBody(answer));
  }

  async list(endpoint: string, request: ListRequest, timeoutMs: number): Promise<ListPage> {
    const query: string[] = [];
    if (request.prefix.length > 0) query.push(`prefix=${encodeURIComponent(request.prefix)}`);
    if (request.after !== undefined && request.after.length > 0) query.push(`after=${encodeURIComponent(request.after)}`);
    if (request.limit !== undefined) query.push(`limit=${request.limit}`);
    if (request.consistency !== undefined) query.push(`consistency=${request.consistency}`);
    if (request.minVersion !== undefined) query.push(`minVersion=${request.minVersion}`);
    if (request.atVersion !== undefined) query.push(`atVersion=${request.atVersion}`);
    if (request.reverse === true) query.push('reverse=true');
    const path = query.length === 0 ? '/kv' : `/kv?${query.join('&')}`;
    const answer = await this.exchange(endpoint, 'GET', path, { [timeoutHeader]: String(serverBudgetMs(timeoutMs)) }, null, timeoutMs);
    const json = okBody(answer);
    const items = json['items'];
    const next = json['next'];
    if (!Array.isArray(items)) throw new ProtocolError('list answer has no "items" list');
    if (next !== null && typeof next !== 'string') throw new ProtocolError('list answer "next" is neither a string nor null');
    const version = json['version'] === undefined ? 0 : decodedIndex(json['version'], 'version');
    return { items: items.map((item: unknown) => entryOf(asRecord(item, 'list item'))), next, version };
  }

  async status(endpoint: string, timeoutMs: number): Promise<NodeStatus> {
    const answer = await this.exchange(endpoint, 'GET', '/status', {}, null, timeoutMs);
    return checkStatus(okBody(answer));
  }

  async backup(endpoint: string, sink: BackupSink, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool(endpoint).request({ method: 'GET', path: '/backup', headers: this.auth, headersTimeout: timeoutMs, bodyTimeout: backupGapMsMax });
    } catch (error) {
      throw connectionFailure(error, endpoint);
    }
    if (response.statusCode !== 200) {
      const text = await readText(response);
      throw parseError({ status: response.statusCode, text, retryAfter: header(response.headers['retry-after']) });
    }
    try {
      for await (const line of splitLines(response.body as AsyncIterable<Buffer>)) {
        if (performance.now() > deadline) throw new AttemptError('lost', null, `The backup from ${endpoint} did not finish within ${Math.round(timeoutMs)} ms`);
        let parsed: unknown;
        try {
          parsed = JSON.parse(line.toString('utf8'));
        } catch {
          throw new ProtocolError(`${endpoint} sent a backup line that is not JSON`);
        }
        await sink.write(checkRecord(parsed));
      }
    } catch (error) {
      response.body.destroy();
      if (error instanceof AttemptError || error instanceof ProtocolError) throw error;
      if (error instanceof Error && error.name === 'BackupFormatError') throw new ProtocolError(`${endpoint} sent a malformed backup: ${error.message}`);
      throw connectionFailure(error, endpoint);
    }
  }

  async die(endpoint: string, nodeId: string, clean: boolean, timeoutMs: number): Promise<void> {
    const answer = await this.exchange(endpoint, 'POST', '/admin/die', jsonHeaders, JSON.stringify({ id: nodeId, clean }), timeoutMs);
    if (answer.status !== 200 && answer.status !== 202) throw parseError(answer);
  }

  async members(endpoint: string, timeoutMs: number): Promise<MembersResponse> {
    return membersOf(okBody(await this.exchange(endpoint, 'GET', '/members', {}, null, timeoutMs)));
  }

  async changeMembers(endpoint: string, change: MemberChangeRequest, timeoutMs: number): Promise<MembershipChangeResponse> {
    const budget = { [timeoutHeader]: String(serverBudgetMs(timeoutMs)) };
    const path = change.op === 'add' ? '/members' : `/members/${encodeURIComponent(change.id)}${change.op === 'promote' ? '/promote' : ''}`;
    const answer = change.op === 'add'
      ? await this.exchange(endpoint, 'POST', path, { ...jsonHeaders, ...budget }, JSON.stringify(change.member), timeoutMs)
      : await this.exchange(endpoint, change.op === 'promote' ? 'POST' : 'DELETE', path, budget, null, timeoutMs);
    return changeOf(okBody(answer));
  }

  async transferLeader(endpoint: string, to: string | null, timeoutMs: number): Promise<{ readonly leader: string }> {
    const headers = { ...jsonHeaders, [timeoutHeader]: String(serverBudgetMs(timeoutMs)) };
    const answer = await this.exchange(endpoint, 'POST', '/admin/transfer-leader', headers, JSON.stringify(to === null ? {} : { to }), timeoutMs);
    return { leader: stringField(okBody(answer), 'leader') };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const body of [...this.watchBodies]) body.destroy(new Error('the client is closed'));
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all([...pools.map((pool) => pool.close().catch(() => undefined)), this.watchAgent?.close().catch(() => undefined)]);
  }

  private batched(endpoint: string, kind: BatchKind, op: BatchOpBody, chars: number, timeoutMs: number): Promise<BatchResultItem> {
    if (this.closed) return Promise.reject(new AttemptError('unreachable', null, 'The client is closed'));
    return (this.batcher as Batcher).submit(endpoint, kind, op, chars + batchOpOverheadBytes, timeoutMs);
  }

  private async sendBatch(endpoint: string, ops: readonly BatchOpBody[], timeoutMs: number): Promise<readonly BatchResultItem[]> {
    // MessagePack when the values are long: they go out as bytes, and the server does not
    // first turn the whole body into one string to parse (a large object for V8 past 128 KiB).
    // Small operations stay JSON, which V8 parses and writes faster than msgpackr.
    const msgpack = valueChars(ops) >= msgpackBatchValueCharsMin && !this.jsonBatchesOnly.has(endpoint);
    const headers = { 'content-type': msgpack ? msgpackMediaType : 'application/json', [timeoutHeader]: String(serverBudgetMs(timeoutMs)) };
    const started = performance.now();
    const answer = await this.exchange(endpoint, 'POST', batchRoute, headers, msgpack ? batchPackr.pack({ ops }) : JSON.stringify({ ops }), timeoutMs);
    if (msgpack && answer.status === 400 && parseError(answer).code === 'bad_request' && answer.text.includes('Content-Type')) {
      this.jsonBatchesOnly.add(endpoint);
      return this.sendBatch(endpoint, ops, timeoutMs - (performance.now() - started));
    }
    const refusedWhole = answer.status === 413 || answer.status === 400;
    if (refusedWhole && ops.length === 1) {
      // The refusal concerns this operation alone: its answer, as its own route would give it.
      const refusal = parseError(answer);
      return [{ ...refusal.details, status: answer.status, error: refusal.code, message: refusal.message.replace(/^Operation 0: /, '').replace(/; nothing in the batch was run$/, '') }];
    }
    if (refusedWhole) {
      // A batch is validated whole and refused before anything runs: over this node's body
      // limit, or one operation its limits refuse. Halving until the refusal is isolated
      // gives every other operation its own answer (and smaller batches to a node with
      // small limits).
      const half = Math.ceil(ops.length / 2);
      const leftMs = timeoutMs - (performance.now() - started);
      if (leftMs < 1) throw new AttemptError('unreachable', null, `${endpoint} refused a batch as too large and no time is left to split it`);
      const [first, second] = await Promise.all([this.sendBatch(endpoint, ops.slice(0, half), leftMs), this.sendBatch(endpoint, ops.slice(half), leftMs)]);
      return [...first, ...second];
    }
    const results = okBody(answer)['results'];
    if (!Array.isArray(results)) throw new ProtocolError('batch answer has no "results" list');
    for (const item of results) {
      if (typeof item !== 'object' || item === null || typeof (item as { status?: unknown }).status !== 'number') throw new ProtocolError('a batch result has no numeric "status"');
    }
    return results as BatchResultItem[];
  }

  private pool(endpoint: string): Pool {
    let pool = this.pools.get(endpoint);
    if (pool !== undefined) return pool;
    if (this.closed) throw new AttemptError('unreachable', null, 'The client is closed');
    // Every option that bounds something is stated (STYLE.md 14).
    pool = new Pool(endpoint, {
      connections: this.options.connectionsPerEndpoint,
      pipelining: 1,
      connectTimeout: connectTimeoutMs,
      keepAliveTimeout: keepAliveMs,
      keepAliveMaxTimeout: keepAliveMs,
      // Per-request values override these; they only bound a request that forgot to.
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
      maxResponseSize: responseBytesMax,
      ...this.connect,
    });
    this.pools.set(endpoint, pool);
    return pool;
  }

  private async exchange(
    endpoint: string,
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    headers: Record<string, string>,
    body: string | Uint8Array | null,
    timeoutMs: number,
  ): Promise<Answer> {
    let response: Dispatcher.ResponseData;
    const budgetMs = Math.max(1, Math.ceil(timeoutMs));
    try {
      response = await this.pool(endpoint).request({ method, path, headers: this.options.token === null ? headers : { ...headers, ...this.auth }, body, headersTimeout: budgetMs, bodyTimeout: budgetMs });
    } catch (error) {
      throw connectionFailure(error, endpoint);
    }
    const text = await readText(response);
    return { status: response.statusCode, text, retryAfter: response.statusCode === 503 ? header(response.headers['retry-after']) : null };
  }
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly retryAfter: string | null;
}

function keyPath(key: string): string {
  return `/kv/${encodeURIComponent(key)}`;
}

async function readText(response: Dispatcher.ResponseData): Promise<string> {
  try {
    return await response.body.text();
  } catch (error) {
    // The answer was on its way: the request certainly reached the server.
    throw new AttemptError('lost', null, `The connection broke while reading the answer (${describe(error)})`);
  }
}

function okBody(answer: Answer): Record<string, unknown> {
  if (answer.status !== 200) throw parseError(answer);
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.text);
  } catch {
    throw new ProtocolError(`A 200 answer is not JSON: ${answer.text.slice(0, 100)}`);
  }
  return asRecord(parsed, 'answer');
}

/** The server's refusal as an AttemptError with its wire code and details. */
function parseError(answer: Answer): AttemptError {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(answer.text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // Not our JSON (a proxy in between?): classified by status below.
  }
  const retryAfterSeconds = answer.retryAfter === null ? NaN : Number(answer.retryAfter);
  return refusal(answer.status, body, `HTTP ${answer.status}: ${answer.text.slice(0, 200)}`, Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1000 : null);
}



function connectionFailure(error: unknown, endpoint: string): AttemptError {
  if (error instanceof AttemptError) return error;
  const code = errorCode(error);
  const kind = code !== null && requestNotSentCodes.has(code) ? 'unreachable' : 'lost';
  return new AttemptError(kind, null, `${endpoint}: ${describe(error)}`);
}

function errorCode(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Node wraps some connect failures (several addresses tried) in an AggregateError.
  const inner = (error as { errors?: unknown }).errors;
  if (Array.isArray(inner) && inner.length > 0) return errorCode(inner[0]);
  return null;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = errorCode(error);
    return code === null ? error.message : `${code}: ${error.message}`;
  }
  return String(error);
}

function header(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}




/** Checks the fields the client relies on; the rest is passed through as the node sent it. */
export function checkStatus(json: Record<string, unknown>): NodeStatus {
  if (typeof json['id'] !== 'string') throw new ProtocolError('status has no node id');
  decodedIndex(json['term'], 'status term');
  const leader = json['leader'];
  if (leader !== null) {
    const l = asRecord(leader, 'status leader');
    if (typeof l['id'] !== 'string' || (l['http'] !== null && typeof l['http'] !== 'string')) throw new ProtocolError('status leader is malformed');
  }
  if (!Array.isArray(json['peers'])) throw new ProtocolError('status has no peers list');
  const membership = json['membership'];
  if (membership !== undefined) return { ...(json as unknown as NodeStatus), membership: membersOf(asRecord(membership, 'status membership')) };
  return json as unknown as NodeStatus;
}

/** The idempotency pair and the server's budget, as every write sends them. */
function writeHeadersOf(requestId: WriteRequestId, timeoutMs: number): Record<string, string> {
  return { [clientIdHeader]: requestId.clientId, [requestSeqHeader]: String(requestId.seq), [timeoutHeader]: String(serverBudgetMs(timeoutMs)) };
}

/** A watch stream's lines as JSON objects; a line that is not one ends the stream as a protocol error. */
async function* watchMessages(body: Dispatcher.ResponseData['body'], endpoint: string): AsyncGenerator<Record<string, unknown>> {
  try {
    for await (const line of splitLines(body as AsyncIterable<Buffer>)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line.toString('utf8'));
      } catch {
        throw new ProtocolError(`${endpoint} sent a watch line that is not JSON`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ProtocolError(`${endpoint} sent a watch line that is not an object`);
      yield parsed as Record<string, unknown>;
    }
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw connectionFailure(error, endpoint);
  } finally {
    body.destroy();
  }
}
