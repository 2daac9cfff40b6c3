/**
 * The client's gRPC transport (proto/quorumkv.proto, service quorumkv.v1.KV): one grpc-js
 * channel per node, one call per attempt, messages of the types generated from the .proto
 * (wire/gen/; a uint64 past 2^53 - 1 fails to decode rather than round), failures turned
 * into AttemptError using the wire code the server puts in trailing metadata (`qkv-error`).
 *
 * Must never: let grpc-js retry on its own (`grpc.enable_retries` is 0; client.ts decides).
 */

import * as grpc from '@grpc/grpc-js';
import { errorStatus, isErrorCode } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import { Consistency, KVService } from '../wire/gen/quorumkv.js';
import type { BackupChunk, BatchOp, BatchResult, KeyValue, StatusResponse as StatusMessage, WatchChange as WatchChangeMessage, WatchResponse } from '../wire/gen/quorumkv.js';
import type { BatchOpBody, BatchResultItem, LeaseGrantResponse, LeaseInfoResponse, LeaseKeepAliveResponse, LeaseRevokeResponse, MembersResponse, MembershipChangeResponse, ReadConsistency, StatusResponse, TxnResponse } from '../wire/types.js';
import { InvalidArgumentError } from './errors.js';
import { Batcher } from './batcher.js';
import { GrpcTlsCredentials } from './grpc-tls.js';
import type { BatchLimits } from './batcher.js';
import { batchablePut, deleteOp, deleteResult, entryOf as entryOfItem, getOp, okItem, putOp, stringField } from './batch-items.js';
import type { BackupDedup, BackupItem, BackupRecord } from './backup-file.js';
import { checkRecord } from './backup-file.js';
import { AttemptError, ProtocolError, decodedIndex } from './transport.js';
import type { BackupSink, ClientTransport, DeleteRequest, GetRequest, ListRequest, MemberChangeRequest, PutRequest, TxnRequest, WatchStream, WatchStreamRequest, WriteRequestId } from './transport.js';
import { changeJson, changeOf, membersJson, membersOf } from './member-answers.js';
import { txnMessageOf, txnResponseOf } from './grpc-txn.js';
import type { ClientTls, DeleteResult, Entry, ListPage, NodeStatus, PutResult } from './types.js';
import { jsonValue, messageFields, valueOfMessage } from '../wire/values.js';
import type { WatchChange } from './watch.js';

/** Channel options, all explicit (STYLE.md 14). */
const channelOptions: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  // A restarted node is found again within a second, not after grpc's default 120 s cap.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  'grpc.min_reconnect_backoff_ms': 100,
  // Notice a dead peer on an idle connection.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 0,
  'grpc.enable_retries': 0,
  // HTTP/2's default window (64 KiB per stream and for the connection) stalls many watch
  // streams sharing one connection: one change to 1,000 watchers is already ~100 KB. 4 MiB
  // is what a node lets one watcher leave unread before it ends it as a slow consumer.
  'grpc-node.flow_control_window': 4 * 1024 * 1024,
};

const consistencyOf: Readonly<Record<ReadConsistency, Consistency>> = {
  linearizable: Consistency.LINEARIZABLE,
  leader: Consistency.LEADER,
  local: Consistency.LOCAL,
};

/** One unary method of the generated service definition. */
interface UnaryMethod<Req, Res> {
  readonly path: string;
  readonly requestSerialize: (value: Req) => Buffer;
  readonly responseDeserialize: (value: Buffer) => Res;
}

export class GrpcTransport implements ClientTransport {
  constructor(
    /** Sent as `authorization: Bearer <token>` metadata with every call; null: none. */
    private readonly token: string | null = null,
    /** TLS for every channel; null: plain unless an endpoint says grpcs://. */
    private readonly tls: ClientTls | null = null,
    /** Gather the put/get/delete calls of one turn into Batch calls per node; null: one call each. */
    batching: BatchLimits | null = null,
  ) {
    this.batcher = batching === null ? null : new Batcher((endpoint, ops, timeoutMs) => this.sendBatch(endpoint, ops, timeoutMs), batching);
  }

  private readonly batcher: Batcher | null;

  /** Endpoints given as grpcs://: TLS even without tls options (the system's CAs). */
  private readonly secureEndpoints = new Set<string>();

  private credentials(endpoint: string): grpc.ChannelCredentials {
    if (this.tls === null && !this.secureEndpoints.has(endpoint)) return grpc.credentials.createInsecure();
    const bytes = (v: string | Uint8Array | undefined): Buffer | undefined => (v === undefined ? undefined : Buffer.from(v));
    // Not grpc-js' createSsl: it names an IP endpoint as the TLS server name (grpc-tls.ts).
    return new GrpcTlsCredentials(endpoint, { ca: bytes(this.tls?.ca), key: bytes(this.tls?.key), cert: bytes(this.tls?.cert) });
  }

  /** A call's metadata: the credentials, if any (grpc-js wants a fresh object per call). */
  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token !== null) metadata.set('authorization', `Bearer ${this.token}`);
    return metadata;
  }

  readonly kind = 'grpc' as const;
  private readonly clients = new Map<string, grpc.Client>();
  private closed = false;

  normalize(endpoint: string): string {
    const secure = endpoint.startsWith('grpcs://');
    const bare = endpoint.startsWith('grpc://') ? endpoint.slice('grpc://'.length) : secure ? endpoint.slice('grpcs://'.length) : endpoint;
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})$/.exec(bare);
    const port = match === null ? NaN : Number(match[2]);
    if (match === null || port < 1 || port > 65535) {
      throw new InvalidArgumentError('bad_request', `gRPC endpoint ${JSON.stringify(endpoint)} must be host:port`);
    }
    const normalized = `${match[1]}:${port}`;
    if (secure) this.secureEndpoints.add(normalized);
    return normalized;
  }

  async put(endpoint: string, request: PutRequest, timeoutMs: number): Promise<PutResult> {
    if (this.batcher !== null && batchablePut(request)) {
      const json = okItem(await this.batcher.submit(endpoint, 'write', putOp(request), request.key.length + request.value.length + batchOpOverheadBytes, timeoutMs));
      return { key: stringField(json, 'key'), version: decodedIndex(json['version'], 'version') };
    }
    const message = { key: request.key, ...messageFields(request.value), ifVersion: request.ifVersion, lease: request.lease, clientId: request.requestId.clientId, seq: request.requestId.seq };
    const reply = await this.unary(endpoint, KVService.put, message, timeoutMs);
    return { key: reply.key, version: reply.version };
  }

  async txn(endpoint: string, request: TxnRequest, timeoutMs: number): Promise<TxnResponse> {
    const message = { ...txnMessageOf(request.body), clientId: request.requestId.clientId, seq: request.requestId.seq };
    return txnResponseOf(await this.unary(endpoint, KVService.txn, message, timeoutMs));
  }

  leaseGrant(endpoint: string, ttlMs: number, requestId: WriteRequestId, timeoutMs: number): Promise<LeaseGrantResponse> {
    return this.unary(endpoint, KVService.leaseGrant, { ttlMs, clientId: requestId.clientId, seq: requestId.seq }, timeoutMs);
  }

  leaseKeepAlive(endpoint: string, id: number, timeoutMs: number): Promise<LeaseKeepAliveResponse> {
    return this.unary(endpoint, KVService.leaseKeepAlive, { id }, timeoutMs);
  }

  leaseRevoke(endpoint: string, id: number, requestId: WriteRequestId, timeoutMs: number): Promise<LeaseRevokeResponse> {
    return this.unary(endpoint, KVService.leaseRevoke, { id, clientId: requestId.clientId, seq: requestId.seq }, timeoutMs);
  }

  async leaseInfo(endpoint: string, id: number, keysMax: number, timeoutMs: number): Promise<LeaseInfoResponse | undefined> {
    try {
      return await this.unary(endpoint, KVService.leaseInfo, { id, keysMax }, timeoutMs);
    } catch (error) {
      if (error instanceof AttemptError && error.code === 'lease_not_found') return undefined;
      throw error;
    }
  }

  /**
   * A Watch stream, its messages in the HTTP stream's shape (watch.ts reads both): the
   * status it ends with becomes an error message when the server named a wire code.
   */
  async watch(endpoint: string, request: WatchStreamRequest, timeoutMs: number): Promise<WatchStream> {
    const method = KVService.watch;
    const message = { prefix: request.prefix, fromVersion: request.fromVersion ?? undefined, prevValue: request.prevValue, consistency: consistencyOf[request.consistency] };
    const call = this.client(endpoint).makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, message, this.metadata(), {});
    // The server sends its headers at once: until then the stream may not be open at all.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new AttemptError('lost', null, `${endpoint}: no answer to Watch within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: unknown): void => {
        clearTimeout(timer);
        call.cancel();
        reject(error instanceof AttemptError ? error : failure(error, endpoint));
      };
      call.once('metadata', () => {
        clearTimeout(timer);
        call.off('error', fail);
        resolve();
      });
      call.once('error', fail);
    });
    return { messages: watchMessages(call, endpoint), close: () => call.cancel() };
  }

  async delete(endpoint: string, request: DeleteRequest, timeoutMs: number): Promise<DeleteResult> {
    if (this.batcher !== null) {
      return deleteResult(okItem(await this.batcher.submit(endpoint, 'write', deleteOp(request), request.key.length + batchOpOverheadBytes, timeoutMs)));
    }
    const message = { key: request.key, ifVersion: request.ifVersion, clientId: request.requestId.clientId, seq: request.requestId.seq };
    const reply = await this.unary(endpoint, KVService.delete, message, timeoutMs);
    return { key: reply.key, version: reply.version, deleted: reply.deleted };
  }

  async get(endpoint: string, request: GetRequest, timeoutMs: number): Promise<Entry | undefined> {
    if (this.batcher !== null && request.atVersion === undefined) {
      const item = await this.batcher.submit(endpoint, 'read', getOp(request), request.key.length + batchOpOverheadBytes, timeoutMs);
      if (item.status === 404 && item['error'] === 'not_found') return undefined;
      return entryOfItem(okItem(item));
    }
    const consistency = request.consistency === undefined ? Consistency.CONSISTENCY_UNSPECIFIED : consistencyOf[request.consistency];
    try {
      return entryOf(await this.unary(endpoint, KVService.get, { key: request.key, consistency, minVersion: request.minVersion, atVersion: request.atVersion }, timeoutMs));
    } catch (error) {
      if (error instanceof AttemptError && error.code === 'not_found') return undefined;
      throw error;
    }
  }

  async list(endpoint: string, request: ListRequest, timeoutMs: number): Promise<ListPage> {
    const consistency = request.consistency === undefined ? Consistency.CONSISTENCY_UNSPECIFIED : consistencyOf[request.consistency];
    const message = { prefix: request.prefix, after: request.after ?? '', limit: request.limit ?? 0, consistency, minVersion: request.minVersion, atVersion: request.atVersion, keysOnly: false, countOnly: false, reverse: request.reverse ?? false };
    const reply = await this.unary(endpoint, KVService.list, message, timeoutMs);
    return { items: reply.items.map(entryOf), next: reply.next ?? null, version: reply.version };
  }

  async status(endpoint: string, timeoutMs: number): Promise<NodeStatus> {
    return statusOf(await this.unary(endpoint, KVService.status, {}, timeoutMs));
  }

  async backup(endpoint: string, sink: BackupSink, timeoutMs: number): Promise<void> {
    const method = KVService.backup;
    const stream = this.client(endpoint).makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, {}, this.metadata(), {
      deadline: Date.now() + timeoutMs,
    });
    try {
      for await (const message of stream as AsyncIterable<BackupChunk>) {
        await sink.write(backupRecordOf(message));
      }
    } catch (error) {
      stream.cancel();
      if (error instanceof ProtocolError) throw error;
      if (error instanceof Error && error.name === 'BackupFormatError') throw new ProtocolError(`${endpoint} sent a malformed backup: ${error.message}`);
      throw failure(error, endpoint);
    }
  }

  async die(endpoint: string, nodeId: string, clean: boolean, timeoutMs: number): Promise<void> {
    await this.unary(endpoint, KVService.die, { id: nodeId, clean }, timeoutMs);
  }

  async members(endpoint: string, timeoutMs: number): Promise<MembersResponse> {
    return membersOf(membersJson(await this.unary(endpoint, KVService.members, {}, timeoutMs)));
  }

  async changeMembers(endpoint: string, change: MemberChangeRequest, timeoutMs: number): Promise<MembershipChangeResponse> {
    let reply;
    if (change.op === 'add') {
      const m = change.member;
      const message = { id: m.id, peer: m.peer, http: m.http ?? '', grpc: m.grpc ?? '', learner: m.learner, force: m.force === true, memberId: m.memberId ?? '' };
      reply = await this.unary(endpoint, KVService.addMember, message, timeoutMs);
    } else {
      reply = await this.unary(endpoint, change.op === 'promote' ? KVService.promoteMember : KVService.removeMember, { id: change.id }, timeoutMs);
    }
    return changeOf(changeJson(reply));
  }

  async transferLeader(endpoint: string, to: string | null, timeoutMs: number): Promise<{ readonly leader: string }> {
    return this.unary(endpoint, KVService.transferLeader, { to: to ?? '' }, timeoutMs);
  }

  /** One Batch call; its results in the batch route's shape (batch-items.ts), which the batcher hands back. */
  private async sendBatch(endpoint: string, ops: readonly BatchOpBody[], timeoutMs: number): Promise<readonly BatchResultItem[]> {
    const started = performance.now();
    let reply;
    try {
      reply = await this.unary(endpoint, KVService.batch, { ops: ops.map(batchOpMessage) }, timeoutMs);
    } catch (error) {
      // Over the node's message limit (grpc-js refuses it before any handler runs): halve
      // until each part fits, or until one operation is refused as its own call would be.
      if (!(error instanceof AttemptError) || error.code !== 'body_too_large') throw error;
      if (ops.length === 1) return [{ status: errorStatus.body_too_large, error: 'body_too_large', message: error.message }];
      const half = Math.ceil(ops.length / 2);
      const leftMs = timeoutMs - (performance.now() - started);
      if (leftMs < 1) throw new AttemptError('unreachable', null, `${endpoint} refused a batch as too large and no time is left to split it`);
      const [first, second] = await Promise.all([this.sendBatch(endpoint, ops.slice(0, half), leftMs), this.sendBatch(endpoint, ops.slice(half), leftMs)]);
      return [...first, ...second];
    }
    if (reply.results.length !== ops.length) throw new ProtocolError(`Batch answered ${reply.results.length} results for ${ops.length} operations`);
    return reply.results.map(batchItemOf);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private client(endpoint: string): grpc.Client {
    let client = this.clients.get(endpoint);
    if (client !== undefined) return client;
    if (this.closed) throw new AttemptError('unreachable', null, 'The client is closed');
    client = new grpc.Client(endpoint, this.credentials(endpoint), channelOptions);
    this.clients.set(endpoint, client);
    return client;
  }

  private unary<Req, Res>(endpoint: string, method: UnaryMethod<Req, Res>, message: Req, timeoutMs: number): Promise<Res> {
    const client = this.client(endpoint);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest<Req, Res>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        message,
        this.metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, reply) => {
          if (error !== null) reject(failure(error, endpoint));
          else if (reply === undefined) reject(new ProtocolError(`${endpoint} answered ${method.path} with no message`));
          else resolve(reply);
        },
      );
    });
  }
}

/** Maps a grpc-js failure to an attempt failure, using the server's wire code when present. */
function failure(error: unknown, endpoint: string): AttemptError {
  const serviceError = error as Partial<grpc.ServiceError>;
  const message = serviceError.details ?? (error instanceof Error ? error.message : String(error));
  const metadata = serviceError.metadata;
  const wireCode = metadata?.get('qkv-error')[0];
  if (typeof wireCode === 'string' && isErrorCode(wireCode)) {
    const rawBody = metadata?.get('qkv-error-body-bin')[0];
    let details: Record<string, unknown> = {};
    if (Buffer.isBuffer(rawBody)) {
      try {
        const { error: _code, message: _message, ...rest } = JSON.parse(rawBody.toString('utf8')) as Record<string, unknown>;
        details = rest;
      } catch {
        // details are a courtesy; the code decides
      }
    }
    const retryAfter = Number(metadata?.get('qkv-retry-after-ms')[0]);
    return new AttemptError('refused', wireCode, message, details, Number.isFinite(retryAfter) ? retryAfter : null);
  }
  const code = serviceError.code;
  // Refusals grpc-js itself makes, before any handler ran.
  const definite: Partial<Record<number, ErrorCode>> = {
    [grpc.status.RESOURCE_EXHAUSTED]: 'body_too_large',
    [grpc.status.UNIMPLEMENTED]: 'unknown_route',
    [grpc.status.INVALID_ARGUMENT]: 'bad_request',
  };
  const definiteCode = code === undefined ? undefined : definite[code];
  if (definiteCode !== undefined) return new AttemptError('refused', definiteCode, `${endpoint}: ${message}`);
  // grpc-js fails a call at once, before sending, while the channel cannot connect.
  const notSent = code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED|connection refused/i.test(message);
  return new AttemptError(notSent ? 'unreachable' : 'lost', null, `${endpoint}: ${grpcName(code)} ${message}`);
}

function grpcName(code: number | undefined): string {
  if (code === undefined) return 'error';
  return (grpc.status as unknown as Record<number, string>)[code] ?? `status ${code}`;
}

function entryOf(reply: KeyValue): Entry {
  return { key: reply.key, value: valueOfMessage(reply), version: reply.version };
}

/** A Watch stream's messages as the HTTP stream's JSON objects (values as they were written). */
async function* watchMessages(call: grpc.ClientReadableStream<WatchResponse>, endpoint: string): AsyncGenerator<Record<string, unknown>> {
  try {
    for await (const m of call as AsyncIterable<WatchResponse>) {
      const part = m.message;
      if (part?.$case === 'progress') yield { progress: part.progress };
      else if (part?.$case === 'changes') yield { version: part.changes.version, changes: part.changes.changes.map(watchChangeOf) };
      else throw new ProtocolError(`${endpoint} sent a watch message with neither changes nor progress`);
    }
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    const attempt = failure(error, endpoint);
    // The stream's end, named by the server (compacted, slow_consumer, ...): watch.ts decides.
    if (attempt.kind === 'refused' && attempt.code !== null) yield { ...attempt.details, error: attempt.code, message: attempt.message };
    else throw attempt;
  } finally {
    call.cancel();
  }
}

function watchChangeOf(c: WatchChangeMessage): WatchChange {
  const prev = c.prev === undefined ? {} : { prev: { value: valueOfMessage(c.prev), version: c.prev.version } };
  if (c.type === 'put') return { type: 'put', key: c.key, value: valueOfMessage(c), ...prev };
  if (c.type === 'delete') return { type: 'delete', key: c.key, ...prev };
  throw new ProtocolError(`a watch change has the unknown type ${JSON.stringify(c.type)}`);
}

/** proto3 strings are "" when unset: an address or null. */
function nonEmpty(value: string): string | null {
  return value !== '' ? value : null;
}

function writeQuorumOf(text: string, what: string): 'majority' | 'all' | number {
  return text === 'majority' || text === 'all' ? text : decodedIndex(text, what);
}

/** The Status message in the HTTP API's /status shape (nulls for absent). */
export function statusOf(m: StatusMessage): NodeStatus {
  const role = m.role;
  if (role !== 'leader' && role !== 'follower' && role !== 'candidate') throw new ProtocolError(`status role ${JSON.stringify(role)} is unknown`);
  const mode = m.mode;
  const status: StatusResponse & { grpc?: string } = {
    id: m.id,
    clusterId: m.clusterId,
    pid: m.pid,
    role,
    term: m.term,
    leader: m.leader === undefined ? null : { id: m.leader.id, http: nonEmpty(m.leader.http), grpc: nonEmpty(m.leader.grpc) },
    commitIndex: m.commitIndex,
    ackedIndex: m.ackedIndex,
    appliedIndex: m.appliedIndex,
    lastIndex: m.lastIndex,
    firstIndex: m.firstIndex,
    keyCount: m.keyCount,
    mode: {
      writeQuorum: mode === undefined ? 'majority' : writeQuorumOf(mode.writeQuorum, 'writeQuorum'),
      topology: mode?.topology === 'chain' ? 'chain' : 'star',
      sinceIndex: mode?.sinceIndex ?? 0,
      inSync: mode?.inSync ?? [],
    },
    peers: m.peers.map((p) => ({
      id: p.id,
      http: nonEmpty(p.http),
      grpc: nonEmpty(p.grpc),
      matchIndex: p.matchIndex ?? null,
      lag: p.lag ?? null,
      reachable: p.reachable,
    })),
    rollbackCount: m.rollbackCount,
    uptimeMs: m.uptimeMs,
    ...(m.membership === undefined ? {} : { membership: membersOf(membersJson(m.membership)) }),
  };
  return m.grpc !== '' ? { ...status, grpc: m.grpc } : status;
}

/** A Backup stream message as the backup record it stands for (then strictly checked). */
export function backupRecordOf(m: BackupChunk): BackupRecord {
  const part = m.part;
  if (part?.$case === 'header') {
    const h = part.header;
    return checkRecord({
      type: 'header',
      format: 'quorumkv-backup',
      formatVersion: 1,
      nodeId: h.nodeId,
      clusterId: h.clusterId,
      index: h.index,
      term: h.term,
      config: {
        members: h.config?.members,
        writeQuorum: writeQuorumOf(h.config?.writeQuorum ?? '', 'backup writeQuorum'),
        topology: h.config?.topology,
      },
    });
  }
  if (part?.$case === 'items') {
    const c = part.items;
    const items = c.items.map((i): BackupItem => {
      // Every case is written even when empty, so no value means a case this client does not
      // know (a newer server's): refused, never taken as an empty value.
      if (i.value === undefined) throw new ProtocolError(`Backup item ${JSON.stringify(i.key)} has no value this client knows`);
      switch (i.value.$case) {
        case 'text':
          return [i.key, i.value.text, i.version];
        case 'binary':
          return [i.key, { base64: i.value.binary.toString('base64') }, i.version];
        case 'inRow':
          if (!i.value.inRow) throw new ProtocolError(`Backup item ${JSON.stringify(i.key)} has in_row false (only true is sent)`);
          return [i.key, { inRow: true }, i.version];
      }
    });
    const dedup = c.dedup.map((d): BackupDedup => [d.clientId, d.seq, d.index, d.reply.toString('base64')]);
    return checkRecord({ type: 'chunk', seq: c.seq, items, dedup });
  }
  if (part?.$case === 'end') {
    return checkRecord({ type: 'end', chunks: part.end.chunks, items: part.end.items, dedup: part.end.dedup });
  }
  throw new ProtocolError('Backup message has no part');
}

/** What one operation adds to a batch beyond its key and value, about, for the batcher's byte limit. */
const batchOpOverheadBytes = 64;

function batchOpMessage(op: BatchOpBody): BatchOp {
  switch (op.op) {
    case 'put':
      return { op: { $case: 'put', put: { key: op.key, ...(op.encoding === 'base64' ? { value: '', binary: Buffer.from(op.value, 'base64') } : { value: op.value }), ifVersion: op.ifVersion, clientId: op.clientId ?? '', seq: op.seq ?? 0 } } };
    case 'delete':
      return { op: { $case: 'delete', delete: { key: op.key, ifVersion: op.ifVersion, clientId: op.clientId ?? '', seq: op.seq ?? 0 } } };
    case 'get':
      return { op: { $case: 'get', get: { key: op.key, consistency: op.consistency === undefined ? Consistency.CONSISTENCY_UNSPECIFIED : consistencyOf[op.consistency], minVersion: op.minVersion } } };
  }
}

/** A Batch result as the batch route would have answered the operation. */
function batchItemOf(result: BatchResult): BatchResultItem {
  const r = result.result;
  switch (r?.$case) {
    case 'put':
      return { status: 200, key: r.put.key, version: r.put.version };
    case 'get':
      return { status: 200, key: r.get.key, ...jsonValue(valueOfMessage(r.get)), version: r.get.version };
    case 'delete':
      return { status: 200, key: r.delete.key, version: r.delete.version, deleted: r.delete.deleted };
    case 'error': {
      const code = isErrorCode(r.error.code) ? r.error.code : 'internal';
      let details: Record<string, unknown> = {};
      try {
        details = JSON.parse(r.error.detailsJson || '{}') as Record<string, unknown>;
      } catch {
        // details are extras: the code and message stand without them
      }
      return { ...details, status: errorStatus[code], error: code, message: r.error.message, ...(r.error.retryAfterMs === undefined ? {} : { retryAfterMs: r.error.retryAfterMs }) };
    }
    default:
      throw new ProtocolError('a Batch result names none of put, get, delete, error');
  }
}
