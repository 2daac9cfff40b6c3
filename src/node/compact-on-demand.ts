/**
 * An operator's compaction (`quorumkv compact`, POST /admin/compact): one compact entry
 * removes a bounded number of history records (kv/history.ts compactRecordsPerEntryMax),
 * so reaching a far target takes several; this proposes them one after another until the
 * target is reached, nothing more is removed, or the deadline passes.
 *
 * Must never: propose the next entry before the last one applied (one at a time, like the
 * leader's own retention), or run past the caller's deadline by more than one entry.
 */

import type { CompactResult } from '../kv/types.js';
import type { CompactOutcome } from './types.js';

/** Proposes one compact entry below `beforeVersion`, resolving once it applied. */
export type ProposeCompact = (beforeVersion: number, timeoutMs: number) => Promise<CompactResult>;

export async function compactUntil(target: number, timeoutMs: number, propose: ProposeCompact): Promise<CompactOutcome> {
  const deadline = performance.now() + timeoutMs;
  let removed = 0;
  for (;;) {
    const done = await propose(Math.max(1, target), Math.max(1, deadline - performance.now()));
    removed += done.removed;
    if (done.compactedBelow >= target || done.removed === 0 || performance.now() > deadline) return { compactedBelow: done.compactedBelow, removed };
  }
}
