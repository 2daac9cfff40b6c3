/**
 * What the HTTPS and gRPC servers need of their certificates: the material in force and
 * word when it is replaced (a reload on SIGHUP). The node hands in its reloadable files
 * (transport/tls-files.ts fits this shape); the servers never read files themselves.
 */

export interface ServerTlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The CA client certificates must come from, when they are asked for. */
  readonly ca?: Buffer;
}

export interface ServerTls {
  readonly material: {
    material(): ServerTlsMaterial;
    onChange(listener: (material: ServerTlsMaterial) => void): void;
  };
  /** Clients must present a certificate signed by the material's CA. */
  readonly requireClientCert: boolean;
}
