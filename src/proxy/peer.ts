// Who is at the other end of a client connection, when mutual TLS verified it: the principal for
// authorization and the access log, and the X-Forwarded-Client-Cert value the upstream gets.

export interface PeerIdentity {
  /** The verified SPIFFE ID without `spiffe://` (`cluster.local/ns/production/sa/order-service`). */
  readonly principal: string | undefined;
  /** The X-Forwarded-Client-Cert value to send upstream, or '' when it is not sent. */
  readonly xfcc: string;
}

/** The client-sent header the proxy always removes: only the proxy that verified a certificate may say what it was. */
export const CLIENT_CERT_HEADER = 'x-forwarded-client-cert';
