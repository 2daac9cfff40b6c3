/**
 * Node configuration: one table of flags, each with its environment variable (for
 * containers), default and help text. `quorumkv node` parses it; `quorumkv up` passes
 * the same flags through to every node it starts. Relations between limits are checked
 * at start-up, so a bad combination fails loudly instead of misbehaving later.
 */

import { isWriteQuorum } from '../core/config.js';
import { formatHostPort, splitHostPort, type HostPort } from '../stdx/host-port.js';
import { defaultRequestsPerClientMax } from '../api/client-limits.js';
import { defaultForwardLimits } from '../api/forward.js';
import { parseArgs } from './command.js';
import type { CommandSpec, FlagDef } from './command.js';
import type { WriteQuorum } from '../core/types.js';

export type { HostPort } from '../stdx/host-port.js';

export interface NodeConfig {
  readonly id: string;
  readonly clusterId: string | null;
  readonly dataDir: string;
  readonly listenHttp: HostPort;
  readonly listenPeer: HostPort;
  /** gRPC API address; null with `--listen-grpc off`. */
  readonly listenGrpc: HostPort | null;
  /** The client API URL peers and clients are told to use; null: the bound address. */
  readonly advertiseHttp: string | null;
  /** The gRPC address (host:port) peers and clients are told to use; null: the bound address. */
  readonly advertiseGrpc: string | null;
  /**
   * The peer address (host:port) other members should dial this node at: recorded when it
   * joins and announced to peers when it connects; null: --listen-peer unless that is a
   * wildcard (0.0.0.0, ::), which names no reachable host.
   */
  readonly advertisePeer: string | null;
  /** Every member, this node included, and the address to reach it at. */
  readonly peers: ReadonlyMap<string, HostPort>;
  readonly writeQuorum: WriteQuorum;
  readonly topology: 'star' | 'chain';
  readonly pinnedLeader: string | null;
  readonly tickMs: number;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly requestTimeoutMs: number;
  readonly replicationTimeoutMs: number;
  readonly memberTimeoutMs: number;
  /** A follower's read-index request unanswered this long fails; null: two election timeouts. */
  readonly readIndexTimeoutMs: number | null;
  /** The leader serves linearizable reads under a read lease (node/read-lease.ts). */
  readonly readLease: boolean;
  readonly leaderWaitMs: number;
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  readonly bodyBytesMax: number;
  readonly headerBytesMax: number;
  readonly listLimitMax: number;
  readonly logEntriesMax: number;
  readonly logBytesMax: number;
  readonly snapshotChunkBytes: number;
  readonly historyRetentionVersions: number;
  /** History older than this is compacted too (0: only the version limit applies); see node/history-retention.ts. */
  readonly historyRetentionMs: number;
  readonly watchBufferBytesMax: number;
  readonly watchersMax: number;
  readonly watchProgressMs: number;
  readonly pendingWritesMax: number;
  readonly persistsInFlightMax: number;
  readonly faults: boolean;
  /**
   * The loopback URL of the supervisor that owns this process (quorumkv up passes it): with
   * --faults, the dashboard restarts a member through it. Null: no restart control.
   */
  readonly supervisorUrl: string | null;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly logLevel: string;
  /** URL of a running member to join through (a new node with an empty data directory); null: bootstrap from --peers. */
  readonly join: string | null;
  /** With --join: promote this node to voter by itself once it has caught up. */
  readonly promote: boolean;
  /** How long a node with an empty data directory asks its peers whether they knew it before starting. */
  readonly identityCheckMs: number;
  /** File holding the cluster's shared peer secret (peers prove it in the handshake); null: none. */
  readonly peerSecretFile: string | null;
  /** Below this much free space on the data directory's disk, the leader refuses puts (no_space). */
  readonly freeBytesMin: number;
  /** Who may use the operational routes (api/access.ts): the admin token or an admin user, anyone, or nobody (404). */
  readonly adminRoutes: 'token' | 'open' | 'off';
  /** File holding the admin token (null: only users with the admin role pass). */
  readonly adminTokenFile: string | null;
  /** Users, roles and the auth switch a new cluster starts with (cli/auth-bootstrap.ts); null: none. */
  readonly authBootstrapFile: string | null;
  /** Bytes the stores may occupy before the leader refuses puts (no_space); 0: no quota. */
  readonly quotaBytes: number;
  /** Open HTTP connections one client address may hold (beyond: 429). */
  readonly connectionsPerIpMax: number;
  /** HTTP requests, and gRPC unary calls, one client address may have in flight (beyond: 429 / RESOURCE_EXHAUSTED); streams are not counted. */
  readonly requestsPerClientMax: number;
  /** Concurrent gRPC calls (HTTP/2 streams) on one client connection. */
  readonly grpcStreamsPerConnectionMax: number;
  /** HTTPS and gRPC over TLS for clients; `clientCaFile`: clients must present a certificate it signed. */
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string | null } | null;
  /** Mutual TLS between peers (transport/types.ts TcpTransportOptions.tls). */
  readonly peerTls: { readonly certFile: string; readonly keyFile: string; readonly caFile: string } | null;
}

/** Flag name (kebab-case) -> spec, without env var names (withEnv adds them). */
const nodeFlagTable: Readonly<Record<string, Omit<FlagDef, 'env'>>> = {
  id: { kind: 'value', help: 'this node\'s id (must appear in --peers)' },
  'cluster-id': { kind: 'value', help: 'cluster id; peers from another cluster are rejected (default: derived from --peers)' },
  'data-dir': { kind: 'value', help: 'directory for this node\'s LMDB files' },
  'listen-http': { kind: 'value', help: 'client API address host:port (port 0: any free port)', default: '127.0.0.1:7001' },
  'listen-peer': { kind: 'value', help: 'peer transport address host:port', default: '127.0.0.1:7101' },
  'listen-grpc': { kind: 'value', help: 'gRPC API address host:port (port 0: any free port, shown in /status; off: no gRPC)', default: '127.0.0.1:0' },
  'advertise-http': { kind: 'value', help: 'the URL others should use for this node\'s HTTP API when it differs from --listen-http (containers, NAT), e.g. http://n1:7001' },
  'advertise-grpc': { kind: 'value', help: 'the host:port others should use for this node\'s gRPC API when it differs from --listen-grpc' },
  'advertise-peer': { kind: 'value', help: 'the host:port other members should dial this node at when it differs from --listen-peer (needed with a wildcard --listen-peer and --join)' },
  peers: { kind: 'value', help: 'every first member, itself included: id=host:port,id=host:port,… (only bootstraps a new cluster; a restarted node takes its members from its data directory)' },
  join: { kind: 'value', help: 'URL of a running member: join that cluster as a learner (empty data directory; needs a fixed --listen-peer port)' },
  promote: { kind: 'bool', help: 'with --join: become a voter once caught up', default: 'false' },
  'peer-secret-file': { kind: 'value', help: "file holding the cluster's shared peer secret: peers prove they know it (HMAC challenge) or are refused; the secret itself is never sent or logged" },
  'free-bytes-min': { kind: 'value', help: "free space on the data directory's disk below which this node, leading, refuses puts with 507 no_space (reads and deletes go on; the alarm clears once space is back)", default: String(256 * 1024 * 1024) },
  'admin-routes': { kind: 'value', help: 'operational routes (mode, members, backups, compaction, users, faults): token = need the admin token or an admin user; open = anyone (a trusted network only); off = they do not exist (404)', default: 'token' },
  'admin-token-file': { kind: 'value', help: 'file holding the admin token (quorumkv up writes DATA_DIR/admin-token, mode 0600); never logged or shown' },
  'quota-bytes': { kind: 'value', help: "bytes this node's stores may occupy (pages in use, not the file's size); beyond it the leader refuses puts with 507 no_space until deletes and compaction bring it back under (0: no quota)", default: String(8 * 1024 ** 3) },
  'auth-bootstrap-file': { kind: 'value', help: 'JSON file of users (with their tokens), roles and "enabled": written once by the first leader of a cluster with no users yet (docs/security.md)' },
  'connections-per-ip-max': { kind: 'value', help: 'open HTTP connections one client address may hold; beyond it a new one is answered 429 and closed (each watch stream holds one, so this also bounds its watches)', default: '1024' },
  'requests-per-client-max': { kind: 'value', help: 'requests one client address may have in flight across all its connections, HTTP (pipelined ones too) and gRPC unary calls each counted per API; beyond it 429 / RESOURCE_EXHAUSTED too_many_requests with Retry-After 1 s (watch and keep-alive streams are not counted)', default: String(defaultRequestsPerClientMax) },
  'grpc-streams-per-connection-max': { kind: 'value', help: "concurrent gRPC calls and streams on one client connection (HTTP/2 max concurrent streams); a client's calls beyond it wait on its side", default: '1000' },
  'tls-cert': { kind: 'value', help: 'certificate (PEM) of the HTTP and gRPC APIs: they serve HTTPS / TLS only (with --tls-key); reloaded on SIGHUP' },
  'tls-key': { kind: 'value', help: 'private key (PEM) of --tls-cert' },
  'tls-client-ca': { kind: 'value', help: 'CA (PEM): clients must present a certificate it signed (mutual TLS on the client APIs)' },
  'peer-tls-cert': { kind: 'value', help: "this node's peer certificate (PEM), naming its node id (CN or DNS name), signed by --peer-tls-ca; reloaded on SIGHUP" },
  'peer-tls-key': { kind: 'value', help: 'private key (PEM) of --peer-tls-cert' },
  'peer-tls-ca': { kind: 'value', help: "the cluster CA (PEM): peers must present a certificate it signed, naming the node id they claim" },
  'identity-check-ms': { kind: 'value', help: 'a node starting with an empty data directory asks its peers this long whether they knew it (a wiped member is refused)', default: '10000' },
  'write-quorum': { kind: 'value', help: 'majority | all | W (follower acks)', default: 'majority' },
  topology: { kind: 'value', help: 'star | chain', default: 'star' },
  leader: { kind: 'value', help: 'pin this node as leader and turn elections off (the seeds\' fixed-leader setup)' },
  'tick-ms': { kind: 'value', help: 'length of one logical tick', default: '50' },
  'election-timeout-ms': { kind: 'value', help: 'base election timeout (randomised up to 2x)', default: '1000' },
  'heartbeat-interval-ms': { kind: 'value', help: 'leader heartbeat interval', default: '100' },
  'request-timeout-ms': { kind: 'value', help: 'default deadline of a client request', default: '5000' },
  'replication-timeout-ms': { kind: 'value', help: 'a write not acknowledged by its quorum in this time answers 503 quorum_timeout', default: '5000' },
  'member-timeout-ms': { kind: 'value', help: 'with all/chain: silence before a replica leaves the in-sync set', default: '3000' },
  'read-index-timeout-ms': { kind: 'value', help: "a follower's linearizable read whose read point the leader has not sent in this time fails with 503 timeout (default: 2x --election-timeout-ms; at least 1x)" },
  'read-lease': { kind: 'value', help: "on: the leader serves linearizable reads without a heartbeat round while a lease holds (a majority acknowledged it within an election timeout less margins for clock drift; docs/architecture.md); off: every read is confirmed by a round (etcd's default). Set it alike on every node", default: 'on' },
  'leader-wait-ms': { kind: 'value', help: 'how long a request waits for an election before 503', default: '3000' },
  'key-bytes-max': { kind: 'value', help: 'largest key, UTF-8 bytes', default: '1024' },
  'value-bytes-max': { kind: 'value', help: 'largest value, bytes', default: String(1024 * 1024) },
  'body-bytes-max': { kind: 'value', help: 'largest request body (default: 6x the value limit + 64 KiB, for JSON escapes)' },
  'header-bytes-max': { kind: 'value', help: 'largest request header block', default: '16384' },
  'list-limit-max': { kind: 'value', help: 'largest page of GET /kv', default: '1000' },
  'log-entries-max': { kind: 'value', help: 'compact the log beyond this many entries', default: '20000' },
  'log-bytes-max': { kind: 'value', help: 'compact the log beyond this many bytes of entries (the log after the last compaction is held in memory)', default: String(64 * 1024 ** 2) },
  'snapshot-chunk-bytes': { kind: 'value', help: 'size of one snapshot chunk sent to a follower', default: String(256 * 1024) },
  'history-retention-versions': { kind: 'value', help: 'versions of change history kept for watches and reads at a version (older ones are compacted by the leader; a watch or read from before them gets compacted)', default: '100000' },
  'history-retention-ms': { kind: 'value', help: "also compact versions applied longer ago than this (0: no time limit); either limit compacts, so --history-retention-versions still bounds the history. Measured on the leader's own apply times: after a failover or restart it keeps longer, never shorter", default: '0' },
  'watch-buffer-bytes-max': { kind: 'value', help: "bytes a watcher's consumer may leave unread before it is cancelled with slow_consumer (it can resume from its last version)", default: String(4 * 1024 * 1024) },
  'watchers-max': { kind: 'value', help: 'watches one node serves at once (beyond: 503 busy)', default: '10000' },
  'watch-progress-ms': { kind: 'value', help: 'a watcher that heard nothing this long gets a progress event with the version it is up to', default: '5000' },
  'pending-writes-max': { kind: 'value', help: 'client writes in flight on the leader before 503 busy', default: '20000' },
  'persists-in-flight-max': { kind: 'value', help: 'log batches being written to disk at once: the next is written while the last one syncs (1: one at a time)', default: '4' },
  faults: { kind: 'bool', help: 'enable the /admin/faults route (delay, drop, partition)', default: 'false' },
  supervisor: { kind: 'value', help: "URL (http://127.0.0.1:PORT) of the supervisor that owns this node's process, which quorumkv up sets: with --faults the dashboard restarts members through it, sending it the admin token" },
  'min-delay-ms': { kind: 'value', help: 'uniform extra delay per message to each peer: lower bound', default: '0' },
  'max-delay-ms': { kind: 'value', help: 'uniform extra delay per message to each peer: upper bound', default: '0' },
  'log-level': { kind: 'value', help: 'pino log level', default: 'info' },
};

/** Every node flag; each is also read from its environment variable, QKV_ + upper snake case. */
export const nodeFlags: Readonly<Record<string, FlagDef>> = Object.fromEntries(
  Object.entries(nodeFlagTable).map(([name, def]) => [name, { ...def, env: envName(name) }]),
);

export const nodeCommand: CommandSpec = {
  name: 'node',
  summary: 'run one node of a cluster (every flag is also an environment variable, for containers)',
  flags: nodeFlags,
  epilog: `example:
  quorumkv node --id n1 --data-dir d1 --listen-http 127.0.0.1:7001 --listen-peer 127.0.0.1:7101 \\
    --peers n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103`,
};

export function envName(flag: string): string {
  return `QKV_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** A listen address that names every interface, so no host another machine could dial. */
function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function parseHostPort(value: string, what: string): HostPort {
  const hp = splitHostPort(value);
  if (hp === null) throw new ConfigError(`${what} must be host:port, got "${value}"`);
  return hp;
}

function advertisedUrl(value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`--advertise-http must be a URL like http://n1:7001, got "${value}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '' || url.port === '') {
    throw new ConfigError(`--advertise-http must be scheme://host:port with no path, got "${value}"`);
  }
  return `${url.protocol}//${url.host}`;
}

function hostPortText(value: string, what: string): string {
  return formatHostPort(parseHostPort(value, what));
}

export function parsePeers(value: string): Map<string, HostPort> {
  const peers = new Map<string, HostPort>();
  for (const part of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--peers entries must be id=host:port, got "${part}"`);
    const id = part.slice(0, eq);
    if (peers.has(id)) throw new ConfigError(`--peers names ${id} twice`);
    peers.set(id, parseHostPort(part.slice(eq + 1), `--peers ${id}`));
  }
  if (peers.size === 0) throw new ConfigError('--peers must list at least this node');
  return peers;
}

function oneOf<T extends string>(values: ReadonlyMap<string, string>, name: string, allowed: readonly T[]): T {
  const raw = values.get(name);
  if (!allowed.includes(raw as T)) throw new ConfigError(`--${name} (or ${envName(name)}) must be one of ${allowed.join(', ')}, got "${raw ?? ''}"`);
  return raw as T;
}

function int(values: ReadonlyMap<string, string>, name: string, min: number): number {
  const raw = values.get(name);
  const n = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(n) || n < min) {
    throw new ConfigError(`--${name} (or ${envName(name)}) must be an integer >= ${min}, got "${raw ?? ''}"`);
  }
  return n;
}

function required(values: ReadonlyMap<string, string>, name: string): string {
  const v = values.get(name);
  if (v === undefined || v === '') throw new ConfigError(`--${name} (or ${envName(name)}) is required`);
  return v;
}

export function parseWriteQuorum(raw: string, memberCount: number): WriteQuorum {
  const value: unknown = raw === 'majority' || raw === 'all' ? raw : Number(raw);
  if (!isWriteQuorum(value, memberCount)) {
    throw new ConfigError(`--write-quorum must be majority, all or 0..${memberCount - 1} with ${memberCount} members, got "${raw}"`);
  }
  return value;
}

/** The node's configuration from its command line and environment; null when help was printed. */
export function parseNodeConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): NodeConfig | null {
  const parsed = parseArgs(nodeCommand, argv, env);
  return parsed === null ? null : nodeConfigOf(parsed.values);
}

export function nodeConfigOf(v: ReadonlyMap<string, string>): NodeConfig {
  const id = required(v, 'id');
  const join = v.get('join') ?? null;
  if (join !== null && !/^https?:\/\/[^/]+/.test(join)) throw new ConfigError(`--join must be a member's URL like http://127.0.0.1:7001, got "${join}"`);
  const listenPeer = parseHostPort(v.get('listen-peer') ?? '', '--listen-peer');
  const advertisePeer = v.has('advertise-peer') ? hostPortText(v.get('advertise-peer') as string, '--advertise-peer') : isWildcard(listenPeer.host) || listenPeer.port === 0 ? null : `${listenPeer.host}:${listenPeer.port}`;
  if (join !== null && advertisePeer === null) {
    throw new ConfigError('--join needs the address members should dial this node at: a fixed, non-wildcard --listen-peer, or --advertise-peer');
  }
  // A joining node learns the members from the cluster; --peers then only names itself.
  const peers = join !== null && !v.has('peers') ? new Map([[id, listenPeer]]) : parsePeers(required(v, 'peers'));
  if (!peers.has(id)) throw new ConfigError(`--peers must include this node (${id})`);
  const topology = v.get('topology');
  if (topology !== 'star' && topology !== 'chain') throw new ConfigError(`--topology must be star or chain, got "${topology ?? ''}"`);
  const writeQuorum = parseWriteQuorum(v.get('write-quorum') ?? 'majority', peers.size);
  const pinnedLeader = v.get('leader') ?? null;
  if (pinnedLeader !== null && !peers.has(pinnedLeader)) throw new ConfigError(`--leader ${pinnedLeader} is not in --peers`);
  const valueBytesMax = int(v, 'value-bytes-max', 1);
  // JSON escaping can take up to 6 bytes per character of a value (\u00XX).
  const bodyBytesMax = v.has('body-bytes-max') ? int(v, 'body-bytes-max', 1) : valueBytesMax * 6 + 64 * 1024;
  const config: NodeConfig = {
    id,
    clusterId: v.get('cluster-id') ?? null,
    dataDir: required(v, 'data-dir'),
    listenHttp: parseHostPort(v.get('listen-http') ?? '', '--listen-http'),
    listenPeer,
    listenGrpc: v.get('listen-grpc') === 'off' ? null : parseHostPort(v.get('listen-grpc') ?? '', '--listen-grpc'),
    advertiseHttp: advertisedUrl(v.get('advertise-http')),
    advertiseGrpc: v.has('advertise-grpc') ? hostPortText(v.get('advertise-grpc') as string, '--advertise-grpc') : null,
    advertisePeer,
    peers,
    writeQuorum,
    topology,
    pinnedLeader,
    tickMs: int(v, 'tick-ms', 1),
    electionTimeoutMs: int(v, 'election-timeout-ms', 1),
    heartbeatIntervalMs: int(v, 'heartbeat-interval-ms', 1),
    requestTimeoutMs: int(v, 'request-timeout-ms', 1),
    replicationTimeoutMs: int(v, 'replication-timeout-ms', 1),
    memberTimeoutMs: int(v, 'member-timeout-ms', 1),
    readIndexTimeoutMs: v.has('read-index-timeout-ms') ? int(v, 'read-index-timeout-ms', 1) : null,
    readLease: oneOf(v, 'read-lease', ['on', 'off'] as const) === 'on',
    leaderWaitMs: int(v, 'leader-wait-ms', 0),
    keyBytesMax: int(v, 'key-bytes-max', 1),
    valueBytesMax,
    bodyBytesMax,
    headerBytesMax: int(v, 'header-bytes-max', 1024),
    listLimitMax: int(v, 'list-limit-max', 1),
    logEntriesMax: int(v, 'log-entries-max', 10),
    logBytesMax: int(v, 'log-bytes-max', 1024 ** 2),
    snapshotChunkBytes: int(v, 'snapshot-chunk-bytes', 1024),
    historyRetentionVersions: int(v, 'history-retention-versions', 1),
    historyRetentionMs: int(v, 'history-retention-ms', 0),
    watchBufferBytesMax: int(v, 'watch-buffer-bytes-max', 1024),
    watchersMax: int(v, 'watchers-max', 1),
    watchProgressMs: int(v, 'watch-progress-ms', 1),
    pendingWritesMax: int(v, 'pending-writes-max', 1),
    persistsInFlightMax: int(v, 'persists-in-flight-max', 1),
    faults: v.get('faults') === 'true',
    supervisorUrl: supervisorUrlOf(v.get('supervisor')),
    minDelayMs: int(v, 'min-delay-ms', 0),
    maxDelayMs: int(v, 'max-delay-ms', 0),
    logLevel: v.get('log-level') ?? 'info',
    join,
    promote: v.get('promote') === 'true',
    identityCheckMs: int(v, 'identity-check-ms', 0),
    peerSecretFile: v.get('peer-secret-file') ?? null,
    freeBytesMin: int(v, 'free-bytes-min', 0),
    adminRoutes: oneOf(v, 'admin-routes', ['token', 'open', 'off'] as const),
    adminTokenFile: v.get('admin-token-file') ?? null,
    authBootstrapFile: v.get('auth-bootstrap-file') ?? null,
    connectionsPerIpMax: int(v, 'connections-per-ip-max', 1),
    requestsPerClientMax: int(v, 'requests-per-client-max', 1),
    grpcStreamsPerConnectionMax: int(v, 'grpc-streams-per-connection-max', 1),
    quotaBytes: int(v, 'quota-bytes', 0),
    tls: clientTlsOf(v),
    peerTls: peerTlsOf(v),
  };
  // Other nodes forward to the advertised URL and clients take it from /status: an http://
  // one for an HTTPS port could never be reached. (https:// without --tls-cert is allowed:
  // a proxy in front may terminate TLS.)
  if (config.tls !== null && config.advertiseHttp?.startsWith('http://') === true) {
    throw new ConfigError(`--advertise-http ${config.advertiseHttp} says http:// but --tls-cert makes the port HTTPS: advertise https://`);
  }
  checkRelations(config);
  return config;
}

/** --supervisor: a loopback http:// origin only, since the node sends it the admin token. */
function supervisorUrlOf(text: string | undefined): string | null {
  if (text === undefined || text === '') return null;
  if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}$/.test(text)) {
    throw new ConfigError(`--supervisor must be a loopback origin like http://127.0.0.1:7100 (the admin token goes there), got "${text}"`);
  }
  return text;
}

function clientTlsOf(v: ReadonlyMap<string, string>): NodeConfig['tls'] {
  const certFile = v.get('tls-cert');
  const keyFile = v.get('tls-key');
  const clientCaFile = v.get('tls-client-ca') ?? null;
  if (certFile === undefined && keyFile === undefined) {
    if (clientCaFile !== null) throw new ConfigError('--tls-client-ca needs --tls-cert and --tls-key');
    return null;
  }
  if (certFile === undefined || keyFile === undefined) throw new ConfigError('--tls-cert and --tls-key go together');
  return { certFile, keyFile, clientCaFile };
}

function peerTlsOf(v: ReadonlyMap<string, string>): NodeConfig['peerTls'] {
  const certFile = v.get('peer-tls-cert');
  const keyFile = v.get('peer-tls-key');
  const caFile = v.get('peer-tls-ca');
  if (certFile === undefined && keyFile === undefined && caFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined || caFile === undefined) throw new ConfigError('--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together (all three or none)');
  return { certFile, keyFile, caFile };
}

/** Limits that only make sense together. */
export function checkRelations(c: NodeConfig): void {
  const problems: string[] = [];
  if (c.heartbeatIntervalMs < c.tickMs) problems.push(`heartbeat interval ${c.heartbeatIntervalMs} ms is shorter than a tick (${c.tickMs} ms)`);
  if (c.electionTimeoutMs < 3 * c.heartbeatIntervalMs) problems.push(`election timeout ${c.electionTimeoutMs} ms must be at least 3 heartbeats (${3 * c.heartbeatIntervalMs} ms)`);
  // A shorter wait would give up on a leader that is merely being replaced.
  if (c.readIndexTimeoutMs !== null && c.readIndexTimeoutMs < c.electionTimeoutMs) {
    problems.push(`--read-index-timeout-ms ${c.readIndexTimeoutMs} is shorter than the election timeout (${c.electionTimeoutMs} ms)`);
  }
  if (c.bodyBytesMax < c.valueBytesMax) problems.push(`body limit ${c.bodyBytesMax} is below the value limit ${c.valueBytesMax}`);
  // LMDB refuses keys beyond 1978 bytes (its default max key size, minus our prefix);
  // a larger limit would let a committed key crash every replica at apply time.
  if (c.keyBytesMax > 1900) problems.push(`--key-bytes-max ${c.keyBytesMax} exceeds what LMDB can store (1900)`);
  // Each batch in flight holds its entries in memory until its flush ends: keep it a pipeline, not a queue.
  if (c.persistsInFlightMax > 64) problems.push(`--persists-in-flight-max ${c.persistsInFlightMax} exceeds 64`);
  // The samples that date versions are taken at least once a tick: a shorter window cannot be told apart.
  if (c.historyRetentionMs > 0 && c.historyRetentionMs < c.tickMs) problems.push(`--history-retention-ms ${c.historyRetentionMs} is shorter than a tick (${c.tickMs} ms)`);
  // A follower's requests reach the leader's HTTP API from one address, through up to this
  // many connections (one request each) from each of its two API servers.
  const forwardedMax = 2 * defaultForwardLimits.connectionsPerLeaderMax;
  if (c.requestsPerClientMax < forwardedMax) problems.push(`--requests-per-client-max ${c.requestsPerClientMax} is below what a follower forwards to the leader at once (${forwardedMax}): the leader would refuse its own followers`);
  if (c.minDelayMs > c.maxDelayMs) problems.push(`--min-delay-ms ${c.minDelayMs} exceeds --max-delay-ms ${c.maxDelayMs}`);
  if (problems.length > 0) throw new ConfigError(`inconsistent limits: ${problems.join('; ')}`);
}
