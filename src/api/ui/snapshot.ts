/**
 * What the dashboard shows, as data: one `UiSnapshot` per poll tick, built by a pure
 * function from the statuses the poller gathered (poller.ts), and the events derived by
 * comparing two successive snapshots. Owns the reading of a cluster from several nodes'
 * possibly disagreeing answers: the leader's view wins (lag, in-sync set, mode), then the
 * newest configuration, then this node's own.
 *
 * A member that does not answer is `down`, or `paused` when the supervisor that owns its
 * process says it paused it (a stopped process cannot say so itself).
 *
 * Must never: do I/O or read a clock (the tick's time is an argument), or invent a value
 * a node did not report (unknown stays null).
 */

import type { KindCounts, MessageSample } from '../../node/message-sampler.js';
import type { ProcessState } from './supervisor-link.js';
import type { MemberRole, ModeStatus, StatusResponse } from '../../wire/types.js';

/** One node's answer to GET /status in this tick, or why there was none. */
export interface NodeObservation {
  readonly id: string;
  /** Its HTTP origin, or null when no member record names one. */
  readonly http: string | null;
  readonly status: StatusResponse | null;
  /** Why `status` is null ("timeout after 400 ms", "ECONNREFUSED", "no HTTP address known"). */
  readonly error: string | null;
}

/**
 * How the dashboard draws a node: its Raft role, or, when its /status did not answer,
 * `paused` if its supervisor paused its process (Resume wakes it), else `down`.
 */
export type UiRole = 'leader' | 'follower' | 'candidate' | 'learner' | 'paused' | 'down';

export interface UiNode {
  readonly id: string;
  readonly http: string | null;
  readonly memberRole: MemberRole;
  readonly role: UiRole;
  /** Its /status answered in this tick. */
  readonly reachable: boolean;
  /** Its process as the supervisor (quorumkv up) reported it in this tick; null without one, or when it did not answer. */
  readonly process: ProcessState | null;
  /** The leader's view of its peer link (false: partitioned or dead); null without a leader or for the leader itself. */
  readonly peerReachable: boolean | null;
  /** Null when not reachable: the dashboard never shows an old number as if it were current. */
  readonly term: number | null;
  readonly commitIndex: number | null;
  readonly ackedIndex: number | null;
  readonly appliedIndex: number | null;
  readonly lastIndex: number | null;
  /** Entries behind the leader's log: the leader's view, else the leader's lastIndex minus its own; null when unknown. */
  readonly lagEntries: number | null;
  /** In the replica set `all` and `chain` wait for (mode.inSync of the leader, else of the newest answer). */
  readonly inSync: boolean;
  readonly rollbackCount: number | null;
  readonly error: string | null;
}

export type UiEventKind = 'leader' | 'role' | 'term' | 'mode' | 'unreachable' | 'reachable' | 'member';

export interface UiEvent {
  /** Increases by one per event over the poller's life; pages use it to skip events they have. */
  readonly seq: number;
  readonly atMs: number;
  readonly kind: UiEventKind;
  readonly node: string | null;
  readonly text: string;
}

export interface UiSnapshot {
  /** Wall-clock time of the tick (ms since the epoch), for the page's "last update". */
  readonly atMs: number;
  /** The node that polled (and serves the page). */
  readonly servedBy: string;
  /** Fault injection is on there: the page may offer its controls. */
  readonly faults: boolean;
  readonly leaderId: string | null;
  /** The highest term any reachable node reports. */
  readonly termMax: number;
  /** The mode in force (the leader's, else the newest answer's); null when no node answered. */
  readonly mode: ModeStatus | null;
  /** Chain order, head (the leader) first, when the topology is chain; empty otherwise. */
  readonly chain: readonly string[];
  readonly configIndex: number;
  readonly nodes: readonly UiNode[];
  /** The latest events, oldest first (at most eventsMax of poller.ts). */
  readonly events: readonly UiEvent[];
  /** Peer messages the nodes sampled since the previous tick, oldest first (message-gatherer.ts). */
  readonly messages: readonly MessageSample[];
  /** Per kind, over the nodes that answered: messages sampled, and sent but not sampled, since they started. */
  readonly messageCounts: { readonly sampled: KindCounts; readonly skipped: KindCounts };
}

/** The snapshot without its events and messages (eventsBetween and the gatherer add them). */
export type UiView = Omit<UiSnapshot, 'events' | 'messages' | 'messageCounts'>;

/** The members to show: the leader's configuration, else the newest one any node reports. */
function membersOf(observations: readonly NodeObservation[], leader: StatusResponse | null) {
  let best = leader?.membership ?? null;
  for (const o of observations) {
    const m = o.status?.membership;
    if (m !== undefined && (best === null || (leader === null && m.configIndex > best.configIndex))) best = m;
  }
  return best;
}

/** The leader: the reachable node that says it leads in the highest term (two may claim it briefly). */
function leaderOf(observations: readonly NodeObservation[]): StatusResponse | null {
  let leader: StatusResponse | null = null;
  for (const o of observations) {
    if (o.status?.role === 'leader' && (leader === null || o.status.term > leader.term)) leader = o.status;
  }
  return leader;
}

function newestAnswer(observations: readonly NodeObservation[]): StatusResponse | null {
  let newest: StatusResponse | null = null;
  for (const o of observations) {
    if (o.status !== null && (newest === null || o.status.term > newest.term)) newest = o.status;
  }
  return newest;
}

export interface ViewInputs {
  /** One per member, in member order. */
  readonly observations: readonly NodeObservation[];
  /** The supervisor's process states by member id, this tick; null or absent: no supervisor, or it did not answer. */
  readonly processes?: ReadonlyMap<string, ProcessState> | null;
  readonly servedBy: string;
  readonly faults: boolean;
  readonly atMs: number;
}

/** A node's role on the page: its own word when it answered, else what its supervisor knows. */
function roleOf(status: StatusResponse | null, memberRole: MemberRole, process: ProcessState | null): UiRole {
  if (status === null) return process === 'paused' ? 'paused' : 'down';
  return status.role === 'follower' && memberRole === 'learner' ? 'learner' : status.role;
}

/** Builds the view of one tick from its observations. */
export function viewOf(options: ViewInputs): UiView {
  const { observations } = options;
  const leader = leaderOf(observations);
  const reference = leader ?? newestAnswer(observations);
  const membership = membersOf(observations, leader);
  const mode = reference?.mode ?? null;
  const inSync = new Set(mode?.inSync ?? []);
  const nodes = observations.map((o): UiNode => {
    const s = o.status;
    const member = membership?.members.find((m) => m.id === o.id);
    const memberRole: MemberRole = member?.role ?? 'voter';
    const peer = leader?.peers.find((p) => p.id === o.id);
    const leaderLag = leader === null ? null : o.id === leader.id ? 0 : (member?.lag ?? peer?.lag ?? null);
    const ownLag = leader !== null && s !== null ? Math.max(0, leader.lastIndex - s.lastIndex) : null;
    const process = options.processes?.get(o.id) ?? null;
    return {
      id: o.id,
      http: o.http,
      memberRole,
      role: roleOf(s, memberRole, process),
      reachable: s !== null,
      process,
      peerReachable: leader === null || o.id === leader.id ? null : (peer?.reachable ?? null),
      term: s?.term ?? null,
      commitIndex: s?.commitIndex ?? null,
      ackedIndex: s?.ackedIndex ?? null,
      appliedIndex: s?.appliedIndex ?? null,
      lastIndex: s?.lastIndex ?? null,
      lagEntries: leaderLag ?? ownLag,
      inSync: inSync.has(o.id),
      rollbackCount: s?.rollbackCount ?? null,
      error: o.error,
    };
  });
  const termMax = Math.max(0, ...observations.map((o) => o.status?.term ?? 0));
  const chain = mode?.topology === 'chain' && leader !== null ? [leader.id, ...mode.inSync.filter((id) => id !== leader.id)] : [];
  return {
    atMs: options.atMs,
    servedBy: options.servedBy,
    faults: options.faults,
    leaderId: leader?.id ?? null,
    termMax,
    mode,
    chain,
    configIndex: membership?.configIndex ?? 0,
    nodes,
  };
}

function modeText(mode: ModeStatus): string {
  return `writeQuorum ${String(mode.writeQuorum)}, topology ${mode.topology}`;
}

/**
 * The events that take `previous` to `next`: a new leader or election, a node's role
 * change, a mode switch, a node becoming unreachable or reachable, members joining or
 * leaving. `seq` numbers them from `seqNext` on. With no previous view, nothing happened.
 */
export function eventsBetween(previous: UiView | null, next: UiView, seqNext: number): UiEvent[] {
  if (previous === null) return [];
  const events: UiEvent[] = [];
  const add = (kind: UiEventKind, node: string | null, text: string): void => {
    events.push({ seq: seqNext + events.length, atMs: next.atMs, kind, node, text });
  };
  if (next.termMax > previous.termMax) add('term', null, `term ${next.termMax} began (was ${previous.termMax}): an election`);
  if (next.leaderId !== previous.leaderId) {
    add('leader', next.leaderId, next.leaderId === null ? `no leader (was ${previous.leaderId ?? 'none'})` : `${next.leaderId} leads in term ${next.termMax}`);
  }
  if (next.mode !== null && previous.mode !== null && modeText(next.mode) !== modeText(previous.mode)) {
    add('mode', null, `mode switched to ${modeText(next.mode)} (was ${modeText(previous.mode)})`);
  }
  const before = new Map(previous.nodes.map((n) => [n.id, n]));
  for (const n of next.nodes) {
    const p = before.get(n.id);
    if (p === undefined) {
      add('member', n.id, `${n.id} joined as a ${n.memberRole}`);
      continue;
    }
    if (p.reachable && !n.reachable) add('unreachable', n.id, n.role === 'paused' ? `${n.id} is paused (its process is stopped) and does not answer` : `${n.id} does not answer (${n.error ?? 'no answer'})`);
    else if (!p.reachable && n.reachable) add('reachable', n.id, `${n.id} answers again, as ${n.role}`);
    else if (p.role !== n.role && n.role !== 'leader') add('role', n.id, `${n.id} is now ${n.role} (was ${p.role})`);
    if (p.peerReachable === true && n.peerReachable === false) add('unreachable', n.id, `the leader lost its link to ${n.id} (partition?)`);
    if (p.peerReachable === false && n.peerReachable === true) add('reachable', n.id, `the leader reaches ${n.id} again`);
  }
  const now = new Set(next.nodes.map((n) => n.id));
  for (const p of previous.nodes) if (!now.has(p.id)) add('member', p.id, `${p.id} left the cluster`);
  return events;
}
