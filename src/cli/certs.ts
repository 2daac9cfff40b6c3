/**
 * `quorumkv certs`: a development CA and certificates for a TLS cluster in one command:
 * OUT/ca.pem (+ ca-key.pem), OUT/<id>.pem (+ <id>-key.pem) per node, and OUT/client.pem
 * (+ client-key.pem) for clients that must present one. Each node certificate names its node
 * id (CN and a DNS name, which peer mutual TLS checks) and the given hosts (DNS names or IP
 * addresses), and serves both as a server's and a client's. Keys are ECDSA P-256, written
 * with mode 0600. A second run reuses the CA and adds only what is missing (a new node).
 *
 * Made with @peculiar/x509 on Node's WebCrypto: no hand-written ASN.1, no openssl binary.
 * For development and tests; production clusters use their own CA.
 */

import { randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from './command.js';
import type { CommandSpec } from './command.js';
import { ConfigError } from './config.js';
import { exists } from './files.js';

export const certsCommand: CommandSpec = {
  name: 'certs',
  summary: 'create a development CA and per-node TLS certificates (quorumkv up --tls does it for you)',
  flags: {
    out: { kind: 'value', help: 'directory for the PEM files', default: './data/tls' },
    nodes: { kind: 'value', help: 'node ids, comma-separated: one certificate each', default: 'n1,n2,n3' },
    hosts: { kind: 'value', help: 'host names and IP addresses every node certificate is valid for, comma-separated', default: '127.0.0.1,localhost' },
    days: { kind: 'value', help: 'validity of new certificates', default: '825' },
  },
  epilog: 'Existing files are kept: a second run adds the certificates that are missing, signed by the same CA.',
};

export interface CertsRequest {
  readonly outDir: string;
  readonly nodes: readonly string[];
  readonly hosts: readonly string[];
  readonly days: number;
}

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** Writes what is missing under `outDir`; resolves with the files it created. */
export async function createCertificates(request: CertsRequest): Promise<string[]> {
  // Loaded on demand: only this command and `up --tls` pay for the X.509 library.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto);
  await mkdir(request.outDir, { recursive: true, mode: 0o700 });
  const file = (name: string): string => path.join(request.outDir, name);
  const created: string[] = [];
  const notAfter = new Date(Date.now() + request.days * 86_400_000);
  const serial = (): string => randomBytes(16).toString('hex').replace(/^[89a-f]/, '1');

  let ca: { cert: InstanceType<typeof x509.X509Certificate>; key: webcrypto.CryptoKey };
  if (await exists(file('ca.pem'))) {
    const key = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(await readFile(file('ca-key.pem'), 'utf8')), algorithm, false, ['sign']);
    ca = { cert: new x509.X509Certificate(await readFile(file('ca.pem'), 'utf8')), key };
  } else {
    const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: 'CN=quorumkv development CA',
      notBefore: new Date(Date.now() - 60_000),
      notAfter,
      keys,
      signingAlgorithm: algorithm,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    await writeFile(file('ca-key.pem'), x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), { mode: 0o600 });
    await writeFile(file('ca.pem'), cert.toString('pem'));
    created.push(file('ca.pem'), file('ca-key.pem'));
    ca = { cert, key: keys.privateKey };
  }

  const issue = async (name: string, dnsAndIps: readonly string[]): Promise<void> => {
    if (await exists(file(`${name}.pem`))) return;
    const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
    const names = [...new Set(dnsAndIps)].map((n) => (isIP(n) !== 0 ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${name}`,
      issuer: ca.cert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter,
      signingKey: ca.key,
      publicKey: keys.publicKey,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(names),
      ],
    });
    await writeFile(file(`${name}-key.pem`), x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), { mode: 0o600 });
    await writeFile(file(`${name}.pem`), cert.toString('pem'));
    created.push(file(`${name}.pem`), file(`${name}-key.pem`));
  };
  for (const id of request.nodes) await issue(id, [id, ...request.hosts]);
  await issue('client', ['client']);
  return created;
}

const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export async function runCertsCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(certsCommand, argv);
  if (parsed === null) return 0;
  const v = parsed.values;
  const list = (name: string): string[] => (v.get(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const nodes = list('nodes');
  for (const id of nodes) if (!namePattern.test(id) || id === 'client' || id === 'ca') throw new ConfigError(`--nodes: "${id}" cannot name a certificate file`);
  const days = Number(v.get('days'));
  if (!Number.isSafeInteger(days) || days < 1 || days > 3650) throw new ConfigError(`--days must be 1..3650, got ${v.get('days') ?? ''}`);
  const outDir = v.get('out') ?? './data/tls';
  const created = await createCertificates({ outDir, nodes, hosts: list('hosts'), days });
  process.stdout.write(created.length === 0 ? `nothing to do: every certificate exists in ${outDir}\n` : `created in ${outDir}:\n${created.map((f) => `  ${path.basename(f)}`).join('\n')}\n`);
  return 0;
}
