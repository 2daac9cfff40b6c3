/**
 * TLS for the client's gRPC channel to one node: grpc-js' `createSsl` without its one flaw.
 * grpc-js always sends the target's host as the TLS server name (SNI), an IP address too,
 * which RFC 6066 forbids; Node then prints DEP0123 ("Setting the TLS ServerName to an IP
 * address is not permitted") on the application's stderr. None of grpc-js' knobs avoid it:
 * `grpc.ssl_target_name_override` replaces the name with another one (a made-up SNI, and
 * verification against that name unless checkServerIdentity is replaced as well), and
 * `checkServerIdentity` in the verify options does not touch the server name.
 *
 * So this credentials class does the TLS handshake itself, through the extension point
 * grpc-js exports for it (`ChannelCredentials._createSecureConnector` returning an
 * `experimental.SecureConnector`): a DNS name is sent as the server name, an IP address is
 * not; either way the certificate must chain to a trusted CA (the given one, else Node's)
 * and name the host: Node's checkServerIdentity matches an IP host against the
 * certificate's IP SANs, a name against its DNS SANs.
 *
 * Differences from createSsl: GRPC_SSL_CIPHER_SUITES and GRPC_DEFAULT_SSL_ROOTS_FILE_PATH
 * are not read (Node's ciphers and CA store apply, as for the HTTP transport).
 *
 * Must never: skip verification (rejectUnauthorized is always true), or hand grpc-js a
 * socket whose handshake did not authorize the peer.
 */

import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { splitHostPort } from '../stdx/host-port.js';

/** PEM material, as in ClientTls. */
export interface GrpcTlsMaterial {
  /** Trusted CA; absent: Node's CA store. */
  readonly ca?: Buffer | undefined;
  /** Client certificate and its key (mutual TLS), both or neither. */
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

export class GrpcTlsCredentials extends grpc.ChannelCredentials {
  private readonly context: tls.SecureContext;
  /** The name or address the certificate must carry; without brackets for IPv6. */
  private readonly host: string;

  /** `endpoint`: the node's `host:port` (IPv6 in brackets), as the transport normalised it. */
  constructor(endpoint: string, material: GrpcTlsMaterial) {
    super();
    if ((material.key === undefined) !== (material.cert === undefined)) throw new RangeError('A client certificate and its key go together');
    const hostPort = splitHostPort(endpoint);
    if (hostPort === null) throw new RangeError(`gRPC endpoint ${JSON.stringify(endpoint)} is not host:port`);
    this.host = hostPort.host;
    this.context = tls.createSecureContext({ ca: material.ca, cert: material.cert, key: material.key });
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  // grpc-js passes the channel target (its GrpcUri type is not exported); the host comes
  // from the endpoint this instance was made for.
  _createSecureConnector(_target: unknown, _options: grpc.ChannelOptions, callCredentials?: grpc.CallCredentials): grpc.experimental.SecureConnector {
    const perCall = callCredentials ?? grpc.credentials.createEmpty();
    const options: tls.ConnectionOptions = {
      secureContext: this.context,
      host: this.host,
      // Node verifies the certificate against `servername ?? host`: an IP is checked all the same.
      ...(net.isIP(this.host) === 0 ? { servername: this.host } : {}),
      ALPNProtocols: ['h2'],
      rejectUnauthorized: true,
      checkServerIdentity: tls.checkServerIdentity,
    };
    return {
      connect: (socket) =>
        new Promise((resolve, reject) => {
          const secured = tls.connect({ ...options, socket }, () => {
            if (!secured.authorized) {
              secured.destroy();
              reject(secured.authorizationError);
              return;
            }
            resolve({ socket: secured, secure: true });
          });
          secured.once('error', reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => perCall,
      destroy: () => undefined,
    };
  }
}
