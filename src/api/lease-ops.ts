/**
 * What both APIs need to run a lease call: the revoke's permission check (it deletes keys)
 * and, for the gRPC calls, the HTTP request each one stands for when a follower forwards it
 * to the leader (routes/leases.ts serves those).
 */

import type { LeaseRevoke } from '../node/types.js';
import { QkvError } from '../wire/errors.js';
import { leaseKeysMax } from '../wire/types.js';
import type { RequestId } from '../kv/types.js';
import type { AccessControl, Principal } from './access.js';
import { LazyForwardSpec } from './forward.js';
import type { ForwardSpec, LocalExec } from './forward.js';
import { leaseRevokeExec } from './ops.js';
import type { LeaseWrite, SpecSource } from './ops.js';

/**
 * A revoke deletes the lease's keys, so a user needs write permission on every one of them
 * (as etcd checks); checked on the leader, where the revoke runs, against its keys then.
 */
export function revokeChecked(access: AccessControl, who: Principal | null): LocalExec<LeaseWrite, LeaseRevoke> {
  if (who === null || who.kind === 'admin') return leaseRevokeExec;
  return {
    run: async (node, w, timeoutMs) => {
      const info = await node.leaseInfo(w.value, leaseKeysMax + 1, { timeoutMs });
      if (info !== undefined) {
        if (info.keys.length > leaseKeysMax) throw new QkvError('permission_denied', `lease ${w.value} holds more than ${leaseKeysMax} keys: only an admin may revoke it`);
        for (const key of info.keys) access.permit(who, key, 'write');
      }
      return leaseRevokeExec.run(node, w, timeoutMs);
    },
  };
}

/** The lease routes' requests, as a follower forwards a gRPC lease call to the leader. */
export const leaseSpecs = {
  grant: (ttlMs: number, requestId: RequestId | null, deadlineMs: number, from: SpecSource): ForwardSpec =>
    new LazyForwardSpec({ method: 'POST', url: '/leases', requestId, isWrite: true, servedByFollower: false, deadlineMs, makeBody: () => JSON.stringify({ ttlMs }), ...from }),
  keepAlive: (id: number, deadlineMs: number, from: SpecSource): ForwardSpec =>
    new LazyForwardSpec({ method: 'POST', url: `/leases/${id}/keepalive`, requestId: null, isWrite: true, servedByFollower: false, deadlineMs, makeBody: null, ...from }),
  info: (id: number, keysMax: number, deadlineMs: number, from: SpecSource): ForwardSpec =>
    new LazyForwardSpec({ method: 'GET', url: `/leases/${id}?keys=${keysMax}`, requestId: null, isWrite: false, servedByFollower: false, deadlineMs, makeBody: null, ...from }),
  revoke: (id: number, requestId: RequestId | null, deadlineMs: number, from: SpecSource): ForwardSpec =>
    new LazyForwardSpec({ method: 'DELETE', url: `/leases/${id}`, requestId, isWrite: true, servedByFollower: false, deadlineMs, makeBody: null, ...from }),
};
