/**
 * The client's typed errors: one class per thing a caller may want to react to, each
 * carrying the wire error code that caused it (README "Errors") and the facts the server
 * sent with it. Owns the mapping from wire codes to classes (`errorForCode`).
 *
 * Must never: turn an uncertain write into a definite answer. A write that may have been
 * applied is an `OutcomeUnknownError` (or its subclass `QuorumTimeoutError`), never an
 * `UnavailableError`, which promises that nothing was written.
 */

import type { ErrorCode } from '../wire/errors.js';

/**
 * Codes the client adds to the wire codes: `deadline_exceeded` (the call's own deadline
 * passed), `unavailable` (no endpoint could be reached), `closed` (the client was closed),
 * `protocol` (a server answer the client could not understand).
 */
export type ClientErrorCode = ErrorCode | 'deadline_exceeded' | 'unavailable' | 'closed' | 'protocol';

/** Base class of every error the client throws; `instanceof QuorumKvError` catches them all. */
export class QuorumKvError extends Error {
  override name = 'QuorumKvError';

  constructor(
    /** Wire error code (or client code) behind this error. */
    readonly code: ClientErrorCode,
    message: string,
    /** Extra facts the server sent (e.g. `leader`, `expectedVersion`), or the client knew. */
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The request was refused as malformed or too large (`bad_request`, `invalid_key`,
 * `invalid_value`, `invalid_json`, `key_too_large`, `value_too_large`, `body_too_large`,
 * `header_too_large`, …). Nothing was written; retrying the same request cannot succeed.
 */
export class InvalidArgumentError extends QuorumKvError {
  override name = 'InvalidArgumentError';
}

/**
 * Something named does not exist where absence is not an ordinary answer: `die()` of a
 * node id no endpoint reports, or a route the server does not offer (`unknown_route`). A
 * missing key is not an error: `get()` returns `undefined`.
 */
export class NotFoundError extends QuorumKvError {
  override name = 'NotFoundError';
}

/** A compare-and-set (`ifVersion`) found another version. Nothing was written. */
/**
 * The credentials were refused: `unauthenticated` (no token, or one no user holds; 401) or
 * `permission_denied` (the user's roles do not allow this key or call; 403). Never retried.
 */
export class AuthError extends QuorumKvError {
  override name = 'AuthError';
}

export class VersionConflictError extends QuorumKvError {
  override name = 'VersionConflictError';

  constructor(
    message: string,
    details: Readonly<Record<string, unknown>>,
    /** The key the write was for. */
    readonly key: string,
    /** The version the write required (0: the key had to be absent). */
    readonly expectedVersion: number,
    /** The key's version when the write was applied (0: absent). */
    readonly actualVersion: number,
  ) {
    super('version_conflict', message, details);
  }
}

/**
 * No node could serve the call before its deadline, and nothing was written: every attempt
 * was refused before it acted (`not_leader`, `no_leader`, `busy`, `shutting_down`) or never
 * reached a node. Safe to retry later.
 */
export class UnavailableError extends QuorumKvError {
  override name = 'UnavailableError';
}

/**
 * The call's deadline passed before an answer, and nothing can have been written (reads,
 * lists, status, backups). Writes that run out of time are `OutcomeUnknownError`s instead.
 */
export class DeadlineExceededError extends QuorumKvError {
  override name = 'DeadlineExceededError';
}

/**
 * A write may or may not have been applied: an attempt reached a node and no definite answer
 * came back before the deadline (a cut connection, `outcome_unknown`, `timeout`). The client
 * retried with the same idempotency key until the deadline, so if it was applied, it was
 * applied exactly once. Read the key to find out; do not assume either way.
 */
export class OutcomeUnknownError extends QuorumKvError {
  override name = 'OutcomeUnknownError';

  constructor(
    code: ClientErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>>,
    /** The idempotency key the write carried (`x-qkv-client-id` / `x-qkv-seq`). */
    readonly requestId: { readonly clientId: string; readonly seq: number },
    options?: { readonly cause?: unknown },
  ) {
    super(code, message, details, options);
  }
}

/**
 * An `OutcomeUnknownError` whose last attempt reached the leader but not its write quorum
 * in time (`quorum_timeout`): the entry is in the leader's log and may still commit.
 */
export class QuorumTimeoutError extends OutcomeUnknownError {
  override name = 'QuorumTimeoutError';
}

/** The client was closed; no call can be made on it any more. */
export class ClientClosedError extends QuorumKvError {
  override name = 'ClientClosedError';

  constructor() {
    super('closed', 'This quorumkv client is closed');
  }
}

const invalidArgumentCodes: ReadonlySet<string> = new Set([
  'bad_request',
  'invalid_json',
  'invalid_key',
  'invalid_value',
  'header_too_large',
  'key_too_large',
  'value_too_large',
  'body_too_large',
  'method_not_allowed',
]);

/**
 * The typed error for a definite refusal with wire code `code` (not for codes the client
 * retries; those become Unavailable/OutcomeUnknown/DeadlineExceeded at the deadline).
 */
export function errorForCode(code: ClientErrorCode, message: string, details: Readonly<Record<string, unknown>>): QuorumKvError {
  if (invalidArgumentCodes.has(code)) return new InvalidArgumentError(code, message, details);
  if (code === 'not_found' || code === 'unknown_route' || code === 'lease_not_found') return new NotFoundError(code, message, details);
  if (code === 'unauthenticated' || code === 'permission_denied') return new AuthError(code, message, details);
  if (code === 'version_conflict') {
    const key = typeof details['key'] === 'string' ? details['key'] : '';
    return new VersionConflictError(message, details, key, numberOr(details['expectedVersion'], -1), numberOr(details['actualVersion'], -1));
  }
  return new QuorumKvError(code, message, details);
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : fallback;
}

/**
 * A membership change or leadership transfer may or may not have taken effect: an attempt
 * reached a node and no definite answer came back (a cut connection, `timeout`,
 * `outcome_unknown`). These calls carry no idempotency key, so the client does not repeat
 * them on its own; list the members (or read the status) to find out.
 */
export class ChangeOutcomeUnknownError extends QuorumKvError {
  override name = 'ChangeOutcomeUnknownError';
}
