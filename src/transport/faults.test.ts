import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrng } from '../stdx/prng.js';
import { noFaults, withFaults } from './faults.js';
import type { FaultyTransport } from './faults.js';
import { createMemoryNetwork } from './memory.js';
import { waitFor } from './testing/contract.js';
import type { FaultRules } from './types.js';

interface Pair {
  readonly a: FaultyTransport<number>;
  readonly b: FaultyTransport<number>;
  /** What b received from a, with the time it arrived. */
  readonly received: Array<{ n: number; atMs: number }>;
  close(): Promise<void>;
}

function pair(rulesA: Partial<FaultRules> = {}, rulesB: Partial<FaultRules> = {}, seed = 1): Pair {
  const network = createMemoryNetwork<number>({ queueMessagesMax: 10_000 });
  const a = withFaults(network.join('a'), { ...noFaults, ...rulesA }, { random: createPrng(seed).nextFloat });
  const b = withFaults(network.join('b'), { ...noFaults, ...rulesB }, { random: createPrng(seed + 1).nextFloat });
  const received: Array<{ n: number; atMs: number }> = [];
  b.onMessage((_from, n) => received.push({ n, atMs: performance.now() }));
  return {
    a,
    b,
    received,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

test('each message is delayed by at least delayMsMin and arrives in the order of its drawn delay', async () => {
  const seed = 1;
  const p = pair({ delayMsMin: 20, delayMsMax: 60 }, {}, seed);
  try {
    // The same generator the sender uses: one draw per message (dropRate 0 draws nothing).
    const draws = createPrng(seed);
    const plannedMs = Array.from({ length: 40 }, () => 20 + draws.nextFloat() * 40);
    const sentAtMs = new Map<number, number>();
    for (let n = 0; n < 40; n++) {
      sentAtMs.set(n, performance.now());
      assert.equal(p.a.send('b', n), true);
    }
    assert.equal(p.a.peerState('b').queuedMessages, 40, 'delayed messages count as queued');
    await waitFor(() => p.received.length === 40, 'every delayed message');
    const delaysMs = p.received.map(({ n, atMs }) => atMs - (sentAtMs.get(n) ?? 0));
    // Never early (1 ms of clock granularity aside). How late depends on machine load,
    // so the upper bound shows up as order instead: by drawn delay, not by send order.
    assert.ok(Math.min(...delaysMs) >= 19, `shortest delay ${Math.min(...delaysMs)} ms`);
    // Due time = send time + drawn delay (the send time matters when the loop is preempted).
    const dueMs = p.received.map(({ n }) => (sentAtMs.get(n) ?? 0) + (plannedMs[n] as number));
    dueMs.forEach((ms, i) => {
      if (i > 0) assert.ok(ms >= (dueMs[i - 1] as number) - 2, `arrival ${i} due at ${ms} ms, after ${dueMs[i - 1]} ms`);
    });
    assert.notDeepEqual(
      p.received.map((r) => r.n),
      Array.from({ length: 40 }, (_, i) => i),
      'different delays reorder messages, as on a real network',
    );
  } finally {
    await p.close();
  }
});

test('with equal delays messages keep their order', async () => {
  const p = pair({ delayMsMin: 5, delayMsMax: 5 });
  try {
    for (let n = 0; n < 100; n++) p.a.send('b', n);
    await waitFor(() => p.received.length === 100, 'every message');
    assert.deepEqual(
      p.received.map((r) => r.n),
      Array.from({ length: 100 }, (_, i) => i),
    );
  } finally {
    await p.close();
  }
});

test('about dropRate of the messages are lost, silently to the sender', async () => {
  const p = pair({ dropRate: 0.3 });
  try {
    const total = 4000;
    for (let n = 0; n < total; n++) assert.equal(p.a.send('b', n), true);
    const dropped = p.a.peerState('b').droppedMessages;
    assert.ok(Math.abs(dropped / total - 0.3) < 0.03, `dropped ${dropped} of ${total}`);
    await waitFor(() => p.received.length === total - dropped, 'the surviving messages');
  } finally {
    await p.close();
  }
});

test('blockedTo stops outgoing messages until the rule is lifted', async () => {
  const p = pair({ blockedTo: ['b'] });
  try {
    assert.equal(p.a.send('b', 1), true);
    assert.equal(p.a.peerState('b').droppedMessages, 1);
    p.a.setRules({ blockedTo: [] });
    assert.deepEqual(p.a.rules().blockedTo, []);
    p.a.send('b', 2);
    // The link is ordered: had 1 been sent, it would arrive before 2.
    await waitFor(() => p.received.length > 0, 'the message sent after unblocking');
    assert.deepEqual(
      p.received.map((r) => r.n),
      [2],
    );
  } finally {
    await p.close();
  }
});

test('blockedFrom discards incoming messages from that peer only', async () => {
  const network = createMemoryNetwork<string>();
  const a = network.join('a');
  const c = network.join('c');
  const b = withFaults(network.join('b'), { ...noFaults, blockedFrom: ['a'] });
  const got: string[] = [];
  b.onMessage((from, m) => got.push(`${from}:${m}`));
  try {
    a.send('b', 'from a');
    c.send('b', 'from c');
    await waitFor(() => b.peerState('a').droppedMessages === 1 && got.length === 1, 'the drop and the delivery');
    assert.deepEqual(got, ['c:from c']);
    b.setRules({ blockedFrom: [] });
    a.send('b', 'again');
    await waitFor(() => got.length === 2, 'delivery after the partition heals');
    assert.equal(got[1], 'a:again');
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

test('a partition set while messages are delayed stops them too', async () => {
  const p = pair({ delayMsMin: 30, delayMsMax: 30 });
  try {
    for (let n = 0; n < 5; n++) p.a.send('b', n);
    p.a.setRules({ blockedTo: ['b'] });
    await waitFor(() => p.a.peerState('b').droppedMessages === 5, 'the delayed messages to be dropped');
    assert.equal(p.a.peerState('b').queuedMessages, 0);
    assert.deepEqual(p.received, []);
  } finally {
    await p.close();
  }
});

test('the delay queue is bounded: beyond delayedMessagesMax send() refuses', async () => {
  const network = createMemoryNetwork<number>();
  const a = withFaults(network.join('a'), { ...noFaults, delayMsMin: 1000, delayMsMax: 1000 }, { delayedMessagesMax: 3 });
  const b = network.join('b');
  try {
    assert.deepEqual([1, 2, 3, 4].map((n) => a.send('b', n)), [true, true, true, false]);
    assert.equal(a.peerState('b').droppedMessages, 1);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('closing drops delayed messages and leaves no timer behind', async () => {
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const p = pair({ delayMsMin: 10_000, delayMsMax: 10_000 });
  p.a.send('b', 1);
  assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timersBefore + 1);
  await p.close();
  assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timersBefore);
  assert.equal(p.a.send('b', 2), false);
});

test('invalid rules are refused with the reason', () => {
  const network = createMemoryNetwork<number>();
  const a = withFaults(network.join('a'), noFaults);
  assert.throws(() => a.setRules({ dropRate: 1.5 }), /dropRate must be in \[0, 1\]/);
  assert.throws(() => a.setRules({ delayMsMin: 10, delayMsMax: 5 }), /delayMsMin <= delayMsMax/);
  assert.deepEqual(a.rules(), noFaults, 'a refused change leaves the rules as they were');
  assert.throws(() => withFaults(network.join('b'), { ...noFaults, delayMsMin: -1 }), /delays must satisfy/);
});
