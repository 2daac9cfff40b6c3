/**
 * Backup and restore: a 100,000-key store is backed up while
 * writes continue, restored into a fresh 3-node cluster with `quorumkv restore`, started
 * with `quorumkv up`, and must hold exactly the state as of the backup's index: the same
 * keys, values and versions. Some values are large enough to be stored in value rows
 * (kv/value-rows.ts) and were overwritten once: they restore too, old versions included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect } from '../client/index.js';
import type { KvClient } from '../client/index.js';
import { mainPath, startUp, stopUp, TestCluster, waitFor } from './harness.js';

const run = promisify(execFile);

const keysTotal = 100_000;
const writersInitial = 256;

interface Op {
  readonly key: string;
  /** null: a delete. */
  readonly value: string | null;
  readonly version: number;
}

async function writeInitial(kv: KvClient, ops: Op[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: writersInitial }, async () => {
      while (next < keysTotal) {
        const i = next++;
        const key = `k${String(i).padStart(6, '0')}`;
        const value = `v${i}`;
        ops.push({ key, value, version: (await kv.put(key, value)).version });
      }
    }),
  );
}

test('a backup of 100,000 keys taken under writes restores into a new 3-node cluster with the state as of its index', { timeout: 240_000 }, async () => {
  const cluster = await TestCluster.start({ nodes: 3 });
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-restore-'));
  let up: ChildProcess | null = null;
  try {
    await cluster.waitForLeader();
    const kv = await connect({ endpoints: cluster.nodes.map((n) => n.http), connectionsPerEndpoint: 128 });
    const ops: Op[] = [];
    await writeInitial(kv, ops);
    // Values of 4 KiB of text, each overwritten once with another 4 KiB: the key's record
    // names a value row, the history's record of the first put another.
    const bigFirst = new Map<string, Op>();
    const bigLatest = new Map<string, Op>();
    for (let i = 0; i < 10; i++) {
      const key = `big/${i}`;
      const first = { key, value: `${i}`.repeat(4096), version: 0 };
      const op = { ...first, version: (await kv.put(key, first.value)).version };
      bigFirst.set(key, op);
      ops.push(op);
      const value = `${i}*`.repeat(2048);
      const latest = { key, value, version: (await kv.put(key, value)).version };
      bigLatest.set(key, latest);
      ops.push(latest);
    }

    // Writers overwrite and delete some of those keys and add new ones while the backup runs.
    let stop = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop && !cluster.destroyed; i++) {
        const n = (w * 7919 + i * 104_729) % keysTotal;
        const key = i % 3 === 2 ? `new/${w}/${i}` : `k${String(n).padStart(6, '0')}`;
        if (i % 5 === 4) ops.push({ key, value: null, version: (await kv.delete(key)).version });
        else ops.push({ key, value: `w${w}:${i}`, version: (await kv.put(key, `w${w}:${i}`)).version });
      }
    });
    const startedOps = ops.length;
    await waitFor('writes to run before the backup', 20_000, () => (ops.length > startedOps + 300 ? true : null));
    const file = path.join(dir, 'backup.qkv');
    const backup = await kv.backup(file);
    const afterBackup = ops.length;
    await waitFor('writes to run after the backup', 20_000, () => (ops.length > afterBackup + 300 ? true : null));
    stop = true;
    await Promise.all(writers);
    await kv.close();
    assert.ok(ops.some((o) => o.version > backup.index), 'some writes came after the backup\'s index');

    // The expected state: every acknowledged operation up to the backup's index, in order.
    const expected = new Map<string, { value: string; version: number }>();
    for (const op of [...ops].sort((a, b) => a.version - b.version)) {
      if (op.version > backup.index) break;
      if (op.value === null) expected.delete(op.key);
      else expected.set(op.key, { value: op.value, version: op.version });
    }
    assert.equal(backup.keys, expected.size, 'the backup holds exactly the keys of its index');

    const restoredDir = path.join(dir, 'restored');
    const restored = await run(process.execPath, [mainPath, 'restore', '--from', file, '--data-dir', restoredDir, '--nodes', '3']);
    assert.match(restored.stdout, new RegExp(`restored ${expected.size} keys`));

    const started = startUp(restoredDir, ['--log-level', 'warn']);
    up = started.proc;
    await waitFor('the restored cluster to come up', 60_000, () => (/is up/.test(started.output()) ? true : null));
    const clusterFile = JSON.parse(await readFile(path.join(restoredDir, 'cluster.json'), 'utf8')) as { nodes: { http: string }[] };
    const kv2 = await connect({ endpoints: clusterFile.nodes.map((n) => n.http) });
    try {
      let count = 0;
      for await (const entry of kv2.listAll({ limit: 1000 })) {
        count++;
        const want = expected.get(entry.key);
        assert.deepEqual({ value: entry.value, version: entry.version }, want, `restored ${entry.key}`);
      }
      assert.equal(count, expected.size, 'the restored cluster has exactly the backed-up keys');
      for (const [key, latest] of bigLatest) {
        const now = await kv2.get(key);
        assert.deepEqual(now === undefined ? undefined : { value: now.value, version: now.version }, { value: latest.value, version: latest.version }, `${key} reads its latest value`);
      }
      for (const [key, first] of bigFirst) {
        const old = await kv2.get(key, { atVersion: first.version });
        assert.deepEqual(old === undefined ? undefined : { value: old.value, version: old.version }, { value: first.value, version: first.version }, `${key} at its first version`);
      }
      const next = await kv2.put('after-restore', 'x');
      assert.ok(next.version > backup.index, 'new writes get versions after the backup\'s index');
    } finally {
      await kv2.close();
    }
  } catch (error) {
    process.stderr.write(cluster.describe());
    throw error;
  } finally {
    if (up !== null) await stopUp(up);
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
