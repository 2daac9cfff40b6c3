/**
 * Encoding and validation of `ClusterConfig`, the payload of `config` entries. JSON via
 * TextEncoder keeps it readable in a log dump and deterministic (fixed key order).
 */

import { assert } from '../stdx/assert.js';
import type { ClusterConfig, WriteQuorum } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeConfig(config: ClusterConfig): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      members: config.members,
      writeQuorum: config.writeQuorum,
      topology: config.topology,
      ...(config.inSync !== undefined ? { inSync: config.inSync } : {}),
    }),
  );
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
