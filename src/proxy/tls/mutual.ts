// Mutual TLS on an inbound listener, with Istio's PeerAuthentication semantics: STRICT takes only
// TLS with a client certificate chained to the workload's trust bundle; PERMISSIVE also takes
// plaintext on the same port, told apart by the first byte (a TLS handshake record is 0x16, no
// HTTP request starts with it). The server certificate is the workload's own, swapped in for new
// handshakes when it is renewed; open connections keep theirs. Loaded only for such listeners.

import { createHash, type X509Certificate } from 'node:crypto';
import type net from 'node:net';
import { createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import {
  type IdentityHub,
  type IdentityMaterial,
  peerPrincipal,
  spiffeUrisOf,
} from '../../identity/index.js';
import { CounterFamily, family, type Registry, type Series } from '../../metrics/index.js';
import type { PeerIdentity } from '../peer.js';
import { tlsParameters } from './profiles.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE';

/**
 * Why a connection was refused, the `reason` label of pillion_mtls_handshakes_total{result="refused"}:
 * no certificate, one not chained to the trust bundle, expired or not yet valid, one without the
 * clientAuth key usage, plaintext on a STRICT port, a handshake that failed otherwise, a
 * PERMISSIVE connection that sent nothing, or another verification error.
 */
export const MTLS_REFUSALS = [
  'no_certificate',
  'unknown_ca',
  'expired',
  'not_yet_valid',
  'wrong_key_usage',
  'plaintext',
  'handshake',
  'silent',
  'other',
] as const;
export type MtlsRefusal = (typeof MTLS_REFUSALS)[number];

const BY_VERIFY_ERROR: Record<string, MtlsRefusal> = {
  UNABLE_TO_GET_ISSUER_CERT: 'unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown_ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown_ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown_ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown_ca',
  CERT_SIGNATURE_FAILURE: 'unknown_ca',
  CERT_UNTRUSTED: 'unknown_ca',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not_yet_valid',
  INVALID_PURPOSE: 'wrong_key_usage',
};

const TEXT: Record<MtlsRefusal, string> = {
  no_certificate: 'the client sent no certificate',
  unknown_ca: 'the client certificate is not issued by the trust bundle',
  expired: 'the client certificate has expired',
  not_yet_valid: 'the client certificate is not valid yet',
  wrong_key_usage: 'the client certificate is not for client authentication (extended key usage)',
  plaintext: 'plaintext on a STRICT mutual-TLS port',
  handshake: 'the TLS handshake failed',
  silent: 'the client sent nothing within 10 s on a PERMISSIVE port',
  other: 'the client certificate failed verification',
};

/** Between two log lines of one reason while refusals keep coming. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** A PERMISSIVE connection must send its first byte within this, or it is closed. */
const SNIFF_TIMEOUT_MS = 10_000;
const CODE = 'PILLION_ERR_MTLS_REFUSED';

export interface MutualTlsOptions {
  section: string;
  listener: string;
  mode: MtlsMode;
  alpn: string[];
  /** Compute X-Forwarded-Client-Cert for each verified connection. */
  forwardClientCert: boolean;
  logger: Logger;
  metrics: Registry;
  clock: Clock;
  /** A connection to serve: TLS with a verified peer, or plaintext (PERMISSIVE). */
  accept(socket: net.Socket, h2: boolean, peer: PeerIdentity | undefined): void;
}

export class MutualTlsServer {
  /** The TLS server: listened on for STRICT; handed sniffed connections for PERMISSIVE. */
  readonly server: Server;
  #opts: MutualTlsOptions;
  #hub: IdentityHub;
  #unsubscribe: () => void;
  #accepted: Series;
  #plaintext: Series;
  #refused: Series[];
  #lastLog = new Map<MtlsRefusal, { at: number; suppressed: number }>();

  constructor(hub: IdentityHub, opts: MutualTlsOptions) {
    const m = hub.current();
    if (m === undefined) throw new Error('mutual TLS needs the workload certificate, and there is none yet');
    this.#opts = opts;
    this.#hub = hub;
    const counters = family(
      opts.metrics,
      () =>
        new CounterFamily(
          'pillion_mtls_handshakes_total',
          `Connections to mutual-TLS listeners, by result (accepted, plaintext on a PERMISSIVE port, refused) and, when refused, reason: ${MTLS_REFUSALS.join(', ')}.`,
        ),
    );
    const l = { section: opts.section, listener: opts.listener };
    this.#accepted = counters.with({ ...l, result: 'accepted', reason: '' });
    this.#plaintext = counters.with({ ...l, result: 'plaintext', reason: '' });
    this.#refused = MTLS_REFUSALS.map((reason) => counters.with({ ...l, result: 'refused', reason }));
    this.server = createServer({
      ...contextOptions(m),
      ...this.#serverOptions(),
      allowHalfOpen: true,
      noDelay: true,
    });
    this.server.on('secureConnection', (s: TLSSocket) => this.#onSecure(s));
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, s: TLSSocket) => {
      const reason: MtlsRefusal =
        err.code === 'ERR_SSL_HTTP_REQUEST' || /wrong version number|http request/i.test(err.message)
          ? 'plaintext'
          : 'handshake';
      this.#refuse(reason, s, err.message);
    });
    // A renewed certificate serves every handshake from now on; connections open keep theirs.
    this.#unsubscribe = hub.subscribe((next) => this.server.setSecureContext(contextOptions(next)));
  }

  /** PERMISSIVE: reads the first byte, then serves TLS (0x16, a handshake record) or plaintext. */
  sniff(socket: net.Socket): void {
    socket.setNoDelay(true);
    let done = false;
    const timer = this.#opts.clock.setTimeout(() => {
      if (done) return;
      this.#refuse('silent', undefined, `nothing received from ${socket.remoteAddress}`);
      socket.destroy();
    }, SNIFF_TIMEOUT_MS);
    const onError = () => socket.destroy();
    socket.on('error', onError);
    socket.once('data', (first: Buffer) => {
      done = true;
      timer.cancel();
      socket.pause();
      socket.unshift(first);
      socket.off('error', onError);
      if (first[0] === 0x16) {
        this.server.emit('connection', socket);
      } else {
        this.#plaintext.value++;
        this.#opts.accept(socket, false, undefined);
        socket.resume();
      }
    });
    socket.once('close', () => {
      done = true;
      timer.cancel();
    });
  }

  close(): void {
    this.#unsubscribe();
    this.server.close();
  }

  #serverOptions() {
    return {
      requestCert: true,
      // Verified here, after the handshake, so that a refusal can be counted with its reason
      // (OpenSSL's alert carries none the server can read).
      rejectUnauthorized: false,
      ALPNProtocols: this.#opts.alpn.length > 0 ? [...this.#opts.alpn] : undefined,
    };
  }

  #onSecure(s: TLSSocket): void {
    if (!s.authorized) {
      const code = String(s.authorizationError ?? '');
      const peer = s.getPeerX509Certificate();
      const reason: MtlsRefusal = peer === undefined ? 'no_certificate' : (BY_VERIFY_ERROR[code] ?? 'other');
      this.#refuse(reason, s, code);
      s.destroy();
      return;
    }
    this.#accepted.value++;
    s.disableRenegotiation();
    const own = this.#opts.forwardClientCert ? this.#hub.current() : undefined;
    this.#opts.accept(s, s.alpnProtocol === 'h2', new VerifiedPeer(s, own));
  }

  #refuse(reason: MtlsRefusal, s: TLSSocket | undefined, detail: string): void {
    this.#refused[MTLS_REFUSALS.indexOf(reason)]!.value++;
    const now = this.#opts.clock.now();
    const last = this.#lastLog.get(reason);
    if (last !== undefined && now - last.at < REFUSAL_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    this.#lastLog.set(reason, { at: now, suppressed: 0 });
    this.#opts.logger.warn(
      {
        code: CODE,
        listener: this.#opts.listener,
        reason,
        detail,
        remote: s?.remoteAddress,
        ...(last && last.suppressed > 0 ? { suppressed: last.suppressed } : {}),
      },
      `mutual TLS refused a connection: ${TEXT[reason]}`,
    );
  }
}

/**
 * The peer of a verified connection. Its principal and XFCC are read from the certificate on
 * first use and kept: a connection nobody asks about (no access log, no authorization, no XFCC)
 * pays nothing for them.
 */
class VerifiedPeer implements PeerIdentity {
  #socket: TLSSocket | undefined;
  #own: IdentityMaterial | undefined;
  #principal: string | undefined;
  #xfcc = '';

  constructor(socket: TLSSocket, own: IdentityMaterial | undefined) {
    this.#socket = socket;
    this.#own = own;
  }

  get principal(): string | undefined {
    if (this.#socket !== undefined) this.#read(this.#socket);
    return this.#principal;
  }

  get xfcc(): string {
    if (this.#socket !== undefined) this.#read(this.#socket);
    return this.#xfcc;
  }

  #read(s: TLSSocket): void {
    this.#socket = undefined;
    this.#principal = peerPrincipal(s);
    if (this.#own !== undefined) this.#xfcc = clientCertValue(this.#own, s.getPeerX509Certificate());
    this.#own = undefined;
  }
}

/** Mozilla's intermediate profile, as a TLS listener's default. */
const PARAMETERS = tlsParameters({ profile: 'intermediate' });

function contextOptions(m: IdentityMaterial): SecureContextOptions {
  // Resumed sessions keep the peer verified; OpenSSL wants an id context for that.
  return { cert: m.cert, key: m.key, ca: m.bundle, sessionIdContext: 'pillion-mtls', ...PARAMETERS };
}

/**
 * X-Forwarded-Client-Cert as Envoy writes it with SANITIZE_SET (By, Hash, Subject, URI): the
 * proxy's own identity, the SHA-256 of the client certificate (DER, hex), its subject (RFC 2253
 * order) and its SPIFFE ID.
 */
export function clientCertValue(
  own: IdentityMaterial | undefined,
  cert: X509Certificate | undefined,
): string {
  if (cert === undefined) return '';
  const hash = createHash('sha256').update(cert.raw).digest('hex');
  const subject = cert.subject.split('\n').reverse().join(',').replace(/["\\]/g, '\\$&');
  const uri = spiffeUrisOf(cert.subjectAltName)[0];
  let v = own ? `By=${own.spiffeId};` : '';
  v += `Hash=${hash};Subject="${subject}"`;
  if (uri !== undefined) v += `;URI=${uri}`;
  return v;
}
