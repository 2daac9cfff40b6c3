import { test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { diskUsageBytes, formatBytes, measureFootprint, rssAnonBytes } from './footprint.js';

test('disk usage counts allocated blocks under a directory, a hard-linked file once, and is null for a missing one', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-footprint-'));
  try {
    const empty = (await diskUsageBytes(dir)) as number;
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'sub', 'a'), Buffer.alloc(256 * 1024, 1));
    const one = (await diskUsageBytes(dir)) as number;
    assert.ok(one - empty >= 256 * 1024, `a 256 KiB file adds its blocks: ${empty} -> ${one}`);
    await link(path.join(dir, 'sub', 'a'), path.join(dir, 'b'));
    const linked = (await diskUsageBytes(dir)) as number;
    assert.ok(linked - one < 64 * 1024, `a second link adds no data blocks: ${one} -> ${linked}`);
    assert.equal(await diskUsageBytes(path.join(dir, 'absent')), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('anonymous RSS of this process is read from /proc, and unknown processes or directories are null', async () => {
  const rss = await rssAnonBytes(process.pid);
  assert.ok(rss !== null && rss > 1024 * 1024, `RssAnon ${rss}`);
  const [f] = await measureFootprint([{ name: 'gone', pid: 2 ** 22 + 1, dataDir: null }]);
  assert.deepEqual(f, { name: 'gone', diskBytes: null, rssAnonBytes: null });
  assert.equal(formatBytes(null), '?');
  assert.equal(formatBytes(3 * 1024 * 1024), '3.0 MiB');
});
