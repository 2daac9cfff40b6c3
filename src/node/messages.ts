/**
 * What travels between node drivers: the core's messages, plus snapshot chunks that the
 * driver streams beside the core, and client operations a follower forwards to the leader
 * with their answers (forwarding.ts). `decodePeerMessage` is the decode boundary: every
 * field of every incoming message is checked here (safe integers, known types) so that a
 * corrupt or hostile frame is dropped instead of reaching the core.
 */

import { configProblem } from '../core/config.js';
import { readIndexRequestIdsMax } from '../core/types.js';
import type { Entry, EntryKind, Message, NodeId, SnapshotMeta } from '../core/types.js';
import { isIndex } from '../stdx/safe-int.js';
import type { SnapshotChunk } from '../storage/types.js';
import { batchOpsMax } from '../wire/types.js';
import type { BatchOpBody, BatchResultItem } from '../wire/types.js';

export interface SnapshotChunkMessage {
  readonly type: 'snapshotChunk';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** The leader's commit index when it took the snapshot (see SnapshotMessage.commit). */
  readonly commit: number;
  readonly meta: SnapshotMeta;
  readonly chunk: SnapshotChunk;
}

/**
 * Client operations a follower received in one event-loop turn, sent to the leader as one
 * message (as etcd forwards MsgProp). Not a Raft message: the leader answers it through the
 * API's batch rules (every field of every operation is checked there, as for POST /batch).
 */
export interface ForwardBatchMessage {
  readonly type: 'forwardBatch';
  readonly from: NodeId;
  readonly to: NodeId;
  /** Chosen by the sender, unique among its pending forwards; the reply carries it back. */
  readonly id: number;
  readonly ops: readonly BatchOpBody[];
  /** The client's bearer token, passed on: the leader checks the credentials again. */
  readonly token: string | null;
  /** What is left of the earliest operation's deadline when sent (clocks differ, so no instant). */
  readonly timeoutMs: number;
}

/** The leader's answer to a ForwardBatchMessage: one result per operation, in order. */
export interface ForwardReplyMessage {
  readonly type: 'forwardReply';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly id: number;
  readonly results: readonly BatchResultItem[];
}

export type ForwardMessage = ForwardBatchMessage | ForwardReplyMessage;

export type PeerMessage = Message | SnapshotChunkMessage | ForwardMessage;

/** A bearer token longer than this is refused at the frame (HTTP headers bound it below this anyway). */
export const forwardTokenCharsMax = 16 * 1024;

const entryKinds: ReadonlySet<string> = new Set<EntryKind>(['normal', 'noop', 'config']);

type Raw = Record<string, unknown>;

function isObj(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null;
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 256;
}

function isEntry(v: unknown): v is Entry {
  return isObj(v) && isIndex(v['term']) && isIndex(v['index']) && typeof v['kind'] === 'string' && entryKinds.has(v['kind']) && v['data'] instanceof Uint8Array;
}

function isMeta(v: unknown): v is SnapshotMeta {
  return isObj(v) && isIndex(v['index']) && isIndex(v['term']) && configProblem(v['config']) === null;
}

/** 1 … readIndexRequestIdsMax read request ids: a longer list is refused before it is walked. */
function isRequestIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length >= 1 && v.length <= readIndexRequestIdsMax && v.every(isIndex);
}

const readIndexRefusals: ReadonlySet<unknown> = new Set([null, 'notLeader', 'busy']);

function isChunk(v: unknown): v is SnapshotChunk {
  return (
    isObj(v) &&
    isIndex(v['seq']) &&
    typeof v['last'] === 'boolean' &&
    // The records themselves are checked as the storage stages them (storage/staging.ts).
    v['records'] instanceof Uint8Array &&
    Array.isArray(v['dedup']) &&
    v['dedup'].every((d) => isObj(d) && typeof d['clientId'] === 'string' && isIndex(d['seq']) && isIndex(d['index']) && d['reply'] instanceof Uint8Array)
  );
}

/** Plain objects only, 1 … batchOpsMax of them, each passing `each`: a longer list is refused before it is walked. */
function isObjects(v: unknown, each: (o: Raw) => boolean): boolean {
  return Array.isArray(v) && v.length >= 1 && v.length <= batchOpsMax && v.every((o) => isObj(o) && !Array.isArray(o) && each(o));
}

const forwardOpKinds: ReadonlySet<unknown> = new Set(['put', 'delete', 'get']);

/**
 * The frame-level shape of a forwarded batch: its operations' fields are the batch rules'
 * (api/batch.ts parseBatch, run by the leader's handler before anything else).
 */
function decodeForward(m: Raw): ForwardMessage | string {
  if (!isIndex(m['id'])) return 'bad forward id';
  if (m['type'] === 'forwardBatch') {
    const token = m['token'];
    const tokenOk = token === null || (typeof token === 'string' && token.length <= forwardTokenCharsMax);
    return tokenOk && isIndex(m['timeoutMs']) && m['timeoutMs'] >= 1 && isObjects(m['ops'], (o) => forwardOpKinds.has(o['op']) && typeof o['key'] === 'string')
      ? (m as unknown as ForwardMessage)
      : 'bad forwarded batch';
  }
  return isObjects(m['results'], (r) => Number.isInteger(r['status']) && (r['status'] as number) >= 100 && (r['status'] as number) <= 599)
    ? (m as unknown as ForwardMessage)
    : 'bad forward reply';
}

/** Returns the message if it is well formed and addressed from `from`, else a reason string. */
export function decodePeerMessage(raw: unknown, from: NodeId): PeerMessage | string {
  if (!isObj(raw)) return 'not an object';
  const m = raw;
  if (m['from'] !== from) return `claims to be from ${String(m['from'])} on ${from}'s connection`;
  if (!isId(m['to'])) return 'bad to';
  if (m['type'] === 'forwardBatch' || m['type'] === 'forwardReply') return decodeForward(m);
  if (!isIndex(m['term'])) return 'bad term';
  switch (m['type']) {
    case 'preVote':
      return isIndex(m['lastIndex']) && isIndex(m['lastTerm']) ? (m as unknown as PeerMessage) : 'bad vote';
    case 'vote':
      return isIndex(m['lastIndex']) && isIndex(m['lastTerm']) && typeof m['transfer'] === 'boolean' ? (m as unknown as PeerMessage) : 'bad vote';
    case 'timeoutNow':
      return m as unknown as PeerMessage;
    case 'preVoteResp':
    case 'voteResp':
      return typeof m['granted'] === 'boolean' ? (m as unknown as PeerMessage) : 'bad vote response';
    case 'append':
      return isId(m['leader']) && isIndex(m['prevIndex']) && isIndex(m['prevTerm']) && isIndex(m['commit']) && isIndex(m['acked']) && (m['quiet'] === undefined || m['quiet'] === true) && Array.isArray(m['entries']) && m['entries'].every(isEntry)
        ? (m as unknown as PeerMessage)
        : 'bad append';
    case 'appendResp':
      return isIndex(m['matchIndex']) && typeof m['reject'] === 'boolean' && isIndex(m['rejectedIndex']) && isIndex(m['lastIndexHint']) && typeof m['needSnapshot'] === 'boolean'
        ? (m as unknown as PeerMessage)
        : 'bad append response';
    case 'heartbeat':
      return isIndex(m['commit']) && isIndex(m['acked']) && isIndex(m['readRound']) ? (m as unknown as PeerMessage) : 'bad heartbeat';
    case 'heartbeatResp':
      return isIndex(m['readRound']) ? (m as unknown as PeerMessage) : 'bad heartbeat response';
    case 'snapshot':
      return isMeta(m['meta']) && isIndex(m['commit']) ? (m as unknown as PeerMessage) : 'bad snapshot';
    case 'readIndex':
      return isRequestIds(m['requestIds']) ? (m as unknown as PeerMessage) : 'bad read-index request';
    case 'readIndexResp':
      return isRequestIds(m['requestIds']) && isIndex(m['index']) && readIndexRefusals.has(m['refusal']) ? (m as unknown as PeerMessage) : 'bad read-index response';
    case 'snapshotChunk':
      return isMeta(m['meta']) && isIndex(m['commit']) && isChunk(m['chunk']) ? (m as unknown as PeerMessage) : 'bad snapshot chunk';
    default:
      return `unknown message type ${String(m['type'])}`;
  }
}
