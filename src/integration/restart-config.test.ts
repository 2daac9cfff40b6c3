/**
 * A restarted node takes its members and replication mode from its own data directory, not
 * from the command line: flags that disagree are ignored, with one warning line that says
 * what was kept. (Before the bootstrap configuration was stored, such flags silently applied
 * until the first compaction, and then silently stopped applying.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, http, waitFor } from './harness.js';

test('a node restarted with a different --write-quorum and --topology keeps its log configuration and says so once', { timeout: 90_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    assert.equal((await http(`${cluster.node(leader).http}/kv/a`, 'PUT', { value: '1' })).status, 200);
    const follower = cluster.nodes.find((n) => n.id !== leader)!.id;
    await cluster.stop(follower);
    await cluster.restart(follower, ['--write-quorum', 'all', '--topology', 'chain']);

    const mode = (await cluster.status(follower))['mode'] as Record<string, unknown>;
    assert.equal(mode['writeQuorum'], 'majority', 'the data directory, not the flag, sets the write quorum');
    assert.equal(mode['topology'], 'star', 'the data directory, not the flag, sets the topology');
    // The line is written before the node serves, but it reaches us through a pipe, which may
    // be read after the HTTP answer above.
    const warningsNow = (): string[] => cluster.node(follower).output.split('\n').filter((line) => line.includes('ignored --write-quorum'));
    await waitFor('the warning line', 5_000, () => (warningsNow().length > 0 ? true : null)).catch(() => undefined);
    const warnings = warningsNow();
    assert.equal(warnings.length, 1, `one warning line:\n${cluster.node(follower).output}`);
    assert.match(warnings[0]!, /--write-quorum all \(kept majority\)/);
    assert.match(warnings[0]!, /--topology chain \(kept star\)/);

    // The cluster still writes under its real mode (majority with one node down would too;
    // "all" would not once this node is stopped again).
    await cluster.stop(follower);
    assert.equal((await http(`${cluster.node(leader).http}/kv/b`, 'PUT', { value: '2' })).status, 200);
  } finally {
    await cluster.destroy();
  }
});

test('a first start with the same flags prints no such warning', { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--write-quorum', '1'] });
  try {
    await cluster.waitForLeader();
    const node = cluster.nodes[0]!;
    await cluster.stop(node.id);
    await cluster.restart(node.id);
    const mode = (await cluster.status(node.id))['mode'] as Record<string, unknown>;
    assert.equal(mode['writeQuorum'], 1);
    assert.ok(!node.output.includes('ignored'), node.output);
  } finally {
    await cluster.destroy();
  }
});
