/**
 * Session consistency: read-your-writes and monotonic reads from ANY node, without asking
 * the leader. The client remembers the highest version it wrote or read; a `session` read
 * asks whichever node it reaches to first apply at least that version.
 *
 *   npm start
 *   npm run build && node dist/examples/session-reads.js [--transport grpc]
 */

import { connect } from '../index.js';
import { exampleTarget } from './endpoints.js';

const { endpoints, transport } = await exampleTarget();
const writer = await connect({ endpoints, transport });
const reader = await connect({ endpoints, transport });
try {
  // 1. Read-your-writes: session reads are spread over all nodes (followers too), yet each
  //    one sees the write just made.
  let stale = 0;
  for (let i = 0; i < 200; i++) {
    const { version } = await writer.put('counter', String(i));
    const seen = await writer.get('counter', { consistency: 'session' });
    if (seen === undefined || seen.version < version) stale++;
  }
  console.log(`200 writes, each read back with consistency 'session' from any node: ${stale} stale reads (always 0)`);
  console.log(`the writer's session version is now ${writer.sessionVersion}`);

  // 2. Plain `local` reads promise nothing: a follower may not have applied the write yet.
  let localStale = 0;
  for (let i = 0; i < 200; i++) {
    const { version } = await writer.put('counter', `local ${i}`);
    const seen = await writer.get('counter', { consistency: 'local' });
    if (seen === undefined || seen.version < version) localStale++;
  }
  console.log(`200 writes read back with consistency 'local': ${localStale} stale reads (often 0 on one machine; may be more under load)`);

  // 3. Across clients: hand the version over (in a cookie, a message, …) as minVersion.
  const { version } = await writer.put('profile/alice', 'new avatar');
  const seen = await reader.get('profile/alice', { minVersion: version });
  console.log(`another client read with minVersion ${version}:`, seen);

  // 4. Monotonic reads: a session never goes back in time, whichever node answers.
  let previous = 0;
  for (let i = 0; i < 50; i++) {
    const entry = await reader.get('counter', { consistency: 'session' });
    if (entry !== undefined && entry.version < previous) throw new Error('went back in time');
    previous = entry?.version ?? previous;
  }
  console.log(`50 session reads by the second client never went back in time (last version ${previous})`);
} finally {
  await writer.close();
  await reader.close();
}
