/**
 * The behaviour every PeerTransport must show, as one node:test suite that the TCP and
 * the in-memory transports both run (memory.test.ts, tcp.test.ts). Test support only:
 * nothing outside test files may import it.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeId } from '../../core/types.js';
import type { PeerTransport } from '../types.js';

export interface ContractMessage {
  readonly seq: number;
  readonly text?: string;
  readonly payload?: Uint8Array;
  readonly big?: number;
}

export interface ContractCluster {
  /** Three transports named n1, n2, n3, each knowing the other two. */
  readonly nodes: ReadonlyMap<NodeId, PeerTransport<ContractMessage>>;
  /** Closes every transport and anything else the factory started. */
  close(): Promise<void>;
}

/** Polls `condition` every few ms until it holds; fails with `what` after `deadlineMs`. */
export async function waitFor(condition: () => boolean, what: string, deadlineMs = 5_000): Promise<void> {
  const startMs = performance.now();
  while (!condition()) {
    if (performance.now() - startMs > deadlineMs) assert.fail(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

type Received = Array<{ from: NodeId; message: ContractMessage }>;

function collect(transport: PeerTransport<ContractMessage>): Received {
  const received: Received = [];
  transport.onMessage((from, message) => received.push({ from, message }));
  return received;
}

function node(cluster: ContractCluster, id: NodeId): PeerTransport<ContractMessage> {
  const transport = cluster.nodes.get(id);
  assert.ok(transport, `cluster has no node ${id}`);
  return transport;
}

export function peerTransportContract(name: string, makeCluster: () => Promise<ContractCluster>): void {
  test(`${name}: messages flow between every pair of nodes, in order on each link`, async () => {
    const cluster = await makeCluster();
    try {
      const ids = [...cluster.nodes.keys()];
      const inboxes = new Map(ids.map((id) => [id, collect(node(cluster, id))]));
      const perLink = 50;
      for (const from of ids) {
        for (const to of ids) {
          if (from === to) continue;
          for (let seq = 0; seq < perLink; seq++) {
            assert.equal(node(cluster, from).send(to, { seq, text: `${from}->${to}` }), true);
          }
        }
      }
      const expected = perLink * (ids.length - 1);
      await waitFor(() => ids.every((id) => inboxes.get(id)?.length === expected), 'every message to arrive');
      for (const [to, inbox] of inboxes) {
        for (const from of ids) {
          if (from === to) continue;
          const fromPeer = inbox.filter((r) => r.from === from);
          assert.deepEqual(
            fromPeer.map((r) => r.message.seq),
            Array.from({ length: perLink }, (_, i) => i),
            `order on link ${from}->${to}`,
          );
          assert.ok(fromPeer.every((r) => r.message.text === `${from}->${to}`));
        }
      }
    } finally {
      await cluster.close();
    }
  });

  test(`${name}: byte payloads arrive as Uint8Array and safe integers arrive exactly`, async () => {
    const cluster = await makeCluster();
    try {
      const inbox = collect(node(cluster, 'n2'));
      const payload = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
      const bigs = [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 3, -(2 ** 31) - 1];
      bigs.forEach((big, seq) => assert.equal(node(cluster, 'n1').send('n2', { seq, big, payload }), true));
      await waitFor(() => inbox.length === bigs.length, 'all messages');
      inbox.forEach(({ from, message }, i) => {
        assert.equal(from, 'n1');
        assert.equal(message.big, bigs[i]);
        assert.ok(message.payload instanceof Uint8Array);
        assert.deepEqual([...(message.payload ?? [])], [...payload]);
      });
    } finally {
      await cluster.close();
    }
  });

  test(`${name}: sending to a node that is not a member is refused`, async () => {
    const cluster = await makeCluster();
    try {
      assert.equal(node(cluster, 'n1').send('stranger', { seq: 1 }), false);
      assert.equal(node(cluster, 'n1').peerState('stranger').connected, false);
      assert.equal(node(cluster, 'n1').peerMeta('stranger'), null);
    } finally {
      await cluster.close();
    }
  });

  test(`${name}: a closed transport refuses sends and receives nothing more`, async () => {
    const cluster = await makeCluster();
    try {
      const inbox = collect(node(cluster, 'n2'));
      assert.equal(node(cluster, 'n1').send('n2', { seq: 1 }), true);
      await waitFor(() => inbox.length === 1, 'the first message');
      await node(cluster, 'n2').close();
      assert.equal(node(cluster, 'n2').send('n1', { seq: 2 }), false);
      node(cluster, 'n1').send('n2', { seq: 3 });
      // Absence cannot be awaited: give a stray delivery time to show up.
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(inbox.length, 1);
    } finally {
      await cluster.close();
    }
  });

  test(`${name}: peers report each other connected and show their advertised meta`, async () => {
    const cluster = await makeCluster();
    try {
      const ids = [...cluster.nodes.keys()];
      for (const id of ids) collect(node(cluster, id));
      // Every node sends once so that, in TCP, every peer has dialled (meta comes with the handshake).
      for (const from of ids) for (const to of ids) if (from !== to) node(cluster, from).send(to, { seq: 0 });
      await waitFor(
        () => ids.every((a) => ids.every((b) => a === b || (node(cluster, a).peerState(b).connected && node(cluster, a).peerMeta(b) !== null))),
        'every link connected with meta',
      );
      assert.deepEqual(node(cluster, 'n1').peerMeta('n2'), { name: 'n2' });
      assert.equal(node(cluster, 'n1').peerState('n2').droppedMessages, 0);
    } finally {
      await cluster.close();
    }
  });
}
