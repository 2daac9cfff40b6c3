/**
 * The key-value calls of the gRPC API on the generated message types: validation (beyond
 * what decoding checked), the run here or on the leader through the shared LeaderRouter, and
 * the mapping of results and forwarded answers onto the response messages.
 */

import type * as grpc from '@grpc/grpc-js';
import type { KvResult } from '../kv/types.js';
import type { KvNode, ListResult } from '../node/types.js';
import type { KvRecord } from '../storage/types.js';
import { QkvError, errorStatus, isErrorCode } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import { Consistency } from '../wire/gen/quorumkv.js';
import type {
  BackupChunk,
  BackupItem,
  BatchError,
  BatchOp,
  BatchRequest,
  BatchResponse,
  BatchResult,
  DeleteRequest,
  DeleteResponse,
  DieRequest,
  DieResponse,
  GetRequest,
  GetResponse,
  KeyValue,
  ListRequest,
  ListResponse,
  PutRequest,
  PutResponse,
  StatusResponse as StatusMessage,
  TxnRequest,
  TxnResponse,
} from '../wire/gen/quorumkv.js';
import type { ReadConsistency, StatusResponse as NodeStatus } from '../wire/types.js';
import { batchOpsMax } from '../wire/types.js';
import { bearerToken } from './access.js';
import type { AccessControl, Principal } from './access.js';
import { backupValueOf } from './backup-stream.js';
import { forwardedFields, type ForwardedResponse, type LeaderRouter } from './forward.js';
import { membersMessage } from './grpc-members.js';
import { runGrpcTxn } from './grpc-txn.js';
import { leaseNotFound } from './http-answers.js';
import { valueOfJson } from './json-values.js';
import { bufferOf, messageFields, requestValue } from '../wire/values.js';
import { countKeys, deleteCommand, listExec, listOptions, listSpec, putCommand, readExec, readOptions, readSpec, writeExec, writeSpec } from './ops.js';
import type { ListOp, PutLease, ReadOp, SpecSource } from './ops.js';
import { requestIdOf } from './request-id.js';
import type { InputValidator } from './validation.js';

/** Marks a decoded request whose raw bytes had a string field that is not UTF-8 (its number). */
export const badUtf8 = Symbol('badUtf8');
/** Marks a request that could not be decoded at all (why). */
export const malformed = Symbol('malformed');

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

/** A decoded request as the service hands it over: with the decoding problems it found. */
export type Checked<T> = T & { readonly [badUtf8]?: number; readonly [malformed]?: string };

type Call<Req, Res> = grpc.ServerUnaryCall<Checked<Req>, Res>;

/** Default List page (as HTTP). */
const listLimitDefault = 100;
/** Kept back from the client's deadline so our answer reaches it first. */
const deadlineMarginMs = 20;
/** Bytes of state per Backup message. */
const backupChunkBytes = 1024 * 1024;
/** Time the Die answer gets to leave before the process stops. */
const dieDelayMs = 100;

const consistencyOf: Readonly<Record<number, ReadConsistency | undefined>> = {
  [Consistency.CONSISTENCY_UNSPECIFIED]: undefined,
  [Consistency.LINEARIZABLE]: 'linearizable',
  [Consistency.LEADER]: 'leader',
  [Consistency.LOCAL]: 'local',
};

const requestIdNames = { clientId: 'client_id', seq: 'seq' } as const;

export interface GrpcKvOptions {
  readonly node: KvNode;
  readonly limits: GrpcLimits;
  readonly validate: InputValidator;
  readonly router: LeaderRouter;
  readonly access: AccessControl;
  readonly die?: (clean: boolean) => void;
}

/** The bearer token of a call's `authorization` metadata (as HTTP's header), or null. */
export function tokenOf(call: { readonly metadata: grpc.Metadata }): string | null {
  const value = call.metadata.get('authorization')[0];
  return bearerToken(typeof value === 'string' ? value : value?.toString());
}

export class GrpcKv {
  address = '';
  closing = false;
  readonly node: KvNode;
  private readonly limits: GrpcLimits;
  private readonly validate: InputValidator;
  readonly router: LeaderRouter;
  readonly access: AccessControl;
  private readonly dieHook: ((clean: boolean) => void) | undefined;
  /** Calls answered by another node's state (a forward to the leader): that node's id. */
  private readonly servedByOf = new WeakMap<object, string>();

  constructor(o: GrpcKvOptions) {
    this.node = o.node;
    this.limits = o.limits;
    this.validate = o.validate;
    this.router = o.router;
    this.access = o.access;
    this.dieHook = o.die;
  }

  async put(request: Checked<PutRequest>, call: Call<PutRequest, PutResponse>): Promise<PutResponse> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], { 1: 'invalid_key', 2: 'invalid_value' });
    const key = this.checkKey(request.key);
    this.access.permit(this.who(call), key, 'write');
    const value = requestValue(request.value, request.binary, key);
    const problem = this.validate.value(value);
    if (problem !== null) throw new QkvError(problem.code, problem.message, { key });
    const requestId = requestIdOf(request.clientId || undefined, request.seq || undefined, requestIdNames);
    const answer = await this.runWrite(putCommand(key, value, request.ifVersion, requestId, putLease(request)), call);
    return { key: answer.key, version: answer.version, ...(answer.lease === undefined ? {} : { lease: answer.lease }) };
  }

  async delete(request: Checked<DeleteRequest>, call: Call<DeleteRequest, DeleteResponse>): Promise<DeleteResponse> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], { 1: 'invalid_key' });
    const key = this.checkKey(request.key);
    this.access.permit(this.who(call), key, 'write');
    const requestId = requestIdOf(request.clientId || undefined, request.seq || undefined, requestIdNames);
    const answer = await this.runWrite(deleteCommand(key, request.ifVersion, requestId), call);
    return { key: answer.key, version: answer.version, deleted: answer.deleted };
  }

  /** Runs a write here or on the leader: its answer's fields, as HTTP would give them. */
  private async runWrite(command: Parameters<typeof writeSpec>[0], call: Call<unknown, unknown>): Promise<{ key: string; version: number; deleted: boolean; lease?: number | undefined }> {
    const outcome = await this.router.run(writeExec, command, writeSpec(command, this.deadlineMs(call), this.source(call)));
    if (outcome.via === 'forward') {
      const body = this.fromLeader(call, outcome.response);
      const lease = body['lease'];
      return { key: textField(body, 'key'), version: numberField(body, 'version'), deleted: body['deleted'] === true, lease: typeof lease === 'number' ? lease : undefined };
    }
    const result = writeResult(outcome.value);
    return { key: result.key, version: result.version, deleted: result.op === 'delete' ? result.deleted : false, lease: result.op === 'put' ? result.lease : undefined };
  }

  async get(request: Checked<GetRequest>, call: Call<GetRequest, GetResponse>): Promise<GetResponse> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], { 1: 'invalid_key' });
    const key = this.checkKey(request.key);
    this.access.permit(this.who(call), key, 'read');
    const minVersion = request.minVersion;
    const atVersion = request.atVersion;
    const consistency = readConsistency(request.consistency, minVersion);
    const deadlineMs = this.deadlineMs(call);
    let record: KvRecord | undefined;
    if (consistency === 'local') {
      record = await this.node.read(key, readOptions('local', minVersion, timeoutOf(deadlineMs), atVersion));
    } else {
      const op: ReadOp = { key, consistency, minVersion, atVersion };
      const outcome = await this.router.run(readExec, op, readSpec(op, deadlineMs, this.source(call)));
      if (outcome.via === 'forward') return keyValueOf(this.fromLeader(call, outcome.response));
      record = outcome.value;
    }
    if (record === undefined) throw new QkvError('not_found', 'Key not found', { key });
    return { key, ...messageFields(record.value), version: record.version };
  }

  async list(request: Checked<ListRequest>, call: Call<ListRequest, ListResponse>): Promise<ListResponse> {
    if (request[badUtf8] !== undefined) throw utf8Error(request[badUtf8], {}, 'Field prefix or after is not valid UTF-8');
    const prefix = request.prefix;
    if (prefix.length > 0) this.checkPrefix(prefix);
    this.access.permit(this.who(call), prefix, 'read', 'prefix');
    const after = request.after.length > 0 ? this.checkKey(request.after, 'after') : undefined;
    const limit = Math.min(request.limit === 0 ? listLimitDefault : request.limit, this.limits.listLimitMax);
    const minVersion = request.minVersion;
    const consistency = readConsistency(request.consistency, minVersion);
    const deadlineMs = this.deadlineMs(call);
    const op: ListOp = { prefix, after, limit, consistency, minVersion, atVersion: request.atVersion, ...(request.reverse ? { reverse: true } : {}) };
    if (request.countOnly) {
      const counted = await countKeys(this.node, op, this.limits.listLimitMax, timeoutOf(deadlineMs));
      return { items: [], version: counted.version, count: counted.count };
    }
    let result: { items: readonly KeyValue[]; next?: string | undefined; version: number };
    if (consistency === 'local') {
      result = listMessage(await this.node.list(listOptions(op, timeoutOf(deadlineMs))), limit);
    } else {
      const outcome = await this.router.run(listExec, op, listSpec(op, deadlineMs, this.source(call)));
      if (outcome.via === 'forward') {
        const body = this.fromLeader(call, outcome.response);
        const forwarded = Array.isArray(body['items']) ? (body['items'] as Record<string, unknown>[]) : [];
        const next = body['next'];
        result = { items: forwarded.map(keyValueOf), ...(typeof next === 'string' ? { next } : {}), version: numberField(body, 'version') };
      } else result = listMessage(outcome.value, limit);
    }
    const items = request.keysOnly ? result.items.map((i): KeyValue => ({ key: i.key, value: '', version: i.version })) : [...result.items];
    return { items, ...(result.next === undefined ? {} : { next: result.next }), version: result.version };
  }

  /**
   * Batch: each operation run as its own call (same checks, deadline, credentials, forwarding)
   * and answered with its result or its error, concurrently and in order.
   */
  async batch(request: Checked<BatchRequest>, call: Call<BatchRequest, BatchResponse>): Promise<BatchResponse> {
    if (request[badUtf8] !== undefined) throw new QkvError('bad_request', 'A string in the batch is not valid UTF-8; nothing in the batch was run');
    if (request.ops.length > batchOpsMax) throw new QkvError('bad_request', `A batch holds at most ${batchOpsMax} operations, got ${request.ops.length}; nothing was run`, { batchOpsMax });
    const results = await Promise.all(request.ops.map((op) => this.batchOp(op, call as Call<never, never>)));
    return { results };
  }

  private async batchOp(op: BatchOp, call: Call<never, never>): Promise<BatchResult> {
    try {
      switch (op.op?.$case) {
        case 'put':
          return { result: { $case: 'put', put: await this.put(op.op.put, call) } };
        case 'get':
          return { result: { $case: 'get', get: await this.get(op.op.get, call) } };
        case 'delete':
          return { result: { $case: 'delete', delete: await this.delete(op.op.delete, call) } };
        default:
          throw new QkvError('bad_request', 'A batch operation names none of put, get, delete');
      }
    } catch (error) {
      return { result: { $case: 'error', error: batchErrorOf(error) } };
    }
  }

  txn(request: Checked<TxnRequest>, call: Call<TxnRequest, TxnResponse>): Promise<TxnResponse> {
    return runGrpcTxn({ router: this.router, validate: this.validate, limits: this.limits, deadlineMs: (c) => this.deadlineMs(c), fromLeader: (c, r) => this.fromLeader(c, r), permitTxn: (c, command) => this.access.permitTxn(this.who(c), command), source: (c) => this.source(c) }, request, request[badUtf8], call);
  }

  status(): StatusMessage {
    return statusMessage(this.node.status(), this.address);
  }

  async die(request: Checked<DieRequest>): Promise<DieResponse> {
    if (this.dieHook === undefined) throw new QkvError('unknown_route', 'Die is off: start the node with --faults to allow it');
    if (request[badUtf8] !== undefined) throw new QkvError('bad_request', 'id is not valid UTF-8');
    const { id, clean } = request;
    if (id !== this.node.id) throw new QkvError('bad_request', `This is node ${this.node.id}, not ${JSON.stringify(id)}: nothing was stopped`);
    const die = this.dieHook;
    // After the answer had time to leave; a clean stop then closes this server too.
    setTimeout(() => die(clean), dieDelayMs);
    return { id, clean };
  }

  /** Streams header, chunks and end; a failure ends the stream with the mapped status. */
  async backup(call: grpc.ServerWritableStream<Checked<object>, object>, toServiceError: (error: unknown) => Partial<grpc.StatusObject>, gate: () => void): Promise<void> {
    try {
      this.refuseIfClosing();
      gate();
      checkDecoded(call.request);
      const source = this.node.openBackup();
      try {
        const status = this.node.status();
        const meta = source.meta;
        const config = { members: [...meta.config.members], writeQuorum: String(meta.config.writeQuorum), topology: meta.config.topology };
        await send<BackupChunk>(call, { part: { $case: 'header', header: { nodeId: status.id, clusterId: status.clusterId, index: meta.index, term: meta.term, config } } });
        let chunks = 0;
        let items = 0;
        let dedup = 0;
        for (;;) {
          if (call.cancelled) return;
          const chunk = source.readItems(backupChunkBytes);
          if (chunk === null) break;
          await send<BackupChunk>(call, {
            part: {
              $case: 'items',
              items: {
                seq: chunks,
                items: chunk.items.map((item) => ({
                  key: item.key,
                  value: backupItemValue(backupValueOf(item)),
                  version: item.version,
                })),
                dedup: chunk.dedup.map((d) => ({ clientId: d.clientId, seq: d.seq, index: d.index, reply: bufferOf(d.reply) })),
              },
            },
          });
          chunks++;
          items += chunk.items.length;
          dedup += chunk.dedup.length;
        }
        await send<BackupChunk>(call, { part: { $case: 'end', end: { chunks, items, dedup } } });
        call.end();
      } finally {
        source.close();
      }
    } catch (error) {
      if (!call.cancelled) call.emit('error', toServiceError(error));
    }
  }

  refuseIfClosing(): void {
    if (this.closing) throw new QkvError('shutting_down', 'This node is stopping; send the request to another node', {}, 1_000);
  }

  /** The node whose state answered (or refused) this call, as HTTP's `x-qkv-served-by`. */
  servedBy(call: object): string {
    return this.servedByOf.get(call) ?? this.node.id;
  }

  checkPrefix(prefix: string): string {
    return this.checkKey(prefix, 'prefix');
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
  /** Who made a data call: null while auth is off; 401 without valid credentials. */
  who(call: { readonly metadata: grpc.Metadata }): Principal | null {
    return this.access.dataPrincipal(tokenOf(call));
  }

  source(call: { readonly metadata: grpc.Metadata }): SpecSource {
    return { forwardedIn: false, token: tokenOf(call) };
  }

  deadlineMs(call: { getDeadline(): grpc.Deadline }): number {
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    const clientMs = Number.isFinite(at) ? at - Date.now() - deadlineMarginMs : Infinity;
    const budgetMs = Math.min(this.limits.requestTimeoutMs, clientMs);
    if (budgetMs < 1) throw new QkvError('timeout', 'The call arrived with no time left before its deadline; nothing was done');
    return performance.now() + budgetMs;
  }

  /** The fields of a forwarded answer (or its error, thrown), noting who served it. */
  fromLeader(call: object, response: ForwardedResponse): Record<string, unknown> {
    this.servedByOf.set(call, response.servedBy);
    return forwardedBody(response);
  }
}

/** A request the service could not decode is refused before any handler looks at it. */
export function checkDecoded(request: Checked<unknown>): void {
  const problem = request[malformed];
  if (problem !== undefined) throw new QkvError('bad_request', `The request message cannot be decoded: ${problem}`);
}

function utf8Error(field: number | undefined, codes: Readonly<Record<number, ErrorCode>>, message?: string): QkvError {
  const code = (field === undefined ? undefined : codes[field]) ?? 'bad_request';
  const what = code === 'invalid_key' ? 'Key' : code === 'invalid_value' ? 'Value' : `Field ${String(field)}`;
  return new QkvError(code, message ?? `${what} is not valid UTF-8`);
}

function readConsistency(value: Consistency, minVersion: number | undefined): ReadConsistency {
  if (!Object.hasOwn(consistencyOf, value)) throw new QkvError('bad_request', `consistency ${JSON.stringify(value)} is unknown`);
  return consistencyOf[value] ?? (minVersion === undefined ? 'linearizable' : 'local');
}

function timeoutOf(deadlineMs: number): number {
  const ms = Math.floor(deadlineMs - performance.now());
  if (ms < 1) throw new QkvError('timeout', 'The deadline passed before the read could be served');
  return ms;
}

/** A backup value (`backupValueOf`, backup-stream.ts) as a `BackupItem` message's `value`. */
export function backupItemValue(value: string | Uint8Array | null): BackupItem['value'] {
  if (value === null) return { $case: 'inRow', inRow: true };
  return typeof value === 'string' ? { $case: 'text', text: value } : { $case: 'binary', binary: bufferOf(value) };
}

/** A leader's JSON entry ({key, value, version}, the value maybe base64) as the response message. */
function keyValueOf(body: Record<string, unknown>): KeyValue {
  return { key: textField(body, 'key'), ...messageFields(valueOfJson(body)), version: numberField(body, 'version') };
}

/** A page of the node's list as the response message. */
function listMessage(result: ListResult, limit: number): { items: KeyValue[]; next?: string; version: number } {
  const items = result.items;
  const last = items.length === limit ? items[items.length - 1] : undefined;
  return {
    items: items.map((item): KeyValue => ({ key: item.key, ...messageFields(item.value), version: item.version })),
    ...(last === undefined ? {} : { next: last.key }),
    version: result.version,
  };
}

/** How a put hangs on a lease: the request's lease or ttl_ms, never both. */
function putLease(request: PutRequest): PutLease {
  if (request.lease !== undefined && request.ttlMs !== undefined) throw new QkvError('bad_request', 'Set lease or ttl_ms, not both', { key: request.key });
  if (request.lease !== undefined) return { lease: request.lease };
  if (request.ttlMs !== undefined) return { ttlMs: request.ttlMs };
  return null;
}

function textField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string') throw new QkvError('internal', `The leader's answer has no text field ${name}`);
  return value;
}

function numberField(body: Record<string, unknown>, name: string): number {
  const value = body[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new QkvError('internal', `The leader's answer has no index field ${name}`);
  return value;
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
  if (result.error === 'lease_not_found') throw leaseNotFound(result.key, result.lease);
  throw new QkvError('stale_request', `Stale request: sequence numbers up to ${result.lastSeq} of this client were already applied and this reply is gone; use a new seq`, {
    key: result.key,
    lastSeq: result.lastSeq,
  });
}

/** The leader's answer to a forwarded call: its fields on 200, else its error thrown. */
function forwardedBody(response: ForwardedResponse): Record<string, unknown> {
  const { statusCode, retryAfter } = response;
  // Not JSON: handled below as an unknown answer.
  const parsed: Record<string, unknown> = { ...forwardedFields(response) };
  if (statusCode === 200) return parsed;
  const { error, message, ...details } = parsed;
  let code: ErrorCode = isErrorCode(error) ? error : statusCode === 503 ? 'timeout' : 'internal';
  if (code === 'bad_request' && details['reason'] === 'stale_request') code = 'stale_request';
  const retryAfterSeconds = retryAfter === null ? NaN : Number(retryAfter);
  throw new QkvError(code, typeof message === 'string' ? message : `The leader answered HTTP ${statusCode}`, details, Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1000 : null);
}


/** The sending side of a server or bidirectional stream. */
export interface StreamOut<M> {
  write(message: M): boolean;
  on(event: 'drain' | 'cancelled' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'cancelled' | 'close', listener: () => void): unknown;
}

/** Writes one stream message, waiting for the transport to drain (or the call to end). */
export function send<M>(call: StreamOut<M>, message: M): Promise<void> {
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

function statusMessage(s: NodeStatus, grpcAddress: string): StatusMessage {
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
    mode: { writeQuorum: String(s.mode.writeQuorum), topology: s.mode.topology, sinceIndex: s.mode.sinceIndex, inSync: [...s.mode.inSync] },
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
    ...(s.membership === undefined ? {} : { membership: membersMessage(s.membership) }),
  };
}

/** One operation's failure inside a batch, as its own call would have failed. */
function batchErrorOf(error: unknown): BatchError {
  const e = error instanceof QkvError ? error : new QkvError('internal', `Internal error: ${error instanceof Error ? error.message : String(error)}`);
  const retryable = errorStatus[e.code] === 503;
  return { code: e.code, message: e.message, detailsJson: JSON.stringify(e.details), ...(retryable ? { retryAfterMs: e.retryAfterMs ?? 1_000 } : {}) };
}
