// The principal of a peer that presented a verified certificate: its SPIFFE URI SAN without the
// scheme, as Istio writes it (`cluster.local/ns/production/sa/order-service`).

import type { TLSSocket } from 'node:tls';
import { principalOf, spiffeUrisOf } from './spiffe.js';

export function peerPrincipal(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const uri = spiffeUrisOf(socket.getPeerX509Certificate()?.subjectAltName)[0];
  return uri === undefined ? undefined : principalOf(uri);
}
