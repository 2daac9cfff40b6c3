/**
 * The shared-secret handshake between peers (when peer TLS is off): the acceptor sends a
 * random challenge; the dialler proves it knows the secret with an HMAC of that challenge
 * and of the identities it claims, and sends a challenge of its own; the acceptor's ack
 * proves the same back. The secret never travels, a recorded handshake cannot be replayed
 * (the challenge is new on every connection), and proofs are compared in constant time.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export function newChallenge(): string {
  return randomBytes(16).toString('hex');
}

/** What the dialler sends: HMAC over the acceptor's challenge and every identity field it claims. */
export function handshakeProof(secret: Uint8Array, challenge: string, claim: { clusterId: string; from: string; to: string; memberId: string; nonce: string }): string {
  return createHmac('sha256', secret).update(['hello', challenge, claim.clusterId, claim.from, claim.to, claim.memberId, claim.nonce].join('\u0000')).digest('hex');
}

/** What the acceptor's ack carries: HMAC over the dialler's own challenge and the acceptor's id. */
export function ackProof(secret: Uint8Array, nonce: string, acceptor: string): string {
  return createHmac('sha256', secret).update(['ack', nonce, acceptor].join('\u0000')).digest('hex');
}

export function sameProof(got: unknown, want: string): boolean {
  if (typeof got !== 'string' || got.length !== want.length) return false;
  return timingSafeEqual(Buffer.from(got), Buffer.from(want));
}
