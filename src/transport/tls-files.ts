/**
 * A certificate, its key and optionally a CA bundle, read from files and read again on
 * demand (SIGHUP), so a node rotates certificates without a restart. A reload that fails
 * (a file missing, a key that does not match its certificate) keeps the material in force:
 * a half-written rotation never takes a listener down. Listeners (the HTTPS server, the gRPC
 * server, the peer transport) learn of each new material; connections already open keep
 * the one they were made with.
 */

import { readFile } from 'node:fs/promises';
import tls from 'node:tls';

export interface TlsFileNames {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundle: the CA that signs the other end's certificates, when they are checked. */
  readonly caFile?: string;
}

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

export class ReloadableTls {
  private listeners: ((material: TlsMaterial) => void)[] = [];

  private constructor(
    readonly files: TlsFileNames,
    private current: Loaded,
  ) {}

  /** Reads the files once; throws (naming the file) when they cannot serve. */
  static async load(files: TlsFileNames): Promise<ReloadableTls> {
    return new ReloadableTls(files, await readMaterial(files));
  }

  material(): TlsMaterial {
    return this.current.material;
  }

  /** The secure context of the material in force (for dialling), made once per load, not per connection. */
  secureContext(): tls.SecureContext {
    return this.current.context;
  }

  onChange(listener: (material: TlsMaterial) => void): void {
    this.listeners.push(listener);
  }

  /** Reads the files again; the new material goes to every listener. Throws, keeping the old, when they are not usable. */
  async reload(): Promise<void> {
    const next = await readMaterial(this.files);
    this.current = next;
    for (const listener of this.listeners) listener(next.material);
  }
}

/** Material as read, with the secure context that proved it usable. */
interface Loaded {
  readonly material: TlsMaterial;
  readonly context: tls.SecureContext;
}

async function readMaterial(files: TlsFileNames): Promise<Loaded> {
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (error) {
      throw new Error(`${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
    }
  };
  const [cert, key, ca] = await Promise.all([read(files.certFile, 'certificate'), read(files.keyFile, 'key'), files.caFile === undefined ? undefined : read(files.caFile, 'CA')]);
  const material: TlsMaterial = ca === undefined ? { cert, key } : { cert, key, ca };
  try {
    // Throws when the key does not match the certificate or either is not PEM.
    return { material, context: tls.createSecureContext(material) };
  } catch (error) {
    throw new Error(`${files.certFile} / ${files.keyFile}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** The names a certificate holds: its subject CN and its DNS subject alternative names. */
export function certificateNames(cert: tls.PeerCertificate | tls.DetailedPeerCertificate | undefined): string[] {
  if (cert === undefined || cert === null) return [];
  const names: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') names.push(cn);
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const match = /^\s*DNS:(.+)$/.exec(part);
    if (match !== null) names.push((match[1] as string).trim());
  }
  return [...new Set(names)];
}
