import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { busiestLoopShare, persistFigures, readPersistCounters } from './persist-figures.js';

/** Serves `bodies[i]` as /metrics on server i. */
async function metricsServers(bodies: readonly string[]): Promise<{ urls: string[]; close(): Promise<void> }> {
  const servers = await Promise.all(
    bodies.map(
      (body) =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const s = createServer((req, res) => {
            res.statusCode = req.url === '/metrics' ? 200 : 404;
            res.end(body);
          });
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  return {
    urls: servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`),
    close: async () => {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

const metrics = (count: number, sum: number, entries: number, writes: { count: number; sum: number } | null = { count: 0, sum: 0 }, loopBusySeconds: number | null = 1): string =>
  `# HELP qkv_log_persist_seconds x\nqkv_log_persist_seconds_bucket{le="0.001"} 1\nqkv_log_persist_seconds_sum ${sum}\nqkv_log_persist_seconds_count ${count}\nqkv_log_persisted_entries_total ${entries}\n` +
  (writes === null ? '' : `qkv_write_seconds_bucket{le="0.005"} ${writes.count}\nqkv_write_seconds_sum ${writes.sum}\nqkv_write_seconds_count ${writes.count}\n`) +
  (loopBusySeconds === null ? '' : `qkv_event_loop_busy_seconds_total ${loopBusySeconds}\n`);

test('fsync figures are summed over the nodes and taken between two readings', async () => {
  // Writes are timed where they are proposed: on the leader (the second node) only.
  const nodes = await metricsServers([metrics(10, 0.05, 300), metrics(30, 0.15, 700, { count: 100, sum: 0.4 })]);
  try {
    const start = await readPersistCounters(nodes.urls);
    assert.deepEqual(start, { fsyncs: 40, seconds: 0.2, entries: 1000, writes: 100, writeSeconds: 0.4, loopBusySeconds: [1, 1] });
    const end = { fsyncs: 240, seconds: 1.2, entries: 13_000, writes: 12_100, writeSeconds: 48.4, loopBusySeconds: [1.5, 2.7] };
    assert.deepEqual(persistFigures(start, end, 2000), { fsyncsPerSec: 100, entriesPerFsync: 60, meanMs: 5, writeMeanMs: 4 });
    assert.equal(persistFigures(start, { ...end, writes: 100, writeSeconds: 0.4 }, 2000)?.writeMeanMs, null, 'no write in the window: no write figure');
    assert.equal(persistFigures(start, start, 2000), null, 'no fsync in the window: no figures');
  } finally {
    await nodes.close();
  }
});

test('a node without the counters, or unreachable, makes the figures unknown rather than wrong', async () => {
  const nodes = await metricsServers([metrics(1, 0.001, 1), '# nothing here\n']);
  try {
    assert.equal(await readPersistCounters(nodes.urls), null);
    assert.equal(await readPersistCounters([nodes.urls[0] as string, 'http://127.0.0.1:9']), null);
    assert.equal(await readPersistCounters([]), null, 'etcd: no nodes to read');
  } finally {
    await nodes.close();
  }
});

test('nodes that do not time writes still give the fsync figures, and no write figure', async () => {
  const nodes = await metricsServers([metrics(10, 0.05, 300, null), metrics(30, 0.15, 700, { count: 100, sum: 0.4 })]);
  try {
    const start = await readPersistCounters(nodes.urls);
    assert.ok(start !== null);
    assert.equal(persistFigures(start, { ...start, fsyncs: 240, writes: Number.NaN }, 2000)?.writeMeanMs, null);
  } finally {
    await nodes.close();
  }
});

test("the busiest node's event-loop share is the largest of the nodes' busy time over the window, or unknown", async () => {
  const nodes = await metricsServers([metrics(10, 0.05, 300, null, 12.5), metrics(30, 0.15, 700, null, 40)]);
  try {
    const start = await readPersistCounters(nodes.urls);
    assert.deepEqual(start?.loopBusySeconds, [12.5, 40], 'one figure per node, in order');
    // Over 2 s: the first node ran 0.5 s, the second 1.75 s.
    assert.equal(busiestLoopShare(start, start === null ? null : { ...start, loopBusySeconds: [13, 41.75] }, 2000), 0.875);
    assert.equal(busiestLoopShare(start, null, 2000), null, 'a reading failed');
    assert.equal(busiestLoopShare(start, start === null ? null : { ...start, loopBusySeconds: [13, Number.NaN] }, 2000), null, 'a node does not say');
  } finally {
    await nodes.close();
  }
  const older = await metricsServers([metrics(10, 0.05, 300, null, null)]);
  try {
    const start = await readPersistCounters(older.urls);
    assert.ok(start !== null, 'a node without the counter still gives the fsync figures');
    assert.equal(busiestLoopShare(start, start, 2000), null);
  } finally {
    await older.close();
  }
});
