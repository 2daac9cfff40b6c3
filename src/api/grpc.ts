/**
 * The gRPC API of one node (proto/quorumkv.proto, service quorumkv.v1.KV, @grpc/grpc-js):
 * the same operations, validation, limits and error codes as the HTTP API (http.ts).
 *
 * Forwarding. A leader-bound call (write, `leader` read) that reaches a follower goes
 * through the same LeaderRouter as HTTP (forward.ts): it is forwarded to the
 * leader's HTTP API, with the same deadline and idempotency key, and the leader's JSON
 * answer is translated back. So both APIs share one forwarding path, one set of rules
 * (a write that may have reached the leader is outcome_unknown, never no_leader), and a
 * gRPC client needs to know only one node. (Peers do not learn each other's gRPC
 * addresses, so forwarding over gRPC is not possible without a wire-type change.) A
 * linearizable read is served by the node it reaches, follower or not, through the
 * leader's read index (forward.ts explains).
 *
 * Errors end a call with a gRPC status and the wire error in trailing metadata:
 * `qkv-error` (the code), `qkv-error-body-bin` (the HTTP API's JSON body, binary metadata)
 * and `qkv-retry-after-ms` (503-class codes). See the proto's header for the status map.
 *
 * Input rules beyond HTTP's: string fields (keys, values, client ids, prefixes) are checked
 * to be valid UTF-8 in the raw message before protobufjs decodes them (it would silently
 * replace bad bytes with U+FFFD): a bad key is invalid_key, a bad value invalid_value,
 * anything else bad_request. A message over the receive limit is RESOURCE_EXHAUSTED from
 * grpc-js itself (HTTP's body_too_large).
 *
 * Must never: let bad input reach the node, serve a `leader` read from a follower's state
 * or a linearizable one before the leader confirmed its read point, or decode a uint64 through a float (loader option longs: String, then checked).
 */

import { isUtf8 } from 'node:buffer';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Registry } from 'prom-client';
import type { KvCommand, KvResult, RequestId } from '../kv/types.js';
import type { KvNode } from '../node/types.js';
import type { KvItem, KvRecord, KvValue } from '../storage/types.js';
import { QkvError, errorStatus, isErrorCode } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import { clientIdCharsMax, isClientId } from '../wire/types.js';
import type { ReadConsistency, StatusResponse } from '../wire/types.js';
import { LazyForwardSpec, LeaderRouter, defaultForwardLimits } from './forward.js';
import { listExec, listOptions, readExec, readOptions, readSpec, readUrl, writeExec, writeSpec } from './ops.js';
import type { ListOp, ReadOp } from './ops.js';
import type { ForwardLimits, ForwardedResponse } from './forward.js';
import type { InputValidator } from './validation.js';
import { createHttpMetrics } from './metrics.js';

export interface GrpcLimits {
  /** Largest request message; larger is RESOURCE_EXHAUSTED (HTTP: bodyBytesMax). */
  readonly messageBytesMax: number;
  /** Largest List page. */
  readonly listLimitMax: number;
  /** Per-call deadline when the client's is longer or absent. */
  readonly requestTimeoutMs: number;
  /** How long a leader-bound call waits for an election before UNAVAILABLE no_leader. */
  readonly leaderWaitMs: number;
}

export interface GrpcServerOptions {
  readonly node: KvNode;
  readonly listen: { readonly host: string; readonly port: number };
  readonly limits: GrpcLimits;
  readonly validate: InputValidator;
  /** Forwarding metrics are shared with the HTTP API's (same names, reused if present). */
  readonly registry: Registry;
  /** When present, Die works (the node runs with --faults); otherwise it is UNIMPLEMENTED. */
  readonly die?: (clean: boolean) => void;
  /** Called with unexpected (internal) errors, for logging. */
  readonly onInternalError?: (error: unknown) => void;
  readonly forward?: Partial<ForwardLimits>;
}

export interface GrpcServer {
  /** `host:port` with the bound port. */
  readonly address: string;
  /** Stops accepting calls; in-flight calls get up to `closeGraceMs` before being cancelled. */
  close(): Promise<void>;
}

const protoPath = fileURLToPath(new URL('../../proto/quorumkv.proto', import.meta.url));
const serviceName = 'quorumkv.v1.KV';
const loaderOptions: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

/** Default List page (as HTTP). */
const listLimitDefault = 100;
/** Kept back from the client's deadline so our answer reaches it first. */
const deadlineMarginMs = 20;
/** Bytes of state per Backup message. */
const backupChunkBytes = 1024 * 1024;
/** Time the Die answer gets to leave before the process stops. */
const dieDelayMs = 100;
/** In-flight calls get this long at close() before being cancelled. */
const closeGraceMs = 5_000;
/** Concurrent calls on one client connection (HTTP/2 streams). */
const streamsPerConnectionMax = 1_000;

/** Marks a decoded request whose raw bytes had a string field that is not UTF-8. */
const badUtf8 = Symbol('badUtf8');
/** Marks a request protobufjs could not decode at all. */
const malformed = Symbol('malformed');

interface Decoded {
  [badUtf8]?: number;
  [malformed]?: string;
  readonly [field: string]: unknown;
}

const noFields: readonly number[] = [];
/** String fields (by field number) of each request message, checked for UTF-8. */
const stringFields: Readonly<Record<string, readonly number[]>> = {
  Put: [1, 2, 4],
  Get: [1],
  Delete: [1, 3],
  List: [1, 2],
  Die: [1],
};

const codeToStatus: Readonly<Record<ErrorCode, grpc.status>> = {
  bad_request: grpc.status.INVALID_ARGUMENT,
  invalid_json: grpc.status.INVALID_ARGUMENT,
  invalid_key: grpc.status.INVALID_ARGUMENT,
  invalid_value: grpc.status.INVALID_ARGUMENT,
  header_too_large: grpc.status.INVALID_ARGUMENT,
  key_too_large: grpc.status.INVALID_ARGUMENT,
  value_too_large: grpc.status.INVALID_ARGUMENT,
  body_too_large: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  unknown_route: grpc.status.UNIMPLEMENTED,
  method_not_allowed: grpc.status.UNIMPLEMENTED,
  version_conflict: grpc.status.FAILED_PRECONDITION,
  stale_request: grpc.status.FAILED_PRECONDITION,
  not_leader: grpc.status.UNAVAILABLE,
  no_leader: grpc.status.UNAVAILABLE,
  busy: grpc.status.UNAVAILABLE,
  shutting_down: grpc.status.UNAVAILABLE,
  not_ready: grpc.status.UNAVAILABLE,
  quorum_timeout: grpc.status.DEADLINE_EXCEEDED,
  timeout: grpc.status.DEADLINE_EXCEEDED,
  outcome_unknown: grpc.status.DEADLINE_EXCEEDED,
  internal: grpc.status.INTERNAL,
};

const consistencyOf: Readonly<Record<string, ReadConsistency | undefined>> = {
  CONSISTENCY_UNSPECIFIED: undefined,
  LINEARIZABLE: 'linearizable',
  LEADER: 'leader',
  LOCAL: 'local',
};

/** Starts the gRPC API of `options.node`; resolves once it listens. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const limits = checkLimits(options.limits);
  const definition = protoLoader.loadSync(protoPath, loaderOptions);
  const service = definition[serviceName] as protoLoader.ServiceDefinition | undefined;
  if (service === undefined) throw new Error(`${protoPath} defines no service ${serviceName}`);
  const serviceDefinition = withUtf8Checks(service);

  const metrics = createHttpMetrics(options.registry);
  const router = new LeaderRouter({
    node: options.node,
    leaderWaitMs: limits.leaderWaitMs,
    limits: { ...defaultForwardLimits, ...options.forward },
    metrics,
  });
  const api = new GrpcApi(options, limits, router);

  // Every option that bounds something is stated (STYLE.md 14).
  const server = new grpc.Server({
    'grpc.max_receive_message_length': limits.messageBytesMax,
    'grpc.max_send_message_length': 256 * 1024 * 1024,
    'grpc.max_concurrent_streams': streamsPerConnectionMax,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_connection_idle_ms': 5 * 60_000,
  });
  server.addService(serviceDefinition, {
    Put: api.unary((r, c) => api.put(r, c)),
    Get: api.unary((r, c) => api.get(r, c)),
    Delete: api.unary((r, c) => api.delete(r, c)),
    List: api.unary((r, c) => api.list(r, c)),
    Status: api.unary(() => Promise.resolve(api.status())),
    Backup: (call: grpc.ServerWritableStream<Decoded, object>): void => void api.backup(call),
    Die: api.unary((r) => api.die(r)),
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${hostForUrl(options.listen.host)}:${options.listen.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error !== null) reject(new Error(`Cannot listen for gRPC on ${options.listen.host}:${options.listen.port}: ${error.message}`));
      else resolve(bound);
    });
  });
  const address = `${hostForUrl(options.listen.host)}:${port}`;
  api.address = address;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      api.closing = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, closeGraceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await router.close();
    })();
    return closing;
  };
  return { address, close };
}

function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function checkLimits(limits: GrpcLimits): GrpcLimits {
  for (const name of ['messageBytesMax', 'listLimitMax', 'requestTimeoutMs'] as const) {
    if (!Number.isSafeInteger(limits[name]) || limits[name] < 1) throw new RangeError(`GrpcLimits.${name} must be a positive integer, got ${limits[name]}`);
  }
  if (!Number.isSafeInteger(limits.leaderWaitMs) || limits.leaderWaitMs < 0) throw new RangeError(`GrpcLimits.leaderWaitMs must be an integer >= 0, got ${limits.leaderWaitMs}`);
  return limits;
}

/** The service with each request decoder wrapped to record bad UTF-8 and undecodable input. */
function withUtf8Checks(service: protoLoader.ServiceDefinition): grpc.ServiceDefinition {
  const wrapped: Record<string, protoLoader.MethodDefinition<object, object>> = {};
  for (const [name, method] of Object.entries(service)) {
    const fields = stringFields[name] ?? noFields;
    const decode = method.requestDeserialize;
    wrapped[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): object => {
        // protobufjs accepts some truncated messages (a string field cut short decodes to
        // its prefix), so the raw walk also decides whether the message is well-formed.
        const scan = firstBadUtf8Field(bytes, fields);
        if (scan < 0) return { [malformed]: 'the protobuf encoding is truncated or malformed' };
        let decoded: Decoded;
        try {
          decoded = decode(bytes) as Decoded;
        } catch (error) {
          return { [malformed]: error instanceof Error ? error.message : String(error) };
        }
        if (scan !== 0) decoded[badUtf8] = scan;
        return decoded;
      },
    };
  }
  return wrapped as unknown as grpc.ServiceDefinition;
}

/**
 * Walks the top-level fields of a raw protobuf message: -1 when it is malformed (a varint
 * or length past the end, a group or unknown wire type), else the number of the first
 * length-delimited field in `fields` whose bytes are not UTF-8, else 0.
 */
export function firstBadUtf8Field(bytes: Buffer, fields: readonly number[]): number {
  let offset = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 1;
    for (let i = 0; i < 10; i++) {
      if (offset >= bytes.length) return -1;
      const byte = bytes[offset++] as number;
      result += (byte & 0x7f) * shift;
      if ((byte & 0x80) === 0) return result;
      shift *= 128;
    }
    return -1;
  };
  let bad = 0;
  while (offset < bytes.length) {
    const tag = varint();
    if (tag < 8) return -1;
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0:
        if (varint() < 0) return -1;
        break;
      case 1:
        offset += 8;
        break;
      case 5:
        offset += 4;
        break;
      case 2: {
        const length = varint();
        if (length < 0 || offset + length > bytes.length) return -1;
        if (bad === 0 && fields.includes(field) && !isUtf8(bytes.subarray(offset, offset + length))) bad = field;
        offset += length;
        break;
      }
      default:
        return -1;
    }
  }
  return offset === bytes.length ? bad : -1;
}

type UnaryHandler = (request: Decoded, call: grpc.ServerUnaryCall<Decoded, object>) => Promise<object>;

class GrpcApi {
  address = '';
  closing = false;
  private readonly node: KvNode;
  private readonly limits: GrpcLimits;
  private readonly validate: InputValidator;
  private readonly router: LeaderRouter;
  private readonly dieHook: ((clean: boolean) => void) | undefined;
  private readonly onInternalError: (error: unknown) => void;
  /** Calls answered by another node's state (a forward to the leader): that node's id. */
  private readonly servedByOf = new WeakMap<object, string>();

  constructor(options: GrpcServerOptions, limits: GrpcLimits, router: LeaderRouter) {
    this.node = options.node;
    this.limits = limits;
    this.validate = options.validate;
    this.router = router;
    this.dieHook = options.die;
    this.onInternalError = options.onInternalError ?? (() => undefined);
  }

  /** Adapts a promise-returning handler to grpc-js's callback style, mapping errors. */
  unary(handler: UnaryHandler): grpc.handleUnaryCall<Decoded, object> {
    return (call, callback) => {
      let result: Promise<object>;
      try {
        this.refuseIfClosing();
        checkDecoded(call.request);
        result = handler(call.request, call);
      } catch (error) {
        callback(this.toServiceError(error, this.servedBy(call)));
        return;
      }
      result.then(
        (reply) => callback(null, reply, servedByTrailer(this.servedBy(call))),
        (error: unknown) => callback(this.toServiceError(error, this.servedBy(call))),
      );
    };
  }

  async put(request: Decoded, call: grpc.ServerUnaryCall<Decoded, object>): Promise<object> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], { 1: 'invalid_key', 2: 'invalid_value' });
    const key = this.checkKey(stringOf(request, 'key'));
    const value = stringOf(request, 'value');
    const problem = this.validate.value(value);
    if (problem !== null) throw new QkvError(problem.code, problem.message, { key });
    const ifVersion = optionalIndex(request['ifVersion'], 'if_version');
    const requestId = readRequestId(request, 'clientId', 'seq');
    const command: KvCommand = {
      op: 'put',
      key,
      value,
      ...(ifVersion === undefined ? {} : { ifVersion }),
      ...(requestId === null ? {} : { requestId }),
    };
    const answer = await this.runWrite(command, call);
    return { key: answer['key'], version: answer['version'] };
  }

  async delete(request: Decoded, call: grpc.ServerUnaryCall<Decoded, object>): Promise<object> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], { 1: 'invalid_key' });
    const key = this.checkKey(stringOf(request, 'key'));
    const ifVersion = optionalIndex(request['ifVersion'], 'if_version');
    const requestId = readRequestId(request, 'clientId', 'seq');
    const command: KvCommand = {
      op: 'delete',
      key,
      ...(ifVersion === undefined ? {} : { ifVersion }),
      ...(requestId === null ? {} : { requestId }),
    };
    const answer = await this.runWrite(command, call);
    return { key: answer['key'], version: answer['version'], deleted: answer['deleted'] };
  }

  /** Runs a write here or on the leader: the fields of its answer, as HTTP would give them. */
  private async runWrite(command: KvCommand, call: grpc.ServerUnaryCall<Decoded, object>): Promise<Readonly<Record<string, unknown>>> {
    const outcome = await this.router.run(writeExec, command, writeSpec(command, this.deadlineMs(call), false));
    if (outcome.via === 'forward') return this.fromLeader(call, outcome.response);
    const result = writeResult(outcome.value);
    return result.op === 'delete' ? { key: result.key, version: result.version, deleted: result.deleted } : { key: result.key, version: result.version };
  }

  async get(request: Decoded, call: grpc.ServerUnaryCall<Decoded, object>): Promise<object> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], { 1: 'invalid_key' });
    const key = this.checkKey(stringOf(request, 'key'));
    const minVersion = optionalIndex(request['minVersion'], 'min_version');
    const consistency = readConsistency(request['consistency'], minVersion);
    const deadlineMs = this.deadlineMs(call);
    let record: KvRecord | undefined;
    if (consistency === 'local') {
      record = await this.node.read(key, readOptions('local', minVersion, timeoutOf(deadlineMs)));
    } else {
      const op: ReadOp = { key, consistency, minVersion };
      const outcome = await this.router.run(readExec, op, readSpec(op, deadlineMs, false));
      if (outcome.via === 'forward') {
        const body = this.fromLeader(call, outcome.response);
        return { key: body['key'], value: body['value'], version: body['version'] };
      }
      record = outcome.value;
    }
    if (record === undefined) throw new QkvError('not_found', 'Key not found', { key });
    return { key, value: textOf(record.value), version: record.version };
  }

  async list(request: Decoded, call: grpc.ServerUnaryCall<Decoded, object>): Promise<object> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], {}, 'Query parameter prefix or after is not valid UTF-8');
    const prefix = stringOf(request, 'prefix');
    if (prefix.length > 0) this.checkKey(prefix, 'prefix');
    const afterText = stringOf(request, 'after');
    const after = afterText.length > 0 ? this.checkKey(afterText, 'after') : undefined;
    const limitAsked = request['limit'];
    if (typeof limitAsked !== 'number' || !Number.isSafeInteger(limitAsked) || limitAsked < 0) throw new QkvError('bad_request', 'limit must be an integer >= 0');
    const limit = Math.min(limitAsked === 0 ? listLimitDefault : limitAsked, this.limits.listLimitMax);
    const minVersion = optionalIndex(request['minVersion'], 'min_version');
    const consistency = readConsistency(request['consistency'], minVersion);
    const deadlineMs = this.deadlineMs(call);
    const op: ListOp = { prefix, after, limit, consistency, minVersion };
    let items: KvItem[];
    if (consistency === 'local') {
      items = await this.node.list(listOptions(op, timeoutOf(deadlineMs)));
    } else {
      const query: string[] = [`limit=${limit}`];
      if (prefix.length > 0) query.push(`prefix=${encodeURIComponent(prefix)}`);
      if (after !== undefined) query.push(`after=${encodeURIComponent(after)}`);
      const outcome = await this.router.run(listExec, op, new LazyForwardSpec('GET', readUrl('/kv', consistency, minVersion, query), null, false, consistency === 'linearizable', deadlineMs, null, false));
      if (outcome.via === 'forward') {
        const body = this.fromLeader(call, outcome.response);
        const next = body['next'];
        return { items: body['items'], ...(typeof next === 'string' ? { next } : {}) };
      }
      items = outcome.value;
    }
    const last = items.length === limit ? items[items.length - 1] : undefined;
    return {
      items: items.map((item) => ({ key: item.key, value: textOf(item.value), version: item.version })),
      ...(last === undefined ? {} : { next: last.key }),
    };
  }

  status(): object {
    return statusMessage(this.node.status(), this.address);
  }

  async die(request: Decoded): Promise<object> {
    if (this.dieHook === undefined) throw new QkvError('unknown_route', 'Die is off: start the node with --faults to allow it');
    if (request[badUtf8] !== undefined) throw new QkvError('bad_request', 'id is not valid UTF-8');
    const id = stringOf(request, 'id');
    if (id !== this.node.id) throw new QkvError('bad_request', `This is node ${this.node.id}, not ${JSON.stringify(id)}: nothing was stopped`);
    const clean = request['clean'] === true;
    const die = this.dieHook;
    // After the answer had time to leave; a clean stop then closes this server too.
    setTimeout(() => die(clean), dieDelayMs);
    return { id, clean };
  }

  /** Streams header, chunks and end; a failure ends the stream with the mapped status. */
  async backup(call: grpc.ServerWritableStream<Decoded, object>): Promise<void> {
    try {
      this.refuseIfClosing();
      checkDecoded(call.request);
      const source = this.node.openBackup();
      try {
        const status = this.node.status();
        const meta = source.meta;
        await send(call, {
          header: {
            nodeId: status.id,
            clusterId: status.clusterId,
            index: meta.index,
            term: meta.term,
            config: { members: meta.config.members, writeQuorum: String(meta.config.writeQuorum), topology: meta.config.topology },
          },
        });
        let chunks = 0;
        let items = 0;
        let dedup = 0;
        for (;;) {
          if (call.cancelled) return;
          const chunk = source.readChunk(backupChunkBytes);
          if (chunk === null) break;
          await send(call, {
            items: {
              seq: chunks,
              items: chunk.items.map((item) =>
                typeof item.value === 'string'
                  ? { key: item.key, text: item.value, version: item.version }
                  : { key: item.key, binary: Buffer.from(item.value.buffer, item.value.byteOffset, item.value.byteLength), version: item.version },
              ),
              dedup: chunk.dedup.map((d) => ({ clientId: d.clientId, seq: d.seq, index: d.index, reply: Buffer.from(d.reply.buffer, d.reply.byteOffset, d.reply.byteLength) })),
            },
          });
          chunks++;
          items += chunk.items.length;
          dedup += chunk.dedup.length;
        }
        await send(call, { end: { chunks, items, dedup } });
        call.end();
      } finally {
        source.close();
      }
    } catch (error) {
      if (!call.cancelled) call.emit('error', this.toServiceError(error, this.node.id));
    }
  }

  // --- helpers ---

  private refuseIfClosing(): void {
    if (this.closing) throw new QkvError('shutting_down', 'This node is stopping; send the request to another node', {}, 1_000);
  }

  private checkKey(key: string, what: 'key' | 'prefix' | 'after' = 'key'): string {
    const problem = this.validate.key(key);
    if (problem !== null) {
      if (what === 'key') throw new QkvError(problem.code, problem.message);
      throw new QkvError('bad_request', `${what}: ${problem.message}`);
    }
    return key;
  }

  /** performance.now() at which this call's time is up: the client's deadline or ours. */
  private deadlineMs(call: grpc.ServerUnaryCall<Decoded, object>): number {
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    const clientMs = Number.isFinite(at) ? at - Date.now() - deadlineMarginMs : Infinity;
    const budgetMs = Math.min(this.limits.requestTimeoutMs, clientMs);
    if (budgetMs < 1) throw new QkvError('timeout', 'The call arrived with no time left before its deadline; nothing was done');
    return performance.now() + budgetMs;
  }

  /** The node whose state answered (or refused) this call, as HTTP's `x-qkv-served-by`. */
  private servedBy(call: object): string {
    return this.servedByOf.get(call) ?? this.node.id;
  }

  /** The fields of a forwarded answer (or its error, thrown), noting who served it. */
  private fromLeader(call: object, response: ForwardedResponse): Record<string, unknown> {
    this.servedByOf.set(call, response.servedBy);
    return forwardedBody(response.statusCode, response.body, response.retryAfter);
  }

  private toServiceError(error: unknown, servedBy: string): Partial<grpc.StatusObject> {
    let qkvError: QkvError;
    if (error instanceof QkvError) qkvError = error;
    else {
      this.onInternalError(error);
      qkvError = new QkvError('internal', `Internal error: ${error instanceof Error ? error.message : String(error)}`);
    }
    const metadata = servedByTrailer(servedBy);
    metadata.set('qkv-error', qkvError.code);
    metadata.set('qkv-error-body-bin', Buffer.from(JSON.stringify(qkvError.toBody()), 'utf8'));
    if (errorStatus[qkvError.code] === 503) metadata.set('qkv-retry-after-ms', String(qkvError.retryAfterMs ?? 1_000));
    return { code: codeToStatus[qkvError.code], details: qkvError.message, metadata };
  }
}

/** Trailing metadata naming the node whose state answered, as HTTP's `x-qkv-served-by`. */
function servedByTrailer(id: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('qkv-served-by', id);
  return metadata;
}

/** Writes one stream message, waiting for the transport to drain (or the call to end). */
function send(call: grpc.ServerWritableStream<Decoded, object>, message: object): Promise<void> {
  if (call.write(message)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
  });
}

function checkDecoded(request: Decoded): void {
  const problem = request[malformed];
  if (problem !== undefined) throw new QkvError('bad_request', `The request message cannot be decoded: ${problem}`);
}

function utf8Error(field: number | undefined, codes: Readonly<Record<number, ErrorCode>>, message?: string): QkvError {
  const code = (field === undefined ? undefined : codes[field]) ?? 'bad_request';
  const what = code === 'invalid_key' ? 'Key' : code === 'invalid_value' ? 'Value' : `Field ${String(field)}`;
  return new QkvError(code, message ?? `${what} is not valid UTF-8`);
}

function stringOf(request: Decoded, name: string): string {
  const value = request[name];
  return typeof value === 'string' ? value : '';
}

const decimal = /^(?:0|[1-9][0-9]{0,15})$/;

/** A uint64 field (decoded as a decimal string) as a safe integer, else bad_request. */
function optionalIndex(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'string' && decimal.test(value) ? Number(value) : typeof value === 'number' ? value : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new QkvError('bad_request', `${name} must be a safe integer >= 0 (at most 2^53 - 1), got ${String(value)}`);
  return n;
}

function readRequestId(request: Decoded, clientIdField: string, seqField: string): RequestId | null {
  const clientId = stringOf(request, clientIdField);
  const seq = optionalIndex(request[seqField], 'seq') ?? 0;
  if (clientId === '' && seq === 0) return null;
  if (clientId === '' || seq === 0) throw new QkvError('bad_request', 'Send both client_id and seq (seq >= 1), or neither');
  if (!isClientId(clientId)) {
    throw new QkvError('bad_request', `client_id must be 1 to ${clientIdCharsMax} visible ASCII characters`);
  }
  return { clientId, seq };
}

function readConsistency(value: unknown, minVersion: number | undefined): ReadConsistency {
  const name = typeof value === 'string' ? value : 'CONSISTENCY_UNSPECIFIED';
  if (!Object.hasOwn(consistencyOf, name)) throw new QkvError('bad_request', `consistency ${JSON.stringify(value)} is unknown`);
  return consistencyOf[name] ?? (minVersion === undefined ? 'linearizable' : 'local');
}

function timeoutOf(deadlineMs: number): number {
  const ms = Math.floor(deadlineMs - performance.now());
  if (ms < 1) throw new QkvError('timeout', 'The deadline passed before the read could be served');
  return ms;
}

/** A successful write result, or the refusal as the error HTTP would answer. */
function writeResult(result: KvResult): Extract<KvResult, { ok: true }> {
  if (result.ok) return result;
  if (result.error === 'version_conflict') {
    throw new QkvError('version_conflict', `Key version is ${result.actualVersion}, not the expected ${result.expectedVersion}; nothing was written`, {
      key: result.key,
      expectedVersion: result.expectedVersion,
      actualVersion: result.actualVersion,
    });
  }
  throw new QkvError('stale_request', `Stale request: sequence numbers up to ${result.lastSeq} of this client were already applied and this reply is gone; use a new seq`, {
    key: result.key,
    lastSeq: result.lastSeq,
  });
}

/** The leader's JSON answer to a forwarded call: its body on 200, else its error thrown. */
function forwardedBody(statusCode: number, body: Buffer, retryAfter: string | null): Record<string, unknown> {
  let parsed: Record<string, unknown> = {};
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
  } catch {
    // handled below as an unknown answer
  }
  if (statusCode === 200) return parsed;
  const { error, message, ...details } = parsed;
  let code: ErrorCode = isErrorCode(error) ? error : statusCode === 503 ? 'timeout' : 'internal';
  if (code === 'bad_request' && details['reason'] === 'stale_request') code = 'stale_request';
  const retryAfterSeconds = retryAfter === null ? NaN : Number(retryAfter);
  throw new QkvError(code, typeof message === 'string' ? message : `The leader answered HTTP ${statusCode}`, details, Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1000 : null);
}

/** JSON carries text; byte values are shown as UTF-8 (as HTTP does). */
function textOf(value: KvValue): string {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

function statusMessage(s: StatusResponse, grpcAddress: string): object {
  return {
    id: s.id,
    clusterId: s.clusterId,
    pid: s.pid,
    role: s.role,
    term: s.term,
    ...(s.leader === null ? {} : { leader: { id: s.leader.id, http: s.leader.http ?? '', grpc: s.leader.grpc ?? '' } }),
    commitIndex: s.commitIndex,
    ackedIndex: s.ackedIndex,
    appliedIndex: s.appliedIndex,
    lastIndex: s.lastIndex,
    firstIndex: s.firstIndex,
    keyCount: s.keyCount,
    mode: { writeQuorum: String(s.mode.writeQuorum), topology: s.mode.topology, sinceIndex: s.mode.sinceIndex, inSync: s.mode.inSync },
    peers: s.peers.map((p) => ({
      id: p.id,
      http: p.http ?? '',
      grpc: p.grpc ?? '',
      reachable: p.reachable,
      ...(p.matchIndex === null ? {} : { matchIndex: p.matchIndex }),
      ...(p.lag === null ? {} : { lag: p.lag }),
    })),
    rollbackCount: s.rollbackCount,
    uptimeMs: s.uptimeMs,
    grpc: grpcAddress,
  };
}
