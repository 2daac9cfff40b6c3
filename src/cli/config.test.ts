/**
 * Node configuration: defaults, flags over environment variables, and a clear error for a
 * value that is out of range or inconsistent with another.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from './command.js';
import { ConfigError, parseNodeConfig } from './config.js';
import type { NodeConfig } from './config.js';

function config(argv: readonly string[], env: Record<string, string>): NodeConfig {
  const c = parseNodeConfig(argv, env);
  assert.ok(c !== null, 'no help was asked for');
  return c;
}

const base = ['--id', 'n1', '--data-dir', '/tmp/qkv-config-test', '--peers', 'n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103'];

test('defaults: majority, star, persists pipelined 4 deep', () => {
  const c = config(base, {});
  assert.equal(c.writeQuorum, 'majority');
  assert.equal(c.topology, 'star');
  assert.equal(c.persistsInFlightMax, 4);
  assert.equal(c.pendingWritesMax, 20_000);
  assert.equal(c.readIndexTimeoutMs, null, 'unset: the driver waits two election timeouts');
});

test('--read-lease: on by default, off on request, anything else refused', () => {
  assert.equal(config(base, {}).readLease, true);
  assert.equal(config([...base, '--read-lease', 'off'], {}).readLease, false);
  assert.equal(config(base, { QKV_READ_LEASE: 'off' }).readLease, false);
  assert.throws(() => config([...base, '--read-lease', 'maybe'], {}), /--read-lease \(or QKV_READ_LEASE\) must be one of on, off, got "maybe"/);
});

test('--read-index-timeout-ms is taken when at least one election timeout', () => {
  assert.equal(config([...base, '--read-index-timeout-ms', '1500'], {}).readIndexTimeoutMs, 1500);
  assert.equal(config([...base, '--election-timeout-ms', '400', '--read-index-timeout-ms', '400'], {}).readIndexTimeoutMs, 400);
});

test('history retention: by versions always, by age only when --history-retention-ms is given, never shorter than a tick', () => {
  const c = config(base, {});
  assert.equal(c.historyRetentionVersions, 100_000);
  assert.equal(c.historyRetentionMs, 0, 'no time limit unless asked');
  assert.equal(config([...base, '--history-retention-ms', '3600000'], {}).historyRetentionMs, 3_600_000);
  assert.equal(config(base, { QKV_HISTORY_RETENTION_MS: '60000' }).historyRetentionMs, 60_000);
  const refused = (argv: string[], pattern: RegExp) => assert.throws(() => config([...base, ...argv], {}), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
  refused(['--history-retention-ms', '-1'], /--history-retention-ms .*>= 0.*"-1"/);
  refused(['--history-retention-ms', '1h'], /--history-retention-ms .*"1h"/);
  refused(['--history-retention-ms', '10'], /--history-retention-ms 10 is shorter than a tick \(50 ms\)/);
});

test('a flag wins over its environment variable, which wins over the default', () => {
  assert.equal(config(base, { QKV_PERSISTS_IN_FLIGHT_MAX: '2' }).persistsInFlightMax, 2);
  assert.equal(config([...base, '--persists-in-flight-max', '1'], { QKV_PERSISTS_IN_FLIGHT_MAX: '2' }).persistsInFlightMax, 1);
});

test('out-of-range and inconsistent values are refused with the flag named', () => {
  const refused = (argv: string[], pattern: RegExp) =>
    assert.throws(() => config([...base, ...argv], {}), (e: unknown) => (e instanceof ConfigError || e instanceof UsageError) && pattern.test(e.message));
  refused(['--persists-in-flight-max', '0'], /--persists-in-flight-max .* integer >= 1/);
  refused(['--persists-in-flight-max', '65'], /--persists-in-flight-max 65 exceeds 64/);
  refused(['--persists-in-flight-max', 'four'], /--persists-in-flight-max/);
  refused(['--min-delay-ms', '10', '--max-delay-ms', '5'], /--min-delay-ms 10 exceeds --max-delay-ms 5/);
  refused(['--write-quorum', '3'], /write-quorum/);
  refused(['--key-bytes-max', '4000'], /exceeds what LMDB can store/);
  refused(['--read-index-timeout-ms', '999'], /--read-index-timeout-ms 999 is shorter than the election timeout \(1000 ms\)/);
  refused(['--read-index-timeout-ms', '0'], /--read-index-timeout-ms/);
  refused(['--requests-per-client-max', '100'], /--requests-per-client-max 100 is below what a follower forwards to the leader at once \(128\)/);
  refused(['--grpc-streams-per-connection-max', '0'], /--grpc-streams-per-connection-max .* integer >= 1/);
});

test('per-client limits: 1,024 requests in flight per client address and 1,000 gRPC streams per connection unless told', () => {
  const c = config(base, {});
  assert.equal(c.requestsPerClientMax, 1024);
  assert.equal(c.grpcStreamsPerConnectionMax, 1000);
  const set = config([...base, '--requests-per-client-max', '128', '--grpc-streams-per-connection-max', '10'], {});
  assert.equal(set.requestsPerClientMax, 128);
  assert.equal(set.grpcStreamsPerConnectionMax, 10);
});

test('unknown flags, prefixes of flags and missing values are refused, naming the flag', () => {
  const refused = (argv: string[], pattern: RegExp) =>
    assert.throws(() => config([...base, ...argv], {}), (e: unknown) => e instanceof UsageError && pattern.test(e.message));
  refused(['--topologyX', 'chain'], /unknown option '--topologyX'/);
  refused(['--topo', 'chain'], /unknown option '--topo'/);
  refused(['--tick-ms'], /--tick-ms <value>' argument missing/);
  refused(['stray'], /too many arguments/);
});

test('advertised addresses are checked and normalised; absent, the bound ones are used', () => {
  const c = config([...base, '--advertise-http', 'http://n1:7001/', '--advertise-grpc', 'n1:7201'], {});
  assert.equal(c.advertiseHttp, 'http://n1:7001');
  assert.equal(c.advertiseGrpc, 'n1:7201');
  assert.equal(config(base, { QKV_ADVERTISE_HTTP: 'http://10.0.0.5:7001' }).advertiseHttp, 'http://10.0.0.5:7001');
  assert.equal(config(base, {}).advertiseHttp, null);
  assert.throws(() => config([...base, '--advertise-http', 'n1:7001'], {}), /--advertise-http must be/);
  assert.throws(() => config([...base, '--advertise-http', 'http://n1:7001/x'], {}), /--advertise-http must be/);
  assert.throws(() => config([...base, '--advertise-grpc', 'n1'], {}), /--advertise-grpc must be host:port/);
});

test('TLS flags come in their sets, and an HTTPS node may not advertise http://', () => {
  const tls = ['--tls-cert', '/c/n1.pem', '--tls-key', '/c/n1-key.pem'];
  const peer = ['--peer-tls-cert', '/c/n1.pem', '--peer-tls-key', '/c/n1-key.pem', '--peer-tls-ca', '/c/ca.pem'];
  const c = config([...base, ...tls, '--tls-client-ca', '/c/ca.pem', ...peer], {});
  assert.deepEqual(c.tls, { certFile: '/c/n1.pem', keyFile: '/c/n1-key.pem', clientCaFile: '/c/ca.pem' });
  assert.deepEqual(c.peerTls, { certFile: '/c/n1.pem', keyFile: '/c/n1-key.pem', caFile: '/c/ca.pem' });
  assert.deepEqual(config(base, { QKV_TLS_CERT: '/e/c.pem', QKV_TLS_KEY: '/e/k.pem' }).tls, { certFile: '/e/c.pem', keyFile: '/e/k.pem', clientCaFile: null });
  assert.equal(config(base, {}).tls, null);
  assert.equal(config(base, {}).peerTls, null);
  assert.throws(() => config([...base, '--tls-cert', '/c/n1.pem'], {}), /--tls-cert and --tls-key go together/);
  assert.throws(() => config([...base, '--tls-client-ca', '/c/ca.pem'], {}), /--tls-client-ca needs --tls-cert and --tls-key/);
  for (const partial of [peer.slice(0, 2), peer.slice(0, 4), peer.slice(2)]) {
    assert.throws(() => config([...base, ...partial], {}), /--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together \(all three or none\)/, partial.join(' '));
  }
  assert.throws(() => config([...base, ...tls, '--advertise-http', 'http://n1:7001'], {}), /says http:\/\/ but --tls-cert makes the port HTTPS/);
  assert.equal(config([...base, ...tls, '--advertise-http', 'https://n1:7001'], {}).advertiseHttp, 'https://n1:7001');
  assert.equal(config([...base, '--advertise-http', 'https://n1:7001'], {}).advertiseHttp, 'https://n1:7001', 'a TLS-terminating proxy in front');
});
