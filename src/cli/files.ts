/**
 * Small file-system questions the commands ask.
 */

import { stat } from 'node:fs/promises';

/** Whether `file` exists (any kind of entry), for commands that create only what is missing. */
export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
