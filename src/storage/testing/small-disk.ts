/**
 * A real small disk for tests of a full disk: a tmpfs mounted at a directory, grown or
 * shrunk with a remount. Mounting needs root (or a mount namespace); where it is not allowed
 * the caller gets null and skips, saying why.
 */

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SmallDisk {
  resize(sizeMiB: number): Promise<void>;
  /** Lazy: the directories below may still be open. Never throws. */
  unmount(): Promise<void>;
}

/** Mounts a tmpfs of `sizeMiB` at `dir` (which must exist); the refusal's first line when not allowed. */
export async function mountSmallDisk(dir: string, sizeMiB: number): Promise<SmallDisk | string> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir]);
  } catch (error) {
    return (error as Error).message.split('\n')[0] ?? 'mount failed';
  }
  return {
    resize: async (size) => void (await run('mount', ['-o', `remount,size=${size}m`, dir])),
    unmount: async () => void (await run('umount', ['-l', dir]).catch(() => undefined)),
  };
}
