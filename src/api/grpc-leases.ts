/**
 * The lease calls of the gRPC API: HTTP's lease routes (routes/leases.ts) on the generated
 * messages, with the same checks, permissions and forwarding (a follower forwards each call
 * to the leader as the HTTP request it stands for), and etcd's keep-alive stream.
 */

import type * as grpc from '@grpc/grpc-js';
import { QkvError } from '../wire/errors.js';
import { leaseKeysMax, leaseTtlMsMax } from '../wire/types.js';
import type {
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseInfoRequest,
  LeaseInfoResponse,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
} from '../wire/gen/quorumkv.js';
import type { Checked, GrpcKv } from './grpc-kv.js';
import { checkDecoded, send } from './grpc-kv.js';
import { revokeChecked, leaseSpecs } from './lease-ops.js';
import { leaseGrantExec, leaseInfoExec, leaseKeepAliveExec } from './ops.js';
import { requestIdOf } from './request-id.js';

type Call<Req, Res> = grpc.ServerUnaryCall<Checked<Req>, Res>;
export type KeepAliveStream = grpc.ServerDuplexStream<Checked<LeaseKeepAliveRequest>, LeaseKeepAliveResponse>;

/** Keys GetLease lists when the request says 0 (as HTTP's default). */
const leaseInfoKeysDefault = 100;
const requestIdNames = { clientId: 'client_id', seq: 'seq' } as const;

export class GrpcLeases {
  /** Enders of the open keep-alive streams, for close(). */
  private readonly streams = new Set<() => void>();

  constructor(private readonly kv: GrpcKv) {}

  /** Ends every keep-alive stream with shutting_down (the server is closing). */
  close(): void {
    for (const end of [...this.streams]) end();
  }

  async grant(request: Checked<LeaseGrantRequest>, call: Call<LeaseGrantRequest, LeaseGrantResponse>): Promise<LeaseGrantResponse> {
    this.kv.access.permitLeases(this.kv.who(call));
    if (!Number.isSafeInteger(request.ttlMs) || request.ttlMs < 1 || request.ttlMs > leaseTtlMsMax) throw new QkvError('bad_request', `ttl_ms must be an integer from 1 to ${leaseTtlMsMax}, got ${request.ttlMs}`);
    const requestId = requestIdOf(request.clientId || undefined, request.seq || undefined, requestIdNames);
    const deadlineMs = this.kv.deadlineMs(call);
    const outcome = await this.kv.router.run(leaseGrantExec, { value: request.ttlMs, requestId }, leaseSpecs.grant(request.ttlMs, requestId, deadlineMs, this.kv.source(call)));
    if (outcome.via === 'local') return outcome.value;
    const body = this.kv.fromLeader(call, outcome.response);
    return { id: indexField(body, 'id'), ttlMs: indexField(body, 'ttlMs'), version: indexField(body, 'version') };
  }

  async keepAlive(request: Checked<LeaseKeepAliveRequest>, call: Call<LeaseKeepAliveRequest, LeaseKeepAliveResponse> | KeepAliveStream): Promise<LeaseKeepAliveResponse> {
    this.kv.access.permitLeases(this.kv.who(call));
    const id = leaseId(request.id);
    const deadlineMs = this.kv.deadlineMs(call);
    const outcome = await this.kv.router.run(leaseKeepAliveExec, id, leaseSpecs.keepAlive(id, deadlineMs, this.kv.source(call)));
    if (outcome.via === 'local') return outcome.value;
    const body = this.kv.fromLeader(call, outcome.response);
    return { id: indexField(body, 'id'), ttlMs: indexField(body, 'ttlMs') };
  }

  async info(request: Checked<LeaseInfoRequest>, call: Call<LeaseInfoRequest, LeaseInfoResponse>): Promise<LeaseInfoResponse> {
    this.kv.access.permitLeases(this.kv.who(call));
    const id = leaseId(request.id);
    const keysMax = Math.min(request.keysMax === 0 ? leaseInfoKeysDefault : request.keysMax, leaseKeysMax);
    const deadlineMs = this.kv.deadlineMs(call);
    const outcome = await this.kv.router.run(leaseInfoExec, { id, keysMax }, leaseSpecs.info(id, keysMax, deadlineMs, this.kv.source(call)));
    if (outcome.via === 'local') {
      if (outcome.value === undefined) throw new QkvError('lease_not_found', `Lease ${id} does not exist (never granted, revoked or expired)`, { lease: id });
      return { ...outcome.value, keys: [...outcome.value.keys] };
    }
    const body = this.kv.fromLeader(call, outcome.response);
    const keys = Array.isArray(body['keys']) ? body['keys'].filter((k): k is string => typeof k === 'string') : [];
    return { id: indexField(body, 'id'), ttlMs: indexField(body, 'ttlMs'), remainingMs: indexField(body, 'remainingMs'), keys };
  }

  async revoke(request: Checked<LeaseRevokeRequest>, call: Call<LeaseRevokeRequest, LeaseRevokeResponse>): Promise<LeaseRevokeResponse> {
    const who = this.kv.who(call);
    this.kv.access.permitLeases(who);
    const id = leaseId(request.id);
    const requestId = requestIdOf(request.clientId || undefined, request.seq || undefined, requestIdNames);
    const deadlineMs = this.kv.deadlineMs(call);
    const outcome = await this.kv.router.run(revokeChecked(this.kv.access, who), { value: id, requestId }, leaseSpecs.revoke(id, requestId, deadlineMs, this.kv.source(call)));
    if (outcome.via === 'local') return outcome.value;
    const body = this.kv.fromLeader(call, outcome.response);
    return { id: indexField(body, 'id'), found: body['found'] === true, keysDeleted: indexField(body, 'keysDeleted'), version: indexField(body, 'version') };
  }

  /**
   * etcd's keep-alive stream: requests answered one at a time, in order (so a stream holds
   * at most one keep-alive in flight); a lease that ended is answered with ttl_ms 0; any
   * other refusal ends the stream with its status.
   */
  async keepAliveStream(call: KeepAliveStream, toServiceError: (error: unknown) => Partial<grpc.StatusObject>): Promise<void> {
    const end = (): void => {
      if (!call.cancelled) call.emit('error', toServiceError(new QkvError('shutting_down', 'This node is stopping; keep the lease alive through another node', {}, 1_000)));
    };
    this.streams.add(end);
    try {
      this.kv.refuseIfClosing();
      // Not `for await (… of call)`: that destroys the stream once the reader half-closes,
      // and the status below would never be sent.
      for await (const request of call.iterator({ destroyOnReturn: false }) as AsyncIterable<Checked<LeaseKeepAliveRequest>>) {
        checkDecoded(request);
        let answer: LeaseKeepAliveResponse;
        try {
          answer = await this.keepAlive(request, call);
        } catch (error) {
          if (!(error instanceof QkvError && error.code === 'lease_not_found')) throw error;
          answer = { id: request.id, ttlMs: 0 };
        }
        if (call.cancelled) return;
        await send(call, answer);
      }
      call.end();
    } catch (error) {
      if (!call.cancelled) call.emit('error', toServiceError(error));
    } finally {
      this.streams.delete(end);
    }
  }
}

function leaseId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1) throw new QkvError('bad_request', `id must be a lease id (an integer >= 1), got ${id}`);
  return id;
}

function indexField(body: Record<string, unknown>, name: string): number {
  const value = body[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new QkvError('internal', `The leader's answer has no index field ${name}`);
  return value;
}
