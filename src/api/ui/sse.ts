/**
 * GET /ui/events: the dashboard's push stream (Server-Sent Events). Each connected page is
 * one subscriber of the node's ClusterPoller and receives one `data:` line of UiSnapshot
 * JSON per tick. Owns every open stream, so the server can end them all when it closes
 * (an open stream is never "idle" and would otherwise hold `close()` forever).
 *
 * Bounded: a page whose socket has not drained the previous snapshot skips this one (a
 * snapshot is complete by itself, so nothing is lost but staleness); at most
 * `subscribersMax` pages (poller.ts), one more is 503 busy.
 * Must never: keep writing to a closed socket, or keep the poller running for a page that left.
 */

import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { QkvError } from '../../wire/errors.js';
import { TooManySubscribers } from './poller.js';
import type { ClusterPoller } from './poller.js';
import type { UiSnapshot } from './snapshot.js';

/** What a page's EventSource waits before reconnecting after a lost stream. */
const reconnectMs = 1_000;

export class SnapshotStreams {
  /** Ends every open stream; filled by open(), emptied as streams end. */
  private readonly enders = new Set<() => void>();

  constructor(private readonly poller: ClusterPoller) {}

  /** Open streams now. */
  get openCount(): number {
    return this.enders.size;
  }

  /** Answers with a stream of snapshots until the page disconnects or the server closes. */
  open(reply: FastifyReply): void {
    const raw = reply.raw;
    const send = (snapshot: UiSnapshot): void => {
      if (raw.writableEnded || raw.destroyed || raw.writableNeedDrain) return;
      raw.write(`data: ${JSON.stringify(snapshot)}\n\n`);
    };
    let unsubscribe: () => void;
    try {
      unsubscribe = this.poller.subscribe(send);
    } catch (error) {
      if (error instanceof TooManySubscribers) throw new QkvError('busy', error.message, { subscribersMax: error.subscribersMax }, 5_000);
      throw error;
    }
    reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    raw.write(`retry: ${reconnectMs}\n\n`);
    const latest = this.poller.latestSnapshot;
    if (latest !== null) send(latest);
    const end = (): void => {
      if (!this.enders.delete(end)) return;
      unsubscribe();
      endResponse(raw);
    };
    this.enders.add(end);
    raw.once('close', end);
    raw.once('error', end);
  }

  /** Ends every stream (the server is closing). */
  close(): void {
    for (const end of [...this.enders]) end();
    this.poller.close();
  }
}

function endResponse(raw: ServerResponse): void {
  if (!raw.writableEnded && !raw.destroyed) raw.end();
}
