/**
 * What the client's retry logic (client.ts) needs from a transport: one attempt of each
 * operation against one endpoint, and a uniform description of how an attempt failed.
 * The HTTP and gRPC transports implement it; neither retries anything itself.
 *
 * Must never: retry, wait for a leader, or decide what a failure means for the caller;
 * a transport only says whether the server refused (with its wire code) or the attempt
 * broke before or after it may have reached the server.
 */

import type { ErrorCode } from '../wire/errors.js';
import type {
  AddMemberBody,
  LeaseGrantResponse,
  LeaseInfoResponse,
  LeaseKeepAliveResponse,
  LeaseRevokeResponse,
  MembersResponse,
  MembershipChangeResponse,
  ReadConsistency,
  TxnBody,
  TxnResponse,
} from '../wire/types.js';
import type { BackupRecord } from './backup-file.js';
import type { DeleteResult, Entry, ListPage, NodeStatus, PutResult, Value } from './types.js';

/**
 * How one attempt failed:
 * - `refused`: the server answered with a wire error code (it decided; see `code`);
 * - `unreachable`: no connection could be made, so the request never left the client;
 * - `lost`: the connection broke or timed out after the request may have been sent.
 */
export type AttemptFailureKind = 'refused' | 'unreachable' | 'lost';

export class AttemptError extends Error {
  override name = 'AttemptError';

  constructor(
    readonly kind: AttemptFailureKind,
    /** The wire code for `refused`; null otherwise. */
    readonly code: ErrorCode | null,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

export interface WriteRequestId {
  readonly clientId: string;
  readonly seq: number;
}

export interface WatchStreamRequest {
  readonly prefix: string;
  /** null: from the next change (the stream's first message says which version that is). */
  readonly fromVersion: number | null;
  readonly prevValue: boolean;
  readonly consistency: 'linearizable' | 'local';
}

/** One open watch stream: its messages as parsed JSON objects, until it ends or is closed. */
export interface WatchStream {
  readonly messages: AsyncIterable<Record<string, unknown>>;
  close(): void;
}

export interface PutRequest {
  readonly key: string;
  readonly value: Value;
  readonly ifVersion: number | undefined;
  /** Attach to this lease (it must exist). */
  readonly lease?: number;
  readonly requestId: WriteRequestId;
}

export interface DeleteRequest {
  readonly key: string;
  readonly ifVersion: number | undefined;
  readonly requestId: WriteRequestId;
}

export interface TxnRequest {
  readonly body: TxnBody;
  readonly requestId: WriteRequestId;
}

export interface GetRequest {
  readonly key: string;
  readonly consistency: ReadConsistency | undefined;
  readonly minVersion: number | undefined;
  readonly atVersion?: number | undefined;
}

export interface ListRequest {
  readonly prefix: string;
  readonly after: string | undefined;
  readonly limit: number | undefined;
  readonly consistency: ReadConsistency | undefined;
  readonly minVersion: number | undefined;
  readonly atVersion?: number | undefined;
  /** Descending key order, `after` being the cursor in it. */
  readonly reverse?: boolean | undefined;
}

/** A membership change, as the client sends it to the leader. */
export type MemberChangeRequest =
  | { readonly op: 'add'; readonly member: AddMemberBody }
  | { readonly op: 'promote'; readonly id: string }
  | { readonly op: 'remove'; readonly id: string };

/** Receives a node's backup stream; awaiting each call gives back-pressure. */
export interface BackupSink {
  write(record: BackupRecord): Promise<void>;
}

/**
 * One attempt per call, against one endpoint (an address as `normalize` returned it).
 * `timeoutMs` is the attempt's whole budget: the server is told a little less, and the
 * transport gives up (as `lost`) when it passes. Failures are thrown as AttemptError;
 * anything else thrown is a bug or a malformed answer (QuorumKvError 'protocol').
 */
export interface ClientTransport {
  readonly kind: 'http' | 'grpc';
  /** Canonical form of a user-given endpoint; throws InvalidArgumentError when unusable. */
  normalize(endpoint: string): string;
  put(endpoint: string, request: PutRequest, timeoutMs: number): Promise<PutResult>;
  delete(endpoint: string, request: DeleteRequest, timeoutMs: number): Promise<DeleteResult>;
  txn(endpoint: string, request: TxnRequest, timeoutMs: number): Promise<TxnResponse>;
  leaseGrant(endpoint: string, ttlMs: number, requestId: WriteRequestId, timeoutMs: number): Promise<LeaseGrantResponse>;
  leaseKeepAlive(endpoint: string, id: number, timeoutMs: number): Promise<LeaseKeepAliveResponse>;
  leaseRevoke(endpoint: string, id: number, requestId: WriteRequestId, timeoutMs: number): Promise<LeaseRevokeResponse>;
  /** undefined when the lease does not exist. */
  leaseInfo(endpoint: string, id: number, keysMax: number, timeoutMs: number): Promise<LeaseInfoResponse | undefined>;
  /** Opens a watch stream (GET /watch); `timeoutMs` bounds the wait for its headers. */
  watch(endpoint: string, request: WatchStreamRequest, timeoutMs: number): Promise<WatchStream>;
  /** undefined when the key does not exist. */
  get(endpoint: string, request: GetRequest, timeoutMs: number): Promise<Entry | undefined>;
  list(endpoint: string, request: ListRequest, timeoutMs: number): Promise<ListPage>;
  status(endpoint: string, timeoutMs: number): Promise<NodeStatus>;
  /** Streams the node's backup records into `sink`; `timeoutMs` bounds the whole stream. */
  backup(endpoint: string, sink: BackupSink, timeoutMs: number): Promise<void>;
  die(endpoint: string, nodeId: string, clean: boolean, timeoutMs: number): Promise<void>;
  /** The members as the node asked knows them (the leader's view has lag). */
  members(endpoint: string, timeoutMs: number): Promise<MembersResponse>;
  changeMembers(endpoint: string, change: MemberChangeRequest, timeoutMs: number): Promise<MembershipChangeResponse>;
  /** `to` null: the most up-to-date voter. Resolves with the new leader's id. */
  transferLeader(endpoint: string, to: string | null, timeoutMs: number): Promise<{ readonly leader: string }>;
  /** Closes every connection; in-flight attempts finish or fail. */
  close(): Promise<void>;
}

/** Milliseconds of an attempt's budget kept back from the server, so its answer arrives first. */
export const serverMarginMs = 25;

/** The deadline to give the server for an attempt of `timeoutMs`. */
export function serverBudgetMs(timeoutMs: number): number {
  return Math.max(1, Math.floor(timeoutMs - serverMarginMs));
}

/** Checks a number decoded from an answer: a safe integer >= 0, else a protocol error. */
export function decodedIndex(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && /^(?:0|[1-9][0-9]{0,15})$/.test(value)) {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
  }
  throw new ProtocolError(`${what} ${JSON.stringify(value)} is not a safe integer >= 0`);
}

/** A server answer the client cannot understand. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}
