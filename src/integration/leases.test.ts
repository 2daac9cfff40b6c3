/**
 * Leases on real processes: keys attached to a lease stay while the client keeps it alive,
 * vanish together on every node once it stops (between the TTL and the TTL plus one
 * election timeout after the last keep-alive; a watch sees them go in one version), and a leader killed mid-lease never makes
 * them vanish early (the new leader restarts the full TTL).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError, NotFoundError, connect } from '../client/index.js';
import type { KvClient } from '../client/index.js';
import { TestCluster, http, waitFor } from './harness.js';

const ttlMs = 2_000;
/** `--election-timeout-ms` of the test nodes (the default): the upper bound's slack. */
const electionTimeoutMs = 1_000;
const keys = ['svc/web/a', 'svc/web/b', 'svc/web/c'];

/** How many of `keys` node `url` holds in its own state: one `local` list, so one state (no leader involved). */
async function keysHeld(url: string, prefix: string): Promise<number> {
  const r = await http(`${url}/kv?prefix=${encodeURIComponent(`${prefix}svc/web/`)}&consistency=local`);
  if (r.status !== 200) throw new Error(`list on ${url}: ${r.status} ${JSON.stringify(r.body)}`);
  const held = new Set((r.body['items'] as { key: string }[]).map((i) => i.key.slice(prefix.length)));
  return keys.filter((k) => held.has(k)).length;
}

/**
 * Polls every listed node until each holds none of the keys; returns when each one's keys
 * went (performance.now() ms). A node seen holding some but not all of them fails the test:
 * a lease's keys go in one log entry.
 */
async function watchVanish(urls: readonly string[], prefix: string, timeoutMs: number): Promise<number[]> {
  const gone = urls.map(() => Number.NaN);
  const deadline = performance.now() + timeoutMs;
  while (gone.some(Number.isNaN)) {
    if (performance.now() > deadline) throw new Error(`keys still held after ${timeoutMs} ms: ${JSON.stringify(gone)}`);
    await Promise.all(
      urls.map(async (url, i) => {
        if (!Number.isNaN(gone[i])) return;
        const held = await keysHeld(url, prefix);
        assert.ok(held === 0 || held === keys.length, `${url} held ${held} of the lease's ${keys.length} keys: they must go together`);
        if (held === 0) gone[i] = performance.now();
      }),
    );
    await new Promise((r) => setTimeout(r, 20));
  }
  return gone;
}

test('a lease kept alive keeps its keys; once released they vanish together on every node, between the TTL and TTL + one election timeout', { timeout: 90_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  await cluster.waitForLeader();
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 5_000 });
  const lease = await kv.lease(ttlMs);
  for (const key of keys) assert.equal((await kv.put(`a/${key}`, 'up', { lease })).key, `a/${key}`);
  const info = await lease.info();
  assert.deepEqual(info?.keys.slice().sort(), keys.map((k) => `a/${k}`));
  assert.ok(info !== undefined && info.remainingMs <= ttlMs && info.remainingMs > 0, `remainingMs ${info?.remainingMs}`);

  // The puts were acknowledged by a majority; a follower's local read may trail them a moment.
  await waitFor('every node to hold the keys', 5_000, async () => ((await Promise.all(cluster.nodes.map((n) => keysHeld(n.http, 'a/')))).every((held) => held === keys.length) ? true : null));
  // Kept alive by the client for 10 s (five TTLs): the keys stay on every node.
  const keptUntil = performance.now() + 10_000;
  while (performance.now() < keptUntil) {
    for (const n of cluster.nodes) assert.equal(await keysHeld(n.http, 'a/'), keys.length, `${n.id} lost keys while the lease was kept alive`);
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(lease.alive);

  // The leader restarts the TTL when a keep-alive arrives, never before it was sent: the
  // keys may not go before the last confirmed keep-alive's send time plus the TTL.
  const lastConfirmedSentAt = lease.safeUntilMs - ttlMs;
  // A watch on a follower sees the expiry: the three deletions, in one version.
  const follower = cluster.nodes.find((n) => n.id !== kv?.leaderId) ?? cluster.nodes[0];
  assert.ok(follower);
  const watcher = await connect({ endpoints: [follower.http] });
  const watch = watcher.watch('a/svc/');
  const deletions = (async () => {
    for await (const event of watch) if (event.changes.some((c) => c.type === 'delete')) return event;
    return undefined;
  })();
  const releasedAt = performance.now();
  lease.release();
  assert.equal((await lease.lost).reason, 'released');
  const gone = await watchVanish(cluster.nodes.map((n) => n.http), 'a/', ttlMs + electionTimeoutMs + 5_000);
  for (const [i, at] of gone.entries()) {
    const id = cluster.nodes[i]?.id ?? '?';
    assert.ok(at - lastConfirmedSentAt >= ttlMs, `${id}: keys gone ${(at - lastConfirmedSentAt).toFixed(0)} ms after the last confirmed keep-alive was sent, before the TTL`);
    assert.ok(at - releasedAt <= ttlMs + electionTimeoutMs, `${id}: keys gone only ${(at - releasedAt).toFixed(0)} ms after the release`);
  }
  const seen = await deletions;
  watch.close();
  await watcher.close();
  assert.deepEqual(seen?.changes.map((c) => `${c.type} ${c.key}`).sort(), keys.map((k) => `delete a/${k}`), 'the watch saw the three keys deleted at one version');
  assert.equal(await lease.info(), undefined, 'the expired lease is gone');
  const dumps = await Promise.all(cluster.nodes.map((n) => cluster.dumpStore(n.id)));
  assert.ok(dumps.every((d) => d === dumps[0]), 'every node holds the same store after the expiry');
});

test('a leader killed 1.5 s into a 2 s lease does not make its keys vanish early: the new leader restarts the full TTL', { timeout: 90_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  const leader = await cluster.waitForLeader();
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 5_000 });
  const lease = await kv.lease(ttlMs, { keepAlive: false });
  for (const key of keys) await kv.put(`b/${key}`, 'up', { lease: lease.id });
  const keptAliveAt = performance.now();
  await lease.keepAlive(1_000);
  await new Promise((r) => setTimeout(r, Math.max(0, keptAliveAt + 1_500 - performance.now())));
  await cluster.kill9(leader);
  const survivors = cluster.nodes.filter((n) => n.id !== leader);
  // Upper bound: a new leader within a few election timeouts, then the full TTL again.
  const gone = await watchVanish(survivors.map((n) => n.http), 'b/', 20_000);
  for (const [i, at] of gone.entries()) {
    assert.ok(at - keptAliveAt >= ttlMs, `${survivors[i]?.id}: keys gone ${(at - keptAliveAt).toFixed(0)} ms after the last keep-alive was sent: before the TTL`);
  }
  // They went because the lease ended, under the new leader, through the log.
  await assert.rejects(lease.keepAlive(3_000), (e: unknown) => e instanceof NotFoundError && e.code === 'lease_not_found');
  assert.equal((await lease.lost).reason, 'expired');
});

test('lease refusals: a TTL out of range, a put or keep-alive naming a lease that does not exist', { timeout: 60_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  let kv: KvClient | null = null;
  t.after(async () => {
    await kv?.close();
    await cluster.destroy();
  });
  await cluster.waitForLeader();
  kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 5_000 });
  const client = kv;
  await assert.rejects(client.lease(0), InvalidArgumentError);
  const follower = cluster.nodes.find((n) => n.id !== client.leaderId) ?? cluster.nodes[0];
  assert.ok(follower);
  for (const body of [{ ttlMs: 0 }, { ttlMs: 1.5 }, { ttlMs: 'x' }, {}, { ttlMs: 1000, extra: 1 }]) {
    const r = await http(`${follower.http}/leases`, 'POST', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
  }
  const missing = 987_654;
  await assert.rejects(client.put('c/x', 'v', { lease: missing }), (e: unknown) => e instanceof NotFoundError && e.code === 'lease_not_found');
  assert.equal(await client.get('c/x'), undefined, 'a refused put writes nothing');
  const r = await http(`${follower.http}/leases/${missing}/keepalive`, 'POST');
  assert.equal(r.status, 404);
  assert.equal(r.body['error'], 'lease_not_found');
  // Revoking through a follower works (forwarded) and deletes the keys at once.
  const lease = await client.lease(60_000);
  await client.put('c/y', 'v', { lease });
  const del = await http(`${follower.http}/leases/${lease.id}`, 'DELETE');
  assert.equal(del.status, 200, JSON.stringify(del.body));
  assert.deepEqual([del.body['found'], del.body['keysDeleted']], [true, 1]);
  assert.equal(await client.get('c/y'), undefined);
});
