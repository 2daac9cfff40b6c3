/**
 * The log's metadata records as both storage implementations start and derive them: the
 * hard state of a fresh node, the snapshot meta of an empty log, and the snapshot meta a
 * compaction or a snapshot read produces (validated against the log it comes from).
 *
 * Must never: read or write storage itself; callers pass the log's bounds and terms in.
 */

import type { ClusterConfig, HardState, SnapshotMeta } from '../core/types.js';
import { assert } from '../stdx/assert.js';
import { isIndex } from '../stdx/safe-int.js';

export function freshHardState(): HardState {
  return { term: 0, vote: null, commit: 0 };
}

export function initialSnapshotMeta(config: ClusterConfig): SnapshotMeta {
  return { index: 0, term: 0, config };
}

/**
 * Validates a compaction request and returns the new snapshot meta, or null when the log
 * is already compacted that far.
 */
export function compactionMeta(
  index: number,
  config: ClusterConfig,
  current: SnapshotMeta,
  lastIndex: number,
  durableAppliedIndex: number,
  term: (index: number) => number | undefined,
): SnapshotMeta | null {
  assert(isIndex(index), () => `compact index must be a safe index, got ${index}`);
  assert(
    index <= durableAppliedIndex,
    () => `Cannot compact the log up to ${index}: the state machine is durable only up to ${durableAppliedIndex}`,
  );
  assert(index <= lastIndex, () => `Cannot compact the log up to ${index}: log ends at ${lastIndex}`);
  assert(config.members.length > 0, 'compaction config has no members');
  if (index <= current.index) return null;
  const t = term(index);
  assert(t !== undefined, () => `Cannot compact the log up to ${index}: no term for that index`);
  return { index, term: t, config };
}

/** Meta of a snapshot read at `appliedIndex`: its term comes from the log (or the snapshot it starts after). */
export function snapshotSourceMeta(appliedIndex: number, config: ClusterConfig, term: (index: number) => number | undefined): SnapshotMeta {
  const t = term(appliedIndex);
  assert(t !== undefined, () => `Cannot open a snapshot at applied index ${appliedIndex}: the log has no term for it`);
  return { index: appliedIndex, term: t, config };
}
