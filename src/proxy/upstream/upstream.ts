// A named upstream: its endpoints, its HTTP/1.1 pool or HTTP/2 sessions, and what the proxy needs
// to know to talk to it. The resilience policies (retries, breakers, outlier ejection) attach here.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { IdentityHub, IdentityMaterial } from '../../identity/index.js';
import type { Address } from '../../lib/address.js';
import { PillionError } from '../../lib/errors.js';
import type { TimeoutsConfig, UpstreamConfig } from '../config.js';
import { ClientSessions } from '../http2/client-sessions.js';
import { type EndpointTls, Endpoints, type MutualClient } from './endpoints.js';
import { H1Pool } from './h1-pool.js';

export interface UpstreamOptions {
  logger: Logger;
  timeouts: TimeoutsConfig;
  rewriteHost: boolean;
  /** The workload identity, for upstreams with tls.mutual. */
  identity?: IdentityHub | undefined;
}

export class Upstream {
  readonly name: string;
  readonly protocol: 'http1' | 'h2';
  readonly endpoints: Endpoints;
  readonly pool: H1Pool;
  /** Shared HTTP/2 sessions, one per endpoint (protocol h2 only). */
  readonly sessions: ClientSessions | undefined;
  readonly tls: EndpointTls | undefined;
  /** Host header to send (outbound), or undefined to keep the client's (inbound). */
  readonly hostHeader: string | undefined;
  #closed = false;

  constructor(name: string, cfg: UpstreamConfig, opts: UpstreamOptions) {
    this.name = name;
    this.protocol = cfg.protocol;
    this.endpoints = new Endpoints(cfg.endpoints, { refreshMs: cfg.dnsRefresh, logger: opts.logger });
    let ca: Buffer | undefined;
    if (cfg.tls?.ca) {
      try {
        ca = readFileSync(cfg.tls.ca);
      } catch (err) {
        throw new PillionError(
          'PILLION_ERR_TLS_FILE',
          `upstream ${name}: CA bundle ${cfg.tls.ca}: ${(err as Error).message}`,
        );
      }
    }
    this.tls = cfg.tls
      ? {
          serverName: cfg.tls.serverName,
          ca,
          insecureSkipVerify: cfg.tls.insecureSkipVerify,
          mutual: cfg.tls.mutual ? mutualClient(name, opts.identity, ca, cfg.tls.subjectAltNames) : undefined,
        }
      : undefined;
    this.pool = new H1Pool(this.endpoints, {
      maxConnections: cfg.pool.maxConnections,
      maxIdle: cfg.pool.maxIdle,
      idleTimeoutMs: cfg.pool.idleTimeout,
      maxPending: cfg.pool.maxPending,
      connectTimeoutMs: opts.timeouts.upstreamConnect,
      tls: this.tls,
    });
    this.sessions =
      cfg.protocol === 'h2'
        ? new ClientSessions({
            connectTimeoutMs: opts.timeouts.upstreamConnect,
            idleTimeoutMs: opts.timeouts.idle,
            logger: opts.logger,
          })
        : undefined;
    const first = cfg.endpoints[0]!;
    this.hostHeader = opts.rewriteHost ? Upstream.hostHeaderFor(first, cfg.tls !== undefined) : undefined;
  }

  /**
   * What an upstream is built from: an upstream whose key is unchanged on reload is kept, with its
   * warm connections. The CA bundle's content counts, so a rotated CA file takes effect.
   */
  static settingsKey(cfg: UpstreamConfig, opts: UpstreamOptions): string {
    let ca = '';
    if (cfg.tls?.ca !== undefined) {
      try {
        ca = createHash('sha256').update(readFileSync(cfg.tls.ca)).digest('hex');
      } catch (err) {
        // Unreadable: never equal to a working build; the constructor reports the error.
        ca = `unreadable: ${(err as Error).message}`;
      }
    }
    // The timeouts an upstream uses: connect, and (for HTTP/2 sessions) idle.
    const t = opts.timeouts;
    const idle = cfg.protocol === 'h2' ? t.idle : 0;
    return JSON.stringify([cfg, ca, t.upstreamConnect, idle, opts.rewriteHost]);
  }

  /** The Host header a service at this address expects: its name, and the port unless the default. */
  static hostHeaderFor(a: Address, tls: boolean): string {
    const host = a.host === '' ? '127.0.0.1' : a.host.includes(':') ? `[${a.host}]` : a.host;
    return (tls && a.port === 443) || (!tls && a.port === 80) ? host : `${host}:${a.port}`;
  }

  start(): Promise<void> {
    return this.endpoints.start();
  }

  /** Closed by a reload that replaced or removed it, or at shutdown. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Lets go of the upstream: requests waiting for a pooled connection are answered, idle
   * connections closed, and exchanges in flight finish on their connections and streams.
   */
  close(): void {
    this.#closed = true;
    this.pool.close();
    this.sessions?.closeAll(true);
  }
}

/** The client side of an upstream's mutual TLS: one context per workload certificate, built on first use. */
function mutualClient(
  name: string,
  hub: IdentityHub | undefined,
  ca: Buffer | undefined,
  subjectAltNames: string[],
): MutualClient {
  if (hub === undefined)
    throw new PillionError(
      'PILLION_ERR_IDENTITY_UNAVAILABLE',
      `upstream ${name}: mutual TLS needs the identity section`,
    );
  let made: IdentityMaterial | undefined;
  let context: SecureContext | undefined;
  return {
    subjectAltNames,
    context() {
      const m = hub.current();
      if (m === undefined)
        throw new PillionError(
          'PILLION_ERR_IDENTITY_UNAVAILABLE',
          `upstream ${name}: no workload certificate yet`,
        );
      if (m !== made) {
        // A renewed certificate is used from the next connection on; pooled ones keep theirs.
        context = createSecureContext({
          cert: m.cert,
          key: m.key,
          ca: ca ?? m.bundle,
          minVersion: 'TLSv1.2',
        });
        made = m;
      }
      return context!;
    },
  };
}
