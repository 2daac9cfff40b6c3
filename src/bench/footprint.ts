/**
 * What a server process costs the machine after a run, for the `fill` workload's report:
 * the disk its data directory occupies (allocated blocks, as `du` counts them: a sparse or
 * preallocated file counts what it holds, not its length; a file with several links once)
 * and its anonymous resident memory (`RssAnon` in /proc/<pid>/status: heap and caches the
 * process made, without the file pages a memory map brings in, which the kernel may drop).
 *
 * Must never: follow a symbolic link out of the data directory, or fail a run because one
 * figure cannot be read (an absent directory or a process on another machine is null).
 */

import { lstat, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';

/** One server process of a system under test, as far as this machine can see it. */
export interface ServerProcess {
  /** The node's or member's name: `n1`, `e2`, `primary`. */
  readonly name: string;
  readonly pid: number | null;
  readonly dataDir: string | null;
}

export interface NodeFootprint {
  readonly name: string;
  /** Bytes allocated on disk under the data directory; null when it is not known here. */
  readonly diskBytes: number | null;
  /** RssAnon of the process in bytes; null when the process is not on this machine. */
  readonly rssAnonBytes: number | null;
}

/** `du -s --block-size=1` of `dir`: allocated bytes of every file under it, each inode once. */
export async function diskUsageBytes(dir: string): Promise<number | null> {
  const seen = new Set<string>();
  const walk = async (file: string): Promise<number> => {
    const st = await lstat(file);
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return 0;
    seen.add(id);
    let bytes = st.blocks * 512;
    if (st.isDirectory()) {
      for (const entry of await readdir(file)) bytes += await walk(path.join(file, entry));
    }
    return bytes;
  };
  try {
    return await walk(dir);
  } catch {
    return null;
  }
}

/** RssAnon of `pid` in bytes, from /proc/<pid>/status (Linux); null if it cannot be read. */
export async function rssAnonBytes(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^RssAnon:\s+(\d+)\s+kB$/m.exec(status);
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** Disk and anonymous memory of each process, read now. */
export async function measureFootprint(servers: readonly ServerProcess[]): Promise<NodeFootprint[]> {
  return Promise.all(
    servers.map(async (s) => ({
      name: s.name,
      diskBytes: s.dataDir === null ? null : await diskUsageBytes(s.dataDir),
      rssAnonBytes: s.pid === null ? null : await rssAnonBytes(s.pid),
    })),
  );
}

/** `12.3 MiB`, or `?` when unknown. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '?';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
