/**
 * Leader election: three candidates campaign; one leads, announces itself, and resigns;
 * the next takes over. An observer prints every leader as it changes.
 *
 *   npm start                                # in one terminal: a local 3-node cluster
 *   npm run build && node dist/examples/election.js
 */

import { connect } from '../index.js';
import { exampleTarget } from './endpoints.js';

const { endpoints } = await exampleTarget();
const kv = await connect({ endpoints });
try {
  const name = `examples-${process.pid}`;
  const observed = (async () => {
    let n = 0;
    for await (const leader of kv.elect(name).observe()) {
      console.log(`observer: the leader is now ${leader.value}`);
      if (++n === 4) return;
    }
  })();
  const candidate = async (id: string): Promise<void> => {
    const election = kv.elect(name, { ttlMs: 5_000 });
    await election.campaign(`${id} (starting)`);
    await election.proclaim(`${id} (serving)`);
    await new Promise((r) => setTimeout(r, 300));
    await election.resign();
  };
  await Promise.all(['c1', 'c2', 'c3'].map(candidate));
  await Promise.race([observed, new Promise((r) => setTimeout(r, 2_000))]);
} finally {
  await kv.close();
}
