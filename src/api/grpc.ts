/**
 * The gRPC API of one node (proto/quorumkv.proto, service quorumkv.v1.KV, @grpc/grpc-js):
 * the same operations, validation, limits and error codes as the HTTP API (http.ts).
 * Messages are the types generated from the .proto (wire/gen/, `npm run proto`): no field
 * is decoded by hand; what is checked here is meaning (key rules, pairs, ranges).
 *
 * Forwarding. A leader-bound call (write, `leader` read) that reaches a follower goes
 * through the same LeaderRouter as HTTP (forward.ts) and ops.ts's specs: one forwarding
 * path for both APIs, with one set of rules (bounded pools per leader, the remaining
 * deadline, the idempotency key; a write that may have reached the leader is
 * outcome_unknown, never no_leader). The leader's JSON answer is mapped onto the generated
 * response type. A linearizable read is served by the node it reaches, follower or not,
 * through the leader's read index (forward.ts explains).
 *
 * Errors end a call with a gRPC status and the wire error in trailing metadata:
 * `qkv-error` (the code), `qkv-error-body-bin` (the HTTP API's JSON body, binary metadata)
 * and `qkv-retry-after-ms` (503-class codes). See the proto's header for the status map.
 *
 * Input rules beyond HTTP's: string fields (keys, values, client ids, prefixes) are checked
 * to be valid UTF-8 in the raw message before it is decoded (a decoder would silently
 * replace bad bytes with U+FFFD): a bad key is invalid_key, a bad value invalid_value,
 * anything else bad_request. A uint64 past 2^53 - 1 cannot be decoded (bad_request). A
 * message over the receive limit is RESOURCE_EXHAUSTED from grpc-js itself (HTTP's
 * body_too_large).
 *
 * Must never: let bad input reach the node, serve a `leader` read from a follower's state
 * or a linearizable one before the leader confirmed its read point.
 */

import { isUtf8 } from 'node:buffer';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { KvNode } from '../node/types.js';
import { splitHostPort } from '../stdx/host-port.js';
import { checkPositiveSafeInt } from '../stdx/safe-int.js';
import { QkvError, errorStatus } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import { KVService } from '../wire/gen/quorumkv.js';
import { AccessControl, noAccessControl } from './access.js';
import type { AccessOptions } from './access.js';
import type { ServerTls, ServerTlsMaterial } from './server-tls.js';
import type { OutboundTls } from './outbound-tls.js';
import { LeaderRouter, defaultForwardLimits } from './forward.js';
import { PerClientLimit, defaultRequestsPerClientMax } from './client-limits.js';
import type { ForwardLimits } from './forward.js';
import { GrpcKv, badUtf8, checkDecoded, malformed, tokenOf } from './grpc-kv.js';
import { GrpcMembers } from './grpc-members.js';
import { GrpcLeases } from './grpc-leases.js';
import type { KeepAliveStream } from './grpc-leases.js';
import { GrpcWatches } from './grpc-watch.js';
import type { WatchCall } from './grpc-watch.js';
import type { Checked, GrpcLimits } from './grpc-kv.js';

export type { GrpcLimits } from './grpc-kv.js';
import type { InputValidator } from './validation.js';
import { createGrpcMetrics, createHttpMetrics } from './metrics.js';

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
  /** Who may make the admin and data calls (access.ts), as on HTTP. Default: admin calls open. */
  readonly access?: AccessOptions;
  /** TLS as on HTTP (http.ts HttpServerOptions.tls): reloaded material serves the next connections. */
  readonly tls?: ServerTls;
  /** How this node reaches the leader's HTTPS API when it forwards (http.ts HttpServerOptions.outboundTls). */
  readonly outboundTls?: OutboundTls;
  /**
   * Unary calls (and backups) one client address may have in flight across all its
   * connections; beyond it a call ends RESOURCE_EXHAUSTED too_many_requests. Streams
   * (Watch, LeaseKeepAliveStream) are not counted: they are bounded per connection by
   * streamsPerConnectionMax and per node by --watchers-max. Default as on HTTP (1,024).
   */
  readonly requestsPerClientMax?: number;
  /**
   * Concurrent calls (HTTP/2 streams) on one client connection (`grpc.max_concurrent_streams`):
   * a client's calls beyond it wait in its HTTP/2 stack, not on this node. Default 1,000.
   */
  readonly streamsPerConnectionMax?: number;
}

export interface GrpcServer {
  /** `host:port` with the bound port. */
  readonly address: string;
  /** Stops accepting calls; in-flight calls get up to `closeGraceMs` before being cancelled. */
  close(): Promise<void>;
}

/** In-flight calls get this long at close() before being cancelled. */
const closeGraceMs = 5_000;
/** Concurrent calls on one client connection (HTTP/2 streams), unless the options say otherwise. */
const defaultStreamsPerConnectionMax = 1_000;

/** String fields (by field number) of each request message, checked for UTF-8. */
const stringFields: Readonly<Record<keyof typeof KVService, readonly number[]>> = {
  put: [1, 2, 4],
  get: [1],
  delete: [1, 3],
  list: [1, 2],
  txn: [4],
  batch: [],
  status: [],
  backup: [],
  die: [1],
  members: [],
  addMember: [1, 2, 3, 4, 7],
  promoteMember: [1],
  removeMember: [1],
  transferLeader: [1],
  watch: [1],
  leaseGrant: [2],
  leaseKeepAlive: [],
  leaseKeepAliveStream: [],
  leaseInfo: [],
  leaseRevoke: [2],
};

/**
 * String fields of the messages inside a request's message fields: field number -> their
 * string fields, or a message of messages of its own.
 */
export type NestedStringFields = Readonly<Record<number, readonly number[] | { readonly fields: readonly number[]; readonly nested: NestedStringFields }>>;
const nestedStringFields: Partial<Record<keyof typeof KVService, NestedStringFields>> = {
  // TxnRequest: compare (TxnCompare: key, op, value), success and failure (TxnOp: op, key, value, prefix).
  txn: { 1: [1, 2, 4], 2: [1, 2, 3, 4], 3: [1, 2, 3, 4] },
  // BatchRequest: ops (BatchOp: put, get, delete, as their own calls' requests).
  batch: { 1: { fields: [], nested: { 1: [1, 2, 4], 2: [1], 3: [1, 3] } } },
};

export const codeToStatus: Readonly<Record<ErrorCode, grpc.status>> = {
  bad_request: grpc.status.INVALID_ARGUMENT,
  invalid_json: grpc.status.INVALID_ARGUMENT,
  invalid_key: grpc.status.INVALID_ARGUMENT,
  invalid_value: grpc.status.INVALID_ARGUMENT,
  header_too_large: grpc.status.INVALID_ARGUMENT,
  key_too_large: grpc.status.INVALID_ARGUMENT,
  value_too_large: grpc.status.INVALID_ARGUMENT,
  body_too_large: grpc.status.INVALID_ARGUMENT,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  permission_denied: grpc.status.PERMISSION_DENIED,
  not_found: grpc.status.NOT_FOUND,
  lease_not_found: grpc.status.NOT_FOUND,
  unknown_route: grpc.status.UNIMPLEMENTED,
  method_not_allowed: grpc.status.UNIMPLEMENTED,
  compacted: grpc.status.OUT_OF_RANGE,
  slow_consumer: grpc.status.RESOURCE_EXHAUSTED,
  rolled_back: grpc.status.ABORTED,
  version_conflict: grpc.status.FAILED_PRECONDITION,
  stale_request: grpc.status.FAILED_PRECONDITION,
  membership_busy: grpc.status.FAILED_PRECONDITION,
  member_exists: grpc.status.ALREADY_EXISTS,
  learner_lagging: grpc.status.FAILED_PRECONDITION,
  pinned_leader: grpc.status.FAILED_PRECONDITION,
  not_leader: grpc.status.UNAVAILABLE,
  no_leader: grpc.status.UNAVAILABLE,
  busy: grpc.status.UNAVAILABLE,
  too_many_requests: grpc.status.RESOURCE_EXHAUSTED,
  shutting_down: grpc.status.UNAVAILABLE,
  not_ready: grpc.status.UNAVAILABLE,
  quorum_timeout: grpc.status.DEADLINE_EXCEEDED,
  timeout: grpc.status.DEADLINE_EXCEEDED,
  outcome_unknown: grpc.status.DEADLINE_EXCEEDED,
  no_space: grpc.status.RESOURCE_EXHAUSTED,
  process_running: grpc.status.FAILED_PRECONDITION,
  process_not_running: grpc.status.FAILED_PRECONDITION,
  no_supervisor: grpc.status.UNIMPLEMENTED,
  internal: grpc.status.INTERNAL,
};

/**
 * Plain, or TLS through grpc-js' certificate providers: a provider that hands over the
 * material in force and again whenever it is reloaded, so gRPC rotates with HTTP and peers.
 */
function serverCredentials(tlsOptions: GrpcServerOptions['tls']): grpc.ServerCredentials {
  if (tlsOptions === undefined) return grpc.ServerCredentials.createInsecure();
  const { material, requireClientCert } = tlsOptions;
  const identity = new Set<(update: { certificate: Buffer; privateKey: Buffer } | null) => void>();
  const cas = new Set<(update: { caCertificate: Buffer } | null) => void>();
  const caOf = (m: ServerTlsMaterial): { caCertificate: Buffer } | null => (m.ca === undefined ? null : { caCertificate: m.ca });
  material.onChange((m) => {
    for (const l of identity) l({ certificate: m.cert, privateKey: m.key });
    for (const l of cas) l(caOf(m));
  });
  const provider: grpc.experimental.CertificateProvider = {
    // The first update goes out after grpc-js has registered its watcher (it adds the
    // listener first): a synchronous one would be lost and the server would never serve.
    addIdentityCertificateListener: (l) => {
      identity.add(l);
      setImmediate(() => l({ certificate: material.material().cert, privateKey: material.material().key }));
    },
    removeIdentityCertificateListener: (l) => void identity.delete(l),
    addCaCertificateListener: (l) => {
      cas.add(l);
      setImmediate(() => l(caOf(material.material())));
    },
    removeCaCertificateListener: (l) => void cas.delete(l),
  };
  // grpc-js takes the identity provider first (its parameter names say otherwise); a CA
  // provider is given only when client certificates are asked for.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, requireClientCert ? provider : null, requireClientCert);
}

/** Starts the gRPC API of `options.node`; resolves once it listens. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const limits = checkLimits(options.limits);
  const metrics = createHttpMetrics(options.registry);
  const router = new LeaderRouter({
    node: options.node,
    leaderWaitMs: limits.leaderWaitMs,
    limits: { ...defaultForwardLimits, ...options.forward },
    metrics,
    bodyBytesMax: limits.messageBytesMax,
    ...(options.outboundTls === undefined ? {} : { connect: options.outboundTls }),
  });
  const onInternalError = options.onInternalError ?? (() => undefined);
  const grpcMetrics = createGrpcMetrics(options.registry);
  const access = new AccessControl(options.node, options.access ?? noAccessControl);
  const kv = new GrpcKv({ node: options.node, limits, validate: options.validate, router, access, ...(options.die === undefined ? {} : { die: options.die }) });
  const members = new GrpcMembers(kv, badUtf8);
  const serviceError = (error: unknown): Partial<grpc.StatusObject> => toServiceError(error, options.node.id, onInternalError);
  const watches = new GrpcWatches(kv, serviceError);
  const leases = new GrpcLeases(kv);

  const server = new grpc.Server(serverOptions(limits, options.streamsPerConnectionMax ?? defaultStreamsPerConnectionMax));
  const budget = callBudget(new PerClientLimit(options.requestsPerClientMax ?? defaultRequestsPerClientMax, '--requests-per-client-max'));
  const unary = <Req, Res>(method: string, handler: (request: Checked<Req>, call: grpc.ServerUnaryCall<Checked<Req>, Res>) => Promise<Res>): grpc.handleUnaryCall<Checked<Req>, Res> =>
    (call, callback) => {
      const startedMs = performance.now();
      let release = (): void => undefined;
      const fail = (error: unknown): void => {
        release();
        const answer = toServiceError(error, kv.servedBy(call), onInternalError);
        grpcMetrics.observeCall(method, answer.metadata?.get('qkv-error')[0]?.toString() ?? 'internal', performance.now() - startedMs);
        callback(answer);
      };
      let result: Promise<Res>;
      try {
        release = budget(call);
        kv.refuseIfClosing();
        checkDecoded(call.request);
        result = handler(call.request, call);
      } catch (error) {
        fail(error);
        return;
      }
      result.then(
        (reply) => {
          release();
          grpcMetrics.observeCall(method, 'ok', performance.now() - startedMs);
          callback(null, reply, servedByTrailer(kv.servedBy(call)));
        },
        fail,
      );
    };
  // The operational calls, as HTTP's admin routes: the admin token or an admin user, or
  // UNIMPLEMENTED when this node has admin routes off.
  const adminGate = (call: { readonly metadata: grpc.Metadata }): void => {
    if (access.options.admin === 'off') throw new QkvError('unknown_route', 'Admin calls are off on this node (--admin-routes off)');
    access.requireAdmin(tokenOf(call));
  };
  const admin = <Req, Res>(handler: (request: Checked<Req>, call: grpc.ServerUnaryCall<Checked<Req>, Res>) => Promise<Res>) =>
    (request: Checked<Req>, call: grpc.ServerUnaryCall<Checked<Req>, Res>): Promise<Res> => {
      adminGate(call);
      return handler(request, call);
    };
  server.addService(withUtf8Checks(), {
    put: unary('Put', (r, c) => kv.put(r, c)),
    get: unary('Get', (r, c) => kv.get(r, c)),
    delete: unary('Delete', (r, c) => kv.delete(r, c)),
    list: unary('List', (r, c) => kv.list(r, c)),
    txn: unary('Txn', (r, c) => kv.txn(r, c)),
    batch: unary('Batch', (r, c) => kv.batch(r, c)),
    status: unary('Status', () => Promise.resolve(kv.status())),
    backup: (call: grpc.ServerWritableStream<Checked<object>, object>): void => {
      let release: () => void;
      try {
        release = budget(call);
      } catch (error) {
        call.emit('error', serviceError(error));
        return;
      }
      kv.backup(call, serviceError, () => adminGate(call)).catch(onInternalError).finally(release);
    },
    die: unary('Die', admin((r) => kv.die(r))),
    members: unary('Members', () => Promise.resolve(members.members())),
    addMember: unary('AddMember', admin((r, c) => members.addMember(r, c))),
    promoteMember: unary('PromoteMember', admin((r, c) => members.promoteMember(r, c))),
    removeMember: unary('RemoveMember', admin((r, c) => members.removeMember(r, c))),
    transferLeader: unary('TransferLeader', admin((r, c) => members.transferLeader(r, c))),
    watch: (call: WatchCall): void => {
      watches.serve(call).catch(onInternalError);
    },
    leaseGrant: unary('LeaseGrant', (r, c) => leases.grant(r, c)),
    leaseKeepAlive: unary('LeaseKeepAlive', (r, c) => leases.keepAlive(r, c)),
    leaseKeepAliveStream: (call: KeepAliveStream): void => {
      leases.keepAliveStream(call, serviceError).catch(onInternalError);
    },
    leaseInfo: unary('LeaseInfo', (r, c) => leases.info(r, c)),
    leaseRevoke: unary('LeaseRevoke', (r, c) => leases.revoke(r, c)),
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${hostForUrl(options.listen.host)}:${options.listen.port}`, serverCredentials(options.tls), (error, bound) => {
      if (error !== null) reject(new Error(`Cannot listen for gRPC on ${options.listen.host}:${options.listen.port}: ${error.message}`));
      else resolve(bound);
    });
  });
  const address = `${hostForUrl(options.listen.host)}:${port}`;
  kv.address = address;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= shutdown(server, kv, [watches, leases], router);
    return closing;
  };
  return { address, close };
}

/** Refuses new calls, ends the streams, gives in-flight calls up to closeGraceMs, then stops forwarding. */
async function shutdown(server: grpc.Server, kv: GrpcKv, streams: readonly { close(): void }[], router: LeaderRouter): Promise<void> {
  kv.closing = true;
  // Streams never end by themselves: they end now, telling the reader to go elsewhere.
  for (const s of streams) s.close();
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
}

/** Counts a call against its client address and returns its release, or throws too_many_requests past the limit. */
function callBudget(limit: PerClientLimit): (call: { getPeer(): string }) => () => void {
  return (call) => {
    const release = limit.take(peerAddress(call.getPeer()));
    if (release === null) throw limit.refusal('calls in flight', 'wait for their answers, or back off');
    return release;
  };
}

/** Every option that bounds something is stated (STYLE.md 14). */
function serverOptions(limits: GrpcLimits, streamsPerConnectionMax: number): grpc.ServerOptions {
  checkPositiveSafeInt(streamsPerConnectionMax, 'streamsPerConnectionMax');
  return {
    'grpc.max_receive_message_length': limits.messageBytesMax,
    'grpc.max_send_message_length': 256 * 1024 * 1024,
    'grpc.max_concurrent_streams': streamsPerConnectionMax,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_connection_idle_ms': 5 * 60_000,
  };
}

/** The client address in grpc-js' peer text (`ip:port`, IPv6 without brackets; `unknown` without a socket). */
export function peerAddress(peer: string): string {
  // Over TCP grpc-js always appends the port: the one host:port parser takes it off.
  return splitHostPort(peer)?.host ?? peer;
}

function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function checkLimits(limits: GrpcLimits): GrpcLimits {
  for (const name of ['messageBytesMax', 'listLimitMax', 'requestTimeoutMs'] as const) {
    checkPositiveSafeInt(limits[name], `GrpcLimits.${name}`);
  }
  if (!Number.isSafeInteger(limits.leaderWaitMs) || limits.leaderWaitMs < 0) throw new RangeError(`GrpcLimits.leaderWaitMs must be an integer >= 0, got ${limits.leaderWaitMs}`);
  return limits;
}

/** The generated service with each request decoder wrapped to record bad UTF-8 and undecodable input. */
function withUtf8Checks(): grpc.ServiceDefinition {
  const wrapped: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const [name, method] of Object.entries(KVService) as [keyof typeof KVService, grpc.MethodDefinition<object, object>][]) {
    const fields = stringFields[name];
    const nested = nestedStringFields[name] ?? {};
    const decode = method.requestDeserialize;
    const encode = method.responseSerialize;
    wrapped[name] = {
      ...method,
      // Watch messages come encoded once for every watcher alike (grpc-watch.ts).
      responseSerialize: (value: object): Buffer => (Buffer.isBuffer(value) ? value : encode(value)),
      requestDeserialize: (bytes: Buffer): object => {
        // A decoder accepts some truncated messages (a string field cut short decodes to
        // its prefix), so the raw walk also decides whether the message is well-formed.
        const scan = firstBadUtf8Field(bytes, fields, nested);
        if (scan < 0) return { [malformed]: 'the protobuf encoding is truncated or malformed' };
        let decoded: Record<string | symbol, unknown>;
        try {
          decoded = decode(bytes) as Record<string | symbol, unknown>;
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
 * length-delimited field in `fields` whose bytes are not UTF-8 (or, for a field in
 * `nested`, a message with such a string field of its own), else 0.
 */
export function firstBadUtf8Field(bytes: Buffer, fields: readonly number[], nested: NestedStringFields = {}): number {
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
        const inner = nested[field];
        if (bad === 0 && fields.includes(field) && !isUtf8(bytes.subarray(offset, offset + length))) bad = field;
        else if (inner !== undefined) {
          const sub = bytes.subarray(offset, offset + length);
          const scan = Array.isArray(inner) ? firstBadUtf8Field(sub, inner) : firstBadUtf8Field(sub, (inner as { fields: readonly number[] }).fields, (inner as { nested: NestedStringFields }).nested);
          if (scan < 0) return -1;
          if (bad === 0 && scan > 0) bad = field;
        }
        offset += length;
        break;
      }
      default:
        return -1;
    }
  }
  return offset === bytes.length ? bad : -1;
}

function toServiceError(error: unknown, servedBy: string, onInternalError: (error: unknown) => void): Partial<grpc.StatusObject> {
  let qkvError: QkvError;
  if (error instanceof QkvError) qkvError = error;
  else {
    onInternalError(error);
    qkvError = new QkvError('internal', `Internal error: ${error instanceof Error ? error.message : String(error)}`);
  }
  const metadata = servedByTrailer(servedBy);
  metadata.set('qkv-error', qkvError.code);
  metadata.set('qkv-error-body-bin', Buffer.from(JSON.stringify(qkvError.toBody()), 'utf8'));
  if (errorStatus[qkvError.code] === 503 || errorStatus[qkvError.code] === 429) metadata.set('qkv-retry-after-ms', String(qkvError.retryAfterMs ?? 1_000));
  return { code: codeToStatus[qkvError.code], details: qkvError.message, metadata };
}

/** Trailing metadata naming the node whose state answered, as HTTP's `x-qkv-served-by`. */
function servedByTrailer(id: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('qkv-served-by', id);
  return metadata;
}

