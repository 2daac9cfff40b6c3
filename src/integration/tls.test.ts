/**
 * TLS on real processes: `quorumkv up --tls` (certificates from `quorumkv certs`) serves
 * HTTPS and gRPC over TLS only, its peers speak mutual TLS and refuse a node whose
 * certificate comes from another CA, from no CA, or names another node; a certificate
 * rotated on disk is served after SIGHUP on the next connection, with no failed request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { freePort, stopChild } from '../bench/child.js';
import { AuthError, connect } from '../client/index.js';
import { mainPath, runCli, startUp, stopUp, waitFor } from './harness.js';

interface UpNode {
  readonly id: string;
  readonly http: string;
  readonly grpc: string;
  readonly peer: string;
  readonly pid: number;
}

/**
 * The serial number of the certificate the server at `address` (a URL or host:port)
 * presents on a new connection; `options` adds what that port asks for (a client
 * certificate on the peer port, ALPN h2 on gRPC's).
 */
function servedSerial(address: string, ca: Buffer, options: tls.ConnectionOptions = {}): Promise<string> {
  const { hostname, port } = new URL(address.includes('://') ? address : `tcp://${address}`);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ca, servername: 'localhost', ...options }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

test('up --tls: HTTPS and gRPC with the CA, no plain HTTP, peers refused without the cluster CA, certificates rotated by SIGHUP', { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-tls-'));
  const up = startUp(dir, ['--tls', '--faults']);
  const strangers: ChildProcess[] = [];
  t.after(async () => {
    await Promise.all(strangers.map((c) => stopChild(c, 'SIGKILL')));
    await stopUp(up.proc);
    if (process.env['QKV_KEEP_TEST_DIR'] === undefined) await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  });
  await waitFor('up --tls to print the cluster', 60_000, () => (/is up/.test(up.output()) ? true : null));
  const { clusterId, nodes } = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { clusterId: string; nodes: UpNode[] };
  const ca = await readFile(path.join(dir, 'tls', 'ca.pem'));
  assert.ok(nodes.every((n) => n.http.startsWith('https://127.0.0.1:')), 'cluster.json lists https:// URLs');

  // The TS client over HTTPS and over gRPC with the CA.
  const https = await connect({ endpoints: nodes.map((n) => n.http), tls: { ca }, deadlineMs: 10_000 });
  const grpc = await connect({ endpoints: nodes.map((n) => n.grpc), transport: 'grpc', tls: { ca }, deadlineMs: 10_000 });
  t.after(async () => {
    await https.close();
    await grpc.close();
  });
  const put = await https.put('secure/a', 'over https');
  assert.equal((await grpc.get('secure/a'))?.value, 'over https');
  assert.ok((await grpc.put('secure/b', 'over grpc+tls')).version > put.version);
  // A follower forwards to the leader over HTTPS too.
  const trusting = new Agent({ connect: { ca } });
  t.after(() => trusting.close());
  for (const n of nodes) {
    const res = await request(`${n.http}/kv/secure%2Fc`, { method: 'PUT', body: JSON.stringify({ value: n.id }), headers: { 'content-type': 'application/json' }, dispatcher: trusting });
    assert.equal(res.statusCode, 200, `${n.id}: ${await res.body.text()}`);
  }
  // Plain HTTP to the same port is refused, and so is a client that does not trust the CA.
  await assert.rejects(request(`${nodes[0]?.http.replace('https://', 'http://')}/kv/secure%2Fa`, { headersTimeout: 3_000, bodyTimeout: 3_000 }), 'plain HTTP gets no answer');
  await assert.rejects(request(`${nodes[0]?.http}/health`), /certificate/i, 'an unknown CA is not trusted');

  // The CLI finds the CA beside the cluster file.
  const clusterFile = ['--cluster-file', path.join(dir, 'cluster.json')];
  const get = await runCli(['get', 'secure/a', ...clusterFile], 20_000);
  assert.equal(get.stdout.trim(), 'over https', get.stderr);
  const grpcGet = await runCli(['get', 'secure/b', '--transport', 'grpc', ...clusterFile], 20_000);
  assert.equal(grpcGet.stdout.trim(), 'over grpc+tls', grpcGet.stderr);
  assert.equal((await runCli(['mode', '--write-quorum', 'majority', ...clusterFile], 20_000)).code, 0, 'admin commands over HTTPS');
  const heal = await runCli(['fault', 'heal', ...clusterFile], 20_000);
  assert.equal(heal.code, 0, `quorumkv fault over HTTPS: ${heal.stderr}`);
  const check = await runCli(['check', ...clusterFile], 60_000);
  assert.equal(check.code, 0, `quorumkv check over HTTPS (its store dumps need the admin token beside the cluster file): ${check.stdout}${check.stderr}`);
  // Hand-given endpoints with --ca (no cluster file to take the CA from), over HTTPS and gRPC.
  const handGiven = ['--cluster-file', path.join(dir, 'no-such-dir', 'cluster.json'), '--ca', path.join(dir, 'tls', 'ca.pem')];
  const n3 = nodes[nodes.length - 1] as UpNode; // one node given by hand (the client finds the leader from it)
  const cliPut = await runCli(['put', 'secure/cli', 'by hand', '--endpoints', n3.http, ...handGiven], 20_000);
  assert.equal(cliPut.code, 0, cliPut.stderr);
  const cliGet = await runCli(['get', 'secure/cli', '--endpoints', n3.http, ...handGiven], 20_000);
  assert.equal(cliGet.stdout.trim(), 'by hand', cliGet.stderr);
  const cliGrpc = await runCli(['get', 'secure/cli', '--transport', 'grpc', '--endpoints', n3.grpc, ...handGiven], 20_000);
  assert.equal(cliGrpc.stdout.trim(), 'by hand', cliGrpc.stderr);
  assert.doesNotMatch(cliGrpc.stderr, /DEP0123/, 'no warning about the IP address as TLS server name');
  const untrusted = await runCli(['get', 'secure/cli', '--endpoints', n3.http, '--cluster-file', path.join(dir, 'no-such-dir', 'cluster.json'), '--deadline-ms', '2000'], 20_000);
  assert.notEqual(untrusted.code, 0, 'without the CA the CLI does not trust the node');
  assert.match(untrusted.stderr, /certificate/i);

  // All of it at once: auth on over TLS. Tokens travel encrypted, and are checked as in the clear.
  const cli = async (...args: string[]): Promise<string> => {
    const r = await runCli([...args, ...clusterFile], 20_000);
    assert.equal(r.code, 0, `quorumkv ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await cli('user', 'add', 'root', '--role', 'admin');
  await cli('role', 'add', 'reader');
  await cli('role', 'grant', 'reader', 'secure/', '--read');
  const readerToken = (await cli('user', 'add', 'ro', '--role', 'reader')).trim().split('\n').at(-1) as string;
  await cli('auth', 'enable');
  const reader = await connect({ endpoints: nodes.map((n) => n.grpc), transport: 'grpc', tls: { ca }, token: readerToken, deadlineMs: 10_000 });
  t.after(() => reader.close());
  assert.equal((await reader.get('secure/a'))?.value, 'over https', 'a reader reads over gRPC+TLS');
  await assert.rejects(reader.put('secure/x', 'no'), (e: unknown) => e instanceof AuthError && e.code === 'permission_denied', 'and may not write');
  await assert.rejects(https.get('secure/a'), (e: unknown) => e instanceof AuthError && e.code === 'unauthenticated', 'no token: 401 over HTTPS');
  const asReader = await runCli(['get', 'secure/a', '--token', readerToken, ...clusterFile], 20_000);
  assert.equal(asReader.stdout.trim(), 'over https', asReader.stderr);
  const wrongToken = await runCli(['mode', '--write-quorum', 'all', '--token', readerToken, ...clusterFile], 20_000);
  assert.match(wrongToken.stderr, /permission_denied/, 'a reader may not switch the mode');
  await cli('auth', 'disable');

  // Strangers on the peer port: a certificate of another CA, none at all, and the cluster's own
  // client certificate claiming to be node n4. None may join, vote or disturb the leader.
  const leaderOf = async (): Promise<{ id: string; term: number } | undefined> => {
    for (const e of (await https.status()).nodes) if (e.ok && e.status.role === 'leader') return { id: e.status.id, term: e.status.term };
    return undefined;
  };
  const leaderBefore = await leaderOf();
  assert.ok(leaderBefore !== undefined, 'a leader');
  const other = path.join(dir, 'other-ca');
  assert.equal((await runCli(['certs', '--out', other, '--nodes', 'n4'], 30_000)).code, 0);
  const stranger = async (name: string, tlsFlags: string[]): Promise<void> => {
    const peerPort = await freePort();
    const peers = `${nodes.map((n) => `${n.id}=${n.peer}`).join(',')},n4=127.0.0.1:${peerPort}`;
    const child = spawn(process.execPath, [mainPath, 'node', '--id', 'n4', '--cluster-id', clusterId, '--peers', peers, '--data-dir', path.join(dir, `stranger-${name}`), '--listen-http', `127.0.0.1:${await freePort()}`, '--listen-peer', `127.0.0.1:${peerPort}`, '--listen-grpc', 'off', '--identity-check-ms', '0', '--log-level', 'warn', ...tlsFlags], { stdio: 'ignore' });
    strangers.push(child);
  };
  const logOf = async (id: string): Promise<string> => readFile(path.join(dir, `${id}.log`), 'utf8');
  const refusals = async (): Promise<number> => (await Promise.all(nodes.map((n) => logOf(n.id)))).reduce((sum, l) => sum + (l.match(/refused by TLS/g)?.length ?? 0), 0);
  await stranger('other-ca', ['--peer-tls-cert', path.join(other, 'n4.pem'), '--peer-tls-key', path.join(other, 'n4-key.pem'), '--peer-tls-ca', path.join(other, 'ca.pem')]);
  await waitFor('a node to log the refusal of the other CA', 30_000, async () => ((await refusals()) > 0 ? true : null));
  await Promise.all(strangers.splice(0).map((c) => stopChild(c, 'SIGKILL')));
  const beforeNoTls = await refusals();
  await stranger('no-tls', []);
  await waitFor('a node to log the refusal of a peer without TLS', 30_000, async () => ((await refusals()) > beforeNoTls ? true : null));
  await Promise.all(strangers.splice(0).map((c) => stopChild(c, 'SIGKILL')));
  const tlsDir = path.join(dir, 'tls');
  await stranger('wrong-name', ['--peer-tls-cert', path.join(tlsDir, 'client.pem'), '--peer-tls-key', path.join(tlsDir, 'client-key.pem'), '--peer-tls-ca', path.join(tlsDir, 'ca.pem')]);
  await waitFor('a node to refuse a certificate naming another node', 30_000, async () => ((await Promise.all(nodes.map((n) => logOf(n.id)))).some((l) => /certificate names client, not n4/.test(l)) ? true : null));
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const leaderAfter = await leaderOf();
  assert.equal(leaderAfter?.id, leaderBefore.id, 'the same leader');
  assert.equal(leaderAfter?.term, leaderBefore.term, 'in the same term: no stranger started an election that reached it');
  assert.deepEqual((await https.members.list()).members.map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
  await Promise.all(strangers.splice(0).map((c) => stopChild(c, 'SIGKILL')));

  // Rotation: a new certificate for n1 (same CA) on disk, SIGHUP, under steady writes.
  const n1 = nodes.find((n) => n.id === 'n1') as UpNode;
  const asPeer = { cert: await readFile(path.join(tlsDir, 'client.pem')), key: await readFile(path.join(tlsDir, 'client-key.pem')) };
  const served = async (): Promise<string[]> => [await servedSerial(n1.http, ca), await servedSerial(n1.grpc, ca, { ALPNProtocols: ['h2'] }), await servedSerial(n1.peer, ca, asPeer)];
  const oldSerial = await servedSerial(n1.http, ca);
  assert.deepEqual(await served(), [oldSerial, oldSerial, oldSerial], 'n1 serves one certificate on HTTPS, gRPC and the peer port');
  const fresh = path.join(dir, 'rotated');
  await mkdir(fresh);
  // Same CA: its files are copied in first, so certs signs the new one with it.
  await copyFile(path.join(tlsDir, 'ca.pem'), path.join(fresh, 'ca.pem'));
  await copyFile(path.join(tlsDir, 'ca-key.pem'), path.join(fresh, 'ca-key.pem'));
  assert.equal((await runCli(['certs', '--out', fresh, '--nodes', 'n1'], 30_000)).code, 0);
  let failures = 0;
  let writes = 0;
  let loading = true;
  const load = (async () => {
    while (loading) {
      try {
        await https.put(`rotation/${writes % 50}`, String(writes));
        writes++;
      } catch {
        failures++;
      }
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 500));
  // First a broken file: logged, and the certificate in force stays.
  const goodCert = await readFile(path.join(tlsDir, 'n1.pem'));
  await writeFile(path.join(tlsDir, 'n1.pem'), '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
  process.kill(n1.pid, 'SIGHUP');
  await waitFor('n1 to refuse the broken certificate', 10_000, async () => (/certificates not reloaded; the previous ones stay in force/.test(await logOf('n1')) ? true : null));
  assert.deepEqual(await served(), [oldSerial, oldSerial, oldSerial], 'the old certificate still served everywhere');
  await writeFile(path.join(tlsDir, 'n1.pem'), goodCert);
  // Then the real rotation.
  await copyFile(path.join(fresh, 'n1-key.pem'), path.join(tlsDir, 'n1-key.pem'));
  await copyFile(path.join(fresh, 'n1.pem'), path.join(tlsDir, 'n1.pem'));
  process.kill(n1.pid, 'SIGHUP');
  const newSerial = await waitFor('n1 to serve the new certificate', 10_000, async () => {
    const serial = await servedSerial(n1.http, ca);
    return serial !== oldSerial ? serial : null;
  });
  assert.notEqual(newSerial, oldSerial);
  assert.deepEqual(await served(), [newSerial, newSerial, newSerial], 'the new certificate on HTTPS, gRPC and the peer port');
  await new Promise((resolve) => setTimeout(resolve, 500));
  loading = false;
  await load;
  assert.equal(failures, 0, `no failed request during the rotation (${writes} writes)`);
  assert.ok(writes > 10, `writes went on (${writes})`);
  assert.match(await logOf('n1'), /certificates reloaded \(SIGHUP\)/);
});

test('up --tls --tls-client-ca: clients without a certificate of the cluster CA are refused over HTTPS and gRPC; the client, the CLI and forwarding present one', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-mtls-'));
  // up makes DIR/tls before it starts the nodes, so the path can be named up front.
  let up = startUp(dir, ['--tls', '--tls-client-ca', path.join(dir, 'tls', 'ca.pem')]);
  t.after(async () => {
    await stopUp(up.proc); // the one running last (the test restarts it)
    if (process.env['QKV_KEEP_TEST_DIR'] === undefined) await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  });
  await waitFor('up --tls --tls-client-ca to print the cluster', 60_000, () => (/is up/.test(up.output()) ? true : null));
  const { nodes } = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: UpNode[] };
  const tlsDir = path.join(dir, 'tls');
  const ca = await readFile(path.join(tlsDir, 'ca.pem'));
  const identity = { cert: await readFile(path.join(tlsDir, 'client.pem')), key: await readFile(path.join(tlsDir, 'client-key.pem')) };

  // With the client certificate: HTTPS through every node (followers forward to the leader,
  // presenting their own certificate), and gRPC.
  const https = await connect({ endpoints: nodes.map((n) => n.http), tls: { ca, ...identity }, deadlineMs: 10_000 });
  const grpc = await connect({ endpoints: nodes.map((n) => n.grpc), transport: 'grpc', tls: { ca, ...identity }, deadlineMs: 10_000 });
  t.after(async () => {
    await https.close();
    await grpc.close();
  });
  await https.put('mtls/a', 'with a certificate');
  assert.equal((await grpc.get('mtls/a'))?.value, 'with a certificate');
  const withCertificate = new Agent({ connect: { ca, ...identity } });
  const caOnly = new Agent({ connect: { ca } });
  t.after(async () => {
    await withCertificate.close();
    await caOnly.close();
  });
  for (const n of nodes) {
    const res = await request(`${n.http}/kv/mtls%2Fforwarded`, { method: 'PUT', body: JSON.stringify({ value: n.id }), headers: { 'content-type': 'application/json' }, dispatcher: withCertificate });
    assert.equal(res.statusCode, 200, `${n.id}: ${await res.body.text()}`);
  }

  // Without one: the TLS handshake fails, on HTTPS and on gRPC.
  await assert.rejects(request(`${nodes[0]?.http}/health`, { dispatcher: caOnly, headersTimeout: 3_000, bodyTimeout: 3_000 }), 'HTTPS without a client certificate');
  await assert.rejects(
    (async () => {
      // connect() may already fail (no endpoint answers); if not, the first call does.
      const anonymous = await connect({ endpoints: nodes.map((n) => n.grpc), transport: 'grpc', tls: { ca }, deadlineMs: 2_000, connectTimeoutMs: 2_000 });
      try {
        await anonymous.get('mtls/a');
      } finally {
        await anonymous.close();
      }
    })(),
    'gRPC without a client certificate',
  );

  // The CLI presents tls/client.pem beside the cluster file by itself, or the one it is given.
  const clusterFile = ['--cluster-file', path.join(dir, 'cluster.json')];
  const get = await runCli(['get', 'mtls/a', ...clusterFile], 20_000);
  assert.equal(get.stdout.trim(), 'with a certificate', get.stderr);
  const grpcGet = await runCli(['get', 'mtls/a', '--transport', 'grpc', ...clusterFile], 20_000);
  assert.equal(grpcGet.stdout.trim(), 'with a certificate', grpcGet.stderr);
  const elsewhere = ['--endpoints', nodes[0]?.http as string, '--cluster-file', path.join(dir, 'no-such-dir', 'cluster.json'), '--ca', path.join(tlsDir, 'ca.pem')];
  const refused = await runCli(['get', 'mtls/a', ...elsewhere, '--deadline-ms', '2000'], 20_000);
  assert.notEqual(refused.code, 0, 'no client certificate at hand: refused');
  const given = await runCli(['get', 'mtls/a', ...elsewhere, '--client-cert', path.join(tlsDir, 'client.pem'), '--client-key', path.join(tlsDir, 'client-key.pem')], 20_000);
  assert.equal(given.stdout.trim(), 'with a certificate', given.stderr);
  const half = await runCli(['get', 'mtls/a', ...elsewhere, '--client-cert', path.join(tlsDir, 'client.pem')], 20_000);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--client-cert and --client-key go together/);

  // Restarted without --tls, the cluster resumes as it ran: TLS, its certificates, its data.
  await https.close();
  await grpc.close();
  assert.equal(await stopUp(up.proc), 0);
  up = startUp(dir, ['--tls-client-ca', path.join(tlsDir, 'ca.pem')]);
  await waitFor('up to resume the TLS cluster', 60_000, () => (/is up/.test(up.output()) ? true : null));
  assert.match(up.output(), /resuming with TLS/);
  const resumed = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: UpNode[] };
  assert.ok(resumed.nodes.every((n) => n.http.startsWith('https://')), 'cluster.json lists https:// again');
  const afterRestart = await runCli(['get', 'mtls/a', ...clusterFile], 20_000);
  assert.equal(afterRestart.stdout.trim(), 'with a certificate', afterRestart.stderr);
});
