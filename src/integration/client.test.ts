/**
 * The client against real node processes: one client suite run over HTTP
 * and over gRPC, gRPC input validation side by side with HTTP's, and the CLI's client
 * commands. (Failover and exactly-once retries: client-failover.test.ts; backup and
 * restore of 100,000 keys: client-backup.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { InvalidArgumentError, VersionConflictError, connect, verifyBackupFile } from '../client/index.js';
import type { KvClient, TransportKind } from '../client/index.js';
import { http, mainPath, TestCluster, waitFor } from './harness.js';

const run = promisify(execFile);

let cluster: TestCluster;
let leaderId: string;

before(async () => {
  cluster = await TestCluster.start({ nodes: 3, flags: ['--key-bytes-max', '64', '--value-bytes-max', '1024'] });
  leaderId = await cluster.waitForLeader();
});

after(async () => {
  await cluster.destroy();
});

function endpoints(transport: TransportKind): string[] {
  return cluster.nodes.map((n) => (transport === 'http' ? n.http : n.grpc));
}

/** Every key with value and version on every node, for "nothing changed" checks. */
async function dumpAll(): Promise<string> {
  const dumps: unknown[] = [];
  for (const n of cluster.nodes) {
    const items: unknown[] = [];
    let afterKey: string | null = null;
    do {
      const res = await http(`${n.http}/debug/store?limit=1000${afterKey === null ? '' : `&after=${encodeURIComponent(afterKey)}`}`);
      items.push(...(res.body['items'] as unknown[]));
      afterKey = res.body['next'] as string | null;
    } while (afterKey !== null);
    dumps.push(items);
  }
  return JSON.stringify(dumps);
}

async function clientSuite(kv: KvClient, transport: TransportKind): Promise<void> {
  const p = `${transport}/`;
  // Leader discovery: the client found the leader the cluster agrees on.
  assert.equal(kv.leaderId, leaderId);
  const status = await kv.status();
  assert.equal(status.leader, leaderId);
  assert.equal(status.nodes.length, 3);
  for (const n of status.nodes) {
    assert.ok(n.ok, `${n.endpoint} answered its status`);
    assert.equal(n.status.grpc, cluster.node(n.status.id).grpc, 'status shows the node\'s gRPC address');
  }

  const put = await kv.put(`${p}a`, 'alpha');
  assert.ok(put.version > 0);
  assert.deepEqual(await kv.get(`${p}a`), { key: `${p}a`, value: 'alpha', version: put.version });
  assert.deepEqual(await kv.get(`${p}a`, { consistency: 'leader' }), { key: `${p}a`, value: 'alpha', version: put.version });
  // Read-your-writes on any node: session reads carry the highest version seen.
  for (let i = 0; i < 6; i++) {
    const { version } = await kv.put(`${p}session`, `s${i}`);
    assert.deepEqual(await kv.get(`${p}session`, { consistency: 'session' }), { key: `${p}session`, value: `s${i}`, version });
  }
  assert.equal(await kv.get(`${p}missing`), undefined, 'a missing key reads as undefined');

  // A create-only transaction: success once (its writes visible to its own get and list), then the failure branch.
  const t = `${p}txn/one`;
  const createOnce = {
    compare: [{ key: t, exists: false }],
    success: [{ op: 'put', key: t, value: 'one' }, { op: 'get', key: t }, { op: 'list', prefix: `${p}txn/`, limit: 10 }],
    failure: [{ op: 'get', key: t }],
  } as const;
  const txnCreated = await kv.txn(createOnce);
  assert.deepEqual(txnCreated, {
    succeeded: true,
    version: txnCreated.version,
    results: [
      { op: 'put', key: t, version: txnCreated.version },
      { op: 'get', key: t, found: true, value: 'one', version: txnCreated.version },
      { op: 'list', prefix: `${p}txn/`, items: [{ key: t, value: 'one', version: txnCreated.version }], more: false },
    ],
  });
  const again = await kv.txn(createOnce);
  assert.equal(again.succeeded, false);
  assert.ok(again.version > txnCreated.version, 'a transaction that wrote nothing still has its own version');
  assert.deepEqual(again.results, [{ op: 'get', key: t, found: true, value: 'one', version: txnCreated.version }]);
  const badTxn = await kv.txn({ compare: [{ key: t, exists: true }, { key: t, version: 1, exists: true }] }).catch((e: unknown) => e);
  assert.ok(badTxn instanceof InvalidArgumentError && /compare\[1\]: a compare needs exactly one/.test(badTxn.message), `got ${String(badTxn)}`);

  const conflict = await kv.put(`${p}a`, 'beta', { ifVersion: put.version - 1 }).catch((e: unknown) => e);
  assert.ok(conflict instanceof VersionConflictError, `got ${String(conflict)}`);
  assert.equal(conflict.actualVersion, put.version);
  const cas = await kv.put(`${p}a`, 'beta', { ifVersion: put.version });
  assert.ok(cas.version > put.version);
  const created = await kv.put(`${p}new`, 'n', { ifVersion: 0 });
  assert.ok(created.version > cas.version);

  for (let i = 0; i < 25; i++) await kv.put(`${p}list/${String(i).padStart(2, '0')}`, `v${i}`);
  const page = await kv.list({ prefix: `${p}list/`, limit: 10 });
  assert.equal(page.items.length, 10);
  assert.equal(page.next, `${p}list/09`);
  const all: string[] = [];
  for await (const entry of kv.listAll({ prefix: `${p}list/`, limit: 7 })) all.push(String(entry.value));
  assert.deepEqual(all, Array.from({ length: 25 }, (_, i) => `v${i}`));
  const local = await kv.list({ prefix: `${p}list/`, consistency: 'session', limit: 100 });
  assert.equal(local.items.length, 25, 'a session list on any node sees every write');

  const del = await kv.delete(`${p}a`);
  assert.equal(del.deleted, true);
  assert.equal(await kv.get(`${p}a`), undefined);
  assert.equal((await kv.delete(`${p}a`)).deleted, false);
  await assert.rejects(kv.delete(`${p}new`, { ifVersion: 1 }), VersionConflictError);

  for (const [send, code] of [
    [() => kv.put('k'.repeat(65), 'v'), 'key_too_large'],
    [() => kv.put(`${p}big`, 'v'.repeat(1025)), 'value_too_large'],
    [() => kv.get('a\u0000b'), 'invalid_key'],
  ] as const) {
    const error = await send().catch((e: unknown) => e);
    assert.ok(error instanceof InvalidArgumentError, `${code}: got ${String(error)}`);
    assert.equal(error.code, code);
  }

  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-client-it-'));
  try {
    const backup = await kv.backup(path.join(dir, 'b.qkv'));
    assert.equal(backup.nodeId, leaderId, 'the backup comes from the leader');
    const verified = await verifyBackupFile(backup.file);
    assert.equal(verified.items, backup.items);
    assert.ok(backup.items >= 25);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const transport of ['http', 'grpc'] as const) {
  test(`the client suite passes over ${transport} against a real 3-node cluster`, { timeout: 60_000 }, async () => {
    const kv = await connect({ endpoints: endpoints(transport), transport });
    try {
      await clientSuite(kv, transport);
    } finally {
      await kv.close();
    }
  });
}

// --- gRPC input validation, side by side with HTTP ---

const definition = protoLoader.loadSync(fileURLToPath(new URL('../../proto/quorumkv.proto', import.meta.url)), { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
const kvService = definition['quorumkv.v1.KV'] as protoLoader.ServiceDefinition;

function field(number: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);
}

/** Sends a Put/Get as raw bytes and returns the wire code of the refusal (or 'ok'). */
function grpcCode(address: string, method: 'Put' | 'Get' | 'Txn', message: object | Buffer): Promise<{ readonly status: number; readonly code: string; readonly response?: unknown }> {
  const m = kvService[method] as protoLoader.MethodDefinition<object, object>;
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const bytes = Buffer.isBuffer(message) ? message : m.requestSerialize(message);
  return new Promise((resolve) => {
    client.makeUnaryRequest(m.path, (b: Buffer) => b, m.responseDeserialize, bytes, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (error, response) => {
      client.close();
      if (error === null) resolve({ status: 0, code: 'ok', response });
      else resolve({ status: error.code, code: String(error.metadata.get('qkv-error')[0] ?? `(no code: ${error.details})`) });
    });
  });
}

test('nodes advertise their gRPC addresses: a gRPC client given one follower finds the leader and every node', { timeout: 60_000 }, async () => {
  const follower = cluster.nodes.find((n) => n.id !== leaderId);
  assert.ok(follower !== undefined);
  // Each node learns its peers' addresses from their handshakes; /status shows them.
  const status = (await http(`${follower.http}/status`)).body as { leader: { id: string; grpc: string | null }; peers: { id: string; grpc: string | null }[] };
  assert.deepEqual(status.leader, { id: leaderId, http: cluster.node(leaderId).http, grpc: cluster.node(leaderId).grpc });
  for (const peer of status.peers) assert.equal(peer.grpc, cluster.node(peer.id).grpc, `${follower.id} shows ${peer.id}'s gRPC address`);

  const kv = await connect({ endpoints: [follower.grpc], transport: 'grpc' });
  try {
    assert.equal(kv.leaderId, leaderId, 'the follower\'s leader hint named the leader\'s gRPC address');
    const nodes = (await kv.status()).nodes;
    assert.deepEqual(nodes.map((n) => n.endpoint).sort(), cluster.nodes.map((n) => n.grpc).sort(), 'the peers the follower listed were added');
    const put = await kv.put('grpc-discovery/a', 'x');
    assert.deepEqual(await kv.get('grpc-discovery/a'), { key: 'grpc-discovery/a', value: 'x', version: put.version });
  } finally {
    await kv.close();
  }
});

test('node-side gRPC input validation mirrors HTTP: same wire codes, nothing written', { timeout: 60_000 }, async () => {
  const follower = cluster.nodes.find((n) => n.id !== leaderId);
  assert.ok(follower);
  // Every node caught up first (the last write may still be on its way to one of them).
  const before = await waitFor('every node to hold the same store', 10_000, async () => {
    const dump = await dumpAll();
    const stores = (JSON.parse(dump) as unknown[]).map((d) => JSON.stringify(d));
    return stores.every((d) => d === stores[0]) ? dump : null;
  });
  const k65 = 'k'.repeat(65);
  const cases: { what: string; http: () => Promise<{ status: number; body: Record<string, unknown> }>; grpc: () => ReturnType<typeof grpcCode>; code: string }[] = [
    { what: 'a key over the limit', http: () => http(`${follower.http}/kv/${k65}`, 'PUT', { value: 'x' }), grpc: () => grpcCode(follower.grpc, 'Put', { key: k65, value: 'x' }), code: 'key_too_large' },
    { what: 'a value over the limit', http: () => http(`${follower.http}/kv/v`, 'PUT', { value: 'v'.repeat(1025) }), grpc: () => grpcCode(follower.grpc, 'Put', { key: 'v', value: 'v'.repeat(1025) }), code: 'value_too_large' },
    { what: 'a key that is not UTF-8', http: () => http(`${follower.http}/kv/a%FFb`, 'PUT', { value: 'x' }), grpc: () => grpcCode(follower.grpc, 'Put', Buffer.concat([field(1, Buffer.from([0x61, 0xff, 0x62])), field(2, Buffer.from('x'))])), code: 'invalid_key' },
    { what: 'a key holding a lone surrogate', http: () => http(`${follower.http}/kv/%ED%A0%80`, 'PUT', { value: 'x' }), grpc: () => grpcCode(follower.grpc, 'Put', Buffer.concat([field(1, Buffer.from([0xed, 0xa0, 0x80])), field(2, Buffer.from('x'))])), code: 'invalid_key' },
    { what: 'a value that is not valid Unicode', http: () => http(`${follower.http}/kv/v`, 'PUT', '{"value":"\\ud800"}'), grpc: () => grpcCode(follower.grpc, 'Put', Buffer.concat([field(1, Buffer.from('v')), field(2, Buffer.from([0xed, 0xa0, 0x80]))])), code: 'invalid_value' },
    { what: 'a key with NUL', http: () => http(`${follower.http}/kv/a%00b`, 'PUT', { value: 'x' }), grpc: () => grpcCode(follower.grpc, 'Put', { key: 'a\u0000b', value: 'x' }), code: 'invalid_key' },
    { what: 'a read of a key over the limit', http: () => http(`${follower.http}/kv/${k65}`), grpc: () => grpcCode(follower.grpc, 'Get', { key: k65 }), code: 'key_too_large' },
    { what: 'a read of a key that is not UTF-8', http: () => http(`${follower.http}/kv/%FE`), grpc: () => grpcCode(follower.grpc, 'Get', field(1, Buffer.from([0xfe]))), code: 'invalid_key' },
  ];
  for (const c of cases) {
    const h = await c.http();
    assert.equal(h.body['error'], c.code, `HTTP, ${c.what}: ${JSON.stringify(h.body)}`);
    const g = await c.grpc();
    assert.equal(g.code, c.code, `gRPC, ${c.what}`);
    assert.equal(g.status, grpc.status.INVALID_ARGUMENT, `gRPC, ${c.what}: status`);
  }
  assert.equal(await dumpAll(), before, 'no node changed');
});

test('a transaction sent to a follower runs on the leader, answered through the follower, over HTTP and gRPC', { timeout: 60_000 }, async () => {
  const follower = cluster.nodes.find((n) => n.id !== leaderId);
  assert.ok(follower !== undefined);
  const body = { success: [{ op: 'put', key: 'fwd/txn', value: 'via-follower' }, { op: 'get', key: 'fwd/txn' }] };
  const viaHttp = await http(`${follower.http}/txn`, 'POST', body);
  assert.equal(viaHttp.status, 200, JSON.stringify(viaHttp.body));
  assert.equal(viaHttp.headers['x-qkv-served-by'], leaderId);
  assert.equal(viaHttp.body['succeeded'], true);
  // The follower's own gRPC Txn forwards it too.
  const viaGrpc = await grpcCode(follower.grpc, 'Txn', { success: [{ op: 'get', key: 'fwd/txn' }] });
  assert.equal(viaGrpc.code, 'ok');
  const results = (viaGrpc.response as { results: { op: string; key: string; found: boolean; value: string; version: string }[] }).results;
  assert.deepEqual(results.map((r) => [r.op, r.key, r.found, r.value, Number(r.version)]), [['get', 'fwd/txn', true, 'via-follower', viaHttp.body['version']]]);
  // A key that is not UTF-8 inside an operation is refused, as over HTTP.
  const badKey = await grpcCode(follower.grpc, 'Txn', Buffer.from([0x12, 0x08, 0x0a, 0x03, 0x67, 0x65, 0x74, 0x12, 0x01, 0xff]));
  assert.deepEqual([badKey.status, badKey.code], [grpc.status.INVALID_ARGUMENT, 'bad_request']);
});

test('the CLI client commands use the library and print --json', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-cli-it-'));
  try {
    const clusterFile = path.join(dir, 'cluster.json');
    await writeFile(clusterFile, JSON.stringify({ clusterId: 'x', nodes: cluster.nodes.map((n) => ({ id: n.id, http: n.http, grpc: n.grpc })) }));
    const cli = async (...args: string[]): Promise<string> => (await run(process.execPath, [mainPath, ...args, '--cluster-file', clusterFile])).stdout;
    const put = JSON.parse(await cli('put', 'cli/key', 'hello world', '--json')) as { key: string; version: number };
    assert.equal(put.key, 'cli/key');
    assert.deepEqual(JSON.parse(await cli('get', 'cli/key', '--json', '--transport', 'grpc')), { key: 'cli/key', value: 'hello world', version: put.version });
    assert.equal(await cli('get', 'cli/key'), 'hello world\n');
    assert.match(await cli('ls', 'cli/'), /^cli\/key\thello world\t\(v\d+\)\n$/);
    const status = JSON.parse(await cli('status', '--json')) as { leader: string; nodes: { id: string }[] };
    assert.equal(status.leader, leaderId);
    assert.equal(status.nodes.length, 3);
    const missing = await run(process.execPath, [mainPath, 'get', 'cli/none', '--json', '--cluster-file', clusterFile]).catch((e: { code: number; stderr: string }) => e);
    assert.ok('code' in missing && missing.code === 1, 'a missing key exits 1');
    assert.equal((JSON.parse(missing.stderr) as { error: string }).error, 'not_found');
    const out = await cli('backup', '--out', path.join(dir, 'b.qkv'), '--json');
    assert.equal((JSON.parse(out) as { nodeId: string }).nodeId, leaderId);
    // A create-only transaction: the first run succeeds, the second takes the failure branch.
    const createOnce = JSON.stringify({
      compare: [{ key: 'cli/once', exists: false }],
      success: [{ op: 'put', key: 'cli/once', value: 'first' }],
      failure: [{ op: 'get', key: 'cli/once' }],
    });
    const created = JSON.parse(await cli('txn', createOnce, '--json')) as { succeeded: boolean; version: number };
    assert.equal(created.succeeded, true);
    assert.match(await cli('txn', createOnce), new RegExp(`^FAILED \\(failure branch ran\\) at version \\d+\nget cli/once = first \\(v${created.version}\\)\n$`));
    const badTxn = await run(process.execPath, [mainPath, 'txn', '{"success":[{"op":"put","key":"cli/x"}]}', '--json', '--cluster-file', clusterFile]).catch((e: { code: number; stderr: string }) => e);
    assert.ok('code' in badTxn && badTxn.code === 1, 'a malformed transaction exits 1');
    assert.equal((JSON.parse(badTxn.stderr) as { error: string }).error, 'invalid_value');
    assert.match(await cli('del', 'cli/key'), /cli\/key version \d+ deleted/);
    // watch: the changes under a prefix from a version, one line each, until --count.
    const w1 = JSON.parse(await cli('put', 'cliw/a', '1', '--json')) as { version: number };
    await cli('put', 'other/x', 'not watched');
    await cli('put', 'cliw/a', '2');
    assert.match(await cli('watch', 'cliw/', '--from-version', String(w1.version), '--count', '2', '--prev'), new RegExp(`^v${w1.version} put cliw/a = 1\nv\\d+ put cliw/a = 2 \\(was 1 at v${w1.version}\\)\n$`));
    // lease: grant, attach a key, look, revoke (the key goes with it).
    const lease = JSON.parse(await cli('lease', 'grant', '60000', '--json')) as { id: number; ttlMs: number };
    assert.equal(lease.ttlMs, 60_000);
    await cli('put', 'clil/k', 'v', '--lease', String(lease.id));
    assert.deepEqual((JSON.parse(await cli('lease', 'info', String(lease.id), '--json')) as { keys: string[] }).keys, ['clil/k']);
    assert.match(await cli('lease', 'revoke', String(lease.id)), /found true {2}keysDeleted 1/);
    const gone = await run(process.execPath, [mainPath, 'lease', 'keepalive', String(lease.id), '--cluster-file', clusterFile]).catch((e: { code: number; stderr: string }) => e);
    assert.ok('code' in gone && gone.code === 1 && gone.stderr.includes('not found'), 'a keep-alive of an ended lease exits 1');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
