/**
 * The client's gRPC over TLS to a node addressed by IP: no DEP0123 warning (grpc-js' own
 * credentials print one, shown as the control), and verification as strict as ever: the
 * certificate must name the IP (or the DNS name) dialled and chain to the trusted CA.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { createCertificates } from '../cli/certs.js';
import { FakeKvNode } from '../api/fake-node.js';
import { startGrpcServer } from '../api/grpc.js';
import { kvValidator } from '../kv/limits.js';
import { connect } from './index.js';

const execFileAsync = promisify(execFile);

interface Pki {
  readonly ca: Buffer;
  /** Names n1, 127.0.0.1, ::1 and localhost. */
  readonly node: { readonly cert: Buffer; readonly key: Buffer };
  /** Signed by the same CA, naming only "client". */
  readonly other: { readonly cert: Buffer; readonly key: Buffer };
}

async function pki(t: TestContext): Promise<Pki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-grpc-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await createCertificates({ outDir: dir, nodes: ['n1'], hosts: ['127.0.0.1', '::1', 'localhost'], days: 1 });
  const read = (name: string): Promise<Buffer> => readFile(path.join(dir, name));
  return { ca: await read('ca.pem'), node: { cert: await read('n1.pem'), key: await read('n1-key.pem') }, other: { cert: await read('client.pem'), key: await read('client-key.pem') } };
}

/** A TLS gRPC server of a fake node on `host`, serving `identity`; its port. */
async function serve(t: TestContext, host: string, identity: { readonly cert: Buffer; readonly key: Buffer }): Promise<number> {
  const node = new FakeKvNode({ id: 'n1' });
  const server = await startGrpcServer({
    node,
    listen: { host, port: 0 },
    limits: { messageBytesMax: 4096, listLimitMax: 50, requestTimeoutMs: 2_000, leaderWaitMs: 200 },
    validate: kvValidator({ keyBytesMax: 64, valueBytesMax: 1024 }),
    registry: new Registry(),
    tls: { material: { material: () => identity, onChange: () => undefined }, requireClientCert: false },
  });
  t.after(() => server.close());
  return Number(/:(\d+)$/.exec(server.address)?.[1]);
}

/** Puts and reads back one key through the client over `endpoint`. */
async function roundTrip(t: TestContext, endpoint: string, ca: Buffer): Promise<string | undefined> {
  const kv = await connect({ endpoints: [endpoint], transport: 'grpc', tls: { ca }, deadlineMs: 3_000 });
  t.after(() => kv.close());
  await kv.put('k', 'over tls');
  const got = await kv.get('k');
  return typeof got?.value === 'string' ? got.value : undefined;
}

/** Deprecation codes Node emits while `run` runs (and the ticks right after). */
async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
  const codes: string[] = [];
  const listener = (warning: Error & { code?: string }): void => void codes.push(warning.code ?? warning.name);
  process.on('warning', listener);
  try {
    await run();
    await new Promise((resolve) => setTimeout(resolve, 20)); // warnings are emitted on a later tick
  } finally {
    process.off('warning', listener);
  }
  return codes;
}

test('gRPC over TLS to 127.0.0.1, [::1] and localhost works with no DEP0123 warning; grpc-js createSsl prints one', async (t) => {
  const { ca, node } = await pki(t);
  const v4 = await serve(t, '127.0.0.1', node);
  const v6 = await serve(t, '::1', node);
  const ours = await warningsDuring(async () => {
    assert.equal(await roundTrip(t, `127.0.0.1:${v4}`, ca), 'over tls');
    assert.equal(await roundTrip(t, `[::1]:${v6}`, ca), 'over tls');
    assert.equal(await roundTrip(t, `localhost:${v4}`, ca), 'over tls', 'a DNS name is verified (and sent as the server name) too');
  });
  assert.deepEqual(ours.filter((code) => code === 'DEP0123'), []);

  // The control, in a child process whose stderr is read (Node prints the warning once per
  // process): grpc-js' own credentials to the same server print it.
  const script = `const grpc = require(${JSON.stringify(createRequire(import.meta.url).resolve('@grpc/grpc-js'))});
    const client = new grpc.Client(process.env.TARGET, grpc.credentials.createSsl(Buffer.from(process.env.CA)));
    client.waitForReady(Date.now() + 3000, (error) => { client.close(); process.exitCode = error ? 1 : 0; });`;
  const control = await execFileAsync(process.execPath, ['-e', script], { env: { ...process.env, TARGET: `127.0.0.1:${v4}`, CA: ca.toString() }, timeout: 10_000 });
  assert.match(control.stderr, /DEP0123/, 'grpc-js createSsl to an IP warns');
});

test('gRPC over TLS refuses a certificate that does not name the IP dialled, and one from another CA', async (t) => {
  const { ca, other } = await pki(t);
  const wrongName = await serve(t, '127.0.0.1', other);
  await assert.rejects(connect({ endpoints: [`127.0.0.1:${wrongName}`], transport: 'grpc', tls: { ca }, deadlineMs: 1_000 }), /ERR_TLS_CERT_ALTNAME_INVALID.*IP: 127\.0\.0\.1 is not in the cert's list/);

  // Another CA (of the same name: its signature is what fails), whose node certificate names 127.0.0.1.
  const stranger = await pki(t);
  const wrongCa = await serve(t, '127.0.0.1', stranger.node);
  await assert.rejects(connect({ endpoints: [`127.0.0.1:${wrongCa}`], transport: 'grpc', tls: { ca }, deadlineMs: 1_000 }), /certificate signature failure|unable to verify the first certificate/);
});
