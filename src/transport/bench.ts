/**
 * Loopback throughput of the TCP transport: `node dist/transport/bench.js [seconds]`.
 * Two transports in this process; n1 sends small messages (about 100 bytes encoded) to
 * n2 as fast as the outbound queue accepts them, one burst per event-loop turn, and the
 * script prints messages/s received. A manual tool, never run by the test suite: timing
 * assertions in tests are flaky.
 */

import { createPrng } from '../stdx/prng.js';
import { FrameEncoder } from './frame.js';
import { createTcpTransport } from './tcp.js';
import type { TcpTransportOptions } from './types.js';

interface BenchMessage {
  readonly type: 'heartbeat';
  readonly from: string;
  readonly to: string;
  readonly term: number;
  readonly commit: number;
  readonly acked: number;
  readonly readRound: number;
  readonly pad: Uint8Array;
}

const host = '127.0.0.1';
const burstMessagesMax = 2_000;

function benchOptions(nodeId: string, peers: ReadonlyMap<string, { host: string; port: number }>): TcpTransportOptions {
  return {
    self: { nodeId, clusterId: 'bench', memberId: nodeId },
    meta: {},
    listen: { host, port: 0 },
    peers,
    frameBytesMax: 1 << 20,
    queueBytesMax: 8 << 20,
    queueMessagesMax: 10_000,
    reconnectDelayMsMin: 10,
    reconnectDelayMsMax: 1000,
  };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? '5');
  const message: BenchMessage = {
    type: 'heartbeat',
    from: 'n1',
    to: 'n2',
    term: 12,
    commit: 1_234_567,
    acked: 1_234_567,
    readRound: 42,
    pad: new Uint8Array(28).fill(7),
  };
  const frameBytes = new FrameEncoder({ frameBytesMax: 1 << 20 }).encode(message)?.length ?? 0;

  const n2 = await createTcpTransport<BenchMessage>(benchOptions('n2', new Map([['n1', { host, port: 1 }]])), {
    random: createPrng(2).nextFloat,
  });
  const n1 = await createTcpTransport<BenchMessage>(benchOptions('n1', new Map([['n2', n2.address]])), {
    random: createPrng(1).nextFloat,
  });
  let received = 0;
  n2.onMessage(() => received++);
  while (!n1.peerState('n2').connected) await new Promise((resolve) => setTimeout(resolve, 5));

  let running = true;
  let refused = 0;
  const pump = (): void => {
    if (!running) return;
    for (let i = 0; i < burstMessagesMax; i++) {
      if (!n1.send('n2', message)) {
        refused++;
        break;
      }
    }
    setImmediate(pump);
  };

  // Warm up, then measure.
  pump();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const startReceived = received;
  const startMs = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsedS = (performance.now() - startMs) / 1000;
  const count = received - startReceived;
  running = false;
  await Promise.all([n1.close(), n2.close()]);

  const perSecond = count / elapsedS;
  console.log(
    `tcp transport loopback: ${Math.round(perSecond).toLocaleString('en')} messages/s, ` +
      `${((perSecond * frameBytes) / 1e6).toFixed(1)} MB/s (${frameBytes}-byte frames incl. 4-byte header), ` +
      `${refused.toLocaleString('en')} bursts cut short by a full queue, ${elapsedS.toFixed(1)} s`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
