/**
 * Membership of a running cluster, with real node processes: growing 3 → 5 by --join
 * (one new node catching up by snapshot), shrinking 5 → 3 with the leader among the
 * removed, replacing a node whose data directory was wiped, a rolling restart with no write
 * gap beyond the client's retries, and a leadership transfer. Every write a client saw
 * succeed must be there at the end, on every remaining node.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { connect, type KvClient } from '../client/index.js';
import { TestCluster, http, runCli, waitFor } from './harness.js';

interface Load {
  readonly acked: Map<string, { value: string; version: number }>;
  readonly failures: string[];
  /** When each acknowledged write finished (performance.now()), in order. */
  readonly ackedAtMs: number[];
  stop(): Promise<void>;
}

/** `loops` closed-loop writers, each writing its own new keys, until stopped. */
function startLoad(cluster: TestCluster, kv: KvClient, loops: number, prefix: string): Load {
  const acked = new Map<string, { value: string; version: number }>();
  const failures: string[] = [];
  const ackedAtMs: number[] = [];
  let stopped = false;
  const running = Array.from({ length: loops }, async (_, loop) => {
    for (let i = 0; !stopped && !cluster.destroyed; i++) {
      const key = `${prefix}/${loop}/${i}`;
      const value = `v${loop}.${i}`;
      try {
        const r = await kv.put(key, value);
        acked.set(key, { value, version: r.version });
        ackedAtMs.push(performance.now());
      } catch (e) {
        failures.push(`${key}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      }
    }
  });
  return {
    acked,
    failures,
    ackedAtMs,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}

async function members(url: string): Promise<{ id: string; role: string; lag: number | null }[]> {
  const res = await http(`${url}/members`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body['members'] as { id: string; role: string; lag: number | null }[];
}

/** Every acknowledged write reads back (linearizably) with its value and version. */
async function assertAckedPresent(kv: KvClient, load: Load): Promise<void> {
  for (const [key, want] of load.acked) {
    const got = await kv.get(key);
    assert.deepEqual({ value: got?.value, version: got?.version }, want, `acknowledged write ${key} lost or changed`);
  }
}

async function waitCaughtUp(cluster: TestCluster, ids: readonly string[]): Promise<void> {
  await waitFor(`${ids.join(',')} to apply what the leader committed`, 30_000, async () => {
    const statuses = await Promise.all(ids.map((id) => cluster.status(id)));
    const commit = Math.max(...statuses.map((s) => s['commitIndex'] as number));
    return statuses.every((s) => s['appliedIndex'] === commit) ? true : null;
  });
}

async function assertSameStores(cluster: TestCluster, ids: readonly string[]): Promise<void> {
  await waitCaughtUp(cluster, ids);
  const dumps = await Promise.all(ids.map((id) => cluster.dumpStore(id)));
  for (let i = 1; i < dumps.length; i++) {
    if (dumps[i] === dumps[0]) continue;
    const [a, b] = [JSON.parse(dumps[0] as string) as unknown[], JSON.parse(dumps[i] as string) as unknown[]];
    const at = a.findIndex((x, j) => JSON.stringify(x) !== JSON.stringify(b[j]));
    assert.fail(`${ids[i] ?? '?'} and ${ids[0] ?? '?'} hold different stores (${b.length} vs ${a.length} keys; first difference at ${at}: ${JSON.stringify(b[at])} vs ${JSON.stringify(a[at])})`);
  }
}

test('grow 3 → 5 by --join under load (one new node by snapshot), then shrink 5 → 3 removing the leader: nothing acknowledged is lost', { timeout: 240_000 }, async (t: TestContext) => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--log-entries-max', '200'] });
  try {
    await cluster.waitForLeader();
    const kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 15_000 });
    const load = startLoad(cluster, kv, 4, 'grow');
    await waitFor('400 writes (the log is compacted past its start)', 60_000, () => (load.acked.size >= 400 ? true : null));

    // n4 joins and promotes itself once caught up.
    await cluster.join('n1', ['--promote']);
    const leader = await cluster.waitForLeader(15_000, ['n1', 'n2', 'n3']);
    const leaderFirst = (await cluster.status(leader))['firstIndex'] as number;
    assert.ok(leaderFirst > 1, `the leader's log starts at ${leaderFirst}: compacted, so a new node needs a snapshot`);
    // n5 joins as a learner; the operator promotes it with the CLI once it caught up.
    const n5 = await cluster.join('n2');
    await waitFor('n5 to be a learner within a few entries of the leader', 60_000, async () => {
      const m = (await members(cluster.node(leader).http)).find((x) => x.id === 'n5');
      return m?.role === 'learner' && m.lag !== null && m.lag < 100 ? true : null;
    });
    assert.ok(((await cluster.status('n5'))['firstIndex'] as number) > 1, 'n5 started from a snapshot');
    const endpoints = ['--endpoints', cluster.nodes.map((n) => n.http).join(',')];
    await waitFor('quorumkv member promote n5 to succeed', 30_000, async () => ((await runCli(['member', 'promote', 'n5', ...endpoints], 20_000)).code === 0 ? true : null));
    await waitFor('n4 (--promote) to be a voter', 60_000, async () => ((await members(n5.http)).filter((m) => m.role === 'voter').length === 5 ? true : null));
    const status = await runCli(['status', ...endpoints], 20_000);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((status.stdout.match(/\bvoter\b/g) ?? []).length, 5, `quorumkv status shows five voters:\n${status.stdout}`);
    await waitFor('more writes with five voters', 30_000, () => (load.acked.size >= 600 ? true : null));
    await load.stop();
    assert.deepEqual(load.failures, [], 'no write failed after the client retries while growing');
    await assertAckedPresent(kv, load);
    await assertSameStores(cluster, ['n1', 'n2', 'n3', 'n4', 'n5']);

    // Shrink: remove the leader and one other voter, under load again.
    const shrinkLoad = startLoad(cluster, kv, 4, 'shrink');
    await waitFor('writes under way', 20_000, () => (shrinkLoad.acked.size >= 100 ? true : null));
    const first = await cluster.waitForLeader();
    const other = ['n1', 'n2', 'n3', 'n4', 'n5'].find((id) => id !== first) as string;
    const before = shrinkLoad.acked.size;
    const removeLeader = await http(`${cluster.node(other).http}/members/${first}`, 'DELETE');
    assert.equal(removeLeader.status, 200, JSON.stringify(removeLeader.body));
    const rest = ['n1', 'n2', 'n3', 'n4', 'n5'].filter((id) => id !== first);
    const second = await cluster.waitForLeader(15_000, rest);
    const third = rest.find((id) => id !== second) as string;
    // The new leader may not have committed the first removal yet (it must commit an entry of
    // its own term first): the server answers membership_busy and the client retries it.
    const removeOther = await kv.members.remove(third);
    assert.ok(removeOther.configIndex > 0, JSON.stringify(removeOther));
    await waitFor('writes to go on after the removals', 30_000, () => (shrinkLoad.acked.size >= before + 200 ? true : null));
    await waitFor('both removed nodes to stop by themselves', 20_000, () =>
      [first, third].every((id) => cluster.node(id).proc?.exitCode !== null) ? true : null,
    );
    await cluster.kill9(first);
    await cluster.kill9(third);
    const remaining = rest.filter((id) => id !== third);
    assert.equal((await members(cluster.node(second).http)).filter((m) => m.role === 'voter').length, 3);
    const after = await kv.put('after-shrink', 'yes');
    assert.ok(after.version > 0, 'a write succeeds with both removed nodes gone');
    await shrinkLoad.stop();
    t.diagnostic(`acknowledged ${load.acked.size} writes while growing and ${shrinkLoad.acked.size} while shrinking; ${shrinkLoad.failures.length} failed after retries`);
    assert.deepEqual(shrinkLoad.failures, [], 'no write failed after the client retries while shrinking');
    await assertAckedPresent(kv, load);
    await assertAckedPresent(kv, shrinkLoad);
    await assertSameStores(cluster, remaining);
    await kv.close();
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${cluster.describe()}`);
  } finally {
    await cluster.destroy();
  }
});

test('a node whose data directory was wiped is refused under its old identity, and rejoins after remove + add', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const victim = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    for (let i = 0; i < 20; i++) assert.equal((await http(`${cluster.node(leader).http}/kv/k${i}`, 'PUT', { value: `v${i}` })).status, 200);
    await waitCaughtUp(cluster, ['n1', 'n2', 'n3']);
    await cluster.stop(victim);
    await rm(cluster.node(victim).dataDir, { recursive: true, force: true });
    const refused = await cluster.startExpectingExit(victim, 30_000);
    assert.equal(refused.code, 1, `the wiped node exits with status 1:\n${refused.output}`);
    assert.match(refused.output, new RegExp(`node ${victim} starts with an empty data directory, but .* heard from ${victim} before`));
    assert.match(refused.output, new RegExp(`quorumkv member remove ${victim}`));

    const removed = await http(`${cluster.node(leader).http}/members/${victim}`, 'DELETE');
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    const back = await cluster.join(leader, [], victim);
    const m = (await members(cluster.node(leader).http)).find((x) => x.id === victim);
    assert.equal(m?.role, 'learner', 'it is back, as a new member');
    await waitFor(`${victim} to hold the keys written before it was wiped`, 30_000, async () => ((await http(`${back.http}/kv/k19?consistency=local`)).status === 200 ? true : null));
    await assertSameStores(cluster, ['n1', 'n2', 'n3']);
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${cluster.describe()}`);
  } finally {
    await cluster.destroy();
  }
});

test('a rolling restart of every node (SIGTERM, restart, catch up, next) under load: no write fails, and the longest write gap stays under 1 s', { timeout: 180_000 }, async (t: TestContext) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    await cluster.waitForLeader();
    const kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), deadlineMs: 15_000 });
    const load = startLoad(cluster, kv, 4, 'roll');
    await waitFor('writes under way', 20_000, () => (load.acked.size >= 100 ? true : null));
    // The leader last, so that both a follower's and the leader's clean stop are covered.
    const leader = await cluster.waitForLeader();
    const order = [...['n1', 'n2', 'n3'].filter((id) => id !== leader), leader];
    const marks: { label: string; atMs: number }[] = [];
    for (const id of order) {
      marks.push({ label: `stop ${id}${id === leader ? ' (leader)' : ''}`, atMs: performance.now() });
      await cluster.stop(id);
      marks.push({ label: `restart ${id}`, atMs: performance.now() });
      await cluster.restart(id);
      await waitFor(`writes after ${id} came back`, 20_000, () => (load.acked.size > 0 ? true : null));
      await waitCaughtUp(cluster, ['n1', 'n2', 'n3']);
    }
    await waitFor('writes after the last restart', 20_000, () => (load.acked.size >= 200 ? true : null));
    await load.stop();
    const gaps = load.ackedAtMs.slice(1).map((at, i) => at - (load.ackedAtMs[i] as number));
    const longestGapMs = Math.max(...gaps);
    // Which step the longest gap began in, relative to that step's start, so a failure says where to look.
    const gapStartMs = load.ackedAtMs[gaps.indexOf(longestGapMs)] as number;
    const during = marks.filter((m) => m.atMs <= gapStartMs).at(-1);
    const where = during ? `, beginning ${(gapStartMs - during.atMs).toFixed(0)} ms after "${during.label}"` : '';
    t.diagnostic(`rolling restart: ${load.acked.size} writes acknowledged, ${load.failures.length} failed, longest gap between two acknowledged writes ${longestGapMs.toFixed(0)} ms${where}`);
    assert.deepEqual(load.failures, [], 'no write failed after the client retries');
    assert.ok(longestGapMs < 1000, `longest gap between two acknowledged writes: ${longestGapMs.toFixed(0)} ms${where}`);
    await assertAckedPresent(kv, load);
    await assertSameStores(cluster, ['n1', 'n2', 'n3']);
    await kv.close();
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${cluster.describe()}`);
  } finally {
    await cluster.destroy();
  }
});

test('leader transfer hands leadership to the named voter within one election timeout (HTTP and the CLI)', { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const to = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    const started = performance.now();
    const res = await http(`${cluster.node(leader).http}/admin/transfer-leader`, 'POST', { to });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(await cluster.waitForLeader(), to);
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs < 1000, `${to} led ${elapsedMs.toFixed(0)} ms after the request (election timeout 1000 ms)`);

    const next = ['n1', 'n2', 'n3'].find((id) => id !== to) as string;
    const cli = await runCli(['leader', 'transfer', next, '--endpoints', cluster.nodes.map((n) => n.http).join(',')], 20_000);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(await cluster.waitForLeader(), next);
  } finally {
    await cluster.destroy();
  }
});
