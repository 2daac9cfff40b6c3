/**
 * The gRPC API does everything HTTP does, on real processes, through the TypeScript client
 * with `transport: 'grpc'`: watches (resumed on another node when the one serving them
 * stops), leases, reads at a version, consistent paged scans and binary values; and binary
 * values written over one API read back as the same bytes over the other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactedError, connect } from '../client/index.js';
import type { KvClient, WatchEvent } from '../client/index.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestCluster, http, mainPath, waitFor } from './harness.js';

const run = promisify(execFile);

test('over gRPC: watches resume across a node stop, leases hold and drop keys, reads at a version, binary values both ways', { timeout: 120_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  const clients: KvClient[] = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.destroy();
  });
  const leader = await cluster.waitForLeader();
  const follower = cluster.nodes.find((n) => n.id !== leader);
  assert.ok(follower);
  const others = cluster.nodes.filter((n) => n !== follower);
  // The follower first: the watch's stream comes from there.
  const kv = await connect({ endpoints: [follower.grpc, ...others.map((n) => n.grpc)], transport: 'grpc', deadlineMs: 10_000 });
  const viaHttp = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 10_000 });
  clients.push(kv, viaHttp);

  await t.test('a watch from a version delivers every change once, in order, with previous values, and resumes on another node when its node stops', async () => {
    const first = await kv.put('w/a', 'one');
    const watch = kv.watch('w/', { fromVersion: first.version, prevValue: true });
    const events: WatchEvent[] = [];
    const reading = (async () => {
      for await (const e of watch) events.push(e);
    })();
    const bytes = new Uint8Array([0, 255, 1, 254]);
    const written = [first.version, (await kv.put('w/a', 'two')).version, (await kv.put('w/b', bytes)).version, (await kv.delete('w/a')).version];
    await waitFor('the first four changes', 10_000, () => (events.length >= 4 ? true : null));
    assert.equal(watch.connections, 1);
    await cluster.stop(follower.id);
    for (let i = 0; i < 5; i++) written.push((await kv.put(`w/after${i}`, `v${i}`)).version);
    const endVersion = written[written.length - 1] as number;
    await waitFor('every change', 15_000, () => (watch.lastVersion >= endVersion ? true : null));
    watch.close();
    await reading;
    assert.deepEqual(events.map((e) => e.version), written, 'every version once, in order');
    assert.ok(watch.connections >= 2, 'the watch reconnected to another node');
    assert.deepEqual(events[0]?.changes, [{ type: 'put', key: 'w/a', value: 'one' }]);
    assert.deepEqual(events[1]?.changes, [{ type: 'put', key: 'w/a', value: 'two', prev: { value: 'one', version: first.version } }]);
    const binary = events[2]?.changes[0];
    assert.equal(binary?.type, 'put');
    assert.deepEqual(binary?.type === 'put' ? [...(binary.value as Uint8Array)] : null, [...bytes]);
    assert.deepEqual(events[3]?.changes, [{ type: 'delete', key: 'w/a', prev: { value: 'two', version: written[1] } }]);
    await cluster.restart(follower.id);
  });

  await t.test('a lease granted over gRPC keeps its keys while alive; revoked, they are gone at one version', async () => {
    const lease = await kv.lease(2_000);
    await kv.put('l/a', 'x', { lease });
    await kv.put('l/b', 'y', { lease });
    const info = await lease.info();
    assert.deepEqual(info?.keys, ['l/a', 'l/b']);
    assert.equal(info?.ttlMs, 2_000);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.equal((await kv.get('l/a'))?.value, 'x', 'kept alive past its TTL');
    const revoked = await lease.revoke();
    assert.equal(revoked.keysDeleted, 2);
    assert.equal(await kv.get('l/a'), undefined);
    assert.equal(await lease.info(), undefined);
  });

  await t.test('reads at a version, and a paged scan pinned to its first page’s version', async () => {
    const before = await kv.put('s/k0', 'old');
    for (let i = 1; i < 10; i++) await kv.put(`s/k${i}`, 'old');
    const at = (await kv.put('s/k9', 'old2')).version;
    await kv.put('s/k0', 'new');
    assert.equal((await kv.get('s/k0', { atVersion: at }))?.value, 'old');
    assert.equal((await kv.get('s/k0'))?.value, 'new');
    const pages = kv.listPages({ prefix: 's/', limit: 3 });
    const seen: string[] = [];
    let version = 0;
    for await (const page of pages) {
      if (version === 0) {
        version = page.version;
        // Written after the first page: the later pages must not show it.
        await kv.put('s/k5', 'during the scan');
      }
      assert.equal(page.version, version);
      for (const e of page.items) seen.push(`${e.key}=${String(e.value)}`);
    }
    assert.ok(version >= before.version);
    assert.equal(seen.length, 10);
    assert.ok(seen.includes('s/k5=old'));
    // In reverse, as a list and as a transaction's list.
    const backwards: string[] = [];
    for await (const e of kv.listAll({ prefix: 's/', limit: 4, reverse: true })) backwards.push(e.key);
    assert.deepEqual(backwards, Array.from({ length: 10 }, (_, i) => `s/k${9 - i}`));
    const txn = await kv.txn({ success: [{ op: 'list', prefix: 's/', limit: 2, reverse: true }] });
    assert.deepEqual(txn.results[0]?.op === 'list' ? txn.results[0].items.map((e) => e.key) : null, ['s/k9', 's/k8']);
    await http(`${cluster.nodes[0]?.http}/admin/compact`, 'POST', {});
    await assert.rejects(kv.get('s/k0', { atVersion: before.version }), (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'compacted');
    // Linearizable: a watch is otherwise as fresh as the node serving it, which may not have
    // applied the compaction the read above saw yet.
    const watch = kv.watch('s/', { fromVersion: before.version, consistency: 'linearizable' });
    await assert.rejects(
      (async () => {
        for await (const _ of watch) return;
      })(),
      (e: unknown) => e instanceof CompactedError,
    );
  });

  await t.test('binary values read back as the same bytes over both APIs, and as base64 with their encoding in HTTP JSON', async () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    await kv.put('bin/g', bytes);
    await viaHttp.put('bin/h', bytes.slice(0, 10));
    assert.deepEqual([...((await viaHttp.get('bin/g'))?.value as Uint8Array)], [...bytes]);
    assert.deepEqual([...((await kv.get('bin/h'))?.value as Uint8Array)], [...bytes.slice(0, 10)]);
    assert.equal((await kv.get('bin/text'))?.value, undefined);
    await kv.put('bin/text', 'plain text');
    assert.equal(typeof (await viaHttp.get('bin/text'))?.value, 'string');
    const json = await http(`${cluster.nodes[0]?.http}/kv/bin/h`, 'GET');
    assert.deepEqual(json.body, { key: 'bin/h', value: Buffer.from(bytes.slice(0, 10)).toString('base64'), encoding: 'base64', version: json.body['version'] });
    const listed = await kv.list({ prefix: 'bin/' });
    assert.deepEqual(listed.items.map((e) => typeof e.value), ['object', 'object', 'string']);
    // A transaction writes, compares and reads bytes too, over either transport.
    for (const client of [kv, viaHttp]) {
      const r = await client.txn({
        compare: [{ key: 'bin/h', value: bytes.slice(0, 10) }],
        success: [{ op: 'put', key: 'tx/b', value: new Uint8Array([9, 8]) }, { op: 'get', key: 'tx/b' }, { op: 'list', prefix: 'tx/' }],
      });
      assert.equal(r.succeeded, true);
      const got = r.results[1];
      assert.deepEqual(got?.op === 'get' && got.found ? [...(got.value as Uint8Array)] : null, [9, 8]);
      const list = r.results[2];
      assert.deepEqual(list?.op === 'list' ? list.items.map((i) => [...(i.value as Uint8Array)]) : null, [[9, 8]]);
    }
  });

  await t.test('the CLI stores a --base64 value as bytes and gives them back raw (get), as base64 in --json and in lines (ls)', async () => {
    const endpoints = ['--endpoints', cluster.nodes.map((n) => n.http).join(',')];
    await run(process.execPath, [mainPath, 'put', 'bin/cli', 'AP8A', '--base64', ...endpoints]);
    const raw = await run(process.execPath, [mainPath, 'get', 'bin/cli', ...endpoints], { encoding: 'buffer' });
    assert.deepEqual([...raw.stdout], [0, 255, 0]);
    const json = JSON.parse((await run(process.execPath, [mainPath, 'get', 'bin/cli', '--json', ...endpoints])).stdout) as Record<string, unknown>;
    assert.deepEqual([json['value'], json['encoding']], ['AP8A', 'base64']);
    assert.match((await run(process.execPath, [mainPath, 'ls', 'bin/cli', ...endpoints])).stdout, /^bin\/cli\tbase64:AP8A\t\(v\d+\)\n$/);
    const bad = await run(process.execPath, [mainPath, 'put', 'bin/bad', 'AP8', '--base64', ...endpoints]).catch((e: { code: number; stderr: string }) => e);
    assert.ok('code' in bad && bad.code !== 0 && bad.stderr.includes('base64'), 'a value that is not base64 is refused');
    assert.equal(await kv.get('bin/bad'), undefined);
  });
});
