/**
 * Why a watch stream ended, as the API error every transport ends it with (HTTP's last
 * line, gRPC's status and trailer): one wording and one set of details for both.
 */

import type { WatchEnd } from '../node/watch.js';
import { QkvError } from '../wire/errors.js';

export function watchEndError(reason: WatchEnd): QkvError {
  switch (reason.error) {
    case 'compacted':
      return new QkvError('compacted', `The history before version ${reason.oldestVersion} was compacted; watch from ${reason.oldestVersion} or later`, { oldestVersion: reason.oldestVersion });
    case 'slow_consumer':
      return new QkvError('slow_consumer', `The watcher did not keep up; resume from version ${reason.lastVersion + 1}`, { lastVersion: reason.lastVersion });
    case 'rolled_back':
      return new QkvError('rolled_back', `Versions from ${reason.fromVersion} on were rolled back (weak quorum); resume from ${reason.fromVersion}`, { fromVersion: reason.fromVersion });
    case 'shutting_down':
      return new QkvError('shutting_down', 'This node is stopping; watch another node from the next version', {}, 1_000);
  }
}
