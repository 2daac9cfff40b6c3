import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { persistFigures, readPersistCounters } from './persist-figures.js';

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

const metrics = (count: number, sum: number, entries: number): string =>
  `# HELP qkv_log_persist_seconds x\nqkv_log_persist_seconds_bucket{le="0.001"} 1\nqkv_log_persist_seconds_sum ${sum}\nqkv_log_persist_seconds_count ${count}\nqkv_log_persisted_entries_total ${entries}\n`;

test('fsync figures are summed over the nodes and taken between two readings', async () => {
  const nodes = await metricsServers([metrics(10, 0.05, 300), metrics(30, 0.15, 700)]);
  try {
    const start = await readPersistCounters(nodes.urls);
    assert.deepEqual(start, { fsyncs: 40, seconds: 0.2, entries: 1000 });
    const end = { fsyncs: 240, seconds: 1.2, entries: 13_000 };
    assert.deepEqual(persistFigures(start, end, 2000), { fsyncsPerSec: 100, entriesPerFsync: 60, meanMs: 5 });
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
