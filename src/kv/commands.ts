/**
 * What a command means beyond applying it, for the node's admission rules.
 */

import type { Command, TxnCommand } from './types.js';

/**
 * A command that only removes data (a delete, a lease revoke, a history compaction, or a
 * transaction of deletes and reads): allowed past the space alarm, since it is how space
 * comes back.
 */
export function freesSpace(command: Command): boolean {
  if (command.op === 'delete' || command.op === 'lease-revoke' || command.op === 'compact') return true;
  if (command.op !== 'txn') return false;
  const writes = (ops: TxnCommand['success']): boolean => ops.some((o) => o.op === 'put');
  return !writes(command.success) && !writes(command.failure);
}
