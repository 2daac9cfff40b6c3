/**
 * Encoding and validation of `ClusterConfig`, the payload of `config` entries. JSON via
 * TextEncoder keeps it readable in a log dump and deterministic (fixed key order).
 */

import { assert } from '../stdx/assert.js';
import type { ClusterConfig, MemberInfo, NodeId, WriteQuorum } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeConfig(config: ClusterConfig): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      members: config.members,
      writeQuorum: config.writeQuorum,
      topology: config.topology,
      ...(config.inSync !== undefined ? { inSync: config.inSync } : {}),
      ...(config.learners !== undefined && config.learners.length > 0 ? { learners: config.learners } : {}),
      ...(config.directory !== undefined ? { directory: sortedDirectory(config.directory) } : {}),
    }),
  );
}

/** Members in id order, each with fixed field order: one configuration, one encoding. */
function sortedDirectory(directory: Readonly<Record<NodeId, MemberInfo>>): Record<NodeId, MemberInfo> {
  const out: Record<NodeId, MemberInfo> = {};
  for (const id of Object.keys(directory).sort()) {
    const m = directory[id] as MemberInfo;
    out[id] = { memberId: m.memberId, peer: m.peer, ...(m.http !== undefined ? { http: m.http } : {}), ...(m.grpc !== undefined ? { grpc: m.grpc } : {}) };
  }
  return out;
}

export function decodeConfig(data: Uint8Array): ClusterConfig {
  const raw: unknown = JSON.parse(decoder.decode(data));
  const problem = configProblem(raw);
  assert(problem === null, () => `corrupt config entry: ${problem ?? ''}`);
  return raw as ClusterConfig;
}

/** Null when `raw` is a valid ClusterConfig, else what is wrong with it. */
export function configProblem(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return 'config must be an object';
  const c = raw as Record<string, unknown>;
  const members = c['members'];
  if (!Array.isArray(members) || members.length === 0) return 'members must be a non-empty array';
  if (!members.every((m) => typeof m === 'string' && m.length > 0)) return 'members must be non-empty strings';
  if (new Set(members).size !== members.length) return `members must be distinct: ${members.join(',')}`;
  if (!isWriteQuorum(c['writeQuorum'], members.length)) {
    return `writeQuorum must be 'majority', 'all' or 0..${members.length - 1}, got ${String(c['writeQuorum'])}`;
  }
  if (c['topology'] !== 'star' && c['topology'] !== 'chain') return `topology must be star or chain`;
  const inSync = c['inSync'];
  if (inSync !== undefined) {
    if (!Array.isArray(inSync) || !inSync.every((m) => typeof m === 'string' && members.includes(m))) return 'inSync must list members';
    if (new Set(inSync).size !== inSync.length) return 'inSync must be distinct';
  }
  const learners = c['learners'];
  if (learners !== undefined) {
    if (!Array.isArray(learners) || !learners.every((m) => typeof m === 'string' && m.length > 0)) return 'learners must be non-empty strings';
    if (new Set(learners).size !== learners.length || learners.some((m: string) => members.includes(m))) return 'learners must be distinct and not voters';
  }
  return directoryProblem(c['directory'], [...members, ...((learners as string[] | undefined) ?? [])]);
}

function directoryProblem(directory: unknown, replicas: readonly string[]): string | null {
  if (directory === undefined) return null;
  if (typeof directory !== 'object' || directory === null || Array.isArray(directory)) return 'directory must be an object';
  for (const [id, info] of Object.entries(directory as Record<string, unknown>)) {
    if (!replicas.includes(id)) return `directory names ${id}, which is not a member`;
    if (typeof info !== 'object' || info === null) return `directory entry of ${id} must be an object`;
    const m = info as Record<string, unknown>;
    if (typeof m['memberId'] !== 'string' || typeof m['peer'] !== 'string') return `directory entry of ${id} needs memberId and peer strings`;
    if ((m['http'] !== undefined && typeof m['http'] !== 'string') || (m['grpc'] !== undefined && typeof m['grpc'] !== 'string')) return `directory entry of ${id}: http and grpc must be strings`;
  }
  return null;
}

export function isWriteQuorum(value: unknown, memberCount: number): value is WriteQuorum {
  if (value === 'majority' || value === 'all') return true;
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= memberCount - 1;
}

/** Chain order with the leader as head: leader, then the in-sync set in its order. */
export function chainOrder(config: ClusterConfig, leader: string): string[] {
  return [leader, ...inSyncOf(config).filter((m) => m !== leader)];
}

/** The replica set `all` and `chain` wait for (every member unless narrowed). */
export function inSyncOf(config: ClusterConfig): readonly string[] {
  return config.inSync ?? config.members;
}

/** True when writes are acknowledged before a majority holds them (losses possible). */
export function isWeakQuorum(config: ClusterConfig): boolean {
  const w = config.writeQuorum;
  return typeof w === 'number' && w + 1 < Math.floor(config.members.length / 2) + 1;
}
