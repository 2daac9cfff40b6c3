/**
 * The client under failure: it goes through two kill -9s of the leader
 * (over HTTP and gRPC), and a write whose connection is cut after the leader got it, which
 * must be applied exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutcomeUnknownError, QuorumKvError, UnavailableError, VersionConflictError, connect } from '../client/index.js';
import type { Entry } from '../client/index.js';
import { startTcpProxy } from '../transport/tcp-proxy.js';
import { TestCluster, waitFor } from './harness.js';

interface Acked {
  readonly key: string;
  readonly value: string;
  readonly version: number;
}

interface Failed {
  readonly key: string;
  readonly value: string;
  readonly error: unknown;
  readonly elapsedMs: number;
}

const deadlineMs = 8_000;

for (const transport of ['http', 'grpc'] as const) {
  test(
    `${transport}: 8 writers through two kill -9s of the leader: only typed errors within the deadline, every acknowledged write readable, none applied twice`,
    { timeout: 120_000 },
    async () => {
      const cluster = await TestCluster.start({ nodes: 3 });
      try {
        await cluster.waitForLeader();
        const kv = await connect({ endpoints: cluster.nodes.map((n) => (transport === 'http' ? n.http : n.grpc)), transport, deadlineMs });
        const acked: Acked[] = [];
        const failed: Failed[] = [];
        let stop = false;
        // Even loops write blindly; odd loops write create-only (ifVersion 0): if a retry were
        // ever applied a second time, it would fail with a version conflict instead of
        // getting the first application's answer from the dedup table.
        const loops = Array.from({ length: 8 }, async (_, loop) => {
          for (let i = 0; !stop && !cluster.destroyed; i++) {
            const key = `fo/${loop}/${i}`;
            const value = `${transport}:${loop}:${i}`;
            const started = performance.now();
            try {
              const r = loop % 2 === 0 ? await kv.put(key, value) : await kv.put(key, value, { ifVersion: 0 });
              acked.push({ key, value, version: r.version });
            } catch (error) {
              failed.push({ key, value, error, elapsedMs: performance.now() - started });
            }
          }
        });
        const progress = async (what: string, more: number): Promise<void> => {
          const target = acked.length + more;
          await waitFor(what, 30_000, () => (acked.length >= target ? true : null));
        };

        await progress('writes before the first kill', 200);
        const first = await cluster.waitForLeader();
        await cluster.kill9(first);
        await cluster.waitForLeader(15_000, cluster.nodes.filter((n) => n.id !== first).map((n) => n.id));
        await progress('writes under the second leader', 200);
        await cluster.restart(first);
        await cluster.waitForLeader(15_000);
        await progress('writes with three nodes again', 100);
        const second = await cluster.waitForLeader();
        await cluster.kill9(second);
        await cluster.waitForLeader(15_000, cluster.nodes.filter((n) => n.id !== second).map((n) => n.id));
        await progress('writes under the third leader', 200);
        stop = true;
        await Promise.all(loops);

        for (const f of failed) {
          assert.ok(f.error instanceof QuorumKvError, `${f.key}: untyped failure ${String(f.error)}`);
          assert.ok(!(f.error instanceof VersionConflictError), `${f.key}: a retry was applied twice (${f.error.message})`);
          assert.ok(f.error instanceof OutcomeUnknownError || f.error instanceof UnavailableError, `${f.key}: unexpected ${f.error.name} ${f.error.message}`);
          assert.ok(f.elapsedMs <= deadlineMs + 500, `${f.key}: failed after ${Math.round(f.elapsedMs)} ms, past the ${deadlineMs} ms deadline`);
        }

        const store = new Map<string, Entry>();
        for await (const entry of kv.listAll({ prefix: 'fo/', limit: 1000 })) store.set(entry.key, entry);
        for (const a of acked) {
          assert.deepEqual(store.get(a.key), { key: a.key, value: a.value, version: a.version }, `acknowledged write ${a.key} reads back at its version`);
        }
        // Versions are log indexes: one entry, one version. A value present at two versions
        // would need two applications.
        const byVersion = new Map<number, string>();
        for (const entry of store.values()) {
          assert.equal(byVersion.get(entry.version), undefined, `version ${entry.version} holds ${entry.key} and ${String(byVersion.get(entry.version))}`);
          byVersion.set(entry.version, entry.key);
        }
        for (const f of failed) {
          const entry = store.get(f.key);
          if (entry !== undefined) assert.equal(entry.value, f.value, `${f.key}: an unknown outcome applied the value it was sent with`);
        }
        assert.ok(acked.length >= 700, `${acked.length} acknowledged writes`);
        await kv.close();
      } catch (error) {
        process.stderr.write(cluster.describe());
        throw error;
      } finally {
        await cluster.destroy();
      }
    },
  );

  test(`${transport}: a write retried after its connection was cut (the leader had it) is applied exactly once`, { timeout: 60_000 }, async () => {
    const cluster = await TestCluster.start({ nodes: 3, flags: ['--faults'] });
    try {
      const leaderId = await cluster.waitForLeader();
      const leader = cluster.node(leaderId);
      const target = new URL(transport === 'http' ? leader.http : `grpc://${leader.grpc}`);
      const proxy = await startTcpProxy({ listen: { host: '127.0.0.1', port: 0 }, target: { host: target.hostname, port: Number(target.port) } });
      try {
        const endpoint = transport === 'http' ? `http://127.0.0.1:${proxy.address.port}` : `127.0.0.1:${proxy.address.port}`;
        const kv = await connect({ endpoints: [endpoint], transport, deadlineMs: 10_000 });
        await kv.put('warm', 'up');
        const before = (await cluster.status(leaderId))['lastIndex'] as number;
        // Replication is slowed so the write sits in the leader's log, uncommitted, while its
        // connection is cut: the client cannot know whether it will be applied.
        await cluster.setFaults(leaderId, { delayMsMin: 600, delayMsMax: 600 });
        const pending = kv.put('once', 'exactly');
        await waitFor('the leader to log the write', 5_000, async () => (((await cluster.status(leaderId))['lastIndex'] as number) > before ? true : null), 5);
        proxy.cutAll();
        const result = await pending;
        await cluster.setFaults(leaderId, { delayMsMin: 0, delayMsMax: 0 });
        assert.equal(result.version, before + 1, 'the answer is the first attempt\'s entry');
        await waitFor('the retry to be logged and applied too', 10_000, async () => (((await cluster.status(leaderId))['appliedIndex'] as number) >= before + 2 ? true : null));
        const entry = await kv.get('once');
        assert.deepEqual(entry, { key: 'once', value: 'exactly', version: before + 1 }, 'the retry was answered from the dedup table, not applied again');
        await kv.close();
      } finally {
        await proxy.close();
      }
    } catch (error) {
      process.stderr.write(cluster.describe());
      throw error;
    } finally {
      await cluster.destroy();
    }
  });
}
