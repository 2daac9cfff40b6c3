/**
 * The dashboard's fault controls, done by the node that serves the page (the page cannot
 * reach other origins): partition, heal, delay and die, exactly as `quorumkv fault` does
 * them (cli/fault.ts) — PUT /admin/faults or POST /admin/die on the right node. This node
 * is acted on directly through its own hooks; the others over HTTP. Restart, pause and
 * resume go to the supervisor that owns the processes (the `supervisor` hook), when one does:
 * a paused or exited process cannot act on a request itself.
 *
 * Exists only with fault injection on (routes/ui.ts registers the routes then).
 * Another node is asked with the caller's own Authorization header (this node checked it
 * is an admin's; the other node checks it again), never with credentials of this node's.
 *
 * Must never: take a URL from the request (a node is named by id and looked up in this
 * node's configuration, so the routes cannot be turned against arbitrary hosts), or wait
 * longer than `actionTimeoutMs` on another node.
 */

import { request } from 'undici';
import type { KvNode } from '../../node/types.js';
import { QkvError } from '../../wire/errors.js';
import type { FaultsAdmin } from '../http-context.js';
import type { SupervisorAction, SupervisorLink } from './supervisor-link.js';

/** How long another node may take to answer an action. */
const actionTimeoutMs = 3_000;

/** What the action routes act through: this node, its fault switchboard and its die hook. */
export interface ActionHooks {
  readonly node: KvNode;
  readonly faultsAdmin: FaultsAdmin;
  /** This node's die hook (stop cleanly, or kill -9 when not clean). */
  readonly die: (clean: boolean) => void;
  /** The supervisor that owns the members' processes (quorumkv up): restart, pause, resume; absent without one. */
  readonly supervisor?: SupervisorLink;
}

interface Member {
  readonly id: string;
  readonly http: string | null;
}

/** Every member this node's configuration names, with its HTTP origin (peers fill gaps). */
function membersOf(node: KvNode): Member[] {
  const s = node.status();
  const members = s.membership?.members.map((m) => ({ id: m.id, http: m.http })) ?? [{ id: s.id, http: null }, ...s.peers.map((p) => ({ id: p.id, http: p.http }))];
  return members.map((m) => ({ id: m.id, http: m.http ?? s.peers.find((p) => p.id === m.id)?.http ?? null }));
}

function pick(members: readonly Member[], id: string): Member {
  const m = members.find((x) => x.id === id);
  if (m === undefined) throw new QkvError('bad_request', `No member ${JSON.stringify(id)}; members: ${members.map((x) => x.id).join(', ')}`);
  return m;
}

/** The caller's Authorization header, passed on to the other nodes (undefined: none was sent). */
export type CallerAuth = string | undefined;

async function callOther(member: Member, method: 'PUT' | 'POST', route: string, body: unknown, auth: CallerAuth): Promise<unknown> {
  if (member.http === null) throw new QkvError('bad_request', `Member ${member.id} has no known HTTP address`);
  let res;
  try {
    res = await request(`${member.http}${route}`, {
      method,
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...(auth === undefined ? {} : { authorization: auth }) },
      signal: AbortSignal.timeout(actionTimeoutMs),
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new QkvError('timeout', `${member.id} (${member.http}) did not answer ${method} ${route} within ${actionTimeoutMs} ms: ${why}`, { node: member.id });
  }
  const answer = (await res.body.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.statusCode >= 300) {
    const message = `${member.id} answered ${method} ${route} with ${res.statusCode}: ${String(answer['message'] ?? answer['error'] ?? '')}`;
    throw new QkvError(res.statusCode === 404 ? 'bad_request' : 'internal', message, { node: member.id });
  }
  return answer;
}

/** Applies fault `rules` on `member` (this node directly, another one by PUT /admin/faults). */
async function setFaults(hooks: ActionHooks, member: Member, rules: Record<string, unknown>, auth: CallerAuth): Promise<unknown> {
  if (member.id === hooks.node.id) {
    hooks.faultsAdmin.setRules(rules);
    return hooks.faultsAdmin.rules();
  }
  return callOther(member, 'PUT', '/admin/faults', rules, auth);
}

/** Cuts `id` off from every other member, both directions (`quorumkv fault partition`). */
export async function partition(hooks: ActionHooks, id: string, auth: CallerAuth): Promise<object> {
  const members = membersOf(hooks.node);
  const target = pick(members, id);
  const others = members.filter((m) => m.id !== id).map((m) => m.id);
  const rules = await setFaults(hooks, target, { blockedTo: others, blockedFrom: others }, auth);
  return { node: id, cutOffFrom: others, rules };
}

/** Lifts partitions on `id`, or on every member (`quorumkv fault heal [NODE]`). */
export async function heal(hooks: ActionHooks, id: string | undefined, auth: CallerAuth): Promise<object> {
  const members = membersOf(hooks.node);
  const targets = id === undefined ? members : [pick(members, id)];
  const outcomes = await Promise.allSettled(targets.map((m) => setFaults(hooks, m, { blockedTo: [], blockedFrom: [] }, auth)));
  return { healed: targets.filter((_, i) => outcomes[i]?.status === 'fulfilled').map((m) => m.id), failed: failures(targets, outcomes) };
}

/** Adds a uniform replication delay on `id` or every member (`quorumkv fault delay MIN-MAX`). */
export async function delay(hooks: ActionHooks, range: { readonly delayMsMin: number; readonly delayMsMax: number }, id: string | undefined, auth: CallerAuth): Promise<object> {
  if (range.delayMsMax < range.delayMsMin) throw new QkvError('bad_request', `delayMsMin ${range.delayMsMin} is above delayMsMax ${range.delayMsMax}`);
  const members = membersOf(hooks.node);
  const targets = id === undefined ? members : [pick(members, id)];
  const rules = { delayMsMin: range.delayMsMin, delayMsMax: range.delayMsMax };
  const outcomes = await Promise.allSettled(targets.map((m) => setFaults(hooks, m, rules, auth)));
  return { ...rules, on: targets.filter((_, i) => outcomes[i]?.status === 'fulfilled').map((m) => m.id), failed: failures(targets, outcomes) };
}

/**
 * Makes `id` stop (clean) or kill itself (`quorumkv fault die NODE`). When `id` is this
 * node, `afterAnswer` receives the kill, to run once the answer has left.
 */
export async function die(hooks: ActionHooks, id: string, clean: boolean, afterAnswer: (kill: () => void) => void, auth: CallerAuth): Promise<object> {
  const target = pick(membersOf(hooks.node), id);
  if (target.id === hooks.node.id) {
    afterAnswer(() => hooks.die(clean));
    return { node: id, clean };
  }
  await callOther(target, 'POST', '/admin/die', { id, clean }, auth);
  return { node: id, clean };
}

/**
 * Asks the supervisor that owns member `id`'s process to restart, pause (SIGSTOP) or resume
 * (SIGCONT) it, as `quorumkv fault restart|pause|resume NODE` does. The supervisor refuses
 * to restart a process that still runs or is paused and to resume a running one
 * (process_running), and to pause one that is paused or exited (process_not_running).
 */
export async function throughSupervisor(hooks: ActionHooks, action: SupervisorAction, id: string): Promise<object> {
  const target = pick(membersOf(hooks.node), id);
  if (hooks.supervisor === undefined) {
    const byHand = action === 'restart' ? 'start it by hand' : `send it SIG${action === 'pause' ? 'STOP' : 'CONT'} by hand`;
    throw new QkvError('no_supervisor', `No supervisor owns this cluster's processes (${hooks.node.id} was started without --supervisor): to ${action} ${target.id}, ${byHand}, or run the cluster with quorumkv up`);
  }
  return hooks.supervisor.act(action, target.id);
}

function failures(targets: readonly Member[], outcomes: readonly PromiseSettledResult<unknown>[]): { node: string; message: string }[] {
  const failed: { node: string; message: string }[] = [];
  outcomes.forEach((o, i) => {
    if (o.status === 'rejected') failed.push({ node: targets[i]?.id ?? '?', message: o.reason instanceof Error ? o.reason.message : String(o.reason) });
  });
  return failed;
}
