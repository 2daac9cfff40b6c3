/**
 * kv.lock on real processes: 8 worker processes increment a counter under the lock (a plain
 * read, then a write fenced by the lock) while the leader is killed twice. The counter ends
 * exactly at the number of acknowledged increments: no two increments overlapped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '../client/index.js';
import { TestCluster, waitFor } from './harness.js';

const workerPath = fileURLToPath(new URL('./testing/lock-worker.js', import.meta.url));

function runWorker(endpoints: string, durationMs: number): Promise<{ acked: number; unknown: number; failed: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerPath, endpoints, String(durationMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), durationMs + 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { acked: number; unknown: number; failed: number });
    });
  });
}

test('kv.lock: 8 processes incrementing a counter under the lock through two leader kills end exactly at the acknowledged increments', { timeout: 180_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  t.after(() => cluster.destroy());
  await cluster.waitForLeader();
  const endpoints = cluster.nodes.map((n) => n.http).join(',');
  const durationMs = 15_000;
  const workers = Array.from({ length: 8 }, () => runWorker(endpoints, durationMs));
  for (const at of [4_000, 9_000]) {
    await new Promise((r) => setTimeout(r, at === 4_000 ? 4_000 : 5_000));
    const leader = await cluster.waitForLeader(20_000);
    await cluster.kill9(leader);
    await cluster.waitForLeader(30_000);
    await cluster.restart(leader);
  }
  const results = await Promise.all(workers);
  const acked = results.reduce((s, r) => s + r.acked, 0);
  const unknown = results.reduce((s, r) => s + r.unknown, 0);
  const kv = await connect({ endpoints: cluster.nodes.map((n) => n.http) });
  try {
    const counter = Number((await kv.get('counter'))?.value ?? '0');
    t.diagnostic(`${acked} increments acknowledged, ${unknown} unknown, ${results.reduce((s, r) => s + r.failed, 0)} refused or failed; counter ${counter}`);
    assert.ok(acked > 20, `only ${acked} increments in ${durationMs} ms`);
    // An increment whose outcome is unknown may have landed; none may be lost or doubled.
    assert.ok(counter >= acked && counter <= acked + unknown, `counter ${counter}, acknowledged ${acked}, unknown ${unknown}`);
    if (unknown === 0) assert.equal(counter, acked);
    const left = await kv.list({ prefix: 'locks/counter/' });
    assert.deepEqual(left.items, [], 'every worker released its lock');
  } finally {
    await kv.close();
  }
});

test('a holder whose lease expired cannot write through its fence; election: campaign, proclaim, observe, resign hands over', { timeout: 90_000 }, async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  const a = await connect({ endpoints: cluster.nodes.map((n) => n.http) });
  const b = await connect({ endpoints: cluster.nodes.map((n) => n.http) });
  t.after(async () => {
    await a.close();
    await b.close();
    await cluster.destroy();
  });
  // A lease nobody keeps alive: the holder "pauses" past its TTL.
  const lease = await a.lease(1_000, { keepAlive: false });
  const stale = await a.lock('fence', { lease });
  const taken = await b.lock('fence', { deadlineMs: 20_000 });
  assert.ok(taken.version > stale.version, 'the fencing token grows');
  const refused = await a.txn(stale.fenced({ success: [{ op: 'put', key: 'guarded', value: 'stale' }] }));
  assert.equal(refused.succeeded, false, 'the stale holder\'s write is refused');
  const accepted = await b.txn(taken.fenced({ success: [{ op: 'put', key: 'guarded', value: 'current' }] }));
  assert.equal(accepted.succeeded, true);
  await taken.unlock();
  await assert.rejects(a.lock('fence-timeout-holder', { deadlineMs: 1 }).then(async (l) => {
    await b.lock('fence-timeout-holder', { deadlineMs: 500 });
    await l.unlock();
  }));
  assert.deepEqual((await a.list({ prefix: 'locks/fence-timeout-holder/' })).items.length, 1, 'the waiter that gave up left no key; the holder\'s is still there');

  const ea = a.elect('svc');
  const eb = b.elect('svc');
  await ea.campaign('a1');
  const seen: string[] = [];
  const seenCount = (n: number): Promise<boolean> => waitFor(`the observer to see ${n} leader values`, 20_000, () => (seen.length >= n ? true : null));
  const observer = (async () => {
    for await (const leader of b.elect('svc').observe()) {
      seen.push(leader.value);
      if (seen.length === 3) return;
    }
  })();
  // observe() reports the leader as it is each time it looks, so a change made while it has
  // not looked again can be folded into the next: each step waits until it was seen.
  await seenCount(1);
  const bLeads = eb.campaign('b1', { deadlineMs: 20_000 });
  await ea.proclaim('a2');
  assert.equal((await eb.leader())?.value, 'a2', 'a proclaim keeps the leader');
  await seenCount(2);
  await ea.resign();
  await bLeads;
  assert.equal((await ea.leader())?.value, 'b1');
  await observer;
  assert.deepEqual(seen, ['a1', 'a2', 'b1']);
});
