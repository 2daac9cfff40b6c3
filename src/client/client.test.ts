/**
 * The client against in-process nodes (FakeKvNode behind the real HTTP and gRPC servers):
 * retries, idempotency keys, typed errors, leader discovery, session reads, backup and
 * die, over both transports. Real clusters are in integration/client.test.ts.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { startHttpServer } from '../api/http.js';
import { startGrpcServer } from '../api/grpc.js';
import { FakeKvNode } from '../api/fake-node.js';
import { valueInRow } from '../storage/types.js';
import { readBackupRecords, type BackupItem } from './backup-file.js';
import type { KvCommand, KvResult } from '../kv/types.js';
import { validateKey, validateValue } from '../kv/limits.js';
import { QkvError } from '../wire/errors.js';
import {
  BackupFormatError,
  ChangeOutcomeUnknownError,
  ClientClosedError,
  InvalidArgumentError,
  NotFoundError,
  OutcomeUnknownError,
  QuorumKvError,
  QuorumTimeoutError,
  UnavailableError,
  VersionConflictError,
  connect,
  verifyBackupFile,
} from './index.js';
import type { ConnectOptions, KvClient, TransportKind } from './index.js';

const kvLimits = { keyBytesMax: 64, valueBytesMax: 1024 };
const validate = { key: (key: string) => validateKey(key, kvLimits), value: (value: string) => validateValue(value, kvLimits) };
/** The transports, and HTTP once more with one request per call instead of batches. */
type Variant = TransportKind | 'http-unbatched';
const variants: readonly Variant[] = ['http', 'http-unbatched', 'grpc'];

/** A fake node whose next writes are applied and then answered with an error (a lost answer). */
class LossyNode extends FakeKvNode {
  loseAnswers = 0;
  override async write(command: KvCommand, options: { readonly timeoutMs: number }): Promise<KvResult> {
    const result = await super.write(command, options);
    if (this.loseAnswers > 0) {
      this.loseAnswers--;
      throw new QkvError('outcome_unknown', 'Leadership was lost while the write was in flight (test)');
    }
    return result;
  }
}

interface Served {
  readonly node: FakeKvNode;
  readonly http: string;
  readonly grpc: string;
  readonly registry: Registry;
}

async function serve(t: TestContext, node: FakeKvNode, options: { readonly leads?: boolean; readonly die?: (clean: boolean) => void; readonly requestsPerClientMax?: number } = {}): Promise<Served> {
  const perClient = options.requestsPerClientMax === undefined ? {} : { requestsPerClientMax: options.requestsPerClientMax };
  const registry = new Registry();
  const grpc = await startGrpcServer({
    node,
    listen: { host: '127.0.0.1', port: 0 },
    limits: { messageBytesMax: 8192, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 },
    validate,
    registry,
    ...perClient,
    ...(options.die === undefined ? {} : { die: options.die }),
  });
  const http = await startHttpServer({
    node,
    listen: { host: '127.0.0.1', port: 0 },
    limits: { bodyBytesMax: 8192, headerBytesMax: 8192, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 },
    validate,
    registry,
    logger: false,
    grpcAddress: grpc.address,
    ...perClient,
    ...(options.die === undefined ? {} : { die: options.die }),
  });
  t.after(async () => {
    await grpc.close();
    await http.close();
  });
  if (options.leads !== false) node.setLeader({ id: node.id, http: http.url, grpc: grpc.address });
  return { node, http: http.url, grpc: grpc.address, registry };
}

async function client(t: TestContext, variant: Variant, servers: readonly Served[], options: Partial<ConnectOptions> = {}): Promise<KvClient> {
  const transport: TransportKind = variant === 'grpc' ? 'grpc' : 'http';
  const kv = await connect({ endpoints: servers.map((s) => (transport === 'http' ? s.http : s.grpc)), transport, ...(variant === 'http-unbatched' ? { batching: false } : {}), ...options });
  t.after(() => kv.close());
  return kv;
}

/** A port nothing listens on (bound, then released). */
async function deadEndpoint(transport: TransportKind): Promise<string> {
  const { freePort } = await import('../bench/child.js');
  const port = await freePort();
  return transport === 'http' ? `http://127.0.0.1:${port}` : `127.0.0.1:${port}`;
}

for (const variant of variants) {
  const transport: TransportKind = variant === 'grpc' ? 'grpc' : 'http';
  test(`${variant}: put, get, delete, list and listAll round-trip, a missing key reads as undefined`, async (t) => {
    const kv = await client(t, variant, [await serve(t, new FakeKvNode({ id: 'n1' }))]);
    const put = await kv.put('a/1', 'one');
    assert.deepEqual(put, { key: 'a/1', version: 1 });
    await kv.put('a/2', 'two');
    await kv.put('b/1', 'three');
    assert.deepEqual(await kv.get('a/1'), { key: 'a/1', value: 'one', version: 1 });
    assert.equal(await kv.get('zzz'), undefined);
    const page = await kv.list({ prefix: 'a/', limit: 1 });
    // The version a page shows: the node's applied index (3 writes).
    assert.deepEqual(page, { items: [{ key: 'a/1', value: 'one', version: 1 }], next: 'a/1', version: 3 });
    const keys: string[] = [];
    for await (const entry of kv.listAll({ limit: 1 })) keys.push(entry.key);
    assert.deepEqual(keys, ['a/1', 'a/2', 'b/1']);
    // Backwards, a page at a time: each page's `next` is the cursor of the following one.
    const backwards: string[] = [];
    for await (const entry of kv.listAll({ limit: 1, reverse: true })) backwards.push(entry.key);
    assert.deepEqual(backwards, ['b/1', 'a/2', 'a/1']);
    assert.deepEqual((await kv.list({ prefix: 'a/', reverse: true, after: 'a/2' })).items.map((e) => e.key), ['a/1']);
    assert.deepEqual(await kv.delete('a/1'), { key: 'a/1', version: 4, deleted: true });
    assert.deepEqual(await kv.delete('a/1'), { key: 'a/1', version: 5, deleted: false });
    assert.equal(kv.sessionVersion, 5);
    const status = await kv.status();
    assert.equal(status.leader, 'n1');
    assert.ok(status.nodes[0]?.ok === true && status.nodes[0].status.grpc !== undefined, 'status shows the gRPC address');
  });

  test(`${variant}: a write refused too_many_requests (its client address at --requests-per-client-max) is retried with backoff and then succeeds`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const served = await serve(t, node, { requestsPerClientMax: 1 });
    const kv = await client(t, variant, [served]);
    const refusals = async (): Promise<number> => {
      const text = transport === 'http' ? await served.registry.getSingleMetricAsString('qkv_http_requests_total') : await served.registry.getSingleMetricAsString('qkv_grpc_requests_total');
      const pattern = transport === 'http' ? /status="429"\} (\d+)/g : /outcome="too_many_requests"\} (\d+)/g;
      return [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const until = async (what: string, ready: () => Promise<boolean>): Promise<void> => {
      for (const deadlineMs = performance.now() + 3_000; !(await ready()); await new Promise((resolve) => setTimeout(resolve, 5))) {
        if (performance.now() > deadlineMs) assert.fail(`timed out waiting until ${what}`);
      }
    };
    const release = node.holdWrites();
    const first = kv.put('a', '1');
    await until('the first write reached the node', async () => node.calls.length === 1);
    const second = kv.put('b', '2');
    await until('the second was refused twice', async () => (await refusals()) >= 2);
    release();
    assert.deepEqual((await Promise.all([first, second])).map((r) => r.key), ['a', 'b'], 'both writes succeed once the first one frees the place');
    assert.deepEqual(node.store.get('b')?.value, '2');
  });

  test(`${variant}: a Uint8Array value is stored as bytes and read back as the same bytes (a string stays a string)`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    const bytes = new Uint8Array([0, 1, 127, 128, 254, 255]);
    await kv.put('bin', bytes);
    await kv.put('text', 'héllo');
    assert.deepEqual(node.store.get('bin')?.value, bytes, 'the node holds the bytes');
    const got = await kv.get('bin');
    assert.ok(got?.value instanceof Uint8Array);
    assert.deepEqual([...got.value], [...bytes]);
    assert.equal((await kv.get('text'))?.value, 'héllo');
    const page = await kv.list({ prefix: '' });
    assert.deepEqual(page.items.map((e) => (typeof e.value === 'string' ? e.value : [...e.value])), [[...bytes], 'héllo']);
    await assert.rejects(kv.put('bad', 42 as unknown as string), (e: unknown) => e instanceof InvalidArgumentError && e.code === 'invalid_value');
  });

  test(`${variant}: a write whose answer was lost is retried with the same idempotency key and applied once`, async (t) => {
    const node = new LossyNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    node.loseAnswers = 2;
    const result = await kv.put('k', 'v');
    assert.equal(result.version, 1, 'the answer is the first application');
    assert.equal(node.store.get('k')?.version, 1);
    const ids = node.commands.map((c) => JSON.stringify(c.requestId));
    assert.equal(ids.length, 3, 'three attempts reached the node');
    assert.equal(new Set(ids).size, 1, 'all with the same client id and seq');
  });

  test(`${variant}: a write that stays unknown past its deadline is an OutcomeUnknownError, never a guess`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    for (let i = 0; i < 1000; i++) node.failNext(new QkvError('quorum_timeout', 'no quorum (test)', { acks: 1, required: 2 }));
    const started = performance.now();
    const error = await kv.put('k', 'v', { deadlineMs: 400 }).catch((e: unknown) => e);
    const elapsedMs = performance.now() - started;
    assert.ok(error instanceof QuorumTimeoutError, `got ${String(error)}`);
    assert.ok(error instanceof OutcomeUnknownError, 'a quorum timeout is an unknown outcome');
    assert.equal(error.code, 'quorum_timeout');
    assert.match(error.requestId.clientId, /^qkv-[0-9a-f]{16}\.0$/);
    assert.ok(elapsedMs < 400 + 200, `settled ${Math.round(elapsedMs)} ms after a 400 ms deadline`);
  });

  test(`${variant}: refusals before acting become UnavailableError at the deadline; nothing was written`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    for (let i = 0; i < 1000; i++) node.failNext(new QkvError('busy', 'too busy (test)', {}, 100));
    const error = await kv.put('k', 'v', { deadlineMs: 300 }).catch((e: unknown) => e);
    assert.ok(error instanceof UnavailableError, `got ${String(error)}`);
    assert.equal(error.code, 'busy');
    assert.equal(node.store.size, 0);
  });

  test(`${variant}: while no leader is known the client asks again every 100 ms at most, while load (busy) backs off to backoffMsMax`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    // Eight refusals each. Doubling from 25 ms to the 1 s default, they would take at least
    // 1.79 s (half of 25 + 50 + … + 800 + 1000 + 1000); capped at 100 ms, at most 0.68 s.
    const timed = async (error: () => QkvError): Promise<number> => {
      for (let i = 0; i < 8; i++) node.failNext(error());
      const started = performance.now();
      await kv.put('k', 'v', { deadlineMs: 10_000 });
      return performance.now() - started;
    };
    const electionMs = await timed(() => new QkvError('no_leader', 'an election is under way (test)', {}, 1000));
    assert.ok(electionMs < 1_200, `eight no_leader refusals took ${Math.round(electionMs)} ms`);
    const busyMs = await timed(() => new QkvError('busy', 'too busy (test)', {}, 100));
    assert.ok(busyMs >= 1_700, `eight busy refusals took only ${Math.round(busyMs)} ms`);
  });

  test(`${variant}: definite refusals are typed at once: version conflict, oversized key and value`, async (t) => {
    const kv = await client(t, variant, [await serve(t, new FakeKvNode({ id: 'n1' }))]);
    await kv.put('k', 'v');
    const conflict = await kv.put('k', 'w', { ifVersion: 0 }).catch((e: unknown) => e);
    assert.ok(conflict instanceof VersionConflictError, `got ${String(conflict)}`);
    assert.equal(conflict.expectedVersion, 0);
    assert.equal(conflict.actualVersion, 1);
    assert.equal(conflict.key, 'k');
    const ok = await kv.put('k', 'w', { ifVersion: 1 });
    assert.ok(ok.version > 1, 'a matching compare-and-set writes');
    for (const [send, code] of [
      [() => kv.put('k'.repeat(65), 'v'), 'key_too_large'],
      [() => kv.put('k', 'v'.repeat(1025)), 'value_too_large'],
      [() => kv.get('a\u0000b'), 'invalid_key'],
      [() => kv.put('', 'v'), 'invalid_key'],
    ] as const) {
      const error = await send().catch((e: unknown) => e);
      assert.ok(error instanceof InvalidArgumentError, `${code}: got ${String(error)}`);
      assert.equal(error.code, code);
    }
  });

  test(`${variant}: an endpoint that refuses connections is skipped, and one that never answers fails connect()`, async (t) => {
    const live = await serve(t, new FakeKvNode({ id: 'n1' }));
    const dead = await deadEndpoint(transport);
    const kv = await connect({ endpoints: [dead, transport === 'http' ? live.http : live.grpc], transport });
    t.after(() => kv.close());
    for (let i = 0; i < 5; i++) await kv.put(`k${i}`, 'v', { deadlineMs: 2_000 });
    const error = await connect({ endpoints: [dead], transport, connectTimeoutMs: 300 }).catch((e: unknown) => e);
    assert.ok(error instanceof UnavailableError, `got ${String(error)}`);
  });

  test(`${variant}: concurrent writes never share a client id, and each id's sequence numbers rise`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    await Promise.all(Array.from({ length: 200 }, (_, i) => kv.put(`k${i}`, `v${i}`)));
    const last = new Map<string, number>();
    for (const command of node.commands) {
      const id = command.requestId;
      assert.ok(id !== undefined, 'every write carries a request id');
      const before = last.get(id.clientId) ?? 0;
      assert.ok(id.seq > before, `${id.clientId}: seq ${id.seq} after ${before}`);
      last.set(id.clientId, id.seq);
    }
    assert.equal(node.store.size, 200, 'no write was refused as stale');
    assert.ok(last.size > 1 && last.size <= 200, `${last.size} lanes`);
  });

  test(`${variant}: a write the server refuses as too large fails alone; concurrent writes beside it succeed`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    const calls = [kv.put('big', 'x'.repeat(kvLimits.valueBytesMax + 1)), ...Array.from({ length: 7 }, (_, i) => kv.put(`k${i}`, 'v'))];
    const settled = await Promise.allSettled(calls);
    const [big, ...rest] = settled;
    assert.equal(big?.status, 'rejected');
    assert.equal(big?.status === 'rejected' ? (big.reason as { code?: string }).code : null, 'value_too_large');
    assert.ok(rest.every((r) => r.status === 'fulfilled'), 'the other writes were answered on their own');
    assert.equal(node.store.size, 7);
    assert.equal(node.store.has('big'), false);
  });

  test(`${variant}: session reads go to any node with the highest version this client saw`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    await kv.put('a', '1');
    const { version } = await kv.put('b', '2');
    await kv.get('a', { consistency: 'session' });
    const read = node.calls.filter((c) => c.op === 'read').at(-1);
    assert.ok(read !== undefined && read.op === 'read');
    assert.equal(read.options.consistency, 'local');
    assert.equal(read.options.minVersion, version);
    await kv.get('a', { consistency: 'leader' });
    const leaderRead = node.calls.filter((c) => c.op === 'read').at(-1);
    assert.ok(leaderRead?.op === 'read' && leaderRead.options.consistency === 'leader' && leaderRead.options.minVersion === undefined);
  });

  test(`${variant}: backup writes a checksummed file that verifies, and one flipped byte is detected`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    for (let i = 0; i < 249; i++) await kv.put(`key${i}`, `value ${i} é`);
    // A record whose value is in its value row (kv/value-rows.ts) is written as such.
    node.store.set('in-row', { value: valueInRow, version: 250 });
    const dir = await mkdtemp(path.join(tmpdir(), 'qkv-backup-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'b.qkv');
    const result = await kv.backup(file);
    assert.equal(result.items, 250);
    assert.equal(result.index, 250);
    assert.equal(result.nodeId, 'n1');
    const verified = await verifyBackupFile(file);
    assert.equal(verified.sha256, result.sha256);
    assert.equal(verified.items, 250);
    const items: BackupItem[] = [];
    for await (const record of readBackupRecords(file)) if (record.type === 'chunk') items.push(...record.items);
    assert.deepEqual(items.find(([key]) => key === 'in-row'), ['in-row', { inRow: true }, 250]);
    const bytes = await readFile(file);
    const at = bytes.indexOf('value 17');
    bytes[at] = 'V'.charCodeAt(0);
    await writeFile(file, bytes);
    await assert.rejects(verifyBackupFile(file), (e: unknown) => e instanceof BackupFormatError && /checksum mismatch/.test(e.message));
    await writeFile(file, bytes.subarray(0, bytes.length - 80));
    await assert.rejects(verifyBackupFile(file), BackupFormatError, 'a truncated file is refused');
  });

  test(`${variant}: die reaches the named node, which checks its id`, async (t) => {
    const died: boolean[] = [];
    const kv = await client(t, variant, [await serve(t, new FakeKvNode({ id: 'n1' }), { die: (clean) => died.push(clean) })]);
    await assert.rejects(kv.die('n9'), /No endpoint of this client is node "n9"/);
    await kv.die('n1', { clean: true });
    const deadline = Date.now() + 2_000;
    while (died.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(died, [true]);
  });

  test(`${variant}: members are listed, added, promoted and removed, and leadership is handed over`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    const listed = await kv.members.list();
    assert.equal(listed.configIndex, 0);
    assert.deepEqual(listed.members.map((m) => [m.id, m.role, m.isLeader, m.lag]), [['n1', 'voter', true, null]]);
    const added = await kv.members.add({ id: 'n4', peer: '127.0.0.1:7104', http: 'http://127.0.0.1:7004' });
    assert.equal(added.configIndex, 1);
    assert.equal(added.clusterId, 'fake-cluster');
    assert.deepEqual(added.config.learners, ['n4']);
    assert.deepEqual(added.config.directory, { n4: { memberId: 'fake0001', peer: '127.0.0.1:7104', http: 'http://127.0.0.1:7004' } });
    const n4 = added.members.find((m) => m.id === 'n4');
    assert.deepEqual([n4?.role, n4?.peer, n4?.http, n4?.grpc, n4?.matchIndex], ['learner', '127.0.0.1:7104', 'http://127.0.0.1:7004', null, null]);
    assert.deepEqual((await kv.members.promote('n4')).config.members, ['n1', 'n4']);
    assert.deepEqual((await kv.members.remove('n4')).config.members, ['n1']);
    assert.deepEqual(await kv.transferLeader('n2'), { leader: 'n2' });
    assert.deepEqual(await kv.transferLeader(), { leader: 'n1' });
    assert.deepEqual(node.transfers, ['n2', null]);
    const status = await kv.status();
    assert.equal(status.nodes[0]?.ok === true ? status.nodes[0].status.membership?.configIndex : null, 3, 'status carries the membership');
  });

  test(`${variant}: membership_busy is retried until the change goes through; member_exists and not_found are not retried`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)], { backoffMsMin: 5, backoffMsMax: 20 });
    for (let i = 0; i < 3; i++) node.failNextChange(new QkvError('membership_busy', 'another change is being committed (test)', {}, 200));
    await kv.members.add({ id: 'n4', peer: 'n4:7104' });
    assert.equal(node.changeAttempts, 4, 'three refusals, then the change');
    const exists = await kv.members.add({ id: 'n4', peer: 'n4:7104' }).catch((e: unknown) => e);
    assert.ok(exists instanceof QuorumKvError && exists.code === 'member_exists', `got ${String(exists)}`);
    const missing = await kv.members.remove('n9').catch((e: unknown) => e);
    assert.ok(missing instanceof NotFoundError && missing.code === 'not_found', `got ${String(missing)}`);
    assert.equal(node.changeAttempts, 6, 'each definite refusal took one attempt');
    for (let i = 0; i < 1000; i++) node.failNextChange(new QkvError('membership_busy', 'busy for good (test)', {}, 200));
    const stuck = await kv.members.promote('n4', { deadlineMs: 300 }).catch((e: unknown) => e);
    assert.ok(stuck instanceof UnavailableError && stuck.code === 'membership_busy', `nothing was done: got ${String(stuck)}`);
  });

  test(`${variant}: learner_lagging is retried a bounded number of times, and a change that may have acted is not repeated`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)], { backoffMsMin: 5, backoffMsMax: 20 });
    await kv.members.add({ id: 'n4', peer: 'n4:7104' });
    const before = node.changeAttempts;
    for (let i = 0; i < 100; i++) node.failNextChange(new QkvError('learner_lagging', 'n4 is 500 entries behind (test)', {}, 500));
    const lagging = await kv.members.promote('n4', { deadlineMs: 5_000 }).catch((e: unknown) => e);
    assert.ok(lagging instanceof QuorumKvError && lagging.code === 'learner_lagging', `got ${String(lagging)}`);
    assert.equal(node.changeAttempts - before, 6, 'the first attempt and five retries');

    const unknown = new FakeKvNode({ id: 'n1' });
    const kv2 = await client(t, variant, [await serve(t, unknown)], { backoffMsMin: 5, backoffMsMax: 20 });
    unknown.failNextChange(new QkvError('timeout', 'n4 did not take over in time (test)', {}, 500));
    const transfer = await kv2.transferLeader('n4').catch((e: unknown) => e);
    assert.ok(transfer instanceof ChangeOutcomeUnknownError, `got ${String(transfer)}`);
    assert.equal(unknown.changeAttempts, 1, 'not repeated');
  });

  test(`${variant}: bad member input is refused before anything is sent`, async (t) => {
    const node = new FakeKvNode({ id: 'n1' });
    const kv = await client(t, variant, [await serve(t, node)]);
    for (const send of [
      () => kv.members.add({ id: 'n 4', peer: 'n4:7104' }),
      () => kv.members.add({ id: 'n4', peer: 'n4' }),
      () => kv.members.add({ id: 'n4', peer: 'n4:7104', http: 'n4:7004' }),
      () => kv.members.add({ id: 'n4', peer: 'n4:7104', learner: 'no' as unknown as boolean }),
      () => kv.members.promote(''),
      () => kv.members.remove('x'.repeat(257)),
      () => kv.transferLeader(''),
    ]) {
      await assert.rejects(send(), InvalidArgumentError);
    }
    assert.equal(node.changeAttempts, 0);
  });
}

test('the client learns the leader from /status and sends writes to it directly, not through a follower', async (t) => {
  const leader = await serve(t, new FakeKvNode({ id: 'n1' }));
  const follower = await serve(t, new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.http, grpc: leader.grpc } }), { leads: false });
  const kv = await client(t, 'http', [follower, leader]);
  assert.equal(kv.leaderId, 'n1');
  for (let i = 0; i < 20; i++) await kv.put(`k${i}`, 'v');
  const forwards = await follower.registry.getSingleMetricAsString('qkv_http_forwards_total');
  assert.doesNotMatch(forwards, /outcome="answered"} [1-9]/, 'the follower forwarded nothing');
  assert.equal(leader.node.store.size, 20);
});

test('linearizable reads go to the leader, or with linearizableReadsFrom "any" to every node in turn', async (t) => {
  const leader = await serve(t, new FakeKvNode({ id: 'n1' }));
  const follower = await serve(t, new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.http, grpc: leader.grpc } }), { leads: false });
  const reads = (s: Served): number => s.node.calls.filter((c) => c.op === 'read').length;
  const toLeader = await client(t, 'http', [follower, leader]);
  for (let i = 0; i < 10; i++) await toLeader.get(`k${i}`);
  assert.deepEqual([reads(leader), reads(follower)], [10, 0]);
  const spread = await client(t, 'http', [follower, leader], { linearizableReadsFrom: 'any' });
  for (let i = 0; i < 10; i++) await spread.get(`k${i}`, { consistency: 'linearizable' });
  assert.ok(reads(follower) >= 4 && reads(leader) >= 14, `leader ${reads(leader)}, follower ${reads(follower)} reads`);
  await assert.rejects(connect({ endpoints: [leader.http], linearizableReadsFrom: 'nearest' as 'any' }), InvalidArgumentError);
});

test('a membership change through a follower reaches the leader, and the client then finds the new leader after a transfer', async (t) => {
  const leader = await serve(t, new FakeKvNode({ id: 'n1' }));
  const followerNode = new FakeKvNode({ id: 'n2', leader: { id: 'n1', http: leader.http, grpc: leader.grpc } });
  const follower = await serve(t, followerNode, { leads: false });
  const kv = await client(t, 'http', [follower, leader]);
  await kv.members.add({ id: 'n4', peer: 'n4:7104' });
  assert.equal(leader.node.members().configIndex, 1);
  assert.equal(followerNode.changeAttempts, 0, 'sent to the leader, not through the follower');
  leader.node.transferLeader = async (to) => {
    leader.node.setLeader({ id: 'n2', http: follower.http, grpc: follower.grpc });
    followerNode.setLeader({ id: 'n2', http: follower.http, grpc: follower.grpc });
    return { leader: to ?? 'n2' };
  };
  assert.deepEqual(await kv.transferLeader('n2'), { leader: 'n2' });
  assert.equal(kv.leaderId, 'n2', 'the client follows the leader the answer names');
  await kv.put('k', 'v');
  assert.equal(followerNode.store.get('k')?.value, 'v', 'the next write went to the new leader');
  assert.equal(leader.node.store.size, 0);
});

test('calls after close() throw ClientClosedError', async (t) => {
  const kv = await connect({ endpoints: [(await serve(t, new FakeKvNode({ id: 'n1' }))).http] });
  await kv.close();
  await assert.rejects(kv.put('k', 'v'), ClientClosedError);
  await assert.rejects(kv.get('k'), ClientClosedError);
});

test('bad options are refused before anything is sent', async () => {
  await assert.rejects(connect({ endpoints: [] }), InvalidArgumentError);
  await assert.rejects(connect({ endpoints: ['http://127.0.0.1:1/path'] }), InvalidArgumentError);
  await assert.rejects(connect({ endpoints: ['localhost'], transport: 'grpc' }), InvalidArgumentError);
  await assert.rejects(connect({ endpoints: ['http://127.0.0.1:1'], clientId: 'has space' }), InvalidArgumentError);
  await assert.rejects(connect({ endpoints: ['http://127.0.0.1:1'], deadlineMs: -1 }), InvalidArgumentError);
});
