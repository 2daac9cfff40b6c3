/**
 * `quorumkv fault` against a real 3-node cluster started with --faults: partitions and
 * delays land in the nodes' fault rules and are lifted again, a paused node stops answering
 * while the others keep writing and answers again once resumed (its pid from the cluster
 * file, since a paused node cannot answer for itself), die and kill stop a node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeClusterFile } from '../cli/cluster-file.js';
import { TestCluster, http, runCli, waitFor } from './harness.js';

test('fault partition/heal/delay/pause/resume/die/kill act on the named node', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--faults'] });
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-fault-'));
  try {
    const leader = await cluster.waitForLeader();
    const nodes = await Promise.all(
      cluster.nodes.map(async (n) => ({ id: n.id, http: n.http, peer: `127.0.0.1:${n.peerPort}`, grpc: n.grpc, pid: (await cluster.status(n.id))['pid'] as number, dataDir: n.dataDir })),
    );
    await writeClusterFile(dir, { clusterId: 'fault-test', nodes });
    const fault = (...args: string[]) => runCli(['fault', ...args, '--cluster-file', path.join(dir, 'cluster.json')], 30_000);
    const rules = async (id: string) => (await http(`${cluster.node(id).http}/admin/faults`)).body;
    const [follower, other] = cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id) as [string, string];

    let r = await fault('partition', follower);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...(await rules(follower))['blockedTo'] as string[]].sort(), [leader, other].sort());
    assert.equal((await http(`${cluster.node(leader).http}/kv/p`, 'PUT', { value: 'with one follower cut off' })).status, 200);
    r = await fault('heal');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await rules(follower))['blockedTo'], []);

    r = await fault('delay', '5-10');
    assert.equal(r.code, 0, r.stderr);
    for (const n of cluster.nodes) assert.equal((await rules(n.id))['delayMsMax'], 10);
    await fault('delay', '0-0');

    r = await fault('pause', follower);
    assert.equal(r.code, 0, r.stderr);
    const paused = await http(`${cluster.node(follower).http}/health`).then(() => 'answered', () => 'silent');
    assert.equal(paused, 'silent', 'a paused node does not answer');
    assert.equal((await http(`${cluster.node(leader).http}/kv/q`, 'PUT', { value: 'while paused' })).status, 200);
    r = await fault('resume', follower);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(`${follower} answering again`, 10_000, async () => ((await http(`${cluster.node(follower).http}/health`)).status === 200 ? true : null));

    r = await fault('die', leader, '--clean');
    assert.equal(r.code, 0, r.stderr);
    await waitFor(`${leader} gone`, 10_000, async () => (await http(`${cluster.node(leader).http}/health`).then(() => null, () => true)));
    const next = await cluster.waitForLeader(15_000, [follower, other]);
    assert.notEqual(next, leader);

    r = await fault('kill', follower === next ? other : follower);
    assert.equal(r.code, 0, r.stderr);

    r = await fault('frobnicate');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown fault action "frobnicate"/);
  } finally {
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
