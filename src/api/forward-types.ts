/**
 * What the leader router forwards and what comes back, shared by forward.ts and the batcher
 * of forwarded writes (forward-batch.ts).
 */

import type { KvCommand, RequestId } from '../kv/types.js';
import type { ReadConsistency } from '../wire/types.js';

/** A single-key read as the router may forward it with the writes of its turn (a `leader` read). */
export interface ForwardRead {
  readonly key: string;
  readonly consistency: ReadConsistency;
  readonly minVersion: number | undefined;
  /** A read at a past version is not a batch operation: it is forwarded as itself. */
  readonly atVersion?: number | undefined;
}

/** What a leader-bound request needs for forwarding, fixed when it arrives. */
export interface ForwardSpec {
  readonly method: 'GET' | 'PUT' | 'DELETE' | 'POST';
  /** Path and query exactly as received (keys stay percent-encoded). */
  readonly url: string;
  /** The raw JSON body (already validated here), or null. */
  readonly body: Buffer | null;
  readonly requestId: RequestId | null;
  /** Writes change state: a failure after sending leaves their outcome unknown. */
  readonly isWrite: boolean;
  /** The request carries `x-qkv-forwarded`: it must be served here or refused. */
  readonly forwardedIn: boolean;
  /**
   * A linearizable read: any node that knows a leader runs it locally (a follower through
   * the leader's read index, see KvNode.read), so it is never forwarded.
   */
  readonly servedByFollower: boolean;
  /** `performance.now()` at which the request's time is up. */
  readonly deadlineMs: number;
  /** The sender's bearer token, passed on: the leader checks the credentials again (access.ts). */
  readonly token?: string | null;
  /**
   * The single-key write this request stands for: if it is forwarded, it goes with the others
   * of its turn as a /batch operation (forward-batch.ts), made only then.
   */
  readonly write?: KvCommand | null;
  /** The single-key read this request stands for: forwarded with the writes of its turn, like `write`. */
  readonly read?: ForwardRead | null;
}

/** The leader's answer, passed through to the client unchanged. */
export interface ForwardedResponse {
  readonly statusCode: number;
  readonly contentType: string;
  readonly retryAfter: string | null;
  readonly body: Buffer;
  /** The leader that answered. */
  readonly leaderId: string;
  /** The node that served the request, as the leader's `x-qkv-served-by` names it (else the leader's id). */
  readonly servedBy: string;
  /**
   * The body as fields, when the answer came inside a batch (the peer link, or a forwarded
   * POST /batch): `body` is then only their JSON, made when first read, so a follower's own
   * POST /batch takes them as they are instead of parsing what was just stringified.
   */
  readonly fields?: Readonly<Record<string, unknown>>;
}
