/**
 * Seeds worth keeping: each one exposed a bug (or a near miss) once, and replays the exact
 * schedule that did. `sim.test.ts` runs every case; a case whose bug is still open runs as
 * a todo (reported, not failing the suite) until the fix lands, then its `openBug` is
 * removed and it guards against the bug coming back.
 *
 * How to add one: run `quorumkv sim --seed S [flags]`, copy the flags of its replay line
 * into `options`, and say in `why` what it caught (property, mechanism). Note that a seed
 * replays a schedule only for the code it was found on: a change in the core or the
 * simulator changes every trajectory, so after a fix, also run a few hundred seeds with
 * the same flags (`--seeds 500 --set …`) to look for the bug's cousins.
 *
 * Must never: hold a case without a reason, or mark a case open without naming the bug.
 */

import type { SimOptions } from './run.js';

/** Bugs the simulator found that are not fixed yet (keys are referenced by cases below). */
export const openBugs: Readonly<Record<string, string>> = {};

/**
 * Fixed (kept for history): replicateWindowStuck (a heartbeat answer now frees a slot of a
 * full replicate window), snapshotChunksMixed (chunks carry their snapshot's identity),
 * staleSnapshotTruncates (a snapshot matching the follower's log keeps the entries after it),
 * asyncSnapshotRepairDiverges (not a core bug: in a weak quorum the healer's own final write
 * can be acknowledged by a leader that is deposed right after healing; the simulator now
 * writes again once the checker sees that write in a rollback report).
 */

export type OpenBug = string;

/** Open bugs whose mode the default swarm draw leaves out: random default seeds cannot hit them. */
export const openBugsOutsideDefaultDraw: ReadonlySet<string> = new Set<OpenBug>();

export interface RegressionCase {
  /** Replays the case: `quorumkv sim` with the same flags (see replayCommand). */
  readonly options: SimOptions;
  /** What the seed caught, and how. */
  readonly why: string;
  /** Set while the bug is open: the case is expected to fail with `property`. */
  readonly openBug?: OpenBug;
  /** The property the open bug violates on this seed. */
  readonly property?: string;
}

export const regressionCases: readonly RegressionCase[] = [
  {
    options: { seed: 30, mode: 'async' },
    why: 'async, 3 nodes: the healer\'s final write (v162) is acknowledged by the term-9 leader alone, which is deposed after healing; the write is rolled back and reported, and the healer must write again instead of waiting for v162 to commit',
  },
  {
    options: { seed: 172, mode: 'async' },
    why: 'async, 3 nodes: a write at 148 reached the next leader only inside a snapshot taken beyond the commit index; the checker saw the commit of the snapshot but not of the entries in it and reported the write lost (lost-write-unreported); the checker now walks the snapshot\'s entries back along their predecessor terms',
  },
  {
    options: { seed: 179, mode: 'async' },
    why: 'async, 3 nodes: a restarted old leader (commit 166, log 168..172 after a snapshot at 167) installed the new leader\'s snapshot and reported none of its acknowledged entries 168..172, because it sliced its log from commit + 1, below its first index (lost-write-unreported); it now reports from its first index',
  },
  {
    options: { seed: 395, mode: 'async' },
    why: 'async, 3 nodes: n1 found applied entries the term-10 leader lacked, reported them and waited for a repair snapshot, but won term 11 with its own log first; the stale flag survived, so in term 13 it took the new leader\'s snapshot as that repair and reported none of the acknowledged entries it replaced, v112 among them (lost-write-unreported); becoming leader now clears the flag',
  },
  {
    options: { seed: 1975, mode: 'async' },
    why: 'async, 4 nodes: a follower installed the leader\'s snapshot at 153 (beyond the commit index) and acked it; an overtaken older snapshot at 152 of the same term then replaced it and dropped 153, so the leader counted a commit on a replica that no longer held it (commit-durable-majority); an older snapshot of the same term is now ignored',
  },
  {
    options: { seed: 935 },
    why: 'default swarm drew async, 5 nodes: a restarted old leader whose log began above its commit index (a snapshot installed beyond it) found the new leader\'s log diverging below that snapshot and waited for a repair without reporting its own log\'s entries, among them a delete it had acknowledged at v301 (lost-write-unreported); it now reports them',
  },
  {
    options: { seed: 30108, mode: 'async' },
    why: 'async, 3 nodes: n1 had been told entries up to 14 were acknowledged, then had them replaced (snapshot, truncation) and led term 4 with a log ending at 7, its acked index still 14; a follower read then waited for index 14 forever (convergence). Truncating or restoring the log now lowers the acked index with it',
  },
  {
    options: { seed: 7006912 },
    why: 'default swarm drew async, 5 nodes, found by a soak once stale leaders were in the draw: old leader n4 acknowledged v99 (99/3) and more alone; the term-4 leader\'s log diverged from n4\'s at 101, so n4 reported 101.. and waited for a repair snapshot; before it came, the term-5 leader, whose log diverges at 99, sent its own, and installing it dropped 99..100 unreported (lost-write-unreported). A node waiting for a repair now also reports the entries below the first conflict that a later snapshot replaces (core/testdata/rollback-two-leaders.txt)',
  },
  {
    options: { seed: 7008146 },
    why: 'default swarm drew async, 3 nodes: n1 installed the term-27 leader\'s snapshots at 152, then 153 (beyond the commit index), and acked 153; a stale append of that leader (prev 152) then looked like a divergence below the snapshot, so n1 waited for a repair and installed an overtaken snapshot at 152, dropping the 153 the leader had counted (commit-durable-majority). An append from the leader whose log holds our snapshot is now answered as stale (raft.test.ts)',
  },
  {
    options: { seed: 146 },
    why: 'default swarm, 5 nodes: a node restarted with its kv applied index (9) ahead of its persisted commit (8) became leader and advertised acked 9 with commit 8, so a follower applied entry 9 before its commit index covered it (apply-before-commit); fixed by taking the applied index as committed outside weak quorums',
  },
  {
    options: { seed: 3 },
    why: 'default swarm, 5 nodes: after a crash, n2 and n3 stay at commit 170/208 forever while the leader is at 319; the leader keeps them in replicate state with a full window',
  },
  {
    options: { seed: 6 },
    why: 'default swarm, 5 nodes: n1 crashed and restarted; the leader never sends it another append (replicate, window full)',
  },
  {
    options: { seed: 269, overrides: { reorderRate: 1, logEntriesMax: 8, snapshotChunkBytes: 64 } },
    why: 'every message may overtake others, tiny logs and chunks: a follower installs chunks of two different snapshots as one; stores differ at the same applied index',
  },
  {
    options: { seed: 274, overrides: { reorderRate: 0.3 } },
    why: 'a snapshot chunk sent before the follower caught up arrives after it acked newer entries; installing it drops them and the leader commits on a minority',
  },
  {
    options: { seed: 471, profile: 'hostile' },
    why: 'hostile crash storm, FIFO network: n3 acks 101, then installs the snapshot at 100 the leader had sent earlier and drops 101; n2 learns commit 101 held durably by two of five',
  },
  {
    options: { seed: 396406089 },
    why: "default swarm: a watcher's stream waited for its consumer to drain; n1 crashed meanwhile and the drain still ran the crashed node's watch hub, which read its crashed storage (the simulated drain now dies with the node, as a socket's would)",
  },
  {
    options: { seed: 5000733 },
    why: "default swarm: n1's history had dropped versions 38-43 of k3 (a compaction at version 80); it then installed n2's snapshot at an applied index it already had, whose history still held them. The in-memory key index, rebuilt only when the applied index changes, missed them, and a history read took a put's value from the wrong next change (exception). Installs now invalidate the index",
  },
  {
    options: { seed: 6000096, profile: 'hostile' },
    why: 'hostile: the same stale key index after an install at the same applied index, seen from the history retention reading the oldest version kept',
  },
];
