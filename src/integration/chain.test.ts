/**
 * Chain replication on real processes (issue 4): a 5-node chain under write load loses
 * its middle, its tail or its head to kill -9; writes pause for at most the member
 * timeout plus an election, then continue; the node, restarted, rejoins at the tail and
 * ends up with the head's exact store.
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
