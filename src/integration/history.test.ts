/**
 * Reads at a past version on real processes: a paged scan every page of which reads the
 * version of the first is consistent while transfers run (the total is conserved), forwards
 * and in reverse, a key reads as it was, keysOnly and countOnly, and a version older than the
 * history kept (by versions, or by age with --history-retention-ms) is 410 compacted with
 * the oldest version left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QuorumKvError, connect } from '../client/index.js';
import type { KvClient } from '../client/index.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TestCluster, http, runCli, waitFor } from './harness.js';

const accounts = 60;
const opening = 100;
const key = (i: number): string => `bank/${String(i).padStart(3, '0')}`;

test('a paged scan at one version is consistent while transfers run; a key reads as it was; an older version than the history kept is 410 compacted', { timeout: 120_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--history-retention-versions', '500'] });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  await cluster.waitForLeader();
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 15_000 });
  const client = kv;
  const first = await client.put('hist/k', 'one');
  await client.put('hist/k', 'two');
  await client.delete('hist/k');
  assert.deepEqual(await client.get('hist/k', { atVersion: first.version }), { key: 'hist/k', value: 'one', version: first.version });
  assert.equal(await client.get('hist/k'), undefined);

  for (let i = 0; i < accounts; i += 30) {
    await client.txn({ success: Array.from({ length: 30 }, (_, j) => ({ op: 'put' as const, key: key(i + j), value: String(opening) })) });
  }
  let stop = false;
  let transfers = 0;
  const transfer = async (): Promise<void> => {
    while (!stop) {
      const a = Math.floor(Math.random() * accounts);
      const b = (a + 1 + Math.floor(Math.random() * (accounts - 1))) % accounts;
      const r = await client.txn({ success: [{ op: 'get', key: key(a) }, { op: 'get', key: key(b) }] });
      const [ra, rb] = r.results;
      if (ra?.op !== 'get' || rb?.op !== 'get' || !ra.found || !rb.found) throw new Error('an account is missing');
      const amount = Math.min(Number(ra.value), 1 + Math.floor(Math.random() * 5));
      const moved = await client.txn({
        compare: [{ key: key(a), version: ra.version }, { key: key(b), version: rb.version }],
        success: [{ op: 'put', key: key(a), value: String(Number(ra.value) - amount) }, { op: 'put', key: key(b), value: String(Number(rb.value) + amount) }],
      });
      if (moved.succeeded) transfers++;
    }
  };
  const movers = Array.from({ length: 8 }, () => transfer());
  try {
    // Scans of small pages from followers and the leader alike, each page a separate request.
    for (let scan = 0; scan < 5; scan++) {
      let total = 0;
      let version = 0;
      const seen: string[] = [];
      for await (const page of client.listPages({ prefix: 'bank/', limit: 7, consistency: scan % 2 === 0 ? 'linearizable' : 'local' })) {
        version ||= page.version;
        assert.equal(page.version, version, 'every page shows the version of the first');
        for (const e of page.items) {
          assert.ok(e.version <= version);
          total += Number(e.value);
          seen.push(`${e.key}=${e.value}@${e.version}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(seen.length, accounts);
      assert.equal(total, accounts * opening, `the scan at version ${version} sums to ${total}`);
      const counted = await http(`${cluster.nodes[scan % 3]?.http}/kv?prefix=bank/&countOnly=true&atVersion=${version}`);
      assert.deepEqual(counted.body, { count: accounts, version });
      // The same state backwards, page by page, while the transfers go on.
      const backwards: string[] = [];
      for await (const e of client.listAll({ prefix: 'bank/', limit: 9, reverse: true, atVersion: version, consistency: 'local' })) backwards.push(`${e.key}=${e.value}@${e.version}`);
      assert.deepEqual(backwards, [...seen].reverse(), `the reverse scan at version ${version} is the forward one backwards`);
    }
  } finally {
    stop = true;
    await Promise.all(movers);
  }
  t.diagnostic(`${transfers} transfers during the scans`);
  assert.ok(transfers > 0);
  const keysOnly = await http(`${cluster.nodes[0]?.http}/kv?prefix=bank/&limit=2&keysOnly=true`);
  assert.deepEqual((keysOnly.body['items'] as { key: string }[]).map((i) => Object.keys(i).sort().join()), ['key,version', 'key,version']);

  // Past the retention, the leader compacts: the first version is gone.
  for (let i = 0; i < 600; i += 1) await client.put('fill', String(i));
  const compacted = await waitFor('a compaction', 30_000, async () => {
    const r = await http(`${cluster.nodes[1]?.http}/kv/hist/k?atVersion=${first.version}&consistency=local`);
    return r.status === 410 ? r : null;
  });
  assert.equal(compacted.body['error'], 'compacted');
  assert.ok((compacted.body['oldestVersion'] as number) > first.version);
  await assert.rejects(client.list({ prefix: 'bank/', atVersion: first.version }), (e: unknown) => e instanceof QuorumKvError && e.code === 'compacted');
});

test('with --history-retention-ms the leader compacts versions older than the window without any further write', { timeout: 60_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--history-retention-ms', '1500'] });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  await cluster.waitForLeader();
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http) });
  const startedMs = performance.now();
  const first = await kv.put('aged/k', '1');
  const second = await kv.put('aged/k', '2');
  assert.deepEqual(await kv.get('aged/k', { atVersion: first.version }), { key: 'aged/k', value: '1', version: first.version }, 'young: readable');
  for (const n of cluster.nodes) {
    const r = await waitFor(`${n.id} to compact the aged history`, 20_000, async () => {
      const a = await http(`${n.http}/kv/aged/k?atVersion=${first.version}&consistency=local`);
      return a.status === 410 ? a : null;
    });
    assert.ok((r.body['oldestVersion'] as number) >= second.version, JSON.stringify(r.body));
  }
  const tookMs = performance.now() - startedMs;
  t.diagnostic(`compacted ${Math.round(tookMs)} ms after the first write`);
  assert.ok(tookMs >= 1500, `never before the window: ${Math.round(tookMs)} ms`);
  // The present is kept: the last write reads as it is.
  assert.deepEqual(await kv.get('aged/k', { atVersion: second.version }), { key: 'aged/k', value: '2', version: second.version });
  const clusterFile = path.join(cluster.dir, 'cluster.json');
  await writeFile(clusterFile, JSON.stringify({ clusterId: 'x', nodes: cluster.nodes.map((n) => ({ id: n.id, http: n.http })) }));
  await kv.put('aged/j', '3');
  const ls = await runCli(['ls', 'aged/', '--reverse', '--cluster-file', clusterFile], 30_000);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^aged\/k\t2\t\(v\d+\)\naged\/j\t3\t\(v\d+\)\n$/);
});

test('compaction on demand: POST /admin/compact through a follower and quorumkv compact drop the history below a version on every node, never beyond the present', { timeout: 60_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  const leader = await cluster.waitForLeader();
  const follower = cluster.nodes.find((n) => n.id !== leader);
  assert.ok(follower);
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http) });
  const first = await kv.put('c/k', '1');
  const second = await kv.put('c/k', '2');
  assert.equal((await http(`${follower.http}/admin/compact`, 'POST', { beforeVersion: 0 })).status, 400);
  const done = await http(`${follower.http}/admin/compact`, 'POST', { beforeVersion: second.version });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body['compactedBelow'], second.version);
  for (const n of cluster.nodes) {
    const r = await waitFor(`${n.id} to apply the compaction`, 10_000, async () => {
      const a = await http(`${n.http}/kv/c/k?atVersion=${first.version - 1}&consistency=local`);
      return a.status === 410 ? a : null;
    });
    assert.equal(r.body['error'], 'compacted');
  }
  assert.deepEqual(await kv.get('c/k', { atVersion: second.version }), { key: 'c/k', value: '2', version: second.version });
  // A version in the future is not compacted away: the present stays watchable.
  const far = await http(`${follower.http}/admin/compact`, 'POST', { beforeVersion: 1_000_000_000 });
  assert.equal(far.status, 200);
  assert.ok((far.body['compactedBelow'] as number) < 1_000_000, JSON.stringify(far.body));
  const next = await kv.put('c/k', '3');
  const watch = kv.watch('c/', { fromVersion: next.version });
  for await (const e of watch) {
    assert.equal(e.version, next.version);
    break;
  }
  const clusterFile = path.join(cluster.dir, 'cluster.json');
  await writeFile(clusterFile, JSON.stringify({ clusterId: 'x', nodes: cluster.nodes.map((n) => ({ id: n.id, http: n.http })) }));
  const cli = await runCli(['compact', '--cluster-file', clusterFile], 30_000);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^history compacted below version \d+ \(\d+ records removed\)\n$/);
});
