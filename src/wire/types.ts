/**
 * Client-facing request and response shapes of the HTTP/JSON API (and the same shapes
 * the gRPC service and the TypeScript client use).
 */

export type ReadConsistency = 'linearizable' | 'leader' | 'local';

export const readConsistencies: readonly ReadConsistency[] = ['linearizable', 'leader', 'local'];

/** Headers that make a write idempotent: a retry with the same pair applies at most once. */
export const clientIdHeader = 'x-qkv-client-id';
export const requestSeqHeader = 'x-qkv-seq';

/** Longest client id a server accepts (every API: header, batch field, gRPC field). */
export const clientIdCharsMax = 128;

/** A client id is 1 to `charsMax` visible ASCII characters (no spaces, nothing to escape). */
export function isClientId(text: string, charsMax = clientIdCharsMax): boolean {
  return text.length > 0 && text.length <= charsMax && /^[\x21-\x7e]+$/.test(text);
}

export interface PutBody {
  readonly value: string;
  /** Compare-and-set: write only if the key's current version is this (0: key must not exist). */
  readonly ifVersion?: number;
}

export interface PutResponse {
  readonly key: string;
  readonly version: number;
}

export interface GetResponse {
  readonly key: string;
  /** Text, or base64 when `encoding` is "base64" (a binary value). */
  readonly value: string;
  readonly encoding?: 'base64';
  readonly version: number;
}

export interface DeleteResponse {
  readonly key: string;
  readonly version: number;
  readonly deleted: boolean;
}

export interface ListItem {
  readonly key: string;
  /** Text, or base64 when `encoding` is "base64" (a binary value). */
  readonly value: string;
  readonly encoding?: 'base64';
  readonly version: number;
}

export interface ListResponse {
  readonly items: readonly ListItem[];
  /** Pass as `after` to get the next page; null on the last page. */
  readonly next: string | null;
}

/** The client addresses a node advertises; null where it serves none or it is not known yet. */
export interface NodeAddresses {
  /** Its HTTP API's origin, http://host:port. */
  readonly http: string | null;
  /** Its gRPC API, host:port. */
  readonly grpc: string | null;
}

export interface LeaderInfo extends NodeAddresses {
  readonly id: string;
}

export interface PeerStatus extends NodeAddresses {
  readonly id: string;
  /** Leader's view: highest index known replicated on this peer (null on followers). */
  readonly matchIndex: number | null;
  /** Leader's view: leader last index - matchIndex (null on followers). */
  readonly lag: number | null;
  /**
   * On the leader: the link is up and the peer answered within the last election timeout
   * (a paused peer's link stays up, so the link alone does not count). Elsewhere: the link is up.
   */
  readonly reachable: boolean;
}

// --- Membership: GET/POST /members, POST /members/{id}/promote, DELETE /members/{id} ---

export type MemberRole = 'voter' | 'learner';

export interface MemberStatus extends NodeAddresses {
  readonly id: string;
  readonly role: MemberRole;
  /** Random id given when the member was added (null for members bootstrapped by --peers before they first connected). */
  readonly memberId: string | null;
  /** host:port of its peer listener, as the configuration records it (null when bootstrapped by --peers). */
  readonly peer: string | null;
  readonly isLeader: boolean;
  /** Leader's view (null on followers): highest index known replicated there, and how far behind the leader's log it is. */
  readonly matchIndex: number | null;
  readonly lag: number | null;
}

export interface MembersResponse {
  /** Log index of the configuration these members come from. */
  readonly configIndex: number;
  readonly members: readonly MemberStatus[];
}

/** POST /members: a member to add, its peer listener and the client addresses it will advertise. */
export interface AddMemberBody {
  readonly id: string;
  /** host:port of its peer listener. */
  readonly peer: string;
  /** Its HTTP API origin (http://host:port). */
  readonly http?: string;
  /** Its gRPC address (host:port). */
  readonly grpc?: string;
  /** Default true: join as a learner (catches up without counting), then promote it. */
  readonly learner?: boolean;
  /** Needed with `learner: false`: a voter that holds nothing yet counts toward every quorum. */
  readonly force?: boolean;
  /** Normally drawn by the leader; a joining node passes the one in its data directory. */
  readonly memberId?: string;
}

/** Answer of every membership change: the configuration index it was committed at, and the members after it. */
export interface MembershipChangeResponse extends MembersResponse {
  readonly clusterId: string;
  /** The configuration after the change, as a joining node starts from it (checked by it like any config entry). */
  readonly config: ClusterConfigView;
}

/** A cluster configuration as it travels to clients and joining nodes (core/types.ts ClusterConfig, field for field). */
export interface ClusterConfigView {
  readonly members: readonly string[];
  readonly learners?: readonly string[];
  readonly writeQuorum: 'majority' | 'all' | number;
  readonly topology: 'star' | 'chain';
  readonly inSync?: readonly string[];
  readonly directory?: Readonly<Record<string, { readonly memberId: string; readonly peer: string; readonly http?: string; readonly grpc?: string }>>;
}

/** POST /admin/transfer-leader */
export interface TransferLeaderBody {
  /** The voter to hand over to; absent: the most up-to-date one. */
  readonly to?: string;
}

export interface ModeStatus {
  readonly writeQuorum: 'majority' | 'all' | number;
  readonly topology: 'star' | 'chain';
  /** Log index since which this mode is in force (0: from the start). */
  readonly sinceIndex: number;
  /** The replicas `all` and `chain` wait for (every member unless one was removed). */
  readonly inSync: readonly string[];
}

export interface StatusResponse {
  readonly id: string;
  readonly clusterId: string;
  readonly pid: number;
  readonly role: 'leader' | 'follower' | 'candidate';
  readonly term: number;
  readonly leader: LeaderInfo | null;
  readonly commitIndex: number;
  readonly ackedIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly keyCount: number;
  readonly mode: ModeStatus;
  readonly peers: readonly PeerStatus[];
  /** Every voter and learner, this node included, with the configuration's log index (gRPC: Status.membership). */
  readonly membership?: MembersResponse;
  readonly rollbackCount: number;
  /** Present while this node's disk is below its free-space floor (puts refused with no_space when it leads). */
  readonly spaceAlarm?: string;
  readonly uptimeMs: number;
}

// --- POST /batch: many independent key operations in one request ---

/** Route of the batch API. */
export const batchRoute = '/batch';

/**
 * A batch body may also come as MessagePack (the same object as the JSON body, maps with
 * string keys): a long value then reaches the server without the whole body first becoming
 * one string to parse. Only POST /batch takes it; the answer is JSON either way.
 */
export const msgpackMediaType = 'application/msgpack';

/** Most operations one batch may carry (the server refuses more with 400). */
export const batchOpsMax = 1_000;

/**
 * One operation of a batch, with the fields its single-key route takes: the key, the body
 * fields, the query parameters, and the idempotency pair (`clientId` and `seq`, both or
 * neither) that writes otherwise carry as headers.
 */
export type BatchOpBody =
  | { readonly op: 'put'; readonly key: string; readonly value: string; readonly encoding?: 'base64'; readonly ifVersion?: number; readonly clientId?: string; readonly seq?: number }
  | { readonly op: 'delete'; readonly key: string; readonly ifVersion?: number; readonly clientId?: string; readonly seq?: number }
  | { readonly op: 'get'; readonly key: string; readonly consistency?: ReadConsistency; readonly minVersion?: number };

export interface BatchBody {
  readonly ops: readonly BatchOpBody[];
}

/**
 * The answer to one operation: the HTTP status and body its single-key route would have
 * answered (a 200 body, or an error body `{error, message, …}`), plus `retryAfterMs` on 503s.
 */
export type BatchResultItem = { readonly status: number; readonly retryAfterMs?: number } & Readonly<Record<string, unknown>>;

/** 200 `{"results": [...]}`, one item per operation, in order. */
export interface BatchResponse {
  readonly results: readonly BatchResultItem[];
}

// --- transactions (POST /txn) ---

export const txnRoute = '/txn';
/** Most compares, and most operations per branch, in one transaction. */
export const txnOpsMax = 128;

export type TxnCompareOp = '=' | '!=' | '<' | '>';

/**
 * One condition, on the key's state just before the transaction: exactly one of `version`
 * (0: absent), `value` or `exists`; `op` defaults to "=" (`exists` takes = and != only).
 */
export interface TxnCompareBody {
  readonly key: string;
  readonly op?: TxnCompareOp;
  readonly version?: number;
  /** Text, or base64 with `encoding: "base64"` (a binary value). */
  readonly value?: string;
  readonly encoding?: 'base64';
  readonly exists?: boolean;
}

export type TxnOpBody =
  | { readonly op: 'put'; readonly key: string; readonly value: string; readonly encoding?: 'base64' }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'get'; readonly key: string }
  /** `limit` defaults to the node's list page size and may not exceed it; `reverse`: last key first. */
  | { readonly op: 'list'; readonly prefix: string; readonly limit?: number; readonly reverse?: boolean };

export interface TxnBody {
  readonly compare?: readonly TxnCompareBody[];
  readonly success?: readonly TxnOpBody[];
  readonly failure?: readonly TxnOpBody[];
}

export type TxnOpResponse =
  | { readonly op: 'put'; readonly key: string; readonly version: number }
  | { readonly op: 'delete'; readonly key: string; readonly deleted: boolean }
  | { readonly op: 'get'; readonly key: string; readonly found: false }
  | { readonly op: 'get'; readonly key: string; readonly found: true; readonly value: string; readonly encoding?: 'base64'; readonly version: number }
  | { readonly op: 'list'; readonly prefix: string; readonly items: readonly ListItem[]; readonly more: boolean };

/** 200: which branch ran, the transaction's version (its log index: every write's version), and each operation's result. */
export interface TxnResponse {
  readonly succeeded: boolean;
  readonly version: number;
  readonly results: readonly TxnOpResponse[];
}

// --- leases (POST /leases, /leases/{id}/keepalive, GET/DELETE /leases/{id}) ---

/** TTLs a lease may have: from 1 ms (expiry is still committed through the log) to a week. */
export const leaseTtlMsMax = 7 * 24 * 3_600_000;
/** Keys GET /leases/{id} lists at most. */
export const leaseKeysMax = 1_000;

export interface LeaseGrantBody {
  readonly ttlMs: number;
}

/** 200 to POST /leases: the lease id is the log index of its grant. */
export interface LeaseGrantResponse {
  readonly id: number;
  readonly ttlMs: number;
  readonly version: number;
}

export interface LeaseKeepAliveResponse {
  readonly id: number;
  readonly ttlMs: number;
}

export interface LeaseRevokeResponse {
  readonly id: number;
  /** False when the lease did not exist (already revoked or expired). */
  readonly found: boolean;
  readonly keysDeleted: number;
  readonly version: number;
}

export interface LeaseInfoResponse {
  readonly id: number;
  readonly ttlMs: number;
  /** Time left by the leader's clock (the full TTL right after a change of leader). */
  readonly remainingMs: number;
  readonly keys: readonly string[];
}
