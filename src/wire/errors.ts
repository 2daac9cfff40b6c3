/**
 * Client-facing error codes, their HTTP status, and the one error class every layer
 * above the core throws for expected failures. Shared by api/ (server) and client/.
 */

export const errorStatus = {
  bad_request: 400,
  invalid_json: 400,
  invalid_key: 400,
  invalid_value: 400,
  header_too_large: 431,
  key_too_large: 413,
  value_too_large: 413,
  body_too_large: 413,
  /** No credentials, or a token no user holds (auth on; or an admin route without the admin token). */
  unauthenticated: 401,
  /** Valid credentials whose roles do not allow this key or operation. */
  permission_denied: 403,
  not_found: 404,
  /** A put names a lease that does not exist (never granted, revoked or expired): nothing was written. */
  lease_not_found: 404,
  unknown_route: 404,
  method_not_allowed: 405,
  /** A watch (or read) from a version older than the history kept; details.oldestVersion is the oldest left. */
  compacted: 410,
  /** A watch ended because its consumer did not keep up; details.lastVersion is the last one sent: resume after it. */
  slow_consumer: 503,
  /** Weak quorums: a watch saw versions that were rolled back; details.fromVersion is where to resume. */
  rolled_back: 503,
  version_conflict: 409,
  /** A retried request older than the client's last applied one: its reply is gone. */
  stale_request: 409,
  /** Another membership or mode change is still being committed (one at a time): retry. */
  membership_busy: 409,
  /** The node to add is a member already (remove it first to replace it). */
  member_exists: 409,
  /** A learner to promote is too far behind the leader: wait for it to catch up. */
  learner_lagging: 409,
  /** The pinned leader (--leader) cannot be removed or hand over its leadership. */
  pinned_leader: 409,
  /** This node is not the leader; details.leader names the one it knows of, if any. */
  not_leader: 503,
  /** No leader known (election under way): retry after Retry-After. */
  no_leader: 503,
  /** The write did not reach its quorum in time: outcome unknown, it may still commit. */
  quorum_timeout: 503,
  /** The request waited longer than its deadline; for writes the outcome is unknown. */
  timeout: 503,
  /** This client address holds too many connections (--connections-per-ip-max) or requests in flight (--requests-per-client-max): nothing was done; back off. */
  too_many_requests: 429,
  /** Too many requests in flight: back off. */
  busy: 503,
  /** Leadership was lost while the write was in flight: outcome unknown. */
  outcome_unknown: 503,
  /** The node is stopping. */
  shutting_down: 503,
  /** GET /ready: no leader known, or this node has not applied all it knows committed. */
  not_ready: 503,
  /** The leader's disk is below its free-space floor: puts are refused; reads and deletes go on. */
  no_space: 507,
  /** A restart asked of a node whose process runs (or is paused): kill it first. */
  process_running: 409,
  /** A pause or resume asked of a node whose process is not running. */
  process_not_running: 409,
  /** No supervisor (such as quorumkv up) owns this cluster's processes: nothing here can restart one. */
  no_supervisor: 501,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export interface ErrorBody {
  readonly error: ErrorCode;
  readonly message: string;
  /** Extra facts for some codes, e.g. { acks, required } for quorum_timeout. */
  readonly [detail: string]: unknown;
}

export class QkvError extends Error {
  override readonly name = 'QkvError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    /** For 503s: when a retry has a chance. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }

  get status(): number {
    return errorStatus[this.code];
  }

  toBody(): ErrorBody {
    return { ...this.details, error: this.code, message: this.message };
  }
}

/**
 * undici / Node error codes that prove a request never left: no connection was made. Any
 * other failure (a reset, a timeout, "other side closed") may come after the server read
 * the request, so a write's outcome is then unknown. Shared by the API's leader forwarding
 * and the client.
 */
export const requestNotSentCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorStatus, value);
}
