/**
 * The HTTP API's request schemas (TypeBox, so each schema is also the handler's static type)
 * and the one translation from a schema failure to the API's error model. fastify validates
 * params, body, query string and headers against them before a handler runs; handlers then
 * only apply the rules a schema cannot state (key rules from kv/limits.ts, safe-integer
 * ranges of decimal text).
 *
 * Query values and headers stay strings (no type coercion): `01`, `1e3` or `+1` are refused
 * rather than read as numbers. Unknown query parameters and body fields are refused
 * (additionalProperties: false, never silently removed), so a typo (`ifversion`) cannot turn
 * a compare-and-set into a blind write.
 */

import Type from 'typebox';
import type { FastifySchemaValidationError } from 'fastify/types/schema.js';
import { QkvError } from '../wire/errors.js';
import type { ErrorCode } from '../wire/errors.js';
import { hostPortPattern, httpOriginPattern, memberIdPattern, memberRuleText, newNodeIdPattern, nodeIdPattern } from '../wire/members.js';
import { clientIdCharsMax, clientIdHeader, leaseTtlMsMax, readConsistencies, requestSeqHeader } from '../wire/types.js';
import { timeoutHeader } from './forward.js';
import { jsonType, queryProblemMarker, queryProblemOf, quoteValue } from './http-input.js';

/** The ajv settings every route schema is compiled with (fastify's defaults coerce and strip). */
export const ajvOptions = {
  removeAdditional: false,
  coerceTypes: false,
  useDefaults: false,
  allErrors: false,
  // Errors carry the offending value and its schema, so messages can quote both.
  verbose: true,
} as const;

const safeIntegerText = Type.String({ pattern: '^(?:0|[1-9][0-9]{0,15})$', description: 'a safe integer >= 0' });
const positiveIntegerText = (description: string) => Type.String({ pattern: '^[1-9][0-9]{0,15}$', description });
const consistency = Type.Unsafe<(typeof readConsistencies)[number]>({
  type: 'string',
  enum: [...readConsistencies],
  description: `one of ${readConsistencies.join(', ')}`,
});

/**
 * The key is everything after `/kv/`, slashes included (`/kv/config/db/host`, as Consul and
 * etcd v2 take it), percent-decoded once: `/kv/config%2Fdb%2Fhost` names the same key.
 */
export const keyParams = Type.Object({ '*': Type.String() });

export const noQuery = Type.Object({}, { additionalProperties: false });
const flag = Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true or false' });
export const getQuery = Type.Object(
  { consistency: Type.Optional(consistency), minVersion: Type.Optional(safeIntegerText), atVersion: Type.Optional(safeIntegerText) },
  { additionalProperties: false },
);
export const deleteQuery = Type.Object({ ifVersion: Type.Optional(safeIntegerText) }, { additionalProperties: false });
const pageLimit = positiveIntegerText('an integer >= 1');
export const listQuery = Type.Object(
  {
    prefix: Type.Optional(Type.String()),
    after: Type.Optional(Type.String()),
    limit: Type.Optional(pageLimit),
    consistency: Type.Optional(consistency),
    minVersion: Type.Optional(safeIntegerText),
    atVersion: Type.Optional(safeIntegerText),
    keysOnly: Type.Optional(flag),
    countOnly: Type.Optional(flag),
    reverse: Type.Optional(flag),
  },
  { additionalProperties: false },
);
export const watchQuery = Type.Object(
  {
    prefix: Type.Optional(Type.String()),
    fromVersion: Type.Optional(safeIntegerText),
    prevValue: Type.Optional(flag),
    consistency: Type.Optional(consistency),
    format: Type.Optional(Type.Union([Type.Literal('ndjson'), Type.Literal('sse')], { description: 'ndjson or sse' })),
  },
  { additionalProperties: false },
);
export const debugStoreQuery = Type.Object({ after: Type.Optional(Type.String()), limit: Type.Optional(pageLimit) }, { additionalProperties: false });

/** The deadline header, accepted on every route that reaches the node. */
const timeoutHeaders = {
  [timeoutHeader]: Type.Optional(positiveIntegerText('an integer >= 1 (milliseconds)')),
};
export const readHeaders = Type.Object(timeoutHeaders);
/** Writes also take the idempotency pair: both headers or neither. */
export const writeHeaders = Type.Object(
  {
    ...timeoutHeaders,
    [clientIdHeader]: Type.Optional(
      Type.String({ pattern: `^[\\x21-\\x7e]{1,${clientIdCharsMax}}$`, description: `1 to ${clientIdCharsMax} visible ASCII characters` }),
    ),
    [requestSeqHeader]: Type.Optional(positiveIntegerText('a safe integer >= 1')),
  },
  { dependencies: { [clientIdHeader]: [requestSeqHeader], [requestSeqHeader]: [clientIdHeader] } },
);

const version = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a safe integer >= 0' });
const leaseId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'a lease id (a safe integer >= 1)' });
const ttlMs = Type.Integer({ minimum: 1, maximum: leaseTtlMsMax, description: `an integer from 1 to ${leaseTtlMsMax} (ms)` });
/** How a JSON value is written: text (the default) or base64 of the bytes. */
export const valueEncoding = Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { description: '"utf8" (text, the default) or "base64" (bytes)' });
export const putBody = Type.Object(
  { value: Type.String({ description: 'a string' }), encoding: Type.Optional(valueEncoding), ifVersion: Type.Optional(version), lease: Type.Optional(leaseId), ttlMs: Type.Optional(ttlMs) },
  { additionalProperties: false },
);
export const putUsage = 'PUT /kv/{key} needs {"value": "..."} and optionally "encoding" ("base64" for bytes), "ifVersion", and "lease" or "ttlMs"';

export const compactBody = Type.Object({ beforeVersion: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'a version (a safe integer >= 1)' })) }, { additionalProperties: false });
export const compactUsage = 'POST /admin/compact takes {} or {"beforeVersion": N}';
/** POST /auth: the op decides which fields belong (auth-changes.ts parseAuthChange checks them). */
export const authChangeBody = Type.Object(
  {
    op: Type.String({ maxLength: 32 }),
    name: Type.Optional(Type.String({ maxLength: 64 })),
    role: Type.Optional(Type.String({ maxLength: 64 })),
    roles: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 16 })),
    prefix: Type.Optional(Type.String({ maxLength: 4096 })),
    read: Type.Optional(Type.Boolean()),
    write: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const authChangeUsage = 'POST /auth needs {"op": "enable"|"disable"|"user-add"|"user-delete"|"user-token"|"user-grant"|"user-revoke"|"role-add"|"role-delete"|"role-grant"|"role-revoke", "name"?, "role"?, "roles"?, "prefix"?, "read"?, "write"?}';
export const leaseGrantBody = Type.Object({ ttlMs }, { additionalProperties: false });
export const leaseGrantUsage = 'POST /leases needs {"ttlMs": N}';
export const leaseParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,15}$', description: 'a lease id (an integer >= 1)' }) });
export const leaseInfoQuery = Type.Object({ keys: Type.Optional(Type.String({ pattern: '^(?:0|[1-9][0-9]{0,5})$', description: 'how many keys to list (0 to 1000)' })) }, { additionalProperties: false });

/** The batch's shape; each operation is checked by batch.ts, which names it by position. */
export const batchBody = Type.Object({ ops: Type.Array(Type.Unknown(), { minItems: 1, description: 'a non-empty array' }) }, { additionalProperties: false });
export const batchUsage = 'POST /batch needs {"ops": [...]}';

/** A transaction's shape; each compare and operation is checked by txn.ts, which names it by position. */
export const txnBody = Type.Object(
  { compare: Type.Optional(Type.Unknown()), success: Type.Optional(Type.Unknown()), failure: Type.Optional(Type.Unknown()) },
  { additionalProperties: false },
);

export const modeBody = Type.Object(
  {
    writeQuorum: Type.Optional(
      Type.Union([Type.Literal('majority'), Type.Literal('all'), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })], {
        description: '"majority", "all" or a follower-ack count >= 0',
      }),
    ),
    topology: Type.Optional(Type.Union([Type.Literal('star'), Type.Literal('chain')], { description: '"star" or "chain"' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export const modeUsage = 'PUT /admin/mode needs {"writeQuorum"?: "majority"|"all"|W, "topology"?: "star"|"chain"}';

export const dieBody = Type.Object(
  { id: Type.String({ description: 'a node id' }), clean: Type.Optional(Type.Boolean({ description: 'true or false' })) },
  { additionalProperties: false },
);
export const dieUsage = 'POST /admin/die needs {"id": "<node id>", "clean": true|false}';

/** Fault rules are checked by the transport's own validator; the schema only wants an object. */
export const faultsBody = Type.Object({});
export const faultsUsage = 'PUT /admin/faults needs a JSON object of fault rules';

// --- membership (wire/members.ts owns the rules) ---

const nodeId = Type.String({ pattern: nodeIdPattern, description: memberRuleText.nodeId });
const hostPort = Type.String({ pattern: hostPortPattern, description: memberRuleText.hostPort });

/** POST /members/{id}/promote and DELETE /members/{id}: the id of a member already there. */
export const memberParams = Type.Object({ id: nodeId });

export const addMemberBody = Type.Object(
  {
    id: Type.String({ pattern: newNodeIdPattern, description: memberRuleText.newNodeId }),
    peer: hostPort,
    http: Type.Optional(Type.String({ pattern: httpOriginPattern, description: memberRuleText.httpOrigin })),
    grpc: Type.Optional(hostPort),
    learner: Type.Optional(Type.Boolean({ description: 'true or false' })),
    force: Type.Optional(Type.Boolean({ description: 'true or false' })),
    memberId: Type.Optional(Type.String({ pattern: memberIdPattern, description: memberRuleText.memberId })),
  },
  { additionalProperties: false },
);
export const addMemberUsage = 'POST /members needs {"id", "peer": "host:port"} and optionally "http", "grpc", "learner", "force", "memberId"';

export const transferLeaderBody = Type.Object({ to: Type.Optional(nodeId) }, { additionalProperties: false });
export const transferLeaderUsage = 'POST /admin/transfer-leader needs {} (the most up-to-date voter) or {"to": "<voter id>"}';

// --- dashboard (api/routes/ui.ts); the action routes exist only with fault injection on ---

export const uiActionNodeBody = Type.Object({ node: nodeId }, { additionalProperties: false });
export const uiPartitionUsage = 'POST /ui/actions/partition needs {"node": "<member id>"}';
export const uiHealBody = Type.Object({ node: Type.Optional(nodeId) }, { additionalProperties: false });
export const uiHealUsage = 'POST /ui/actions/heal needs {} (every node) or {"node": "<member id>"}';
const delayMs = Type.Integer({ minimum: 0, maximum: 60_000, description: 'an integer from 0 to 60000 (ms)' });
export const uiDelayBody = Type.Object(
  { delayMsMin: delayMs, delayMsMax: delayMs, node: Type.Optional(nodeId) },
  { additionalProperties: false },
);
export const uiDelayUsage = 'POST /ui/actions/delay needs {"delayMsMin": MS, "delayMsMax": MS} and optionally "node"';
export const uiDieBody = Type.Object(
  { node: nodeId, clean: Type.Optional(Type.Boolean({ description: 'true or false' })) },
  { additionalProperties: false },
);
export const uiDieUsage = 'POST /ui/actions/die needs {"node": "<member id>", "clean"?: true|false}';
export const uiMessagesQuery = Type.Object({ after: Type.Optional(safeIntegerText) }, { additionalProperties: false });
export const uiSupervisorUsage = (action: string): string => `POST /ui/actions/${action} needs {"node": "<member id>"}`;

/** How a route's schema failures are told: its usage line and the codes of its body fields. */
export interface RouteProblems {
  readonly usage?: string;
  /** Body fields whose failures have their own code (a PUT's `value` is invalid_value). */
  readonly fieldCodes?: Readonly<Record<string, ErrorCode>>;
}

/** fastify's schemaErrorFormatter for one route: the first failure as a QkvError. */
export function schemaProblem(route: RouteProblems): (errors: FastifySchemaValidationError[], dataVar: string) => Error {
  return (errors, dataVar) => {
    // A union (anyOf) reports each branch's failure first; its own error names the rule.
    const error = (errors.find((e) => e.keyword === 'anyOf') ?? errors[0]) as VerboseError | undefined;
    if (error === undefined) return new QkvError('bad_request', `Invalid ${dataVar}`);
    if (dataVar === 'body') return bodyProblem(error, route);
    if (dataVar === 'headers') return headerProblem(error);
    if (dataVar === 'querystring') return queryProblem(error);
    if (dataVar === 'params' && fieldOf(error) !== '') {
      return new QkvError('bad_request', `Path parameter ${fieldOf(error)} must be ${rule(error)}, got ${quoteValue(String(error.data))}`);
    }
    return new QkvError('bad_request', `Invalid path: ${error.message ?? error.keyword}`);
  };
}

/** Ajv's error with `verbose: true`: the failing value and the schema that held the rule. */
type VerboseError = FastifySchemaValidationError & {
  readonly data?: unknown;
  readonly parentSchema?: { readonly description?: string; readonly properties?: Readonly<Record<string, unknown>> };
};

function fieldOf(error: VerboseError): string {
  return error.instancePath.slice(1).split('/')[0] ?? '';
}

function rule(error: VerboseError): string {
  return error.parentSchema?.description ?? error.message ?? error.keyword;
}

function queryProblem(error: VerboseError): QkvError {
  if (error.keyword === 'additionalProperties') {
    const name = String(error.params['additionalProperty']);
    const problem = name === queryProblemMarker ? queryProblemOf(error.data) : undefined;
    if (problem !== undefined) return new QkvError('bad_request', problem);
    const allowed = Object.keys(error.parentSchema?.properties ?? {});
    return new QkvError(
      'bad_request',
      allowed.length === 0
        ? `Unknown query parameter ${quoteValue(name)}: this route takes none`
        : `Unknown query parameter ${quoteValue(name)}: expected ${allowed.join(', ')}`,
    );
  }
  return new QkvError('bad_request', `Query parameter ${fieldOf(error)} must be ${rule(error)}, got ${quoteValue(String(error.data))}`);
}

function headerProblem(error: VerboseError): QkvError {
  if (error.keyword === 'dependencies') {
    return new QkvError('bad_request', `Send both ${clientIdHeader} and ${requestSeqHeader} (once each), or neither`);
  }
  return new QkvError('bad_request', `Header ${fieldOf(error)} must be ${rule(error)}, got ${quoteValue(String(error.data))}`);
}

function bodyProblem(error: VerboseError, route: RouteProblems): QkvError {
  const usage = route.usage ?? 'see the API reference';
  const field = fieldOf(error);
  if (field === '') {
    if (error.keyword === 'type') {
      return error.data === null || error.data === undefined
        ? new QkvError('invalid_json', `Request body is empty: ${usage}`)
        : new QkvError('bad_request', `Request body must be a JSON object: ${usage}`);
    }
    if (error.keyword === 'additionalProperties') {
      return new QkvError('bad_request', `Unknown body field ${quoteValue(String(error.params['additionalProperty']))}: ${usage}`);
    }
    if (error.keyword === 'required') {
      const missing = String(error.params['missingProperty']);
      return new QkvError(route.fieldCodes?.[missing] ?? 'bad_request', `Body field "${missing}" is missing: ${usage}`);
    }
    return new QkvError('bad_request', usage);
  }
  const got = error.data === undefined ? 'nothing' : typeof error.data === 'object' ? jsonType(error.data) : jsonText(error.data);
  return new QkvError(route.fieldCodes?.[field] ?? 'bad_request', `Body field "${field}" must be ${rule(error)}, got ${got}`);
}

/** A JSON primitive as written (`42`, `"most"`, `true`), cut short if long. */
function jsonText(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
