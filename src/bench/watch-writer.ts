/**
 * The writer of `quorumkv bench-watch`, in a worker thread of its own so that the
 * watchers' work in the main thread does not hold back its writes. Writes to `fan/` as
 * fast as they are acknowledged (or at `rate` per second) for `seconds`, each value starting with its send time
 * (epoch milliseconds, fractional: the same clock in every thread), then posts the count.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connect } from '../client/index.js';
import type * as Etcd3Module from 'etcd3';

interface WriterJob {
  readonly system: 'quorumkv' | 'etcd';
  readonly endpoints: readonly string[];
  readonly seconds: number;
  readonly valueBytes: number;
  /** Writes per second to aim at (0: as fast as acknowledged). */
  readonly rate: number;
}

const job = workerData as WriterJob;
const now = (): number => performance.timeOrigin + performance.now();
const pad = 'x'.repeat(Math.max(0, job.valueBytes - 20));
let put: (key: string, value: string) => Promise<unknown>;
let close: () => Promise<void>;
if (job.system === 'quorumkv') {
  const kv = await connect({ endpoints: [...job.endpoints] });
  put = (k, v) => kv.put(k, v);
  close = () => kv.close();
} else {
  const mod: typeof Etcd3Module = await import('etcd3');
  const client = new mod.Etcd3({ hosts: [...job.endpoints] });
  put = (k, v) => client.put(k).value(v).exec();
  close = async () => client.close();
}
const end = performance.now() + job.seconds * 1000;
let writes = 0;
const start = performance.now();
while (performance.now() < end) {
  await put(`fan/${writes % 100}`, `${now()}|${pad}`);
  writes++;
  // Open loop at `rate`: the next write leaves on schedule, not when the last was acknowledged.
  const due = start + (writes * 1000) / job.rate;
  if (job.rate > 0 && due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
}
await close();
parentPort?.postMessage({ writes });
