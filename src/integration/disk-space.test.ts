/**
 * A full disk is an alarm, not an outage: with the data disk below --free-bytes-min the
 * leader refuses puts with 507 no_space while reads and deletes keep working, and /status
 * and the metrics show the alarm. (Here the floor is set above any disk's size, so every
 * node is "full" at once; a node back above its floor clears the alarm by itself.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { TestCluster, http } from './harness.js';

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
