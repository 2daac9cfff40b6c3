/**
 * The idempotency pair (client id, sequence number) as every API receives it: HTTP headers,
 * batch fields, gRPC fields. One rule everywhere: both or neither; the client id is 1 to
 * clientIdCharsMax visible ASCII characters; the sequence a safe integer >= 1. Only the names
 * in the messages differ, so a client sees the same refusal whichever API it speaks.
 */

import type { RequestId } from '../kv/types.js';
import { isIndex } from '../stdx/safe-int.js';
import { QkvError } from '../wire/errors.js';
import { clientIdCharsMax, isClientId } from '../wire/types.js';

/** How the two values are called where they arrived (e.g. `Header x-qkv-seq`, `field "seq"`). */
export interface RequestIdNames {
  readonly clientId: string;
  readonly seq: string;
}

/**
 * The request id carried by `clientId` and `seq` (absent: undefined), or null when neither
 * is given. `seq` may be decimal text (headers) or a number (JSON, gRPC).
 */
export function requestIdOf(clientId: unknown, seq: unknown, names: RequestIdNames): RequestId | null {
  if (clientId === undefined && seq === undefined) return null;
  if (clientId === undefined || seq === undefined) {
    throw new QkvError('bad_request', `Send both ${names.clientId} and ${names.seq}, or neither`);
  }
  if (typeof clientId !== 'string' || !isClientId(clientId)) {
    throw new QkvError('bad_request', `${names.clientId} must be 1 to ${clientIdCharsMax} visible ASCII characters`);
  }
  const number = typeof seq === 'string' && /^[1-9][0-9]{0,15}$/.test(seq) ? Number(seq) : seq;
  if (!isIndex(number) || number < 1) {
    throw new QkvError('bad_request', `${names.seq} must be a safe integer >= 1, got ${JSON.stringify(seq)}`);
  }
  return { clientId, seq: number };
}
