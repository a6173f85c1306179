// A named upstream: its endpoints, its HTTP/1.1 pool or HTTP/2 sessions, and what the proxy needs
// to know to talk to it. The resilience policies (retries, breakers, outlier ejection) attach here.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { IdentityHub, IdentityMaterial } from '../../identity/index.js';
import type { Address } from '../../lib/address.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { HistogramSeries } from '../../metrics/index.js';
import { PillionError } from '../../lib/errors.js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { endpointEntrySchema, type TimeoutsConfig, type UpstreamConfig } from '../config.js';
import type { ClientSessions } from '../http2/client-sessions.js';
import type { H2Kit } from '../http2/upstream-kit.js';
import { type Balancer, RoundRobin } from './balancer.js';
import {
  type Endpoint,
  type EndpointSpec,
  type EndpointTls,
  Endpoints,
  type MutualClient,
  usableEndpoints,
} from './endpoints.js';
import { H1Pool } from './h1-pool.js';
import type { HealthChecker, HealthProbe } from './health-check.js';
import type { OutlierDetector } from './outlier.js';
import type { RetryBudget } from './retry.js';

export interface UpstreamOptions {
  logger: Logger;
  timeouts: TimeoutsConfig;
  rewriteHost: boolean;
  /** The workload identity, for upstreams with tls.mutual. */
  identity?: IdentityHub | undefined;
  /** Time and randomness for the balancers and outlier detection (injected in tests). */
  clock?: Clock;
  now?: () => number;
  random?: () => number;
  /** Replaces the network check of active health checks (tests on fake time). */
  healthProbe?: HealthProbe | undefined;
  /** An endpoints file that did not apply (counted by the caller). */
  onEndpointsFileError?: (err: Error) => void;
  /** HTTP/2's code, which an upstream with protocol h2 needs (loaded by the caller only then). */
  h2?: H2Kit | undefined;
}

/** An upstream in GET /clusters: its counters, and each endpoint's health and counters. */
export interface ClusterView {
  section: string;
  name: string;
  policy: string;
  stats: Record<string, number>;
  endpoints: {
    address: string;
    host: string;
    weight: number;
    labels: Readonly<Record<string, string>>;
    /** unhealthy: failing active health checks; ejected: by outlier detection. */
    health: 'healthy' | 'ejected' | 'unhealthy';
    /** With healthCheck: checks in a row that passed and failed, and why the last one failed. */
    checks_passed?: number;
    checks_failed?: number;
    last_check_failure?: string;
    ejected_for_ms: number;
    ejections: number;
    rq_total: number;
    rq_active: number;
    consecutive_5xx: number;
    latency_ewma_ms?: number;
  }[];
}

/** What a consistent-hash balancer hashes: nothing, a header, a cookie, or the client's address. */
export const HASH_NONE = 0;
export const HASH_HEADER = 1;
export const HASH_COOKIE = 2;
export const HASH_CLIENT = 3;

/** The balancer's key for a request: a header's value, a cookie's, or the client's address ('' when absent). */
export function hashKeyOf(u: Upstream, lower: string[], values: string[], clientIp: string): string {
  if (u.hashOn === HASH_CLIENT) return clientIp;
  if (u.hashOn === HASH_COOKIE) {
    const at = lower.indexOf('cookie');
    return at === -1 ? '' : cookieValue(values[at]!, u.hashName);
  }
  const at = lower.indexOf(u.hashName);
  return at === -1 ? '' : values[at]!;
}

/** The value of cookie `name` in a Cookie header ('' when absent). */
function cookieValue(header: string, name: string): string {
  let i = 0;
  while (i < header.length) {
    let end = header.indexOf(';', i);
    if (end === -1) end = header.length;
    const eq = header.indexOf('=', i);
    if (eq !== -1 && eq < end && header.slice(i, eq).trim() === name) return header.slice(eq + 1, end).trim();
    i = end + 1;
  }
  return '';
}

export class Upstream {
  readonly name: string;
  readonly protocol: 'http1' | 'h2';
  readonly endpoints: Endpoints;
  readonly pool: H1Pool;
  /** HTTP/2 sessions to the endpoints, streams multiplexed on them (protocol h2 only). */
  readonly sessions: ClientSessions | undefined;
  /** HTTP/2's code, for requests to this upstream (protocol h2 only). */
  readonly h2: H2Kit | undefined;
  readonly tls: EndpointTls | undefined;
  /** Host header to send (outbound), or undefined to keep the client's (inbound). */
  readonly hostHeader: string | undefined;
  /** HASH_* and the header or cookie name (lower-case) the balancer's key comes from. */
  readonly hashOn: number;
  readonly hashName: string;
  /** The retry budget, made when a route retries requests to this upstream; kept with the upstream. */
  retryBudget: RetryBudget | undefined;
  /** Outlier detection, when configured. */
  outlier: OutlierDetector | undefined;
  /** Active health checks, when configured. */
  health: HealthChecker | undefined;
  /** Requests in flight to the upstream (waiting for a connection included), and retries in progress. */
  inflight = 0;
  retrying = 0;
  /** Tries sent again after a failure, and failures not retried because the budget was spent (for /clusters). */
  retried = 0;
  budgetExhausted = 0;
  /** pool.maxRequests and pool.maxRetries (0: no limit). */
  readonly maxRequests: number;
  readonly maxRetries: number;
  /** Endpoints ejected so far (for metrics and /clusters). */
  ejections = 0;
  /** Responses the clients got from requests to this upstream, by status class (1xx..5xx). */
  readonly responses = [0, 0, 0, 0, 0];
  /** Seconds to the response head, per try that got one; set by the proxy module. */
  latency: HistogramSeries | undefined;
  #balancer: Balancer = new RoundRobin();
  /** Each subset's labels and its own balancer over its endpoints. */
  #subsets = new Map<string, { labels: [string, string][]; balancer: Balancer }>();
  #cfg: UpstreamConfig;
  #opts: UpstreamOptions;
  #closed = false;

  constructor(name: string, cfg: UpstreamConfig, opts: UpstreamOptions) {
    this.name = name;
    this.protocol = cfg.protocol;
    this.#cfg = cfg;
    this.#opts = opts;
    this.maxRequests = cfg.pool.maxRequests;
    this.maxRetries = cfg.pool.maxRetries;
    this.endpoints = new Endpoints(cfg.endpoints, {
      refreshMs: cfg.dnsRefresh,
      logger: opts.logger,
      srv: cfg.srv,
      file:
        cfg.endpointsFile !== undefined
          ? { path: cfg.endpointsFile, parse: parseEndpointsFile, onError: opts.onEndpointsFileError }
          : undefined,
    });
    for (const [n, sub] of Object.entries(cfg.subsets ?? {}))
      this.#subsets.set(n, { labels: Object.entries(sub.labels), balancer: new RoundRobin() });
    this.endpoints.onChange(() => this.#rebalance());
    this.#balancer.update(this.endpoints.all);
    const h = cfg.loadBalancer?.hashOn;
    this.hashOn = h?.header
      ? HASH_HEADER
      : h?.cookie
        ? HASH_COOKIE
        : h?.clientAddress
          ? HASH_CLIENT
          : HASH_NONE;
    this.hashName = h?.header?.toLowerCase() ?? h?.cookie ?? '';
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
    this.pool = new H1Pool(
      this.endpoints,
      {
        maxConnections: cfg.pool.maxConnections,
        maxIdle: cfg.pool.maxIdle,
        idleTimeoutMs: cfg.pool.idleTimeout,
        maxPending: cfg.pool.maxPending,
        maxRequestsPerConnection: cfg.pool.maxRequestsPerConnection,
        connectTimeoutMs: opts.timeouts.upstreamConnect,
        tls: this.tls,
      },
      this,
    );
    if (cfg.protocol === 'h2' && opts.h2 === undefined)
      throw new Error(`upstream ${name}: protocol h2 needs HTTP/2's code (UpstreamOptions.h2)`);
    this.h2 = cfg.protocol === 'h2' ? opts.h2 : undefined;
    this.sessions =
      this.h2 !== undefined
        ? new this.h2.ClientSessions(this, {
            connectTimeoutMs: opts.timeouts.upstreamConnect,
            idleTimeoutMs: opts.timeouts.idle,
            maxConnections: cfg.pool.maxConnections,
            maxPending: cfg.pool.maxPending,
            maxRequestsPerConnection: cfg.pool.maxRequestsPerConnection,
            logger: opts.logger,
          })
        : undefined;
    this.hostHeader = opts.rewriteHost ? Upstream.hostHeaderOf(name, cfg) : undefined;
  }

  /**
   * The Host an outbound request to the upstream carries: its first endpoint's name (and port
   * unless the default), else the SRV name's service part (inventory.example for
   * _http._tcp.inventory.example), else the upstream's own name.
   */
  static hostHeaderOf(name: string, cfg: UpstreamConfig): string {
    const first = cfg.endpoints[0];
    if (first !== undefined) return Upstream.hostHeaderFor(first, cfg.tls !== undefined);
    if (cfg.srv !== undefined) return cfg.srv.replace(/^(_[^.]+\.)+/, '');
    return name;
  }

  /** What GET /clusters shows of the upstream. */
  view(section: string, now: number): ClusterView {
    const lb = this.#cfg.loadBalancer?.policy ?? 'round-robin';
    const [c1, c2, c3, c4, c5] = this.responses;
    return {
      section,
      name: this.name,
      policy: lb,
      stats: {
        rq_active: this.inflight,
        rq_pending: this.pool.waiting + (this.sessions?.waiting ?? 0),
        rq_retrying: this.retrying,
        rq_retry: this.retried,
        rq_retry_budget_exhausted: this.budgetExhausted,
        rq_1xx: c1!,
        rq_2xx: c2!,
        rq_3xx: c3!,
        rq_4xx: c4!,
        rq_5xx: c5!,
        ejections: this.ejections,
        ...(this.retryBudget !== undefined ? { retry_budget_remaining: this.retryBudget.remaining } : {}),
        ...(this.health !== undefined
          ? Object.fromEntries(Object.entries(this.health.results).map(([r, n]) => [`health_check_${r}`, n]))
          : {}),
      },
      endpoints: this.endpoints.all.map((e) => ({
        address: e.key,
        host: e.host,
        weight: e.weight,
        labels: e.labels,
        health: e.state.unhealthy ? 'unhealthy' : e.state.ejectedUntil !== 0 ? 'ejected' : 'healthy',
        ejected_for_ms: e.state.ejectedUntil !== 0 ? Math.max(0, e.state.ejectedUntil - now) : 0,
        ejections: e.state.ejections,
        rq_total: e.state.requests,
        rq_active: e.state.active,
        consecutive_5xx: e.state.consecutive5xx,
        ...(this.health !== undefined
          ? {
              checks_passed: e.state.checksPassed,
              checks_failed: e.state.checksFailed,
              last_check_failure: e.state.lastCheckFailure,
            }
          : {}),
        ...(this.observesLatency ? { latency_ewma_ms: Math.round(e.state.ewma * 1000) / 1000 } : {}),
      })),
    };
  }

  /** Tells the balancer the endpoints it may use now (not ejected nor unhealthy, unless too few are left). */
  #rebalance(): void {
    const all = this.endpoints.all;
    this.outlier?.update(all);
    const checked = this.outlier !== undefined || this.health !== undefined;
    const min = this.#cfg.outlierDetection?.minHealthPercent ?? 0;
    this.#balancer.update(checked ? usableEndpoints(all, min) : all);
    for (const sub of this.#subsets.values()) {
      const members = all.filter((e) => sub.labels.every(([k, v]) => e.labels[k] === v));
      sub.balancer.update(checked ? usableEndpoints(members, min) : members);
    }
  }

  /** The endpoint for a request (its hash key, '' when none), avoiding the one a failed attempt used. */
  pick(hash: string, avoid: Endpoint | undefined, subset?: string): Endpoint | undefined {
    if (subset === undefined) return this.#balancer.pick(hash, avoid);
    return this.#subsets.get(subset)?.balancer.pick(hash, avoid);
  }

  /** The balancer keeps a latency average (peak-ewma): responses are reported to it. */
  get config(): UpstreamConfig {
    return this.#cfg;
  }

  get observesLatency(): boolean {
    return this.#balancer.observes;
  }

  /** A response from `ep` took `ms` (to its head). */
  observe(ep: Endpoint, ms: number): void {
    // The latency average lives on the endpoint, so one balancer's update serves the subsets' too.
    this.#balancer.observe(ep, ms);
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

  async start(): Promise<void> {
    const lb = this.#cfg.loadBalancer;
    if (lb !== undefined && lb.policy !== 'round-robin') {
      // The other policies' code is loaded only by an upstream that uses one.
      const { createBalancer } = await import('./balancers.js');
      const deps = {
        now: this.#opts.now ?? (this.#opts.clock ? () => this.#opts.clock!.now() : Date.now),
        random: this.#opts.random ?? Math.random,
      };
      this.#balancer = createBalancer(lb, deps);
      for (const sub of this.#subsets.values()) sub.balancer = createBalancer(lb, deps);
    }
    const od = this.#cfg.outlierDetection;
    if (od !== undefined) {
      const { OutlierDetector } = await import('./outlier.js');
      this.outlier = new OutlierDetector(
        od,
        this.#opts.clock ?? systemClock,
        {
          changed: () => this.#rebalance(),
          ejected: (ep) => {
            this.ejections++;
            this.#opts.logger.warn(
              { upstream: this.name, endpoint: ep.key, ejections: ep.state.ejections },
              'upstream endpoint ejected (outlier detection)',
            );
          },
        },
        this.#opts.random ?? Math.random,
      );
    }
    const hc = this.#cfg.healthCheck;
    if (hc !== undefined) {
      const { HealthChecker } = await import('./health-check.js');
      this.health = new HealthChecker(hc, {
        clock: this.#opts.clock ?? systemClock,
        random: this.#opts.random ?? Math.random,
        endpoints: () => this.endpoints.all,
        hostHeader: Upstream.hostHeaderOf(this.name, this.#cfg),
        tls: this.tls,
        changed: (ep) => {
          const st = ep.state;
          this.#opts.logger[st.unhealthy ? 'warn' : 'info'](
            st.unhealthy
              ? { upstream: this.name, endpoint: ep.key, reason: st.lastCheckFailure }
              : { upstream: this.name, endpoint: ep.key },
            st.unhealthy
              ? 'upstream endpoint failed its health checks; out of balancing'
              : 'upstream endpoint passes its health checks again; back in balancing',
          );
          this.#rebalance();
        },
        probe: this.#opts.healthProbe,
      });
    }
    this.#rebalance();
    await this.endpoints.start();
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
    this.outlier?.close();
    this.health?.close();
    this.pool.close();
    this.sessions?.closeAll(true);
  }
}

/** An endpoints file: a YAML list of endpoints, each "host:port" or { address, weight, labels }. */
function parseEndpointsFile(text: string): EndpointSpec[] {
  const doc: unknown = parseYaml(text);
  const list = Array.isArray(doc) ? doc : (doc as { endpoints?: unknown } | null)?.endpoints;
  if (!Array.isArray(list)) throw new Error('expected a list of endpoints (or endpoints: [...])');
  const r = z.array(endpointEntrySchema).max(10000).safeParse(list);
  if (!r.success) {
    const first = r.error.issues[0]!;
    const path = first.path.join('.');
    throw new Error(`endpoint ${path}: ${first.message}`);
  }
  return r.data.map((e) => ({ ...e, host: e.host === '' ? '127.0.0.1' : e.host }));
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
