/**
 * What a client is told when its linearizable read got no read point: a retryable error,
 * never a stale value.
 */

import type { NodeId, ReadFailure } from '../core/types.js';
import { QkvError } from '../wire/errors.js';
import type { LeaderInfo } from '../wire/types.js';

export function readFailureError(f: ReadFailure, self: NodeId, leader: LeaderInfo | null, notLeader: () => QkvError): QkvError {
  switch (f.reason) {
    case 'notLeader':
      // Leadership ended before confirming the read, or the leader asked no longer leads:
      // the hint is whoever this node now believes leads (none during an election).
      return notLeader();
    case 'busy':
      return new QkvError('busy', 'the leader has too many reads waiting for a read point', {}, 100);
    case 'timeout':
      return new QkvError('timeout', `the leader did not answer ${self}'s read-index request in time`, { leader }, 100);
  }
}
