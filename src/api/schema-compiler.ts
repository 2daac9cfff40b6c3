/**
 * The HTTP API's one JSON-schema compiler. Fastify compiles every route's schemas with it
 * (http.ts), and the fast path (kv-fast-path.ts) compiles the PUT body schema with it, so a
 * body is checked by the same rules, and its failure told alike, whichever path served it.
 * Ajv with the options of http-schemas.ts: no coercion, no defaults, nothing removed, the
 * first error only, verbose errors for the messages.
 */

import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { ajvOptions } from './http-schemas.js';

// addUsedSchema false: schemas are compiled by value, never registered by $id (as fastify's own compiler does).
const ajv = new Ajv({ ...ajvOptions, addUsedSchema: false });

export function compileSchema(schema: object): ValidateFunction {
  return ajv.compile(schema);
}
