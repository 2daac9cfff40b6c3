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

import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type tls from 'node:tls';
import type { ServerTls } from './server-tls.js';
import type { OutboundTls } from './outbound-tls.js';
import Fastify, { LogController } from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LoggerOptions } from 'pino';
import type { Registry } from 'prom-client';
import type { KvNode } from '../node/types.js';
import { checkPositiveSafeInt, isIndex } from '../stdx/safe-int.js';
import { QkvError } from '../wire/errors.js';
import { PerClientLimit, defaultRequestsPerClientMax } from './client-limits.js';
import { LeaderRouter, defaultForwardLimits } from './forward.js';
import type { ForwardLimits } from './forward.js';
import { AccessControl, bearerToken, noAccessControl } from './access.js';
import type { AccessOptions } from './access.js';
import { sendError, toQkvError } from './http-answers.js';
import { HttpContext, keyParamCharsMax, principalField } from './http-context.js';
import type { FaultsAdmin, HttpLimits } from './http-context.js';
import { acceptBody, parseQuery, rawBodyField, shortened } from './http-input.js';
import { schemaProblem } from './http-schemas.js';
import { kvFastPath } from './kv-fast-path.js';
import { compileSchema, compileSerializer } from './schema-compiler.js';
import { createHttpMetrics, unmatchedRoute } from './metrics.js';
import { adminRoutes } from './routes/admin.js';
import { authRoutes } from './routes/auth.js';
import { batchRoutes } from './routes/batch.js';
import { kvRoutes } from './routes/kv.js';
import { txnRoutes } from './routes/txn.js';
import { leaseRoutes } from './routes/leases.js';
import { WatchStreams, watchRoutes } from './routes/watch.js';
import { memberRoutes } from './routes/members.js';
import { allowedMethods } from './routes/route.js';
import type { HttpRoute } from './routes/route.js';
import { statusRoutes } from './routes/status.js';
import type { MessageSource } from '../node/message-sampler.js';
import { uiRoutes } from './routes/ui.js';
import { ClusterPoller, defaultPollerLimits } from './ui/poller.js';
import type { PollerLimits } from './ui/poller.js';
import { SnapshotStreams } from './ui/sse.js';
import type { SupervisorLink } from './ui/supervisor-link.js';
import type { InputValidator } from './validation.js';

export type { FaultsAdmin, HttpLimits } from './http-context.js';

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
   * was sent, with `clean` (true: stop cleanly, false: kill at once).
   */
  readonly die?: (clean: boolean) => void;
  /**
   * With fault injection: the supervisor that owns the cluster's processes (quorumkv up),
   * through which the dashboard restarts, pauses and resumes members and learns which are
   * paused. Absent: the dashboard has none of those controls and POST
   * /ui/actions/restart|pause|resume answer no_supervisor.
   */
  readonly supervisor?: SupervisorLink;
  /** When present, GET /rollbacks serves this node's records of writes lost in failovers. */
  readonly rollbacks?: () => Promise<readonly Record<string, unknown>[]>;
  /** This node's sample of the peer messages it sends: GET /ui/messages and the dashboard's message view. */
  readonly messages?: MessageSource;
  /** The dashboard's poller (GET /ui/events); defaults in ui/poller.ts. */
  readonly dashboard?: Partial<PollerLimits>;
  /** Who may call the admin and data routes (access.ts). Default: admin routes open, as for tests on loopback. */
  readonly access?: AccessOptions;
  /**
   * Open connections one client address may hold; beyond it a new connection is answered 429
   * and closed. This also bounds the streams (GET /watch, /ui/events) one client holds: each
   * keeps its connection. Default 1,024.
   */
  readonly connectionsPerIpMax?: number;
  /**
   * Requests one client address may have in flight across all its connections (keep-alive
   * and pipelined alike); beyond it a request is answered 429 too_many_requests with
   * Retry-After. Streams (routes marked `stream`) are not counted: they are bounded by
   * connectionsPerIpMax here and by --watchers-max / the dashboard's subscribersMax per node.
   * Default {@link defaultRequestsPerClientMax}.
   */
  readonly requestsPerClientMax?: number;
  /**
   * HTTPS with this certificate and key (reloaded material serves the next connections); with
   * `requireClientCert`, clients must present a certificate signed by the material's CA.
   */
  readonly tls?: ServerTls;
  /** How this node reaches the other nodes' HTTPS APIs (forwarding, the dashboard's poller): their CA, its client certificate. */
  readonly outboundTls?: OutboundTls;
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

const defaultConnectionsPerIpMax = 1024;

/** Answers a connection beyond `max` from one address with 429 and closes it; counts the rest until they close. */
function limitConnectionsPerIp(app: FastifyInstance, max: number, secure: boolean): void {
  const open = new PerClientLimit(max, '--connections-per-ip-max');
  app.server.on('connection', (socket: Socket) => {
    const release = open.take(socket.remoteAddress ?? '');
    if (release === null && secure) {
      socket.destroy(); // TLS: nothing readable can be said before the handshake
      return;
    }
    if (release === null) {
      const body = JSON.stringify(open.refusal('connections open', 'reuse them').toBody());
      socket.end(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      socket.destroySoon();
      return;
    }
    socket.once('close', release);
  });
}

/**
 * The onRequest hook that counts a request against its client address until its response
 * is done (written, or its connection gone), and refuses it with 429 beyond the limit.
 * HTTP/1.1 pipelining lets one connection hand Node any number of requests at once, so the
 * connection limit alone does not bound them.
 */
function requestBudget(limit: PerClientLimit): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (request, reply) => {
    const release = limit.take(request.raw.socket.remoteAddress ?? '');
    if (release === null) throw limit.refusal('requests in flight', 'wait for their answers, or back off');
    reply.raw.once('close', release);
  };
}

/** Starts the HTTP API of `options.node`; resolves once it listens. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const limits = checkLimits(options.limits);
  const forwardLimits: ForwardLimits = { ...defaultForwardLimits, ...options.forward };
  const metrics = createHttpMetrics(options.registry);
  const router = new LeaderRouter({ node: options.node, leaderWaitMs: limits.leaderWaitMs, limits: forwardLimits, metrics, bodyBytesMax: limits.bodyBytesMax, ...(options.outboundTls === undefined ? {} : { connect: options.outboundTls }) });
  const access = new AccessControl(options.node, options.access ?? noAccessControl);
  const ctx = new HttpContext(options.node, limits, options.validate, router, metrics, options.registry, access);
  // The dashboard's controls are fault injection: they exist exactly when /admin/faults and /admin/die do.
  const { faultsAdmin, die } = options;
  const supervisor = faultsAdmin !== undefined && die !== undefined && options.supervisor !== undefined ? { supervisor: options.supervisor } : {};
  const actions = faultsAdmin !== undefined && die !== undefined ? { node: options.node, faultsAdmin, die, ...supervisor } : undefined;
  const messages = options.messages === undefined ? {} : { messages: options.messages };
  const poller = new ClusterPoller(options.node, { faults: actions !== undefined, limits: { ...defaultPollerLimits, ...options.dashboard }, ...(options.outboundTls === undefined ? {} : { connect: options.outboundTls }), ...messages, ...supervisor });
  const streams = new SnapshotStreams(poller);
  const watchStreams = new WatchStreams();
  // The route table, written once: registered below and consulted for 405 answers.
  const routes: readonly HttpRoute[] = [
    ...kvRoutes(ctx),
    ...batchRoutes(ctx),
    ...txnRoutes(ctx),
    ...leaseRoutes(ctx),
    ...watchRoutes(ctx, watchStreams),
    ...statusRoutes(ctx, options.grpcAddress),
    ...memberRoutes(ctx),
    ...authRoutes(ctx),
    ...adminRoutes(ctx, {
      ...(options.faultsAdmin === undefined ? {} : { faultsAdmin: options.faultsAdmin }),
      ...(options.die === undefined ? {} : { die: options.die }),
      ...(options.rollbacks === undefined ? {} : { rollbacks: options.rollbacks }),
    }),
    ...uiRoutes(ctx, { streams, ...messages, ...(actions === undefined ? {} : { actions }) }),
  ].filter((route) => route.access !== 'admin' || access.options.admin !== 'off'); // off: they do not exist (404)
  const errors = new HttpErrors(ctx, routes);
  const clientRequests = new PerClientLimit(options.requestsPerClientMax ?? defaultRequestsPerClientMax, '--requests-per-client-max');
  const budget = requestBudget(clientRequests);

  const serverTls = options.tls;
  // Socket inactivity limit. A request waiting on the node (a quorum, a minVersion) is
  // inactive on its socket, so this must outlast the longest deadline plus forwarding.
  const connectionTimeoutMs = Math.max(keepAliveMs + 5_000, 2 * limits.requestTimeoutMs + forwardLimits.answerMarginMs);
  // The fast path logs through fastify's logger (`app`, called only once requests arrive).
  const fastPath = kvFastPath({ ctx, budget: clientRequests, logError: (err) => app.log.error({ err }, 'request failed') });
  const app = Fastify({
    // Our own server, so that the plainest PUT and GET /kv/{key} are served before fastify's
    // lifecycle (kv-fast-path.ts); every other request goes to fastify's handler. Its
    // timeouts are set there: fastify applies none to a server it did not make.
    serverFactory: (handler) => nodeServer({ limits, serverTls, connectionTimeoutMs }, (req, res) => {
      if (!fastPath(req, res)) handler(req, res);
    }),
    logger: options.logger,
    // Per-request log lines cost more than the request itself at 10k req/s; errors are
    // still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyBytesMax,
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
    frameworkErrors: errors.onFrameworkError,
    clientErrorHandler: errors.onClientError,
  });

  // One set of schema compilers for the routes and the fast path (schema-compiler.ts).
  app.setValidatorCompiler(({ schema }) => compileSchema(schema));
  app.setSerializerCompiler(({ schema }) => compileSerializer(schema));
  app.decorateRequest(rawBodyField, null);
  app.decorateRequest(principalField, undefined);
  app.removeAllContentTypeParsers();
  // One catch-all parser: reads at most bodyBytesMax raw bytes, checks the type itself (so a
  // missing Content-Type can be JSON and every refusal is ours) and parses the body (JSON, or
  // MessagePack on /batch); each route's body schema then checks it.
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limits.bodyBytesMax }, acceptBody);
  app.setErrorHandler(errors.onError);
  app.setNotFoundHandler(errors.onNotFound);
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.url,
      // The client's budget, then credentials, are checked before the body is read: a
      // refused request costs no parsing.
      onRequest: [...(route.stream === true ? [] : [budget]), ...(route.access === 'open' ? [] : [route.access === 'admin' ? adminGate(access) : dataGate(ctx)])],
      schema: route.schema,
      schemaErrorFormatter: schemaProblem(route.problems ?? {}),
      // Each route records its own metrics with its pattern bound once here: reading
      // request.routeOptions per request would build a fresh options object every time.
      onResponse: recorder(ctx, route.url),
      handler: (request, reply) => route.handle(request, reply),
    });
  }

  limitConnectionsPerIp(app, options.connectionsPerIpMax ?? defaultConnectionsPerIpMax, serverTls !== undefined);
  try {
    await app.listen({ host: options.listen.host, port: options.listen.port });
  } catch (error) {
    await close(ctx, app, streams, watchStreams);
    // Said like the peer and gRPC listeners say it, so a taken port reads as one line.
    throw new Error(`Cannot listen for HTTP on ${options.listen.host}:${options.listen.port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (serverTls !== undefined) serverTls.material.onChange((material) => (app.server as unknown as tls.Server).setSecureContext({ ...material }));
  return { url: serverUrl(app, serverTls !== undefined), close: () => close(ctx, app, streams, watchStreams) };
}

/**
 * The Node server fastify runs on, with its limits and timeouts (fastify sets none on a server
 * from a serverFactory), the HTTP limits under TLS too (https.createServer takes
 * http.createServer's options). No limit on requests per keep-alive socket (Node's default).
 */
function nodeServer(o: { limits: HttpLimits; serverTls: ServerTls | undefined; connectionTimeoutMs: number }, listener: (req: IncomingMessage, res: ServerResponse) => void): http.Server | https.Server {
  const nodeHttpOptions: http.ServerOptions = {
    maxHeaderSize: o.limits.headerBytesMax,
    headersTimeout: headersReceiveMsMax,
    requireHostHeader: true,
    insecureHTTPParser: false,
    noDelay: true,
  };
  const server = o.serverTls === undefined ? http.createServer(nodeHttpOptions, listener) : https.createServer({ ...nodeHttpOptions, ...httpsOptions(o.serverTls) }, listener);
  server.keepAliveTimeout = keepAliveMs;
  server.requestTimeout = requestReceiveMsMax;
  server.setTimeout(o.connectionTimeoutMs);
  return server;
}

async function close(ctx: HttpContext, app: FastifyInstance, streams: SnapshotStreams, watchStreams: WatchStreams): Promise<void> {
  ctx.closing = true;
  // Open event streams are never idle: end them first, or app.close() would wait on them forever.
  streams.close();
  watchStreams.close();
  await app.close();
  await ctx.router.close();
}

function adminGate(access: AccessControl): (request: FastifyRequest) => Promise<void> {
  return async (request) => access.requireAdmin(bearerToken(request.headers.authorization));
}

function dataGate(ctx: HttpContext): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    ctx.principal(request);
  };
}

/** The onResponse hook of one route: counts and times its requests under `route`. */
function recorder(ctx: HttpContext, route: string): (request: FastifyRequest, reply: FastifyReply, done: () => void) => void {
  return (request, reply, done) => {
    ctx.metrics.observeRequest(route, request.method, reply.statusCode, reply.elapsedTime);
    done();
  };
}

function routerOptions(limits: HttpLimits) {
  // Built as a variable, not a literal at the call site: find-my-way honours
  // useSemicolonDelimiter but its typings omit it, and it must be stated (false: `;` is
  // an ordinary key character, not a query separator).
  const options = {
    maxParamLength: keyParamCharsMax(limits),
    caseSensitive: true,
    ignoreTrailingSlash: false,
    ignoreDuplicateSlashes: false,
    allowUnsafeRegex: false,
    useSemicolonDelimiter: false,
    querystringParser: parseQuery,
  };
  return options;
}

/**
 * Every way a request can fail outside a handler's own answer, mapped to the one error
 * model: thrown errors, unknown routes and methods, router and Node parser errors.
 */
class HttpErrors {
  constructor(
    private readonly ctx: HttpContext,
    private readonly routes: readonly HttpRoute[],
  ) {}

  readonly onError = (error: FastifyError | QkvError | Error, request: FastifyRequest, reply: FastifyReply): void => {
    const qkvError = toQkvError(error, this.ctx.limits.bodyBytesMax);
    if (qkvError.code === 'internal') request.log.error({ err: error }, 'request failed');
    sendError(reply, qkvError);
  };

  /** 404 unknown_route, or 405 method_not_allowed (with Allow) when the path exists. */
  readonly onNotFound = (request: FastifyRequest, reply: FastifyReply): void => {
    const path = pathOf(request.url);
    const allowed = allowedMethods(this.routes, path);
    let qkvError: QkvError;
    if (allowed !== null && !allowed.includes(request.method)) {
      reply.header('allow', allowed.join(', '));
      qkvError = new QkvError(
        'method_not_allowed',
        `${request.method} is not allowed on ${shortened(path)}; allowed: ${allowed.join(', ')}`,
      );
    } else {
      const hint = path.startsWith('/kv/') ? ". Keys containing '/' must be percent-encoded (%2F)" : '';
      qkvError = new QkvError('unknown_route', `No route ${request.method} ${shortened(path)}${hint}`);
    }
    sendError(reply, qkvError);
    // No route, no route hooks: counted here.
    this.ctx.metrics.observeRequest(unmatchedRoute, request.method, qkvError.status, null);
  };

  /** Errors find-my-way raises before a route is chosen: bad percent-encoding, long params. */
  readonly onFrameworkError = (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const isKeyPath = request.url.startsWith('/kv/');
    let qkvError: QkvError;
    if (error.code === 'FST_ERR_BAD_URL') {
      qkvError = isKeyPath
        ? new QkvError('invalid_key', 'Key is not valid percent-encoded UTF-8')
        : new QkvError('bad_request', `URL is not valid percent-encoded UTF-8: ${shortened(request.url)}`);
    } else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
      qkvError = new QkvError('key_too_large', `Key is longer than ${this.ctx.limits.headerBytesMax} characters percent-encoded`);
    } else {
      request.log.error({ err: error }, 'router failed');
      qkvError = new QkvError('internal', `Internal error: ${error.message}`);
    }
    sendError(reply, qkvError);
    // These replies bypass the route lifecycle and its hooks: counted here.
    this.ctx.metrics.observeRequest(unmatchedRoute, request.method, qkvError.status, null);
  };

  /** Errors from Node's HTTP parser (no request object exists): header overflow, bad syntax. */
  readonly onClientError = (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    let qkvError: QkvError;
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      qkvError = new QkvError(
        'header_too_large',
        `Request line and headers are larger than ${this.ctx.limits.headerBytesMax} bytes (a long key counts here)`,
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
    this.ctx.metrics.observeRequest(unmatchedRoute, '(unparsed)', qkvError.status, null);
  };
}

// --- small utilities ---

function checkLimits(limits: HttpLimits): HttpLimits {
  const positive = ['bodyBytesMax', 'headerBytesMax', 'listLimitMax', 'requestTimeoutMs'] as const;
  for (const name of positive) {
    checkPositiveSafeInt(limits[name], `HttpLimits.${name}`);
  }
  if (!isIndex(limits.leaderWaitMs)) {
    throw new RangeError(`HttpLimits.leaderWaitMs must be a safe integer >= 0, got ${String(limits.leaderWaitMs)}`);
  }
  if (limits.headerBytesMax < 1024) {
    throw new RangeError(`HttpLimits.headerBytesMax must be at least 1024 bytes for ordinary headers, got ${limits.headerBytesMax}`);
  }
  return limits;
}

function serverUrl(app: FastifyInstance, secure: boolean): string {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${secure ? 'https' : 'http'}://${host}:${address.port}`;
}

function httpsOptions(o: NonNullable<HttpServerOptions['tls']>): tls.TlsOptions {
  const { cert, key, ca } = o.material.material();
  if (o.requireClientCert && ca === undefined) throw new RangeError('requireClientCert needs a CA in the TLS material');
  return { cert, key, ...(ca === undefined ? {} : { ca }), requestCert: o.requireClientCert, rejectUnauthorized: o.requireClientCert };
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}


