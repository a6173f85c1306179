// The endpoints of one upstream: static addresses, and DNS names resolved in the background and
// re-resolved when their records expire, so a service that moves is followed without a restart.
// Picking is round-robin over every resolved address.

import { promises as dns } from 'node:dns';
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { spiffeUrisOf } from '../../identity/spiffe.js';
import type { Address } from '../../lib/address.js';
import { PillionError } from '../../lib/errors.js';

export interface Endpoint {
  /** IP to connect to. */
  ip: string;
  port: number;
  /** The configured host (DNS name or IP), for Host rewriting and TLS server names. */
  host: string;
  /** "ip:port", also the pool key. */
  key: string;
}

/** How connections to an upstream are secured; absent, they are plain TCP. */
export interface EndpointTls {
  /** SNI and the name the certificate must carry; by default the endpoint's host unless it is an IP. */
  serverName?: string;
  ca?: string | Buffer;
  insecureSkipVerify: boolean;
  /** Mutual TLS with the workload certificate (see mutualTlsOptions). */
  mutual?: MutualClient;
}

/** The client side of mutual TLS: the workload certificate in use, and the server identities allowed. */
export interface MutualClient {
  /** A context with the current workload certificate and the trust bundle; renewed ones for new connections. */
  context(): tls.SecureContext;
  /** The server's certificate must carry one of these SPIFFE IDs; empty: any of the trust bundle. */
  subjectAltNames: string[];
}

/**
 * A server of a mutual-TLS upstream is verified by its SPIFFE ID, as Istio's DestinationRule
 * subjectAltNames do, not by a host name: workload certificates carry none.
 */
export function mutualTlsOptions(m: MutualClient): tls.ConnectionOptions {
  return {
    secureContext: m.context(),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      if (m.subjectAltNames.length === 0) return undefined;
      const uris = spiffeUrisOf(cert.subjectaltname);
      if (uris.some((u) => m.subjectAltNames.includes(u))) return undefined;
      return new PillionError(
        'PILLION_ERR_PROXY_UPSTREAM_IDENTITY',
        `the server is ${uris.join(', ') || 'no SPIFFE ID'}; expected ${m.subjectAltNames.join(' or ')}`,
      );
    },
  };
}

/** Opens a connection to an endpoint (over TLS when `t` is set, offering `alpn`), with Nagle off. */
export function connectEndpoint(ep: Endpoint, t: EndpointTls | undefined, alpn?: string[]): net.Socket {
  const socket = t
    ? tls.connect({
        host: ep.ip,
        port: ep.port,
        servername: t.serverName ?? (isIP(ep.host) ? undefined : ep.host),
        ALPNProtocols: alpn,
        ...(t.mutual ? mutualTlsOptions(t.mutual) : { ca: t.ca, rejectUnauthorized: !t.insecureSkipVerify }),
      })
    : net.connect({ host: ep.ip, port: ep.port });
  socket.setNoDelay(true);
  return socket;
}

interface Target {
  host: string;
  port: number;
  resolved: Endpoint[];
}

const MIN_REFRESH_MS = 1000;

export class Endpoints {
  #targets: Target[];
  #all: Endpoint[] = [];
  #next = 0;
  #refreshMs: number;
  #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #resolve: (host: string) => Promise<{ address: string; ttl: number }[]>;

  constructor(
    addresses: Address[],
    opts: {
      refreshMs: number;
      logger: Logger;
      resolve?: (host: string) => Promise<{ address: string; ttl: number }[]>;
    },
  ) {
    this.#refreshMs = opts.refreshMs;
    this.#logger = opts.logger;
    this.#resolve = opts.resolve ?? resolveHost;
    this.#targets = addresses.map((a) => {
      const host = a.host === '' ? '127.0.0.1' : a.host;
      const ip = isIP(host) ? host : undefined;
      return {
        host,
        port: a.port,
        resolved: ip ? [{ ip, port: a.port, host, key: `${ip}:${a.port}` }] : [],
      };
    });
    this.#rebuild();
  }

  /** Resolves every DNS name once; the upstream is usable when this settles. */
  async start(): Promise<void> {
    await this.#refresh();
  }

  /** The next endpoint, round-robin; undefined when nothing resolved. */
  pick(): Endpoint | undefined {
    const all = this.#all;
    if (all.length === 0) return undefined;
    if (this.#next >= all.length) this.#next = 0;
    return all[this.#next++];
  }

  get size(): number {
    return this.#all.length;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  async #refresh(): Promise<void> {
    let minTtl = Number.POSITIVE_INFINITY;
    let hasNames = false;
    await Promise.all(
      this.#targets.map(async (t) => {
        if (isIP(t.host)) return;
        hasNames = true;
        try {
          const records = await this.#resolve(t.host);
          if (records.length === 0) throw new Error('no addresses');
          t.resolved = records.map((r) => ({
            ip: r.address,
            port: t.port,
            host: t.host,
            key: `${r.address}:${t.port}`,
          }));
          for (const r of records) if (r.ttl > 0) minTtl = Math.min(minTtl, r.ttl * 1000);
        } catch (err) {
          // Keep the last good addresses: a DNS outage should not take a working upstream down.
          this.#logger.warn(
            { code: 'PILLION_ERR_PROXY_UPSTREAM_CONNECT', host: t.host, err: (err as Error).message },
            'upstream DNS name did not resolve; keeping the last known addresses',
          );
        }
      }),
    );
    this.#rebuild();
    if (hasNames && !this.#closed) {
      const wait = Math.max(MIN_REFRESH_MS, Math.min(this.#refreshMs, minTtl));
      this.#timer = setTimeout(() => void this.#refresh(), wait);
      this.#timer.unref();
    }
  }

  #rebuild(): void {
    this.#all = this.#targets.flatMap((t) => t.resolved);
  }
}

/** A/AAAA with TTLs; names only the system resolver knows (/etc/hosts, "localhost") fall back to lookup. */
async function resolveHost(host: string): Promise<{ address: string; ttl: number }[]> {
  const [v4, v6] = await Promise.allSettled([
    dns.resolve4(host, { ttl: true }),
    dns.resolve6(host, { ttl: true }),
  ]);
  const out = [
    ...(v4.status === 'fulfilled' ? v4.value : []),
    ...(v6.status === 'fulfilled' ? v6.value : []),
  ];
  if (out.length > 0) return out;
  const looked = await dns.lookup(host, { all: true });
  return looked.map((l) => ({ address: l.address, ttl: 0 }));
}
