/**
 * The foundation: three real node processes on 127.0.0.1,
 * real LMDB, real TCP, real kill -9.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPersistCounters } from '../bench/persist-figures.js';
import type { PersistCounters } from '../bench/persist-figures.js';
import { TestCluster, http, waitFor } from './harness.js';

interface Acked {
  readonly key: string;
  readonly value: string;
  readonly version: number;
}

async function putOk(base: string, key: string, value: string): Promise<Acked> {
  const res = await http(`${base}/kv/${encodeURIComponent(key)}`, 'PUT', { value });
  assert.equal(res.status, 200, `PUT ${key} -> ${res.status} ${JSON.stringify(res.body)}`);
  return { key, value, version: res.body['version'] as number };
}

/** Writes `count` keys with `concurrency` loops through `base`; returns what was acknowledged. */
async function writeMany(base: string, prefix: string, count: number, concurrency = 16): Promise<Acked[]> {
  const acked: Acked[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        acked.push(await putOk(base, `${prefix}${i}`, `value-${i}`));
      }
    }),
  );
  return acked;
}

/** A node's fsyncs of log batches and the entries they carried, from /metrics. */
async function persistCounters(base: string): Promise<PersistCounters> {
  const counters = await readPersistCounters([base]);
  assert.ok(counters !== null, `${base}/metrics has no persist counters`);
  return counters;
}

async function expectAllReadable(cluster: TestCluster, acked: readonly Acked[], nodeIds: string[], consistency = 'linearizable'): Promise<void> {
  for (const id of nodeIds) {
    const base = cluster.node(id).http;
    for (let i = 0; i < acked.length; i += 50) {
      await Promise.all(
        acked.slice(i, i + 50).map(async (a) => {
          const res = await http(`${base}/kv/${encodeURIComponent(a.key)}?consistency=${consistency}`);
          assert.equal(res.status, 200, `${id} GET ${a.key} -> ${res.status} ${JSON.stringify(res.body)}`);
          assert.equal(res.body['value'], a.value, `${id} ${a.key} value`);
          assert.equal(res.body['version'], a.version, `${id} ${a.key} version`);
        }),
      );
    }
  }
}

test('1,000 writes through a follower read back with the right value and version from every node', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n.id !== leader);
    assert.ok(follower);
    const acked = await writeMany(follower.http, 'k', 1000);
    assert.equal(new Set(acked.map((a) => a.version)).size, 1000, 'every write got its own version');
    await expectAllReadable(cluster, acked, ['n1', 'n2', 'n3']);
    // Every node shows how long its disk made the writes wait, and how many entries each fsync carried.
    for (const n of cluster.nodes) {
      const { fsyncs, entries } = await persistCounters(n.http);
      assert.ok(fsyncs >= 1 && entries >= 1000, `${n.id}: ${fsyncs} persists of ${entries} entries`);
    }
    // A lone writer costs the leader one fsync per write: the commit index that each write
    // advances is not synced on its own but rides with the next write's entries.
    const before = await persistCounters(cluster.node(leader).http);
    await writeMany(cluster.node(leader).http, 'lone', 200, 1);
    const after = await persistCounters(cluster.node(leader).http);
    const fsyncs = after.fsyncs - before.fsyncs;
    assert.equal(after.entries - before.entries, 200);
    assert.ok(fsyncs <= 220, `200 sequential writes took ${fsyncs} fsyncs on the leader`);
  } finally {
    await cluster.destroy();
  }
});

test('kill -9 of the leader under load: a new leader within 3 s and no acknowledged write lost', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const oldLeader = await cluster.waitForLeader();
    const survivors = cluster.nodes.filter((n) => n.id !== oldLeader);
    const acked: Acked[] = [];
    let stop = false;
    let seq = 0;
    const loops = Array.from({ length: 8 }, async (_, loop) => {
      while (!stop && !cluster.destroyed) {
        const i = seq++;
        const target = survivors[i % survivors.length];
        try {
          const res = await http(`${target?.http}/kv/load${i}`, 'PUT', { value: `v${i}` });
          if (res.status === 200) acked.push({ key: `load${i}`, value: `v${i}`, version: res.body['version'] as number });
        } catch {
          // connection trouble during failover: not acknowledged, so not counted
        }
        if (loop === 0 && stop) break;
      }
    });
    await waitFor('some acknowledged writes', 10_000, () => (acked.length >= 200 ? true : null));
    const killedAt = Date.now();
    await cluster.kill9(oldLeader);
    const newLeader = await cluster.waitForLeader(10_000, survivors.map((n) => n.id));
    const electedMs = Date.now() - killedAt;
    const before = acked.length;
    await waitFor('writes to continue under the new leader', 10_000, () => (acked.length > before + 100 ? true : null));
    stop = true;
    await Promise.all(loops);
    assert.notEqual(newLeader, oldLeader);
    assert.ok(electedMs < 3000, `new leader after ${electedMs} ms`);
    await expectAllReadable(cluster, acked, survivors.map((n) => n.id));
  } finally {
    await cluster.destroy();
  }
});

test('kill -9 of all three nodes right after 1,000 acknowledged writes loses nothing', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const acked = await writeMany(cluster.node(leader).http, 'durable', 1000, 32);
    await Promise.all(cluster.nodes.map((n) => cluster.kill9(n.id)));
    for (const n of cluster.nodes) await cluster.restart(n.id);
    await cluster.waitForLeader();
    await expectAllReadable(cluster, acked, ['n1', 'n2', 'n3']);
  } finally {
    await cluster.destroy();
  }
});

test('a follower that missed 5,000 writes after log compaction catches up by snapshot', { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--log-entries-max', '1000'] });
  try {
    const leader = await cluster.waitForLeader();
    const lagging = cluster.nodes.find((n) => n.id !== leader);
    assert.ok(lagging);
    await cluster.stop(lagging.id);
    await writeMany(cluster.node(leader).http, 'snap', 5000, 32);
    const leaderStatus = await cluster.status(leader);
    assert.ok((leaderStatus['firstIndex'] as number) > 1000, `leader log compacted (first index ${String(leaderStatus['firstIndex'])})`);
    await cluster.restart(lagging.id);
    const target = leaderStatus['commitIndex'] as number;
    await waitFor(`${lagging.id} to apply index ${target}`, 60_000, async () => ((((await cluster.status(lagging.id))['appliedIndex'] as number) >= target) ? true : null));
    assert.equal(await cluster.dumpStore(lagging.id), await cluster.dumpStore(leader), 'the restarted follower\'s store equals the leader\'s');
  } finally {
    await cluster.destroy();
  }
});

test('a partitioned old leader steps down and serves no linearizable read; the majority keeps serving', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--faults'] });
  try {
    const oldLeader = await cluster.waitForLeader();
    await putOk(cluster.node(oldLeader).http, 'before', 'partition');
    const others = cluster.nodes.filter((n) => n.id !== oldLeader).map((n) => n.id);
    await cluster.setFaults(oldLeader, { blockedTo: others, blockedFrom: others });
    for (const id of others) await cluster.setFaults(id, { blockedTo: [oldLeader], blockedFrom: [oldLeader] });

    const newLeader = await cluster.waitForLeader(10_000, others);
    assert.notEqual(newLeader, oldLeader);
    await waitFor('the old leader to step down', 10_000, async () => ((await cluster.status(oldLeader))['role'] !== 'leader' ? true : null));
    const stale = await http(`${cluster.node(oldLeader).http}/kv/before?consistency=linearizable`);
    assert.equal(stale.status, 503, `isolated node answered a linearizable read: ${JSON.stringify(stale.body)}`);
    assert.ok(stale.headers['retry-after'] !== undefined, '503 carries Retry-After');
    await putOk(cluster.node(newLeader).http, 'after', 'partition');
    const read = await http(`${cluster.node(newLeader).http}/kv/after`);
    assert.equal(read.body['value'], 'partition');
  } finally {
    await cluster.destroy();
  }
});

test('bad input gets a clear JSON error and changes nothing', { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--key-bytes-max', '64', '--value-bytes-max', '1024'] });
  try {
    const leader = await cluster.waitForLeader();
    const base = cluster.node(leader).http;
    await putOk(base, 'exists', 'original');
    const before = await cluster.dumpStore(leader);
    const cases: [string, () => Promise<{ status: number; body: Record<string, unknown> }>, number, string][] = [
      ['malformed JSON', () => http(`${base}/kv/exists`, 'PUT', '{"value": '), 400, 'invalid_json'],
      ['missing value', () => http(`${base}/kv/exists`, 'PUT', {}), 400, 'invalid_value'],
      ['key over the limit', () => http(`${base}/kv/${'k'.repeat(65)}`, 'PUT', { value: 'x' }), 413, 'key_too_large'],
      ['value over the limit', () => http(`${base}/kv/exists`, 'PUT', { value: 'v'.repeat(1025) }), 413, 'value_too_large'],
      ['non-UTF-8 key', () => http(`${base}/kv/%FF%FE`, 'PUT', { value: 'x' }), 400, 'invalid_key'],
      ['unknown route', () => http(`${base}/nope`, 'GET'), 404, 'unknown_route'],
    ];
    for (const [what, send, status, code] of cases) {
      const res = await send();
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body['error'], code, `${what}: error code`);
      assert.equal(typeof res.body['message'], 'string', `${what}: has a message`);
    }
    assert.equal(await cluster.dumpStore(leader), before, 'the store is unchanged');
  } finally {
    await cluster.destroy();
  }
});

test('a leader stopped while its followers are frozen gives up handing over and exits by itself', { timeout: 60_000 }, async () => {
  // What `quorumkv up` does on Ctrl-C: every node stops at once, so the leader's hand-over
  // target is stopping too. The hand-over's deadline must still pass (it used to wait for
  // ticks the stopping node no longer made, until it was killed).
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const followers = cluster.nodes.filter((n) => n.id !== leader);
    for (const f of followers) f.proc?.kill('SIGSTOP');
    const proc = cluster.node(leader).proc;
    assert.ok(proc !== null);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const startMs = Date.now();
    proc.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000).unref())]);
    const elapsedMs = Date.now() - startMs;
    assert.equal(code, 0, `the leader exits cleanly by itself (after ${elapsedMs} ms); its log:\n${cluster.node(leader).output.slice(-3000)}`);
    cluster.node(leader).proc = null;
    for (const f of followers) f.proc?.kill('SIGCONT');
  } finally {
    await cluster.destroy();
  }
});

test("a node's event-loop busy time counts the time its loop runs, not the time that passes: an idle node's grows far slower than the clock", { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 1 });
  try {
    const node = cluster.nodes[0];
    assert.ok(node !== undefined);
    const busySeconds = async (): Promise<number> => {
      const found = /^qkv_event_loop_busy_seconds_total (\S+)$/m.exec(String((await http(`${node.http}/metrics`)).body['raw']));
      assert.ok(found !== null, 'the node exports qkv_event_loop_busy_seconds_total');
      return Number(found[1]);
    };
    const busy0 = await busySeconds();
    const wall0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const busy1 = await busySeconds();
    const wallSeconds = (performance.now() - wall0) / 1000;
    // Idle but for its ticks and these scrapes: a few percent of the time, not all of it.
    assert.ok(busy1 > busy0, `the counter grows (${busy0} → ${busy1})`);
    assert.ok(busy1 - busy0 < wallSeconds / 2, `busy ${(busy1 - busy0).toFixed(3)} s of ${wallSeconds.toFixed(3)} s while idle`);
  } finally {
    await cluster.destroy();
  }
});

test('the leader serves linearizable reads by lease; frozen past it and deposed, it answers no stale read when it resumes', { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const oldLeader = await cluster.waitForLeader();
    const oldUrl = cluster.node(oldLeader).http;
    await putOk(oldUrl, 'k', 'v1');
    // One after another: all but the first few (before a round of its term was acked) by lease.
    for (let i = 0; i < 20; i++) assert.equal((await http(`${oldUrl}/kv/k`)).body['value'], 'v1');
    const metrics = await http(`${oldUrl}/metrics`);
    const byLease = /^qkv_reads_by_lease_total (\d+)$/m.exec(String(metrics.body['raw']));
    assert.ok(byLease !== null && Number(byLease[1]) >= 10, `leader metrics: ${byLease?.[0] ?? 'no qkv_reads_by_lease_total'}`);

    // SIGSTOP: its clock goes on, its ticks do not. The others elect a leader and commit v2.
    const proc = cluster.node(oldLeader).proc;
    assert.ok(proc !== null);
    proc.kill('SIGSTOP');
    try {
      const others = cluster.nodes.filter((n) => n.id !== oldLeader).map((n) => n.id);
      const newLeader = await cluster.waitForLeader(15_000, others);
      const v2 = await putOk(cluster.node(newLeader).http, 'k', 'v2');
      // Asked after v2 was acknowledged, while the old leader is still frozen: it reads the
      // request when it resumes, maybe before the messages that depose it.
      const late = http(`${oldUrl}/kv/k`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      proc.kill('SIGCONT');
      const answer = await late;
      if (answer.status === 200) assert.deepEqual([answer.body['value'], answer.body['version']], ['v2', v2.version]);
      else assert.equal(answer.status, 503, JSON.stringify(answer.body));
    } finally {
      proc.kill('SIGCONT');
    }
  } finally {
    await cluster.destroy();
  }
});
