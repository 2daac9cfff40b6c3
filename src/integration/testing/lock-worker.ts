/**
 * One process of the lock test (integration/lock.test.ts): for `durationMs`, takes the lock,
 * reads the counter, writes it plus one in a transaction fenced by the lock, and releases
 * the lock. Prints {"acked","unknown","failed"} as its last line.
 *
 * Usage: node lock-worker.js <endpoints,comma-separated> <durationMs>
 */
import { OutcomeUnknownError, QuorumKvError, connect } from '../../client/index.js';

const [endpointsArg = '', durationArg = '10000'] = process.argv.slice(2);
const kv = await connect({ endpoints: endpointsArg.split(','), deadlineMs: 10_000 });
const until = performance.now() + Number(durationArg);
let acked = 0;
let unknown = 0;
let failed = 0;
while (performance.now() < until) {
  let lock;
  try {
    lock = await kv.lock('counter', { ttlMs: 3_000, deadlineMs: 10_000 });
  } catch (error) {
    if (!(error instanceof QuorumKvError)) throw error;
    failed++;
    continue;
  }
  try {
    // A plain read and a blind write: only the lock keeps two increments from overlapping.
    const current = await kv.get('counter');
    const next = Number(current?.value ?? '0') + 1;
    const r = await kv.txn(lock.fenced({ success: [{ op: 'put', key: 'counter', value: String(next) }] }));
    if (r.succeeded) acked++;
    else failed++; // the lock was lost before the write: fencing refused it
  } catch (error) {
    if (error instanceof OutcomeUnknownError) unknown++;
    else if (error instanceof QuorumKvError) failed++;
    else throw error;
  } finally {
    await lock.unlock().catch(() => undefined);
  }
}
await kv.close();
process.stdout.write(`${JSON.stringify({ acked, unknown, failed })}\n`);
