/**
 * Automatic failover: writers keep going while the leader is killed (kill -9 through the
 * client's die() admin call). The client notices, finds the new leader and retries with
 * the same idempotency key, so each write is applied at most once; a call fails only with a
 * typed error after its deadline.
 *
 *   npm start -- --faults        # die() needs nodes started with --faults
 *   npm run build && node dist/examples/failover.js [--transport grpc]
 *
 * The killed node stays down (`up` reports it); stop the cluster with Ctrl-C and run
 * `npm start -- --faults` again to bring it back with its data.
 */

import { QuorumKvError, connect } from '../index.js';
import { exampleTarget } from './endpoints.js';

const { endpoints, transport } = await exampleTarget();
const kv = await connect({ endpoints, transport, deadlineMs: 10_000 });
try {
  const latenciesMs: number[] = [];
  const errors = new Map<string, number>();
  let acked = 0;
  let stop = false;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const started = performance.now();
      try {
        await kv.put(`failover/${w}/${i}`, `value ${i}`);
        acked++;
        latenciesMs.push(performance.now() - started);
      } catch (error) {
        if (!(error instanceof QuorumKvError)) throw error;
        errors.set(error.name, (errors.get(error.name) ?? 0) + 1);
      }
    }
  });

  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const leader = kv.leaderId;
  if (leader === null) throw new Error('no leader known');
  console.log(`${acked} writes acknowledged; killing leader ${leader} (kill -9)…`);
  const killedAt = performance.now();
  const ackedAtKill = acked;
  await kv.die(leader, { clean: false });

  while (kv.leaderId === null || kv.leaderId === leader) {
    if (performance.now() - killedAt > 15_000) throw new Error('no new leader after 15 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  console.log(`new leader ${kv.leaderId} known to the client after ${Math.round(performance.now() - killedAt)} ms`);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  stop = true;
  await Promise.all(writers);

  latenciesMs.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))] ?? 0);
  console.log(`${acked} writes acknowledged (${acked - ackedAtKill} after the kill); latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`);
  console.log(errors.size === 0 ? 'no call failed' : `failed calls: ${[...errors].map(([name, n]) => `${n} ${name}`).join(', ')}`);
} finally {
  await kv.close();
}
