/**
 * Reads a transaction's answer (wire/types.ts TxnResponse) from decoded JSON, checking its
 * shape: a malformed answer is a ProtocolError, never a half-read result.
 */

import type { ListItem, TxnOpResponse, TxnResponse } from '../wire/types.js';
import { ProtocolError, decodedIndex } from './transport.js';

export function txnResponseOf(json: Readonly<Record<string, unknown>>): TxnResponse {
  const succeeded = json['succeeded'];
  const results = json['results'];
  if (typeof succeeded !== 'boolean') throw new ProtocolError('txn answer has no boolean "succeeded"');
  if (!Array.isArray(results)) throw new ProtocolError('txn answer has no "results" list');
  return { succeeded, version: decodedIndex(json['version'], 'txn version'), results: results.map(opResultOf) };
}

function opResultOf(raw: unknown): TxnOpResponse {
  const r = recordOf(raw, 'txn result');
  const op = r['op'];
  switch (op) {
    case 'put':
      return { op, key: text(r, 'key'), version: decodedIndex(r['version'], 'put version') };
    case 'delete':
      return { op, key: text(r, 'key'), deleted: flag(r, 'deleted') };
    case 'get':
      return flag(r, 'found') ? { op, key: text(r, 'key'), found: true, value: text(r, 'value'), ...encodingOf(r), version: decodedIndex(r['version'], 'get version') } : { op, key: text(r, 'key'), found: false };
    case 'list': {
      const items = r['items'];
      if (!Array.isArray(items)) throw new ProtocolError('txn list result has no "items" list');
      return { op, prefix: text(r, 'prefix'), items: items.map(itemOf), more: flag(r, 'more') };
    }
    default:
      throw new ProtocolError(`txn result has unknown op ${JSON.stringify(op)}`);
  }
}

function itemOf(raw: unknown): ListItem {
  const r = recordOf(raw, 'txn list item');
  return { key: text(r, 'key'), value: text(r, 'value'), ...encodingOf(r), version: decodedIndex(r['version'], 'list item version') };
}

/** A value's encoding when it is binary (base64); text values have none. */
function encodingOf(r: Readonly<Record<string, unknown>>): { encoding?: 'base64' } {
  const encoding = r['encoding'];
  if (encoding === undefined) return {};
  if (encoding !== 'base64') throw new ProtocolError(`txn answer has an unknown value encoding ${JSON.stringify(encoding)}`);
  return { encoding };
}

function recordOf(raw: unknown, what: string): Readonly<Record<string, unknown>> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ProtocolError(`${what} is not an object`);
  return raw as Record<string, unknown>;
}

function text(r: Readonly<Record<string, unknown>>, name: string): string {
  const v = r[name];
  if (typeof v !== 'string') throw new ProtocolError(`txn answer field "${name}" is not a string`);
  return v;
}

function flag(r: Readonly<Record<string, unknown>>, name: string): boolean {
  const v = r[name];
  if (typeof v !== 'boolean') throw new ProtocolError(`txn answer field "${name}" is not a boolean`);
  return v;
}
