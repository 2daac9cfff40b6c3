/**
 * `host:port` as flags, configurations and peer handshakes write it: one parser for all of
 * them. A host may be a name, an IPv4 address or an IPv6 address in brackets.
 */

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `text` split into host (brackets removed) and port 0..65535, or null when it is not host:port. */
export function splitHostPort(text: string): HostPort | null {
  const i = text.lastIndexOf(':');
  const host = i > 0 ? text.slice(0, i).replace(/^\[|\]$/g, '') : '';
  const port = Number(text.slice(i + 1));
  if (i <= 0 || host === '' || !Number.isInteger(port) || port < 0 || port > 65535) return null;
  return { host, port };
}

/** `hp` written back as host:port (an IPv6 host in brackets). */
export function formatHostPort(hp: HostPort): string {
  return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
}
