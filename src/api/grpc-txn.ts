/**
 * The gRPC Txn call: its messages to and from the HTTP API's JSON shapes (wire/types.ts),
 * so a transaction is validated by the same rules (txn.ts) and forwarded to the leader as
 * the same POST /txn, whichever API it came through.
 */

import type * as grpc from '@grpc/grpc-js';
import type { RequestId, TxnCommand } from '../kv/types.js';
import { QkvError } from '../wire/errors.js';
import type { TxnCompare, TxnOp, TxnOpResult, TxnRequest, TxnResponse as TxnMessage } from '../wire/gen/quorumkv.js';
import { txnRoute, type TxnBody, type TxnCompareBody, type TxnCompareOp, type TxnOpBody, type TxnOpResponse, type TxnResponse } from '../wire/types.js';
import { LazyForwardSpec, type ForwardedResponse, type ForwardSpec, type LeaderRouter } from './forward.js';
import { jsonValue, messageFields, requestValue } from '../wire/values.js';
import { valueOfJson } from './json-values.js';
import { txnExec } from './ops.js';
import type { SpecSource } from './ops.js';
import { requestIdOf } from './request-id.js';
import { parseTxn, txnAnswer } from './txn.js';
import type { InputValidator } from './validation.js';

const fieldNames: Readonly<Record<number, string>> = { 1: 'compare', 2: 'success', 3: 'failure', 4: 'client_id' };

/** What the Txn call needs of the gRPC service (grpc-kv.ts). */
export interface GrpcTxnDeps {
  readonly router: LeaderRouter;
  readonly validate: InputValidator;
  readonly limits: { readonly listLimitMax: number };
  deadlineMs(call: grpc.ServerUnaryCall<unknown, unknown>): number;
  fromLeader(call: object, response: ForwardedResponse): Record<string, unknown>;
  /** Refuses (401/403) a transaction its caller may not run, before anything is proposed. */
  permitTxn(call: grpc.ServerUnaryCall<unknown, unknown>, command: TxnCommand): void;
  source(call: grpc.ServerUnaryCall<unknown, unknown>): SpecSource;
}

/** `bad`: the number of a request field holding a string that is not UTF-8 (decoding found it). */
export async function runGrpcTxn(deps: GrpcTxnDeps, request: TxnRequest, bad: number | undefined, call: grpc.ServerUnaryCall<unknown, unknown>): Promise<TxnMessage> {
  if (bad !== undefined) throw new QkvError('bad_request', `A string in ${fieldNames[bad] ?? `field ${bad}`} is not valid UTF-8`);
  const requestId = requestIdOf(request.clientId || undefined, request.seq || undefined, { clientId: 'client_id', seq: 'seq' });
  const body = txnBodyOf(request);
  const command = parseTxn(body as Record<string, unknown>, deps.validate, deps.limits, requestId);
  deps.permitTxn(call, command);
  const outcome = await deps.router.run(txnExec, command, txnSpec(body, requestId, deps.deadlineMs(call), deps.source(call)));
  // The leader's answer is our own POST /txn's JSON: its shape is the one txnAnswer gives.
  const answer = outcome.via === 'forward' ? (deps.fromLeader(call, outcome.response) as unknown as TxnResponse) : txnAnswer(outcome.value);
  return txnMessageOf(answer);
}

/** The POST /txn a transaction stands for, as the router forwards it to the leader. */
function txnSpec(body: TxnBody, requestId: RequestId | null, deadlineMs: number, from: SpecSource): ForwardSpec {
  return new LazyForwardSpec({ method: 'POST', url: txnRoute, requestId, isWrite: true, servedByFollower: false, deadlineMs, makeBody: () => JSON.stringify(body), ...from });
}

function txnBodyOf(request: TxnRequest): TxnBody {
  return { compare: request.compare.map(compareOf), success: request.success.map(opOf), failure: request.failure.map(opOf) };
}

function compareOf(c: TxnCompare): TxnCompareBody {
  const op = (c.op === '' ? '=' : c.op) as TxnCompareOp;
  return {
    key: c.key,
    op,
    ...(c.version === undefined ? {} : { version: c.version }),
    ...textOrBinary(c.value, c.binary, c.key),
    ...(c.exists === undefined ? {} : { exists: c.exists }),
  };
}

/** Only the fields the op takes: parseTxn then refuses what is missing or malformed. */
function opOf(o: TxnOp): TxnOpBody {
  switch (o.op) {
    case 'put':
      return { op: 'put', key: o.key, value: '', ...textOrBinary(o.value, o.binary, o.key) };
    case 'delete':
    case 'get':
      return { op: o.op, key: o.key };
    case 'list':
      return { op: 'list', prefix: o.prefix, ...(o.limit === 0 ? {} : { limit: o.limit }), ...(o.reverse ? { reverse: true } : {}) };
    default:
      return { op: o.op } as unknown as TxnOpBody;
  }
}

function txnMessageOf(answer: TxnResponse): TxnMessage {
  return { succeeded: answer.succeeded, version: answer.version, results: answer.results.map(resultOf) };
}

function resultOf(r: TxnOpResponse): TxnOpResult {
  const base: TxnOpResult = { op: r.op, key: '', version: 0, deleted: false, found: false, value: '', prefix: '', items: [], more: false };
  switch (r.op) {
    case 'put':
      return { ...base, key: r.key, version: r.version };
    case 'delete':
      return { ...base, key: r.key, deleted: r.deleted };
    case 'get':
      return r.found ? { ...base, key: r.key, found: true, ...messageFields(valueOfJson(r)), version: r.version } : { ...base, key: r.key };
    case 'list':
      return { ...base, prefix: r.prefix, items: r.items.map((i) => ({ key: i.key, ...messageFields(valueOfJson({ ...i })), version: i.version })), more: r.more };
  }
}

/** A message's value (text, or `binary`) as the JSON body's (base64 with its encoding); absent when neither is set. */
function textOrBinary(text: string | undefined, binary: Buffer | undefined, key: string): { value?: string; encoding?: 'base64' } {
  return text === undefined && binary === undefined ? {} : jsonValue(requestValue(text ?? '', binary, key));
}
