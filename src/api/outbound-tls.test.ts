/**
 * Outbound TLS (forwarding to the leader): a pool built once presents the certificate read
 * last on its next connection, so a rotation by SIGHUP reaches forwarding too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Pool } from 'undici';
import { createCertificates } from '../cli/certs.js';
import { ReloadableTls } from '../transport/tls-files.js';
import { reloadingOutboundTls } from './outbound-tls.js';

test('a pool presents the reloaded client certificate on its next connection, and the old one until then', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-outbound-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await createCertificates({ outDir: dir, nodes: ['n1', 'n2'], hosts: ['127.0.0.1'], days: 1 });
  const read = (name: string): Promise<Buffer> => readFile(path.join(dir, name));

  // The leader's side: HTTPS asking for a client certificate, answering with its serial.
  const server = https.createServer({ cert: await read('n2.pem'), key: await read('n2-key.pem'), ca: await read('ca.pem'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    res.end((req.socket as TLSSocket).getPeerCertificate().serialNumber);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;

  const material = await ReloadableTls.load({ certFile: path.join(dir, 'n1.pem'), keyFile: path.join(dir, 'n1-key.pem'), caFile: path.join(dir, 'ca.pem') });
  const outbound = reloadingOutboundTls(() => material.material(), (onReload) => material.onChange(onReload));
  const pool = new Pool(`https://127.0.0.1:${port}`, { connections: 1, connect: outbound(2_000) });
  t.after(() => pool.close());
  const presented = async (): Promise<string> => {
    const res = await pool.request({ path: '/', method: 'GET', headers: { connection: 'close' } });
    return res.body.text();
  };
  const serialOf = async (file: string): Promise<string> => new X509Certificate(await read(file)).serialNumber;

  const before = await serialOf('n1.pem');
  const after = await serialOf('n2.pem');
  assert.notEqual(before, after);
  assert.equal(await presented(), before, 'the certificate in force at start');
  // Rotate: another certificate of the same CA (n2's) takes n1's place on disk.
  await copyFile(path.join(dir, 'n2.pem'), path.join(dir, 'n1.pem'));
  await copyFile(path.join(dir, 'n2-key.pem'), path.join(dir, 'n1-key.pem'));
  assert.equal(await presented(), before, 'the files alone change nothing: certificates are read on reload');
  await material.reload();
  assert.equal(await presented(), after, 'the reloaded certificate on the next connection, through the same pool');
});
