/**
 * `quorumkv node`: wires one node from real parts: LMDB storage, TCP transport (inside
 * the fault wrapper, so delays and partitions can be switched on at run time), the
 * driver, the one real ticker, the fastify HTTP API and Prometheus metrics. This is the
 * only place that chooses implementations.
 */

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeCommand } from '../kv/codec.js';
import { pino, type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { persistMetrics, registerGauges, writeMetrics, type WriteTimer } from './node-metrics.js';
import { startHttpServer, type HttpServer } from '../api/http.js';
import type { ConnectionOptions } from 'node:tls';
import { ReloadableTls } from '../transport/tls-files.js';
import type { TlsFileNames } from '../transport/tls-files.js';
import { sha256 } from '../api/access.js';
import { bootstrapAuth, readAuthBootstrap } from './auth-bootstrap.js';
import type { AuthState } from '../wire/auth.js';
import type { AccessOptions } from '../api/access.js';
import { startGrpcServer, type GrpcServer } from '../api/grpc.js';
import { reloadingOutboundTls } from '../api/outbound-tls.js';
import type { SupervisorLink } from '../api/ui/supervisor-link.js';
import type { ClusterConfig, Entry, Ready } from '../core/types.js';
import { kvValidator } from '../kv/limits.js';
import { NodeDriver, type DriverOptions } from '../node/driver.js';
import { PeerForwarding, forwardingMeta } from '../node/forwarding.js';
import type { PeerMessage } from '../node/messages.js';
import { startTicker } from '../node/ticker.js';
import type { KvNode } from '../node/types.js';
import { createElapsedClockMs } from '../node/elapsed-clock.js';
import { createPrng } from '../stdx/prng.js';
import { hasLmdbStore, openLmdbStorage, type LmdbStorage, type PersistObservation } from '../storage/lmdb.js';
import type { MembersResponse, StatusResponse } from '../wire/types.js';
import { freeBytes, fullDiskAlarm, isRecoverableFullDisk, looksLikeFullDisk, SPACE_TO_RESUME_BYTES_MIN, stalledStatus, waitForFreeSpace, watchFreeSpace } from './disk-full.js';
import type { NodeIdentity, NodeStorage, SnapshotChunk } from '../storage/types.js';
import { withFaults, noFaults, type FaultyTransport } from '../transport/faults.js';
import { askSupervisor, supervisorProcesses } from './supervisor-client.js';
import { defaultMessageSamplerLimits, MessageSampler, sampledTransport } from '../node/message-sampler.js';
import { createTcpTransport } from '../transport/tcp.js';
import type { PeerAddress, PeerTransport, TcpTransportOptions } from '../transport/types.js';
import { connect, type KvClient } from '../client/index.js';
import { QkvError } from '../wire/errors.js';
import type { NodeConfig } from './config.js';
import { isReplica, replicasOf } from '../core/membership.js';
import { bootstrapConfig, bootstrapMemberId, identityProblem, joinCluster, peersOf, randomMemberId, SeenPeers, watchForRemoval } from './membership.js';

export interface RunningNode {
  readonly httpUrl: string;
  /** host:port of the gRPC API, or null with --listen-grpc off. */
  readonly grpcAddress: string | null;
  readonly driver: NodeDriver;
  /** Stops serving, flushes and closes everything (the seeds' clean die). */
  stop(): Promise<void>;
}

/** One line of DATA_DIR/rollback.jsonl: a write this node acknowledged or applied, then lost. */
export function rollbackRecord(e: Entry): Record<string, unknown> {
  const base = { version: e.index, term: e.term, when: new Date().toISOString() };
  if (e.kind !== 'normal') return { ...base, kind: e.kind };
  const cmd = decodeCommand(e.data);
  if (cmd.op === 'lease-grant' || cmd.op === 'lease-revoke') return { ...base, op: cmd.op, ...(cmd.op === 'lease-revoke' ? { lease: cmd.id } : { ttlMs: cmd.ttlMs }) };
  if (cmd.op === 'compact') return { ...base, op: 'compact', beforeVersion: cmd.beforeVersion };
  if (cmd.op === 'txn') return { ...base, op: 'txn', ops: cmd.success.length + cmd.failure.length, ...(cmd.requestId ? { clientId: cmd.requestId.clientId, seq: cmd.requestId.seq } : {}) };
  const value = cmd.op === 'put' ? (typeof cmd.value === 'string' ? cmd.value : Buffer.from(cmd.value).toString('base64')) : undefined;
  return { ...base, op: cmd.op, key: cmd.key, ...(value !== undefined ? { value } : {}), ...(cmd.requestId ? { clientId: cmd.requestId.clientId, seq: cmd.requestId.seq } : {}) };
}

async function countLines(file: string): Promise<number> {
  return (await readRollbackRecords(file)).length;
}

/** The records of DATA_DIR/rollback.jsonl, oldest first (none when the file is absent). */
export async function readRollbackRecords(file: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return [];
    throw error;
  }
  // A line cut short by a crash in the middle of an append is not a record.
  return text.split('\n').flatMap((line) => {
    try {
      const record: unknown = JSON.parse(line);
      return typeof record === 'object' && record !== null ? [record as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Appends rollback records and fsyncs them before returning. Synchronous on purpose: the
 * driver rebuilds the state right after this call, and the record of a lost write must be
 * on disk even if the process dies then. It runs only after a weak-quorum failover.
 */
function appendDurably(file: string, text: string): void {
  const fd = openSync(file, 'a');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The cluster id used when none is given: the same on every member started with the same --peers. */
export function derivedClusterId(peerIds: Iterable<string>): string {
  return createHash('sha256').update([...peerIds].sort().join(',')).digest('hex').slice(0, 16);
}

/** A node that must not start: its message is the whole story (main prints it and exits 1). */
export class NodeStartError extends Error {
  override readonly name = 'NodeStartError';
}

/** Who this data directory says the node is: recorded at the first start, checked at every later one. */
async function openIdentity(storage: NodeStorage, config: NodeConfig, fresh: Required<NodeIdentity> | null): Promise<Required<NodeIdentity>> {
  const existing = storage.identity();
  if (existing !== null) {
    if (existing.nodeId !== config.id) {
      throw new NodeStartError(`data directory ${config.dataDir} belongs to node ${existing.nodeId}, not ${config.id}`);
    }
    if (config.clusterId !== null && existing.clusterId !== config.clusterId) {
      throw new NodeStartError(`data directory ${config.dataDir} belongs to cluster ${existing.clusterId}, not ${config.clusterId}`);
    }
    return { ...existing, memberId: existing.memberId ?? bootstrapMemberId(existing.clusterId, existing.nodeId) };
  }
  const identity = fresh ?? { nodeId: config.id, clusterId: config.clusterId ?? derivedClusterId(config.peers.keys()), memberId: '' };
  const recorded = { ...identity, memberId: identity.memberId || bootstrapMemberId(identity.clusterId, identity.nodeId) };
  await new Promise<void>((resolve, reject) => storage.setIdentity(recorded, (err) => (err ? reject(err) : resolve())));
  return recorded;
}

/**
 * Before a node with an empty data directory (not joining) takes part: every peer it
 * reaches within `identityCheckMs` says whether it heard from this node id before. One
 * that did means this node's data was lost: it must not start (see identityProblem).
 */
async function checkFreshIdentity(config: NodeConfig, acks: Map<string, boolean>, log: Logger): Promise<void> {
  const others = [...config.peers.keys()].filter((id) => id !== config.id);
  const deadline = Date.now() + config.identityCheckMs;
  while (others.some((id) => !acks.has(id)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const problem = identityProblem(config.id, others.filter((id) => acks.get(id) === true));
  if (problem !== null) throw new NodeStartError(problem);
  const silent = others.filter((id) => !acks.has(id));
  if (silent.length > 0) log.warn({ silent }, `starting with an empty data directory without word from ${silent.join(', ')} whether they knew this node before`);
}

/** A secret file's bytes without a trailing newline; a short or unreadable file stops the start (its content never appears). */
async function readSecret(flag: string, file: string): Promise<Buffer> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (e) {
    throw new NodeStartError(`--${flag} ${file}: ${(e as { code?: string }).code ?? 'unreadable'}`);
  }
  const secret = text.subarray(0, text.length - (text.at(-1) === 0x0a ? 1 : 0));
  if (secret.length < 16) throw new NodeStartError(`--${flag} ${file}: the secret must be at least 16 bytes`);
  return secret;
}

/** What a node reads from files before it starts, once: a mistake in any stops the start. */
interface StartFiles {
  readonly tlsSet: NodeTls;
  /** The auth it bootstraps a cluster with (--auth-bootstrap-file). */
  readonly authAtStart: AuthState | null;
  /** --admin-token-file's token: the admin gate's, and this node's own admin calls' (join, promote). */
  readonly adminToken: string | null;
  readonly peerSecret: Buffer | null;
}

async function readStartFiles(config: NodeConfig): Promise<StartFiles> {
  const tlsSet = await loadTls(config);
  const adminToken = config.adminTokenFile === null ? null : (await readSecret('admin-token-file', config.adminTokenFile)).toString('utf8');
  const peerSecret = config.peerSecretFile === null ? null : await readSecret('peer-secret-file', config.peerSecretFile);
  if (config.authBootstrapFile === null) return { tlsSet, authAtStart: null, adminToken, peerSecret };
  try {
    return { tlsSet, authAtStart: await readAuthBootstrap(config.authBootstrapFile), adminToken, peerSecret };
  } catch (e) {
    throw new NodeStartError(e instanceof Error ? e.message : String(e));
  }
}

/** The node's TLS material: for its client APIs, for its peers, and how it reaches other nodes' HTTPS APIs. */
interface NodeTls {
  readonly client: ReloadableTls | null;
  readonly peer: ReloadableTls | null;
  /**
   * How this node reaches the other nodes' HTTPS APIs, as in force now (certificates are read
   * again on SIGHUP): the CA that signs their API certificates (the client CA, else the peer
   * CA) and this node's certificate to present.
   */
  readonly outbound: (() => ConnectionOptions) | undefined;
}

async function loadTls(config: NodeConfig): Promise<NodeTls> {
  const load = async (files: TlsFileNames, what: string): Promise<ReloadableTls> => {
    try {
      return await ReloadableTls.load(files);
    } catch (error) {
      throw new NodeStartError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const c = config.tls;
  const p = config.peerTls;
  const client = c === null ? null : await load({ certFile: c.certFile, keyFile: c.keyFile, ...(c.clientCaFile === null ? {} : { caFile: c.clientCaFile }) }, '--tls-cert/--tls-key');
  const peer = p === null ? null : await load({ certFile: p.certFile, keyFile: p.keyFile, caFile: p.caFile }, '--peer-tls-*');
  const outbound =
    client === null
      ? undefined
      : (): ConnectionOptions => {
          const ca = client.material().ca ?? peer?.material().ca;
          return { ...(ca === undefined ? {} : { ca }), cert: client.material().cert, key: client.material().key };
        };
  return { client, peer, outbound };
}

function transportNotStarted(): never {
  throw new Error('the transport is not started yet');
}

/** How peers prove who they are: the shared secret, mutual TLS, both or neither. */
function peerAuthentication(files: StartFiles): Pick<TcpTransportOptions, 'peerSecret' | 'tls'> {
  return {
    ...(files.peerSecret !== null ? { peerSecret: files.peerSecret } : {}),
    ...(files.tlsSet.peer !== null ? { tls: files.tlsSet.peer } : {}),
  };
}

/** Certificates read again on every SIGHUP until stop(), when the node has any. */
function reloadOnSighup(tlsSet: NodeTls, log: Logger): { stop(): void } {
  if (tlsSet.client === null && tlsSet.peer === null) return { stop: () => undefined };
  const reload = (): void => void reloadCertificates(tlsSet, log);
  process.on('SIGHUP', reload);
  return { stop: () => void process.off('SIGHUP', reload) };
}

/** SIGHUP: certificates read again; one that cannot serve is logged and the old one kept. */
async function reloadCertificates(tlsSet: NodeTls, log: Logger): Promise<void> {
  for (const [what, material] of [['client API', tlsSet.client], ['peer', tlsSet.peer]] as const) {
    if (material === null) continue;
    try {
      await material.reload();
      log.info(`${what} certificates reloaded (SIGHUP)`);
    } catch (error) {
      log.error({ err: error instanceof Error ? error.message : String(error) }, `${what} certificates not reloaded; the previous ones stay in force`);
    }
  }
}

/** The client library's TLS options from a node's outbound ones. */
function tlsOf(o: ConnectionOptions): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  return { ...(o.ca === undefined ? {} : { ca: o.ca as Buffer }), ...(o.cert === undefined ? {} : { cert: o.cert as Buffer }), ...(o.key === undefined ? {} : { key: o.key as Buffer }) };
}

/** Who may use the admin routes, with the admin token's digest. */
function accessOptions(config: NodeConfig, token: string | null, log: Logger): AccessOptions {
  if (config.adminRoutes === 'token' && config.adminTokenFile === null) {
    log.warn('admin routes need an admin user\'s token and no --admin-token-file is given: on a new cluster nobody can use them (see docs/security.md)');
  }
  if (config.adminRoutes === 'open') log.warn('--admin-routes open: anyone who reaches the client port may change the mode and the members, read backups and inject faults');
  return token === null ? { admin: config.adminRoutes } : { admin: config.adminRoutes, adminTokenSha256: sha256(token) };
}

interface StalledAnswers {
  readonly refusal: QkvError;
  readonly status: StatusResponse;
  readonly members: MembersResponse;
  /** The auth document, so that credentials are still checked (401/403 before the refusal). */
  readonly auth: ReturnType<KvNode['authRecord']>;
}

/**
 * The driver the APIs talk to, bound late: answers `no_leader` until the driver exists (the
 * HTTP port must be bound first), and while the node waits for disk space (disk-full.ts)
 * refuses every data call with `refusal` and describes itself as of the failure.
 */
class DeferredNode implements KvNode {
  private target: KvNode | null = null;
  private stalled: StalledAnswers | null = null;
  /**
   * Writes a follower forwards travel to the leader over the peer transport (node/forwarding.ts):
   * the APIs send and serve through this channel from the start, each driver carries its
   * messages (createDriver passes it on), and the handshake's meta (forwardingMeta) tells peers
   * this node serves them.
   */
  readonly forwarding: PeerForwarding;
  constructor(
    readonly id: string,
    /** Times each write and transaction inside the cluster (qkv_write_seconds). */
    private readonly timeWrite: WriteTimer,
  ) {
    this.forwarding = new PeerForwarding(id);
  }
  private get t(): KvNode {
    if (this.stalled !== null) throw this.stalled.refusal;
    if (this.target === null) throw new QkvError('no_leader', 'the node is starting', {}, 500);
    return this.target;
  }
  serve(target: KvNode): void {
    this.target = target;
    this.stalled = null;
  }
  /** From now on until serve(): what the stopped driver knew, read before its storage closes. */
  stall(answers: StalledAnswers): void {
    this.stalled = answers;
  }
  leader: KvNode['leader'] = () => (this.stalled === null ? (this.target?.leader() ?? null) : null);
  write: KvNode['write'] = (c, o) => this.timeWrite(() => this.t.write(c, o));
  txn: KvNode['txn'] = (c, o) => this.timeWrite(() => this.t.txn(c, o));
  leaseGrant: KvNode['leaseGrant'] = (ttl, o) => this.t.leaseGrant(ttl, o);
  leaseRevoke: KvNode['leaseRevoke'] = (id, o) => this.t.leaseRevoke(id, o);
  leaseKeepAlive: KvNode['leaseKeepAlive'] = (id, o) => this.t.leaseKeepAlive(id, o);
  leaseInfo: KvNode['leaseInfo'] = (id, k, o) => this.t.leaseInfo(id, k, o);
  read: KvNode['read'] = (k, o) => this.t.read(k, o);
  watch: KvNode['watch'] = (r, s, o) => this.t.watch(r, s, o);
  unwatch: KvNode['unwatch'] = (id) => this.target?.unwatch(id);
  compact: KvNode['compact'] = (v, o) => this.t.compact(v, o);
  list: KvNode['list'] = (o) => this.t.list(o);
  waitForLeader: KvNode['waitForLeader'] = (ms) => (this.stalled !== null ? Promise.reject(this.stalled.refusal) : this.target ? this.target.waitForLeader(ms) : Promise.resolve(null));
  status: KvNode['status'] = () => this.stalled?.status ?? this.t.status();
  dumpStore: KvNode['dumpStore'] = (a, l) => this.t.dumpStore(a, l);
  // Before the driver exists every data call fails anyway (no_leader), so "no document" opens nothing.
  authRecord: KvNode['authRecord'] = () => (this.stalled !== null ? this.stalled.auth : this.target?.authRecord());
  openBackup: KvNode['openBackup'] = () => this.t.openBackup();
  changeMode: KvNode['changeMode'] = (c, o) => this.t.changeMode(c, o);
  members: KvNode['members'] = () => this.stalled?.members ?? this.t.members();
  addMember: KvNode['addMember'] = (b, o) => this.t.addMember(b, o);
  promoteMember: KvNode['promoteMember'] = (id, o) => this.t.promoteMember(id, o);
  removeMember: KvNode['removeMember'] = (id, o) => this.t.removeMember(id, o);
  transferLeader: KvNode['transferLeader'] = (to, o) => this.t.transferLeader(to, o);
}

export async function startNode(config: NodeConfig, log: Logger = pino({ level: config.logLevel, base: { node: config.id } })): Promise<RunningNode> {
  await mkdir(config.dataDir, { recursive: true });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const files = await readStartFiles(config);
  const persistObserver = persistMetrics(registry);
  const opened = await openDataDir(config, persistObserver, files, log);
  const { identity, fresh } = opened;
  const { clusterId, memberId } = identity;
  const seen = await SeenPeers.open(config.dataDir);

  const deferred = new DeferredNode(config.id, writeMetrics(registry));
  // The transport (and so its fault switchboard) starts after the APIs, whose addresses it
  // announces to peers; /admin/faults reaches it through this late binding.
  let faulty: FaultyTransport<PeerMessage> | null = null;
  const { grpc, http, sampler } = await startApis(config, deferred, registry, () => faulty ?? transportNotStarted(), files, log);

  // What peers and clients are told: the advertised addresses, else the bound ones.
  const selfHttp = config.advertiseHttp ?? http.url;
  const selfGrpc = grpc === null ? null : (config.advertiseGrpc ?? grpc.address);
  const acks = new Map<string, boolean>();
  const tcp = await createTcpTransport<PeerMessage>({
    ...transportLimits(config),
    self: { nodeId: config.id, clusterId, memberId },
    // Peers name this node's client addresses in /status and in not_leader hints.
    meta: { http: selfHttp, ...(selfGrpc !== null ? { grpc: selfGrpc } : {}), ...(config.advertisePeer !== null ? { peer: config.advertisePeer } : {}), ...forwardingMeta },
    listen: config.listenPeer,
    peers: peersOf(opened.storage.log.snapshotMeta().config, config.id, clusterId, config.peers),
    onReject: (reason) => log.warn({ reason }, 'peer connection rejected'),
    // Whether this node ever heard from the dialler: a dialler starting empty that we did is a wiped member.
    ackInfo: (dialler) => ({ seen: seen.has(dialler) ? 'yes' : 'no' }),
    onAck: (peer, info) => acks.set(peer, info['seen'] === 'yes'),
    ...peerAuthentication(files),
  });
  const sighup = reloadOnSighup(files.tlsSet, log);
  if (fresh && config.join === null && config.peers.size > 1) {
    await checkFreshIdentity(config, acks, log).catch(async (e: unknown) => {
      await Promise.all([tcp.close(), http.close(), grpc?.close(), opened.storage.close()]);
      throw e;
    });
  }
  // Each node draws its own delays and drops (a shared fixed seed would drop in lockstep).
  // Delays apply to leader-to-follower replication (appends, heartbeats, snapshot chunks),
  // as in the seeds' experiments; acknowledgements travel back undelayed.
  const transport = withFaults(sampledTransport(tcp, sampler), { ...noFaults, delayMsMin: config.minDelayMs, delayMsMax: config.maxDelayMs }, {
    random: Math.random,
    delays: (m) => m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshotChunk',
  });
  faulty = transport;

  let fatal = false;
  const peerSet = new PeerSet((c) => peersOf(c, config.id, clusterId, config.peers), (peers) => tcp.setPeers(peers));
  let stopping: Promise<void> | null = null;
  const driverDeps: CoreDeps = {
    config,
    log,
    transport: heardOnlyOnceSeen(transport, seen),
    forwarding: deferred.forwarding,
    self: { clusterId, memberId, selfHttp, selfGrpc },
    peerSet,
    onFatal: (error) => void onDriverFailed(error, live, recovery),
    onRemoved: (why) => leave(why),
  };
  /** What lives as long as one opening of the data directory: the driver, its ticker and watches. */
  const startCore = async (store: LmdbStorage): Promise<Core> => {
    const driver = await createDriver(store, driverDeps);
    deferred.serve(driver);
    const ticker = startTicker(config.tickMs, () => (driver.tick(), peerSet.committedTo(driver.core.log.committed)));
    const watches = startWatches(driver, transport, config, memberId, { usedBytes: () => store.usedBytes(), authAtStart: files.authAtStart }, log, (why) => leave(why));
    return { driver, takeLagMsMax: () => ticker.takeLagMsMax(), stop: () => (watches.stop(), ticker.stop()) };
  };
  const live: Live = { storage: opened.storage, core: await startCore(opened.storage) };
  const recovery: Recovery = {
    config,
    log,
    deferred,
    reopen: async () => {
      const storage = await openStorage(opened.initialConfig, config.dataDir, config.quotaBytes, persistObserver);
      return { storage, core: await startCore(storage) };
    },
    stopping: () => stopping !== null,
    fatal: () => void (fatal = true),
  };
  if (config.join === null) warnIfFlagsIgnored(config, live.core.driver.core.currentConfig(), log);
  registerGauges(registry, () => live.core.driver, () => live.core.takeLagMsMax(), () => live.storage.usedBytes());
  const promoting = config.join !== null && config.promote ? promoteWhenCaughtUp(http.url, config.id, files.adminToken, files.tlsSet.outbound?.(), log) : null;

  log.info({ http: http.url, grpc: grpc?.address ?? null, peer: `${tcp.address.host}:${tcp.address.port}`, clusterId, memberId, dataDir: config.dataDir }, 'node started');

  /** Removed from the cluster: report what may be lost (weak quorums), stop, and exit. */
  function leave(why: string): void {
    log.warn(`${why}; stopping`);
    live.core.driver.leaveCluster();
    void stop().then(() => process.exit(0));
  }

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopInStages(log, [
        ['promoter', () => (promoting?.stop(), sighup.stop())],
        ['handOver', () => handOverLeadership(live.core.driver, config, log)], // before the ticker stops
        ['ticker', () => live.core.stop()],
        ['grpc', () => grpc?.close()],
        ['http', () => http.close()],
        ['driver', () => live.core.driver.stop()],
        ['transport', () => transport.close()],
        ['storage', () => (fatal ? undefined : live.storage.close())],
      ]);
    })();
    return stopping;
  };
  return {
    httpUrl: http.url,
    grpcAddress: grpc?.address ?? null,
    get driver() {
      return live.core.driver;
    },
    stop,
  };
}

/** One opening of the data directory and what runs on it; replaced when a node whose disk filled reopens it. */
interface Live {
  storage: LmdbStorage;
  core: Core;
}

interface Core {
  readonly driver: NodeDriver;
  takeLagMsMax(): number;
  stop(): void;
}

interface CoreDeps {
  readonly config: NodeConfig;
  readonly log: Logger;
  readonly transport: PeerTransport<PeerMessage>;
  readonly forwarding: PeerForwarding;
  readonly self: Pick<DriverOptions, 'clusterId' | 'memberId' | 'selfHttp' | 'selfGrpc'>;
  readonly peerSet: PeerSet;
  readonly onFatal: (error: Error) => void;
  readonly onRemoved: (why: string) => void;
}

async function createDriver(storage: LmdbStorage, deps: CoreDeps): Promise<NodeDriver> {
  const { config, log, self } = deps;
  const rollbackFile = path.join(config.dataDir, 'rollback.jsonl');
  const options = driverOptions(config, {
    ...self,
    bootstrapMemberId: (id) => bootstrapMemberId(self.clusterId, id),
    rollbackCountAtStart: await countLines(rollbackFile),
  });
  return new NodeDriver(options, {
    storage,
    transport: deps.transport,
    forwarding: deps.forwarding,
    prng: createPrng(createHash('sha256').update(`${config.id}:${process.pid}:${Date.now()}`).digest().readUInt32LE(0)),
    clockMs: createElapsedClockMs(),
    schedule: (fn) => setImmediate(fn),
    onFatal: deps.onFatal,
    onRollback: (entries, appliedIndex) => {
      // One JSON object per lost write, on disk before the state is rebuilt.
      const lines = entries.map((e) => JSON.stringify({ ...rollbackRecord(e), applied: e.index <= appliedIndex })).join('\n') + '\n';
      appendDurably(rollbackFile, lines);
      log.warn({ count: entries.length, fromIndex: entries[0]?.index, toIndex: entries[entries.length - 1]?.index }, 'acknowledged writes rolled back by a failover (weak write quorum); recorded in rollback.jsonl');
    },
    onReady: (rd: Ready, d: NodeDriver) => {
      if (rd.softState !== null) {
        const s = d.core.status();
        log.info({ role: s.role, leader: s.leader, term: s.term }, 'role changed');
      }
    },
    onConfigChange: (c, index) => deps.peerSet.configChanged(c, index),
    onRemoved: (index) => deps.onRemoved(`this node was removed from the cluster (configuration ${index})`),
    onSnapshotChunkStaged: snapshotProgressLog(log),
    onSnapshotRefused: (from, reason) => log.warn({ from, reason }, 'refused a snapshot chunk; waiting for the leader to send the snapshot again'),
  });
}

/** Logs each snapshot received: its size and how fast it came (staging, before the install). */
function snapshotProgressLog(log: Logger): (from: string, chunk: SnapshotChunk) => void {
  let startedAtMs = 0;
  let bytes = 0;
  return (from, chunk) => {
    if (chunk.seq === 0) {
      startedAtMs = performance.now();
      bytes = 0;
    }
    bytes += chunk.records.byteLength;
    if (!chunk.last) return;
    const ms = Math.max(1, performance.now() - startedAtMs);
    log.info({ from, chunks: chunk.seq + 1, bytes, ms: Math.round(ms), mbPerS: Math.round(bytes / 1000 / ms) }, 'snapshot received');
  };
}

interface Recovery {
  readonly config: NodeConfig;
  readonly log: Logger;
  readonly deferred: DeferredNode;
  /** Opens the data directory again and starts a driver on it. */
  reopen(): Promise<Live>;
  stopping(): boolean;
  /** The process is about to exit: the storage must not be closed as if all were well. */
  fatal(): void;
}

/**
 * The driver stopped on an error. A full disk whose directory can be reopened stalls the
 * node until space is back (disk-full.ts); anything else ends the process, and recovery
 * from disk and peers takes over at the next start.
 */
async function onDriverFailed(error: Error, live: Live, r: Recovery): Promise<void> {
  const { config, log } = r;
  const failed = live.core;
  failed.stop();
  const needed = Math.max(config.freeBytesMin, SPACE_TO_RESUME_BYTES_MIN);
  const stall = (alarm: string): void =>
    r.deferred.stall({
      refusal: new QkvError('no_space', `${alarm}; ask another node`, { alarm, scope: 'node' }),
      status: stalledStatus(failed.driver.status(), alarm),
      members: failed.driver.members(),
      auth: failed.driver.authRecord(),
    });
  const report = live.storage.failureReport();
  if (report !== null) {
    // The report waits for every transaction queued before the failure to settle (up to the
    // flush timeout). Said at once, so that neither the log nor /status is silent meanwhile,
    // and a disk that looks full stops the node answering as a member right away.
    const freeNow = await freeBytes(config.dataDir).catch(() => null);
    const full = looksLikeFullDisk(error.message, freeNow);
    log.error({ err: error, freeBytes: freeNow }, `storage failed${full ? ' (the disk looks full)' : ''}: the node stops and checks whether its data directory can be reopened`);
    if (full) stall(`${fullDiskAlarm(error.message, freeNow, needed)} (checking that its data directory can be reopened)`);
  }
  const failure = report === null ? null : await report;
  const free = await freeBytes(config.dataDir).catch(() => null);
  if (failure === null || !isRecoverableFullDisk(failure, free)) {
    r.fatal();
    log.fatal({ err: error, ...(failure === null ? {} : { cause: failure.cause?.message, stage: failure.stage, trusted: failure.trusted }) }, 'fatal error: stopping the node (recovery from disk and peers takes over)');
    process.exit(1);
  }
  const alarm = fullDiskAlarm(failure.cause?.message ?? failure.error.message, free, needed);
  log.error({ freeBytes: free }, `${alarm}; writes and reads are refused here, the other nodes go on`);
  stall(alarm);
  await live.storage.close();
  if (!(await waitForFreeSpace(config.dataDir, needed, 1_000, r.stopping))) return;
  const reopened = await r.reopen();
  if (r.stopping()) {
    // Stopped while reopening: stop() closed what it knew, this is newer.
    reopened.core.stop();
    reopened.core.driver.stop();
    await reopened.storage.close();
    return;
  }
  live.storage = reopened.storage;
  live.core = reopened.core;
  log.info({ freeBytes: await freeBytes(config.dataDir).catch(() => null) }, 'space is back: the node reopened its data directory and rejoined the cluster');
}

function transportLimits(config: NodeConfig): Pick<TcpTransportOptions, 'frameBytesMax' | 'queueBytesMax' | 'queueMessagesMax' | 'reconnectDelayMsMin' | 'reconnectDelayMsMax'> {
  return {
    frameBytesMax: Math.max(64 * 1024 * 1024, config.snapshotChunkBytes * 2 + config.valueBytesMax * 2),
    queueBytesMax: 256 * 1024 * 1024,
    queueMessagesMax: 100_000,
    reconnectDelayMsMin: 50,
    reconnectDelayMsMax: 2000,
  };
}

/** The node's background watches: its removal from the cluster, and the free space of its disk. */
function startWatches(
  driver: NodeDriver,
  transport: PeerTransport<PeerMessage>,
  config: NodeConfig,
  memberId: string,
  { usedBytes, authAtStart }: { readonly usedBytes: () => number; readonly authAtStart: AuthState | null },
  log: Logger,
  onRemoved: (why: string) => void,
): { stop(): void } {
  const bootstrapping = authAtStart === null ? null : bootstrapAuth(driver, authAtStart, log);
  const disk = watchFreeSpace(config.dataDir, config, usedBytes, (alarm) => {
    driver.setSpaceAlarm(alarm);
    if (alarm !== null) log.error(`space alarm: ${alarm}; puts are refused while this node leads`);
    else log.info('space alarm cleared');
  });
  let lastLeaderMs = Date.now();
  const removal = watchForRemoval(
    {
      id: config.id,
      memberId,
      holdsSelf: () => isReplica(driver.core.currentConfig(), config.id),
      hearsLeader: () => {
        if (driver.core.currentLeader() !== null) lastLeaderMs = Date.now();
        return Date.now() - lastLeaderMs < config.electionTimeoutMs * 3;
      },
      peerUrls: () =>
        replicasOf(driver.core.currentConfig())
          .filter((id) => id !== config.id)
          .flatMap((id) => {
            const url = driver.core.currentConfig().directory?.[id]?.http ?? transport.peerMeta(id)?.['http'];
            return url !== undefined ? [url] : [];
          }),
      onRemoved,
    },
    config.electionTimeoutMs,
    (msg) => log.debug(msg),
  );
  return { stop: () => (disk.stop(), removal.stop(), bootstrapping?.stop()) };
}

/**
 * The peers the transport dials as the configuration changes. A member that leaves keeps
 * its link until the configuration without it is committed: a leader removing itself
 * leads until then and needs its followers' answers.
 */
class PeerSet {
  private current = new Map<string, PeerAddress>();
  private pruneAt: number | null = null;
  private latest: ClusterConfig | null = null;

  constructor(
    private readonly peersOf: (config: ClusterConfig) => Map<string, PeerAddress>,
    private readonly apply: (peers: ReadonlyMap<string, PeerAddress>) => void,
  ) {}

  configChanged(config: ClusterConfig, index: number): void {
    const next = this.peersOf(config);
    for (const [id, address] of this.current) if (!next.has(id)) next.set(id, address);
    this.latest = config;
    this.pruneAt = index;
    this.set(next);
  }

  committedTo(commit: number): void {
    if (this.pruneAt === null || this.latest === null || commit < this.pruneAt) return;
    this.pruneAt = null;
    this.set(this.peersOf(this.latest));
  }

  private set(peers: Map<string, PeerAddress>): void {
    this.current = peers;
    this.apply(peers);
  }
}

/**
 * Opens (or creates) the data directory. A new node that joins asks the cluster first, to
 * start from its configuration and record the member id it was added under; a new node
 * of a new cluster starts from --peers and the mode flags.
 */
async function openDataDir(
  config: NodeConfig,
  persistObserver: (o: PersistObservation) => void,
  { tlsSet, adminToken }: StartFiles,
  log: Logger,
): Promise<{ storage: LmdbStorage; identity: Required<NodeIdentity>; fresh: boolean; initialConfig: ClusterConfig }> {
  const fresh = !(await hasLmdbStore(config.dataDir));
  if (!fresh && config.join !== null) log.warn(`--join ignored: ${config.dataDir} already holds node ${config.id}, which restarts as the member it is`);
  let initialConfig: ClusterConfig;
  let identity: Required<NodeIdentity> | null = null;
  if (fresh && config.join !== null) {
    const memberId = randomMemberId();
    const peer = config.advertisePeer as string; // config.ts requires it with --join
    const body = { id: config.id, peer, memberId, learner: true, ...(config.advertiseHttp !== null ? { http: config.advertiseHttp } : {}) };
    // Adding a member is an admin call: the node's own admin token (the cluster's) carries it.
    const answer = await joinCluster(config.join, body, 60_000, adminToken, tlsSet.outbound === undefined ? null : tlsOf(tlsSet.outbound()));
    log.info({ clusterId: answer.clusterId, memberId, members: answer.config.members, learners: answer.config.learners ?? [] }, 'added to the cluster as a learner');
    initialConfig = answer.config;
    identity = { nodeId: config.id, clusterId: answer.clusterId, memberId };
  } else {
    initialConfig = bootstrapConfig(config, config.clusterId ?? derivedClusterId(config.peers.keys()));
  }
  const storage = await openStorage(initialConfig, config.dataDir, config.quotaBytes, persistObserver);
  return { storage, identity: await openIdentity(storage, config, identity), fresh, initialConfig };
}

/**
 * Messages from a peer this node never heard from are dropped until that fact is on disk
 * (SeenPeers): then a peer that loses its data is recognised at its next start.
 */
function heardOnlyOnceSeen(inner: PeerTransport<PeerMessage>, seen: SeenPeers): PeerTransport<PeerMessage> {
  return {
    send: (to, message) => inner.send(to, message),
    onMessage: (handler) =>
      inner.onMessage((from, message, fromMemberId) => {
        if (seen.has(from)) handler(from, message, fromMemberId);
        else seen.note(from);
      }),
    peerState: (id) => inner.peerState(id),
    peerMeta: (id) => inner.peerMeta(id),
    close: () => inner.close(),
  };
}

/**
 * Runs a stop's stages in order and logs each one's time: a stop that takes long says
 * where it waited (a slow stage is a warning at once, before the next one starts).
 */
async function stopInStages(log: Logger, stages: readonly (readonly [string, () => unknown])[]): Promise<void> {
  const stageMs: Record<string, number> = {};
  for (const [name, run] of stages) {
    const startMs = performance.now();
    await run();
    const ms = Math.round(performance.now() - startMs);
    stageMs[name] = ms;
    if (ms > 1_000) log.warn({ stage: name, ms }, 'a stage of stopping took over a second');
  }
  log.info({ stageMs }, 'node stopped');
}

/**
 * A clean stop of the leader hands leadership over first, so clients see no election timeout.
 * Call it while the node still ticks: the hand-over's deadline is counted in ticks, and
 * without them a hand-over to a peer that is itself stopping (`up` stops every node at once)
 * waits until the process is killed.
 */
async function handOverLeadership(driver: NodeDriver, config: NodeConfig, log: Logger): Promise<void> {
  if (driver.core.currentRole() !== 'leader' || config.pinnedLeader !== null || driver.core.currentConfig().members.length < 2) return;
  try {
    const { leader } = await driver.transferLeader(null, { timeoutMs: Math.min(config.electionTimeoutMs * 2, 5_000) });
    log.info({ leader }, 'leadership handed over before stopping');
  } catch (e) {
    log.warn({ err: e }, 'could not hand leadership over before stopping');
  }
}

/** --promote: asks (through this node's API, which forwards to the leader) to be promoted until it is a voter. */
function promoteWhenCaughtUp(httpUrl: string, id: string, token: string | null, tls: ConnectionOptions | undefined, log: Logger): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let kv: KvClient | null = null;
  const attempt = async (): Promise<void> => {
    try {
      kv ??= await connect({ endpoints: [httpUrl], deadlineMs: 10_000, ...(token === null ? {} : { token }), ...(tls === undefined ? {} : { tls: tlsOf(tls) }) });
      await kv.members.promote(id);
      log.info('promoted to voter');
      stopped = true;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (/already a voter/.test(message)) stopped = true;
      else log.info({ err: message }, 'not promoted yet');
    }
    if (!stopped) timer = setTimeout(() => void attempt(), 1_000);
    else void kv?.close().catch(() => undefined);
  };
  timer = setTimeout(() => void attempt(), 500);
  return {
    stop: () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      void kv?.close().catch(() => undefined);
    },
  };
}

/**
 * The members and the replication mode come from the data directory once it exists (its log
 * and snapshot); --peers and the mode flags only bootstrap a new cluster. A restart whose
 * flags disagree says, in one line, what it kept and what it ignored.
 */
export function ignoredFlags(config: NodeConfig, inForce: ClusterConfig): string[] {
  const ignored: string[] = [];
  const flagMembers = [...config.peers.keys()].sort();
  const members = [...inForce.members].sort();
  if (flagMembers.join(',') !== members.join(',')) ignored.push(`--peers members ${flagMembers.join(',')} (kept ${members.join(',')})`);
  if (String(config.writeQuorum) !== String(inForce.writeQuorum)) ignored.push(`--write-quorum ${String(config.writeQuorum)} (kept ${String(inForce.writeQuorum)})`);
  if (config.topology !== inForce.topology) ignored.push(`--topology ${config.topology} (kept ${inForce.topology})`);
  return ignored;
}

function warnIfFlagsIgnored(config: NodeConfig, inForce: ClusterConfig, log: Logger): void {
  const ignored = ignoredFlags(config, inForce);
  if (ignored.length === 0) return;
  log.warn(
    { kept: { members: inForce.members, writeQuorum: inForce.writeQuorum, topology: inForce.topology }, ignored },
    `the data directory's configuration is in force; ignored ${ignored.join('; ')} (the mode changes live with quorumkv mode)`,
  );
}

/**
 * The largest snapshot this node stages: as large as its stores may grow (--quota-bytes),
 * and never below 4 GiB. A fixed 4 GiB refused every snapshot of a store beyond it, so a
 * node could never join a cluster whose quota had been raised past that.
 */
export function snapshotBytesMaxFor(quotaBytes: number): number {
  return quotaBytes === 0 ? Number.MAX_SAFE_INTEGER : Math.max(quotaBytes, 4 * 1024 ** 3);
}

/** Opens the LMDB store under the data directory; `onPersistDurable` sees each log batch made durable (the disk's metrics). */
async function openStorage(initialConfig: ClusterConfig, dataDir: string, quotaBytes: number, onPersistDurable: (o: PersistObservation) => void): Promise<LmdbStorage> {
  return openLmdbStorage({ dataDir, initialConfig, snapshotBytesMax: snapshotBytesMaxFor(quotaBytes), onPersistDurable });
}

/**
 * Starts the gRPC API (when configured) and then the HTTP API, which shows the gRPC address
 * and serves the sample of peer messages (`sampler`) the transport is to feed, for the
 * dashboard. The sampler goes under the fault wrapper: the dashboard draws what went on the
 * wire, not what a partition swallowed.
 */
async function startApis(
  config: NodeConfig,
  node: KvNode,
  registry: Registry,
  faults: () => FaultyTransport<PeerMessage>,
  { tlsSet, adminToken }: StartFiles,
  log: Logger,
): Promise<{ readonly grpc: GrpcServer | null; readonly http: HttpServer; readonly sampler: MessageSampler }> {
  const sampler = new MessageSampler(defaultMessageSamplerLimits, Date.now);
  const serverTls = tlsSet.client === null ? {} : { tls: { material: tlsSet.client, requireClientCert: config.tls?.clientCaFile !== null } };
  const { client, peer, outbound } = tlsSet;
  // Forwarding and the dashboard's poller present the certificate read last (SIGHUP included).
  const onReload = (listener: () => void): void => {
    client?.onChange(listener);
    peer?.onChange(listener);
  };
  const outboundTls = outbound === undefined ? {} : { outboundTls: reloadingOutboundTls(outbound, onReload) };
  const kvLimits = { keyBytesMax: config.keyBytesMax, valueBytesMax: config.valueBytesMax };
  const validate = kvValidator(kvLimits);
  const access = accessOptions(config, adminToken, log);
  // die(clean) goes through the same signal handling as a Ctrl-C (main.ts); die(!clean) is kill -9.
  const die = (clean: boolean): void => void process.kill(process.pid, clean ? 'SIGTERM' : 'SIGKILL');
  const grpc: GrpcServer | null =
    config.listenGrpc === null
      ? null
      : await startGrpcServer({
          node,
          listen: config.listenGrpc,
          limits: { messageBytesMax: config.bodyBytesMax, listLimitMax: config.listLimitMax, requestTimeoutMs: config.requestTimeoutMs, leaderWaitMs: config.leaderWaitMs },
          validate,
          registry,
          ...(config.faults ? { die } : {}),
          access,
          requestsPerClientMax: config.requestsPerClientMax, streamsPerConnectionMax: config.grpcStreamsPerConnectionMax,
          ...serverTls,
          ...outboundTls,
          onInternalError: (err) => log.error({ err }, 'gRPC call failed'),
        });
  const http = await startHttpServer({
    ...(grpc === null ? {} : { grpcAddress: config.advertiseGrpc ?? grpc.address }),
    ...(config.faults ? { die } : {}),
    rollbacks: () => readRollbackRecords(path.join(config.dataDir, 'rollback.jsonl')),
    messages: sampler,
    node,
    listen: config.listenHttp,
    limits: {
      bodyBytesMax: config.bodyBytesMax,
      headerBytesMax: config.headerBytesMax,
      listLimitMax: config.listLimitMax,
      requestTimeoutMs: config.requestTimeoutMs,
      leaderWaitMs: config.leaderWaitMs,
    },
    validate,
    registry,
    access,
    connectionsPerIpMax: config.connectionsPerIpMax,
    requestsPerClientMax: config.requestsPerClientMax,
    ...serverTls,
    ...outboundTls,
    ...(config.faults ? { faultsAdmin: { setRules: (r: Readonly<Record<string, unknown>>) => faults().setRules(r), rules: () => faults().rules() } } : {}),
    ...(config.faults && config.supervisorUrl !== null ? { supervisor: supervisorLink(config.supervisorUrl, adminToken) } : {}),
    logger: false,
  });
  return { grpc, http, sampler };
}

/** The dashboard's restart, pause and resume, and its paused members: the supervisor that started this node (quorumkv up). */
function supervisorLink(supervisorUrl: string, adminToken: string | null): SupervisorLink {
  return {
    act: (action, id) => askSupervisor(supervisorUrl, adminToken, action, id),
    processes: (timeoutMs) => supervisorProcesses(supervisorUrl, adminToken, timeoutMs),
  };
}

/** The driver's and core's settings, derived from the node's configuration (ms become ticks). */
function driverOptions(config: NodeConfig, self: Pick<DriverOptions, 'clusterId' | 'memberId' | 'bootstrapMemberId' | 'selfHttp' | 'selfGrpc' | 'rollbackCountAtStart'>): DriverOptions {
  const tick = (ms: number): number => Math.max(1, Math.round(ms / config.tickMs));
  return {
    id: config.id,
    ...self,
    pid: process.pid,
    tickMs: config.tickMs,
    electionTimeoutTicks: tick(config.electionTimeoutMs),
    heartbeatIntervalTicks: tick(config.heartbeatIntervalMs),
    preVote: true,
    checkQuorum: config.pinnedLeader === null,
    pinnedLeader: config.pinnedLeader,
    inflightMessagesMax: 256,
    appendBytesMax: 4 * 1024 * 1024,
    appendEntriesMax: 4096,
    uncommittedEntriesMax: config.pendingWritesMax,
    readsPendingMax: 50_000,
    pendingWritesMax: config.pendingWritesMax,
    applyEntriesMax: 4096,
    persistsInFlightMax: config.persistsInFlightMax,
    logEntriesMax: config.logEntriesMax,
    logBytesMax: config.logBytesMax,
    snapshotChunkBytes: config.snapshotChunkBytes,
    snapshotTimeoutTicks: tick(30_000),
    memberTimeoutTicks: tick(config.memberTimeoutMs),
    ...(config.readIndexTimeoutMs === null ? {} : { readIndexTimeoutTicks: tick(config.readIndexTimeoutMs) }),
    readLease: config.readLease,
    replicationTimeoutTicks: tick(config.replicationTimeoutMs),
    dedupClientsMax: 100_000,
    watch: {
      historyRetentionVersions: config.historyRetentionVersions,
      // Rounded up: the window is kept at least as long as asked.
      historyRetentionTicks: Math.ceil(config.historyRetentionMs / config.tickMs),
      bufferBytesMax: config.watchBufferBytesMax,
      watchersMax: config.watchersMax,
      progressTicks: tick(config.watchProgressMs),
      pageVersions: 256,
    },
  };
}
