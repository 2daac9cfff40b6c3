import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import type { TxnCommand, TxnResult } from '../kv/types.js';
import { kvValidator } from '../kv/limits.js';
import { startTestLeader, testHttpLimits, testKvLimits } from './testing/http-server.js';
import { txnOpsMax } from '../wire/types.js';

const validate = kvValidator(testKvLimits);

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await request(`${url}/txn`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
}

/** Answers as the state machine would for a transfer whose compares held, reading nothing. */
function allSucceed(command: TxnCommand, version: number): TxnResult {
  return {
    ok: true,
    op: 'txn',
    succeeded: true,
    version,
    results: command.success.map((o) =>
      o.op === 'put' ? { op: 'put', key: o.key, version } : o.op === 'get' ? { op: 'get', key: o.key, record: { value: new TextEncoder().encode('bytes'), version: 1 } } : o.op === 'delete' ? { op: 'delete', key: o.key, deleted: false } : { op: 'list', prefix: o.prefix, items: [], more: false },
    ),
  };
}

test('POST /txn proposes the transaction as written, with its idempotency pair, and answers each result', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate });
  server.node.txnAnswer = allSucceed;
  const body = {
    compare: [{ key: 'a', version: 3 }, { key: 'b', value: 'x', op: '!=' }, { key: 'c', exists: false }],
    success: [{ op: 'put', key: 'a', value: '7' }, { op: 'get', key: 'b' }, { op: 'list', prefix: 'p/', limit: 5 }, { op: 'delete', key: 'c' }],
    failure: [{ op: 'list', prefix: '', reverse: true }],
  };
  const answer = await post(server.url, body, { 'x-qkv-client-id': 'c1', 'x-qkv-seq': '4' });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual(answer.body, {
    succeeded: true,
    version: 1,
    results: [
      { op: 'put', key: 'a', version: 1 },
      { op: 'get', key: 'b', found: true, value: Buffer.from('bytes').toString('base64'), encoding: 'base64', version: 1 },
      { op: 'list', prefix: 'p/', items: [], more: false },
      { op: 'delete', key: 'c', deleted: false },
    ],
  });
  const call = server.node.calls.at(-1);
  assert.ok(call?.op === 'txn');
  assert.deepEqual(call.command, {
    op: 'txn',
    compare: [
      { key: 'a', target: 'version', op: '=', version: 3 },
      { key: 'b', target: 'value', op: '!=', value: 'x' },
      { key: 'c', target: 'exists', op: '=', exists: false },
    ],
    success: [
      { op: 'put', key: 'a', value: '7' },
      { op: 'get', key: 'b' },
      { op: 'list', prefix: 'p/', limit: 5 },
      { op: 'delete', key: 'c' },
    ],
    failure: [{ op: 'list', prefix: '', limit: testHttpLimits.listLimitMax, reverse: true }],
    requestId: { clientId: 'c1', seq: 4 },
  });
});

const refusals: readonly { readonly name: string; readonly body: unknown; readonly status: number; readonly error: string; readonly message: RegExp }[] = [
  { name: 'an unknown body field', body: { compares: [] }, status: 400, error: 'bad_request', message: /Unknown body field "compares"/ },
  { name: 'a compare with two targets', body: { compare: [{ key: 'a', version: 1, exists: true }] }, status: 400, error: 'bad_request', message: /compare\[0\]: a compare needs exactly one of/ },
  { name: 'an unknown compare operator', body: { compare: [{ key: 'a', version: 1, op: '>=' }] }, status: 400, error: 'bad_request', message: /compare\[0\]: field "op"/ },
  { name: 'exists compared with <', body: { compare: [{ key: 'a', exists: true, op: '<' }] }, status: 400, error: 'bad_request', message: /"exists" compares with/ },
  { name: 'a negative version', body: { compare: [{ key: 'a', version: -1 }] }, status: 400, error: 'bad_request', message: /safe integer/ },
  { name: 'an unknown op', body: { success: [{ op: 'rename', key: 'a' }] }, status: 400, error: 'bad_request', message: /success\[0\]: field "op"/ },
  { name: 'a put without a value', body: { failure: [{ op: 'put', key: 'a' }] }, status: 400, error: 'invalid_value', message: /failure\[0\]: field "value" is missing/ },
  { name: 'a field a get does not take', body: { success: [{ op: 'get', key: 'a', value: 'x' }] }, status: 400, error: 'bad_request', message: /unknown field "value" for "get"/ },
  { name: 'an empty key', body: { success: [{ op: 'get', key: '' }] }, status: 400, error: 'invalid_key', message: /success\[0\]/ },
  { name: 'a key over the key limit', body: { success: [{ op: 'delete', key: 'k'.repeat(testKvLimits.keyBytesMax + 1) }] }, status: 413, error: 'key_too_large', message: /success\[0\]/ },
  { name: 'a list longer than a page', body: { success: [{ op: 'list', prefix: 'p', limit: testHttpLimits.listLimitMax + 1 }] }, status: 400, error: 'bad_request', message: /limit/ },
  { name: 'a list whose reverse is not a boolean', body: { success: [{ op: 'list', prefix: 'p', reverse: 'yes' }] }, status: 400, error: 'bad_request', message: /success\[0\]: field "reverse" must be true or false/ },
  { name: 'too many operations', body: { success: Array.from({ length: txnOpsMax + 1 }, () => ({ op: 'get', key: 'a' })) }, status: 400, error: 'bad_request', message: new RegExp(`at most ${txnOpsMax}`) },
  { name: 'a body that is not an object', body: '[1]', status: 400, error: 'bad_request', message: /JSON object/ },
];

for (const { name, body, status, error, message } of refusals) {
  test(`POST /txn refuses ${name} and proposes nothing`, async (t) => {
    const server = await startTestLeader(t, 'n1', { validate });
    server.node.txnAnswer = allSucceed;
    const answer = await post(server.url, body);
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    assert.equal(answer.body['error'], error);
    assert.match(String(answer.body['message']), message);
    assert.equal(server.node.calls.length, 0);
  });
}

test('POST /txn answers a stale retry as 409 stale_request', async (t) => {
  const server = await startTestLeader(t, 'n1', { validate });
  server.node.txnAnswer = () => ({ ok: false, error: 'stale_request', key: '', lastSeq: 9 });
  const answer = await post(server.url, { success: [{ op: 'get', key: 'a' }] }, { 'x-qkv-client-id': 'c1', 'x-qkv-seq': '2' });
  assert.equal(answer.status, 409);
  assert.equal(answer.body['error'], 'stale_request');
});
