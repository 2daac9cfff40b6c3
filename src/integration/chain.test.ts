/**
 * Chain replication on real processes: a 5-node chain under write load loses
 * its middle, its tail or its head to kill -9; writes pause for at most the member
 * timeout plus an election, then continue; the node, restarted, rejoins at the tail and
 * ends up with the head's exact store. Reads at the tail are linearizable and served by
 * the tail itself (read index from the head); without a leader they fail retryably.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, http, waitFor } from './harness.js';

const memberTimeoutMs = 1500;

function chainOf(status: Record<string, unknown>): string[] {
  const leader = status['id'] as string;
  const inSync = (status['mode'] as { inSync: string[] }).inSync;
  return [leader, ...inSync.filter((m) => m !== leader)];
}

for (const position of ['middle', 'tail', 'head'] as const) {
  test(`chain of 5: kill -9 of the ${position} under load pauses writes briefly; restarted, it rejoins at the tail with the head's store`, { timeout: 180_000 }, async () => {
    const cluster = await TestCluster.start({ nodes: 5, flags: ['--topology', 'chain', '--member-timeout-ms', String(memberTimeoutMs)] });
    try {
      const leader = await cluster.waitForLeader(30_000);
      const chain = chainOf(await cluster.status(leader));
      const victim = position === 'head' ? chain[0] : position === 'tail' ? chain[chain.length - 1] : chain[2];
      assert.ok(victim !== undefined);
      let stop = false;
      let seq = 0;
      let lastOkAt = Date.now();
      let longestPauseMs = 0;
      const loops = Array.from({ length: 6 }, async () => {
        while (!stop && !cluster.destroyed) {
          const i = seq++;
          const target = cluster.nodes.filter((n) => n.proc !== null)[i % 4];
          try {
            const r = await http(`${target?.http}/kv/c${i}`, 'PUT', { value: `v${i}` });
            if (r.status === 200) {
              const now = Date.now();
              longestPauseMs = Math.max(longestPauseMs, now - lastOkAt);
              lastOkAt = now;
            }
          } catch {
            // not acknowledged
          }
        }
      });
      await new Promise((r) => setTimeout(r, 1000));
      const okBefore = seq;
      await cluster.kill9(victim);
      await waitFor('writes to continue after the kill', 30_000, () => (seq > okBefore + 200 && Date.now() - lastOkAt < 500 ? true : null));
      const survivors = cluster.nodes.filter((n) => n.id !== victim).map((n) => n.id);
      await waitFor(`${victim} to be spliced out of the chain`, 30_000, async () => {
        const l = await cluster.waitForLeader(30_000, survivors);
        return chainOf(await cluster.status(l)).includes(victim) ? null : true;
      });
      await cluster.restart(victim);
      const newLeader = await cluster.waitForLeader(30_000);
      await waitFor(`${victim} to rejoin the chain at the tail`, 30_000, async () => {
        const c = chainOf(await cluster.status(newLeader));
        return c[c.length - 1] === victim ? true : null;
      });
      stop = true;
      await Promise.all(loops);
      // Pause bound: member timeout + an election (randomised up to 2 s) + slack for this 2-core VM.
      assert.ok(longestPauseMs < memberTimeoutMs + 2000 + 3000, `writes paused ${longestPauseMs} ms`);
      const headStatus = await cluster.status(newLeader);
      await waitFor(`${victim} to apply everything`, 30_000, async () => ((((await cluster.status(victim))['appliedIndex'] as number) >= (headStatus['commitIndex'] as number)) ? true : null));
      await waitFor(`${victim}'s store to equal the head's`, 30_000, async () => ((await cluster.dumpStore(victim)) === (await cluster.dumpStore(newLeader)) ? true : null));
    } finally {
      await cluster.destroy();
    }
  });
}

const retryableReadErrors: ReadonlySet<string> = new Set(['not_leader', 'no_leader', 'timeout']);

test('chain of 5: the tail serves linearizable reads itself; with the leader stopped they fail retryably, never stale, until a new leader exists', { timeout: 120_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 5, flags: ['--topology', 'chain', '--member-timeout-ms', String(memberTimeoutMs)] });
  try {
    const head = await cluster.waitForLeader(30_000);
    const chain = chainOf(await cluster.status(head));
    const tail = chain[chain.length - 1];
    assert.ok(tail !== undefined && tail !== head, `chain ${chain.join(' -> ')}`);
    const headUrl = cluster.node(head).http;
    const tailUrl = cluster.node(tail).http;

    // Each write acknowledged at the head is then read at the tail with the default
    // consistency (linearizable), answered by the tail from its own state.
    let latest = '';
    for (let i = 1; i <= 20; i++) {
      latest = `v${i}`;
      const put = await http(`${headUrl}/kv/greeting`, 'PUT', { value: latest });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const read = await http(`${tailUrl}/kv/greeting`);
      assert.equal(read.status, 200, JSON.stringify(read.body));
      assert.deepEqual(read.body, { key: 'greeting', value: latest, version: put.body['version'] });
      assert.equal(read.headers['x-qkv-served-by'], tail);
    }
    const list = await http(`${tailUrl}/kv?prefix=greet`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body['items'], [{ key: 'greeting', value: latest, version: (list.body['items'] as { version: number }[])[0]?.version }]);
    assert.equal(list.headers['x-qkv-served-by'], tail);
    const metrics = await http(`${tailUrl}/metrics`);
    const served = /^qkv_linearizable_reads_total\{served_as="follower"\} (\d+)$/m.exec(String(metrics.body['raw']));
    assert.ok(served !== null && Number(served[1]) >= 21, `tail metrics: ${served?.[0] ?? 'no qkv_linearizable_reads_total{served_as="follower"}'}`);

    // Stop the leader. Until the others elect a new one, no node can confirm a read point:
    // the tail must answer a retryable 503 (it keeps its state, which it may not serve).
    const termBefore = (await cluster.status(tail))['term'] as number;
    await cluster.stop(head);
    const survivors = cluster.nodes.filter((n) => n.id !== head).map((n) => n.id);
    const electionState = { settled: false };
    const election = cluster.waitForLeader(30_000, survivors).finally(() => {
      electionState.settled = true;
    });
    const failures: string[] = [];
    let servedDuringElection = 0;
    while (!electionState.settled) {
      const read = await http(`${tailUrl}/kv/greeting`, 'GET', undefined, { 'x-qkv-timeout-ms': '300' });
      if (read.status === 200) {
        // Only possible once a new leader confirmed the read point: never an older value.
        assert.equal(read.body['value'], latest, 'a read at the tail returned stale data');
        assert.equal(read.headers['x-qkv-served-by'], tail);
        servedDuringElection++;
        continue;
      }
      assert.equal(read.status, 503, JSON.stringify(read.body));
      assert.ok(retryableReadErrors.has(String(read.body['error'])), `not a retryable read error: ${JSON.stringify(read.body)}`);
      assert.ok(read.headers['retry-after'] !== undefined, 'a 503 carries Retry-After');
      failures.push(String(read.body['error']));
    }
    const elected = await election;
    t.diagnostic(`while electing ${elected}: ${failures.length} tail reads refused (${[...new Set(failures)].join(', ')}), ${servedDuringElection} served`);
    assert.ok(failures.length >= 1, `the tail answered every read while the leader was gone (${servedDuringElection} served)`);
    assert.ok(((await cluster.status(elected))['term'] as number) > termBefore);

    // With the new leader, the tail serves linearizable reads again, including its writes.
    const put = await waitFor('a write at the new leader', 30_000, async () => {
      const r = await http(`${cluster.node(elected).http}/kv/greeting`, 'PUT', { value: 'after failover' });
      return r.status === 200 ? r : null;
    });
    const read = await waitFor('a linearizable read at the tail', 30_000, async () => {
      const r = await http(`${tailUrl}/kv/greeting`);
      return r.status === 200 ? r : null;
    });
    assert.deepEqual(read.body, { key: 'greeting', value: 'after failover', version: put.body['version'] });
    assert.equal(read.headers['x-qkv-served-by'], tail);
  } finally {
    await cluster.destroy();
  }
});
