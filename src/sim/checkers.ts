/**
 * Safety checkers of the simulator: Raft's invariants, checked incrementally after every
 * event that touched a node (cheap: each check only looks at what changed), plus the
 * end-of-run checks (logs, acknowledged writes, linearizability, convergence).
 *
 *   election-safety           at most one leader per term
 *   log-matching              one (index, term) names one entry: same data and same
 *                             previous term everywhere (by induction: identical prefixes);
 *                             at the end, every pair of logs is compared in full
 *   committed-agreement       every node commits the same entry at each index
 *   leader-completeness       a new leader's log holds every entry committed in an
 *                             earlier term
 *   commit-current-term       a leader advances its commit index only onto an entry of
 *                             its own term (older entries commit with it: Raft 5.4.2)
 *   state-machine-safety      no two nodes (or lifetimes) apply different entries at one index
 *   apply-before-commit       nothing is applied beyond the commit index (majority modes)
 *   commit-monotonic          a node's commit index never decreases within a lifetime
 *   commit-durable-majority   a leader's commit index never exceeds what a majority of the
 *                             voters of its configuration hold *durably* (tracked from
 *                             flush callbacks, not from memory; learners never count), and
 *                             no follower commits beyond what some leader committed
 *   config-on-append          a configuration is in force on a node as soon as it is in
 *                             its log, not once committed
 *   config-one-at-a-time      a leader appends a configuration only once the previous one
 *                             in its log is committed
 *   config-own-term           ... and only once it has committed an entry of its own term
 *   quorum-overlap            every majority of a new configuration's voters meets every
 *                             majority of the previous one's (single-server changes)
 *   acked-write-lost          every write a client saw succeed is, at the end, the entry
 *                             applied at its version (log index) on every node
 *
 * Owns only observation: it reads cores and drivers, never changes them, and reports the
 * first violation by throwing SimViolation (the run stops there, with its trace).
 */

import type { Entry, EntryKind, NodeId, Ready } from '../core/types.js';
import type { NodeDriver } from '../node/driver.js';
import type { PersistBatch } from '../storage/types.js';
import type { SimMode } from './swarm.js';
import { configChangeProblem } from './config-checks.js';
import { fnv1a32, fnv1a32Bytes } from './trace.js';

/** Every property a run can report (the world and run.ts add the last five). */
export const checkedProperties = [
  'election-safety',
  'log-matching',
  'committed-agreement',
  'leader-completeness',
  'commit-current-term',
  'state-machine-safety',
  'apply-before-commit',
  'commit-monotonic',
  'commit-durable-majority',
  'config-on-append',
  'config-one-at-a-time',
  'config-own-term',
  'quorum-overlap',
  'acked-write-lost',
  'lost-write-unreported',
  'linearizability',
  'txn-atomicity',
  'lease-early-expiry',
  'history-agreement',
  'value-rows',
  'watch-order',
  'watch-gap',
  'watch-content',
  'convergence',
  'client-protocol',
  'assertion',
  'node-fatal',
] as const;

/** The broken guarantees among them, as opposed to a cluster that did not converge or a harness fault. */
export const safetyProperties: ReadonlySet<string> = new Set(
  checkedProperties.filter((p) => p !== 'convergence' && p !== 'client-protocol' && p !== 'node-fatal'),
);

/** A broken guarantee. `property` is one of the names in this module's header (or run.ts's). */
export class SimViolation extends Error {
  override readonly name = 'SimViolation';
  constructor(
    readonly property: string,
    readonly atUs: number,
    readonly details: string,
  ) {
    super(`${property} at ${formatUs(atUs)}: ${details}`);
  }
}

export function formatUs(us: number): string {
  return `${Math.floor(us / 1000)}.${String(us % 1000).padStart(3, '0')}ms`;
}

const entryHashes = new WeakMap<Entry, number>();

/** Hash of an entry's kind and data (cached per entry object: messages share them). */
export function entryHash(e: Entry): number {
  let h = entryHashes.get(e);
  if (h === undefined) {
    h = hashEntryData(e.kind, e.data);
    entryHashes.set(e, h);
  }
  return h;
}

export function hashEntryData(kind: EntryKind, data: Uint8Array): number {
  return fnv1a32Bytes(data, fnv1a32(kind)) ^ data.length;
}

/** Terms up to 2^20 and indexes up to 2^32 fit a safe integer key. */
const TERM_SPAN = 1_048_576;

interface EntryRecord {
  readonly hash: number;
  /** Term of the entry before it in the log that held it; -1 while unknown (compacted everywhere it was seen). */
  prevTerm: number;
  readonly node: NodeId;
}

/** What a node has on disk, as far as terms go, maintained from flush callbacks. */
class DurableShadow {
  /** terms[i]: term of the durable entry at index i (beyond the snapshot). */
  terms: number[] = [];
  snapshotIndex = 0;

  apply(batch: PersistBatch): void {
    if (batch.snapshot !== null) {
      this.snapshotIndex = batch.snapshot.index;
      this.terms.length = batch.snapshot.index + 1;
      this.terms[batch.snapshot.index] = batch.snapshot.term;
    }
    const first = batch.entries[0];
    if (first !== undefined) {
      this.terms.length = first.index;
      for (const e of batch.entries) this.terms[e.index] = e.term;
    }
  }

  holds(index: number, term: number): boolean {
    return index <= this.snapshotIndex || this.terms[index] === term;
  }
}

interface NodeTrack {
  readonly id: NodeId;
  readonly shadow: DurableShadow;
  /** This lifetime's last observed commit index (-1 before the first observation). */
  lastCommit: number;
  /** Entries up to here were compared with the committed registry in this lifetime. */
  committedScanned: number;
  /** Term in which this node was last seen leading (leader completeness runs once per term). */
  leaderTerm: number;
  /** Term in which this node, leading, was last seen advancing its commit index. */
  leaderCommitTerm: number;
}

/** What just happened on a node, for the world's reactive faults. */
export interface NodeObservation {
  /** The node was seen leading a term for the first time. */
  becameLeader: boolean;
  /** The node, leading, advanced its commit index for the first time in its term. */
  leaderFirstCommit: boolean;
}

export interface AckedWrite {
  readonly version: number;
  /** entryHash of the command the client sent. */
  readonly hash: number;
  readonly what: string;
}

export interface CheckerOptions {
  readonly nodeIds: readonly NodeId[];
  readonly mode: SimMode;
  readonly nowUs: () => number;
  /** A line for the trace (role changes, commits): part of the canonical trace. */
  readonly note: (line: string) => void;
  /**
   * Properties not to enforce (tests use this to show that a planted bug is also caught by
   * its consequences, not only by the invariant it breaks directly).
   */
  readonly disabledChecks?: readonly string[];
}

export class SafetyChecker {
  private readonly nodes: NodeTrack[];
  /** The highest commit index a leader reached with a durable majority of its voters. */
  private leaderCommitMax = 0;
  private readonly leaders = new Map<number, NodeId>();
  private readonly entries = new Map<number, EntryRecord>();
  private readonly committedTerm: number[] = [];
  private readonly committedHash: number[] = [];
  /** Upper bound of the term in which the entry was committed (the observer's term). */
  private readonly committedInTerm: number[] = [];
  private committedMax = 0;
  private readonly appliedTerm: number[] = [];
  private readonly appliedHash: number[] = [];
  private readonly appliedBy: NodeId[] = [];
  leaderChanges = 0;
  private readonly disabled: ReadonlySet<string>;
  /** Violations of switched-off properties, by property (they did not stop the run). */
  readonly suppressed = new Map<string, number>();

  constructor(private readonly options: CheckerOptions) {
    this.disabled = new Set(options.disabledChecks ?? []);
    this.nodes = options.nodeIds.map((id) => ({ id, shadow: new DurableShadow(), lastCommit: -1, committedScanned: 0, leaderTerm: -1, leaderCommitTerm: -1 }));
  }

  /** Throws the violation, unless the property was switched off for this run. */
  fail(property: string, details: string): void {
    if (this.disabled.has(property)) {
      this.suppressed.set(property, (this.suppressed.get(property) ?? 0) + 1);
      return;
    }
    throw new SimViolation(property, this.options.nowUs(), details);
  }

  private track(node: number): NodeTrack {
    const t = this.nodes[node];
    if (t === undefined) throw new RangeError(`no node ${node}`);
    return t;
  }

  // ---------------------------------------------------------------------------------
  // Hooks called by the world

  /** A persist batch of `node` became durable (called before the driver hears of it). */
  onDurable(node: number, batch: PersistBatch): void {
    this.track(node).shadow.apply(batch);
  }

  /** A new lifetime of `node` starts (fresh start or restart from its disk image). */
  onLifetimeStart(node: number): void {
    const t = this.track(node);
    t.lastCommit = -1;
    t.committedScanned = 0;
    t.leaderTerm = -1;
    t.leaderCommitTerm = -1;
  }

  /** Every Ready: registers the entries about to be persisted (log matching). */
  onReady(node: number, rd: Ready, driver: NodeDriver): void {
    const id = this.track(node).id;
    if (rd.entries.some((e) => e.kind === 'config')) {
      const problem = configChangeProblem(id, rd.entries, driver.core);
      if (problem !== null) this.fail(problem.property, problem.details);
    }
    let prevTerm: number | undefined;
    for (let i = 0; i < rd.entries.length; i++) {
      const e = rd.entries[i] as Entry;
      if (i === 0) prevTerm = driver.core.log.term(e.index - 1);
      if (e.term >= TERM_SPAN) throw new SimViolation('simulator-limit', this.options.nowUs(), `term ${e.term} exceeds the checker's key space`);
      const key = e.index * TERM_SPAN + e.term;
      const hash = entryHash(e);
      const prev = prevTerm ?? -1;
      const known = this.entries.get(key);
      if (known === undefined) {
        this.entries.set(key, { hash, prevTerm: prev, node: id });
      } else {
        if (known.prevTerm === -1) known.prevTerm = prev;
        if (known.hash !== hash) {
          this.fail('log-matching', `entry ${e.index}/term ${e.term} on ${id} has different data than on ${known.node} (two entries with one index and term)`);
        }
        if (known.prevTerm !== -1 && prev !== -1 && known.prevTerm !== prev) {
          this.fail(
            'log-matching',
            `entry ${e.index}/term ${e.term} follows term ${prev} on ${id} but term ${known.prevTerm} on ${known.node}: logs with a common entry differ before it`,
          );
        }
      }
      prevTerm = e.term;
    }
  }

  /** Entries handed to `node`'s state machine. */
  onApplied(node: number, entries: readonly Entry[], driver: NodeDriver): void {
    const id = this.track(node).id;
    const log = driver.core.log;
    const bound = this.options.mode.appliesOnlyCommitted ? log.committed : Math.max(log.committed, log.acked);
    for (const e of entries) {
      if (e.index > bound) {
        this.fail(
          'apply-before-commit',
          `${id} applied entry ${e.index}/term ${e.term} while its commit index is ${log.committed} (mode ${this.options.mode.name} applies only committed entries)`,
        );
      }
      const hash = entryHash(e);
      // Under a weak quorum, entries beyond the commit index may be applied and later
      // replaced (a rollback); only committed ones must agree across nodes.
      if (!this.options.mode.appliesOnlyCommitted && e.index > log.committed) continue;
      const t = this.appliedTerm[e.index];
      if (t === undefined) {
        this.appliedTerm[e.index] = e.term;
        this.appliedHash[e.index] = hash;
        this.appliedBy[e.index] = id;
      } else if (t !== e.term || this.appliedHash[e.index] !== hash) {
        this.fail(
          'state-machine-safety',
          `${id} applied entry ${e.index}/term ${e.term} but ${this.appliedBy[e.index] ?? '?'} applied ${e.index}/term ${t} with ${this.appliedHash[e.index] === hash ? 'the same' : 'different'} data`,
        );
      }
      const ct = this.committedTerm[e.index];
      if (ct !== undefined && (ct !== e.term || this.committedHash[e.index] !== hash)) {
        this.fail('state-machine-safety', `${id} applied entry ${e.index}/term ${e.term} but the entry committed there has term ${ct}`);
      }
    }
  }

  /** After every event that touched `node`: role, term and commit checks. */
  afterNodeEvent(node: number, driver: NodeDriver): NodeObservation {
    const t = this.track(node);
    const s = driver.core.status();
    const obs: NodeObservation = { becameLeader: false, leaderFirstCommit: false };
    if (s.role === 'leader' && t.leaderTerm !== s.term) {
      obs.becameLeader = true;
      t.leaderTerm = s.term;
      const other = this.leaders.get(s.term);
      if (other === undefined) {
        this.leaders.set(s.term, t.id);
        this.leaderChanges++;
        this.options.note(`${t.id} leads term ${s.term} (last ${s.lastIndex}, commit ${s.commitIndex})`);
        this.checkLeaderCompleteness(t, driver, s.term);
      } else if (other !== t.id) {
        this.fail('election-safety', `${t.id} and ${other} are both leaders of term ${s.term}`);
      }
    }
    const commit = s.commitIndex;
    if (commit === t.lastCommit) return obs;
    if (s.role === 'leader' && t.lastCommit >= 0) {
      if (t.leaderCommitTerm !== s.term) {
        t.leaderCommitTerm = s.term;
        obs.leaderFirstCommit = true;
      }
      const term = driver.core.log.term(commit);
      if (term !== s.term && commit > t.lastCommit) {
        this.fail(
          'commit-current-term',
          `${t.id}, leader of term ${s.term}, advanced its commit index ${t.lastCommit} -> ${commit} onto an entry of term ${term ?? '?'}: a leader commits only entries of its own term by counting (Raft 5.4.2, Figure 8)`,
        );
      }
    }
    if (commit < t.lastCommit) {
      this.fail('commit-monotonic', `${t.id}'s commit index went back from ${t.lastCommit} to ${commit} within one lifetime`);
    }
    t.lastCommit = commit;
    // A leader that steps down as it commits (its own removal) counted with its configuration.
    const ledThisTerm = s.role === 'leader' || t.leaderTerm === s.term;
    this.checkDurableMajority(t, driver, commit, ledThisTerm ? s.config.members : null);
    this.scanCommitted(t, driver, commit, s.term);
    return obs;
  }

  /**
   * A leader's commit index (`voters`: its configuration's) is held durably by a majority
   * of those voters (learners never count). A follower's only repeats a leader's: it never
   * exceeds the highest a leader reached (its own configuration may lag or lead the one
   * the leader counted with, so counting holders there would prove nothing).
   */
  private checkDurableMajority(t: NodeTrack, driver: NodeDriver, commit: number, voters: readonly NodeId[] | null): void {
    if (commit === 0) return;
    if (voters === null) {
      if (commit > this.leaderCommitMax) {
        this.fail('commit-durable-majority', `${t.id} committed up to ${commit}, beyond the ${this.leaderCommitMax} any leader committed`);
      }
      return;
    }
    const term = driver.core.log.term(commit);
    // A commit index below the node's snapshot (a weak-quorum snapshot may run ahead of
    // the commit index) has no term in the log: the snapshot stands for it.
    if (term === undefined && commit < driver.core.log.firstIndex()) return;
    if (term === undefined) return this.fail('commit-durable-majority', `${t.id} has commit index ${commit} but no term for it`);
    const who: string[] = [];
    for (const n of this.nodes) if (voters.includes(n.id) && n.shadow.holds(commit, term)) who.push(n.id);
    const majority = Math.floor(voters.length / 2) + 1;
    if (who.length < majority) {
      this.fail(
        'commit-durable-majority',
        `${t.id} committed up to ${commit}/term ${term}, but only [${who.join(',')}] of the voters [${voters.join(',')}] hold it durably (${majority} needed; learners do not count)`,
      );
    }
    if (commit > this.leaderCommitMax) this.leaderCommitMax = commit;
  }


  /**
   * A commit index that covers a snapshot covers the entries the snapshot holds, down to
   * `from`: a node can commit entries it only ever had inside a snapshot (weak quorums send
   * snapshots beyond the commit index). Which entries those are follows from the logs that
   * held them: walk back from the snapshot's last entry along each entry's predecessor term
   * (unique by log matching) until the chain is unknown.
   */
  private registerSnapshotPrefix(id: NodeId, index: number, term: number, from: number, observerTerm: number): void {
    let i = index;
    let t = term;
    while (i > from && i > 0) {
      const record = this.entries.get(i * TERM_SPAN + t);
      this.registerCommitted(id, i, t, record?.hash ?? null, observerTerm);
      if (record === undefined || record.prevTerm === -1) return;
      t = record.prevTerm;
      i--;
    }
  }

  private scanCommitted(t: NodeTrack, driver: NodeDriver, commit: number, term: number): void {
    const log = driver.core.log;
    const snap = log.snapshotMeta();
    if (snap.index > t.committedScanned && snap.index <= commit && snap.index > 0) {
      this.registerSnapshotPrefix(t.id, snap.index, snap.term, t.committedScanned, term);
    }
    const lo = Math.max(t.committedScanned + 1, log.firstIndex());
    t.committedScanned = commit;
    if (lo > commit) return;
    const entries = log.slice(lo, commit + 1, Number.MAX_SAFE_INTEGER);
    if (entries === null) return; // compacted meanwhile: the snapshot stands for them
    for (const e of entries) this.registerCommitted(t.id, e.index, e.term, entryHash(e), term);
  }

  private registerCommitted(id: NodeId, index: number, entryTerm: number, hash: number | null, observerTerm: number): void {
    const appliedTerm = this.appliedTerm[index];
    if (appliedTerm !== undefined && (appliedTerm !== entryTerm || (hash !== null && this.appliedHash[index] !== hash))) {
      this.fail(
        'state-machine-safety',
        `${id} committed entry ${index}/term ${entryTerm}, but ${this.appliedBy[index] ?? '?'} applied ${index}/term ${appliedTerm} there`,
      );
    }
    const known = this.committedTerm[index];
    if (known === undefined) {
      this.committedTerm[index] = entryTerm;
      if (hash !== null) this.committedHash[index] = hash;
      this.committedInTerm[index] = observerTerm;
      if (index > this.committedMax) this.committedMax = index;
      return;
    }
    const knownHash = this.committedHash[index];
    if (known !== entryTerm || (hash !== null && knownHash !== undefined && knownHash !== hash)) {
      this.fail('committed-agreement', `${id} committed entry ${index}/term ${entryTerm}, but entry ${index}/term ${known} was committed before`);
    }
    if (knownHash === undefined && hash !== null) this.committedHash[index] = hash;
    if (observerTerm < (this.committedInTerm[index] ?? Infinity)) this.committedInTerm[index] = observerTerm;
  }

  private checkLeaderCompleteness(t: NodeTrack, driver: NodeDriver, term: number): void {
    const log = driver.core.log;
    const first = log.firstIndex();
    for (let i = Math.max(1, first); i <= this.committedMax; i++) {
      const ct = this.committedTerm[i];
      const inTerm = this.committedInTerm[i];
      if (ct === undefined || inTerm === undefined || inTerm >= term) continue;
      const have = log.term(i);
      if (have !== ct) {
        this.fail(
          'leader-completeness',
          `${t.id} became leader of term ${term} without entry ${i}/term ${ct}, committed by term ${inTerm} (its log has ${have === undefined ? 'nothing' : `term ${have}`} there, last index ${log.lastIndex()})`,
        );
      }
    }
  }

  // ---------------------------------------------------------------------------------
  // End of run

  /** Every pair of logs agrees on every index up to the last one where their terms match. */
  checkLogsPairwise(drivers: readonly NodeDriver[]): void {
    const logs = drivers.map((d) => {
      const log = d.core.log;
      const first = log.firstIndex();
      const entries = log.slice(first, log.lastIndex() + 1, Number.MAX_SAFE_INTEGER) ?? [];
      return { id: d.id, first, entries };
    });
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const la = logs[a];
        const lb = logs[b];
        if (la === undefined || lb === undefined) continue;
        const lo = Math.max(la.first, lb.first);
        const hi = Math.min(la.first + la.entries.length - 1, lb.first + lb.entries.length - 1);
        let lastMatch = -1;
        for (let i = hi; i >= lo; i--) {
          if (la.entries[i - la.first]?.term === lb.entries[i - lb.first]?.term) {
            lastMatch = i;
            break;
          }
        }
        for (let i = lo; i <= lastMatch; i++) {
          const ea = la.entries[i - la.first] as Entry;
          const eb = lb.entries[i - lb.first] as Entry;
          if (ea.term !== eb.term || entryHash(ea) !== entryHash(eb)) {
            this.fail(
              'log-matching',
              `${la.id} and ${lb.id} agree on entry ${lastMatch}/term ${la.entries[lastMatch - la.first]?.term ?? '?'} but differ at ${i} (terms ${ea.term} and ${eb.term})`,
            );
          }
        }
      }
    }
  }

  /** Entries a node reported as rolled back (weak quorums), by index: their hashes. */
  private readonly rolledBack = new Map<number, Set<number>>();

  onRollback(entries: readonly Entry[]): void {
    for (const e of entries) {
      let set = this.rolledBack.get(e.index);
      if (set === undefined) this.rolledBack.set(e.index, (set = new Set()));
      set.add(entryHash(e));
    }
  }

  rolledBackCount(): number {
    let n = 0;
    for (const s of this.rolledBack.values()) n += s.size;
    return n;
  }

  /** Where an acknowledged write stands now: the committed entry at its version, in a rollback report, or neither yet. */
  ackedWriteFate(w: AckedWrite): 'committed' | 'rolled-back' | 'pending' {
    if (this.committedHash[w.version] === w.hash) return 'committed';
    if (this.rolledBack.get(w.version)?.has(w.hash) === true) return 'rolled-back';
    return 'pending';
  }

  /** Audits that did not sum to the opening total under a weak quorum (judged at the end: see auditBroken). */
  private readonly brokenAudits: string[] = [];

  /**
   * An audit that did not sum to the opening total. Under a weak quorum this can be the
   * price of a lost write, not a torn transaction: a client that read a write later rolled
   * back compares against its version, and the new leader's log may hold another write to
   * the same key at that same index (versions are log indexes), so the compare passes on a
   * balance the client never saw (seed 328001277). Such an audit is a violation only if no
   * node reported a rollback by the end of the run; under a majority it always is.
   */
  auditBroken(details: string): void {
    if (!this.options.mode.lostWritesReported) return this.fail('txn-atomicity', details);
    if (this.brokenAudits.length < 16) this.brokenAudits.push(details);
  }

  checkBrokenAuditsExplained(): void {
    const first = this.brokenAudits[0];
    if (first !== undefined && this.rolledBackCount() === 0) this.fail('txn-atomicity', `${first} (and no write was rolled back)`);
  }

  /**
   * Weak quorums: an acknowledged write either is the committed entry at its version or is
   * in some node's rollback report. A loss nobody reported is a violation.
   */
  checkLostWritesReported(acked: readonly AckedWrite[]): void {
    if (!this.options.mode.lostWritesReported) return;
    for (const w of acked) {
      if (this.ackedWriteFate(w) === 'pending') {
        this.fail('lost-write-unreported', `${w.what} was acknowledged with version ${w.version}, lost in a failover, and is in no rollback report`);
      }
    }
  }

  /** Each acknowledged write is the entry applied at its version, and every node applied it. */
  checkAckedWrites(acked: readonly AckedWrite[], drivers: readonly NodeDriver[]): void {
    if (!this.options.mode.noAckedWriteLost) return;
    const appliedMin = Math.min(...drivers.map((d) => d.stateMachine.appliedIndex()));
    for (const w of acked) {
      if (w.version > appliedMin) {
        this.fail('acked-write-lost', `${w.what} was acknowledged with version ${w.version}, but some node applied only up to ${appliedMin}`);
      }
      const h = this.appliedHash[w.version];
      if (h === undefined) {
        // Every node got past it through a snapshot: the committed registry must know it.
        const ch = this.committedHash[w.version];
        if (ch !== undefined && ch !== w.hash) {
          this.fail('acked-write-lost', `${w.what} was acknowledged with version ${w.version}, but the entry committed there is another one`);
        }
        continue;
      }
      if (h !== w.hash) {
        this.fail(
          'acked-write-lost',
          `${w.what} was acknowledged with version ${w.version}, but the entry applied at ${w.version} (term ${this.appliedTerm[w.version] ?? '?'}, by ${this.appliedBy[w.version] ?? '?'}) is another command`,
        );
      }
    }
  }
}
