/**
 * The HTTP/JSON API of one node (fastify v5): routes, input validation, limits, error
 * mapping, and leader forwarding through forward.ts. Owns the translation between HTTP and
 * the KvNode interface, and the promise that every answer, including fastify's and Node's
 * own errors (bad URL, bad JSON, body or headers too large), leaves as one error model:
 * JSON `{error, message, ...details}` with `errorStatus[error]`, and Retry-After on 503s.
 *
 * Input rules decided here (README "HTTP API"):
 * - A body must be JSON: `Content-Type: application/json` (charset, if given, UTF-8); a body
 *   without Content-Type is read as JSON too (load generators and bare HTTP clients send
 *   none); any other type is 400 bad_request. Unknown body fields and unknown query
 *   parameters are 400, so a typo (`ifversion`) never silently turns a compare-and-set into
 *   a blind write.
 * - Keys arrive percent-encoded in the path (`/` as %2F); a key that does not decode to
 *   UTF-8 is 400 invalid_key. Query values decode the same way, `+` meaning a space.
 * - `consistency` defaults to `linearizable`, or to `local` when `minVersion` is given (a
 *   session read any node can serve). `leader` goes to the leader; `linearizable` is served
 *   by the node it reaches once a leader is known: a follower asks the leader for a read
 *   index and answers from its own state (forward.ts). Writes go to the leader.
 * - Every kv answer names the node whose state answered (or refused) in `x-qkv-served-by`.
 * - `limit` above `listLimitMax` is lowered to it; paging through `next` still works.
 * - DELETE takes `ifVersion` as a query parameter; PUT takes it in the body.
 * - `x-qkv-timeout-ms` may shorten (never lengthen) the server's per-request deadline.
 *
 * Must never: let bad input reach the node (everything is validated first, so a refused
 * request changes nothing), serve a `leader` read from a follower's state or a linearizable
 * one before the leader confirmed its read point, keep a per-request timer, or put request
 * data (keys, URLs) into metric labels.
 */

import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import Fastify, { LogController } from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LoggerOptions } from 'pino';
import type { Registry } from 'prom-client';
import type { KvNode, ModeChange } from '../node/types.js';
import type { KvCommand, RequestId } from '../kv/types.js';
import type { KvItem, KvRecord } from '../storage/types.js';
import { isIndex } from '../stdx/safe-int.js';
import { QkvError } from '../wire/errors.js';
import { batchOpsMax, batchRoute } from '../wire/types.js';
import type { BatchResultItem } from '../wire/types.js';
import { parseBatch } from './batch.js';
import { listExec, listOptions, modeExec, readExec, readOptions, readSpec, writeExec, writeSpec } from './ops.js';
import type { ListOp, ReadOp } from './ops.js';
import type { BatchOp } from './batch.js';
import { LeaderRouter, defaultForwardLimits, forwardedHeader, servedByHeader, timeoutHeader } from './forward.js';
import type { ForwardLimits, ForwardSpec, RouteOutcome } from './forward.js';
import { createHttpMetrics, unmatchedRoute } from './metrics.js';
import type { HttpMetrics } from './metrics.js';
import { acceptJsonBody, bodyBuffer, checkQuery, debugStoreParams, deleteParams, getParams, listParams, noParams, optionalIndex, parseDecimal, parseJsonObject, parsePutBody, parseQuery, quoteValue, readConsistency, readRequestId } from './http-input.js';
import { deleteResponseSchema, forwardedItem, getResponseSchema, healthResponseSchema, listResponseSchema, page, putResponseSchema, readResult, sendError, sendForwarded, writeAnswer, writeResult } from './http-answers.js';
import { backupLines } from './backup-stream.js';
import type { ParsedQuery } from './http-input.js';
import type { InputValidator } from './validation.js';

export interface HttpLimits {
  /** Largest request body; larger is 413 body_too_large (checked while reading). */
  readonly bodyBytesMax: number;
  /** Largest request line plus headers (Node's maxHeaderSize); larger is 431. */
  readonly headerBytesMax: number;
  /** Largest page of GET /kv and GET /debug/store. */
  readonly listLimitMax: number;
  /** Per-request deadline when the client sets none (`x-qkv-timeout-ms` may shorten it). */
  readonly requestTimeoutMs: number;
  /** How long a leader-bound request waits for an election before 503 no_leader. */
  readonly leaderWaitMs: number;
}


/** The fault-injection switchboard (transport faults); present only with faults enabled. */
export interface FaultsAdmin {
  /** Throws (any Error) when the rules are invalid; nothing changes then. */
  setRules(rules: Readonly<Record<string, unknown>>): void;
  rules(): object;
}

export interface HttpServerOptions {
  readonly node: KvNode;
  readonly listen: { readonly host: string; readonly port: number };
  readonly limits: HttpLimits;
  readonly validate: InputValidator;
  /** Served on GET /metrics; the HTTP metrics are registered in it. */
  readonly registry: Registry;
  /** When present, GET and PUT /admin/faults exist; otherwise they are 404. */
  readonly faultsAdmin?: FaultsAdmin;
  readonly logger: false | LoggerOptions;
  /** Forwarding limits; defaults in forward.ts. */
  readonly forward?: Partial<ForwardLimits>;
  /** This node's gRPC address (host:port), shown as `grpc` in GET /status. */
  readonly grpcAddress?: string;
  /**
   * When present, POST /admin/die exists (the seeds' die(clean)): called after the answer
   * was sent, with `clean` (true: stop cleanly, false: kill at once). Issue 5.
   */
  readonly die?: (clean: boolean) => void;
}

export interface HttpServer {
  /** `http://host:port` with the bound port (also when listening on port 0). */
  readonly url: string;
  /** Stops accepting, answers 503 shutting_down to requests on open connections, waits for in-flight ones. */
  close(): Promise<void>;
}

// --- fastify and Node server settings that do not come from options (all explicit) ---

/** Idle time before the server closes a keep-alive connection; above clients' (undici: 4 s). */
const keepAliveMs = 65_000;
/** Time a client gets to send its request line and headers. */
const headersReceiveMsMax = 10_000;
/** Time a client gets to send its whole request (a 1 MiB body on a slow link). */
const requestReceiveMsMax = 30_000;
/** Default list page size (lowered to listLimitMax when that is smaller). */
const listLimitDefault = 100;
/** Longest URL quoted back in an error message. */
const quotedUrlCharsMax = 200;

/** Starts the HTTP API of `options.node`; resolves once it listens. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const limits = checkLimits(options.limits);
  const forwardLimits: ForwardLimits = { ...defaultForwardLimits, ...options.forward };
  const metrics = createHttpMetrics(options.registry);
  const router = new LeaderRouter({ node: options.node, leaderWaitMs: limits.leaderWaitMs, limits: forwardLimits, metrics });
  const api = new HttpApi(options, limits, router, metrics);

  const app = Fastify({
    logger: options.logger,
    // Per-request log lines cost more than the request itself at 10k req/s; errors are
    // still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    http: {
      maxHeaderSize: limits.headerBytesMax,
      headersTimeout: headersReceiveMsMax,
      requireHostHeader: true,
      insecureHTTPParser: false,
      noDelay: true,
    },
    bodyLimit: limits.bodyBytesMax,
    requestTimeout: requestReceiveMsMax,
    keepAliveTimeout: keepAliveMs,
    // Socket inactivity limit. A request waiting on the node (a quorum, a minVersion) is
    // inactive on its socket, so this must outlast the longest deadline plus forwarding.
    connectionTimeout: Math.max(keepAliveMs + 5_000, 2 * limits.requestTimeoutMs + forwardLimits.answerMarginMs),
    maxRequestsPerSocket: 0,
    forceCloseConnections: 'idle',
    // Our handlers answer 503 shutting_down in the error model instead of fastify's body.
    return503OnClosing: false,
    // Deadlines are enforced by the node (every KvNode call takes timeoutMs), not a timer.
    handlerTimeout: 0,
    exposeHeadRoutes: false,
    requestIdHeader: false,
    trustProxy: false,
    // Only relevant to fastify's JSON parser, which is replaced below; kept strict anyway.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: routerOptions(limits),
    frameworkErrors: api.onFrameworkError,
    clientErrorHandler: api.onClientError,
  });

  app.removeAllContentTypeParsers();
  // One catch-all parser: reads at most bodyBytesMax raw bytes and checks the type itself,
  // so a missing Content-Type can be JSON and every refusal is ours. Handlers parse JSON.
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limits.bodyBytesMax }, acceptJsonBody);
  app.setErrorHandler(api.onError);
  app.setNotFoundHandler(api.onNotFound);
  // Each route records its own metrics with its pattern bound once here: reading
  // request.routeOptions per request would build a fresh options object every time.
  const route = (url: string, schema200: object | null) =>
    schema200 === null
      ? { onResponse: api.recorder(url) }
      : { schema: { response: { 200: schema200 } }, onResponse: api.recorder(url) };
  app.put<KeyRoute>('/kv/:key', route('/kv/:key', putResponseSchema), api.putKey);
  app.get<KeyRoute>('/kv/:key', route('/kv/:key', getResponseSchema), api.getKey);
  app.delete<KeyRoute>('/kv/:key', route('/kv/:key', deleteResponseSchema), api.deleteKey);
  app.get('/kv', route('/kv', listResponseSchema), api.list);
  app.post(batchRoute, route(batchRoute, null), api.postBatch);
  app.get('/health', route('/health', healthResponseSchema), api.health);
  app.head('/health', route('/health', null), api.healthHead);
  app.get('/status', route('/status', null), api.status);
  app.get('/ready', route('/ready', null), api.ready);
  app.get('/debug/store', route('/debug/store', listResponseSchema), api.debugStore);
  app.get('/metrics', route('/metrics', null), api.metricsText);
  if (options.faultsAdmin !== undefined) {
    app.get('/admin/faults', route('/admin/faults', null), api.getFaults);
    app.put('/admin/faults', route('/admin/faults', null), api.putFaults);
  }
  // --- backup stream and die ---
  app.get('/backup', route('/backup', null), api.backup);
  if (options.die !== undefined) app.post('/admin/die', route('/admin/die', null), api.die);
  app.put('/admin/mode', route('/admin/mode', null), api.putMode);

  try {
    await app.listen({ host: options.listen.host, port: options.listen.port });
  } catch (error) {
    await api.close(app);
    // Said like the peer and gRPC listeners say it, so a taken port reads as one line.
    throw new Error(`Cannot listen for HTTP on ${options.listen.host}:${options.listen.port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return { url: serverUrl(app), close: () => api.close(app) };
}

function routerOptions(limits: HttpLimits) {
  // Built as a variable, not a literal at the call site: find-my-way honours
  // useSemicolonDelimiter but its typings omit it, and it must be stated (false: `;` is
  // an ordinary key character, not a query separator).
  const options = {
    // A key of keyBytesMax UTF-8 bytes is up to 3x that percent-encoded. The URL cannot
    // outgrow maxHeaderSize, so tying the two keeps find-my-way from ever being the limit
    // that answers; the key validator decides (413 key_too_large).
    maxParamLength: limits.headerBytesMax,
    caseSensitive: true,
    ignoreTrailingSlash: false,
    ignoreDuplicateSlashes: false,
    allowUnsafeRegex: false,
    useSemicolonDelimiter: false,
    querystringParser: parseQuery,
  };
  return options;
}

// --- request handling ---

interface KeyRoute {
  Params: { key: string };
}


/** Route handlers and error mappers of one server; bound once, shared by every request. */
class HttpApi {
  private readonly node: KvNode;
  private readonly limits: HttpLimits;
  private readonly validate: InputValidator;
  private readonly registry: Registry;
  private readonly faultsAdmin: FaultsAdmin | undefined;
  private readonly grpcAddress: string | undefined;
  private readonly dieHook: ((clean: boolean) => void) | undefined;
  private readonly router: LeaderRouter;
  private readonly metrics: HttpMetrics;
  private closing = false;

  constructor(options: HttpServerOptions, limits: HttpLimits, router: LeaderRouter, metrics: HttpMetrics) {
    this.node = options.node;
    this.limits = limits;
    this.validate = options.validate;
    this.registry = options.registry;
    this.faultsAdmin = options.faultsAdmin;
    this.grpcAddress = options.grpcAddress;
    this.dieHook = options.die;
    this.router = router;
    this.metrics = metrics;
  }

  async close(app: FastifyInstance): Promise<void> {
    this.closing = true;
    await app.close();
    await this.router.close();
  }

  // PUT /kv/:key  body {"value": "...", "ifVersion"?: n}
  readonly putKey = async (request: FastifyRequest<KeyRoute>, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    reply.header(servedByHeader, this.node.id);
    const key = this.checkKey(request.params.key);
    checkQuery(request.query, noParams);
    const requestId = readRequestId(request);
    const rawBody = bodyBuffer(request.body);
    const body = parsePutBody(rawBody);
    const problem = this.validate.value(body.value);
    if (problem !== null) throw new QkvError(problem.code, problem.message, { key });
    const command: KvCommand = {
      op: 'put',
      key,
      value: body.value,
      ...(body.ifVersion === undefined ? {} : { ifVersion: body.ifVersion }),
      ...(requestId === null ? {} : { requestId }),
    };
    const spec = this.spec(request, 'PUT', rawBody, requestId, true, false);
    const outcome = await this.router.run(writeExec, command, spec);
    if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
    return writeAnswer(reply, outcome.value);
  };

  // DELETE /kv/:key?ifVersion=n
  readonly deleteKey = async (request: FastifyRequest<KeyRoute>, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    reply.header(servedByHeader, this.node.id);
    const key = this.checkKey(request.params.key);
    const query = checkQuery(request.query, deleteParams);
    const ifVersion = optionalIndex(query, 'ifVersion');
    const requestId = readRequestId(request);
    const command: KvCommand = {
      op: 'delete',
      key,
      ...(ifVersion === undefined ? {} : { ifVersion }),
      ...(requestId === null ? {} : { requestId }),
    };
    const spec = this.spec(request, 'DELETE', null, requestId, true, false);
    const outcome = await this.router.run(writeExec, command, spec);
    if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
    return writeAnswer(reply, outcome.value);
  };

  // GET /kv/:key?consistency=...&minVersion=n
  readonly getKey = async (request: FastifyRequest<KeyRoute>, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    reply.header(servedByHeader, this.node.id);
    const key = this.checkKey(request.params.key);
    const query = checkQuery(request.query, getParams);
    const minVersion = optionalIndex(query, 'minVersion');
    const op: ReadOp = { key, consistency: readConsistency(query, minVersion), minVersion };
    const outcome = await this.readKey(op, this.spec(request, 'GET', null, null, false, op.consistency === 'linearizable'), this.timeoutMs(request));
    if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
    const answer = readResult(key, outcome.value);
    if (answer.status !== 200) reply.code(answer.status);
    return answer.body;
  };

  /** A key read: `local` on this node itself (within `localTimeoutMs`), any other consistency through the router. */
  private async readKey(op: ReadOp, spec: ForwardSpec, localTimeoutMs: number): Promise<RouteOutcome<KvRecord | undefined>> {
    if (op.consistency !== 'local') return this.router.run(readExec, op, spec);
    return { via: 'local', value: await this.node.read(op.key, readOptions('local', op.minVersion, localTimeoutMs)) };
  }

  // GET /kv?prefix=&after=&limit=&consistency=&minVersion=
  readonly list = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    reply.header(servedByHeader, this.node.id);
    const query = checkQuery(request.query, listParams);
    const minVersion = optionalIndex(query, 'minVersion');
    const prefix = query['prefix'] ?? '';
    if (prefix.length > 0) this.checkKey(prefix, 'prefix');
    const after = this.optionalKey(query, 'after');
    const op: ListOp = {
      prefix,
      after,
      limit: this.pageLimit(query),
      consistency: readConsistency(query, minVersion),
      minVersion,
    };
    let items: KvItem[];
    if (op.consistency === 'local') {
      items = await this.node.list(listOptions(op, this.timeoutMs(request)));
    } else {
      const outcome = await this.router.run(listExec, op, this.spec(request, 'GET', null, null, false, op.consistency === 'linearizable'));
      if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
      items = outcome.value;
    }
    return page(items, op.limit);
  };

  // POST /batch  body {"ops": [{"op": "put"|"get"|"delete", "key", ...}, ...]}
  // Runs every operation as its single-key route would, all at once (writes proposed in
  // the same turn share a log append and a flush), and answers when all have answered:
  // 200 {"results": [...]}, one status and body per operation. Validation is all or nothing.
  readonly postBatch = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    reply.header(servedByHeader, this.node.id);
    checkQuery(request.query, noParams);
    const body = parseJsonObject(bodyBuffer(request.body), 'POST /batch needs {"ops": [...]}');
    const ops = parseBatch(body, this.validate, batchOpsMax);
    const forwardedIn = request.headers[forwardedHeader] !== undefined;
    const deadlineMs = performance.now() + this.timeoutMs(request);
    const results = await Promise.all(ops.map((op) => this.runBatchOp(op, forwardedIn, deadlineMs, request)));
    return { results };
  };

  private async runBatchOp(op: BatchOp, forwardedIn: boolean, deadlineMs: number, request: FastifyRequest): Promise<BatchResultItem> {
    try {
      if (op.op === 'write') {
        const outcome = await this.router.run(writeExec, op.command, writeSpec(op.command, deadlineMs, forwardedIn));
        if (outcome.via === 'forward') return forwardedItem(outcome.response);
        const answer = writeResult(outcome.value);
        return { status: answer.status, ...answer.body };
      }
      const outcome = await this.readKey(op, readSpec(op, deadlineMs, forwardedIn), Math.max(1, Math.floor(deadlineMs - performance.now())));
      if (outcome.via === 'forward') return forwardedItem(outcome.response);
      const answer = readResult(op.key, outcome.value);
      return { status: answer.status, ...answer.body };
    } catch (error) {
      const qkvError = this.toQkvError(error instanceof Error ? error : new Error(String(error)));
      if (qkvError.code === 'internal') request.log.error({ err: error }, 'batch operation failed');
      return qkvError.status === 503
        ? { status: qkvError.status, ...qkvError.toBody(), retryAfterMs: qkvError.retryAfterMs ?? 1_000 }
        : { status: qkvError.status, ...qkvError.toBody() };
    }
  }

  // GET /debug/store?after=&limit=  (this node's state, whatever its role)
  readonly debugStore = async (request: FastifyRequest): Promise<unknown> => {
    const query = checkQuery(request.query, debugStoreParams);
    const after = this.optionalKey(query, 'after');
    const limit = this.pageLimit(query);
    return page(this.node.dumpStore(after, limit), limit);
  };

  readonly health = async (): Promise<unknown> => {
    this.refuseIfClosing();
    return healthBody;
  };

  readonly healthHead = async (_request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    return reply.code(200).send();
  };

  // GET /ready: for load balancers and Kubernetes' readiness probe. Ready means this node can
  // serve a read without waiting: it knows a leader and has applied everything it knows to
  // be committed. /health only says the process answers.
  readonly ready = async (): Promise<unknown> => {
    this.refuseIfClosing();
    const s = this.node.status();
    const base = { leader: s.leader?.id ?? null, commitIndex: s.commitIndex, appliedIndex: s.appliedIndex };
    if (s.leader === null) throw new QkvError('not_ready', 'No leader is known (election under way)', base);
    if (s.appliedIndex < s.commitIndex) {
      throw new QkvError('not_ready', `Catching up: applied ${s.appliedIndex} of ${s.commitIndex} committed entries`, base);
    }
    return { ready: true, ...base };
  };

  readonly status = async (): Promise<unknown> =>
    this.grpcAddress === undefined ? this.node.status() : { ...this.node.status(), grpc: this.grpcAddress };

  // GET /backup: this node's state at its applied index, streamed as NDJSON records (header,
  // chunks, end; client/backup-file.ts documents the format). A client that stops reading
  // stops the stream (back-pressure), and its disconnect closes the snapshot source.
  readonly backup = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    checkQuery(request.query, noParams);
    const status = this.node.status();
    const source = this.node.openBackup();
    const stream = Readable.from(backupLines(source, status.id, status.clusterId), { objectMode: false, highWaterMark: 1 });
    return reply.code(200).type('application/x-ndjson; charset=utf-8').send(stream);
  };

  // PUT /admin/mode  body {"writeQuorum"?: "majority"|"all"|W, "topology"?: "star"|"chain"}
  // Switches the replication mode live (forwarded to the leader like a write). Answers once
  // the configuration entry is applied here, with the log index every node switches at.
  readonly putMode = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    this.refuseIfClosing();
    checkQuery(request.query, noParams);
    const usage = 'PUT /admin/mode needs {"writeQuorum"?: "majority"|"all"|W, "topology"?: "star"|"chain"}';
    const rawBody = bodyBuffer(request.body);
    const body = parseJsonObject(rawBody, usage);
    const wq = body['writeQuorum'];
    const topology = body['topology'];
    if (
      Object.keys(body).some((k) => k !== 'writeQuorum' && k !== 'topology') ||
      (wq !== undefined && wq !== 'majority' && wq !== 'all' && !(typeof wq === 'number' && Number.isSafeInteger(wq) && wq >= 0)) ||
      (topology !== undefined && topology !== 'star' && topology !== 'chain') ||
      (wq === undefined && topology === undefined)
    ) {
      throw new QkvError('bad_request', usage);
    }
    const change: ModeChange = {
      ...(wq !== undefined ? { writeQuorum: wq as 'majority' | 'all' | number } : {}),
      ...(topology !== undefined ? { topology: topology as 'star' | 'chain' } : {}),
    };
    const outcome = await this.router.run(modeExec, change, this.spec(request, 'PUT', rawBody, null, true, false));
    if (outcome.via === 'forward') return sendForwarded(reply, outcome.response);
    const mode = this.node.status().mode;
    return reply.code(200).send({ writeQuorum: mode.writeQuorum, topology: mode.topology, sinceIndex: outcome.value.index, inSync: mode.inSync });
  };

  // POST /admin/die  body {"id": "<this node>", "clean": bool}  (only with die enabled)
  readonly die = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const die = this.dieHook;
    if (die === undefined) throw new QkvError('unknown_route', 'Die is off: start the node with --faults to allow it');
    checkQuery(request.query, noParams);
    const body = parseJsonObject(bodyBuffer(request.body), 'POST /admin/die needs {"id": "<node id>", "clean": true|false}');
    const id = body['id'];
    const clean = body['clean'] ?? false;
    if (typeof id !== 'string' || typeof clean !== 'boolean' || Object.keys(body).some((k) => k !== 'id' && k !== 'clean')) {
      throw new QkvError('bad_request', 'POST /admin/die needs {"id": "<node id>", "clean": true|false}');
    }
    if (id !== this.node.id) throw new QkvError('bad_request', `This is node ${this.node.id}, not ${quoteValue(id)}: nothing was stopped`);
    // Die only once the answer has left, so the caller learns that it was accepted.
    reply.raw.once('finish', () => die(clean));
    return reply.code(202).send({ id, clean });
  };

  readonly metricsText = async (_request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const text = await this.registry.metrics();
    return reply.type(this.registry.contentType).send(text);
  };

  readonly getFaults = async (): Promise<unknown> => this.faults().rules();

  readonly putFaults = async (request: FastifyRequest): Promise<unknown> => {
    const faults = this.faults();
    const rules = parseJsonObject(bodyBuffer(request.body), 'PUT /admin/faults needs a JSON object of fault rules');
    try {
      faults.setRules(rules);
    } catch (error) {
      if (error instanceof QkvError) throw error;
      throw new QkvError('bad_request', `Fault rules refused: ${error instanceof Error ? error.message : String(error)}`);
    }
    return faults.rules();
  };

  // --- errors, unknown routes, metrics ---

  readonly onError = (error: FastifyError | QkvError | Error, request: FastifyRequest, reply: FastifyReply): void => {
    const qkvError = this.toQkvError(error);
    if (qkvError.code === 'internal') request.log.error({ err: error }, 'request failed');
    sendError(reply, qkvError);
  };

  /** 404 unknown_route, or 405 method_not_allowed (with Allow) when the path exists. */
  readonly onNotFound = (request: FastifyRequest, reply: FastifyReply): void => {
    const path = pathOf(request.url);
    const allowed = this.allowedMethods(path);
    let qkvError: QkvError;
    if (allowed !== null && !allowed.includes(request.method)) {
      reply.header('allow', allowed.join(', '));
      qkvError = new QkvError(
        'method_not_allowed',
        `${request.method} is not allowed on ${quoteUrl(path)}; allowed: ${allowed.join(', ')}`,
      );
    } else {
      const hint = path.startsWith('/kv/') ? ". Keys containing '/' must be percent-encoded (%2F)" : '';
      qkvError = new QkvError('unknown_route', `No route ${request.method} ${quoteUrl(path)}${hint}`);
    }
    sendError(reply, qkvError);
    // No route, no route hooks: counted here.
    this.metrics.observeRequest(unmatchedRoute, request.method, qkvError.status, null);
  };

  /** Errors find-my-way raises before a route is chosen: bad percent-encoding, long params. */
  readonly onFrameworkError = (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const isKeyPath = request.url.startsWith('/kv/');
    let qkvError: QkvError;
    if (error.code === 'FST_ERR_BAD_URL') {
      qkvError = isKeyPath
        ? new QkvError('invalid_key', 'Key is not valid percent-encoded UTF-8')
        : new QkvError('bad_request', `URL is not valid percent-encoded UTF-8: ${quoteUrl(request.url)}`);
    } else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
      qkvError = new QkvError('key_too_large', `Key is longer than ${this.limits.headerBytesMax} characters percent-encoded`);
    } else {
      request.log.error({ err: error }, 'router failed');
      qkvError = new QkvError('internal', `Internal error: ${error.message}`);
    }
    sendError(reply, qkvError);
    // These replies bypass the route lifecycle and its hooks: counted here.
    this.metrics.observeRequest(unmatchedRoute, request.method, qkvError.status, null);
  };

  /** Errors from Node's HTTP parser (no request object exists): header overflow, bad syntax. */
  readonly onClientError = (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    let qkvError: QkvError;
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      qkvError = new QkvError(
        'header_too_large',
        `Request line and headers are larger than ${this.limits.headerBytesMax} bytes (a long key counts here)`,
      );
    } else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      qkvError = new QkvError('bad_request', `The request was not received within ${requestReceiveMsMax} ms`);
    } else {
      qkvError = new QkvError('bad_request', `Malformed HTTP request (${error.code ?? error.message})`);
    }
    // Node keeps the response in progress on a socket in `_httpMessage` (null between
    // responses); writing a raw response into the middle of one would corrupt the stream.
    const responding = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
    if (socket.writable && (responding === undefined || responding === null)) {
      const body = JSON.stringify(qkvError.toBody());
      socket.write(
        `HTTP/1.1 ${qkvError.status} ${qkvError.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
          `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
          `Connection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
    this.metrics.observeRequest(unmatchedRoute, '(unparsed)', qkvError.status, null);
  };

  /** The onResponse hook of one route: counts and times its requests under `route`. */
  recorder(route: string): (request: FastifyRequest, reply: FastifyReply, done: () => void) => void {
    return (request, reply, done) => {
      this.metrics.observeRequest(route, request.method, reply.statusCode, reply.elapsedTime);
      done();
    };
  }

  // --- helpers ---

  private toQkvError(error: FastifyError | QkvError | Error): QkvError {
    if (error instanceof QkvError) return error;
    const code = (error as FastifyError).code;
    switch (code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new QkvError('body_too_large', `Request body is larger than ${this.limits.bodyBytesMax} bytes`);
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

  private refuseIfClosing(): void {
    if (this.closing) {
      throw new QkvError('shutting_down', 'This node is stopping; send the request to another node', {}, 1_000);
    }
  }

  private checkKey(key: string, what: 'key' | 'prefix' | 'after' = 'key'): string {
    const problem = this.validate.key(key);
    if (problem !== null) {
      throw new QkvError(problem.code, what === 'key' ? problem.message : `Query parameter ${what}: ${problem.message}`);
    }
    return key;
  }

  /** An `after` cursor: absent or empty means from the start. */
  private optionalKey(query: ParsedQuery, name: 'after'): string | undefined {
    const value = query[name];
    if (value === undefined || value.length === 0) return undefined;
    return this.checkKey(value, name);
  }

  private pageLimit(query: ParsedQuery): number {
    const text = query['limit'];
    if (text === undefined) return Math.min(listLimitDefault, this.limits.listLimitMax);
    const limit = parseDecimal(text);
    if (limit === null || limit < 1) {
      throw new QkvError('bad_request', `Query parameter limit must be an integer >= 1, got ${quoteValue(text)}`);
    }
    return Math.min(limit, this.limits.listLimitMax);
  }

  /** The request's time budget: the server default, or less if the sender asks. */
  private timeoutMs(request: FastifyRequest): number {
    const header = request.headers[timeoutHeader];
    if (header === undefined) return this.limits.requestTimeoutMs;
    const asked = typeof header === 'string' ? parseDecimal(header) : null;
    if (asked === null || asked < 1) {
      throw new QkvError('bad_request', `Header ${timeoutHeader} must be an integer >= 1 (milliseconds)`);
    }
    return Math.min(asked, this.limits.requestTimeoutMs);
  }

  private spec(
    request: FastifyRequest,
    method: ForwardSpec['method'],
    body: Buffer | null,
    requestId: RequestId | null,
    isWrite: boolean,
    servedByFollower: boolean,
  ): ForwardSpec {
    return {
      method,
      url: request.url,
      body,
      requestId,
      isWrite,
      servedByFollower,
      forwardedIn: request.headers[forwardedHeader] !== undefined,
      deadlineMs: performance.now() + this.timeoutMs(request),
    };
  }

  private faults(): FaultsAdmin {
    // Routes exist only when faultsAdmin does; this keeps the type honest.
    if (this.faultsAdmin === undefined) throw new QkvError('unknown_route', 'Fault injection is not enabled on this node');
    return this.faultsAdmin;
  }

  private allowedMethods(path: string): readonly string[] | null {
    switch (path) {
      case '/kv':
      case '/status':
      case '/ready':
      case '/metrics':
      case '/debug/store':
        return getOnly;
      case '/health':
        return getOrHead;
      case '/admin/faults':
        return this.faultsAdmin === undefined ? null : getOrPut;
      case '/backup':
        return getOnly;
      case '/admin/die':
        return this.dieHook === undefined ? null : postOnly;
      case '/admin/mode':
        return putOnly;
      case batchRoute:
        return postOnly;
      default:
        return path.startsWith('/kv/') && path.indexOf('/', 4) === -1 ? keyMethods : null;
    }
  }
}

const getOnly: readonly string[] = ['GET'];
const getOrHead: readonly string[] = ['GET', 'HEAD'];
const getOrPut: readonly string[] = ['GET', 'PUT'];
const postOnly: readonly string[] = ['POST'];
const putOnly: readonly string[] = ['PUT'];
const keyMethods: readonly string[] = ['DELETE', 'GET', 'PUT'];

const healthBody = Object.freeze({ ok: true });

// --- small utilities ---

function checkLimits(limits: HttpLimits): HttpLimits {
  const positive = ['bodyBytesMax', 'headerBytesMax', 'listLimitMax', 'requestTimeoutMs'] as const;
  for (const name of positive) {
    if (!Number.isSafeInteger(limits[name]) || limits[name] < 1) {
      throw new RangeError(`HttpLimits.${name} must be a positive safe integer, got ${String(limits[name])}`);
    }
  }
  if (!isIndex(limits.leaderWaitMs)) {
    throw new RangeError(`HttpLimits.leaderWaitMs must be a safe integer >= 0, got ${String(limits.leaderWaitMs)}`);
  }
  if (limits.headerBytesMax < 1024) {
    throw new RangeError(`HttpLimits.headerBytesMax must be at least 1024 bytes for ordinary headers, got ${limits.headerBytesMax}`);
  }
  return limits;
}

function serverUrl(app: FastifyInstance): string {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function quoteUrl(url: string): string {
  return url.length > quotedUrlCharsMax ? `${url.slice(0, quotedUrlCharsMax)}…` : url;
}

