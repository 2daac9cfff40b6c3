/**
 * Replication modes on real processes: write quorums W and `all`, the in-sync
 * set, rollback reports after a weak-quorum failover, and session reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { TestCluster, http, runCli, waitFor } from './harness.js';

// Long election timeouts keep a leader that lost its followers in office long enough to
// observe quorum timeouts (check-quorum would otherwise depose it first).
const slowElections = ['--election-timeout-ms', '6000', '--heartbeat-interval-ms', '200', '--replication-timeout-ms', '1500', '--request-timeout-ms', '1500', '--leader-wait-ms', '8000'];

async function put(base: string, key: string, value: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return http(`${base}/kv/${encodeURIComponent(key)}`, 'PUT', { value });
}

for (const w of ['0', '1', '2', 'all']) {
  test(`write quorum ${w} on 5 nodes: a write succeeds only while the leader plus ${w === 'all' ? 'every' : w} follower(s) can store it`, { timeout: 120_000 }, async () => {
    const cluster = await TestCluster.start({ nodes: 5, flags: ['--write-quorum', w, '--member-timeout-ms', '60000', ...slowElections] });
    try {
      const leader = await cluster.waitForLeader(30_000);
      const base = cluster.node(leader).http;
      assert.equal((await put(base, 'warmup', 'x')).status, 200);
      const followers = cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id);
      const needed = w === 'all' ? followers.length : Number(w);
      // Leave needed-1 followers running (none for W=0): one too few.
      const stopCount = w === '0' ? followers.length : followers.length - (needed - 1);
      const stopped = followers.slice(0, stopCount);
      for (const id of stopped) await cluster.stop(id);
      const short = await put(base, 'short', 'x');
      if (w === '0') {
        assert.equal(short.status, 200, `W=0 acknowledges with every follower down: ${JSON.stringify(short.body)}`);
        return;
      }
      assert.equal(short.status, 503, `one follower too few: ${JSON.stringify(short.body)}`);
      assert.equal(short.body['error'], 'quorum_timeout');
      assert.ok(typeof short.body['acks'] === 'number' && short.body['acks'] < needed + 1, `acks ${String(short.body['acks'])} < ${needed + 1}`);
      // Bring back exactly one: now the leader plus W followers are alive.
      await cluster.restart(stopped[0] as string);
      const ok = await waitFor('a write to succeed with W followers alive', 15_000, async () => {
        const r = await put(base, 'enough', 'y');
        return r.status === 200 ? r : null;
      });
      assert.equal(ok.status, 200);
    } finally {
      await cluster.destroy();
    }
  });
}

test('all on 3 nodes: writes continue after a killed follower leaves the in-sync set, and it rejoins after restart', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--write-quorum', 'all', '--member-timeout-ms', '1000'] });
  try {
    const leader = await cluster.waitForLeader();
    const base = cluster.node(leader).http;
    assert.equal((await put(base, 'before', '1')).status, 200);
    const victim = cluster.nodes.find((n) => n.id !== leader)?.id as string;
    await cluster.kill9(victim);
    const during = await waitFor('writes to continue without the dead follower', 15_000, async () => {
      const r = await put(base, 'during', '2');
      return r.status === 200 ? r : null;
    });
    assert.equal(during.status, 200);
    const shrunk = await cluster.status(leader);
    assert.deepEqual((shrunk['mode'] as { inSync: string[] }).inSync.includes(victim), false, 'the dead follower left the in-sync set');
    await cluster.restart(victim);
    await waitFor(`${victim} to rejoin the in-sync set`, 20_000, async () => ((((await cluster.status(leader))['mode'] as { inSync: string[] }).inSync.includes(victim)) ? true : null));
    const after = await put(base, 'after', '3');
    assert.equal(after.status, 200);
    const victimStatus = await cluster.status(victim);
    assert.ok((victimStatus['lastIndex'] as number) >= (after.body['version'] as number), 'a synchronous write is in every in-sync replica\'s log when acknowledged');
    const read = await http(`${cluster.node(victim).http}/kv/after?minVersion=${String(after.body['version'])}`);
    assert.equal(read.body['value'], '3');
  } finally {
    await cluster.destroy();
  }
});

interface Acked {
  key: string;
  value: string;
  version: number;
}

async function failoverUnderLoad(flags: string[]): Promise<{ cluster: TestCluster; acked: Acked[] }> {
  const cluster = await TestCluster.start({ nodes: 5, flags });
  try {
    return { cluster, acked: await loadKillRestart(cluster) };
  } catch (e) {
    await cluster.destroy();
    throw e;
  }
}

async function loadKillRestart(cluster: TestCluster): Promise<Acked[]> {
  const oldLeader = await cluster.waitForLeader(30_000);
  const acked: Acked[] = [];
  let stop = false;
  let seq = 0;
  const loops = Array.from({ length: 10 }, async () => {
    while (!stop && !cluster.destroyed) {
      const i = seq++;
      const target = cluster.nodes.filter((n) => n.proc !== null)[i % 4];
      try {
        const r = await put(target?.http ?? '', `k${i}`, `v${i}`);
        if (r.status === 200) acked.push({ key: `k${i}`, value: `v${i}`, version: r.body['version'] as number });
      } catch {
        // not acknowledged
      }
    }
  });
  await waitFor('acknowledged writes before the kill', 20_000, () => (acked.length >= 60 ? true : null));
  await cluster.kill9(oldLeader);
  await cluster.waitForLeader(60_000, cluster.nodes.filter((n) => n.id !== oldLeader).map((n) => n.id));
  const before = acked.length;
  await waitFor('writes under the new leader', 30_000, () => (acked.length >= before + 30 ? true : null));
  stop = true;
  await Promise.all(loops);
  await cluster.restart(oldLeader);
  await cluster.waitForLeader(60_000);
  return acked;
}

async function converged(cluster: TestCluster): Promise<string> {
  return waitFor('every node to hold an identical store', 60_000, async () => {
    const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.id)));
    const applied = new Set(statuses.map((s) => s['appliedIndex']));
    if (applied.size !== 1) return null;
    const dumps = await Promise.all(cluster.nodes.map((n) => cluster.dumpStore(n.id)));
    return dumps.every((d) => d === dumps[0]) ? (dumps[0] as string) : null;
  }, 250);
}

async function rollbackRecords(cluster: TestCluster): Promise<{ key: string; version: number }[]> {
  const out: { key: string; version: number; term: number; node: string }[] = [];
  for (const n of cluster.nodes) {
    const text = await readFile(path.join(n.dataDir, 'rollback.jsonl'), 'utf8').catch(() => '');
    for (const line of text.split('\n').filter(Boolean)) out.push({ ...(JSON.parse(line) as { key: string; version: number; term: number }), node: n.id });
  }
  // `quorumkv rollbacks` gathers the running nodes' records through GET /rollbacks: the same
  // writes, each once, naming every node whose file has it.
  const running = cluster.nodes.filter((n) => n.proc !== null);
  const cli = await runCli(['rollbacks', '--json', '--endpoints', running.map((n) => n.http).join(',')], 30_000);
  assert.equal(cli.code, 0, cli.stderr);
  const gathered = cli.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { version: number; term: number; nodes: string[] });
  const expected = new Map<string, string[]>();
  for (const r of out.filter((r) => running.some((n) => n.id === r.node))) {
    const id = `${r.version}:${r.term}`;
    expected.set(id, [...(expected.get(id) ?? []), r.node]);
  }
  assert.deepEqual(
    new Map(gathered.map((g) => [`${g.version}:${g.term}`, [...g.nodes].sort()])),
    new Map([...expected].map(([id, nodes]) => [id, [...new Set(nodes)].sort()])),
    'quorumkv rollbacks shows every recorded write once, with the nodes that recorded it',
  );
  return out;
}

test('W=1 of 5 with 0–1000 ms delay: every acknowledged write lost in a leader failover is in a rollback report', { timeout: 240_000 }, async (t) => {
  // Replication delays up to 1 s need elections slower than that, or followers would
  // keep timing out on late heartbeats.
  const { cluster, acked } = await failoverUnderLoad(['--write-quorum', '1', '--min-delay-ms', '0', '--max-delay-ms', '1000', '--election-timeout-ms', '3000', '--heartbeat-interval-ms', '200', '--request-timeout-ms', '8000', '--replication-timeout-ms', '8000']);
  try {
    const store = new Map((JSON.parse(await converged(cluster)) as { key: string; version: number }[]).map((i) => [i.key, i.version]));
    const reported = new Set((await rollbackRecords(cluster)).map((r) => `${r.key}@${r.version}`));
    const lost = acked.filter((a) => store.get(a.key) !== a.version);
    t.diagnostic(`${acked.length} acknowledged, ${lost.length} lost in the failover, ${reported.size} rollback records`);
    for (const a of lost) assert.ok(reported.has(`${a.key}@${a.version}`), `acknowledged write ${a.key}@${a.version} lost without a rollback record`);
    const statusCounts = await Promise.all(cluster.nodes.map(async (n) => (await cluster.status(n.id))['rollbackCount'] as number));
    assert.ok(statusCounts.reduce((a, b) => a + b, 0) >= lost.length, '/status counts the recorded rollbacks');
  } finally {
    await cluster.destroy();
  }
});

test('majority mode under the same failover never rolls back an acknowledged write', { timeout: 240_000 }, async () => {
  const { cluster, acked } = await failoverUnderLoad(['--min-delay-ms', '0', '--max-delay-ms', '200']);
  try {
    const store = new Map((JSON.parse(await converged(cluster)) as { key: string; version: number }[]).map((i) => [i.key, i.version]));
    for (const a of acked) assert.equal(store.get(a.key), a.version, `${a.key} kept its acknowledged version`);
    assert.deepEqual(await rollbackRecords(cluster), [], 'no rollback record in majority mode');
  } finally {
    await cluster.destroy();
  }
});

test('a minVersion read on a lagging follower returns the written value, never an older one', { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--faults'] });
  try {
    const leader = await cluster.waitForLeader();
    const lagging = cluster.nodes.find((n) => n.id !== leader)?.id as string;
    await put(cluster.node(leader).http, 'session', 'old');
    await cluster.setFaults(leader, { delayMsMin: 400, delayMsMax: 600 });
    for (let i = 0; i < 5; i++) {
      const w = await put(cluster.node(leader).http, 'session', `new${i}`);
      assert.equal(w.status, 200);
      const version = w.body['version'] as number;
      const r = await http(`${cluster.node(lagging).http}/kv/session?minVersion=${version}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok((r.body['version'] as number) >= version, `read version ${String(r.body['version'])} >= ${version}`);
      assert.equal(r.body['value'], `new${i}`);
    }
  } finally {
    await cluster.destroy();
  }
});

test('W=0: a write acknowledged by a partitioned leader is reported in its rollback.jsonl after healing, and stores converge', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--write-quorum', '0', '--faults'] });
  try {
    const oldLeader = await cluster.waitForLeader();
    const others = cluster.nodes.filter((n) => n.id !== oldLeader).map((n) => n.id);
    await cluster.setFaults(oldLeader, { blockedTo: others, blockedFrom: others });
    for (const id of others) await cluster.setFaults(id, { blockedTo: [oldLeader], blockedFrom: [oldLeader] });
    const lost = await put(cluster.node(oldLeader).http, 'doomed', 'acked-alone');
    assert.equal(lost.status, 200, 'W=0 acknowledges without any follower');
    const newLeader = await cluster.waitForLeader(15_000, others);
    assert.equal((await put(cluster.node(newLeader).http, 'doomed', 'winner')).status, 200);
    for (const n of cluster.nodes) await cluster.setFaults(n.id, { blockedTo: [], blockedFrom: [] });
    const store = JSON.parse(await converged(cluster)) as { key: string; value: string }[];
    assert.equal(store.find((i) => i.key === 'doomed')?.value, 'winner');
    const records = await rollbackRecords(cluster);
    assert.ok(
      records.some((r) => r.key === 'doomed' && r.version === lost.body['version']),
      `the lost write doomed@${String(lost.body['version'])} is in a rollback report: ${JSON.stringify(records)}`,
    );
    assert.ok(((await cluster.status(oldLeader))['rollbackCount'] as number) >= 1, '/status shows the rollback count');
    const metrics = await http(`${cluster.node(oldLeader).http}/metrics`);
    const counted = /^qkv_rollback_records_total (\d+)$/m.exec(String(metrics.body['raw']));
    assert.ok(counted !== null && Number(counted[1]) >= 1, `the rollback counter is exported: ${counted?.[0] ?? 'absent'}`);
  } finally {
    await cluster.destroy();
  }
});

test('a live switch from majority/star to W=1/chain and back, under load, gives only bounded 503s and identical stores', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    let stop = false;
    let seq = 0;
    const failures: number[] = [];
    let oks = 0;
    const loops = Array.from({ length: 6 }, async () => {
      while (!stop && !cluster.destroyed) {
        const i = seq++;
        const r = await put(cluster.nodes[i % 3]?.http ?? '', `live${i}`, `v${i}`);
        if (r.status === 200) oks++;
        else failures.push(r.status);
      }
    });
    await waitFor('some writes', 10_000, () => (oks > 100 ? true : null));
    const toChain = await http(`${cluster.node(leader).http}/admin/mode`, 'PUT', { writeQuorum: 1, topology: 'chain' });
    assert.equal(toChain.status, 200, JSON.stringify(toChain.body));
    const switchedAt = toChain.body['sinceIndex'] as number;
    for (const n of cluster.nodes) {
      await waitFor(`${n.id} to switch`, 10_000, async () => {
        const mode = (await cluster.status(n.id))['mode'] as { writeQuorum: unknown; topology: string; sinceIndex: number };
        return mode.topology === 'chain' && mode.writeQuorum === 1 ? mode : null;
      }).then((mode) => assert.equal(mode.sinceIndex, switchedAt, `${n.id} switched at the same index`));
    }
    const midway = oks;
    await waitFor('writes under chain', 10_000, () => (oks > midway + 100 ? true : null));
    // Any node accepts the switch: a follower forwards it to the leader.
    const follower = cluster.nodes.find((n) => n.id !== leader)?.id as string;
    const back = await http(`${cluster.node(follower).http}/admin/mode`, 'PUT', { writeQuorum: 'majority', topology: 'star' });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    const later = oks;
    await waitFor('writes after switching back', 10_000, () => (oks > later + 100 ? true : null));
    stop = true;
    await Promise.all(loops);
    assert.ok(failures.every((s) => s === 503), `only 503s: ${JSON.stringify(failures.slice(0, 5))}`);
    assert.ok(failures.length <= 20, `${failures.length} 503s`);
    await converged(cluster);
  } finally {
    await cluster.destroy();
  }
});

test('a pinned leader (--leader n2) leads from the start and keeps leading while its followers are down', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--leader', 'n2', '--replication-timeout-ms', '1500', '--request-timeout-ms', '1500'] });
  try {
    assert.equal(await cluster.waitForLeader(20_000), 'n2');
    assert.equal((await put(cluster.node('n2').http, 'pinned', '1')).status, 200);
    await cluster.stop('n1');
    await cluster.stop('n3');
    await new Promise((r) => setTimeout(r, 3000)); // longer than any election timeout
    const s = await cluster.status('n2');
    assert.equal(s['role'], 'leader', 'elections are off: the pinned leader does not step down');
    const alone = await put(cluster.node('n2').http, 'pinned', '2');
    assert.equal(alone.status, 503, 'no majority: the write cannot commit');
    await cluster.restart('n1');
    const back = await waitFor('writes with a follower back', 20_000, async () => {
      const r = await put(cluster.node('n2').http, 'pinned', '3');
      return r.status === 200 ? r : null;
    });
    assert.equal(back.status, 200);
    assert.equal((await cluster.status('n1'))['leader'] !== null, true);
  } finally {
    await cluster.destroy();
  }
});
