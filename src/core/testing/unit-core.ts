/**
 * A core for unit tests that drive ready()/advance() by hand: small windows and limits so
 * that a test reaches them in a few steps, fixed randomness, and nothing persisted yet.
 */

import { createPrng } from '../../stdx/prng.js';
import type { CoreOptions } from '../options.js';
import { RaftCore } from '../raft.js';
import type { LogReader, NodeId } from '../types.js';

export function newUnitCore(id: NodeId, log: LogReader, overrides: Partial<CoreOptions> = {}): RaftCore {
  return new RaftCore({
    id,
    log,
    hardState: { term: 0, vote: null, commit: 0 },
    appliedIndex: 0,
    prng: createPrng(1),
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1,
    preVote: false,
    checkQuorum: false,
    inflightMessagesMax: 4,
    appendBytesMax: 1 << 20,
    appendEntriesMax: 64,
    uncommittedEntriesMax: 8,
    readsPendingMax: 2,
    readIndexTimeoutTicks: 20,
    applyEntriesMax: 100,
    applyBytesMax: 1 << 20,
    snapshotTimeoutTicks: 50,
    pinnedLeader: null,
    memberTimeoutTicks: 30,
    persistsInFlightMax: 1,
    promoteLagEntriesMax: 64,
    readLeaseTicks: 0,
    clockTicks: () => 0,
    ...overrides,
  });
}
