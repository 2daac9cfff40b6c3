/**
 * Transactions as the client takes and gives them: the HTTP API's JSON shapes (wire/types.ts)
 * with every value text or bytes, as `put` and `get` have them. A Uint8Array in a put or a
 * compare goes on the wire as base64 with its encoding; bytes in an answer come back as a
 * Uint8Array. One conversion each way, whichever transport carried the transaction.
 */

import type { TxnBody, TxnCompareBody, TxnOpBody, TxnOpResponse, TxnResponse } from '../wire/types.js';
import type { Entry, Value } from './types.js';
import { jsonValue } from '../wire/values.js';
import { valueFromJson } from './values.js';

/** A compare: one of version, value (text or bytes) or exists. */
export type TxnCompareInput = Omit<TxnCompareBody, 'value' | 'encoding'> & {
  /** Text, bytes, or base64 text with `encoding: 'base64'`. */
  readonly value?: Value;
  readonly encoding?: 'base64';
};

export type TxnOpInput = Exclude<TxnOpBody, { readonly op: 'put' }> | { readonly op: 'put'; readonly key: string; readonly value: Value; readonly encoding?: 'base64' };

/** `kv.txn`'s argument: compares, then the success or the failure operations. */
export interface TxnInput {
  readonly compare?: readonly TxnCompareInput[];
  readonly success?: readonly TxnOpInput[];
  readonly failure?: readonly TxnOpInput[];
}

export type TxnOpResult =
  | Exclude<TxnOpResponse, { readonly op: 'get'; readonly found: true } | { readonly op: 'list' }>
  | { readonly op: 'get'; readonly key: string; readonly found: true; readonly value: Value; readonly version: number }
  | { readonly op: 'list'; readonly prefix: string; readonly items: readonly Entry[]; readonly more: boolean };

/** Which branch ran, the transaction's version, and each operation's result in order. */
export interface TxnResult {
  readonly succeeded: boolean;
  readonly version: number;
  readonly results: readonly TxnOpResult[];
}

/** The JSON body the API takes: byte values as base64 with their encoding. */
export function txnBodyOf(input: TxnInput): TxnBody {
  return {
    ...(input.compare === undefined ? {} : { compare: input.compare.map(compareBody) }),
    ...(input.success === undefined ? {} : { success: input.success.map(opBody) }),
    ...(input.failure === undefined ? {} : { failure: input.failure.map(opBody) }),
  };
}

function compareBody(c: TxnCompareInput): TxnCompareBody {
  return c.value instanceof Uint8Array ? { ...c, ...jsonValue(c.value) } : (c as TxnCompareBody);
}

function opBody(o: TxnOpInput): TxnOpBody {
  return o.op === 'put' && o.value instanceof Uint8Array ? { ...o, ...jsonValue(o.value) } : (o as TxnOpBody);
}

/** The API's answer with byte values (base64 with their encoding) as Uint8Arrays. */
export function txnResultOf(response: TxnResponse): TxnResult {
  return { succeeded: response.succeeded, version: response.version, results: response.results.map(resultOf) };
}

function resultOf(r: TxnOpResponse): TxnOpResult {
  if (r.op === 'get' && r.found) return { op: 'get', key: r.key, found: true, value: valueFromJson(r, 'a txn get result'), version: r.version };
  if (r.op === 'list') return { op: 'list', prefix: r.prefix, items: r.items.map((i) => ({ key: i.key, value: valueFromJson({ ...i }, 'a txn list item'), version: i.version })), more: r.more };
  return r;
}
