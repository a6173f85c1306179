// A named upstream: its endpoints, its HTTP/1.1 pool, and what the proxy needs to know to talk to
// it. The resilience policies (retries, breakers, outlier ejection) attach here.

import type { Logger } from 'pino';
import { readFileSync } from 'node:fs';
import type { Address } from '../../lib/address.js';
import { PillionError } from '../../lib/errors.js';
import type { TimeoutsConfig, UpstreamConfig } from '../config.js';
import { Endpoints } from './endpoints.js';
import { H1Pool } from './h1-pool.js';

export class Upstream {
  readonly name: string;
  readonly protocol: 'http1' | 'h2';
  readonly endpoints: Endpoints;
  readonly pool: H1Pool;
  readonly tls: { serverName?: string; ca?: Buffer; insecureSkipVerify: boolean } | undefined;
  /** Host header to send (outbound), or undefined to keep the client's (inbound). */
  readonly hostHeader: string | undefined;

  constructor(
    name: string,
    cfg: UpstreamConfig,
    opts: { logger: Logger; timeouts: TimeoutsConfig; rewriteHost: boolean },
  ) {
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
      ? { serverName: cfg.tls.serverName, ca, insecureSkipVerify: cfg.tls.insecureSkipVerify }
      : undefined;
    this.pool = new H1Pool(this.endpoints, {
      maxConnections: cfg.pool.maxConnections,
      maxIdle: cfg.pool.maxIdle,
      idleTimeoutMs: cfg.pool.idleTimeout,
      maxPending: cfg.pool.maxPending,
      connectTimeoutMs: opts.timeouts.upstreamConnect,
      tls: this.tls,
    });
    const first = cfg.endpoints[0]!;
    this.hostHeader = opts.rewriteHost ? Upstream.hostHeaderFor(first, cfg.tls !== undefined) : undefined;
  }

  /** The Host header a service at this address expects: its name, and the port unless the default. */
  static hostHeaderFor(a: Address, tls: boolean): string {
    const host = a.host === '' ? '127.0.0.1' : a.host.includes(':') ? `[${a.host}]` : a.host;
    return (tls && a.port === 443) || (!tls && a.port === 80) ? host : `${host}:${a.port}`;
  }

  start(): Promise<void> {
    return this.endpoints.start();
  }

  close(): void {
    this.pool.close();
  }
}
