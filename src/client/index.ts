/**
 * The public entry of the TypeScript client: `connect()` and the types and errors a caller
 * uses. Everything else under client/ is internal.
 *
 * ```ts
 * import { connect } from 'quorumkv';
 * const kv = await connect({ endpoints: ['http://127.0.0.1:7001'] });
 * const { version } = await kv.put('greeting', 'hello');
 * const entry = await kv.get('greeting', { consistency: 'session' });
 * await kv.close();
 * ```
 *
 * Must never: import anything but wire/, stdx/ and the client's own modules (eslint), so
 * applications can depend on it without the server's parts.
 */

import { defaultBatchLimits } from './batcher.js';
import { KvClient } from './client.js';
import { HttpTransport } from './http-transport.js';
import type { ClientTransport } from './transport.js';
import type { ConnectOptions } from './types.js';
import { InvalidArgumentError } from './errors.js';

export { KvClient } from './client.js';
export {
  ChangeOutcomeUnknownError,
  ClientClosedError,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  AuthError,
  OutcomeUnknownError,
  QuorumKvError,
  QuorumTimeoutError,
  UnavailableError,
  VersionConflictError,
} from './errors.js';
export type { ClientErrorCode } from './errors.js';
export type {
  BackupOptions,
  BackupResult,
  CallOptions,
  ClusterStatus,
  ClientTls,
  ConnectOptions,
  Consistency,
  DeleteOptions,
  DeleteResult,
  DieOptions,
  EndpointStatus,
  Entry,
  GetOptions,
  LeaseOptions,
  ListOptions,
  ListPage,
  NodeStatus,
  PutOptions,
  PutResult,
  TransportKind,
  Value,
} from './types.js';
export { valueText } from './values.js';
export type { MemberCalls, NewMember } from './members.js';
export { Lease } from './lease.js';
export { CompactedError, Watch } from './watch.js';
export { Election, Lock, LockLostError } from './concurrency.js';
export type { LockOptions } from './concurrency.js';
export type { PrevRecord, WatchChange, WatchEvent, WatchOptions } from './watch.js';
export type { LeaseLost, LeaseLostReason } from './lease.js';
export type { LeaseInfoResponse } from '../wire/types.js';
export type { TxnCompareOp } from '../wire/types.js';
// The transaction types under their first names (a string value means what it always did).
export type { TxnInput as TxnBody, TxnCompareInput as TxnCompareBody, TxnOpInput as TxnOpBody, TxnOpResult as TxnOpResponse, TxnResult as TxnResponse } from './txn-values.js';
export type { ClusterConfigView, MemberRole, MemberStatus, MembersResponse, MembershipChangeResponse } from '../wire/types.js';
export { BackupFormatError, verifyBackupFile } from './backup-file.js';
export type { BackupHeader, VerifiedBackup } from './backup-file.js';

/**
 * Connects to a quorumkv cluster: checks the options, then waits until one endpoint answers
 * its status (learning the leader and, over HTTP, the other members), for at most
 * `connectTimeoutMs` (default: `deadlineMs`, 10 s).
 *
 * @throws InvalidArgumentError for bad options; UnavailableError when no endpoint answers in time.
 */
export async function connect(options: ConnectOptions): Promise<KvClient> {
  const kind = options.transport ?? 'http';
  const token = options.token ?? null;
  if (token !== null && (typeof token !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(token))) {
    throw new InvalidArgumentError('bad_request', 'token must be 1 to 512 visible ASCII characters (the bearer token quorumkv issued)');
  }
  let transport: ClientTransport;
  if (kind === 'http') {
    const connections = options.connectionsPerEndpoint ?? 64;
    if (!Number.isSafeInteger(connections) || connections < 1) {
      throw new InvalidArgumentError('bad_request', `connectionsPerEndpoint must be an integer >= 1, got ${String(connections)}`);
    }
    const batching = options.batching ?? true;
    if (typeof batching !== 'boolean') throw new InvalidArgumentError('bad_request', `batching must be true or false, got ${JSON.stringify(batching)}`);
    transport = new HttpTransport({ connectionsPerEndpoint: connections, batching: batching ? defaultBatchLimits : null, token, tls: options.tls ?? null });
  } else if (kind === 'grpc') {
    // Loaded on demand: HTTP users never pay for grpc-js and the proto.
    const { GrpcTransport } = await import('./grpc-transport.js');
    const batching = options.batching ?? true;
    if (typeof batching !== 'boolean') throw new InvalidArgumentError('bad_request', `batching must be true or false, got ${JSON.stringify(batching)}`);
    transport = new GrpcTransport(token, options.tls ?? null, batching ? defaultBatchLimits : null);
  } else {
    throw new InvalidArgumentError('bad_request', `transport must be 'http' or 'grpc', got ${JSON.stringify(kind)}`);
  }
  let client: KvClient;
  try {
    client = new KvClient(transport, options);
  } catch (error) {
    await transport.close();
    throw error;
  }
  try {
    await client.ready(options.connectTimeoutMs ?? options.deadlineMs ?? 10_000);
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}
