/**
 * The key and value rules the API layers (HTTP, batch, gRPC) apply before anything reaches the
 * node. kv/limits.ts owns the rules; api/ may not import kv/, so the node wires them in.
 */

import type { ErrorCode } from '../wire/errors.js';

/** A refusal from a validator; the code is one of wire/errors.ts (kv/limits.ts uses them). */
export interface InputProblem {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Key and value rules, injected (kv/limits.ts owns them; api/ may not import it). */
export interface InputValidator {
  key(key: string): InputProblem | null;
  value(value: string | Uint8Array): InputProblem | null;
}
