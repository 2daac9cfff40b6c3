/**
 * The simulated world: one seeded PRNG (forked per purpose), one event queue ordered by
 * (virtual microseconds, sequence), N real NodeDrivers over in-memory storage with a
 * manual-flush disk, a simulated network, a fault injector and client sessions. Everything
 * runs synchronously in one loop: no timers, no promises, no clock, so a seed replays the
 * same run event for event.
 *
 *   network  per-link base delay plus an exponential-like tail, loss, duplication, FIFO
 *            per link except for rare reconnects (a message overtakes others), one-way and
 *            two-way partitions (checked at delivery), clogging of node subsets (messages
 *            held until the clog lifts), stale leaders (right after a read round's
 *            heartbeats: nothing sent, everything to it held, then delivered in order)
 *   disk     every write is queued; a flush event after a random latency makes the writes
 *            queued at its start durable (sometimes only part of them, in order)
 *   nodes    crash (kill -9: unflushed writes lost, restart later from the disk image with
 *            a fresh driver), clean restart (flush first), pause (no ticks; every input
 *            held until it resumes), clock drift and tick jitter
 *
 * Phases: a fault phase, then `heal()`: partitions, clogs and loss stop, crashed nodes
 * restart, paused ones resume, clients stop; a final write must commit and every node
 * must apply the same index and hold the same store within `healDeadlineMs`.
 *
 * Owns the environment. Must never: call Date, Math.random or a timer, let a promise drive
 * anything, reach into a node except through its driver's public inputs (and read-only
 * introspection for the checkers), or deliver anything to a node that is down.
 */

import type { PlantedBugs } from '../core/raft.js';
import type { ClusterConfig, NodeId } from '../core/types.js';
import { NodeDriver, type DriverOptions } from '../node/driver.js';
import type { PeerMessage } from '../node/messages.js';
import { AssertionError } from '../stdx/assert.js';
import type { Prng } from '../stdx/prng.js';
import {
  chunkBytes,
  createMemoryStorage,
  restoreMemoryStorage,
  type MemoryStorage,
  type MemoryStorageImage,
  type MemoryStorageOptions,
} from '../storage/memory.js';
import type { KvItem, NodeStorage, PersistBatch } from '../storage/types.js';
import type { PeerLinkState, PeerTransport } from '../transport/types.js';
import { SafetyChecker, SimViolation, formatUs, type AckedWrite } from './checkers.js';
import { ClientSession, type ClientStats, type ClientWorld, type ScriptStep } from './clients.js';
import { EventQueue, type Scheduled } from './event-queue.js';
import { HistoryRecorder } from './history.js';
import type { FaultWeights, SwarmConfig } from './swarm.js';
import { Trace } from './trace.js';

interface SimEvent extends Scheduled {
  /** Node the event happens on, or -1 for the environment and clients. */
  readonly node: number;
  /** Incarnation it belongs to; -1: whichever incarnation is up when it is due (messages). */
  readonly inc: number;
  readonly label: string;
  readonly run: () => void;
  /** Called instead of `run` when the event's node is down (or the incarnation is gone). */
  readonly dropped: (() => void) | null;
}

type NodeStatus = 'up' | 'down' | 'paused';

interface SimNode {
  readonly index: number;
  readonly id: NodeId;
  status: NodeStatus;
  incarnation: number;
  storage: MemoryStorage | null;
  image: MemoryStorageImage | null;
  driver: NodeDriver | null;
  transport: SimTransport | null;
  /** Events that arrived while paused, in arrival order. */
  deferred: SimEvent[];
  flushScheduled: boolean;
  readonly tickPeriodUs: number;
  diskFactor: number;
  diskToken: number;
  /** A follower Ready carried entries during the current event. */
  appendedEntries: boolean;
}

interface PartitionRule {
  readonly id: number;
  /** Directed links (from * n + to) that deliver nothing while the rule holds. */
  readonly links: readonly number[];
}

export interface WorldStats {
  events: number;
  messages: number;
  messagesLost: number;
  faults: number;
  crashes: number;
  restarts: number;
  pauses: number;
  partitions: number;
  flushes: number;
}

export interface WorldOptions {
  readonly config: SwarmConfig;
  /** Root generator of the run (after the swarm draw); the world forks one per purpose. */
  readonly prng: Prng;
  readonly planted: PlantedBugs | null;
  readonly traceFull: boolean;
  /** Checker properties not to enforce (see checkers.ts). */
  readonly disabledChecks?: readonly string[];
}

/** Per-link limit of messages in flight: send() refuses beyond it (bounded, like TCP's queue). */
const linkMessagesMax = 4096;
/** A run processing this many events is a livelock (the bound is far above any healthy run). */
const eventsMax = 20_000_000;
const pendingEventsMax = 2_000_000;
const convergenceCheckIntervalUs = 20_000;

export class World implements ClientWorld {
  readonly config: SwarmConfig;
  readonly nodeIds: readonly NodeId[];
  readonly recorder = new HistoryRecorder();
  readonly checker: SafetyChecker;
  readonly trace: Trace;
  readonly stats: WorldStats = { events: 0, messages: 0, messagesLost: 0, faults: 0, crashes: 0, restarts: 0, pauses: 0, partitions: 0, flushes: 0 };
  /** Linearizable reads served by drivers that are gone (crashed or stopped); see readsServed(). */
  private readonly readsServedByGone = { asLeader: 0, asFollower: 0 };
  readonly clientStats: ClientStats = { ops: 0, opsOk: 0, opsUnknown: 0, opsFailed: 0, localReads: 0, attempts: 0 };
  readonly acked: AckedWrite[] = [];

  private timeUs = 0;
  private readonly queue = new EventQueue<SimEvent>(pendingEventsMax);
  private readonly nodes: SimNode[];
  private readonly indexOf = new Map<NodeId, number>();
  private readonly n: number;
  private readonly planted: PlantedBugs | null;

  private readonly netPrng: Prng;
  private readonly diskPrng: Prng;
  private readonly faultPrng: Prng;
  private readonly clientPrng: Prng;
  private readonly nodePrng: Prng;
  private readonly tickPrng: Prng;

  private readonly linkBaseUs: number[];
  private readonly inflightMessages: number[];
  private readonly inflightBytes: number[];
  private readonly droppedOnLink: number[];
  private readonly blocked: number[];
  private readonly clogUntilUs: number[];
  /** A stale leader sends nothing and receives only when this time comes (staleLeaderRate). */
  private readonly staleUntilUs: number[];
  /** The read round ("term:round") each node's heartbeats last carried. */
  private readonly lastReadRound: string[];
  /** Latest arrival time scheduled on each link (FIFO delivery). */
  private readonly lastArrivalUs: number[];
  private reorderRate: number;
  private rules: PartitionRule[] = [];
  private nextRuleId = 1;
  private lossRate: number;
  private duplicateRate: number;
  private burstToken = 0;
  private burstLoss = 0;
  private burstDuplicate = 0;

  private readonly clusterConfig: ClusterConfig;
  private readonly storageOptions: MemoryStorageOptions;
  private readonly clients: ClientSession[] = [];
  private healer: ClientSession | null = null;
  /** The healer's acknowledged final write (null until its script has run). */
  private finalWrite: AckedWrite | null = null;
  private healerDone = false;
  private healerRuns = 0;

  phase: 'fault' | 'heal' | 'done' = 'fault';
  convergedAtUs: number | null = null;

  constructor(options: WorldOptions) {
    const c = options.config;
    this.config = c;
    this.planted = options.planted;
    this.n = c.nodeCount;
    this.nodeIds = Array.from({ length: c.nodeCount }, (_, i) => `n${i + 1}`);
    this.nodeIds.forEach((id, i) => this.indexOf.set(id, i));
    this.trace = new Trace({ tailLines: 60, full: options.traceFull, fullLinesMax: 2_000_000 });

    const root = options.prng;
    this.netPrng = root.fork();
    this.diskPrng = root.fork();
    this.faultPrng = root.fork();
    this.clientPrng = root.fork();
    this.nodePrng = root.fork();
    this.tickPrng = root.fork();

    const n = this.n;
    this.linkBaseUs = Array.from({ length: n * n }, () => this.netPrng.intBetween(c.linkDelayUsMin, Math.max(c.linkDelayUsMin, c.linkDelayUsMax)));
    this.inflightMessages = new Array<number>(n * n).fill(0);
    this.inflightBytes = new Array<number>(n * n).fill(0);
    this.droppedOnLink = new Array<number>(n * n).fill(0);
    this.blocked = new Array<number>(n * n).fill(0);
    this.clogUntilUs = new Array<number>(n).fill(0);
    this.staleUntilUs = new Array<number>(n).fill(0);
    this.lastReadRound = new Array<string>(n).fill('');
    this.lastArrivalUs = new Array<number>(n * n).fill(0);
    this.reorderRate = c.reorderRate;
    this.lossRate = c.lossRate;
    this.duplicateRate = c.duplicateRate;

    this.clusterConfig = { members: [...this.nodeIds], writeQuorum: c.mode.writeQuorum, topology: c.mode.topology };
    this.storageOptions = { initialConfig: this.clusterConfig, snapshotBytesMax: 64 * 1024 * 1024, flushMode: 'manual' };

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
        status: 'down' as NodeStatus,
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
      };
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

  // ---------------------------------------------------------------------------------
  // The loop

  /** Runs both phases to convergence; throws SimViolation on the first broken guarantee. */
  run(): void {
    const c = this.config;
    this.trace.note(`0 * cluster of ${this.n}: ${this.nodeIds.join(' ')}`);
    for (const n of this.nodes) this.startNode(n, true);
    for (let i = 0; i < c.clientCount; i++) {
      const session = new ClientSession(`c${i + 1}`, this, c, this.clientPrng.fork(), this.clientStats, this.acked);
      this.clients.push(session);
      session.start();
    }
    this.scheduleNextFault();
    this.at(c.faultPhaseMs * 1000, 'heal', () => this.heal());

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
  }

  private push(delayUs: number, node: number, inc: number, label: string, run: () => void, dropped: (() => void) | null): void {
    const atUs = this.timeUs + Math.max(0, Math.floor(delayUs));
    this.queue.push({ atUs, seq: this.queue.nextSeq(), node, inc, label, run, dropped });
  }

  private node(index: number): SimNode {
    const n = this.nodes[index];
    if (n === undefined) throw new RangeError(`no node ${index}`);
    return n;
  }

  private afterNodeEvent(n: SimNode, driver: NodeDriver): void {
    const obs = this.checker.afterNodeEvent(n.index, driver);
    this.maybeScheduleFlush(n);
    if (this.phase !== 'fault') return;
    if ((obs.becameLeader || obs.leaderFirstCommit) && this.config.reactiveFaultRate > 0) {
      if (this.faultPrng.chance(this.config.reactiveFaultRate)) this.reactiveFault(n, obs.becameLeader ? 'became leader' : 'first commit');
    }
    if (n.appendedEntries) {
      n.appendedEntries = false;
      if (this.config.crashAfterAppendRate > 0 && this.faultPrng.chance(this.config.crashAfterAppendRate)) this.crashSoon(n);
    }
  }

  /** Kills `n` before its disk is likely to have caught up with what it just received. */
  private crashSoon(n: SimNode): void {
    const p = this.faultPrng;
    const inc = n.incarnation;
    const downUs = this.faultDurationUs();
    this.at(p.intBetween(0, this.config.diskLatencyUsMin), `reactive crash of ${n.id} (just appended)`, () => {
      if (this.phase !== 'fault' || n.incarnation !== inc || n.status !== 'up') return;
      if (this.nodes.filter((x) => x.status !== 'up').length >= this.config.nodesDownMax) return;
      this.stats.faults++;
      this.crash(n, false);
      const downInc = n.incarnation;
      this.at(downUs, `restart ${n.id}`, () => {
        if (n.incarnation === downInc) this.restart(n);
      });
    });
  }

  /** Isolates or crashes `n` within a few milliseconds: a leader's most fragile moments. */
  private reactiveFault(n: SimNode, why: string): void {
    const p = this.faultPrng;
    const inc = n.incarnation;
    const crash = p.chance(0.4);
    const durUs = this.config.electionTimeoutTicks * this.config.tickMs * 1000 * p.intBetween(1, 4);
    this.at(p.intBetween(0, 3000), `reactive fault on ${n.id} (${why})`, () => {
      if (this.phase !== 'fault' || n.incarnation !== inc || n.status !== 'up') return;
      this.stats.faults++;
      const down = this.nodes.filter((x) => x.status !== 'up').length;
      if (crash && down < this.config.nodesDownMax) {
        this.crash(n, false);
        const downInc = n.incarnation;
        this.at(durUs, `restart ${n.id}`, () => {
          if (n.incarnation === downInc) this.restart(n);
        });
        return;
      }
      const links: number[] = [];
      for (let b = 0; b < this.n; b++) {
        if (b !== n.index) links.push(n.index * this.n + b, b * this.n + n.index);
      }
      this.addRule(links, durUs, `isolate ${n.id} (${why})`);
    });
  }

  // ---------------------------------------------------------------------------------
  // Nodes

  private startNode(n: SimNode, fresh: boolean): void {
    let storage: MemoryStorage;
    if (fresh) {
      storage = createMemoryStorage(this.storageOptions);
      storage.setIdentity({ nodeId: n.id, clusterId: 'sim' }, () => {});
      storage.flushPending();
    } else {
      if (n.image === null) throw new Error(`restart of ${n.id} without a disk image`);
      storage = restoreMemoryStorage(n.image, this.storageOptions);
    }
    n.incarnation++;
    n.status = 'up';
    n.storage = storage;
    n.image = null;
    n.deferred = [];
    n.flushScheduled = false;
    const inc = n.incarnation;
    const transport = new SimTransport(this, n.index);
    n.transport = transport;
    const observed = observeStorage(storage, (batch) => this.checker.onDurable(n.index, batch));
    this.checker.onLifetimeStart(n.index);
    const driver = new NodeDriver(this.driverOptions(n), {
      storage: observed,
      transport,
      prng: this.nodePrng.fork(),
      schedule: (fn) => this.push(0, n.index, inc, `${n.id} process`, fn, null),
      onFatal: (error) => {
        if (error instanceof SimViolation) throw error;
        this.violation(error instanceof AssertionError ? 'assertion' : 'node-fatal', `${n.id} stopped on a fatal error: ${error.message}`);
      },
      onReady: (rd, d) => {
        this.checker.onReady(n.index, rd, d);
        if (rd.entries.length > 0 && d.core.status().role !== 'leader') n.appendedEntries = true;
      },
      onApplied: (entries) => {
        if (n.driver !== null) this.checker.onApplied(n.index, entries, n.driver);
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
      selfHttp: `sim://${n.id}`,
      selfGrpc: null,
      pid: n.index + 1,
      tickMs: c.tickMs,
      electionTimeoutTicks: c.electionTimeoutTicks,
      heartbeatIntervalTicks: c.heartbeatIntervalTicks,
      preVote: c.preVote,
      checkQuorum: c.checkQuorum,
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
      snapshotChunkBytes: c.snapshotChunkBytes,
      snapshotTimeoutTicks: c.electionTimeoutTicks * 5,
      dedupClientsMax: 1024,
    };
  }

  private tick(n: SimNode, inc: number): void {
    n.driver?.tick();
    const next = n.tickPeriodUs + this.tickPrng.intBetween(0, this.config.tickJitterUsMax);
    this.push(next, n.index, inc, `${n.id} tick`, () => this.tick(n, inc), null);
  }

  private maybeScheduleFlush(n: SimNode): void {
    const storage = n.storage;
    if (n.flushScheduled || storage === null || storage.pendingCount() === 0) return;
    n.flushScheduled = true;
    const count = storage.pendingCount();
    const c = this.config;
    const latencyUs = this.diskPrng.intBetween(c.diskLatencyUsMin, Math.max(c.diskLatencyUsMin, c.diskLatencyUsMax)) * n.diskFactor;
    const partial = count > 1 && this.diskPrng.chance(c.partialFlushRate) ? this.diskPrng.intBetween(1, count - 1) : count;
    this.push(latencyUs, n.index, n.incarnation, `${n.id} flush ${partial}/${count}`, () => {
      n.flushScheduled = false;
      this.stats.flushes++;
      storage.flushPending(partial);
    }, null);
  }

  /** kill -9 (clean: flush everything first, as a clean stop does). */
  private crash(n: SimNode, clean: boolean): void {
    if (n.status === 'down' || n.storage === null) return;
    this.stats.crashes++;
    const pending = n.storage.pendingCount();
    if (clean) {
      n.driver?.stop();
      n.storage.flushPending();
    }
    n.image = n.storage.crash();
    if (n.driver !== null) {
      this.readsServedByGone.asLeader += n.driver.linearizableReadsServed.asLeader;
      this.readsServedByGone.asFollower += n.driver.linearizableReadsServed.asFollower;
    }
    n.status = 'down';
    n.incarnation++;
    n.storage = null;
    n.driver = null;
    n.transport = null;
    n.deferred = [];
    n.flushScheduled = false;
    this.trace.note(`${this.timeUs} * ${n.id} ${clean ? 'stops cleanly' : `crashes, losing ${pending} unflushed writes`}`);
    for (const cl of this.clients) cl.nodeDown(n.index);
    this.healer?.nodeDown(n.index);
  }

  private pause(n: SimNode): void {
    if (n.status !== 'up') return;
    n.status = 'paused';
    this.stats.pauses++;
    this.trace.note(`${this.timeUs} * ${n.id} pauses`);
  }

  private resume(n: SimNode): void {
    if (n.status !== 'paused') return;
    n.status = 'up';
    const held = n.deferred;
    n.deferred = [];
    this.trace.note(`${this.timeUs} * ${n.id} resumes (${held.length} held events)`);
    for (const ev of held) this.queue.push({ ...ev, atUs: this.timeUs, seq: this.queue.nextSeq() });
  }

  private restart(n: SimNode): void {
    if (n.status !== 'down') return;
    this.stats.restarts++;
    this.startNode(n, false);
  }

  // ---------------------------------------------------------------------------------
  // Network

  send(from: number, toId: NodeId, m: PeerMessage): boolean {
    const to = this.indexOf.get(toId);
    if (to === undefined || to === from) return false;
    this.stats.messages++;
    const link = from * this.n + to;
    if (m.type === 'heartbeat' && m.readRound > 0) this.maybeGoStale(from, m.term, m.readRound);
    if ((this.staleUntilUs[from] ?? 0) > this.timeUs) {
      this.stats.messagesLost++;
      this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
      return true;
    }
    if ((this.inflightMessages[link] ?? 0) >= linkMessagesMax) {
      this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
      return false;
    }
    const loss = this.lossRate + this.burstLoss;
    if (loss > 0 && this.netPrng.chance(loss)) {
      this.stats.messagesLost++;
      this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
      return true;
    }
    this.deliverLater(from, to, m, '');
    const dup = this.duplicateRate + this.burstDuplicate;
    if (dup > 0 && this.netPrng.chance(dup)) this.deliverLater(from, to, m, ' (dup)');
    return true;
  }

  private deliverLater(from: number, to: number, m: PeerMessage, suffixIn: string): void {
    let suffix = suffixIn;
    const c = this.config;
    const link = from * this.n + to;
    let delayUs = (this.linkBaseUs[link] ?? 0) + this.tailUs(c.delayTailUsMean);
    const clogUs = Math.max(this.clogUntilUs[from] ?? 0, this.clogUntilUs[to] ?? 0);
    if (clogUs > this.timeUs) delayUs = clogUs - this.timeUs + delayUs;
    if (this.reorderRate > 0 && this.netPrng.chance(this.reorderRate)) {
      // A reconnect: this message may overtake or be overtaken by others on the link.
      delayUs += this.netPrng.intBetween(0, c.reorderDelayUsMax);
      suffix += ' (reordered)';
    } else {
      // A connection is FIFO (the transport contract): never arrive before an earlier message.
      delayUs = Math.max(delayUs, (this.lastArrivalUs[link] ?? 0) - this.timeUs);
      this.lastArrivalUs[link] = this.timeUs + delayUs;
    }
    const bytes = messageBytes(m);
    this.inflightMessages[link] = (this.inflightMessages[link] ?? 0) + 1;
    this.inflightBytes[link] = (this.inflightBytes[link] ?? 0) + bytes;
    const release = (): void => {
      this.inflightMessages[link] = (this.inflightMessages[link] ?? 0) - 1;
      this.inflightBytes[link] = (this.inflightBytes[link] ?? 0) - bytes;
    };
    const fromId = this.nodeIds[from] as NodeId;
    const label = `${fromId}>${this.nodeIds[to] ?? '?'} ${describeMessage(m)}${suffix}`;
    const deliver = (held: boolean): void => {
      const staleUs = this.staleUntilUs[to] ?? 0;
      // Held, in arrival order, until the receiver is no longer stale. A message arriving
      // just as it ends queues behind the held ones (FIFO), which then go at once.
      if (staleUs > this.timeUs || (staleUs === this.timeUs && !held)) {
        this.push(staleUs - this.timeUs, to, -1, `${label} (held)`, () => deliver(true), release);
        return;
      }
      release();
      if ((this.blocked[link] ?? 0) > 0) {
        this.stats.messagesLost++;
        this.droppedOnLink[link] = (this.droppedOnLink[link] ?? 0) + 1;
        return;
      }
      this.node(to).transport?.deliver(fromId, m);
    };
    this.push(delayUs, to, -1, label, () => deliver(false), release);
  }

  /**
   * A leader's read round just left: maybe it goes stale once the round's heartbeats are
   * out (after the current event), for two to five election timeouts.
   */
  private maybeGoStale(from: number, term: number, readRound: number): void {
    const rate = this.config.staleLeaderRate;
    if (rate <= 0 || this.phase !== 'fault') return;
    const round = `${term}:${readRound}`;
    if (this.lastReadRound[from] === round) return;
    this.lastReadRound[from] = round;
    if (!this.faultPrng.chance(rate)) return;
    const n = this.node(from);
    const inc = n.incarnation;
    const durUs = this.config.electionTimeoutTicks * this.config.tickMs * 1000 * this.faultPrng.intBetween(2, 5);
    this.at(0, `${n.id} goes stale (read round ${round} sent)`, () => {
      if (this.phase !== 'fault' || n.incarnation !== inc || n.status !== 'up') return;
      this.stats.faults++;
      this.staleUntilUs[from] = Math.max(this.staleUntilUs[from] ?? 0, this.timeUs + durUs);
      this.trace.note(`${this.timeUs} * ${n.id} stale: sends nothing, hears only once it ends, for ${formatUs(durUs)}`);
    });
  }

  /** Exponential-like tail without transcendental functions: geometric octave plus a uniform fraction. */
  private tailUs(meanUs: number): number {
    if (meanUs <= 0) return 0;
    const octave = Math.min(Math.clz32(this.netPrng.nextU32()), 20);
    return Math.floor((octave + this.netPrng.nextFloat()) * meanUs * 0.6931471805599453);
  }

  linkState(from: number, toId: NodeId): PeerLinkState {
    const to = this.indexOf.get(toId);
    if (to === undefined) return { connected: false, queuedMessages: 0, queuedBytes: 0, droppedMessages: 0 };
    const link = from * this.n + to;
    return {
      connected: (this.blocked[link] ?? 0) === 0 && this.node(to).status !== 'down',
      queuedMessages: this.inflightMessages[link] ?? 0,
      queuedBytes: this.inflightBytes[link] ?? 0,
      droppedMessages: this.droppedOnLink[link] ?? 0,
    };
  }

  hasPeer(id: NodeId): boolean {
    return this.indexOf.has(id);
  }

  private applyRules(): void {
    this.blocked.fill(0);
    for (const r of this.rules) for (const l of r.links) this.blocked[l] = (this.blocked[l] ?? 0) + 1;
  }

  // ---------------------------------------------------------------------------------
  // Faults

  private scheduleNextFault(): void {
    const c = this.config;
    const w = c.faultWeights;
    const total = faultKinds.reduce((s, k) => s + w[k], 0);
    if (total === 0) return;
    const delayUs = this.faultPrng.intBetween(1, c.faultIntervalMsMean * 2000);
    if (this.timeUs + delayUs >= c.faultPhaseMs * 1000) return;
    this.at(delayUs, 'fault', () => {
      if (this.phase !== 'fault') return;
      this.injectFault(total);
      this.scheduleNextFault();
    });
  }

  private faultDurationUs(): number {
    const c = this.config;
    return this.faultPrng.intBetween(c.faultDurationMsMin * 1000, Math.max(c.faultDurationMsMin, c.faultDurationMsMax) * 1000);
  }

  private leaderIndex(): number {
    let best = -1;
    let bestTerm = -1;
    for (const n of this.nodes) {
      if (n.status !== 'up' || n.driver === null) continue;
      const s = n.driver.core.status();
      if (s.role === 'leader' && s.term > bestTerm) {
        best = n.index;
        bestTerm = s.term;
      }
    }
    return best;
  }

  private injectFault(total: number): void {
    const w = this.config.faultWeights;
    let r = this.faultPrng.intBetween(0, total - 1);
    let kind: keyof FaultWeights = 'partition';
    for (const k of faultKinds) {
      if (r < w[k]) {
        kind = k;
        break;
      }
      r -= w[k];
    }
    const p = this.faultPrng;
    const n = this.n;
    const durUs = this.faultDurationUs();
    const down = this.nodes.filter((x) => x.status !== 'up').length;
    const upNodes = this.nodes.filter((x) => x.status === 'up');
    const pickUp = (preferLeader: boolean, preferUnflushed: boolean): SimNode | null => {
      if (upNodes.length === 0) return null;
      if (preferLeader && p.chance(0.4)) {
        const l = this.leaderIndex();
        if (l >= 0) return this.node(l);
      }
      if (preferUnflushed && p.chance(0.6)) {
        const dirty = upNodes.filter((x) => (x.storage?.pendingCount() ?? 0) > 0);
        if (dirty.length > 0) return dirty[p.intBetween(0, dirty.length - 1)] as SimNode;
      }
      return upNodes[p.intBetween(0, upNodes.length - 1)] as SimNode;
    };
    this.stats.faults++;
    switch (kind) {
      case 'partition': {
        // Isolating the leader is what forces elections; otherwise a random split.
        const side = new Set<number>();
        const l = this.leaderIndex();
        if (l >= 0 && p.chance(0.5)) {
          side.add(l);
          if (n >= 5 && p.chance(0.5)) side.add(p.intBetween(0, n - 1));
        } else {
          const size = p.intBetween(1, Math.floor(n / 2));
          while (side.size < size) side.add(p.intBetween(0, n - 1));
        }
        const links: number[] = [];
        for (let a = 0; a < n; a++) {
          for (let b = 0; b < n; b++) if (a !== b && side.has(a) !== side.has(b)) links.push(a * n + b);
        }
        this.addRule(links, durUs, `partition {${[...side].map((i) => this.nodeIds[i]).join(',')}} | rest`);
        return;
      }
      case 'oneWay': {
        const links: number[] = [];
        const count = p.intBetween(1, n);
        for (let i = 0; i < count; i++) {
          const a = p.intBetween(0, n - 1);
          const b = p.intBetween(0, n - 2);
          links.push(a * n + (b >= a ? b + 1 : b));
        }
        const names = links.map((l) => `${this.nodeIds[Math.floor(l / n)]}->${this.nodeIds[l % n]}`);
        this.addRule(links, durUs, `one-way cut ${names.join(' ')}`);
        return;
      }
      case 'clog': {
        const count = p.intBetween(1, Math.ceil(n / 2));
        const names: string[] = [];
        for (let i = 0; i < count; i++) {
          const x = p.intBetween(0, n - 1);
          this.clogUntilUs[x] = Math.max(this.clogUntilUs[x] ?? 0, this.timeUs + durUs);
          names.push(this.nodeIds[x] as string);
        }
        this.trace.note(`${this.timeUs} * clog ${names.join(',')} for ${formatUs(durUs)}`);
        return;
      }
      case 'crash':
      case 'cleanRestart': {
        if (down >= this.config.nodesDownMax) return;
        const x = pickUp(true, kind === 'crash');
        if (x === null) return;
        this.crash(x, kind === 'cleanRestart');
        const inc = x.incarnation;
        this.at(durUs, `restart ${x.id}`, () => {
          if (x.incarnation === inc) this.restart(x);
        });
        return;
      }
      case 'pause': {
        if (down >= this.config.nodesDownMax) return;
        const x = pickUp(true, false);
        if (x === null) return;
        this.pause(x);
        const inc = x.incarnation;
        this.at(durUs, `resume ${x.id}`, () => {
          if (x.incarnation === inc) this.resume(x);
        });
        return;
      }
      case 'slowDisk': {
        const x = this.node(p.intBetween(0, n - 1));
        const token = ++x.diskToken;
        x.diskFactor = p.intBetween(5, 50);
        this.trace.note(`${this.timeUs} * ${x.id} disk ${x.diskFactor}x slower for ${formatUs(durUs)}`);
        this.at(durUs, `${x.id} disk back to normal`, () => {
          if (x.diskToken === token) x.diskFactor = 1;
        });
        return;
      }
      case 'lossBurst': {
        const token = ++this.burstToken;
        this.burstLoss = p.intBetween(50, 500) / 1000;
        this.burstDuplicate = p.intBetween(0, 200) / 1000;
        this.trace.note(`${this.timeUs} * loss burst ${this.burstLoss} dup ${this.burstDuplicate} for ${formatUs(durUs)}`);
        this.at(durUs, 'loss burst ends', () => {
          if (this.burstToken === token) {
            this.burstLoss = 0;
            this.burstDuplicate = 0;
          }
        });
        return;
      }
    }
  }

  private addRule(links: number[], durUs: number, what: string): void {
    const id = this.nextRuleId++;
    this.rules.push({ id, links });
    this.applyRules();
    this.stats.partitions++;
    this.trace.note(`${this.timeUs} * ${what} for ${formatUs(durUs)}`);
    this.at(durUs, `heal rule ${id}`, () => {
      const before = this.rules.length;
      this.rules = this.rules.filter((r) => r.id !== id);
      if (this.rules.length !== before) this.applyRules();
    });
  }

  // ---------------------------------------------------------------------------------
  // Healing and convergence

  private heal(): void {
    this.phase = 'heal';
    this.rules = [];
    this.applyRules();
    this.clogUntilUs.fill(0);
    this.staleUntilUs.fill(0);
    this.lossRate = 0;
    this.duplicateRate = 0;
    this.reorderRate = 0;
    this.burstToken++;
    this.burstLoss = 0;
    this.burstDuplicate = 0;
    this.trace.note(`${this.timeUs} * heal: partitions, clogs and loss end; every node comes back`);
    for (const n of this.nodes) {
      n.diskToken++;
      n.diskFactor = 1;
      if (n.status === 'down') this.restart(n);
      else if (n.status === 'paused') this.resume(n);
    }
    for (const cl of this.clients) cl.stop();
    this.startHealer();
    const deadlineUs = this.config.healDeadlineMs * 1000;
    const healStartUs = this.timeUs;
    const check = (): void => {
      if (this.phase !== 'heal') return;
      if (this.converged()) {
        this.phase = 'done';
        this.convergedAtUs = this.timeUs;
        this.trace.note(`${this.timeUs} * converged ${formatUs(this.timeUs - healStartUs)} after healing`);
        return;
      }
      if (this.timeUs - healStartUs >= deadlineUs) {
        this.violation('convergence', `not converged ${formatUs(this.timeUs - healStartUs)} after healing: ${this.describeNodes()}`);
      }
      this.at(convergenceCheckIntervalUs, 'convergence check', check);
    };
    this.at(convergenceCheckIntervalUs, 'convergence check', check);
  }

  /**
   * A final write must commit; then a linearizable read of every key puts the final state
   * into the history, so a lost acknowledged write shows up there too.
   */
  private startHealer(): void {
    this.healerRuns++;
    this.healerDone = false;
    this.finalWrite = null;
    const healer = new ClientSession(`healer${this.healerRuns > 1 ? this.healerRuns : ''}`, this, this.config, this.clientPrng.fork(), this.clientStats, this.acked);
    healer.stop();
    this.healer = healer;
    const steps: ScriptStep[] = [{ kind: 'put', key: 'final', value: `healed${this.healerRuns}` }];
    for (let k = 0; k < this.config.keyCount; k++) steps.push({ kind: 'get', key: `k${k}` });
    healer.script(steps, Math.max(1, this.config.healDeadlineMs - 200), (versions) => {
      const version = versions[0] ?? null;
      this.finalWrite = version === null ? null : (this.acked.findLast((w) => w.version === version) ?? null);
      this.healerDone = true;
    });
  }

  private converged(): boolean {
    if (!this.healerDone || this.finalWrite === null) return false;
    const fate = this.checker.ackedWriteFate(this.finalWrite);
    if (fate === 'rolled-back') {
      // Weak quorums: the leader that acknowledged the final write alone was deposed after
      // healing, and the write went to the rollback report (the checker holds every mode to
      // that). Write again: convergence is about the cluster, not about that one write.
      this.trace.note(`${this.timeUs} * ${this.finalWrite.what} v${this.finalWrite.version} was rolled back; the healer writes again`);
      this.startHealer();
      return false;
    }
    if (fate !== 'committed') return false;
    const drivers: NodeDriver[] = [];
    for (const n of this.nodes) {
      if (n.status !== 'up' || n.driver === null) return false;
      drivers.push(n.driver);
    }
    const statuses = drivers.map((d) => d.core.status());
    const leaders = statuses.filter((s) => s.role === 'leader');
    const leader = leaders[0];
    if (leaders.length !== 1 || leader === undefined || leader.commitIndex < this.finalWrite.version) return false;
    for (let i = 0; i < drivers.length; i++) {
      const s = statuses[i];
      const d = drivers[i] as NodeDriver;
      if (s === undefined || s.lastIndex !== leader.lastIndex || s.commitIndex !== leader.lastIndex) return false;
      if (d.stateMachine.appliedIndex() !== leader.lastIndex) return false;
    }
    const reference = dumpStore(drivers[0] as NodeDriver);
    for (const d of drivers.slice(1)) {
      const other = dumpStore(d);
      const diff = firstStoreDifference(reference, other);
      if (diff !== null) {
        this.violation('convergence', `${drivers[0]?.id ?? '?'} and ${d.id} applied up to ${leader.lastIndex} but their stores differ: ${diff}`);
      }
    }
    return true;
  }

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

  /** Linearizable reads served so far by every node, in every lifetime, by the role that asked for the read point. */
  readsServed(): { asLeader: number; asFollower: number } {
    const total = { ...this.readsServedByGone };
    for (const d of this.drivers()) {
      total.asLeader += d.linearizableReadsServed.asLeader;
      total.asFollower += d.linearizableReadsServed.asFollower;
    }
    return total;
  }

  finalWriteVersion(): number | null {
    return this.finalWrite?.version ?? null;
  }
}

const faultKinds: readonly (keyof FaultWeights)[] = ['partition', 'oneWay', 'clog', 'crash', 'cleanRestart', 'pause', 'slowDisk', 'lossBurst'];

/** The simulated network as one node's PeerTransport. */
class SimTransport implements PeerTransport<PeerMessage> {
  private handler: ((from: NodeId, message: PeerMessage) => void) | null = null;

  constructor(
    private readonly world: World,
    private readonly node: number,
  ) {}

  send(to: NodeId, message: PeerMessage): boolean {
    return this.world.send(this.node, to, message);
  }

  onMessage(handler: (from: NodeId, message: PeerMessage) => void): void {
    this.handler = handler;
  }

  deliver(from: NodeId, message: PeerMessage): void {
    this.handler?.(from, message);
  }

  peerState(id: NodeId): PeerLinkState {
    return this.world.linkState(this.node, id);
  }

  peerMeta(id: NodeId): Readonly<Record<string, string>> | null {
    return this.world.hasPeer(id) ? { http: `sim://${id}` } : null;
  }

  close(): Promise<void> {
    this.handler = null;
    return Promise.resolve();
  }
}

/** Storage seen by the driver: the memory twin, with durable batches reported to the checker first. */
function observeStorage(inner: MemoryStorage, onDurable: (batch: PersistBatch) => void): NodeStorage {
  return {
    log: inner.log,
    kv: inner.kv,
    hardState: () => inner.hardState(),
    identity: () => inner.identity(),
    setIdentity: (identity, cb) => inner.setIdentity(identity, cb),
    persist: (batch, cb) =>
      inner.persist(batch, (error) => {
        if (error === null) onDurable(batch);
        cb(error);
      }),
    compact: (index, config) => inner.compact(index, config),
    openSnapshot: (config) => inner.openSnapshot(config),
    stageSnapshotChunk: (chunk) => inner.stageSnapshotChunk(chunk),
    close: () => inner.close(),
  };
}

function messageBytes(m: PeerMessage): number {
  if (m.type === 'append') {
    let bytes = 64;
    for (const e of m.entries) bytes += e.data.byteLength + 24;
    return bytes;
  }
  if (m.type === 'snapshotChunk') return 64 + chunkBytes(m.chunk);
  return 64;
}

/** One short line per message, for the trace. */
export function describeMessage(m: PeerMessage): string {
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return `${m.type} t${m.term} last ${m.lastIndex}/${m.lastTerm}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${m.type} t${m.term} ${m.granted ? 'granted' : 'refused'}`;
    case 'append': {
      const first = m.entries[0];
      const last = m.entries[m.entries.length - 1];
      const range = first === undefined || last === undefined ? '[]' : `[${first.index}/${first.term}..${last.index}/${last.term}]`;
      return `append t${m.term} prev ${m.prevIndex}/${m.prevTerm} ${range} commit ${m.commit}`;
    }
    case 'appendResp':
      return m.reject ? `appendResp t${m.term} reject ${m.rejectedIndex} hint ${m.lastIndexHint}` : `appendResp t${m.term} match ${m.matchIndex}`;
    case 'heartbeat':
      return `heartbeat t${m.term} commit ${m.commit}${m.readRound !== 0 ? ` read ${m.readRound}` : ''}`;
    case 'heartbeatResp':
      return `heartbeatResp t${m.term}${m.readRound !== 0 ? ` read ${m.readRound}` : ''}`;
    case 'snapshot':
      return `snapshot t${m.term} at ${m.meta.index}/${m.meta.term}`;
    case 'snapshotChunk':
      return `snapshotChunk t${m.term} at ${m.meta.index}/${m.meta.term} #${m.chunk.seq}${m.chunk.last ? ' last' : ''}`;
    case 'readIndex':
      return `readIndex t${m.term} reads ${m.requestIds.length} from #${m.requestIds[0] ?? '-'}`;
    case 'readIndexResp':
      return `readIndexResp t${m.term} reads ${m.requestIds.length} from #${m.requestIds[0] ?? '-'} ${m.refusal === null ? `index ${m.index}` : `refused ${m.refusal}`}`;
  }
}

function dumpStore(d: NodeDriver): KvItem[] {
  return d.stateMachine.range('', undefined, 1_000_000);
}

function sameValue(a: KvItem['value'], b: KvItem['value']): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.length === b.length && a.every((x, i) => b[i] === x);
}

function firstStoreDifference(a: readonly KvItem[], b: readonly KvItem[]): string | null {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined) return `${a.length} keys vs ${b.length} keys`;
    if (x.key !== y.key || x.version !== y.version || !sameValue(x.value, y.value)) {
      return `key ${JSON.stringify(x.key)} v${x.version} vs key ${JSON.stringify(y.key)} v${y.version}`;
    }
  }
  return null;
}

