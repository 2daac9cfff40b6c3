/**
 * Public option and result types of the TypeScript client. Shapes follow the HTTP/JSON API
 * (wire/types.ts) so that both transports give the same answers.
 *
 * Must never: expose transport details (undici, grpc-js types) in the public API.
 */

import type { StatusResponse } from '../wire/types.js';
import type { QuorumKvError } from './errors.js';

/** How the client talks to the cluster. Both give the same semantics and errors. */
export type TransportKind = 'http' | 'grpc';

/** PEM text or bytes. */
export interface ClientTls {
  readonly ca?: string | Uint8Array;
  readonly cert?: string | Uint8Array;
  readonly key?: string | Uint8Array;
}

export interface ConnectOptions {
  /**
   * Nodes to talk to; at least one. HTTP: base URLs (`http://127.0.0.1:7001`; a bare
   * `host:port` means `http://host:port`). gRPC: `host:port` (or `grpc://host:port`). Over
   * HTTP the client also learns the other members from `/status`; over gRPC it uses only
   * the endpoints given (followers forward to the leader, so one endpoint still works).
   */
  readonly endpoints: readonly string[];
  /** Default `http`. */
  readonly transport?: TransportKind;
  /**
   * Bearer token sent with every request (HTTP `Authorization`, gRPC metadata): a user's
   * token once auth is on, or the admin token for the operational calls (members, backup).
   * Never logged by the client.
   */
  readonly token?: string;
  /**
   * TLS towards the nodes: `ca` the CA that signed their certificates (default: the system's
   * CAs), `cert` and `key` this client's certificate for nodes that require one. HTTP
   * endpoints are then `https://…`; over gRPC every channel is TLS (a `grpcs://host:port`
   * endpoint asks for TLS on its own too).
   */
  readonly tls?: ClientTls;
  /**
   * Default time budget of one call, retries and backoff included, in milliseconds
   * (default 10,000). Each call can override it. A call always settles by then.
   */
  readonly deadlineMs?: number;
  /**
   * Idempotency identity of this client: every write carries `<clientId>.<lane>` and an
   * increasing sequence number, so a retried write is applied at most once. Default: a
   * random id. Ids are per client instance; sequence numbers start from the clock, so a
   * restarted process may reuse its id. At most 100 visible ASCII characters.
   */
  readonly clientId?: string;
  /** HTTP: open connections per node (keep-alive; one request each at a time). Default 64. */
  readonly connectionsPerEndpoint?: number;
  /** First retry delay; doubles per failed attempt up to `backoffMsMax`, with jitter. Default 25. */
  readonly backoffMsMin?: number;
  /** Largest retry delay after load or an unknown outcome. Default 1,000. While the client looks for a leader, at most 100 ms (or this, if smaller). */
  readonly backoffMsMax?: number;
  /** How long `connect()` waits for a first node to answer. Default: `deadlineMs`. */
  readonly connectTimeoutMs?: number;
  /**
   * Where linearizable reads go. `leader` (default): to the leader. `any`: to every node in
   * turn; a follower serves them itself through the leader's read index (still
   * linearizable), which spreads the HTTP work of a read-heavy load over the cluster at the
   * cost of one more hop (follower → leader) per read round.
   */
  readonly linearizableReadsFrom?: 'leader' | 'any';
  /**
   * Gather the get/put/delete calls issued in the same event-loop turn into one `POST
   * /batch` (HTTP) or one `Batch` call (gRPC) per node (default true). Each call keeps its
   * own semantics, result and retries; a busy client sends fewer, larger requests, which is
   * most of the throughput on a small machine. A value over 16 Ki characters goes in a
   * request of its own. false: one request per call.
   */
  readonly batching?: boolean;
}

/**
 * Read consistency. `linearizable` (default): the leader confirms its leadership first.
 * `leader`: the leader's state without confirmation. `local`: any node's state, maybe stale.
 * `session`: any node, but not older than anything this client wrote or read
 * (read-your-writes and monotonic reads, via `minVersion` = the client's session version).
 */
export type Consistency = 'linearizable' | 'leader' | 'local' | 'session';

export interface CallOptions {
  /** This call's time budget in milliseconds (default: the client's `deadlineMs`). */
  readonly deadlineMs?: number;
}

export interface PutOptions extends CallOptions {
  /** Compare-and-set: write only if the key's version is this (0: the key must be absent). */
  readonly ifVersion?: number;
  /**
   * Attach the key to this lease (a Lease or its id): the key is deleted when the lease
   * ends. A put without it detaches the key from any lease (as etcd does). A lease that no
   * longer exists is refused with NotFoundError `lease_not_found`.
   */
  readonly lease?: number | { readonly id: number };
}

export interface LeaseOptions extends CallOptions {
  /** Keep the lease alive in the background (default true); false: call keepAlive() yourself. */
  readonly keepAlive?: boolean;
}

export interface DeleteOptions extends CallOptions {
  /** Compare-and-set: delete only if the key's version is this. */
  readonly ifVersion?: number;
}

export interface GetOptions extends CallOptions {
  /** Default `linearizable`, or `local` when `minVersion` is given. */
  readonly consistency?: Consistency;
  /**
   * Any node may answer, after it has applied at least this version (waiting a bounded
   * time). Combined with `session`, the larger of the two counts.
   */
  readonly minVersion?: number;
  /**
   * Read the state as it was at this version: a key's value then, or a page of
   * a scan every page of which shows the same version. `CompactedError`-like refusal
   * (code `compacted`, details.oldestVersion) when the history kept no longer reaches it.
   */
  readonly atVersion?: number;
}

export interface ListOptions extends GetOptions {
  /** Only keys starting with this. */
  readonly prefix?: string;
  /** Start strictly after this key in the listing's order (pass a page's `next`); with `reverse`, the keys before it. */
  readonly after?: string;
  /** Page size (the server caps it; default 100). */
  readonly limit?: number;
  /** Descending key order: the last key first. */
  readonly reverse?: boolean;
}

export interface DieOptions extends CallOptions {
  /** true: stop cleanly (flush, close; the seeds' die(clean)); false (default): kill -9. */
  readonly clean?: boolean;
}

export interface BackupOptions extends CallOptions {
  /** Node to read from (default: the leader, whose state is the most recent). */
  readonly nodeId?: string;
}

export interface PutResult {
  readonly key: string;
  /** The log index that committed the write: unique and increasing cluster-wide. */
  readonly version: number;
}

export interface DeleteResult {
  readonly key: string;
  readonly version: number;
  /** False when the key was already absent. */
  readonly deleted: boolean;
}

/** A stored value: text or bytes, read back as the type it was written with. */
export type Value = string | Uint8Array;

/** One key with its value (text or bytes, as written) and version. */
export interface Entry {
  readonly key: string;
  readonly value: Value;
  readonly version: number;
}

export interface ListPage {
  readonly items: readonly Entry[];
  /** Pass as `after` for the next page; null on the last page. */
  readonly next: string | null;
  /** The version the page shows the state at (listPages reads every later page at it); 0 over gRPC. */
  readonly version: number;
}

/** One node's `/status`, plus its gRPC address when it serves gRPC. */
export interface NodeStatus extends StatusResponse {
  readonly grpc?: string;
}

export type EndpointStatus =
  | { readonly endpoint: string; readonly ok: true; readonly status: NodeStatus }
  | { readonly endpoint: string; readonly ok: false; readonly error: QuorumKvError };

export interface ClusterStatus {
  /** The leader's id as the most recent term known to the endpoints says, or null. */
  readonly leader: string | null;
  /** One entry per endpoint the client knows, in its order. */
  readonly nodes: readonly EndpointStatus[];
}

export interface BackupResult {
  /** Where the backup was written. */
  readonly file: string;
  readonly nodeId: string;
  readonly clusterId: string;
  /** The backup holds exactly the effects of the log up to this index (and its term). */
  readonly index: number;
  readonly term: number;
  /** Records: client keys plus the state machine's reserved ones (leases, the history of changes). */
  readonly items: number;
  /** Client keys among them. */
  readonly keys: number;
  readonly dedupRecords: number;
  readonly chunks: number;
  readonly bytes: number;
  /** Hex SHA-256 of the file up to its trailer line (also written in the trailer). */
  readonly sha256: string;
}
