/**
 * A node's identity and membership, as `quorumkv node` wires them: the member id in its
 * data directory, the bootstrap configuration (with every first member's address and
 * derived member id), the peer set the transport dials as the configuration changes,
 * joining a running cluster (`--join`), the peers this node has heard from (so a node
 * whose data directory was wiped is recognised), and the start-up check that refuses it.
 */

import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { QuorumKvError, connect, type ClientTls, type KvClient } from '../client/index.js';
import { configProblem } from '../core/config.js';
import { replicasOf } from '../core/membership.js';
import type { ClusterConfig, MemberInfo, NodeId } from '../core/types.js';
import type { PeerAddress } from '../transport/types.js';
import type { AddMemberBody } from '../wire/types.js';
import { splitHostPort, type HostPort } from '../stdx/host-port.js';
import type { NodeConfig } from './config.js';

/**
 * The member id of a member bootstrapped by --peers: derived from the cluster and node ids,
 * so every first member computes the same configuration. A member added later gets a
 * random one (newMemberId), so a node re-added under an old name is told apart.
 */
export function bootstrapMemberId(clusterId: string, nodeId: NodeId): string {
  return createHash('sha256').update(`${clusterId}/${nodeId}`).digest('hex').slice(0, 16);
}

export function randomMemberId(): string {
  return randomBytes(8).toString('hex');
}

/** The configuration a brand-new cluster starts from: --peers with addresses and member ids, and the mode flags. */
export function bootstrapConfig(config: NodeConfig, clusterId: string): ClusterConfig {
  const directory: Record<NodeId, MemberInfo> = {};
  for (const [id, addr] of config.peers) directory[id] = { memberId: bootstrapMemberId(clusterId, id), peer: `${addr.host}:${addr.port}` };
  return { members: [...config.peers.keys()], writeQuorum: config.writeQuorum, topology: config.topology, directory };
}

/** The member id of `id` as `config` holds it (a member without a directory entry was bootstrapped). */
export function memberIdIn(config: ClusterConfig, clusterId: string, id: NodeId): string {
  return config.directory?.[id]?.memberId ?? bootstrapMemberId(clusterId, id);
}

/**
 * Whom the transport dials: every voter and learner but this node, at the address --peers
 * gives for it (the operator's word on where a node is now: a cluster restarted on new
 * ports), else the one the configuration records, with the member id it holds.
 */
export function peersOf(config: ClusterConfig, self: NodeId, clusterId: string, flagPeers: ReadonlyMap<NodeId, HostPort>): Map<NodeId, PeerAddress> {
  const peers = new Map<NodeId, PeerAddress>();
  for (const id of replicasOf(config)) {
    if (id === self) continue;
    const recorded = config.directory?.[id]?.peer;
    const address = flagPeers.get(id) ?? (recorded !== undefined ? splitHostPort(recorded) : null);
    if (address === null || address === undefined) continue;
    peers.set(id, { host: address.host, port: address.port, memberId: memberIdIn(config, clusterId, id) });
  }
  return peers;
}

export interface JoinAnswer {
  readonly clusterId: string;
  readonly config: ClusterConfig;
}

/**
 * Asks the cluster at `url` (any member) to add this node as a learner, through the client
 * library: it finds the leader and retries while the cluster is electing or busy with
 * another change, within `deadlineMs`. Resolves with the configuration to start from.
 */
export async function joinCluster(url: string, body: AddMemberBody, deadlineMs: number, token: string | null, tls: ClientTls | null): Promise<JoinAnswer> {
  let kv: KvClient | null = null;
  try {
    kv = await connect({ endpoints: [url], deadlineMs, ...(token === null ? {} : { token }), ...(tls === null ? {} : { tls }) });
    const answer = await kv.members.add(body);
    const problem = configProblem(answer.config);
    if (problem !== null) throw new Error(`--join ${url}: the cluster answered with an invalid configuration: ${problem}`);
    return { clusterId: answer.clusterId, config: answer.config as ClusterConfig };
  } catch (e) {
    if (e instanceof QuorumKvError && e.code === 'member_exists') {
      throw new Error(`--join ${url}: ${e.message}. If this node's data directory was lost, remove it first (quorumkv member remove ${body.id}) and join again`);
    }
    if (e instanceof QuorumKvError) throw new Error(`--join ${url}: ${e.code}: ${e.message}`);
    throw e;
  } finally {
    await kv?.close();
  }
}

/**
 * The peers this node has ever accepted a message from, kept in DATA_DIR/seen-peers.json.
 * A message from a peer not yet in it is dropped until the record is on disk (Raft
 * tolerates the loss): so a node never counts a vote or an acknowledgement from a peer
 * without remembering, across restarts, that the peer took part. A peer whose data
 * directory is later wiped is then refused at its start (see identityProblem).
 */
export class SeenPeers {
  private readonly seen = new Set<NodeId>();
  private writing: Promise<void> | null = null;
  private readonly waiting = new Set<NodeId>();

  private constructor(private readonly file: string) {}

  static async open(dataDir: string): Promise<SeenPeers> {
    const seen = new SeenPeers(path.join(dataDir, 'seen-peers.json'));
    try {
      const ids: unknown = JSON.parse(await readFile(seen.file, 'utf8'));
      if (Array.isArray(ids)) for (const id of ids) if (typeof id === 'string') seen.seen.add(id);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
    }
    return seen;
  }

  has(id: NodeId): boolean {
    return this.seen.has(id);
  }

  /** Records `id` (once; writes are serialised, one at a time). */
  note(id: NodeId): void {
    if (this.seen.has(id) || this.waiting.has(id)) return;
    this.waiting.add(id);
    this.writing ??= this.flush();
  }

  private async flush(): Promise<void> {
    try {
      while (this.waiting.size > 0) {
        const adding = [...this.waiting];
        const all = [...this.seen, ...adding].sort();
        const tmp = `${this.file}.tmp`;
        const handle = await open(tmp, 'w');
        try {
          await handle.writeFile(JSON.stringify(all));
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, this.file);
        for (const id of adding) {
          this.seen.add(id);
          this.waiting.delete(id);
        }
      }
    } finally {
      this.writing = null;
    }
  }
}

/**
 * The start-up check of a node whose data directory is empty (not joining): it must not
 * take part if it was a member before (it forgot its vote and its log). Every peer it
 * reaches says whether it has heard from this node id; one "yes" is enough to refuse.
 */
export function identityProblem(id: NodeId, seenBy: readonly NodeId[]): string | null {
  if (seenBy.length === 0) return null;
  return (
    `node ${id} starts with an empty data directory, but ${seenBy.join(', ')} heard from ${id} before: this data directory was lost or wiped, ` +
    `and a member that forgot its votes and log must not take part again under its old identity. ` +
    `Remove it (quorumkv member remove ${id}) and add it back as a new member (quorumkv node --join URL --id ${id} …)`
  );
}

/** What the removal watch needs of the node. */
export interface RemovalWatchHost {
  readonly id: NodeId;
  readonly memberId: string;
  /** Whether the configuration in force here still holds this node as this member. */
  holdsSelf(): boolean;
  /** Whether a leader was heard from within the last few election timeouts. */
  hearsLeader(): boolean;
  /** HTTP addresses of the other members this node knows of. */
  peerUrls(): string[];
  onRemoved(why: string): void;
}

/**
 * A follower that was removed may never learn it from its own log: the leader stops
 * replicating to it once the removal commits. So a node that no longer hears a leader,
 * or whose log holds its removal not yet known committed, asks its peers: a leader whose
 * committed configuration no longer holds this member id means it was removed (the
 * leader of the highest term answers; a node that is no leader proves nothing).
 */
export function watchForRemoval(host: RemovalWatchHost, intervalMs: number, log: (msg: string) => void): { stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const check = async (): Promise<void> => {
    if (host.holdsSelf() && host.hearsLeader()) return;
    for (const url of host.peerUrls()) {
      try {
        const status = await getJson(new URL('/status', url));
        if (status['role'] !== 'leader' || typeof status['commitIndex'] !== 'number') continue;
        const members = await getJson(new URL('/members', url));
        const configIndex = members['configIndex'];
        const list = members['members'];
        if (typeof configIndex !== 'number' || configIndex > status['commitIndex'] || !Array.isArray(list)) continue;
        const me = (list as { id?: unknown; memberId?: unknown }[]).find((m) => m.id === host.id);
        if (me === undefined) return host.onRemoved(`the leader at ${url} holds no member ${host.id} (configuration ${configIndex})`);
        if (typeof me.memberId === 'string' && me.memberId !== host.memberId) {
          return host.onRemoved(`the leader at ${url} holds ${host.id} as member ${me.memberId}, not ${host.memberId}: this node was replaced`);
        }
        return;
      } catch (e) {
        log(`removal check: ${url}: ${(e as Error).message}`);
      }
    }
  };
  const loop = (): void => {
    timer = setTimeout(() => {
      void check().finally(() => {
        if (!stopped) loop();
      });
    }, intervalMs);
  };
  loop();
  return {
    stop: () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}

async function getJson(url: URL): Promise<Record<string, unknown>> {
  const res = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
  const body: unknown = await res.body.json();
  if (res.statusCode !== 200 || typeof body !== 'object' || body === null) throw new Error(`GET ${url.pathname}: ${res.statusCode}`);
  return body as Record<string, unknown>;
}
