/**
 * `quorumkv certs`: what the certificates hold (names, uses, the CA's signature) and how the
 * keys are kept; a second run reuses the CA and adds only the missing certificates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificates } from './certs.js';

test('certs: a CA, then node certificates naming the node and the hosts, signed by it, keys readable by the owner only', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-certs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const created = await createCertificates({ outDir: dir, nodes: ['n1', 'n2'], hosts: ['127.0.0.1', 'db.example'], days: 30 });
  assert.deepEqual(created.map((f) => path.basename(f)).sort(), ['ca-key.pem', 'ca.pem', 'client-key.pem', 'client.pem', 'n1-key.pem', 'n1.pem', 'n2-key.pem', 'n2.pem']);
  const ca = new X509Certificate(await readFile(path.join(dir, 'ca.pem')));
  assert.equal(ca.ca, true);
  const n1 = new X509Certificate(await readFile(path.join(dir, 'n1.pem')));
  assert.equal(n1.subject, 'CN=n1');
  assert.equal(n1.subjectAltName, 'DNS:n1, IP Address:127.0.0.1, DNS:db.example');
  assert.ok(n1.verify(ca.publicKey), 'signed by the CA');
  assert.ok(n1.checkIssued(ca));
  assert.equal(n1.ca, false);
  assert.deepEqual(n1.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'server and client auth');
  for (const key of ['ca-key.pem', 'n1-key.pem', 'client-key.pem']) assert.equal((await stat(path.join(dir, key))).mode & 0o777, 0o600, key);

  const again = await createCertificates({ outDir: dir, nodes: ['n1', 'n2', 'n3'], hosts: ['127.0.0.1'], days: 30 });
  assert.deepEqual(again.map((f) => path.basename(f)), ['n3.pem', 'n3-key.pem'], 'only the new node');
  const n3 = new X509Certificate(await readFile(path.join(dir, 'n3.pem')));
  assert.ok(n3.verify(ca.publicKey), 'by the same CA');
  assert.equal(new X509Certificate(await readFile(path.join(dir, 'n1.pem'))).serialNumber, n1.serialNumber, 'n1 kept');
});
