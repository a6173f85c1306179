// The proxy as a runtime module: builds listeners, routes and upstream pools from settings,
// swaps routes and upstreams in place on reload (listeners changing needs a restart), and drains
// connections on shutdown. The inbound and outbound roles are this module with different
// settings (see inbound.ts and outbound.ts).

import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.js';
import { RateLimitedLog } from '../lib/rate-limited-log.js';
import type { Registry } from '../metrics/index.js';
import type { HealthSignal } from '../runtime/health-signal.js';
import type { Module, Readiness, ReloadResult } from '../runtime/module.js';
import { AccessLog } from './access-log.js';
import type {
  AccessLogConfig,
  EscapedSlashesAction,
  HeadersConfig,
  Http2Config,
  LimitsConfig,
  ListenerConfig,
  MtlsMode,
  TimeoutsConfig,
  UpstreamConfig,
} from './config.js';
import type { Http1Context } from './http1/server-connection.js';
import type { FiltersState, RequestFilters } from './filters/index.js';
import { hasFilters, type SecuritySettings } from './filters/settings.js';
import { DeferredH2Handler } from './http2/deferred-handler.js';
import { type ListenerParts, ProxyListener } from './listener.js';
import { ESCAPED_SLASHES_MODES } from './path.js';
import type { CompiledRoute } from './router.js';
import { ListenerStats, ProxyStats } from './stats.js';
import type { TcpContext } from './tcp-forwarder.js';
import type { PoolOccupancy } from './upstream/h1-pool.js';
import type { Mirror } from './mirror.js';
import type { RouteResilience } from './upstream/resilience.js';
import { type ClusterView, Upstream } from './upstream/upstream.js';
import { addUpstreamSource } from './upstream-metrics.js';

/** Everything the proxy needs, in the form both roles produce. */
export interface ProxySettings {
  section: 'inbound' | 'outbound';
  /** Each listener with its name and its resolved mutual-TLS mode. */
  listeners: (ListenerConfig & { name: string; mtlsMode: MtlsMode })[];
  /** Send X-Forwarded-Client-Cert for requests over mutual TLS. */
  forwardClientCert: boolean;
  routes: CompiledRoute[];
  upstreams: Record<string, UpstreamConfig>;
  /** Upstreams whose Host header is rewritten to their own name (outbound). */
  rewriteHost: boolean;
  timeouts: TimeoutsConfig;
  limits: LimitsConfig;
  http2: Http2Config;
  headers: HeadersConfig;
  accessLog: AccessLogConfig | undefined;
  readinessGate: boolean;
  pathWithEscapedSlashes: EscapedSlashesAction;
  /** JWT, rate limits and authorization (inbound only). */
  security: SecuritySettings | undefined;
}

export interface ProxyDeps {
  logger: Logger;
  metrics: Registry;
  clock: Clock;
  appHealth: HealthSignal;
  /** The runtime's shared services: the workload identity, for mutual TLS. */
  services?: Map<string, unknown>;
}

interface Built {
  upstreams: Map<string, Upstream>;
  /** Upstream.settingsKey of each upstream, to tell on reload which ones can be kept. */
  keys: Map<string, string>;
  parts: ListenerParts[];
  /** The request filters, when any is configured. */
  filters: RequestFilters | undefined;
  mirror: Mirror | undefined;
}

export class ProxyModule<S> implements Module<S> {
  #toSettings: (section: S) => ProxySettings;
  #settings: ProxySettings;
  #deps: ProxyDeps;
  #stats: ProxyStats;
  #listeners: ProxyListener[] = [];
  #built: Built | undefined;
  #accessLog: AccessLog | undefined;
  #accessLogKey = '';
  #ticker: NodeJS.Timeout | undefined;
  #ready = false;
  #removeSource: () => void;

  constructor(section: S, toSettings: (section: S) => ProxySettings, deps: ProxyDeps) {
    this.#toSettings = toSettings;
    this.#settings = toSettings(section);
    this.#deps = deps;
    this.#stats = new ProxyStats(
      deps.metrics,
      this.#settings.section,
      new RateLimitedLog(deps.logger, deps.clock),
    );
    this.#removeSource = addUpstreamSource(deps.metrics, {
      section: this.#settings.section,
      upstreams: () => this.#built?.upstreams.values() ?? [],
    });
  }

  /** Bound addresses, by listener name (port 0 resolves here). */
  addresses(): Map<string, { address: string; port: number }> {
    const out = new Map<string, { address: string; port: number }>();
    for (const l of this.#listeners) {
      const a = l.address;
      if (a) out.set(l.name, { address: a.address, port: a.port });
    }
    return out;
  }

  /** The HTTP/1.1 pool of each upstream: connections open and idle, requests waiting. */
  poolOccupancy(): Map<string, PoolOccupancy> {
    const out = new Map<string, PoolOccupancy>();
    for (const [name, u] of this.#built?.upstreams ?? [])
      out.set(name, u.sessions !== undefined ? u.sessions.occupancy : u.pool.occupancy);
    return out;
  }

  async start(): Promise<void> {
    const built = await this.#build(this.#settings);
    this.#built = built;
    const s = this.#settings;
    try {
      for (let i = 0; i < s.listeners.length; i++) {
        const cfg = s.listeners[i]!;
        const l = new ProxyListener(cfg.name, cfg, built.parts[i]!, {
          logger: this.#deps.logger,
          maxConnections: s.limits.maxConnections,
          mutual: {
            section: s.section,
            forwardClientCert: s.forwardClientCert,
            metrics: this.#deps.metrics,
            clock: this.#deps.clock,
            services: this.#deps.services ?? new Map(),
          },
        });
        await l.start();
        this.#listeners.push(l);
        const a = l.address;
        this.#deps.logger.info(
          {
            section: s.section,
            listener: cfg.name,
            address: a ? `${a.address}:${a.port}` : undefined,
            tls: cfg.tls !== undefined,
            mode: cfg.mode,
            ...(cfg.mtlsMode !== 'DISABLE' ? { mtls: cfg.mtlsMode } : {}),
          },
          'proxy listening',
        );
      }
    } catch (err) {
      for (const l of this.#listeners) l.close();
      this.#listeners = [];
      this.#dispose(built);
      throw err;
    }
    this.#startTicker();
    this.#ready = true;
  }

  async reload(section: S): Promise<ReloadResult> {
    const next = this.#toSettings(section);
    if (listenersKey(next) !== listenersKey(this.#settings)) return 'restart-needed';
    const built = await this.#build(next);
    const old = this.#built;
    this.#settings = next;
    this.#built = built;
    this.#listeners.forEach((l, i) => l.setParts(built.parts[i]!));
    if (old) this.#dispose(old, built);
    this.#startTicker();
    return 'applied';
  }

  async drain(deadline: number): Promise<void> {
    this.#ready = false;
    for (const l of this.#listeners) l.drain();
    const clock = this.#deps.clock;
    while (clock.now() < deadline && this.#listeners.some((l) => l.openConnections > 0)) {
      await new Promise<void>((resolve) => clock.setTimeout(resolve, 25));
    }
  }

  async stop(): Promise<void> {
    this.#ready = false;
    this.#removeSource();
    if (this.#ticker) clearInterval(this.#ticker);
    for (const l of this.#listeners) l.close();
    this.#listeners = [];
    if (this.#built) this.#dispose(this.#built);
    this.#built = undefined;
    await this.#accessLog?.close();
    this.#accessLog = undefined;
  }

  readiness(): Readiness {
    if (!this.#ready) return { ready: false, reason: `${this.#settings.section} proxy not listening` };
    const degraded = this.#built?.filters?.degraded();
    return degraded !== undefined ? { ready: true, reason: degraded } : { ready: true };
  }

  /** The loaded policies, JWKS state and rate limits, for the admin API; null without filters. */
  filtersState(): FiltersState | null {
    return this.#built?.filters?.state() ?? null;
  }

  policies(): FiltersState | null {
    return this.filtersState();
  }

  /** Every upstream with its endpoints, health and counters (GET /clusters). */
  clusters(): ClusterView[] {
    const now = this.#deps.clock.now();
    return [...(this.#built?.upstreams.values() ?? [])].map((u) => u.view(this.#settings.section, now));
  }

  async #build(s: ProxySettings): Promise<Built> {
    const logger = this.#deps.logger;
    const upstreams = new Map<string, Upstream>();
    const keys = new Map<string, string>();
    // An upstream whose settings did not change is kept as it is, with its warm connections and
    // sessions; only new and changed ones are made (and started).
    const prev = this.#built;
    const made: Upstream[] = [];
    try {
      // The identity's code is loaded only when an upstream speaks mutual TLS.
      const identity = Object.values(s.upstreams).some((u) => u.tls?.mutual)
        ? (await import('../identity/index.js')).identityHub(this.#deps.services ?? new Map())
        : undefined;
      // And HTTP/2's (with node:http2) only when an upstream speaks it.
      const h2 = Object.values(s.upstreams).some((u) => u.protocol === 'h2')
        ? await import('./http2/upstream-kit.js')
        : undefined;
      for (const [name, cfg] of Object.entries(s.upstreams)) {
        const opts = {
          logger,
          timeouts: s.timeouts,
          rewriteHost: s.rewriteHost,
          identity,
          h2,
          clock: this.#deps.clock,
          onEndpointsFileError: () =>
            this.#stats.endpointsFileErrors.with({ section: s.section, upstream: name }).value++,
        };
        const key = Upstream.settingsKey(cfg, opts);
        let u = prev?.keys.get(name) === key ? prev.upstreams.get(name) : undefined;
        if (u === undefined) {
          u = new Upstream(name, cfg, opts);
          u.latency = this.#stats.upstreamTime.with({ section: s.section, upstream: name });
          made.push(u);
        }
        upstreams.set(name, u);
        keys.set(name, key);
      }
      await Promise.all(made.map((u) => u.start()));
    } catch (err) {
      for (const u of made) u.close();
      throw err;
    }
    // The filters' code (and jose) is loaded only when one of them is configured.
    let filters: RequestFilters | undefined;
    if (hasFilters(s.security)) {
      try {
        const { RequestFilters } = await import('./filters/index.js');
        filters = await RequestFilters.build(
          s.security,
          { clock: this.#deps.clock, logger, metrics: this.#deps.metrics },
          prev?.filters,
        );
      } catch (err) {
        for (const u of made) u.close();
        throw err;
      }
    }
    const logKey = JSON.stringify(s.accessLog ?? null);
    if (logKey !== this.#accessLogKey) {
      const old = this.#accessLog;
      this.#accessLog = s.accessLog
        ? AccessLog.open(s.accessLog, {
            onError: (err) =>
              logger.warn({ section: s.section, err: err.message }, 'access log write failed'),
            onHealthCheck: (rec) =>
              this.#stats.healthChecks.with({ section: s.section, listener: rec.listener }).value++,
          })
        : undefined;
      this.#accessLogKey = logKey;
      void old?.close();
    }
    const resilience = await this.#resilience(s, upstreams);
    // The mirror's code is loaded only when a route mirrors.
    const mirror = s.routes.some((r) => r.mirror !== undefined)
      ? new (await import('./mirror.js')).Mirror(upstreams, this.#stats.mirrors, s.section)
      : undefined;
    // The adapter's code (jsonata, fast-xml-parser) is loaded only when a route has a transform.
    const transforms = s.routes.some((r) => r.transform !== undefined)
      ? (await import('./transform/index.js')).buildTransforms(s.routes, {
          section: s.section,
          clock: this.#deps.clock,
          logger,
          metrics: this.#deps.metrics,
        })
      : undefined;
    const health = this.#deps.appHealth;
    const parts = s.listeners.map((l): ListenerParts => {
      const stats = new ListenerStats(this.#stats, l.name);
      if (l.mode === 'tcp') {
        const tcp: TcpContext = {
          listener: l.name,
          upstream: upstreams.get(l.upstream ?? 'app')!,
          connectTimeoutMs: s.timeouts.upstreamConnect,
          idleTimeoutMs: s.timeouts.idle,
          stats,
          logger,
          sockets: new Set(),
        };
        return { http: undefined, tcp, h2: undefined };
      }
      const http: Http1Context = {
        listener: l.name,
        secure: l.tls !== undefined || l.mtlsMode === 'STRICT',
        routes: s.routes,
        routesUseHost: s.routes.some((r) => r.host !== undefined),
        routeStats: s.routes.map((r) => stats.route(r.name)),
        filters: filters ? s.routes.map((r) => filters.chain(l.name, r.name)) : undefined,
        noRouteStats: stats.route('-'),
        upstreams,
        resilience,
        transforms,
        mirror,
        clock: this.#deps.clock,
        limits: s.limits,
        timeouts: s.timeouts,
        headers: s.headers,
        escapedSlashes: ESCAPED_SLASHES_MODES[s.pathWithEscapedSlashes],
        readinessGate: s.readinessGate,
        appHealthy: () => health.healthy,
        draining: false,
        stats,
        accessLog: this.#accessLog,
        h2c: undefined,
        connections: new Set(),
      };
      // HTTP/2's code loads when the first client speaks it (deferred-handler.ts).
      const h2 = l.http2
        ? new DeferredH2Handler(
            async () => (await import('./http2/index.js')).createH2Handler(http, s.http2, logger),
            logger,
          )
        : undefined;
      if (h2 && !l.tls) http.h2c = (socket, head) => h2.accept(socket, head);
      return { http, tcp: undefined, h2 };
    });
    return { upstreams, keys, parts, filters, mirror };
  }

  /**
   * Each route's retry policy and timeout (its own, else its upstream's); undefined when no route
   * has either, and only then is the retry code loaded. An upstream that is retried gets a budget,
   * kept with the upstream across reloads.
   */
  async #resilience(
    s: ProxySettings,
    upstreams: Map<string, Upstream>,
  ): Promise<(RouteResilience | undefined)[] | undefined> {
    const of = (r: CompiledRoute) => {
      const u = r.upstream !== undefined ? s.upstreams[r.upstream] : undefined;
      return { retries: r.retries ?? u?.retries, timeout: r.timeoutMs ?? u?.timeout ?? 0 };
    };
    if (!s.routes.some((r) => of(r).retries !== undefined || of(r).timeout > 0)) return undefined;
    const { RetryBudget, RetryPolicy } = await import('./upstream/retry.js');
    const clock = this.#deps.clock;
    return s.routes.map((r) => {
      const { retries, timeout } = of(r);
      const retry = retries !== undefined && retries.attempts > 0 ? new RetryPolicy(retries) : undefined;
      if (retry === undefined && timeout === 0) return undefined;
      if (retry !== undefined)
        for (const name of r.split !== undefined ? r.split.map((d) => d.upstream!) : [r.upstream!]) {
          const u = upstreams.get(name);
          if (u !== undefined) u.retryBudget ??= new RetryBudget(u.config.retryBudget, clock);
        }
      return { retry, timeoutMs: timeout };
    });
  }

  /** Closes the upstreams of a build, but those the next build kept. */
  #dispose(built: Built, next?: Built): void {
    for (const [name, u] of built.upstreams) if (next?.upstreams.get(name) !== u) u.close();
    built.mirror?.close();
    built.filters?.close(next?.filters);
  }

  #startTicker(): void {
    if (this.#ticker) clearInterval(this.#ticker);
    const t = this.#settings.timeouts;
    const routeTimeouts = (this.#built?.parts ?? []).flatMap((p) =>
      (p.http?.resilience ?? []).flatMap((r) => (r ? [r.timeoutMs, r.retry?.perTryTimeoutMs ?? 0] : [])),
    );
    const shortest = Math.min(
      ...[t.requestHead, t.idle, t.request, t.upstreamResponse, ...routeTimeouts].filter((ms) => ms > 0),
    );
    // Deadlines are checked at a quarter of the shortest timeout (10 ms..250 ms): coarse enough to
    // cost nothing per request, fine enough that a timeout fires close to when it is due.
    const every = Math.max(10, Math.min(250, Math.floor(shortest / 4)));
    this.#ticker = setInterval(() => {
      const now = Date.now();
      for (const l of this.#listeners) l.tick(now);
    }, every);
    this.#ticker.unref();
  }
}

function listenersKey(s: ProxySettings): string {
  return (
    JSON.stringify(s.listeners) + JSON.stringify(s.http2) + s.limits.maxConnections + s.forwardClientCert
  );
}
