/**
 * A distributed lock with fencing: four workers increment a shared counter; only the lock
 * keeps their read-then-write increments from overlapping, and the fence keeps a worker
 * that lost the lock (its lease expired while it was paused) from writing.
 *
 *   npm start                                # in one terminal: a local 3-node cluster
 *   npm run build && node dist/examples/lock.js
 */

import { connect } from '../index.js';
import { exampleTarget } from './endpoints.js';

const { endpoints } = await exampleTarget();
const kv = await connect({ endpoints });
try {
  await kv.put('examples/counter', '0');
  const worker = async (name: string): Promise<number> => {
    let done = 0;
    for (let i = 0; i < 5; i++) {
      const lock = await kv.lock('examples-counter', { ttlMs: 5_000 });
      try {
        const n = Number((await kv.get('examples/counter'))?.value ?? '0');
        // Fenced: lands only if this lock's key still exists at its version.
        const r = await kv.txn(lock.fenced({ success: [{ op: 'put', key: 'examples/counter', value: String(n + 1) }] }));
        if (r.succeeded) done++;
        console.log(`${name} holds the lock (token ${lock.version}): ${n} -> ${n + 1}${r.succeeded ? '' : ' REFUSED (lock lost)'}`);
      } finally {
        await lock.unlock();
      }
    }
    return done;
  };
  const counts = await Promise.all(['w1', 'w2', 'w3', 'w4'].map(worker));
  console.log(`increments: ${counts.reduce((a, b) => a + b, 0)}, counter: ${(await kv.get('examples/counter'))?.value}`);
} finally {
  await kv.close();
}
