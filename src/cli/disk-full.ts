/**
 * A node whose own disk fills: it stays up, refuses what it cannot do, and rejoins by itself
 * once space is back (issue "Safe to run on a real network": a full disk is an alarm, not an
 * outage). The free-space floor and the quota (watchFreeSpace in node.ts) normally stop writes
 * before the disk fills; this is for when something else fills it faster, or a follower's disk
 * fills while the leader's does not.
 *
 * The storage tells whether its directory can be reopened (StorageFailure.trusted: the failed
 * commit wrote nothing and nothing after it committed). Then the node's state on disk is what
 * a crash at that moment would leave, and reopening it is the recovery every restart already
 * does. Anything else (a failed flush, a hung disk, a failure that is not a full disk) still
 * ends the process: its log can no longer be trusted, or the cause is not one that waiting
 * for space repairs.
 *
 * Owns: the free-space and quota alarm, the decision (is this a full disk?), the wait for
 * space, and what the stalled node answers in the meantime. The wiring (stop the driver,
 * close, reopen) is in node.ts.
 */

import { statfs } from 'node:fs/promises';
import type { StorageFailure } from '../storage/lmdb.js';
import type { StatusResponse } from '../wire/types.js';

/**
 * Free bytes below which a failed commit is taken for a full disk whatever its error says
 * (LMDB reports a short write as EIO), and that must be free before the node reopens its
 * data directory, on top of --free-bytes-min.
 */
export const SPACE_TO_RESUME_BYTES_MIN = 64 * 1024 * 1024;

const noSpaceMessage = /no space left|ENOSPC|EDQUOT|quota exceeded|file too large|EFBIG/i;

/** Free bytes on the disk that holds `dir`, as an unprivileged process may use them. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * The space alarm: every second, the free bytes of the data directory's disk against
 * --free-bytes-min and the stores' pages in use against --quota-bytes; `onChange` hears the
 * alarm raised (with its reason) and cleared.
 */
export function watchFreeSpace(dataDir: string, limits: { readonly freeBytesMin: number; readonly quotaBytes: number }, usedBytes: () => number, onChange: (alarm: string | null) => void): { stop(): void } {
  let alarm: string | null = null;
  const check = async (): Promise<void> => {
    const free = await freeBytes(dataDir);
    const used = limits.quotaBytes > 0 ? usedBytes() : 0;
    const next =
      free < limits.freeBytesMin
        ? `${free} bytes free on the data directory's disk, below --free-bytes-min ${limits.freeBytesMin}`
        : limits.quotaBytes > 0 && used > limits.quotaBytes
          ? `the stores occupy ${used} bytes, above --quota-bytes ${limits.quotaBytes}`
          : null;
    if ((next === null) !== (alarm === null)) onChange(next);
    alarm = next;
  };
  const timer = setInterval(() => void check().catch(() => undefined), 1_000);
  void check().catch(() => undefined);
  return { stop: () => clearInterval(timer) };
}

/** Whether an error (and the free space now) says the disk is full, before the storage has settled. */
export function looksLikeFullDisk(said: string, freeBytesNow: number | null): boolean {
  return noSpaceMessage.test(said) || (freeBytesNow !== null && freeBytesNow < SPACE_TO_RESUME_BYTES_MIN);
}

/** Whether a storage failure is a full disk that the node may wait out (see the file comment). */
export function isRecoverableFullDisk(failure: StorageFailure, freeBytesNow: number | null): boolean {
  if (!failure.trusted) return false; // trusted implies a failed commit (StorageFailure)
  return looksLikeFullDisk(`${failure.cause?.message ?? ''} ${failure.error.message}`, freeBytesNow);
}

/** The alarm a node stalled by its full disk shows in /status and its refusals. */
export function fullDiskAlarm(said: string, freeBytesNow: number | null, bytesNeeded: number): string {
  return `this node's disk is full (${said}; ${freeBytesNow ?? '?'} bytes free): it takes no part in the cluster until ${bytesNeeded} bytes are free`;
}

/**
 * Polls the disk every `pollMs` until `bytesNeeded` are free; resolves true then, or false
 * once `stopped()` says the node is stopping.
 */
export async function waitForFreeSpace(dir: string, bytesNeeded: number, pollMs: number, stopped: () => boolean): Promise<boolean> {
  for (;;) {
    if (stopped()) return false;
    const free = await freeBytes(dir).catch(() => 0);
    if (free >= bytesNeeded) return true;
    await new Promise<void>((resolve) => setTimeout(resolve, pollMs).unref());
  }
}

/**
 * What /status says while the node waits: no leader (so /ready fails and clients look
 * elsewhere), not leading, and the alarm naming the cause. The rest is as of the failure.
 */
export function stalledStatus(s: StatusResponse, alarm: string): StatusResponse {
  return {
    ...s,
    role: s.role === 'leader' ? 'follower' : s.role,
    leader: null,
    peers: s.peers.map((p) => ({ ...p, matchIndex: null, lag: null })),
    spaceAlarm: alarm,
  };
}
