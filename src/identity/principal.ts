// A TLS peer's principal as Istio writes it: the URI SAN of its verified certificate without
// `spiffe://` (cluster.local/ns/production/sa/order-service). An unverified certificate has none.

import type { TLSSocket } from 'node:tls';

export function peerPrincipal(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerX509Certificate();
  const san = cert?.subjectAltName;
  if (san === undefined) return undefined;
  for (const entry of san.split(', ')) {
    if (entry.startsWith('URI:spiffe://')) return entry.slice('URI:spiffe://'.length);
  }
  return undefined;
}
