/**
 * Test-only bugs of the driver (PlantedBugs in core/options.ts) that need more than a
 * condition at their call site. The simulator plants them to prove its checkers bite.
 */

import type { CommandResult, TxnCommand } from '../kv/types.js';

/** Planted bug txnSplitAcrossEntries: the first write runs under the compares, the rest in an entry of its own. */
export function splitTxn(txn: TxnCommand): readonly TxnCommand[] | null {
  if (txn.success.length < 2) return null;
  const { requestId: _requestId, ...rest } = txn;
  return [
    { ...txn, success: txn.success.slice(0, 1) },
    { ...rest, compare: [], success: txn.success.slice(1), failure: [] },
  ];
}

export function joinSplitResults(first: CommandResult | undefined, second: CommandResult | undefined): CommandResult | undefined {
  if (first === undefined || second === undefined || !first.ok || !second.ok || first.op !== 'txn' || second.op !== 'txn') return first ?? second;
  return first.succeeded ? { ...first, results: [...first.results, ...second.results] } : first;
}
