/**
 * A node's own Prometheus metrics beyond the APIs' request counts (api/metrics.ts): how long
 * the disk and the cluster take for a write, and gauges and counters read from the driver of
 * the moment (a node whose disk filled reopens its directory with a new driver).
 *
 * `qkv_write_seconds` is the write's time inside the cluster: from the driver taking a write
 * or transaction (on the leader, whichever API or follower it came through) to its result,
 * i.e. the log append, replication to a quorum and the fsyncs, and the apply. Set beside a
 * client's latency it says how much of that latency lies outside the cluster (HTTP or gRPC,
 * the network, the client, waiting for a core).
 */

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { NodeDriver } from '../node/driver.js';
import type { PersistObservation } from '../storage/lmdb.js';

/** The time each write waits for the disk: on a shared or slow disk, this is what bounds throughput. */
export function persistMetrics(registry: Registry): (o: PersistObservation) => void {
  const persistSeconds = new Histogram({
    name: 'qkv_log_persist_seconds',
    help: 'time from queueing a batch of log entries to the fsync that made it durable',
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const persistedEntries = new Counter({ name: 'qkv_log_persisted_entries_total', help: 'log entries made durable (÷ qkv_log_persist_seconds_count: entries per fsync)', registers: [registry] });
  return ({ durationMs, entries }) => {
    persistSeconds.observe(durationMs / 1000);
    persistedEntries.inc(entries);
  };
}

/** Runs a write on the driver and observes how long it took inside the cluster; its result is the write's. */
export type WriteTimer = <T>(run: () => Promise<T>) => Promise<T>;

/**
 * `qkv_write_seconds` (see the module comment). Only writes that succeed are timed: a refusal
 * (not the leader, busy, no space) answers at once and would only blur the figure.
 */
export function writeMetrics(registry: Registry): WriteTimer {
  const writeSeconds = new Histogram({
    name: 'qkv_write_seconds',
    help: 'time from this node\'s Raft driver taking a write or transaction to its result (log append, replication to a quorum, fsyncs, apply); on the leader',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  return (run) => {
    const started = performance.now();
    const result = run();
    void result.then(() => writeSeconds.observe((performance.now() - started) / 1000), () => undefined);
    return result;
  };
}

/** Gauges read the driver of the moment: a node whose disk filled reopens its directory with a new one. */
export function registerGauges(registry: Registry, driverNow: () => NodeDriver, takeLagMsMax: () => number, usedBytes: () => number): void {
  const gauge = (name: string, help: string, value: () => number): void => {
    new Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
  };
  /** A running total kept elsewhere (the driver, the event loop), exported as a counter so that rate() works on it. */
  const total = (name: string, help: string, value: () => number): void => {
    new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(value()); } });
  };
  gauge('qkv_term', 'current Raft term', () => driverNow().core.status().term);
  gauge('qkv_commit_index', 'Raft commit index (majority)', () => driverNow().core.status().commitIndex);
  gauge('qkv_applied_index', 'state machine applied index', () => driverNow().stateMachine.appliedIndex());
  gauge('qkv_is_leader', '1 on the leader', () => (driverNow().core.status().role === 'leader' ? 1 : 0));
  gauge('qkv_keys', 'keys in the store', () => driverNow().stateMachine.keyCount());
  gauge('qkv_space_alarm', "1 while the data directory's disk is below --free-bytes-min or the stores above --quota-bytes (puts refused while leading)", () => (driverNow().status().spaceAlarm !== undefined ? 1 : 0));
  gauge('qkv_store_used_bytes', 'bytes of the LMDB pages the stores occupy (what --quota-bytes bounds)', usedBytes);
  gauge('qkv_watchers', 'watch streams this node serves', () => driverNow().watcherCount());
  gauge('qkv_event_loop_lag_ms_max', 'largest tick lateness since the last scrape', takeLagMsMax);
  // Running totals kept by the driver, exported as counters (rate() works on them).
  new Counter({
    name: 'qkv_linearizable_reads_total',
    help: "linearizable reads served since start, as leader (own read-index round) or as follower (through the leader's read index)",
    labelNames: ['served_as'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ served_as: 'leader' }, driverNow().linearizableReadsServed.asLeader);
      this.inc({ served_as: 'follower' }, driverNow().linearizableReadsServed.asFollower);
    },
  });
  total('qkv_reads_by_lease_total', "read points this node gave by its read lease as leader, for its own linearizable reads and its followers' (the others waited for a heartbeat round)", () => driverNow().core.status().readsByLease);
  // Utilization as a total, not a gauge "since the last scrape": several scrapers (Prometheus,
  // a running bench) must not steal each other's windows.
  total(
    'qkv_event_loop_busy_seconds_total',
    "time this node's event loop spent running rather than waiting for input, since start; its rate() is the loop's utilization (0-1): near 1, requests queue for the loop even when the CPU figures show room (a thread waiting for a core is busy here, idle there)",
    () => performance.eventLoopUtilization().active / 1000,
  );
  total('qkv_rollback_records_total', 'acknowledged or applied writes this node lost in weak-quorum failovers (rollback.jsonl records, also before this start)', () => driverNow().status().rollbackCount);
}
