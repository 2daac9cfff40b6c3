/**
 * How a benchmark point used the disk and the cluster, from the quorumkv nodes' own counters
 * on /metrics: fsyncs per second, entries each fsync carried (group commit at work) and how
 * long a batch waited for its fsync (`qkv_log_persist_seconds`,
 * `qkv_log_persisted_entries_total`), and a write's mean time inside the cluster
 * (`qkv_write_seconds`: from the leader's Raft driver taking it to its result), which beside
 * the client's latency says how much of it lies outside. Read at the start and the end of the
 * measured window, summed over the nodes. Also each node's event-loop busy time
 * (`qkv_event_loop_busy_seconds_total`), whose busiest share of the window tells a run bound by
 * one node's loop from one with room left. etcd exposes nothing comparable here, so its points
 * carry none.
 */

export interface PersistFigures {
  /** Log batches made durable per second, all nodes together. */
  readonly fsyncsPerSec: number;
  /** Log entries per fsync, all nodes together. */
  readonly entriesPerFsync: number;
  /** Mean time from queueing a log batch to the fsync that made it durable. */
  readonly meanMs: number;
  /** Mean time a successful write or transaction spent inside the cluster; null when none ran (or the nodes do not say). */
  readonly writeMeanMs: number | null;
}

export interface PersistCounters {
  readonly fsyncs: number;
  readonly seconds: number;
  readonly entries: number;
  /** Writes timed by qkv_write_seconds and their seconds; NaN when a node does not export it. */
  readonly writes: number;
  readonly writeSeconds: number;
  /** Each node's event-loop busy seconds, in the order of the URLs read; NaN where a node does not export it. */
  readonly loopBusySeconds: readonly number[];
}

const scrapeTimeoutMs = 2_000;

/** The nodes' counters summed; null when a node cannot be read (the figures are then unknown). */
export async function readPersistCounters(httpUrls: readonly string[]): Promise<PersistCounters | null> {
  if (httpUrls.length === 0) return null;
  try {
    const each = await Promise.all(
      httpUrls.map(async (url) => {
        const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(scrapeTimeoutMs) });
        if (!res.ok) throw new Error(`${url}/metrics answered ${res.status}`);
        const counters = parseCounters(await res.text());
        if (counters === null) throw new Error(`${url}/metrics has no persist counters`);
        return counters;
      }),
    );
    return each.reduce((a, c) => ({
      fsyncs: a.fsyncs + c.fsyncs,
      seconds: a.seconds + c.seconds,
      entries: a.entries + c.entries,
      writes: a.writes + c.writes,
      writeSeconds: a.writeSeconds + c.writeSeconds,
      loopBusySeconds: [...a.loopBusySeconds, ...c.loopBusySeconds],
    }));
  } catch {
    return null;
  }
}

/** The figures of the window between two readings; null if either is unknown or nothing was written. */
export function persistFigures(start: PersistCounters | null, end: PersistCounters | null, elapsedMs: number): PersistFigures | null {
  if (start === null || end === null) return null;
  const fsyncs = end.fsyncs - start.fsyncs;
  if (fsyncs <= 0) return null;
  const writes = end.writes - start.writes;
  return {
    fsyncsPerSec: fsyncs / (elapsedMs / 1000),
    entriesPerFsync: (end.entries - start.entries) / fsyncs,
    meanMs: ((end.seconds - start.seconds) / fsyncs) * 1000,
    writeMeanMs: writes > 0 ? ((end.writeSeconds - start.writeSeconds) / writes) * 1000 : null,
  };
}

/**
 * The largest share of the window (0–1) that one node's event loop spent running, between two
 * readings of the same nodes; null when unknown (a reading failed, or a node does not say).
 */
export function busiestLoopShare(start: PersistCounters | null, end: PersistCounters | null, elapsedMs: number): number | null {
  if (start === null || end === null || start.loopBusySeconds.length !== end.loopBusySeconds.length || elapsedMs <= 0) return null;
  const shares = end.loopBusySeconds.map((busy, i) => (busy - (start.loopBusySeconds[i] as number)) / (elapsedMs / 1000));
  return shares.length > 0 && shares.every(Number.isFinite) ? Math.max(...shares) : null;
}

function parseCounters(text: string): PersistCounters | null {
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const c = {
    fsyncs: value('qkv_log_persist_seconds_count'),
    seconds: value('qkv_log_persist_seconds_sum'),
    entries: value('qkv_log_persisted_entries_total'),
    writes: value('qkv_write_seconds_count'),
    writeSeconds: value('qkv_write_seconds_sum'),
    loopBusySeconds: [value('qkv_event_loop_busy_seconds_total')],
  };
  return Number.isFinite(c.fsyncs) && Number.isFinite(c.seconds) && Number.isFinite(c.entries) ? c : null;
}
