/**
 * The benchmark's cluster runner: a node that cannot start is reported with the end of
 * its log (what a user needs to see).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster } from '../bench/cluster.js';

test('a node that refuses its flags fails the start with its own message', { timeout: 60_000 }, async () => {
  await assert.rejects(LocalCluster.start({ nodes: 2, nodeFlags: ['--write-quorum', '7'] }), (error: Error) => {
    assert.match(error.message, /node n\d exited while waiting for a leader/);
    assert.match(error.message, /--write-quorum must be majority, all or 0\.\.1 with 2 members, got "7"/);
    return true;
  });
});
