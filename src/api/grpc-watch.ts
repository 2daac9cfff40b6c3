/**
 * The gRPC Watch stream: HTTP's GET /watch (routes/watch.ts) on a server stream, with the
 * same hub, promises and endings (node/watch.ts). Each change message is encoded once and
 * the same bytes go to every watcher alike (the hub shares the message object between
 * watchers of one prefix), and the bytes a reader has not taken are counted exactly, so
 * the hub's flow control (slow_consumer) works on bytes as over HTTP.
 *
 * Must never: leave a watcher registered after its call ended, or keep the server from
 * closing (open streams end with shutting_down when it closes).
 */

import * as grpc from '@grpc/grpc-js';
import type { KeyChange } from '../kv/types.js';
import type { WatchEnd, WatchMessage, WatchSink } from '../node/watch.js';
import { QkvError } from '../wire/errors.js';
import { Consistency, WatchResponse } from '../wire/gen/quorumkv.js';
import type { WatchChange, WatchRequest } from '../wire/gen/quorumkv.js';
import type { Checked, GrpcKv } from './grpc-kv.js';
import { badUtf8, checkDecoded } from './grpc-kv.js';
import { messageFields } from '../wire/values.js';
import { readOptions } from './ops.js';
import { watchEndError } from './watch-ends.js';

export type WatchCall = grpc.ServerWritableStream<Checked<WatchRequest>, Buffer>;

/** A hub message's encoding, made once whoever it goes to (a WeakMap: gone with the message). */
const encoded = new WeakMap<WatchMessage, Buffer>();

export function encodeWatchMessage(m: WatchMessage): Buffer {
  let bytes = encoded.get(m);
  if (bytes === undefined) {
    const message: WatchResponse =
      m.kind === 'progress' ? { message: { $case: 'progress', progress: m.version } } : { message: { $case: 'changes', changes: { version: m.version, changes: m.changes.map(changeMessage) } } };
    bytes = Buffer.from(WatchResponse.encode(message).finish());
    encoded.set(m, bytes);
  }
  return bytes;
}

function changeMessage(c: KeyChange): WatchChange {
  const prev = c.prev === undefined ? {} : { prev: { ...messageFields(c.prev.value), version: c.prev.version } };
  return c.value === undefined ? { type: 'delete', key: c.key, value: '', ...prev } : { type: 'put', key: c.key, ...messageFields(c.value), ...prev };
}

export class GrpcWatches {
  /** Enders of the open streams, for close(). */
  private readonly open = new Set<() => void>();

  constructor(
    private readonly kv: GrpcKv,
    private readonly toServiceError: (error: unknown) => Partial<grpc.StatusObject>,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** Ends every open stream with shutting_down (the server is closing). */
  close(): void {
    for (const end of [...this.open]) end();
  }

  async serve(call: WatchCall): Promise<void> {
    let watcher: number | null = null;
    let ended = false;
    let pendingBytes = 0;
    const drainWaiters: (() => void)[] = [];
    const finish = (reason: WatchEnd | null): void => {
      if (ended) return;
      ended = true;
      this.open.delete(stop);
      if (watcher !== null) this.kv.node.unwatch(watcher);
      if (call.cancelled) return;
      if (reason === null) call.end();
      else call.emit('error', this.toServiceError(watchEndError(reason)));
    };
    const stop = (): void => finish({ error: 'shutting_down' });
    const sink: WatchSink = {
      send: (m) => {
        if (ended || call.cancelled) return 0;
        const bytes = encodeWatchMessage(m);
        pendingBytes += bytes.length;
        call.write(bytes, () => {
          pendingBytes -= bytes.length;
          if (pendingBytes === 0) for (const fn of drainWaiters.splice(0)) fn();
        });
        return pendingBytes;
      },
      onDrain: (fn) => {
        if (pendingBytes === 0) queueMicrotask(fn);
        else drainWaiters.push(fn);
      },
      end: finish,
    };
    try {
      this.kv.refuseIfClosing();
      checkDecoded(call.request);
      const request = call.request;
      if (request[badUtf8] !== undefined) throw new QkvError('bad_request', 'prefix is not valid UTF-8');
      const prefix = request.prefix === '' ? '' : this.kv.checkPrefix(request.prefix);
      this.kv.access.permit(this.kv.who(call), prefix, 'read', 'prefix');
      const consistency = request.consistency === Consistency.LINEARIZABLE ? 'linearizable' : 'local';
      const timeoutMs = Math.max(1, Math.floor(this.kv.deadlineMs(call) - performance.now()));
      this.open.add(stop);
      call.on('cancelled', () => finish(null));
      // Headers now, not with the first message: the reader knows the stream is open.
      call.sendMetadata(new grpc.Metadata());
      const id = await this.kv.node.watch({ prefix, fromVersion: request.fromVersion ?? null, prevValue: request.prevValue }, sink, readOptions(consistency, undefined, timeoutMs));
      // Ended while it was opening (cancelled, or compacted at once): nothing more to undo.
      if (ended) this.kv.node.unwatch(id);
      else watcher = id;
    } catch (error) {
      this.open.delete(stop);
      ended = true;
      if (!call.cancelled) call.emit('error', this.toServiceError(error));
    }
  }
}
