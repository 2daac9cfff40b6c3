/**
 * The core's settings that cannot work together, refused when a core is built (a wrong
 * setting is a programming error of the driver, not a runtime condition).
 */

import { assert } from '../stdx/assert.js';
import type { CoreOptions } from './options.js';

export function assertValidOptions(options: CoreOptions): void {
  assert(options.electionTimeoutTicks > options.heartbeatIntervalTicks, () =>
    `electionTimeoutTicks ${options.electionTimeoutTicks} must exceed heartbeatIntervalTicks ${options.heartbeatIntervalTicks}`,
  );
  assert(options.inflightMessagesMax >= 1, 'inflightMessagesMax must be >= 1');
  assert(Number.isSafeInteger(options.persistsInFlightMax) && options.persistsInFlightMax >= 1, 'persistsInFlightMax must be an integer >= 1');
  // A live leader may take up to an election timeout to confirm a round (check-quorum
  // deposes it after that): a follower that gave up sooner would fail reads needlessly.
  assert(options.readIndexTimeoutTicks >= options.electionTimeoutTicks, () =>
    `readIndexTimeoutTicks ${options.readIndexTimeoutTicks} must be at least electionTimeoutTicks ${options.electionTimeoutTicks}`,
  );
  // The lease rests on followers refusing votes (checkQuorum) for an election timeout.
  assert(options.readLeaseTicks === 0 || (options.checkQuorum && options.readLeaseTicks < options.electionTimeoutTicks), () =>
    `readLeaseTicks ${options.readLeaseTicks} needs checkQuorum and must be below electionTimeoutTicks ${options.electionTimeoutTicks}`,
  );
}
