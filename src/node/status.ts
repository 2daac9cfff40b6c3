/**
 * A node's /status document from its core's status and what the driver knows around it
 * (addresses, links, applied state). Pure: the driver hands every input over.
 */

import { replicasOf } from '../core/membership.js';
import type { CoreStatus, NodeId } from '../core/types.js';
import type { LeaderInfo, NodeAddresses, StatusResponse } from '../wire/types.js';
import { membersView } from './membership.js';

export interface StatusInputs {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly pid: number;
  readonly leader: LeaderInfo | null;
  readonly appliedIndex: number;
  readonly keyCount: number;
  /** A peer's client addresses as its handshake announced them. */
  addresses(id: NodeId): NodeAddresses;
  /** Whether the transport holds a live link to `id`. */
  connected(id: NodeId): boolean;
  readonly self: NodeAddresses;
  readonly rollbackCount: number;
  readonly spaceAlarm: string | null;
  readonly uptimeMs: number;
}

export function statusView(s: CoreStatus, o: StatusInputs): StatusResponse {
  const isLeader = s.role === 'leader';
  const progress = new Map(s.progress.map((p) => [p.id, p]));
  const role = s.role === 'preCandidate' ? 'candidate' : s.role;
  return {
    id: o.id,
    clusterId: o.clusterId,
    pid: o.pid,
    role,
    term: s.term,
    leader: o.leader,
    commitIndex: s.commitIndex,
    ackedIndex: s.ackedIndex,
    appliedIndex: o.appliedIndex,
    lastIndex: s.lastIndex,
    firstIndex: s.firstIndex,
    keyCount: o.keyCount,
    mode: { writeQuorum: s.config.writeQuorum, topology: s.config.topology, sinceIndex: s.configIndex, inSync: [...(s.config.inSync ?? s.config.members)] },
    peers: replicasOf(s.config)
      .filter((m) => m !== o.id)
      .map((id) => {
        const p = progress.get(id);
        const connected = o.connected(id);
        return {
          id,
          ...o.addresses(id),
          matchIndex: isLeader ? (p?.match ?? 0) : null,
          lag: isLeader ? s.lastIndex - (p?.match ?? 0) : null,
          // The leader judges by answers, not by the link: a paused process (SIGSTOP) keeps
          // its TCP connection open, and the kernel acknowledges what is sent to it.
          reachable: isLeader ? connected && (p?.answeredRecently ?? false) : connected,
        };
      }),
    membership: membersView(s, o.addresses, o.self),
    rollbackCount: o.rollbackCount,
    ...(o.spaceAlarm !== null ? { spaceAlarm: o.spaceAlarm } : {}),
    uptimeMs: o.uptimeMs,
  };
}
