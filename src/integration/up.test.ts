/**
 * `quorumkv up` (what `npm start` runs): starts a cluster, prints URLs that serve a
 * PUT/GET, writes cluster.json, stops every node on SIGTERM, and resumes from disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { http, startUp, stopUp, waitFor } from './harness.js';
import { nodeRuntimeFlags } from '../bench/child.js';

test('up starts a 3-node cluster whose printed URL serves PUT and GET, and resumes from disk', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-up-'));
  let running: ChildProcess | null = null;
  try {
    const first = startUp(dir);
    running = first.proc;
    const url = await waitFor('up to print the cluster', 30_000, () => /is up[\s\S]*?(http:\/\/127\.0\.0\.1:\d+)/.exec(first.output())?.[1]);
    const put = await http(`${url}/kv/hello`, 'PUT', { value: 'world' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const get = await http(`${url}/kv/hello`);
    assert.deepEqual(get.body, { key: 'hello', value: 'world', version: put.body['version'] });

    const file = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: { id: string; http: string; pid: number; dataDir: string; peer: string }[] };
    assert.deepEqual(file.nodes.map((n) => n.id), ['n1', 'n2', 'n3']);
    for (const n of file.nodes) {
      assert.ok(n.pid > 0 && n.http.startsWith('http://127.0.0.1:') && n.peer.startsWith('127.0.0.1:') && n.dataDir.length > 0);
      const argv = (await readFile(`/proc/${n.pid}/cmdline`, 'utf8')).split('\0');
      for (const flag of nodeRuntimeFlags) assert.ok(argv.includes(flag), `node ${n.id} runs with ${flag}: ${argv.join(' ')}`);
    }

    assert.equal(await stopUp(first.proc), 0, 'up exits cleanly on SIGTERM');
    running = null;
    for (const n of file.nodes) {
      assert.throws(() => process.kill(n.pid, 0), 'every node process is gone');
    }

    const second = startUp(dir);
    running = second.proc;
    const url2 = await waitFor('up to print the cluster again', 30_000, () => /is up[\s\S]*?(http:\/\/127\.0\.0\.1:\d+)/.exec(second.output())?.[1]);
    const again = await http(`${url2}/kv/hello`);
    assert.deepEqual(again.body, { key: 'hello', value: 'world', version: put.body['version'] }, 'the key survived the restart');
    assert.equal(await stopUp(second.proc), 0);
    running = null;
  } finally {
    if (running !== null) running.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('up --add 1 on a cluster it started before joins a fourth node, promoted to voter, keeping the data', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-up-add-'));
  let running: ChildProcess | null = null;
  try {
    const first = startUp(dir);
    running = first.proc;
    const url = await waitFor('up to print the cluster', 30_000, () => /is up[\s\S]*?(http:\/\/127\.0\.0\.1:\d+)/.exec(first.output())?.[1]);
    assert.equal((await http(`${url}/kv/kept`, 'PUT', { value: 'yes' })).status, 200);
    assert.equal(await stopUp(first.proc), 0);
    running = null;

    const grown = startUp(dir, ['--add', '1']);
    running = grown.proc;
    await waitFor('up to print the grown cluster', 60_000, () => (/is up[\s\S]*n4 .*\(joined\)/.test(grown.output()) ? true : null));
    const file = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: { id: string; http: string }[] };
    assert.deepEqual(file.nodes.map((n) => n.id), ['n1', 'n2', 'n3', 'n4']);
    const n4 = file.nodes[3]?.http as string;
    await waitFor('four voters, n4 included, in n4\'s own view', 20_000, async () => {
      const members = (await http(`${n4}/members`)).body['members'] as { id: string; role: string }[];
      return members.map((m) => `${m.id}:${m.role}`).sort().join(',') === 'n1:voter,n2:voter,n3:voter,n4:voter' ? true : null;
    });
    await waitFor('n4 to hold the key written before it joined', 20_000, async () => ((await http(`${n4}/kv/kept?consistency=local`)).body['value'] === 'yes' ? true : null));
    assert.equal(await stopUp(grown.proc), 0);
    running = null;
  } finally {
    if (running !== null) running.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
