/**
 * The client's one check of membership answers: both transports hand their answer over as
 * the HTTP API's JSON shape (the gRPC messages are first mapped onto it, proto3's empty
 * strings and absent optionals becoming nulls), and `membersOf` / `changeOf` check every
 * field the client passes on. A malformed answer is a ProtocolError, never a guess.
 */

import type {
  ClusterConfigView as ConfigMessage,
  MemberStatus as MemberMessage,
  MembersResponse as MembersMessage,
  MembershipChangeResponse as ChangeMessage,
} from '../wire/gen/quorumkv.js';
import type { ClusterConfigView, MemberStatus, MembersResponse, MembershipChangeResponse } from '../wire/types.js';
import { ProtocolError, decodedIndex } from './transport.js';

export function membersOf(json: Record<string, unknown>): MembersResponse {
  const members = json['members'];
  if (!Array.isArray(members)) throw new ProtocolError('members answer has no "members" list');
  return { configIndex: decodedIndex(json['configIndex'], 'configIndex'), members: members.map(memberOf) };
}

export function changeOf(json: Record<string, unknown>): MembershipChangeResponse {
  const clusterId = json['clusterId'];
  if (typeof clusterId !== 'string') throw new ProtocolError('membership answer has no "clusterId"');
  return { ...membersOf(json), clusterId, config: configOf(json['config']) };
}

function memberOf(value: unknown): MemberStatus {
  if (typeof value !== 'object' || value === null) throw new ProtocolError('a member is not a JSON object');
  const m = value as Record<string, unknown>;
  const id = m['id'];
  const role = m['role'];
  if (typeof id !== 'string') throw new ProtocolError('a member has no id');
  if (role !== 'voter' && role !== 'learner') throw new ProtocolError(`member ${id} has role ${JSON.stringify(role)}, not voter or learner`);
  return {
    id,
    role,
    memberId: textOrNull(m['memberId'], `member ${id} memberId`),
    peer: textOrNull(m['peer'], `member ${id} peer`),
    http: textOrNull(m['http'], `member ${id} http`),
    grpc: textOrNull(m['grpc'], `member ${id} grpc`),
    isLeader: m['isLeader'] === true,
    matchIndex: m['matchIndex'] === null || m['matchIndex'] === undefined ? null : decodedIndex(m['matchIndex'], `member ${id} matchIndex`),
    lag: m['lag'] === null || m['lag'] === undefined ? null : decodedIndex(m['lag'], `member ${id} lag`),
  };
}

function configOf(value: unknown): ClusterConfigView {
  if (typeof value !== 'object' || value === null) throw new ProtocolError('membership answer has no "config" object');
  const c = value as Record<string, unknown>;
  const writeQuorum = c['writeQuorum'];
  const topology = c['topology'];
  if (topology !== 'star' && topology !== 'chain') throw new ProtocolError(`config topology ${JSON.stringify(topology)} is unknown`);
  const learners = c['learners'];
  const inSync = c['inSync'];
  const directory = c['directory'];
  return {
    members: ids(c['members'], 'config members'),
    ...(learners === undefined ? {} : { learners: ids(learners, 'config learners') }),
    writeQuorum: writeQuorum === 'majority' || writeQuorum === 'all' ? writeQuorum : decodedIndex(writeQuorum, 'config writeQuorum'),
    topology,
    ...(inSync === undefined ? {} : { inSync: ids(inSync, 'config inSync') }),
    ...(directory === undefined ? {} : { directory: directoryOf(directory) }),
  };
}

function directoryOf(value: unknown): NonNullable<ClusterConfigView['directory']> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError('config directory is not an object');
  for (const [id, info] of Object.entries(value as Record<string, unknown>)) {
    const entry = info as Record<string, unknown> | null;
    if (typeof entry !== 'object' || entry === null || typeof entry['memberId'] !== 'string' || typeof entry['peer'] !== 'string') {
      throw new ProtocolError(`config directory entry of ${id} lacks memberId or peer`);
    }
  }
  return value as NonNullable<ClusterConfigView['directory']>;
}

function ids(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new ProtocolError(`${what} is not a list of ids`);
  return value as string[];
}

function textOrNull(value: unknown, what: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new ProtocolError(`${what} is not a string`);
  return value;
}

// --- gRPC messages in the JSON shape ---

/** proto3 strings are "" when unset. */
function orNull(text: string): string | null {
  return text === '' ? null : text;
}

function memberJson(m: MemberMessage): Record<string, unknown> {
  return {
    id: m.id,
    role: m.role,
    memberId: orNull(m.memberId),
    peer: orNull(m.peer),
    http: orNull(m.http),
    grpc: orNull(m.grpc),
    isLeader: m.isLeader,
    matchIndex: m.matchIndex ?? null,
    lag: m.lag ?? null,
  };
}

export function membersJson(m: MembersMessage): Record<string, unknown> {
  return { configIndex: m.configIndex, members: m.members.map(memberJson) };
}

function configJson(c: ConfigMessage | undefined): Record<string, unknown> | undefined {
  if (c === undefined) return undefined;
  const directory: Record<string, { memberId: string; peer: string; http?: string; grpc?: string }> = {};
  for (const [id, info] of Object.entries(c.directory)) {
    directory[id] = { memberId: info.memberId, peer: info.peer, ...(info.http === '' ? {} : { http: info.http }), ...(info.grpc === '' ? {} : { grpc: info.grpc }) };
  }
  return {
    members: c.members,
    ...(c.learners.length === 0 ? {} : { learners: c.learners }),
    // "majority", "all" or a count as decimal text, which configOf reads like JSON's number.
    writeQuorum: c.writeQuorum,
    topology: c.topology,
    ...(c.inSync.length === 0 ? {} : { inSync: c.inSync }),
    ...(Object.keys(directory).length === 0 ? {} : { directory }),
  };
}

export function changeJson(m: ChangeMessage): Record<string, unknown> {
  return { ...membersJson(m), clusterId: m.clusterId, config: configJson(m.config) };
}
