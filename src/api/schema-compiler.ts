/**
 * The HTTP API's JSON-schema compilers, one for checking and one for writing. Fastify
 * compiles every route's schemas with them (http.ts), and the fast path (kv-fast-path.ts)
 * compiles the same kv schemas with them, so a request is checked by the same rules, its
 * failure told alike, and an answer written byte for byte alike (fast-json-stringify orders
 * a schema's required fields first), whichever path served it. Checking: Ajv with the options
 * of http-schemas.ts (no coercion, no defaults, nothing removed, the first error only, verbose
 * errors for the messages). Writing: fast-json-stringify as fastify runs it.
 */

import { Ajv } from 'ajv';
import fastJson from 'fast-json-stringify';
import type { ValidateFunction } from 'ajv';
import { ajvOptions } from './http-schemas.js';

// addUsedSchema false: schemas are compiled by value, never registered by $id (as fastify's own compiler does).
const ajv = new Ajv({ ...ajvOptions, addUsedSchema: false });

export function compileSchema(schema: object): ValidateFunction {
  return ajv.compile(schema);
}

/** The serializer of a response schema (what fastify writes a 2xx answer with). */
export function compileSerializer(schema: object): (data: unknown) => string {
  return fastJson(schema);
}
