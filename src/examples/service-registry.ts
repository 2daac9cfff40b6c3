/**
 * Service registration: an instance announces itself under services/web/ with a lease it
 * keeps alive; a client watches the prefix and sees it arrive, and leave when the instance
 * stops keeping the lease alive (here: release(), as a crash would) once the TTL is over.
 *
 *   npm start                                # in one terminal: a local 3-node cluster
 *   npm run build && node dist/examples/service-registry.js
 */

import { connect } from '../index.js';
import { exampleTarget } from './endpoints.js';

const { endpoints } = await exampleTarget();
const kv = await connect({ endpoints });
try {
  const watch = kv.watch('services/web/');
  const seen = (async () => {
    for await (const { version, changes } of watch) {
      for (const c of changes) console.log(`v${version} ${c.type === 'put' ? `up:   ${c.key} = ${c.value}` : `gone: ${c.key}`}`);
      if (changes.some((c) => c.type === 'delete')) return;
    }
  })();
  const lease = await kv.lease(2_000); // kept alive every ~667 ms until released
  await kv.put(`services/web/${process.pid}`, 'http://127.0.0.1:8080', { lease });
  console.log(`registered with lease ${lease.id}; kept alive for 3 s, then abandoned`);
  await new Promise((r) => setTimeout(r, 3_000));
  lease.release();
  await seen;
  watch.close();
} finally {
  await kv.close();
}
