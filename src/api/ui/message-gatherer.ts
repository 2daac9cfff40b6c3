/**
 * Gathers the peer messages every member sampled (node/message-sampler.ts) for the
 * dashboard's animated view: this node's own sampler directly, the others' through
 * GET /ui/messages?after=CURSOR, asked in each poll tick beside their /status. Keeps one
 * cursor per member (reset when the member's sampler is a new one: the process restarted)
 * and the members' running totals, for "drawn N of M".
 *
 * Bounded: at most `messagesPerTickMax` samples per tick (the newest kept), one cursor and
 * one total per member; a member that does not answer within the tick's deadline adds
 * nothing. Must never: wait longer than the deadline it is given, or let one member's
 * failure hide the others' messages.
 */

import { request, type Dispatcher } from 'undici';
import type { KindCounts, MessageSample, MessageSource, SampledMessages } from '../../node/message-sampler.js';

/** The newest samples kept per tick, over all members. */
export const messagesPerTickMax = 300;

export interface GatheredMessages {
  /** New samples since the last tick, oldest first. */
  readonly messages: readonly MessageSample[];
  readonly counts: { readonly sampled: KindCounts; readonly skipped: KindCounts };
}

function add(into: Record<string, number>, from: KindCounts): void {
  for (const [kind, n] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + (n ?? 0);
}

export class MessageGatherer {
  /** Per member: the seq its next sample will have, as it last said. */
  private readonly cursors = new Map<string, number>();
  private readonly totals = new Map<string, { readonly sampled: KindCounts; readonly skipped: KindCounts }>();

  constructor(
    private readonly selfId: string,
    /** This node's sampler; null on a node without one (then only the others' messages are drawn). */
    private readonly own: MessageSource | null,
  ) {}

  /**
   * One tick's new samples from every member (`members`: id and HTTP origin, this node
   * included). A member met for the first time gives only its cursor and totals: the page
   * draws what happens from now on, not a backlog.
   */
  async gather(members: readonly { readonly id: string; readonly http: string | null }[], dispatcher: Dispatcher, timeoutMs: number): Promise<GatheredMessages> {
    const answers = await Promise.all(
      members.map(async (m): Promise<[string, SampledMessages | null]> => {
        const after = (this.cursors.get(m.id) ?? 1) - 1;
        if (m.id === this.selfId) return [m.id, this.own?.since(after) ?? null];
        return [m.id, m.http === null ? null : await ask(m.http, after, dispatcher, timeoutMs)];
      }),
    );
    const messages: MessageSample[] = [];
    for (const [id, answer] of answers) {
      if (answer === null) continue;
      // A restarted member numbers from 1 again: asked past its end it returns nothing, and
      // its own seqNext becomes the cursor, so its messages are drawn from the next tick on.
      if (this.cursors.has(id)) messages.push(...answer.samples);
      this.cursors.set(id, answer.seqNext);
      this.totals.set(id, { sampled: answer.sampledByKind, skipped: answer.skippedByKind });
    }
    for (const id of [...this.totals.keys()]) {
      if (members.some((m) => m.id === id)) continue;
      this.totals.delete(id);
      this.cursors.delete(id);
    }
    messages.sort((a, b) => a.atMs - b.atMs);
    const sampled: Record<string, number> = {};
    const skipped: Record<string, number> = {};
    for (const t of this.totals.values()) {
      add(sampled, t.sampled);
      add(skipped, t.skipped);
    }
    return { messages: messages.slice(-messagesPerTickMax), counts: { sampled, skipped } };
  }
}

async function ask(http: string, after: number, dispatcher: Dispatcher, timeoutMs: number): Promise<SampledMessages | null> {
  try {
    const res = await request(`${http}/ui/messages?after=${after}`, { dispatcher, signal: AbortSignal.timeout(timeoutMs) });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return null; // an older node without the route, or one stopping: no messages from it
    }
    return (await res.body.json()) as SampledMessages;
  } catch {
    return null; // unreachable: its card says so
  }
}
