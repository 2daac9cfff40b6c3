/**
 * The client in five minutes: connect, write, read, compare-and-set, list, delete.
 *
 *   npm start                                # in one terminal: a local 3-node cluster
 *   npm run build && node dist/examples/basic.js [--transport grpc]
 *
 * In an application, import from 'quorumkv' instead of '../index.js'.
 */

import { VersionConflictError, connect } from '../index.js';
import { exampleTarget } from './endpoints.js';

const { endpoints, transport } = await exampleTarget();
const kv = await connect({ endpoints, transport });
try {
  console.log(`connected over ${transport} to ${kv.knownEndpoints.join(', ')}; leader ${kv.leaderId ?? '(electing)'}`);

  // Every write gets a version: the log index that committed it.
  const { version } = await kv.put('greeting', 'hello');
  console.log(`put greeting -> version ${version}`);
  console.log('get greeting ->', await kv.get('greeting'));
  console.log('get missing  ->', await kv.get('no-such-key')); // undefined, not an error

  // Compare-and-set: write only if nobody changed the key since we read it.
  await kv.put('greeting', 'hello again', { ifVersion: version });
  try {
    await kv.put('greeting', 'lost update', { ifVersion: version });
  } catch (error) {
    if (!(error instanceof VersionConflictError)) throw error;
    console.log(`second CAS refused: expected version ${error.expectedVersion}, the key is at ${error.actualVersion}`);
  }

  for (const fruit of ['apple', 'banana', 'cherry']) await kv.put(`fruit/${fruit}`, fruit.toUpperCase());
  const page = await kv.list({ prefix: 'fruit/', limit: 2 });
  console.log('first page:', page.items.map((e) => e.key), 'next:', page.next);
  for await (const entry of kv.listAll({ prefix: 'fruit/' })) console.log(`  ${entry.key} = ${entry.value} (v${entry.version})`);

  const deleted = await kv.delete('greeting');
  console.log(`delete greeting -> version ${deleted.version}, deleted: ${deleted.deleted}`);

  const status = await kv.status();
  for (const node of status.nodes) {
    console.log(node.ok ? `  ${node.status.id} ${node.status.role} term ${node.status.term} applied ${node.status.appliedIndex}` : `  ${node.endpoint} unreachable`);
  }
} finally {
  await kv.close();
}
