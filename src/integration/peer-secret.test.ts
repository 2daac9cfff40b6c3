/**
 * The shared peer secret on real nodes: a cluster whose nodes share it elects and
 * replicates; a node started with another secret never takes part (no entries reach it,
 * the others keep their leader), and the secret shows in no log line or answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TestCluster, http, waitFor } from './harness.js';

const secret = 'a-shared-secret-of-the-cluster-0123456789';

test('a node with the wrong peer secret never joins; the secret is in no log line or answer', { timeout: 90_000 }, async () => {
  const dir = path.join(process.env['TMPDIR'] ?? '/tmp', `qkv-secret-${process.pid}`);
  const right = `${dir}-right`;
  const wrong = `${dir}-wrong`;
  await writeFile(right, `${secret}\n`);
  await writeFile(wrong, 'another-secret-entirely-987654321\n');
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--peer-secret-file', right, '--log-level', 'info'] });
  try {
    const leader = await cluster.waitForLeader();
    const intruder = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    const other = ['n1', 'n2', 'n3'].find((id) => id !== leader && id !== intruder) as string;
    await cluster.stop(intruder);
    await cluster.restart(intruder, ['--peer-secret-file', wrong]);
    const before = (await cluster.status(intruder))['lastIndex'] as number;
    for (let i = 0; i < 20; i++) assert.equal((await http(`${cluster.node(leader).http}/kv/s${i}`, 'PUT', { value: `v${i}` })).status, 200);
    await waitFor(`${other} to hold the writes`, 10_000, async () => ((await cluster.status(other))['appliedIndex'] as number) >= before + 20 ? true : null);
    // Give the intruder every chance: several heartbeat intervals and reconnect attempts.
    await new Promise((r) => setTimeout(r, 2_000));
    const s = await cluster.status(intruder);
    assert.equal(s['lastIndex'], before, 'no entry reached the node with the wrong secret');
    assert.equal(await cluster.waitForLeader(10_000, [leader, other]), leader, 'the others keep their leader');
    assert.match(cluster.node(leader).output + cluster.node(other).output, /did not prove the peer secret/);
    for (const n of cluster.nodes) assert.ok(!n.output.includes(secret) && !n.output.includes('another-secret'), `${n.id} logged a secret`);
    for (const route of ['/status', '/members', '/metrics']) {
      const res = await http(`${cluster.node(leader).http}${route}`);
      assert.ok(!JSON.stringify(res.body).includes(secret), `${route} shows the secret`);
    }
  } finally {
    await cluster.destroy();
    await Promise.all([rm(right, { force: true }), rm(wrong, { force: true })]);
  }
});
