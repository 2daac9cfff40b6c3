/**
 * The driver between the core and its clients, with three real drivers over in-memory
 * storage and transport, ticked by hand: what a client sees while a leader hands over, and
 * the bound on reads waiting for a version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from '../stdx/prng.js';
import { createMemoryStorage } from '../storage/memory.js';
import { createMemoryNetwork } from '../transport/memory.js';
import type { ClusterConfig } from '../core/types.js';
import type { CommandResult } from '../kv/types.js';
import { NodeDriver, type DriverOptions } from './driver.js';
import type { PeerMessage } from './messages.js';

const ids = ['n1', 'n2', 'n3'];
const tickMs = 10;

function options(id: string, index: number, overrides: Partial<DriverOptions>): DriverOptions {
  return {
    id,
    clusterId: 'test',
    memberId: `${id}#0`,
    bootstrapMemberId: (n) => `${n}#0`,
    selfHttp: `test://${id}`,
    selfGrpc: null,
    pid: index + 1,
    tickMs,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1,
    preVote: true,
    checkQuorum: true,
    readLease: false,
    pinnedLeader: null,
    inflightMessagesMax: 64,
    appendBytesMax: 64 * 1024,
    appendEntriesMax: 64,
    uncommittedEntriesMax: 1024,
    readsPendingMax: 256,
    pendingWritesMax: 256,
    applyEntriesMax: 64,
    logEntriesMax: 10_000,
    snapshotChunkBytes: 64 * 1024,
    snapshotTimeoutTicks: 50,
    dedupClientsMax: 64,
    watch: { historyRetentionVersions: 1000, historyRetentionTicks: 1000, bufferBytesMax: 64 * 1024, watchersMax: 8, progressTicks: 20, pageVersions: 16 },
    ...overrides,
  };
}

interface Cluster {
  node(id: string): NodeDriver;
  /** Ticks every driver once, then lets the messages and flushes that follow settle. */
  tick(): Promise<void>;
  leader(): NodeDriver | null;
  stop(): void;
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

async function startCluster(overrides: Partial<DriverOptions> = {}): Promise<Cluster> {
  const network = createMemoryNetwork<PeerMessage>();
  const config: ClusterConfig = { members: ids, writeQuorum: 'majority', topology: 'star' };
  const drivers = ids.map((id, i) => {
    const storage = createMemoryStorage({ initialConfig: config, snapshotBytesMax: 1 << 20 });
    storage.setIdentity({ nodeId: id, clusterId: 'test' }, () => undefined);
    return new NodeDriver(options(id, i, overrides), {
      storage,
      transport: network.join(id),
      prng: createPrng(i + 1),
      schedule: (fn) => void setImmediate(fn),
      onFatal: (error) => {
        throw error;
      },
    });
  });
  await settle();
  const cluster: Cluster = {
    node: (id) => drivers[ids.indexOf(id)] as NodeDriver,
    tick: async () => {
      for (const d of drivers) d.tick();
      await settle();
    },
    leader: () => drivers.find((d) => d.core.currentRole() === 'leader') ?? null,
    stop: () => {
      for (const d of drivers) d.stop();
    },
  };
  for (let i = 0; i < 100 && cluster.leader() === null; i++) await cluster.tick();
  assert.ok(cluster.leader() !== null, 'a leader within 100 ticks');
  return cluster;
}

type Answer = { readonly error: { readonly code: string; readonly details: Record<string, unknown> } | null; readonly result: CommandResult | undefined };

/** Submits a put; `answer()` is null until the driver calls back. */
function put(driver: NodeDriver, key: string, value: string): { answer(): Answer | null } {
  let answer: Answer | null = null;
  driver.submitWrite({ op: 'put', key, value }, 5_000, (error, result) => {
    answer = { error: error === null ? null : { code: error.code, details: error.details }, result };
  });
  return { answer: () => answer };
}

test('a write that reaches a leader handing over waits, then is refused naming the new leader (never proposed there)', async () => {
  const cluster = await startCluster();
  try {
    const old = cluster.leader() as NodeDriver;
    const to = ids.find((id) => id !== old.id) as string;
    // The transferee is up to date only after an append round: the hand-over takes a few turns.
    assert.equal(old.transferLeadership(to).ok, true);
    const held = put(old, 'k', 'during');
    assert.equal(held.answer(), null, 'not refused at once: held while the hand-over runs');
    for (let i = 0; i < 20 && held.answer() === null; i++) await cluster.tick();
    assert.equal(cluster.leader()?.id, to);
    assert.equal(held.answer()?.error?.code, 'not_leader');
    assert.equal((held.answer()?.error?.details['leader'] as { id: string } | null)?.id, to, 'the refusal names the new leader');
    // Never proposed by the old leader: the new one holds no such key.
    const after = put(cluster.node(to), 'k2', 'after');
    for (let i = 0; i < 20 && after.answer() === null; i++) await cluster.tick();
    assert.equal(after.answer()?.error, null);
    assert.equal(cluster.node(to).stateMachine.get('k'), undefined);
  } finally {
    cluster.stop();
  }
});

test('a write held during a hand-over that is abandoned is proposed by the leader that stayed', async () => {
  const cluster = await startCluster();
  try {
    const old = cluster.leader() as NodeDriver;
    const [to, other] = ids.filter((id) => id !== old.id) as [string, string];
    // The transferee stops: the hand-over is abandoned after an election timeout.
    cluster.node(to).stop();
    assert.equal(old.transferLeadership(to).ok, true);
    const held = put(old, 'k', 'v');
    for (let i = 0; i < 30 && held.answer() === null; i++) await cluster.tick();
    assert.equal(cluster.leader()?.id, old.id);
    assert.equal(held.answer()?.error, null, JSON.stringify(held.answer()?.error));
    assert.equal(held.answer()?.result?.ok, true);
    assert.equal(cluster.node(other).core.currentLeader(), old.id);
  } finally {
    cluster.stop();
  }
});

test('reads waiting for a version this node has not applied are bounded: beyond readsPendingMax they are refused busy', async () => {
  const cluster = await startCluster({ readsPendingMax: 4 });
  try {
    const leader = cluster.leader() as NodeDriver;
    const answers: (string | null)[] = [];
    const farAhead = leader.stateMachine.appliedIndex() + 1_000;
    for (let i = 0; i < 6; i++) {
      leader.submitRead({ consistency: 'local', minVersion: farAhead, timeoutMs: 50 }, () => 'read', (error) => answers.push(error === null ? null : error.code));
    }
    assert.deepEqual(answers, ['busy', 'busy'], 'the two beyond the bound are refused at once');
    for (let i = 0; i < 10; i++) await cluster.tick();
    assert.deepEqual(answers, ['busy', 'busy', 'timeout', 'timeout', 'timeout', 'timeout'], 'the four within it wait out their deadline');
  } finally {
    cluster.stop();
  }
});
