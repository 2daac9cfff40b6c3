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

test('--read-index-timeout-ms is taken when at least one election timeout', () => {
  assert.equal(config([...base, '--read-index-timeout-ms', '1500'], {}).readIndexTimeoutMs, 1500);
  assert.equal(config([...base, '--election-timeout-ms', '400', '--read-index-timeout-ms', '400'], {}).readIndexTimeoutMs, 400);
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
