/**
 * Simulated client sessions: each issues one operation at a time (get, put, delete, cas,
 * and a few local reads) against the cluster, the way a real client library would: to the
 * node it believes leads (else a random one; a linearizable get, with chance
 * `getAnyNodeRate`, to a random node, which serves it as a follower through the leader's
 * read index), following not_leader hints, retrying with
 * the same request id after an unknown outcome (the state machine's dedup table makes
 * that idempotent), and giving up at a deadline. Every operation is recorded in the
 * history with virtual invoke/complete times (microseconds) and what the client saw.
 *
 * Honesty rules (the checker is only as good as the history):
 *  - a write is recorded `unknown` as soon as any attempt may have reached a leader and
 *    no definite answer came back; it is dropped (`fail`) only if every attempt was
 *    definitely refused before proposing (not_leader at submit, busy, refused connection);
 *  - a reply is accepted only for the attempt in progress; late replies are ignored.
 *
 * Owns the client side only: requests reach nodes through ClientWorld, which applies the
 * node's state (down: refused; paused: held). Must never peek into a node to decide what
 * to record.
 */

import type { NodeDriver } from '../node/driver.js';
import { encodeCommand } from '../kv/codec.js';
import type { Command, CommandResult, KvResult, TxnResult } from '../kv/types.js';
import { valueRowBytesMin } from '../kv/value-rows.js';
import type { Prng } from '../stdx/prng.js';
import type { KvRecord } from '../storage/types.js';
import type { QkvError } from '../wire/errors.js';
import { hashEntryData, type AckedWrite } from './checkers.js';
import type { HistoryRecorder, KnownResult, KvOperation } from './history.js';
import type { SwarmConfig } from './swarm.js';
import { LeaseHolder, type LeaseAction, type LeaseLedger } from './leases.js';
import { learn, planAudit, planTransfer, recordTxnInvoke, recordTxnOutcome, txnProblem, type AccountView, type TxnPlan } from './transfers.js';

export interface ClientWorld {
  nowUs(): number;
  /** Runs `run` on the client side after `delayUs`. */
  at(delayUs: number, label: string, run: () => void): void;
  /**
   * Delivers a request to node `node` after the client->node delay. `run` gets the node's
   * driver if it is up when the request arrives (held while paused); `refused` runs
   * instead when the node is down (a real client sees connection refused).
   */
  toNode(node: number, label: string, run: (driver: NodeDriver) => void, refused: () => void): void;
  clientDelayUs(): number;
  readonly nodeIds: readonly string[];
  readonly recorder: HistoryRecorder;
  readonly leaseLedger: LeaseLedger;
  violation(property: string, details: string): never;
  /** A broken guarantee the run may have switched off (`--disable-checks`): throws unless it did. */
  check(property: string, details: string): void;
  /** An audit that did not sum to the opening total (judged now or, under a weak quorum, at the end). */
  auditBroken(details: string): void;
}

type OpKind = 'get' | 'put' | 'delete' | 'cas' | 'localGet' | 'transfer' | 'audit' | 'lease';

export interface ScriptStep {
  readonly kind: 'get' | 'put';
  readonly key: string;
  readonly value?: string;
}

interface Attempt {
  readonly id: number;
  readonly node: number;
  /** The request reached the node's driver. */
  delivered: boolean;
  done: boolean;
}

interface Op {
  readonly kind: OpKind;
  readonly key: string;
  /** History id; null for local reads (not part of the linearizability check). */
  readonly historyId: number | null;
  readonly command: Command | null;
  /** Transactions are recorded when they finish, projected onto their keys (transfers.ts). */
  readonly txn: TxnPlan | null;
  /** History ids of a transfer's writes, recorded when it was sent. */
  readonly txnWriteIds: readonly number[];
  /** A lease operation (leases.ts): not in the linearizability history. */
  readonly lease: LeaseAction | null;
  readonly invokeUs: number;
  readonly commandHash: number;
  readonly what: string;
  readonly deadlineUs: number;
  /** Some attempt may have been proposed: a give-up is an unknown outcome. */
  mayHaveApplied: boolean;
  attempt: Attempt | null;
  attempts: number;
  finished: boolean;
}

type Outcome =
  | { readonly kind: 'write'; readonly result: KvResult }
  | { readonly kind: 'txn'; readonly result: Extract<TxnResult, { ok: true }> }
  | { readonly kind: 'lease'; readonly result: CommandResult }
  | { readonly kind: 'keptAlive'; readonly ttlMs: number }
  | { readonly kind: 'read'; readonly record: KvRecord | undefined }
  | { readonly kind: 'error'; readonly code: string; readonly leader: string | null }
  | { readonly kind: 'refused' }
  | { readonly kind: 'reset' };

/** Errors after which the request was definitely not proposed by that node. */
const definiteErrors: ReadonlySet<string> = new Set(['not_leader', 'busy', 'shutting_down', 'no_leader']);

export interface ClientStats {
  ops: number;
  opsOk: number;
  opsUnknown: number;
  opsFailed: number;
  localReads: number;
  attempts: number;
  /** Transactions answered (transfers and audits), also counted in opsOk. */
  txnsOk: number;
}

export class ClientSession {
  private seq = 0;
  private leaderGuess: number | null = null;
  private readonly versions = new Map<string, number>();
  private readonly accounts = new Map<string, AccountView>();
  private readonly leaseHolder: LeaseHolder;
  private op: Op | null = null;
  private attemptSeq = 0;
  private stopped = false;

  constructor(
    readonly id: string,
    private readonly world: ClientWorld,
    private readonly config: SwarmConfig,
    private readonly prng: Prng,
    private readonly stats: ClientStats,
    private readonly acked: AckedWrite[],
  ) {
    this.leaseHolder = new LeaseHolder(id, prng.fork(), world.leaseLedger);
  }

  get busy(): boolean {
    return this.op !== null;
  }

  /** Starts the think / operate loop. */
  start(): void {
    this.think();
  }

  /** No new operations after the current one. */
  stop(): void {
    this.stopped = true;
  }

  /** A node crashed: attempts it had accepted will never be answered (connection reset). */
  nodeDown(node: number): void {
    const a = this.op?.attempt;
    if (a === undefined || a === null || a.node !== node || !a.delivered || a.done) return;
    this.world.at(this.world.clientDelayUs(), `${this.id} reset from ${this.world.nodeIds[node] ?? node}`, () => this.onReply(a, { kind: 'reset' }));
  }

  /**
   * Runs `steps` one after the other, each with its own deadline, then calls `onDone` with
   * the version each write got (null for reads and for writes that did not succeed). The
   * healer uses it: a final write, then a linearizable read of every key. Call stop() first.
   */
  script(steps: readonly ScriptStep[], timeoutMs: number, onDone: (versions: readonly (number | null)[]) => void): void {
    const versions: (number | null)[] = [];
    const next = (): void => {
      const step = steps[versions.length];
      if (step === undefined) return onDone(versions);
      this.begin(step.kind, step.key, step.value ?? '', timeoutMs, (version) => {
        versions.push(version);
        next();
      });
    };
    next();
  }

  private think(): void {
    if (this.stopped) return;
    const delayUs = this.prng.intBetween(0, this.config.clientThinkMsMax * 1000);
    this.world.at(delayUs, `${this.id} wakes`, () => {
      if (this.stopped || this.op !== null) return;
      this.startRandomOp();
    });
  }

  private startRandomOp(): void {
    const mix = this.config.opMix;
    const kinds: [OpKind, number][] = [
      ['get', mix.get],
      ['put', mix.put],
      ['delete', mix.delete],
      ['cas', mix.cas],
      ['localGet', mix.localGet],
      ['transfer', mix.transfer],
      ['audit', mix.audit],
      ['lease', mix.lease],
    ];
    const total = kinds.reduce((s, [, w]) => s + w, 0);
    let r = this.prng.intBetween(0, Math.max(0, total - 1));
    let kind: OpKind = 'get';
    for (const [k, w] of kinds) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }
    const key = `k${this.prng.intBetween(0, this.config.keyCount - 1)}`;
    this.begin(kind, key, valueOf(this.id, this.seq + 1), this.config.opTimeoutMs, null);
  }

  private begin(kind: OpKind, key: string, value: string, timeoutMs: number, onDone: ((version: number | null) => void) | null): void {
    const now = this.world.nowUs();
    let command: Command | null = null;
    let historyOp: KvOperation | null = null;
    let txn: TxnPlan | null = null;
    let lease: LeaseAction | null = null;
    if (kind === 'lease') {
      lease = this.leaseHolder.next(now);
      command = lease.kind === 'keepAlive' ? null : { ...lease.command, requestId: { clientId: this.id, seq: ++this.seq } };
    } else if (kind === 'transfer' || kind === 'audit') {
      const requestId = { clientId: this.id, seq: ++this.seq };
      const planned = kind === 'audit' ? planAudit(this.config.accountCount) : planTransfer(this.prng, this.config.accountCount, `${this.id}.${requestId.seq}`, this.accounts);
      txn = planned.plan;
      command = { ...planned.command, requestId };
    } else if (kind === 'put' || kind === 'delete' || kind === 'cas') {
      const requestId = { clientId: this.id, seq: ++this.seq };
      if (kind === 'put') {
        command = { op: 'put', key, value, requestId };
        historyOp = { type: 'put', value };
      } else if (kind === 'delete') {
        command = { op: 'delete', key, requestId };
        historyOp = { type: 'delete' };
      } else {
        const known = this.versions.get(key);
        const expectedVersion = known !== undefined && this.prng.chance(0.8) ? known : this.prng.chance(0.5) ? 0 : this.prng.intBetween(1, 50);
        command = { op: 'put', key, value, ifVersion: expectedVersion, requestId };
        historyOp = { type: 'cas', expectedVersion, value };
      }
    } else if (kind === 'get') {
      historyOp = { type: 'get' };
    }
    const historyId = historyOp === null ? null : this.world.recorder.invoke({ clientId: this.id, key, op: historyOp, tick: now });
    const what =
      lease !== null
        ? `${this.id} lease ${lease.kind}${lease.kind === 'grant' ? '' : ` ${lease.id}`}`
        : txn !== null
        ? `${this.id} ${txn.kind === 'audit' ? 'audit' : `transfer ${txn.from}(v${txn.expectFrom})=${txn.valueFrom} ${txn.to}(v${txn.expectTo})=${txn.valueTo}`}`
        : `${this.id} ${kind} ${key}${command !== null && command.op === 'put' ? `=${shown(value)}` : ''}${command !== null && (command.op === 'put' || command.op === 'delete') && command.ifVersion !== undefined ? ` if v${command.ifVersion}` : ''}`;
    const op: Op = {
      kind,
      key,
      historyId,
      command,
      txn,
      txnWriteIds: txn === null ? [] : recordTxnInvoke(this.world.recorder, this.id, txn, now),
      lease,
      invokeUs: now,
      commandHash: command === null ? 0 : hashEntryData('normal', encodeCommand(command)),
      what,
      deadlineUs: now + timeoutMs * 1000,
      mayHaveApplied: false,
      attempt: null,
      attempts: 0,
      finished: false,
    };
    this.op = op;
    if (kind === 'localGet') this.stats.localReads++;
    else this.stats.ops++;
    this.world.at(timeoutMs * 1000, `${this.id} deadline #${historyId ?? '-'}`, () => this.giveUp(op));
    this.doneCallback = onDone;
    this.sendAttempt(op);
  }

  private doneCallback: ((version: number | null) => void) | null = null;

  private pickNode(op: Op): number {
    const n = this.world.nodeIds.length;
    if (op.kind === 'get' && this.prng.chance(this.config.getAnyNodeRate)) return this.prng.intBetween(0, n - 1);
    if (this.leaderGuess !== null && this.prng.chance(0.9)) return this.leaderGuess;
    return this.prng.intBetween(0, n - 1);
  }

  private sendAttempt(op: Op): void {
    if (op.finished) return;
    const node = this.pickNode(op);
    const attempt: Attempt = { id: ++this.attemptSeq, node, delivered: false, done: false };
    op.attempt = attempt;
    op.attempts++;
    this.stats.attempts++;
    const nodeId = this.world.nodeIds[node] ?? String(node);
    const label = `${this.id} -> ${nodeId} ${op.what} (attempt ${op.attempts})`;
    const attemptTimeoutMs = this.config.attemptTimeoutMs;
    this.world.toNode(
      node,
      label,
      (driver) => {
        attempt.delivered = true;
        this.submit(op, attempt, driver, attemptTimeoutMs);
      },
      () => this.world.at(this.world.clientDelayUs(), `${this.id} refused by ${nodeId}`, () => this.onReply(attempt, { kind: 'refused' })),
    );
    this.world.at(attemptTimeoutMs * 1000 + 2 * this.config.clientDelayUsMax, `${this.id} attempt ${attempt.id} times out`, () => this.onAttemptTimeout(op, attempt));
  }

  private submit(op: Op, attempt: Attempt, driver: NodeDriver, timeoutMs: number): void {
    const reply = (outcome: Outcome): void => {
      this.world.at(this.world.clientDelayUs(), `${this.id} <- ${driver.id} ${describeOutcome(outcome)}`, () => this.onReply(attempt, outcome));
    };
    const onError = (e: QkvError): void => {
      const leader = e.details['leader'];
      const leaderId = typeof leader === 'object' && leader !== null && typeof (leader as { id?: unknown }).id === 'string' ? (leader as { id: string }).id : null;
      reply({ kind: 'error', code: e.code, leader: leaderId });
    };
    const leaseAction = op.lease;
    if (leaseAction?.kind === 'keepAlive') {
      driver.submitKeepAlive(leaseAction.id, timeoutMs, (err, kept) => (err !== null ? onError(err) : reply({ kind: 'keptAlive', ttlMs: kept?.ttlMs ?? 0 })));
      return;
    }
    if (op.command !== null) {
      driver.submitWrite(op.command, timeoutMs, (err, result) => {
        if (err !== null) return onError(err);
        if (result === undefined) return this.world.violation('client-protocol', `${op.what}: write callback without result or error`);
        if (leaseAction !== null) return reply({ kind: 'lease', result });
        if (result.ok && result.op === 'txn') {
          if (op.txn === null) return this.world.violation('client-protocol', `${op.what}: a single-key write got a transaction's result`);
          return reply({ kind: 'txn', result });
        }
        if (op.txn !== null && result.ok) return this.world.violation('client-protocol', `${op.what}: a transaction got a single-key result`);
        if (result.ok && result.op !== 'put' && result.op !== 'delete') return this.world.violation('client-protocol', `${op.what}: got a ${result.op} result`);
        reply({ kind: 'write', result });
      });
      return;
    }
    const key = op.key;
    const consistency = op.kind === 'localGet' ? 'local' : 'linearizable';
    driver.submitRead({ consistency, timeoutMs }, () => driver.stateMachine.get(key), (err, record) => {
      if (err !== null) return onError(err);
      reply({ kind: 'read', record });
    });
  }

  private onAttemptTimeout(op: Op, attempt: Attempt): void {
    if (op.finished || op.attempt !== attempt || attempt.done) return;
    attempt.done = true;
    // The request may still be in flight or proposed: only a definite answer clears it.
    if (op.command !== null) op.mayHaveApplied = true;
    this.leaderGuess = null;
    this.sendAttempt(op);
  }

  private onReply(attempt: Attempt, outcome: Outcome): void {
    const op = this.op;
    if (op === null || op.finished || op.attempt !== attempt || attempt.done) return;
    attempt.done = true;
    switch (outcome.kind) {
      case 'write':
        return this.completeWrite(op, outcome.result);
      case 'txn':
        return this.completeTxn(op, outcome.result);
      case 'lease':
      case 'keptAlive':
        return this.completeLease(op, outcome);
      case 'read':
        return this.completeRead(op, outcome.record);
      case 'refused':
        this.leaderGuess = null;
        return this.retry(op);
      case 'reset':
        if (op.command !== null) op.mayHaveApplied = true;
        this.leaderGuess = null;
        return this.retry(op);
      case 'error': {
        if (op.lease !== null && outcome.code === 'lease_not_found') {
          // The lease ended (expired or revoked) before the keep-alive reached a leader.
          this.leaseHolder.dropped(op.lease.kind === 'grant' ? -1 : op.lease.id);
          return this.finish(op, null);
        }
        if (!definiteErrors.has(outcome.code) && op.command !== null) op.mayHaveApplied = true;
        if (outcome.code === 'not_leader') {
          const idx = outcome.leader === null ? -1 : this.world.nodeIds.indexOf(outcome.leader);
          this.leaderGuess = idx >= 0 && idx !== attempt.node ? idx : null;
        } else if (outcome.code !== 'busy') {
          this.leaderGuess = null;
        }
        return this.retry(op);
      }
    }
  }

  private retry(op: Op): void {
    const backoffUs = this.leaderGuess !== null ? this.prng.intBetween(0, 2000) : this.prng.intBetween(5000, 30000 + 10000 * Math.min(op.attempts, 10));
    this.world.at(backoffUs, `${this.id} retries ${op.what}`, () => this.sendAttempt(op));
  }

  private completeWrite(op: Op, result: KvResult): void {
    const now = this.world.nowUs();
    let known: KnownResult;
    if (result.ok) {
      if (op.kind === 'delete') {
        if (result.op !== 'delete') return this.world.violation('client-protocol', `${op.what}: got a ${result.op} result`);
        known = { ok: true, version: result.version, deleted: result.deleted };
        this.versions.set(op.key, 0);
      } else {
        if (result.op !== 'put') return this.world.violation('client-protocol', `${op.what}: got a ${result.op} result`);
        known = { ok: true, version: result.version };
        this.versions.set(op.key, result.version);
      }
      this.acked.push({ version: result.version, hash: op.commandHash, what: op.what });
    } else if (result.error === 'version_conflict') {
      if (op.kind !== 'cas') {
        return this.world.violation('client-protocol', `${op.what}: version conflict for a write without ifVersion`);
      }
      known = { ok: false, conflict: true, actualVersion: result.actualVersion };
      this.versions.set(op.key, result.actualVersion);
    } else if (result.error === 'lease_not_found') {
      return this.world.violation('client-protocol', `${op.what}: lease_not_found for a put without a lease`);
    } else {
      // The session's current request always carries its highest sequence number.
      return this.world.violation('client-protocol', `${op.what}: stale_request (last seq ${result.lastSeq}) for the session's newest request: dedup lost track`);
    }
    if (op.historyId !== null) this.world.recorder.complete(op.historyId, now, known);
    this.stats.opsOk++;
    this.finish(op, result.ok ? result.version : null);
  }

  private completeTxn(op: Op, result: Extract<TxnResult, { ok: true }>): void {
    const plan = op.txn;
    if (plan === null || op.command === null) return this.world.violation('client-protocol', `${op.what}: a transaction result for a single-key operation`);
    const problem = txnProblem(plan, result);
    if (problem?.sum === true) this.world.auditBroken(`${op.what}: ${problem.text}`);
    else if (problem !== null) this.world.check('txn-atomicity', `${op.what}: ${problem.text}`);
    recordTxnOutcome(this.world.recorder, this.id, op.txnWriteIds, op.invokeUs, { completeTick: this.world.nowUs(), result }, true);
    learn(this.accounts, plan, result);
    this.acked.push({ version: result.version, hash: op.commandHash, what: op.what });
    this.stats.opsOk++;
    this.stats.txnsOk++;
    this.finish(op, null);
  }

  private completeLease(op: Op, outcome: Extract<Outcome, { kind: 'lease' | 'keptAlive' }>): void {
    const action = op.lease;
    if (action === null) return this.world.violation('client-protocol', `${op.what}: a lease answer for another operation`);
    if (outcome.kind === 'keptAlive') {
      if (action.kind !== 'keepAlive') return this.world.violation('client-protocol', `${op.what}: a keep-alive answer for a ${action.kind}`);
      this.leaseHolder.keptAlive(action.id, outcome.ttlMs, op.invokeUs);
    } else {
      const r = outcome.result;
      if (!r.ok && r.error === 'stale_request') return this.world.violation('client-protocol', `${op.what}: stale_request for the session's newest request`);
      if (action.kind === 'grant' && r.ok && r.op === 'lease-grant') this.leaseHolder.granted(r.id, r.ttlMs, op.invokeUs);
      else if (action.kind === 'attach' && ((r.ok && r.op === 'put') || (!r.ok && r.error === 'lease_not_found'))) this.leaseHolder.attached(action.id, r.ok);
      else if (action.kind === 'revoke' && r.ok && r.op === 'lease-revoke') this.leaseHolder.dropped(action.id);
      else return this.world.violation('client-protocol', `${op.what}: answered ${JSON.stringify(r)}`);
      if (r.ok) this.acked.push({ version: r.version, hash: op.commandHash, what: op.what });
    }
    this.stats.opsOk++;
    this.finish(op, null);
  }

  private completeRead(op: Op, record: KvRecord | undefined): void {
    if (op.historyId !== null) {
      const known: KnownResult = record === undefined ? { found: false } : { found: true, value: record.value, version: record.version };
      this.world.recorder.complete(op.historyId, this.world.nowUs(), known);
      this.stats.opsOk++;
      this.versions.set(op.key, record?.version ?? 0);
    }
    this.finish(op, null);
  }

  private giveUp(op: Op): void {
    if (op.finished) return;
    // An attempt still out (in flight, or proposed and waiting) may yet be applied.
    if (op.command !== null && op.attempt !== null && !op.attempt.done) op.mayHaveApplied = true;
    if (op.lease !== null) {
      if (op.mayHaveApplied) this.stats.opsUnknown++;
      else this.stats.opsFailed++;
      // A grant that may have applied is simply never used: its lease expires by itself.
    } else if (op.txn !== null) {
      recordTxnOutcome(this.world.recorder, this.id, op.txnWriteIds, op.invokeUs, null, op.mayHaveApplied);
      if (op.mayHaveApplied) {
        this.stats.opsUnknown++;
      } else {
        this.stats.opsFailed++;
      }
    } else if (op.historyId !== null) {
      if (op.mayHaveApplied) {
        this.world.recorder.unknown(op.historyId);
        this.stats.opsUnknown++;
      } else {
        this.world.recorder.fail(op.historyId);
        this.stats.opsFailed++;
      }
    }
    this.finish(op, null);
  }

  private finish(op: Op, version: number | null): void {
    op.finished = true;
    if (op.attempt !== null) op.attempt.done = true;
    this.op = null;
    const done = this.doneCallback;
    this.doneCallback = null;
    if (done !== null) done(version);
    this.think();
  }
}

/**
 * The value a client's write number `seq` puts: every fourth is long enough to be stored in a
 * value row of its own (kv/value-rows.ts), so that runs exercise both layouts and every move
 * between them. Decided by the number, not the PRNG: the schedule stays what it was.
 */
function valueOf(clientId: string, seq: number): string {
  const name = `${clientId}.${seq}`;
  return seq % 4 === 0 ? name + '~'.repeat(valueRowBytesMin) : name;
}

/** A value as traces show it: a long one by its name and length. */
function shown(value: string): string {
  return value.length <= 64 ? value : `${value.slice(0, 24)}…(${value.length} chars)`;
}

function describeOutcome(o: Outcome): string {
  switch (o.kind) {
    case 'write':
      return o.result.ok ? `ok v${o.result.version}` : o.result.error;
    case 'txn':
      return `${o.result.succeeded ? 'succeeded' : 'failed'} v${o.result.version}`;
    case 'lease':
      return o.result.ok ? `${o.result.op} v${o.result.version}` : o.result.error;
    case 'keptAlive':
      return `kept alive (ttl ${o.ttlMs} ms)`;
    case 'read':
      return o.record === undefined ? 'not found' : `${typeof o.record.value === 'string' ? shown(o.record.value) : '<bytes>'} v${o.record.version}`;
    case 'error':
      return `${o.code}${o.leader !== null ? ` leader=${o.leader}` : ''}`;
    case 'refused':
      return 'refused';
    case 'reset':
      return 'reset';
  }
}
