/**
 * `kv.watch(prefix)`: the changes under a prefix as an async iterator that outlives any one
 * connection. It reads a node's stream (GET /watch), and when the stream breaks (the node
 * died, stopped, was too slow for us, a network cut) it reconnects to the next endpoint
 * with capped backoff and resumes from the version after the last one it delivered, so
 * every change is delivered exactly once, in version order, across reconnects and
 * failovers (the history is the same on every node). Only two things end it: `close()`
 * (or a `break` out of `for await`), and a history compacted past where it must resume
 * (CompactedError: nothing can make up for it).
 *
 * A watch served by a follower is as fresh as that follower; `consistency: 'linearizable'`
 * makes each (re)connection wait for a read index first.
 *
 * Must never: deliver a version twice or out of order, skip one without throwing, or keep
 * the process alive after close().
 */

import { isErrorCode } from '../wire/errors.js';
import { QuorumKvError } from './errors.js';
import { AttemptError, ProtocolError, decodedIndex } from './transport.js';
import type { ClientTransport, WatchStream } from './transport.js';
import type { Value } from './types.js';
import { valueFromJson } from './values.js';

export interface WatchOptions {
  /** First version to deliver (default: the next change after the watch starts). */
  readonly fromVersion?: number;
  /** Deliver each change's previous record (`prev`). */
  readonly prevValue?: boolean;
  /** `local` (default): each node streams its own state; `linearizable`: after a read index. */
  readonly consistency?: 'linearizable' | 'local';
}

/** A key's record before a change (with `prevValue`). */
export interface PrevRecord {
  readonly value: Value;
  readonly version: number;
}

/** One key's change; values are text or bytes, as written. */
export type WatchChange =
  | { readonly type: 'put'; readonly key: string; readonly value: Value; readonly prev?: PrevRecord }
  | { readonly type: 'delete'; readonly key: string; readonly prev?: PrevRecord };

/** The changes one version made under the prefix (a transaction's writes come together). */
export interface WatchEvent {
  readonly version: number;
  readonly changes: readonly WatchChange[];
}

/** The history the watch must resume from was compacted: some changes can no longer be delivered. */
export class CompactedError extends QuorumKvError {
  override name = 'CompactedError';
}

export interface WatchDeps {
  readonly transport: ClientTransport;
  /** The endpoints to try, in order of preference (the client's known endpoints). */
  endpoints(): readonly string[];
  readonly backoffMsMin: number;
  readonly backoffMsMax: number;
  /** Bound on the wait for a stream's headers. */
  readonly connectTimeoutMs: number;
  /** Called once when the watch ends. */
  readonly onClose: () => void;
}

export class Watch implements AsyncIterable<WatchEvent> {
  private closed = false;
  private stream: WatchStream | null = null;
  private wake: (() => void) | null = null;
  /** The next version to deliver (null until the first stream said where "next" starts). */
  private next: number | null;
  private started = false;
  /** Connections opened (the first included): reconnects are `connections - 1`. */
  connections = 0;

  /** @internal Use `kv.watch()`. */
  constructor(
    private readonly deps: WatchDeps,
    readonly prefix: string,
    private readonly options: WatchOptions,
  ) {
    this.next = options.fromVersion ?? null;
  }

  /** The last version delivered (0 before the first). */
  get lastVersion(): number {
    return this.next === null ? 0 : this.next - 1;
  }

  /** Ends the watch: the iterator finishes, the connection closes. Idempotent. */
  close(): void {
    if (!this.closed) this.deps.onClose();
    this.closed = true;
    this.stream?.close();
    this.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.started) throw new Error('a Watch can be iterated once');
    this.started = true;
    return this.events();
  }

  private async *events(): AsyncGenerator<WatchEvent> {
    try {
      let failures = 0;
      let endpointIndex = 0;
      while (!this.closed) {
        const endpoints = this.deps.endpoints();
        const endpoint = endpoints[endpointIndex % endpoints.length];
        if (endpoint === undefined) throw new QuorumKvError('unavailable', 'the client knows no endpoint');
        let progressed = false;
        try {
          this.stream = await this.deps.transport.watch(endpoint, this.request(), this.deps.connectTimeoutMs);
          // Closed while the stream was being opened: close() found no stream to close.
          if (this.closed) return;
          this.connections++;
          for await (const message of this.stream.messages) {
            const event = this.take(message);
            progressed = true;
            if (event !== null) yield event;
            if (this.closed) return;
          }
          // The stream ended without an error line (the node closed it): resume elsewhere.
        } catch (error) {
          if (this.closed) return;
          if (error instanceof CompactedError) throw error;
          if (!(error instanceof AttemptError || error instanceof ProtocolError || error instanceof ResumeError)) throw error;
          if (error instanceof ResumeError && error.immediately) progressed = true;
          // Weak quorums: the versions from there on were replaced: they come again, as they are now.
          if (error instanceof RolledBack) this.next = error.fromVersion;
        } finally {
          this.stream?.close();
          this.stream = null;
        }
        failures = progressed ? 0 : failures + 1;
        endpointIndex++;
        if (failures > 0) await this.sleep(Math.min(this.deps.backoffMsMax, this.deps.backoffMsMin * 2 ** Math.min(failures - 1, 16)) * (0.5 + Math.random() / 2));
      }
    } finally {
      this.close();
    }
  }

  private request(): { prefix: string; fromVersion: number | null; prevValue: boolean; consistency: 'linearizable' | 'local' } {
    return { prefix: this.prefix, fromVersion: this.next, prevValue: this.options.prevValue ?? false, consistency: this.options.consistency ?? 'local' };
  }

  /** One stream message: an event to deliver, a progress mark (null), or an end (thrown). */
  private take(m: Record<string, unknown>): WatchEvent | null {
    if (typeof m['progress'] === 'number') {
      this.next = Math.max(this.next ?? 0, m['progress'] + 1);
      return null;
    }
    if (typeof m['error'] === 'string') throw endOf(m);
    const version = m['version'];
    const changes = m['changes'];
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || !Array.isArray(changes)) throw new ProtocolError('a watch message has no version and changes');
    if (this.next !== null && version < this.next) return null; // already delivered (cannot happen with a correct server)
    this.next = version + 1;
    return { version, changes: changes.map(changeOf) };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** A change as the stream gave it, its values as written (HTTP's JSON carries bytes as base64). */
function changeOf(raw: unknown): WatchChange {
  if (typeof raw !== 'object' || raw === null) throw new ProtocolError('a watch change is not an object');
  const c = raw as Record<string, unknown>;
  const key = c['key'];
  if (typeof key !== 'string') throw new ProtocolError('a watch change has no key');
  const prevRaw = c['prev'];
  const prev = typeof prevRaw === 'object' && prevRaw !== null ? { prev: { value: valueIn(prevRaw as Record<string, unknown>), version: decodedIndex((prevRaw as Record<string, unknown>)['version'], 'prev version') } } : {};
  if (c['type'] === 'delete') return { type: 'delete', key, ...prev };
  if (c['type'] === 'put') return { type: 'put', key, value: valueIn(c), ...prev };
  throw new ProtocolError(`a watch change has the unknown type ${JSON.stringify(c['type'])}`);
}

/** Bytes as they are (gRPC), or a JSON value (text, or base64 with its encoding). */
function valueIn(o: Record<string, unknown>): Value {
  return o['value'] instanceof Uint8Array ? o['value'] : valueFromJson(o, 'a watch change');
}

/** A stream that ended with an error line the watch recovers from by reconnecting. */
class ResumeError extends Error {
  constructor(
    message: string,
    /** The stream ended for a reason that is no node's failure (slow consumer): no backoff. */
    readonly immediately: boolean,
  ) {
    super(message);
  }
}

function endOf(m: Record<string, unknown>): Error {
  const code = String(m['error']);
  const message = typeof m['message'] === 'string' ? m['message'] : code;
  if (code === 'compacted') return new CompactedError('compacted', message, { oldestVersion: m['oldestVersion'] });
  if (code === 'slow_consumer') return new ResumeError(message, true);
  if (code === 'rolled_back' && typeof m['fromVersion'] === 'number') return new RolledBack(message, m['fromVersion']);
  if (isErrorCode(code)) return new ResumeError(message, false);
  return new ProtocolError(`a watch ended with an unknown error ${JSON.stringify(code)}`);
}

/** Weak quorums: the versions from `fromVersion` on were replaced; the watch resumes there. */
class RolledBack extends ResumeError {
  constructor(
    message: string,
    readonly fromVersion: number,
  ) {
    super(message, true);
  }
}
