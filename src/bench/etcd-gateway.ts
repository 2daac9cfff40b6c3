/**
 * etcd as a user without a client library sees it: its gRPC gateway, plain HTTP/JSON that
 * etcd 3.4 serves on its client port (`POST /v3/kv/put`, `/v3/kv/range`, `/v3/kv/txn`,
 * keys and values base64), one request per operation over keep-alive connections (the same
 * undici pools and requests that plain-target.ts drives quorumkv with), to the member(s)
 * `--to` chooses. The counterpart of `--plain` on the etcd side of `--compare etcd`.
 *
 * Reads are range requests without `serializable`: linearizable, as the etcd3 client's
 * and quorumkv's defaults.
 *
 * Must never: retry (a refusal is counted, as a user would see it).
 */

import { etcdMembers } from './etcd.js';
import { toText } from './node-choice.js';
import type { To } from './node-choice.js';
import { plainRequest, refusalOf, roundRobinPools } from './plain-target.js';
import type { BenchTarget } from './target.js';

export interface EtcdGatewayOptions {
  readonly endpoints: readonly string[];
  /** null: every member in turn. */
  readonly to: To | null;
  /** Keep-alive connections per member: at least the run's concurrency. */
  readonly connectionsPerEndpoint: number;
  readonly deadlineMs: number;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export async function etcdGatewayTarget(options: EtcdGatewayOptions): Promise<BenchTarget> {
  const members = await etcdMembers(options.endpoints, options.to, options.deadlineMs);
  const pools = roundRobinPools(members, options.connectionsPerEndpoint, options.deadlineMs);
  const call = async (path: string, body: string): Promise<unknown> => {
    const answer = await plainRequest(pools.next(), 'POST', path, body);
    if (answer.statusCode === 200) return JSON.parse(answer.text) as unknown;
    throw refusalOf(`POST ${path}`, answer, (json) => json['message'] ?? json['error']);
  };
  // Every write of a run carries the same value: encode it once, not per operation.
  let lastValue = '';
  let lastValueB64 = '';
  const valueB64 = (value: string): string => {
    if (value !== lastValue) {
      lastValue = value;
      lastValueB64 = b64(value);
    }
    return lastValueB64;
  };
  const target: BenchTarget = {
    system: 'etcd',
    path: `plain HTTP/JSON gateway (one request per operation) to ${toText(options.to ?? 'any')}: ${members.join(' ')}`,
    put: (key, value) => call('/v3/kv/put', `{"key":"${b64(key)}","value":"${valueB64(value)}"}`),
    get: async (key) => {
      const answer = (await call('/v3/kv/range', `{"key":"${b64(key)}"}`)) as { kvs?: unknown[] };
      return answer.kvs?.[0];
    },
    txn: (a, b, value) => {
      const ka = b64(a);
      const v = valueB64(value);
      return call(
        '/v3/kv/txn',
        `{"compare":[{"key":"${ka}","target":"VERSION","result":"GREATER","version":"0"}],` +
          `"success":[{"request_put":{"key":"${ka}","value":"${v}"}},{"request_put":{"key":"${b64(b)}","value":"${v}"}}],` +
          `"failure":[{"request_range":{"key":"${ka}"}}]}`,
      );
    },
    close: () => pools.close(),
  };
  // One round trip proves the gateway answers before the clock starts.
  await target.put('__qkv_bench_probe', '1');
  return target;
}
