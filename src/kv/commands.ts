/**
 * What a command means beyond applying it, for the node's admission rules.
 */

import type { Command, TxnCommand } from './types.js';

/** A command that only removes data (a delete, or a transaction of deletes and reads): allowed past the space alarm. */
export function freesSpace(command: Command): boolean {
  if (command.op === 'delete' || command.op === 'lease-revoke') return true;
  if (command.op !== 'txn') return false;
  const writes = (ops: TxnCommand['success']): boolean => ops.some((o) => o.op === 'put');
  return !writes(command.success) && !writes(command.failure);
}
