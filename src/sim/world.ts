/**
 * The simulated world: one seeded PRNG (forked per purpose), one event queue ordered by
 * (virtual microseconds, sequence), N real NodeDrivers over in-memory storage, and the
 * parts that make up their environment. Everything runs synchronously in one loop: no
 * timers, no promises, no clock, so a seed replays the same run event for event.
 *
 *   network.ts  links: delay, loss, duplication, reordering, partitions, clogs, stale leaders
 *   disk.ts     manual-flush disks: flush latency, partial flushes, crash images, slow disks
 *   faults.ts   the fault scheduler: which fault, when, on whom (and the reactive faults)
 *   healer.ts   the heal phase and the convergence check
 *   world.ts    the event queue and the nodes: crash (kill -9: unflushed writes lost,
 *               restart later from the disk image with a fresh driver), clean restart
 *               (flush first), pause (no ticks; every input held until it resumes), clock
 *               drift and tick jitter; the clients
 *
 * Phases: a fault phase, then the healer's: partitions, clogs and loss stop, crashed nodes
 * restart, paused ones resume, clients stop; a final write must commit and every node
 * must apply the same index and hold the same store within `healDeadlineMs`.
 *
 * Owns the event queue, the nodes and the run loop. Must never: call Date, Math.random or
 * a timer, let a promise drive anything, reach into a node except through its driver's
 * public inputs (and read-only introspection for the checkers), or deliver anything to a
 * node that is down. The order of PRNG draws and of scheduled events is part of a seed's
 * replay: moving a draw or an event changes every run.
 */

import type { PlantedBugs } from '../core/options.js';
import { isReplica } from '../core/membership.js';
import type { ClusterConfig, Entry, NodeId } from '../core/types.js';
import { decodeCommand } from '../kv/codec.js';
import type { CommandResult } from '../kv/types.js';
import { valueRowProblem } from '../kv/value-row-check.js';
import { NodeDriver, type DriverOptions } from '../node/driver.js';
import { AssertionError } from '../stdx/assert.js';
import type { Prng } from '../stdx/prng.js';
import { SafetyChecker, SimViolation, type AckedWrite } from './checkers.js';
import { ClientSession, type ClientStats, type ClientWorld } from './clients.js';
import { SimDisks, observeStorage } from './disk.js';
import type { NodeControl, SimEnv, SimEvent, SimNode, WorldPhase, WorldStats } from './environment.js';
import { EventQueue } from './event-queue.js';
import { FaultScheduler } from './faults.js';
import { Healer } from './healer.js';
import { HistoryReference, SimWatcher, type WatcherStats, type WatcherWorld } from './watchers.js';
import { HandOverScheduler } from './hand-overs.js';
import { MembershipScheduler } from './membership.js';
import { HistoryRecorder } from './history.js';
import { LeaseLedger } from './leases.js';
import { SimNetwork } from './network.js';
import { logBytesMaxOf } from './swarm.js';
import type { SwarmConfig } from './swarm.js';
import { Trace } from './trace.js';

export type { WorldStats } from './environment.js';
export { describeMessage } from './network.js';

export interface WorldOptions {
  readonly config: SwarmConfig;
  /** Root generator of the run (after the swarm draw); the world forks one per purpose. */
  readonly prng: Prng;
  readonly planted: PlantedBugs | null;
  readonly traceFull: boolean;
  /** Checker properties not to enforce (see checkers.ts). */
  readonly disabledChecks?: readonly string[];
}

/** A run processing this many events is a livelock (the bound is far above any healthy run). */
const eventsMax = 20_000_000;
const pendingEventsMax = 2_000_000;

export class World implements ClientWorld, SimEnv, NodeControl {
  readonly config: SwarmConfig;
  readonly nodeIds: readonly NodeId[];
  readonly nodes: readonly SimNode[];
  readonly recorder = new HistoryRecorder();
  readonly leaseLedger = new LeaseLedger();
  /** Every committed version's changes, for the watchers' checks (majority-like modes only). */
  readonly reference = new HistoryReference();
  readonly watcherStats: WatcherStats = { opened: 0, versionsDelivered: 0, ended: 0 };
  private readonly watcherPrng: Prng;
  /** Orders what a paused node finds waiting when it resumes (interleaveBySource). */
  private readonly resumePrng: Prng;
  readonly checker: SafetyChecker;
  readonly trace: Trace;
  readonly stats: WorldStats = { events: 0, messages: 0, messagesLost: 0, faults: 0, crashes: 0, restarts: 0, pauses: 0, partitions: 0, flushes: 0, memberChanges: 0, leaderRemovals: 0, handOvers: 0 };
  /** Linearizable reads served by drivers that are gone (crashed or stopped); see readsServed(). */
  private readonly readsServedByGone = { asLeader: 0, asFollower: 0, byLease: 0 };
  readonly clientStats: ClientStats = { ops: 0, opsOk: 0, opsUnknown: 0, opsFailed: 0, localReads: 0, attempts: 0, txnsOk: 0 };
  readonly acked: AckedWrite[] = [];

  private timeUs = 0;
  private readonly queue = new EventQueue<SimEvent>(pendingEventsMax);
  private readonly planted: PlantedBugs | null;

  private readonly clientPrng: Prng;
  private readonly nodePrng: Prng;
  private readonly tickPrng: Prng;

  private readonly network: SimNetwork;
  private readonly disks: SimDisks;
  private readonly faults: FaultScheduler;
  private readonly membership: MembershipScheduler;
  private readonly handOvers: HandOverScheduler;
  /** Index of the newest configuration some node has seen committed. */
  private committedConfigIndex = 0;
  private readonly healer: Healer;
  private readonly clients: ClientSession[] = [];

  phase: WorldPhase = 'fault';
  convergedAtUs: number | null = null;

  constructor(options: WorldOptions) {
    const c = options.config;
    this.config = c;
    this.planted = options.planted;
    this.nodeIds = Array.from({ length: c.nodeCount + c.spareNodes }, (_, i) => `n${i + 1}`);
    this.trace = new Trace({ tailLines: 60, full: options.traceFull, fullLinesMax: 2_000_000 });

    // One generator per purpose, forked in this order: a part's draws never shift another's.
    const root = options.prng;
    const netPrng = root.fork();
    const diskPrng = root.fork();
    const faultPrng = root.fork();
    this.clientPrng = root.fork();
    this.nodePrng = root.fork();
    this.tickPrng = root.fork();
    const membershipPrng = root.fork();
    this.watcherPrng = root.fork();
    this.resumePrng = root.fork();
    const handOverPrng = root.fork();

    this.network = new SimNetwork(this, netPrng);
    this.handOvers = new HandOverScheduler(this, handOverPrng, this.network);
    this.disks = new SimDisks(this, diskPrng, { members: this.nodeIds.slice(0, c.nodeCount), writeQuorum: c.mode.writeQuorum, topology: c.mode.topology });

    this.checker = new SafetyChecker({
      nodeIds: this.nodeIds,
      mode: c.mode,
      nowUs: () => this.timeUs,
      note: (line) => this.trace.note(`${this.timeUs} * ${line}`),
      ...(options.disabledChecks !== undefined ? { disabledChecks: options.disabledChecks } : {}),
    });

    this.nodes = this.nodeIds.map((id, index) => {
      const driftPermille = this.tickPrng.intBetween(-c.clockDriftPermilleMax, c.clockDriftPermilleMax);
      return {
        index,
        id,
        status: 'down' as const,
        incarnation: 0,
        storage: null,
        image: null,
        driver: null,
        transport: null,
        deferred: [],
        flushScheduled: false,
        tickPeriodUs: c.tickMs * 1000 + c.tickMs * driftPermille,
        diskFactor: 1,
        diskToken: 0,
        appendedEntries: false,
        membership: index < c.nodeCount ? ('member' as const) : ('spare' as const),
        memberId: `${id}#0`,
        joinIndex: 0,
      };
    });
    this.membership = new MembershipScheduler({ env: this, prng: membershipPrng, control: this });

    this.faults = new FaultScheduler({ env: this, prng: faultPrng, network: this.network, disks: this.disks, control: this });
    this.healer = new Healer({
      env: this,
      clientWorld: this,
      clientPrng: this.clientPrng,
      clientStats: this.clientStats,
      acked: this.acked,
      checker: this.checker,
      network: this.network,
      disks: this.disks,
      control: this,
      clients: this.clients,
      describeNodes: () => this.describeNodes(),
      onConverged: () => {
        this.phase = 'done';
        this.convergedAtUs = this.timeUs;
      },
    });
  }

  // ---------------------------------------------------------------------------------
  // ClientWorld

  nowUs(): number {
    return this.timeUs;
  }

  at(delayUs: number, label: string, run: () => void): void {
    this.push(delayUs, -1, -1, label, run, null);
  }

  toNode(node: number, label: string, run: (driver: NodeDriver) => void, refused: () => void): void {
    const n = this.node(node);
    this.push(
      this.clientDelayUs(),
      node,
      -1,
      label,
      () => {
        const d = n.driver;
        if (d === null) return refused();
        run(d);
      },
      refused,
    );
  }

  clientDelayUs(): number {
    return this.clientPrng.intBetween(this.config.clientDelayUsMin, Math.max(this.config.clientDelayUsMin, this.config.clientDelayUsMax));
  }

  violation(property: string, details: string): never {
    throw new SimViolation(property, this.timeUs, details);
  }

  check(property: string, details: string): void {
    this.checker.fail(property, details);
  }

  auditBroken(details: string): void {
    this.checker.auditBroken(details);
  }

  /**
   * Every lease expiry, at its first apply by a node that knows it committed (when its keys
   * vanish for good), against the ledger. A weak-quorum leader applies its own entries before
   * they commit; an expiry it decided while deposed is rolled back, and is no one's promise.
   */
  private checkExpiries(driver: NodeDriver, entries: readonly Entry[], results: ReadonlyMap<number, CommandResult>): void {
    for (const e of entries) {
      const r = results.get(e.index);
      if (r === undefined || !r.ok || r.op !== 'lease-revoke' || !r.found) continue;
      if (e.index > driver.core.status().commitIndex) continue;
      const command = decodeCommand(e.data);
      if (command.op !== 'lease-revoke' || command.reason !== 'expired') continue;
      const problem = this.leaseLedger.expired(command.id, this.timeUs);
      if (problem !== null) this.check('lease-early-expiry', problem);
    }
  }

  // ---------------------------------------------------------------------------------
  // The loop

  /** Runs both phases to convergence; throws SimViolation on the first broken guarantee. */
  run(): void {
    const c = this.config;
    const members = this.nodes.filter((n) => n.membership === 'member');
    const spares = this.nodes.filter((n) => n.membership === 'spare');
    this.trace.note(`0 * cluster of ${members.length}: ${members.map((n) => n.id).join(' ')}${spares.length > 0 ? ` (spares ${spares.map((n) => n.id).join(' ')})` : ''}`);
    for (const n of members) this.startNode(n, true);
    for (let i = 0; i < c.clientCount; i++) {
      const session = new ClientSession(`c${i + 1}`, this, c, this.clientPrng.fork(), this.clientStats, this.acked);
      this.clients.push(session);
      session.start();
    }
    if (c.mode.appliesOnlyCommitted) {
      const watcherWorld: WatcherWorld = {
        nowUs: () => this.timeUs,
        at: (delayUs, label, run) => this.at(delayUs, label, run),
        liveDriver: (index) => {
          const node = this.node(index);
          return node.status === 'up' ? node.driver : null;
        },
        runningDriver: (index) => this.node(index).driver,
        nodeCount: this.nodes.length,
        reference: this.reference,
        check: (property, details) => this.check(property, details),
        note: (line) => this.trace.note(`${this.timeUs} * ${line}`),
      };
      const prefixes = ['', '', 'acct', 'k'];
      for (let i = 0; i < 3; i++) {
        const prng = this.watcherPrng.fork();
        new SimWatcher(`w${i + 1}`, watcherWorld, prng, prefixes[prng.intBetween(0, prefixes.length - 1)] ?? '', prng.chance(0.5), this.watcherStats).start();
      }
    }
    this.faults.start();
    this.membership.start();
    this.handOvers.start();
    this.at(c.faultPhaseMs * 1000, 'heal', () => {
      this.phase = 'heal';
      this.healer.heal();
    });

    while (this.phase !== 'done') {
      const ev = this.queue.pop();
      if (ev === undefined) this.violation('simulator', 'the event queue ran dry (every node must always have a tick scheduled)');
      this.timeUs = ev.atUs;
      let n: SimNode | null = null;
      if (ev.node >= 0) {
        n = this.node(ev.node);
        if (n.status === 'down' || (ev.inc >= 0 && ev.inc !== n.incarnation)) {
          ev.dropped?.();
          continue;
        }
        if (n.status === 'paused') {
          n.deferred.push(ev);
          continue;
        }
      }
      this.runEvent(ev, n);
    }
  }

  private runEvent(ev: SimEvent, n: SimNode | null): void {
    this.stats.events++;
    if (this.stats.events > eventsMax) this.violation('simulator', `more than ${eventsMax} events: livelock?`);
    this.trace.add(`${ev.atUs} ${ev.label}`);
    try {
      ev.run();
      if (n !== null && n.status === 'up' && n.driver !== null) this.afterNodeEvent(n, n.driver);
    } catch (e) {
      if (e instanceof SimViolation) throw e;
      const err = e instanceof Error ? e : new Error(String(e));
      const where = n !== null ? `on ${n.id}` : 'in the environment';
      const stack = (err.stack ?? '').split('\n').slice(1, 6).map((l) => l.trim()).join(' | ');
      this.violation(
        err instanceof AssertionError ? 'assertion' : 'exception',
        `${err.name} ${where} during "${ev.label}": ${err.message}${stack ? ` [${stack}]` : ''}`,
      );
    }
  }

  push(delayUs: number, node: number, inc: number, label: string, run: () => void, dropped: (() => void) | null): void {
    const atUs = this.timeUs + Math.max(0, Math.floor(delayUs));
    this.queue.push({ atUs, seq: this.queue.nextSeq(), node, inc, label, run, dropped });
  }

  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes) {
      const core = n.driver?.core;
      if (n.status !== 'up' || core === undefined || core.currentRole() !== 'leader') continue;
      if (best === null || core.currentTerm() > (best.driver?.core.currentTerm() ?? -1)) best = n;
    }
    return best;
  }

  node(index: number): SimNode {
    const n = this.nodes[index];
    if (n === undefined) throw new RangeError(`no node ${index}`);
    return n;
  }

  private afterNodeEvent(n: SimNode, driver: NodeDriver): void {
    const obs = this.checker.afterNodeEvent(n.index, driver);
    this.disks.maybeScheduleFlush(n);
    this.faults.afterNodeEvent(n, obs);
    this.membership.afterNodeEvent(n, obs);
    this.trackCommittedConfig(driver);
  }

  /**
   * Once a node shows a configuration committed, the cluster acts on it as production
   * does: a node it leaves out stops (it learns of its removal, or its peers refuse it), a
   * joining node it holds is a member, and one it leaves out although it came after the
   * joining node's addition lost that addition (a leader change cut it) and goes back to
   * the spares.
   */
  private trackCommittedConfig(driver: NodeDriver): void {
    const core = driver.core;
    const index = core.currentConfigIndex();
    if (index <= this.committedConfigIndex || index > core.log.committed) return;
    this.committedConfigIndex = index;
    const config = core.currentConfig();
    for (const x of this.nodes) {
      const held = isReplica(config, x.id);
      if (x.membership === 'joining' && held) x.membership = 'member';
      else if (x.membership === 'member' && !held) this.at(0, `${x.id} leaves: removed at ${index}`, () => this.retire(x, 'removed'));
      else if (x.membership === 'joining' && !held && index > x.joinIndex) this.at(0, `${x.id} leaves: its addition at ${x.joinIndex} was lost`, () => this.retire(x, 'spare'));
    }
  }

  // ---------------------------------------------------------------------------------
  // Nodes

  private startNode(n: SimNode, fresh: boolean, bootstrap?: ClusterConfig): void {
    const storage = this.disks.open(n, fresh, bootstrap);
    n.incarnation++;
    n.status = 'up';
    n.storage = storage;
    n.image = null;
    n.deferred = [];
    n.flushScheduled = false;
    const inc = n.incarnation;
    const transport = this.network.transport(n.index);
    n.transport = transport;
    const observed = observeStorage(storage, (batch) => this.checker.onDurable(n.index, batch));
    this.checker.onLifetimeStart(n.index);
    const driver = new NodeDriver(this.driverOptions(n), {
      storage: observed,
      transport,
      prng: this.nodePrng.fork(),
      // The node's clock runs at its ticks' rate (drift included); its ticks come late, never early.
      clockMs: () => (this.timeUs / n.tickPeriodUs) * this.config.tickMs,
      schedule: (fn) => this.push(0, n.index, inc, `${n.id} process`, fn, null),
      onFatal: (error) => {
        if (error instanceof SimViolation) throw error;
        this.violation(error instanceof AssertionError ? 'assertion' : 'node-fatal', `${n.id} stopped on a fatal error: ${error.message}`);
      },
      onReady: (rd, d) => {
        this.checker.onReady(n.index, rd, d);
        if (rd.entries.length > 0 && d.core.status().role !== 'leader') n.appendedEntries = true;
      },
      onApplied: (entries, results) => {
        if (n.driver !== null) this.checker.onApplied(n.index, entries, n.driver);
        const disagreement = n.driver !== null && this.config.mode.appliesOnlyCommitted ? this.reference.onApplied(n.driver, entries) : null;
        if (disagreement !== null) this.check('history-agreement', disagreement);
        // Every large value's row has exactly one owner, on every node, after every apply.
        const rowProblem = valueRowProblem(observed.kv);
        if (rowProblem !== null) this.check('value-rows', `${n.id} after applying up to ${entries[entries.length - 1]?.index ?? '?'}: ${rowProblem}`);
        if (n.driver !== null) this.checkExpiries(n.driver, entries, results);
      },
      onRollback: (entries) => this.checker.onRollback(entries),
    });
    n.driver = driver;
    if (this.planted !== null) driver.plant(this.planted);
    this.trace.note(`${this.timeUs} * ${n.id} ${fresh ? 'starts' : 'restarts'} (incarnation ${inc}, term ${driver.core.status().term}, commit ${driver.core.status().commitIndex}, last ${driver.core.status().lastIndex})`);
    this.push(this.tickPrng.intBetween(0, n.tickPeriodUs), n.index, inc, `${n.id} tick`, () => this.tick(n, inc), null);
    this.afterNodeEvent(n, driver);
  }

  private driverOptions(n: SimNode): DriverOptions {
    const c = this.config;
    return {
      id: n.id,
      clusterId: 'sim',
      memberId: n.memberId,
      bootstrapMemberId: (id) => `${id}#0`,
      selfHttp: `sim://${n.id}`,
      selfGrpc: null,
      pid: n.index + 1,
      tickMs: c.tickMs,
      electionTimeoutTicks: c.electionTimeoutTicks,
      heartbeatIntervalTicks: c.heartbeatIntervalTicks,
      preVote: c.preVote,
      checkQuorum: c.checkQuorum,
      readLease: c.readLease,
      pinnedLeader: null,
      inflightMessagesMax: c.inflightMessagesMax,
      appendBytesMax: 64 * 1024,
      appendEntriesMax: c.appendEntriesMax,
      uncommittedEntriesMax: c.uncommittedEntriesMax,
      readsPendingMax: 256,
      pendingWritesMax: c.pendingWritesMax,
      applyEntriesMax: c.applyEntriesMax,
      persistsInFlightMax: c.persistsInFlightMax,
      logEntriesMax: c.logEntriesMax,
      ...(logBytesMaxOf(c) !== undefined ? { logBytesMax: logBytesMaxOf(c) as number } : {}),
      snapshotChunkBytes: c.snapshotChunkBytes,
      snapshotTimeoutTicks: c.electionTimeoutTicks * 5,
      dedupClientsMax: 1024,
      // A node's ticks run up to this much fast (drift): its lease deadlines must allow for it.
      clockFastPermilleMax: c.clockDriftPermilleMax,
      // A short history, so that compaction runs (and a watch can fall below it) in every run:
      // by versions when writes come fast, by age (1.5 s) when they come slowly.
      watch: { historyRetentionVersions: 150, historyRetentionTicks: 150, bufferBytesMax: 16 * 1024, watchersMax: 64, progressTicks: 20, pageVersions: 16 },
    };
  }

  private tick(n: SimNode, inc: number): void {
    n.driver?.tick();
    const next = n.tickPeriodUs + this.tickPrng.intBetween(0, this.config.tickJitterUsMax);
    this.push(next, n.index, inc, `${n.id} tick`, () => this.tick(n, inc), null);
  }

  /** kill -9 (clean: flush everything first, as a clean stop does). */
  crash(n: SimNode, clean: boolean): void {
    if (n.status === 'down' || n.storage === null) return;
    this.stats.crashes++;
    const pending = n.storage.pendingCount();
    if (n.driver !== null) {
      this.readsServedByGone.asLeader += n.driver.linearizableReadsServed.asLeader;
      this.readsServedByGone.asFollower += n.driver.linearizableReadsServed.asFollower;
      this.readsServedByGone.byLease += n.driver.core.status().readsByLease;
    }
    if (clean) n.driver?.stop();
    n.image = this.disks.powerOff(n.storage, { flushFirst: clean });
    n.status = 'down';
    n.incarnation++;
    n.storage = null;
    n.driver = null;
    n.transport = null;
    // Events held while paused are lost with the node (messages release their link slot).
    for (const ev of n.deferred) ev.dropped?.();
    n.deferred = [];
    n.flushScheduled = false;
    this.trace.note(`${this.timeUs} * ${n.id} ${clean ? 'stops cleanly' : `crashes, losing ${pending} unflushed writes`}`);
    for (const cl of this.clients) cl.nodeDown(n.index);
    this.healer.nodeDown(n.index);
  }

  pause(n: SimNode): void {
    if (n.status !== 'up') return;
    n.status = 'paused';
    this.stats.pauses++;
    this.trace.note(`${this.timeUs} * ${n.id} pauses`);
  }

  resume(n: SimNode): void {
    if (n.status !== 'paused') return;
    n.status = 'up';
    const held = n.deferred;
    n.deferred = [];
    this.trace.note(`${this.timeUs} * ${n.id} resumes (${held.length} held events)`);
    for (const ev of interleaveBySource(held, this.resumePrng)) this.queue.push({ ...ev, atUs: this.timeUs, seq: this.queue.nextSeq() });
  }

  restart(n: SimNode): void {
    if (n.status !== 'down' || n.membership === 'spare' || n.membership === 'removed') return;
    this.stats.restarts++;
    this.startNode(n, false);
  }

  join(n: SimNode, config: ClusterConfig, index: number): void {
    if (n.membership !== 'spare' || n.status !== 'down') return;
    n.membership = 'joining';
    n.joinIndex = index;
    n.memberId = config.directory?.[n.id]?.memberId ?? n.memberId;
    this.startNode(n, true, config);
  }

  retire(n: SimNode, to: 'removed' | 'spare'): void {
    if (n.membership !== 'member' && n.membership !== 'joining') return;
    if (to === 'removed') {
      // Down, it learns of its removal when it restarts and its peers refuse it.
      if (n.status === 'down' && n.image !== null) this.startNode(n, false);
      n.driver?.leaveCluster();
    }
    if (n.status !== 'down') this.crash(n, true);
    n.membership = to;
    n.image = null;
    this.trace.note(`${this.timeUs} * ${n.id} ${to === 'removed' ? 'is removed and stops' : 'was never added and stops'}`);
  }

  recycle(n: SimNode): void {
    if (n.membership !== 'removed' || n.status !== 'down') return;
    n.membership = 'spare';
    this.trace.note(`${this.timeUs} * ${n.id} is a spare again (wiped disk)`);
  }

  // ---------------------------------------------------------------------------------
  // Introspection

  describeNodes(): string {
    return this.nodes
      .map((n) => {
        if (n.driver === null) return `${n.id}: ${n.status}`;
        const s = n.driver.core.status();
        const progress =
          s.role === 'leader'
            ? ` progress[${s.progress
                .filter((p) => p.id !== n.id)
                .map((p) => `${p.id} ${p.state} match=${p.match} next=${p.next}`)
                .join(', ')}]`
            : '';
        return `${n.id}: ${n.status} ${s.role} term=${s.term} leader=${s.leader ?? '-'} commit=${s.commitIndex} applied=${n.driver.stateMachine.appliedIndex()} last=${s.lastIndex} first=${s.firstIndex}${progress}`;
      })
      .join('; ');
  }

  /** The drivers of every node (all up once converged). */
  drivers(): NodeDriver[] {
    return this.nodes.map((n) => n.driver).filter((d): d is NodeDriver => d !== null);
  }

  /**
   * Linearizable reads served so far by every node, in every lifetime, by the role that
   * asked for the read point; and the read points leaders gave by lease (theirs and followers').
   */
  readsServed(): { asLeader: number; asFollower: number; byLease: number } {
    const total = { ...this.readsServedByGone };
    for (const d of this.drivers()) {
      total.asLeader += d.linearizableReadsServed.asLeader;
      total.asFollower += d.linearizableReadsServed.asFollower;
      total.byLease += d.core.status().readsByLease;
    }
    return total;
  }

  finalWriteVersion(): number | null {
    return this.healer.finalWriteVersion();
  }
}

/**
 * What a resumed node finds waiting, in the order it handles it: a stalled process reads its
 * sockets in no particular order, though each connection's bytes in theirs. So the events of
 * each source (a peer's link, a client, the node's own tick and processing: the first word of
 * the label) keep their order, and the sources interleave at random. A lease timed by a clock
 * that stopped with the node is exposed this way: a client's read can be served before the
 * new leader's messages, sent earlier, depose the old one.
 */
function interleaveBySource(held: readonly SimEvent[], prng: Prng): SimEvent[] {
  const bySource = new Map<string, SimEvent[]>();
  for (const ev of held) {
    const source = /^[^ >]*/.exec(ev.label)?.[0] ?? '';
    const queue = bySource.get(source);
    if (queue === undefined) bySource.set(source, [ev]);
    else queue.push(ev);
  }
  const queues = [...bySource.values()];
  const out: SimEvent[] = [];
  while (queues.length > 0) {
    const i = prng.intBetween(0, queues.length - 1);
    const queue = queues[i] as SimEvent[];
    out.push(queue.shift() as SimEvent);
    if (queue.length === 0) queues.splice(i, 1);
  }
  return out;
}
