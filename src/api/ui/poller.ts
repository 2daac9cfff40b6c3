/**
 * The dashboard's one poller per node: while at least one page is connected it asks this
 * node (directly) and every other member (GET /status over HTTP, short deadline) for their
 * status every `pollIntervalMs`, and at the same time for the peer messages they sampled
 * (message-gatherer.ts), and — when a supervisor owns the processes (quorumkv up) — that
 * supervisor for the processes it paused (a paused member cannot answer for itself); it
 * builds one UiSnapshot and hands it to every subscriber.
 * It stops when the last page leaves, so an idle node polls nobody.
 *
 * Limits: one tick in flight at a time (a slow tick makes the next one skip, never pile
 * up), `subscribersMax` pages, `eventsMax` remembered events, two connections per peer
 * (its status and its messages, asked together), one request to the supervisor per tick
 * with the same deadline as a peer's status.
 *
 * Must never: keep a subscriber's snapshots in a queue (a slow page skips snapshots; the
 * SSE route drops what its socket cannot take), or let one silent peer delay the others.
 */

import { Agent, request } from 'undici';
import type { KvNode } from '../../node/types.js';
import type { StatusResponse } from '../../wire/types.js';
import type { OutboundTls } from '../outbound-tls.js';
import type { MessageSource } from '../../node/message-sampler.js';
import { MessageGatherer } from './message-gatherer.js';
import { eventsBetween, viewOf } from './snapshot.js';
import type { NodeObservation, UiEvent, UiSnapshot, UiView } from './snapshot.js';
import type { ProcessState, SupervisorLink } from './supervisor-link.js';

export interface PollerLimits {
  /** Time between two ticks. */
  readonly pollIntervalMs: number;
  /** How long a peer's /status may take before it counts as unreachable in this tick. */
  readonly statusTimeoutMs: number;
  /** Pages that may be connected at once; one more is refused (503). */
  readonly subscribersMax: number;
  /** Events kept and sent with every snapshot (the page's feed). */
  readonly eventsMax: number;
}

export const defaultPollerLimits: PollerLimits = {
  pollIntervalMs: 400,
  statusTimeoutMs: 350,
  subscribersMax: 32,
  eventsMax: 100,
};

/** How long the supervisor's last answer stands in for one it did not give in time. */
const processesKeptMsMax = 2_000;

export type SnapshotListener = (snapshot: UiSnapshot) => void;

export class TooManySubscribers extends Error {
  constructor(readonly subscribersMax: number) {
    super(`The dashboard already streams to ${subscribersMax} pages, its limit; close one`);
  }
}

export class ClusterPoller {
  private readonly listeners = new Set<SnapshotListener>();
  private timer: NodeJS.Timeout | null = null;
  private tickInFlight = false;
  private agent: Agent | null = null;
  private previous: UiView | null = null;
  private events: UiEvent[] = [];
  private seqNext = 1;
  private latest: UiSnapshot | null = null;
  private processesKnown: { readonly states: ReadonlyMap<string, ProcessState>; readonly atMs: number } | null = null;
  private readonly gatherer: MessageGatherer;

  constructor(
    private readonly node: KvNode,
    /**
     * `connect`: TLS options for reaching the other nodes' HTTPS APIs (their CA, this node's
     * certificate); `messages`: this node's sampler of the peer messages it sends;
     * `supervisor`: the one that owns the members' processes, asked which it paused.
     */
    private readonly options: {
      readonly faults: boolean;
      readonly limits: PollerLimits;
      readonly connect?: OutboundTls;
      readonly messages?: MessageSource;
      readonly supervisor?: SupervisorLink;
    },
  ) {
    this.gatherer = new MessageGatherer(node.id, options.messages ?? null);
    const l = options.limits;
    if (l.statusTimeoutMs >= l.pollIntervalMs) {
      throw new RangeError(`statusTimeoutMs ${l.statusTimeoutMs} must be below pollIntervalMs ${l.pollIntervalMs}: a tick must end before the next`);
    }
  }

  /** Pages connected now. */
  get subscriberCount(): number {
    return this.listeners.size;
  }

  /** The last snapshot built (null before the first tick of this node's life). */
  get latestSnapshot(): UiSnapshot | null {
    return this.latest;
  }

  /** HTTP origin of member `id` as the last tick knew it (for the control routes). */
  httpOf(id: string): string | null {
    return this.latest?.nodes.find((n) => n.id === id)?.http ?? null;
  }

  /** Adds a page; throws TooManySubscribers at the limit. Returns the function that removes it. */
  subscribe(listener: SnapshotListener): () => void {
    if (this.listeners.size >= this.options.limits.subscribersMax) throw new TooManySubscribers(this.options.limits.subscribersMax);
    this.listeners.add(listener);
    if (this.timer === null) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** Stops polling and drops every subscriber (the server is closing). */
  close(): void {
    this.listeners.clear();
    this.stop();
  }

  private start(): void {
    this.agent = new Agent({
      connections: 2,
      connectTimeout: this.options.limits.statusTimeoutMs,
      headersTimeout: this.options.limits.statusTimeoutMs,
      bodyTimeout: this.options.limits.statusTimeoutMs,
      keepAliveTimeout: 4_000,
      ...(this.options.connect === undefined ? {} : { connect: this.options.connect(this.options.limits.statusTimeoutMs) }),
    });
    this.timer = setInterval(() => void this.tick(), this.options.limits.pollIntervalMs);
    void this.tick();
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const agent = this.agent;
    this.agent = null;
    if (agent !== null) void agent.destroy().catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const agent = this.agent;
    if (this.tickInFlight || agent === null) return;
    this.tickInFlight = true;
    try {
      const self = this.node.status();
      const members = membersOf(self);
      const [observations, gathered, processes] = await Promise.all([
        this.observe(agent, self, members),
        this.gatherer.gather(members, agent, this.options.limits.statusTimeoutMs),
        this.askSupervisor(),
      ]);
      if (this.agent !== agent) return; // stopped meanwhile: nobody to tell
      const view = viewOf({ observations, processes, servedBy: this.node.id, faults: this.options.faults, atMs: Date.now() });
      const fresh = eventsBetween(this.previous, view, this.seqNext);
      this.seqNext += fresh.length;
      this.events = [...this.events, ...fresh].slice(-this.options.limits.eventsMax);
      this.previous = view;
      const snapshot: UiSnapshot = { ...view, events: this.events, messages: gathered.messages, messageCounts: gathered.counts };
      this.latest = snapshot;
      for (const listener of this.listeners) listener(snapshot);
    } finally {
      this.tickInFlight = false;
    }
  }

  /** This node's status and every other member's, asked in parallel, in member order. */
  private async observe(agent: Agent, self: StatusResponse, members: readonly Member[]): Promise<NodeObservation[]> {
    return Promise.all(
      members.map(async ({ id, http }): Promise<NodeObservation> => {
        if (id === self.id) return { id, http, status: self, error: null };
        if (http === null) return { id, http, status: null, error: 'no HTTP address known' };
        return this.askStatus(agent, id, http);
      }),
    );
  }

  /**
   * The supervisor's process states, or null without one. When it does not answer in time,
   * its last answer stands for up to `processesKeptMsMax` (a busy supervisor must not make a
   * paused card flicker to down and back), then nothing is known.
   */
  private async askSupervisor(): Promise<ReadonlyMap<string, ProcessState> | null> {
    const supervisor = this.options.supervisor;
    if (supervisor === undefined) return null;
    try {
      const states = await supervisor.processes(this.options.limits.statusTimeoutMs);
      this.processesKnown = { states, atMs: Date.now() };
      return states;
    } catch {
      const known = this.processesKnown;
      return known !== null && Date.now() - known.atMs <= processesKeptMsMax ? known.states : null;
    }
  }

  private async askStatus(agent: Agent, id: string, http: string): Promise<NodeObservation> {
    const timeoutMs = this.options.limits.statusTimeoutMs;
    try {
      const res = await request(`${http}/status`, { dispatcher: agent, signal: AbortSignal.timeout(timeoutMs) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return { id, http, status: null, error: `GET /status answered ${res.statusCode}` };
      }
      const status = (await res.body.json()) as StatusResponse;
      if (status.id !== id) return { id, http, status: null, error: `${http} is node ${String(status.id)}, not ${id}` };
      return { id, http, status, error: null };
    } catch (error) {
      const text = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errorText(error);
      return { id, http, status: null, error: text };
    }
  }
}

interface Member {
  readonly id: string;
  readonly http: string | null;
}

/** Every member this node knows, with its HTTP origin (the configuration's, else the peer link's), in member order. */
function membersOf(self: StatusResponse): Member[] {
  const members = self.membership?.members.map((m) => ({ id: m.id, http: m.http })) ?? [{ id: self.id, http: null }];
  const known = new Map(members.map((m) => [m.id, m.http]));
  for (const p of self.peers) if (!known.has(p.id) || known.get(p.id) === null) known.set(p.id, p.http);
  return [...known].map(([id, http]) => ({ id, http }));
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    return typeof code === 'string' ? code : error.message;
  }
  return String(error);
}
