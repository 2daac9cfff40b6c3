/**
 * A full disk is an alarm, not an outage: with the data disk below --free-bytes-min the
 * leader refuses puts with 507 no_space while reads and deletes keep working, and /status
 * and the metrics show the alarm. (Here the floor is set above any disk's size, so every
 * node is "full" at once; a node back above its floor clears the alarm by itself.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { QuorumKvError, connect } from '../client/index.js';
import { TestCluster, http, waitFor } from './harness.js';

test('below the free-space floor the leader refuses puts with 507 no_space; reads and deletes go on; the alarm shows', { timeout: 90_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    let leader = await cluster.waitForLeader();
    assert.equal((await http(`${cluster.node(leader).http}/kv/keep`, 'PUT', { value: 'v' })).status, 200);
    assert.equal((await http(`${cluster.node(leader).http}/kv/drop`, 'PUT', { value: 'v' })).status, 200);
    for (const id of ['n1', 'n2', 'n3']) {
      await cluster.stop(id);
      await cluster.restart(id, ['--free-bytes-min', String(2 ** 52)]);
    }
    leader = await cluster.waitForLeader();
    const url = cluster.node(leader).http;
    const refused = await http(`${url}/kv/new`, 'PUT', { value: 'x' });
    assert.equal(refused.status, 507, JSON.stringify(refused.body));
    assert.equal(refused.body['error'], 'no_space');
    assert.match(String(refused.body['message']), /below --free-bytes-min/);
    assert.equal((await http(`${url}/kv/keep`)).status, 200, 'reads go on');
    assert.equal((await http(`${url}/kv/drop`, 'DELETE')).status, 200, 'deletes go on');
    assert.equal((await http(`${url}/kv/drop`)).status, 404);
    assert.match(String((await cluster.status(leader))['spaceAlarm']), /below --free-bytes-min/);
    const metrics = await (await request(`${url}/metrics`)).body.text();
    assert.match(metrics, /^qkv_space_alarm 1$/m);

    // Back above the floor (a restart with the default floor here), writes go through again.
    for (const id of ['n1', 'n2', 'n3']) {
      await cluster.stop(id);
      await cluster.restart(id);
    }
    leader = await cluster.waitForLeader();
    assert.equal((await http(`${cluster.node(leader).http}/kv/new`, 'PUT', { value: 'x' })).status, 200);
    assert.equal((await cluster.status(leader))['spaceAlarm'], undefined);
  } finally {
    await cluster.destroy();
  }
});

test('--quota-bytes: filling the stores turns puts into no_space on a cluster that stays up; deletes and compaction bring writes back by themselves, nothing acknowledged lost', { timeout: 120_000 }, async () => {
  // Pages in use, not the file: about 3 MB holds a hundred or so 20 KB values with their history.
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--quota-bytes', '3000000', '--log-entries-max', '10'] });
  const kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 10_000 });
  try {
    await cluster.waitForLeader();
    const value = 'x'.repeat(20_000);
    const acked: string[] = [];
    let refusal: unknown = null;
    for (let i = 0; i < 1_000 && refusal === null; i++) {
      try {
        await kv.put(`fill/${String(i).padStart(4, '0')}`, value);
        acked.push(`fill/${String(i).padStart(4, '0')}`);
      } catch (error) {
        refusal = error;
      }
    }
    assert.ok(refusal instanceof QuorumKvError && refusal.code === 'no_space', `the quota stops puts: ${String(refusal)}`);
    assert.ok(acked.length > 20, `some writes fit first (${acked.length})`);
    // Every node is up and serves reads, and says why puts are refused.
    for (const n of cluster.nodes) {
      assert.equal(n.proc?.exitCode, null, `${n.id} is up`);
      assert.equal((await http(`${n.http}/kv/${encodeURIComponent(acked[0] as string)}?consistency=local`)).status, 200, `${n.id} serves reads`);
    }
    const leader = await cluster.waitForLeader();
    assert.match(String((await cluster.status(leader))['spaceAlarm']), /above --quota-bytes 3000000/);
    const metrics = String((await http(`${cluster.node(leader).http}/metrics`)).body['raw']);
    assert.match(metrics, /^qkv_space_alarm 1$/m);
    assert.ok(Number(/^qkv_store_used_bytes (\d+)$/m.exec(metrics)?.[1]) > 3_000_000, 'the metrics show the pages in use above the quota');

    // Space comes back: half the keys go, then their history; puts resume without a restart.
    const dropped = acked.filter((_, i) => i % 2 === 0);
    for (const key of dropped) await kv.delete(key);
    const compact = await http(`${cluster.node(leader).http}/admin/compact`, 'POST', {});
    assert.equal(compact.status, 200, JSON.stringify(compact.body));
    await waitFor('puts to be accepted again', 20_000, async () => {
      try {
        return (await kv.put('after/quota', 'ok')).version > 0 ? true : null;
      } catch {
        return null;
      }
    });
    for (const key of acked) {
      const got = await kv.get(key);
      assert.equal(got?.value, dropped.includes(key) ? undefined : value, `${key} is as acknowledged`);
    }
  } finally {
    await kv.close();
    await cluster.destroy();
  }
});
