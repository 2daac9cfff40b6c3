/**
 * The comparison systems' servers (etcd, redis) come from Debian's packages: a binary is
 * looked for where the package puts it, and when it is missing and this process runs as
 * root with apt-get, the package is installed once (`apt-get install -y`, after an
 * `apt-get update` if the first attempt fails). Otherwise the error says how to get it.
 *
 * Must never: install anything when the caller did not allow it, or when not root.
 */

import { spawnSync } from 'node:child_process';
import { access } from 'node:fs/promises';

export interface PackagedBinary {
  /** An explicit path (a `--…-bin` flag): used as given, never installed. */
  readonly binary: string | null;
  /** Where the package puts the binary, the first one the installed package provides. */
  readonly candidates: readonly string[];
  readonly aptPackage: string;
  readonly install: boolean;
  readonly log: (line: string) => void;
  /** The other ways to get one, for the error: `--etcd-bin PATH, or …`. */
  readonly otherwise: string;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The first of `candidates` that exists, in order; null when none does. */
async function firstExisting(candidates: readonly string[]): Promise<string | null> {
  for (const candidate of candidates) if (await exists(candidate)) return candidate;
  return null;
}

function aptInstall(pkg: string): ReturnType<typeof spawnSync> {
  return spawnSync('apt-get', ['install', '-y', '-qq', pkg], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/** The binary's path: given, found, or installed with apt-get when allowed. */
export async function findPackagedBinary(o: PackagedBinary): Promise<string> {
  if (o.binary !== null) {
    if (await exists(o.binary)) return o.binary;
    throw new Error(`${o.binary} does not exist`);
  }
  const found = await firstExisting(o.candidates);
  if (found !== null) return found;
  const canApt = o.install && process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  if (!canApt) throw new Error(`${o.aptPackage} is not installed: install Debian's ${o.aptPackage} package (apt-get install ${o.aptPackage}), or pass ${o.otherwise}`);
  o.log(`${o.candidates[0] ?? o.aptPackage} not found: installing Debian's ${o.aptPackage} package with apt-get (once)…`);
  let r = aptInstall(o.aptPackage);
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    r = aptInstall(o.aptPackage);
  }
  const installed = await firstExisting(o.candidates);
  if (r.status !== 0 || installed === null) throw new Error(`apt-get install ${o.aptPackage} failed: ${r.stderr?.toString().slice(-500) ?? ''}`);
  return installed;
}
