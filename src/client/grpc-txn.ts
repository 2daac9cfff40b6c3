/**
 * A transaction over gRPC: the JSON body (wire/types.ts TxnBody) as the Txn call's request
 * message, and its response message back as the JSON answer, so `kv.txn()` returns the same
 * thing over either transport.
 */

import type { TxnOp, TxnOpResult, TxnResponse as TxnMessage, TxnRequest as TxnRequestMessage } from '../wire/gen/quorumkv.js';
import type { TxnBody, TxnOpBody, TxnOpResponse, TxnResponse } from '../wire/types.js';
import { ProtocolError } from './transport.js';
import { jsonValue, valueOfMessage } from '../wire/values.js';

export function txnMessageOf(body: TxnBody): Omit<TxnRequestMessage, 'clientId' | 'seq'> {
  return {
    compare: (body.compare ?? []).map((c) => ({ key: c.key, op: c.op ?? '=', version: c.version, ...(c.encoding === 'base64' && c.value !== undefined ? { binary: Buffer.from(c.value, 'base64') } : { value: c.value }), exists: c.exists })),
    success: (body.success ?? []).map(opMessageOf),
    failure: (body.failure ?? []).map(opMessageOf),
  };
}

function opMessageOf(o: TxnOpBody): TxnOp {
  const none = { key: '', value: '', prefix: '', limit: 0, reverse: false };
  switch (o.op) {
    case 'put':
      return o.encoding === 'base64' ? { ...none, op: o.op, key: o.key, binary: Buffer.from(o.value, 'base64') } : { ...none, op: o.op, key: o.key, value: o.value };
    case 'delete':
    case 'get':
      return { ...none, op: o.op, key: o.key };
    case 'list':
      return { ...none, op: o.op, prefix: o.prefix, limit: o.limit ?? 0, reverse: o.reverse === true };
  }
}

export function txnResponseOf(message: TxnMessage): TxnResponse {
  return { succeeded: message.succeeded, version: message.version, results: message.results.map(resultOf) };
}

function resultOf(r: TxnOpResult): TxnOpResponse {
  switch (r.op) {
    case 'put':
      return { op: 'put', key: r.key, version: r.version };
    case 'delete':
      return { op: 'delete', key: r.key, deleted: r.deleted };
    case 'get':
      return r.found ? { op: 'get', key: r.key, found: true, ...jsonValue(valueOfMessage(r)), version: r.version } : { op: 'get', key: r.key, found: false };
    case 'list':
      return { op: 'list', prefix: r.prefix, items: r.items.map((i) => ({ key: i.key, ...jsonValue(valueOfMessage(i)), version: i.version })), more: r.more };
    default:
      throw new ProtocolError(`txn result has unknown op ${JSON.stringify(r.op)}`);
  }
}
