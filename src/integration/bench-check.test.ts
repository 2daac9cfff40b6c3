/**
 * `quorumkv check`: exit status 0 on a healthy cluster, non-zero
 * while a node's store has diverged from the leader's (an asynchronous leader that
 * acknowledged a write alone, then was cut off while another node took over), and 0 again
 * once the partition heals — with the rolled-back write counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, http, runCli, waitFor } from './harness.js';


test('check exits 0 on a healthy cluster, 1 while a weak-quorum failover left a node diverged, and 0 after it heals with the rollback counted', { timeout: 150_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--write-quorum', '0', '--faults'] });
  try {
    const oldLeader = await cluster.waitForLeader(30_000);
    for (let i = 0; i < 20; i++) assert.equal((await http(`${cluster.node(oldLeader).http}/kv/k${i}`, 'PUT', { value: `v${i}` })).status, 200);
    const endpoints = cluster.nodes.map((n) => n.http).join(',');

    const healthy = await runCli(['check', '--endpoints', endpoints, '--wait', '10s'], 60_000);
    assert.equal(healthy.code, 0, `healthy cluster:\n${healthy.stdout}\n${healthy.stderr}`);
    assert.match(healthy.stdout, /identical to the leader's/);

    // Cut the leader off, let it acknowledge a write alone (W=0), let the others elect.
    const others = cluster.nodes.filter((n) => n.id !== oldLeader).map((n) => n.id);
    await cluster.setFaults(oldLeader, { blockedTo: others, blockedFrom: others });
    for (const id of others) await cluster.setFaults(id, { blockedTo: [oldLeader], blockedFrom: [oldLeader] });
    const doomed = await http(`${cluster.node(oldLeader).http}/kv/doomed`, 'PUT', { value: 'acked-alone' });
    assert.equal(doomed.status, 200, 'W=0 acknowledges without any follower');
    const newLeader = await cluster.waitForLeader(20_000, others);
    assert.equal((await http(`${cluster.node(newLeader).http}/kv/doomed`, 'PUT', { value: 'winner' })).status, 200);

    const diverged = await runCli(['check', '--endpoints', endpoints, '--wait', '2s'], 60_000);
    assert.equal(diverged.code, 1, `diverged cluster:\n${diverged.stdout}\n${diverged.stderr}`);
    assert.match(diverged.stdout, new RegExp(`${oldLeader} differs from ${newLeader}`));
    assert.match(diverged.stdout, /doomed: leader "winner"@\d+, n\d "acked-alone"@\d+/);

    // Heal: the old leader's extra write is rolled back (and reported); stores converge.
    for (const n of cluster.nodes) await cluster.setFaults(n.id, { blockedTo: [], blockedFrom: [] });
    await waitFor('the old leader to report its rollback', 30_000, async () => (((await cluster.status(oldLeader))['rollbackCount'] as number) >= 1 ? true : null));
    const healed = await waitFor('check to pass after healing', 30_000, async () => {
      const r = await runCli(['check', '--endpoints', endpoints, '--wait', '5s'], 60_000);
      return r.code === 0 ? r : null;
    }, 500);
    assert.match(healed.stdout, /rolled-back write/);
    const json = await runCli(['check', '--endpoints', endpoints, '--json'], 60_000);
    assert.equal(json.code, 0);
    const report = JSON.parse(json.stdout) as { identical: boolean; leader: string; nodes: { id: string; rollbackCount: number; comparison: { differing: number } }[] };
    assert.equal(report.identical, true);
    assert.ok(report.nodes.every((n) => n.comparison.differing === 0));
    assert.ok((report.nodes.find((n) => n.id === oldLeader)?.rollbackCount ?? 0) >= 1);
  } finally {
    await cluster.destroy();
  }
});

test('check exits 2 with a clear message when no node answers', { timeout: 30_000 }, async () => {
  const r = await runCli(['check', '--endpoints', 'http://127.0.0.1:1', '--wait', '0.3s'], 20_000);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /no node is leader/);
});
