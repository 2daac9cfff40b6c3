/**
 * The client's gRPC transport (proto/quorumkv.proto, service quorumkv.v1.KV): one grpc-js
 * channel per node, one call per attempt, uint64 fields decoded as decimal strings and
 * checked to be safe integers, failures turned into AttemptError using the wire code the
 * server puts in trailing metadata (`qkv-error`).
 *
 * Must never: let grpc-js retry on its own (`grpc.enable_retries` is 0; client.ts decides),
 * or decode a version through a float that could round it.
 */

import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { isErrorCode } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import type { ReadConsistency, StatusResponse } from '../wire/types.js';
import { InvalidArgumentError } from './errors.js';
import type { BackupDedup, BackupItem, BackupRecord } from './backup-file.js';
import { checkRecord } from './backup-file.js';
import { AttemptError, ProtocolError, decodedIndex } from './transport.js';
import type { BackupSink, ClientTransport, DeleteRequest, GetRequest, ListRequest, PutRequest } from './transport.js';
import type { DeleteResult, Entry, ListPage, NodeStatus, PutResult } from './types.js';

const protoPath = fileURLToPath(new URL('../../proto/quorumkv.proto', import.meta.url));
const serviceName = 'quorumkv.v1.KV';

/** Loader options shared with the server (api/grpc.ts): uint64 as strings, never floats. */
const loaderOptions: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

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
};

const consistencyNames: Readonly<Record<ReadConsistency, string>> = { linearizable: 'LINEARIZABLE', leader: 'LEADER', local: 'LOCAL' };

type Method = protoLoader.MethodDefinition<object, object>;

interface Methods {
  readonly put: Method;
  readonly get: Method;
  readonly delete: Method;
  readonly list: Method;
  readonly status: Method;
  readonly backup: Method;
  readonly die: Method;
}

let loaded: Methods | null = null;

/** Loads the proto once per process (about 20 ms), on first use. */
function methods(): Methods {
  if (loaded !== null) return loaded;
  const definition = protoLoader.loadSync(protoPath, loaderOptions);
  const service = definition[serviceName] as protoLoader.ServiceDefinition | undefined;
  if (service === undefined) throw new Error(`${protoPath} defines no service ${serviceName}`);
  const method = (name: string): Method => {
    const m = service[name];
    if (m === undefined) throw new Error(`${protoPath}: service ${serviceName} has no method ${name}`);
    return m;
  };
  loaded = {
    put: method('Put'),
    get: method('Get'),
    delete: method('Delete'),
    list: method('List'),
    status: method('Status'),
    backup: method('Backup'),
    die: method('Die'),
  };
  return loaded;
}

export class GrpcTransport implements ClientTransport {
  readonly kind = 'grpc' as const;
  private readonly clients = new Map<string, grpc.Client>();
  private readonly methods = methods();
  private closed = false;

  normalize(endpoint: string): string {
    const bare = endpoint.startsWith('grpc://') ? endpoint.slice('grpc://'.length) : endpoint;
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})$/.exec(bare);
    const port = match === null ? NaN : Number(match[2]);
    if (match === null || port < 1 || port > 65535) {
      throw new InvalidArgumentError('bad_request', `gRPC endpoint ${JSON.stringify(endpoint)} must be host:port`);
    }
    return `${match[1]}:${port}`;
  }

  async put(endpoint: string, request: PutRequest, timeoutMs: number): Promise<PutResult> {
    const message: Record<string, unknown> = {
      key: request.key,
      value: request.value,
      clientId: request.requestId.clientId,
      seq: request.requestId.seq,
    };
    if (request.ifVersion !== undefined) message['ifVersion'] = request.ifVersion;
    const reply = await this.unary(endpoint, this.methods.put, message, timeoutMs);
    return { key: text(reply, 'key'), version: decodedIndex(reply['version'], 'version') };
  }

  async delete(endpoint: string, request: DeleteRequest, timeoutMs: number): Promise<DeleteResult> {
    const message: Record<string, unknown> = { key: request.key, clientId: request.requestId.clientId, seq: request.requestId.seq };
    if (request.ifVersion !== undefined) message['ifVersion'] = request.ifVersion;
    const reply = await this.unary(endpoint, this.methods.delete, message, timeoutMs);
    return { key: text(reply, 'key'), version: decodedIndex(reply['version'], 'version'), deleted: reply['deleted'] === true };
  }

  async get(endpoint: string, request: GetRequest, timeoutMs: number): Promise<Entry | undefined> {
    const message: Record<string, unknown> = { key: request.key };
    if (request.consistency !== undefined) message['consistency'] = consistencyNames[request.consistency];
    if (request.minVersion !== undefined) message['minVersion'] = request.minVersion;
    try {
      return entryOf(await this.unary(endpoint, this.methods.get, message, timeoutMs));
    } catch (error) {
      if (error instanceof AttemptError && error.code === 'not_found') return undefined;
      throw error;
    }
  }

  async list(endpoint: string, request: ListRequest, timeoutMs: number): Promise<ListPage> {
    const message: Record<string, unknown> = { prefix: request.prefix, after: request.after ?? '', limit: request.limit ?? 0 };
    if (request.consistency !== undefined) message['consistency'] = consistencyNames[request.consistency];
    if (request.minVersion !== undefined) message['minVersion'] = request.minVersion;
    const reply = await this.unary(endpoint, this.methods.list, message, timeoutMs);
    const items = reply['items'];
    if (!Array.isArray(items)) throw new ProtocolError('List answer has no items');
    const next = reply['next'];
    return { items: items.map((item) => entryOf(item as Record<string, unknown>)), next: typeof next === 'string' ? next : null };
  }

  async status(endpoint: string, timeoutMs: number): Promise<NodeStatus> {
    return statusOf(await this.unary(endpoint, this.methods.status, {}, timeoutMs));
  }

  async backup(endpoint: string, sink: BackupSink, timeoutMs: number): Promise<void> {
    const method = this.methods.backup;
    const stream = this.client(endpoint).makeServerStreamRequest<object, object>(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      {},
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
    );
    try {
      for await (const message of stream as AsyncIterable<Record<string, unknown>>) {
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
    await this.unary(endpoint, this.methods.die, { id: nodeId, clean }, timeoutMs);
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
    client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), channelOptions);
    this.clients.set(endpoint, client);
    return client;
  }

  private unary(endpoint: string, method: Method, message: object, timeoutMs: number): Promise<Record<string, unknown>> {
    const client = this.client(endpoint);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest<object, object>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        message,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, reply) => {
          if (error !== null) reject(failure(error, endpoint));
          else if (reply === undefined) reject(new ProtocolError(`${endpoint} answered ${method.path} with no message`));
          else resolve(reply as Record<string, unknown>);
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

function text(reply: Record<string, unknown>, name: string): string {
  const value = reply[name];
  if (typeof value !== 'string') throw new ProtocolError(`answer field ${name} is not a string`);
  return value;
}

function entryOf(reply: Record<string, unknown>): Entry {
  return { key: text(reply, 'key'), value: text(reply, 'value'), version: decodedIndex(reply['version'], 'version') };
}

function optionalIndex(value: unknown, what: string): number | null {
  return value === undefined || value === null ? null : decodedIndex(value, what);
}

/** proto3 strings are "" when unset: an address or null. */
function nonEmpty(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** The Status message in the HTTP API's /status shape (numbers, nulls for absent). */
export function statusOf(m: Record<string, unknown>): NodeStatus {
  const leader = m['leader'] as { id?: unknown; http?: unknown; grpc?: unknown } | null | undefined;
  const mode = (m['mode'] ?? {}) as Record<string, unknown>;
  const wq = mode['writeQuorum'];
  const peers = Array.isArray(m['peers']) ? (m['peers'] as Record<string, unknown>[]) : [];
  const role = m['role'];
  if (role !== 'leader' && role !== 'follower' && role !== 'candidate') throw new ProtocolError(`status role ${JSON.stringify(role)} is unknown`);
  const status: StatusResponse & { grpc?: string } = {
    id: text(m, 'id'),
    clusterId: text(m, 'clusterId'),
    pid: decodedIndex(m['pid'], 'pid'),
    role,
    term: decodedIndex(m['term'], 'term'),
    leader: leader === null || leader === undefined || typeof leader.id !== 'string' ? null : { id: leader.id, http: nonEmpty(leader.http), grpc: nonEmpty(leader.grpc) },
    commitIndex: decodedIndex(m['commitIndex'], 'commitIndex'),
    ackedIndex: decodedIndex(m['ackedIndex'], 'ackedIndex'),
    appliedIndex: decodedIndex(m['appliedIndex'], 'appliedIndex'),
    lastIndex: decodedIndex(m['lastIndex'], 'lastIndex'),
    firstIndex: decodedIndex(m['firstIndex'], 'firstIndex'),
    keyCount: decodedIndex(m['keyCount'], 'keyCount'),
    mode: {
      writeQuorum: wq === 'majority' || wq === 'all' ? wq : decodedIndex(wq, 'writeQuorum'),
      topology: mode['topology'] === 'chain' ? 'chain' : 'star',
      sinceIndex: decodedIndex(mode['sinceIndex'] ?? 0, 'sinceIndex'),
      inSync: Array.isArray(mode['inSync']) ? (mode['inSync'] as unknown[]).filter((m): m is string => typeof m === 'string') : [],
    },
    peers: peers.map((p) => ({
      id: text(p, 'id'),
      http: nonEmpty(p['http']),
      grpc: nonEmpty(p['grpc']),
      matchIndex: optionalIndex(p['matchIndex'], 'matchIndex'),
      lag: optionalIndex(p['lag'], 'lag'),
      reachable: p['reachable'] === true,
    })),
    rollbackCount: decodedIndex(m['rollbackCount'], 'rollbackCount'),
    uptimeMs: decodedIndex(m['uptimeMs'], 'uptimeMs'),
  };
  const grpcAddress = m['grpc'];
  return typeof grpcAddress === 'string' && grpcAddress !== '' ? { ...status, grpc: grpcAddress } : status;
}

/** A Backup stream message as the backup record it stands for (then strictly checked). */
function backupRecordOf(m: Record<string, unknown>): BackupRecord {
  const part = m['part'];
  if (part === 'header') {
    const h = m['header'] as Record<string, unknown>;
    const config = (h['config'] ?? {}) as Record<string, unknown>;
    const wq = config['writeQuorum'];
    return checkRecord({
      type: 'header',
      format: 'quorumkv-backup',
      formatVersion: 1,
      nodeId: h['nodeId'],
      clusterId: h['clusterId'],
      index: decodedIndex(h['index'], 'backup index'),
      term: decodedIndex(h['term'], 'backup term'),
      config: {
        members: config['members'],
        writeQuorum: wq === 'majority' || wq === 'all' ? wq : decodedIndex(wq, 'backup writeQuorum'),
        topology: config['topology'],
      },
    });
  }
  if (part === 'items') {
    const c = m['items'] as Record<string, unknown>;
    const items = (c['items'] as Record<string, unknown>[]).map((i): BackupItem => {
      const version = decodedIndex(i['version'], 'backup item version');
      const key = text(i, 'key');
      if (i['value'] === 'binary') return [key, { base64: (i['binary'] as Buffer).toString('base64') }, version];
      return [key, typeof i['text'] === 'string' ? i['text'] : '', version];
    });
    const dedup = (c['dedup'] as Record<string, unknown>[]).map((d): BackupDedup => [
      text(d, 'clientId'),
      decodedIndex(d['seq'], 'dedup seq'),
      decodedIndex(d['index'], 'dedup index'),
      Buffer.isBuffer(d['reply']) ? d['reply'].toString('base64') : '',
    ]);
    return checkRecord({ type: 'chunk', seq: decodedIndex(c['seq'], 'chunk seq'), items, dedup });
  }
  if (part === 'end') {
    const e = m['end'] as Record<string, unknown>;
    return checkRecord({ type: 'end', chunks: decodedIndex(e['chunks'], 'end chunks'), items: decodedIndex(e['items'], 'end items'), dedup: decodedIndex(e['dedup'], 'end dedup') });
  }
  throw new ProtocolError(`Backup message has no part (${JSON.stringify(part)})`);
}
