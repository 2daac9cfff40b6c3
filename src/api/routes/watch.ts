/**
 * GET /watch?prefix=&fromVersion=&prevValue=true&consistency=&format=sse|ndjson — a stream of
 * every change under `prefix` from `fromVersion` on (absent: from the next change), served
 * from this node's own state (node/watch.ts says what is promised), as NDJSON (default) or
 * Server-Sent Events (`format=sse`, or `Accept: text/event-stream`). One message per
 * version that changed keys under the prefix:
 *
 *   {"version":12,"changes":[{"type":"put","key":"a","value":"x","prev":{"value":"w","version":9}},{"type":"delete","key":"b"}]}
 *   {"progress":15}                                    everything up to 15 was sent
 *   {"error":"compacted","message":…,"oldestVersion":4}  last message: the stream ends
 *
 * In SSE each message is an event (`change`, `progress`, `error`) whose `id` is its version,
 * so a browser's EventSource resumes by itself (`Last-Event-ID` + 1 is the next version).
 * A watch served by a follower is as fresh as that follower; `consistency=linearizable`
 * first waits for a read index. The stream never times out; the client ends it.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import type { KeyChange } from '../../kv/types.js';
import type { WatchEnd, WatchMessage, WatchSink } from '../../node/watch.js';
import { QkvError } from '../../wire/errors.js';
import { jsonValue } from '../../wire/values.js';
import type { HttpContext } from '../http-context.js';
import { parseDecimal } from '../http-input.js';
import { readHeaders, watchQuery } from '../http-schemas.js';
import { readOptions } from '../ops.js';
import type { HttpRoute } from './route.js';
import { watchEndError } from '../watch-ends.js';

/** The open watch streams, ended when the server closes (they are never idle). */
export class WatchStreams {
  private readonly enders = new Set<() => void>();

  add(end: () => void): () => void {
    this.enders.add(end);
    return () => this.enders.delete(end);
  }

  close(): void {
    for (const end of [...this.enders]) end();
  }
}

type WatchRequestIn = FastifyRequest<{ Querystring: Static<typeof watchQuery> }>;

export function watchRoutes(ctx: HttpContext, streams: WatchStreams): HttpRoute[] {
  return [
    {
      method: 'GET',
      access: 'data',
      url: '/watch',
      stream: true,
      schema: { querystring: watchQuery, headers: readHeaders },
      handle: (request: WatchRequestIn, reply) => openWatch(ctx, streams, request, reply),
    },
  ];
}

async function openWatch(ctx: HttpContext, streams: WatchStreams, request: WatchRequestIn, reply: FastifyReply): Promise<unknown> {
  ctx.serveHere(reply);
  const q = request.query;
  const prefix = q.prefix === undefined || q.prefix === '' ? '' : ctx.checkKey(q.prefix, 'prefix');
  ctx.permit(request, prefix, 'read', 'prefix');
  const sse = q.format === 'sse' || (q.format === undefined && (request.headers.accept ?? '').includes('text/event-stream'));
  const fromVersion = q.fromVersion !== undefined ? parseDecimal(q.fromVersion) : resumeVersion(request.headers['last-event-id']);
  const raw = reply.raw;
  let id: number | null = null;
  let stop = (): void => undefined;
  const finish = (reason: WatchEnd | null): void => {
    stop();
    if (reason !== null && !raw.writableEnded && !raw.destroyed) raw.write(format(sse, errorMessage(reason), 'error', null));
    if (!raw.writableEnded) raw.end();
  };
  const sink: WatchSink = {
    send: (m) => {
      if (raw.writableEnded || raw.destroyed) return 0;
      raw.write(formatted(m, sse));
      return raw.writableLength;
    },
    onDrain: (fn) => void raw.once('drain', fn),
    end: finish,
  };
  const options = readOptions(q.consistency ?? 'local', undefined, ctx.timeoutMs(request));
  // The headers go first: the watch may start sending at once (a catch-up from the past).
  reply.hijack();
  raw.writeHead(200, {
    'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    'x-qkv-served-by': ctx.node.id,
  });
  // Now, not with the first message: a watch of a quiet prefix may send nothing for a while.
  raw.flushHeaders();
  try {
    id = await ctx.node.watch({ prefix, fromVersion, prevValue: q.prevValue === 'true' }, sink, options);
  } catch (error) {
    const e = error instanceof QkvError ? error : new QkvError('internal', error instanceof Error ? error.message : String(error));
    raw.end(format(sse, { error: e.code, message: e.message, ...e.details }, 'error', null));
    return reply;
  }
  const watcher = id;
  if (raw.writableEnded) return reply; // ended at once (compacted)
  const unregister = streams.add(() => finish({ error: 'shutting_down' }));
  stop = () => {
    ctx.node.unwatch(watcher);
    unregister();
  };
  raw.once('close', () => stop());
  return reply;
}

/** `Last-Event-ID` (SSE reconnect): the last version received, so the next one is wanted. */
function resumeVersion(header: string | string[] | undefined): number | null {
  if (typeof header !== 'string') return null;
  const last = parseDecimal(header);
  if (last === null) throw new QkvError('bad_request', `Header last-event-id must be a version (an integer >= 0), got ${JSON.stringify(header)}`);
  return last + 1;
}

/** Watchers alike get the same message object from the hub: it is serialized once per format. */
const serialized = new WeakMap<WatchMessage, { ndjson?: string; sse?: string }>();

function formatted(m: WatchMessage, sse: boolean): string {
  let texts = serialized.get(m);
  if (texts === undefined) serialized.set(m, (texts = {}));
  const field = sse ? 'sse' : 'ndjson';
  return (texts[field] ??= format(sse, messageBody(m), m.kind === 'changes' ? 'change' : 'progress', m.version));
}

function messageBody(m: WatchMessage): Record<string, unknown> {
  if (m.kind === 'progress') return { progress: m.version };
  return { version: m.version, changes: m.changes.map(changeBody) };
}

function changeBody(c: KeyChange): Record<string, unknown> {
  const prev = c.prev === undefined ? {} : { prev: { ...jsonValue(c.prev.value), version: c.prev.version } };
  return c.value === undefined ? { type: 'delete', key: c.key, ...prev } : { type: 'put', key: c.key, ...jsonValue(c.value), ...prev };
}

function errorMessage(reason: WatchEnd): Record<string, unknown> {
  return watchEndError(reason).toBody();
}

function format(sse: boolean, body: Record<string, unknown>, event: string, id: number | null): string {
  const json = JSON.stringify(body);
  return sse ? `${id === null ? '' : `id: ${id}\n`}event: ${event}\ndata: ${json}\n\n` : `${json}\n`;
}
