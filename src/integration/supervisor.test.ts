/**
 * `quorumkv up`'s supervisor on real processes: a follower killed with -9 stays down until
 * `quorumkv fault restart` starts it again with its first arguments, and then rejoins as a
 * follower and catches up with the writes it missed; a restart of a running or paused node
 * is refused; pause and resume go through the supervisor; the supervisor wants the admin
 * token; and stopping `up` stops the restarted process too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { http, runCli, startUp, stopUp, waitFor } from './harness.js';

interface FileNode {
  readonly id: string;
  readonly http: string;
  readonly pid: number;
}

interface File {
  readonly nodes: readonly FileNode[];
  readonly supervisor?: string;
}

async function readCluster(dir: string): Promise<File> {
  return JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as File;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a follower killed with -9 is restarted through the supervisor of up, rejoins as a follower and catches up', { timeout: 180_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-supervisor-'));
  let running: ChildProcess | null = null;
  const pidsSeen = new Set<number>();
  try {
    const up = startUp(dir);
    running = up.proc;
    await waitFor('up to print the cluster', 30_000, () => (/is up/.test(up.output()) ? true : null));
    const file = await readCluster(dir);
    for (const n of file.nodes) pidsSeen.add(n.pid);
    assert.match(String(file.supervisor), /^http:\/\/127\.0\.0\.1:\d+$/, 'cluster.json names the supervisor');
    const fault = (...args: string[]) => runCli(['fault', ...args, '--cluster-file', path.join(dir, 'cluster.json')], 40_000);
    const status = async (n: FileNode) => (await http(`${n.http}/status`)).body;
    const leaderId = await waitFor('a leader', 10_000, async () => {
      for (const n of file.nodes) if ((await status(n).catch((): Record<string, unknown> => ({})))['role'] === 'leader') return n.id;
      return null;
    });
    const leader = file.nodes.find((n) => n.id === leaderId) as FileNode;
    const follower = file.nodes.find((n) => n.id !== leaderId) as FileNode;

    const noToken = await http(`${file.supervisor}/nodes`);
    assert.equal(noToken.status, 401, 'the supervisor wants the admin token');

    let r = await fault('restart', follower.id);
    assert.notEqual(r.code, 0, 'a running node is not restarted');
    assert.match(r.stderr, new RegExp(`${follower.id} is running \\(pid ${follower.pid}\\): kill it first`));

    r = await fault('kill', follower.id);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(`${follower.id} gone`, 10_000, () => (alive(follower.pid) ? null : true));
    for (let i = 0; i < 20; i++) assert.equal((await http(`${leader.http}/kv/missed-${i}`, 'PUT', { value: `v${i}` })).status, 200);
    await waitFor('up to report the exit without restarting it', 5_000, () => (up.output().includes(`${follower.id} exited (signal SIGKILL); not restarted`) ? true : null));
    assert.equal(await http(`${follower.http}/health`).then(() => 'answered', () => 'down'), 'down', 'nothing restarted it by itself');

    const restartedAtMs = Date.now();
    r = await fault('restart', follower.id);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${follower.id} restarted \\(pid \\d+\\) and serving`));
    const newPid = (await readCluster(dir)).nodes.find((n) => n.id === follower.id)?.pid ?? 0;
    pidsSeen.add(newPid);
    assert.ok(newPid !== follower.pid && alive(newPid), `cluster.json names the new pid (${newPid}, was ${follower.pid})`);
    const caughtUp = await waitFor(`${follower.id} a follower at the leader's commit index`, 20_000, async () => {
      const [l, f] = await Promise.all([status(leader), status(follower)]);
      return f['role'] === 'follower' && f['appliedIndex'] === l['commitIndex'] ? f : null;
    });
    t.diagnostic(`${follower.id} back and caught up at index ${String(caughtUp['appliedIndex'])} ${Date.now() - restartedAtMs} ms after the restart began`);
    const got = await http(`${follower.http}/kv/missed-19?consistency=local`);
    assert.equal(got.body['value'], 'v19', 'it holds a write made while it was down');

    r = await fault('pause', follower.id);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await http(`${follower.http}/health`).then(() => 'answered', () => 'silent'), 'silent', 'a paused node does not answer');
    r = await fault('restart', follower.id);
    assert.match(r.stderr, /is paused/, 'a paused node is not restarted');
    r = await fault('resume', follower.id);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(`${follower.id} answering again`, 10_000, async () => ((await http(`${follower.http}/health`)).status === 200 ? true : null));

    assert.equal(await stopUp(up.proc), 0);
    running = null;
    for (const pid of pidsSeen) assert.equal(alive(pid), false, `pid ${pid} stopped with up`);
    assert.equal((await readCluster(dir)).supervisor, undefined, 'the stopped supervisor is out of cluster.json');
  } finally {
    if (running !== null) await stopUp(running);
    for (const pid of pidsSeen) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
