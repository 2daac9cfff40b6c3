/**
 * How a node reaches the other nodes' HTTPS APIs (forwarding to the leader, the dashboard's
 * poller): undici connectors that trust the cluster's CA and present this node's
 * certificate, as read from disk last. After a reload (SIGHUP) the next connection a pool
 * opens presents the new certificate; connections already open keep theirs, as on the
 * listeners, and the pools themselves live on.
 *
 * Must never: keep presenting a certificate after it was replaced on disk and reloaded
 * (a rotation done because the old one expires or leaked would otherwise not take effect
 * on forwarding until a restart).
 */

import type { ConnectionOptions } from 'node:tls';
import { buildConnector } from 'undici';

/**
 * Makes the connector of one pool or agent. undici applies its `connectTimeout` only to the
 * connector it builds itself, so a pool with its own connector passes its timeout here.
 */
export type OutboundTls = (connectTimeoutMs: number) => buildConnector.connector;

/**
 * Outbound TLS from `material()` (CA, certificate, key in force), made anew after every
 * call of the listener `subscribe` registers (the certificates were read again).
 */
export function reloadingOutboundTls(material: () => ConnectionOptions, subscribe: (onReload: () => void) => void): OutboundTls {
  let generation = 0;
  subscribe(() => void generation++);
  return (connectTimeoutMs) => {
    let built: { readonly generation: number; readonly connector: buildConnector.connector } | null = null;
    return (options, callback) => {
      if (built === null || built.generation !== generation) {
        // A new connector also starts a new TLS session cache: a resumed session would carry
        // the identity of the old certificate.
        built = { generation, connector: buildConnector({ ...(material() as buildConnector.BuildOptions), timeout: connectTimeoutMs }) };
      }
      built.connector(options, callback);
    };
  };
}

