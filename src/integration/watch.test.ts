/**
 * Watches on real processes: a watcher started on a follower at version V delivers exactly
 * the committed changes from V on, once each, in order, through 5,000 writes and two leader
 * kill -9s; a watcher whose consumer stops reading is cancelled with slow_consumer and
 * resuming from its last version loses nothing; a compacted fromVersion ends with 410.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { OutcomeUnknownError, UnavailableError, connect } from '../client/index.js';
import type { KvClient, WatchEvent } from '../client/index.js';
import { TestCluster, http, waitFor } from './harness.js';

/** Every write of the load: key and unique value, and the version when acknowledged. */
interface Attempt {
  readonly key: string;
  readonly value: string;
  version: number | null;
  unknown: boolean;
}

async function collect(events: AsyncIterable<WatchEvent>, into: WatchEvent[], until: () => boolean): Promise<void> {
  for await (const e of events) {
    into.push(e);
    if (until()) return;
  }
}

test('a watcher on a follower from version V delivers every committed change from V on, once, in order, through 5,000 writes, two leader kills and a kill of its own node', { timeout: 240_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  const clients: KvClient[] = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.destroy();
  });
  const firstLeader = await cluster.waitForLeader();
  const follower = cluster.nodes.find((n) => n.id !== firstLeader);
  assert.ok(follower);
  const writer = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 15_000 });
  clients.push(writer);
  await writer.put('load/before', 'not watched');
  const start = await writer.put('other/start', 'v');
  const fromVersion = start.version;

  // The watcher's client knows the follower first: its stream comes from there.
  const watcherClient = await connect({ endpoints: [follower.http, ...cluster.nodes.filter((n) => n !== follower).map((n) => n.http)], deadlineMs: 15_000 });
  clients.push(watcherClient);
  const watch = watcherClient.watch('load/', { fromVersion, prevValue: true });
  const seen: WatchEvent[] = [];
  let endVersion = Number.POSITIVE_INFINITY;
  const watching = collect(watch, seen, () => watch.lastVersion >= endVersion);

  const attempts: Attempt[] = [];
  const total = 5_000;
  let next = 0;
  const loop = async (w: number): Promise<void> => {
    for (let i = next++; i < total; i = next++) {
      const a: Attempt = { key: `load/k${i % 250}`, value: `w${w}-${i}`, version: null, unknown: false };
      attempts.push(a);
      try {
        a.version = (await writer.put(a.key, a.value)).version;
      } catch (error) {
        if (!(error instanceof OutcomeUnknownError || error instanceof UnavailableError)) throw error;
        a.unknown = true;
      }
    }
  };
  const load = Promise.all(Array.from({ length: 32 }, (_, w) => loop(w)));
  for (const at of [total / 3, (2 * total) / 3]) {
    await waitFor(`${at} writes sent`, 120_000, () => next >= at || null, 20);
    const leader = await cluster.waitForLeader();
    await cluster.kill9(leader);
    await cluster.waitForLeader(30_000);
    await cluster.restart(leader);
  }
  // And the node the watcher reads from: it must resume elsewhere, from where it was.
  await waitFor('5/6 of the writes sent', 120_000, () => next >= (5 * total) / 6 || null, 20);
  await cluster.kill9(follower.id);
  await cluster.restart(follower.id);
  await load;
  endVersion = (await writer.put('load/zz-end', 'end')).version;
  await waitFor(`the watch at version ${endVersion}`, 60_000, () => watch.lastVersion >= endVersion || null, 20);
  watch.close();
  await watching;

  // In order, once each, from V on, and only changes under the prefix.
  const versions = seen.map((e) => e.version);
  assert.ok(versions.every((v, i) => i === 0 || v > (versions[i - 1] as number)), 'versions strictly increase');
  assert.ok((versions[0] ?? 0) >= fromVersion);
  const changes = seen.flatMap((e) => e.changes.map((c) => ({ version: e.version, ...c })));
  assert.ok(changes.every((c) => c.key.startsWith('load/')));
  assert.ok(!changes.some((c) => c.key === 'load/before'), 'nothing from before V');

  // Every acknowledged write is there at its version with its value; everything there was written.
  const byValue = new Map(attempts.map((a) => [a.value, a]));
  const delivered = new Map(changes.filter((c) => c.type === 'put').map((c) => [(c as { value: string }).value, c.version]));
  const acked = attempts.filter((a) => a.version !== null);
  for (const a of acked) assert.equal(delivered.get(a.value), a.version, `${a.key}=${a.value} acknowledged at ${a.version}`);
  for (const c of changes) if (c.type === 'put' && c.key !== 'load/zz-end') assert.ok(byValue.has(String(c.value)), `delivered ${c.key}=${c.value}, which nobody wrote`);

  // The same history, replayed from V by a fresh watch on every node, is what this one saw.
  for (const n of cluster.nodes) {
    const fresh = await connect({ endpoints: [n.http], deadlineMs: 15_000 });
    clients.push(fresh);
    const replay: WatchEvent[] = [];
    const w = fresh.watch('load/', { fromVersion, prevValue: true });
    await collect(w, replay, () => w.lastVersion >= endVersion);
    w.close();
    assert.deepEqual(replay, seen, `${n.id}'s history from ${fromVersion} differs from what the watcher saw`);
  }
  t.diagnostic(`${acked.length} writes acknowledged, ${attempts.length - acked.length} unknown; ${seen.length} versions delivered over ${watch.connections} connections`);
  assert.ok(watch.connections >= 2, 'the watcher reconnected after its node was killed');
});

test('a watcher that stops reading is cancelled with slow_consumer; resuming from its last version loses nothing; a compacted fromVersion is 410', { timeout: 120_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--watch-buffer-bytes-max', '65536', '--history-retention-versions', '400'] });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  const leader = await cluster.waitForLeader();
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 15_000 });
  const client = kv;
  const from = (await client.put('slow/first', 'x')).version;
  const stalled = await request(`${cluster.node(leader).http}/watch?prefix=slow/&fromVersion=${from}`);
  assert.equal(stalled.statusCode, 200);
  // Far more than socket buffers hold while nobody reads: the server must give up on it.
  const big = 'v'.repeat(64 * 1024);
  const written = new Map<number, string>();
  for (let i = 0; i < 300; i++) {
    const key = `slow/k${i}`;
    written.set((await client.put(key, big + i)).version, key);
  }
  let text = '';
  for await (const chunk of stalled.body) text += chunk.toString();
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const end = lines.at(-1);
  assert.equal(end?.['error'], 'slow_consumer', JSON.stringify(end).slice(0, 200));
  const lastVersion = end?.['lastVersion'] as number;
  const got = lines.slice(0, -1).map((l) => l['version'] as number);
  assert.equal(got.at(-1), lastVersion, 'lastVersion is the last version it was sent');
  // Resume from the version after it: everything else comes, nothing twice.
  const resumed = client.watch('slow/', { fromVersion: lastVersion + 1 });
  const rest: WatchEvent[] = [];
  const lastWritten = Math.max(...written.keys());
  await collect(resumed, rest, () => resumed.lastVersion >= lastWritten);
  resumed.close();
  assert.deepEqual([...got, ...rest.map((e) => e.version)], [from, ...written.keys()]);

  // Past the retention the leader compacts: a watch from before it ends at once with compacted.
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 75; i++) await client.put(`fill/${w}`, String(i));
  }));
  const compacted = await waitFor('a compaction', 30_000, async () => {
    const stale = await request(`${cluster.node(leader).http}/watch?fromVersion=1`, { signal: AbortSignal.timeout(1_000) }).catch(() => null);
    const staleText = stale === null ? '' : await stale.body.text().catch(() => '');
    const last = staleText.trim().split('\n').at(-1) ?? '';
    return last.includes('compacted') ? (JSON.parse(last) as Record<string, unknown>) : null;
  }, 200);
  assert.equal(compacted['error'], 'compacted');
  assert.ok((compacted['oldestVersion'] as number) > 1);
  const status = await http(`${cluster.node(leader).http}/status`);
  assert.ok(status.status === 200);
});
