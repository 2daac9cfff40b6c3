/**
 * A scripted harness for core scenario tests, in the spirit of etcd-io/raft's
 * interaction tests: several cores, a message queue, and commands that read like a
 * story (`add-nodes 3`, `campaign n1`, `stabilize`, `propose n1 x`, `isolate n1`,
 * `partition n1,n2 n3,n4,n5`, `read n2`: a linearizable read on any node). The
 * harness plays the driver: it persists, sends and applies every Ready at once. Its
 * output (messages delivered, states) is compared with testdata/*.txt.
 */

import { assert } from '../../stdx/assert.js';
import { createPrng } from '../../stdx/prng.js';
import { decodeConfig } from '../config.js';
import type { CoreOptions } from '../options.js';
import type { MembershipChange } from '../membership.js';
import { RaftCore } from '../raft.js';
import type { ClusterConfig, Entry, HardState, Message, NodeId, Ready } from '../types.js';
import { MemoryLog } from './memory-log.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface SimNode {
  core: RaftCore;
  log: MemoryLog;
  hard: HardState;
  applied: Entry[];
  up: boolean;
}

export class Interaction {
  private nodes = new Map<NodeId, SimNode>();
  private queue: Message[] = [];
  private blocked = new Set<string>();
  private out: string[] = [];
  private config: ClusterConfig = { members: [], writeQuorum: 'majority', topology: 'star' };
  private coreDefaults: Partial<CoreOptions> = {};
  private seed = 1;
  /** Real time in ticks, shared by every node: `run` rounds and `tick all` move it, `clock N` alone (a stall). */
  private clockTicks = 0;

  /** Runs a whole script; returns the output with each command echoed. */
  run(script: string): string {
    const chunks: string[] = [];
    for (const raw of script.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      this.out = [];
      this.exec(line);
      chunks.push(`> ${line}\n${this.out.map((l) => `${l}\n`).join('')}`);
    }
    return chunks.join('');
  }

  core(id: NodeId): RaftCore {
    const n = this.nodes.get(id);
    assert(n !== undefined, `no node ${id}`);
    return n.core;
  }

  applied(id: NodeId): Entry[] {
    return this.nodes.get(id)?.applied ?? [];
  }

  exec(line: string): void {
    const [cmd, ...args] = line.split(/\s+/);
    switch (cmd) {
      case 'add-nodes':
        return this.addNodes(Number(args[0]), args.slice(1));
      case 'campaign':
        this.core(need(args[0])).campaignNow();
        return this.process(need(args[0]));
      case 'tick': {
        const ids = args[0] === 'all' ? [...this.nodes.keys()] : [need(args[0])];
        const times = Number(args[1] ?? '1');
        for (let i = 0; i < times; i++) {
          if (args[0] === 'all') this.clockTicks++;
          for (const id of ids) {
            const n = this.nodes.get(id);
            if (n === undefined || !n.up) continue;
            n.core.tick();
            this.process(id);
          }
        }
        return;
      }
      case 'run': {
        // N rounds of: every live node ticks once, then all messages are delivered.
        const rounds = Number(args[0] ?? '1');
        for (let i = 0; i < rounds; i++) {
          this.clockTicks++;
          for (const [id, n] of this.nodes) {
            if (!n.up) continue;
            n.core.tick();
            this.process(id);
          }
          this.stabilize(false);
        }
        return;
      }
      case 'propose': {
        const id = need(args[0]);
        const datas = args.slice(1);
        const r = this.core(id).propose(datas.map((d) => ({ kind: 'normal' as const, data: encoder.encode(d) })));
        this.out.push(r.ok ? `${id} proposed up to ${r.index}/${r.term}` : `${id} propose refused: ${r.reason}`);
        return this.process(id);
      }
      case 'read': {
        // read n2 [count]: `count` reads asked in one turn (they leave in one batch).
        const id = need(args[0]);
        const count = Number(args[1] ?? '1');
        for (let i = 0; i < count; i++) {
          const r = this.core(id).readIndex();
          if (!r.ok) this.out.push(`${id} read refused: ${r.reason}`);
          else this.out.push(r.index === null ? `${id} read#${r.requestId} pending` : `${id} read#${r.requestId} ready at index ${r.index} by lease`);
        }
        return this.process(id);
      }
      case 'add-learner':
      case 'add-voter':
      case 'promote':
      case 'remove':
        return this.changeMembership(cmd, need(args[0]), need(args[1]));
      case 'transfer': {
        const r = this.core(need(args[0])).transferLeadership(need(args[1]));
        this.out.push(r.ok ? `${need(args[0])} transfers leadership to ${r.to}` : `transfer refused: ${r.reason}${'message' in r ? ` (${r.message})` : ''}`);
        return this.process(need(args[0]));
      }
      case 'clock':
        // clock N: real time moves N ticks while no node ticks (every node stalls).
        this.clockTicks += Number(args[0] ?? '1');
        return;
      case 'plant':
        // plant n2 configOnCommit: break one node on purpose (PlantedBugs).
        this.core(need(args[0])).planted = { ...this.core(need(args[0])).planted, [need(args[1])]: true };
        return;
      case 'deliver':
        return this.deliverRound(true);
      case 'stabilize':
        return this.stabilize(args[0] !== 'quiet');
      default:
        return this.execFaultOrQuery(cmd, args, line);
    }
  }

  /** Network faults, node crashes and restarts, and the commands that print state. */
  private execFaultOrQuery(cmd: string | undefined, args: string[], line: string): void {
    switch (cmd) {
      case 'isolate': {
        const id = need(args[0]);
        for (const other of this.nodes.keys()) {
          if (other === id) continue;
          this.blocked.add(`${id}->${other}`);
          this.blocked.add(`${other}->${id}`);
        }
        return;
      }
      case 'partition': {
        // partition n1,n2 n3,n4,n5: no message crosses between the groups (both ways).
        const groups = args.map((g) => g.split(','));
        for (const a of groups) {
          for (const b of groups) {
            if (a === b) continue;
            for (const from of a) for (const to of b) this.blocked.add(`${from}->${to}`);
          }
        }
        return;
      }
      case 'cut': {
        // cut a->b: one-way
        const [from, to] = need(args[0]).split('->');
        this.blocked.add(`${need(from)}->${need(to)}`);
        return;
      }
      case 'heal':
        this.blocked.clear();
        return;
      case 'crash': {
        const n = this.nodes.get(need(args[0]));
        assert(n !== undefined, 'crash: no such node');
        n.up = false;
        this.queue = this.queue.filter((m) => m.to !== args[0]);
        return;
      }
      case 'restart': {
        const id = need(args[0]);
        const n = this.nodes.get(id);
        assert(n !== undefined, 'restart: no such node');
        n.core = this.newCore(id, n.log, n.hard, n.applied.length > 0 ? (n.applied[n.applied.length - 1] as Entry).index : n.log.snapshotMeta().index);
        n.up = true;
        return;
      }
      case 'compact': {
        const id = need(args[0]);
        const n = this.nodes.get(id);
        assert(n !== undefined, 'compact: no such node');
        n.log.compact(Number(args[1]), this.config);
        return;
      }
      case 'status':
        for (const id of [...this.nodes.keys()].sort()) this.out.push(this.statusLine(id));
        return;
      case 'log': {
        const id = need(args[0]);
        const n = this.nodes.get(id);
        assert(n !== undefined, 'log: no such node');
        const s = n.core.status();
        const entries = n.core.log.slice(s.firstIndex, s.lastIndex + 1, Number.MAX_SAFE_INTEGER) ?? [];
        this.out.push(`${id} log [${s.firstIndex - 1}/${n.core.log.term(s.firstIndex - 1) ?? '?'}] ${entries.map(fmtEntry).join(' ')}`);
        return;
      }
      case 'applied': {
        const id = need(args[0]);
        this.out.push(`${id} applied ${this.applied(id).map(fmtEntry).join(' ')}`);
        return;
      }
      default:
        throw new Error(`unknown interaction command: ${line}`);
    }
  }

  /**
   * `add-learner n1 n4`: leader n1 proposes the change. A node added by it is created at
   * once with an empty log that starts from the new configuration (as a joining node
   * learns it from the cluster).
   */
  private changeMembership(kind: 'add-learner' | 'add-voter' | 'promote' | 'remove', leader: NodeId, id: NodeId): void {
    const change: MembershipChange =
      kind === 'add-learner' ? { kind: 'addLearner', id } : kind === 'add-voter' ? { kind: 'addVoter', id } : kind === 'promote' ? { kind: 'promote', id } : { kind: 'remove', id };
    const r = this.core(leader).proposeMembership(change);
    if (!r.ok) {
      this.out.push(`${leader} ${kind} ${id} refused: ${r.reason}${'message' in r ? ` (${r.message})` : ''}`);
      return;
    }
    this.out.push(`${leader} proposed ${kind} ${id} at ${r.index}/${r.term}: voters ${r.config.members.join(',')}${r.config.learners !== undefined ? ` learners ${r.config.learners.join(',')}` : ''}`);
    if (!this.nodes.has(id)) {
      const log = new MemoryLog(r.config);
      const hard: HardState = { term: 0, vote: null, commit: 0 };
      this.nodes.set(id, { core: this.newCore(id, log, hard, 0), log, hard, applied: [], up: true });
    }
    this.process(leader);
  }

  private addNodes(count: number, flags: string[]): void {
    const opts = Object.fromEntries(flags.map((f) => f.split('='))) as Record<string, string>;
    this.seed = Number(opts['seed'] ?? '1');
    const members = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    this.config = {
      members,
      writeQuorum: opts['quorum'] === undefined ? 'majority' : opts['quorum'] === 'all' ? 'all' : Number(opts['quorum']),
      topology: opts['topology'] === 'chain' ? 'chain' : 'star',
    };
    this.coreDefaults = {
      preVote: opts['prevote'] !== 'false',
      checkQuorum: opts['checkquorum'] !== 'false',
      appendEntriesMax: Number(opts['entries'] ?? '64'),
      readLeaseTicks: Number(opts['readlease'] ?? '0'),
    };
    for (const id of members) {
      const log = new MemoryLog(this.config);
      const hard: HardState = { term: 0, vote: null, commit: 0 };
      this.nodes.set(id, { core: this.newCore(id, log, hard, 0), log, hard, applied: [], up: true });
    }
  }

  private newCore(id: NodeId, log: MemoryLog, hard: HardState, appliedIndex: number): RaftCore {
    return new RaftCore({
      id,
      log,
      hardState: hard,
      appliedIndex,
      prng: createPrng(this.seed * 1000 + Number(id.slice(1))),
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1,
      preVote: true,
      checkQuorum: true,
      inflightMessagesMax: 4,
      appendBytesMax: 1 << 20,
      appendEntriesMax: 64,
      uncommittedEntriesMax: 1000,
      readsPendingMax: 100,
      readIndexTimeoutTicks: 30,
      applyEntriesMax: 1000,
      applyBytesMax: 1 << 20,
      snapshotTimeoutTicks: 50,
      pinnedLeader: null,
      memberTimeoutTicks: 30,
      persistsInFlightMax: 1,
      promoteLagEntriesMax: 64,
      readLeaseTicks: 0,
      clockTicks: () => this.clockTicks,
      ...this.coreDefaults,
    });
  }

  /** Plays the driver for node `id` until it has nothing more to do. */
  process(id: NodeId): void {
    const n = this.nodes.get(id);
    if (n === undefined || !n.up) return;
    this.queue.push(...n.core.takeMessages());
    while (n.core.hasReady()) {
      const rd: Ready = n.core.ready();
      this.queue.push(...rd.messages);
      if (rd.rolledBack.length > 0) this.out.push(`${id} ROLLED BACK ${rd.rolledBack.map(fmtEntry).join(' ')}`);
      if (rd.snapshot !== null) {
        n.log.installSnapshot(rd.snapshot);
        const leader = this.nodes.get(n.core.status().leader ?? '');
        n.applied = (leader?.applied ?? []).filter((e) => e.index <= (rd.snapshot?.index ?? 0));
        this.out.push(`${id} installed snapshot ${rd.snapshot.index}/${rd.snapshot.term}`);
      }
      n.log.append(rd.entries);
      if (rd.hardState !== null) n.hard = rd.hardState;
      this.queue.push(...rd.messagesAfterPersist);
      for (const e of rd.committed) {
        const last = n.applied[n.applied.length - 1];
        assert(last === undefined || e.index === last.index + 1, () => `${id} applies ${e.index} after ${last?.index}`);
        n.applied.push(e);
      }
      for (const rs of rd.readStates) this.out.push(`${id} read#${rs.requestId} ready at index ${rs.index}`);
      for (const f of rd.readsFailed) this.out.push(`${id} read#${f.requestId} failed: ${f.reason}`);
      for (const to of rd.snapshotsToSend) {
        const appliedIndex = n.applied.length > 0 ? (n.applied[n.applied.length - 1] as Entry).index : 0;
        const term = n.core.log.term(appliedIndex) ?? 0;
        this.out.push(`${id} streams snapshot ${appliedIndex}/${term} to ${to}`);
        this.queue.push({ type: 'snapshot', from: id, to, term: n.core.status().term, commit: n.core.status().commitIndex, meta: { index: appliedIndex, term, config: n.core.currentConfig() } });
      }
      if (rd.softState !== null) this.out.push(`${id} became ${rd.softState.role} (leader ${rd.softState.leader ?? 'none'}, term ${n.core.status().term})`);
      n.core.advance(rd);
      this.queue.push(...n.core.takeMessages());
    }
  }

  private deliverRound(print: boolean): void {
    const batch = this.queue;
    this.queue = [];
    const touched = new Set<NodeId>();
    for (const m of batch) {
      const to = this.nodes.get(m.to);
      const dropped = this.blocked.has(`${m.from}->${m.to}`) || to === undefined || !to.up;
      if (print) this.out.push(`${dropped ? 'DROP ' : ''}${fmtMessage(m)}`);
      if (dropped || to === undefined) continue;
      to.core.step(m);
      touched.add(m.to);
    }
    for (const id of [...touched].sort()) this.process(id);
  }

  private stabilize(print: boolean): void {
    for (const id of [...this.nodes.keys()].sort()) this.process(id);
    for (let round = 0; this.queue.length > 0; round++) {
      assert(round < 1000, 'stabilize did not converge in 1000 rounds');
      this.deliverRound(print);
    }
  }

  private statusLine(id: NodeId): string {
    const n = this.nodes.get(id);
    assert(n !== undefined, 'status: no such node');
    const s = n.core.status();
    const down = n.up ? '' : ' DOWN';
    const learner = s.config.learners?.includes(id) === true ? ' learner' : s.config.members.includes(id) ? '' : ' not-a-member';
    return `${id}: ${s.role} term=${s.term} leader=${s.leader ?? '-'} commit=${s.commitIndex} applied=${s.appliedIndex} last=${s.lastIndex}${learner}${down}`;
  }
}

function need(v: string | undefined): string {
  assert(v !== undefined && v !== '', 'missing argument');
  return v;
}

function fmtEntry(e: Entry): string {
  const cfg = e.kind === 'config' ? decodeConfig(e.data) : null;
  const body = e.kind === 'normal' ? decoder.decode(e.data) : cfg !== null ? `config(w=${cfg.writeQuorum},inSync=${(cfg.inSync ?? cfg.members).join('+')}${cfg.learners !== undefined ? `,voters=${cfg.members.join('+')},learners=${cfg.learners.join('+')}` : ''})` : e.kind;
  return `${e.index}/${e.term}:${body}`;
}

export function fmtMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t=${m.term}`;
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.type === 'vote' && m.transfer ? ' transfer' : ''}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${head} ${m.granted ? 'granted' : 'refused'}`;
    case 'append':
      return `${head}${m.leader !== m.from ? ` (leader ${m.leader})` : ''} prev=${m.prevIndex}/${m.prevTerm} [${m.entries.map(fmtEntry).join(' ')}] commit=${m.commit}${m.quiet === true ? ' quiet' : ''}`;
    case 'appendResp':
      return m.reject ? `${head} reject=${m.rejectedIndex} hint=${m.lastIndexHint}` : `${head} match=${m.matchIndex}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.readRound ? ` read=${m.readRound}` : ''}`;
    case 'heartbeatResp':
      return `${head}${m.readRound ? ` read=${m.readRound}` : ''}`;
    case 'snapshot':
      return `${head} meta=${m.meta.index}/${m.meta.term}`;
    case 'readIndex':
      return `${head} reads=${m.requestIds.join(',')}`;
    case 'readIndexResp':
      return `${head} reads=${m.requestIds.join(',')} ${m.refusal === null ? `index=${m.index}` : `refused=${m.refusal}`}`;
    case 'timeoutNow':
      return head;
  }
}
