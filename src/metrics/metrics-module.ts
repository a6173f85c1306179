// The `metrics` module: scrapes the app's endpoints (one Scraper each), puts their families in
// the process registry beside pillion's own, and serves them all on a listener of its own
// (Istio's merged-metrics port, :15020/metrics) as well as on the admin server's /metrics.
// jsonpath-plus is loaded only when a target maps JSON.

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { type Address, formatAddress, listenOn } from '../lib/address.js';
import type { Clock } from '../lib/clock.js';
import { parseDownwardLabels } from '../lib/downward-labels.js';
import { PillionError } from '../lib/errors.js';
import type { Module, ModuleContext, ModuleDefinition, Readiness, ReloadResult } from '../runtime/module.js';
import type { MetricsConfig, MetricsEnrich } from './config.js';
import { sendExposition } from './exposition.js';
import { counter, type Gauge, gauge, type MetricSnapshot, type Registry } from './registry.js';
import { createPusher, type Pusher, type PushMetrics } from './push.js';
import { type ScrapeMetrics, Scraper } from './scraper.js';
import type { StatsdReceiver } from './statsd.js';

const COLLECTOR = 'metrics:app';
const PROCESSES = 'metrics:processes';
const STATSD = 'metrics:statsd';

export class MetricsModule implements Module<MetricsConfig> {
  #config: MetricsConfig;
  #logger: Logger;
  #clock: Clock;
  #registry: Registry;
  #env: Readonly<Record<string, string | undefined>>;
  #metrics: ScrapeMetrics;
  #scrapers: Scraper[] = [];
  #pushers: Pusher[] = [];
  #pushMetrics: PushMetrics;
  #server: Server | undefined;
  #statsd: StatsdReceiver | undefined;

  constructor(config: MetricsConfig, ctx: Pick<ModuleContext, 'logger' | 'clock' | 'metrics' | 'env'>) {
    this.#config = config;
    this.#logger = ctx.logger;
    this.#clock = ctx.clock;
    this.#registry = ctx.metrics;
    this.#env = ctx.env;
    const r = ctx.metrics;
    this.#metrics = {
      up: gauge(r, {
        name: 'pillion_app_scrape_up',
        help: "1 when the last scrape of the app's metrics succeeded, 0 when it failed.",
        labelNames: ['target'],
      }),
      duration: gauge(r, {
        name: 'pillion_app_scrape_duration_seconds',
        help: 'How long the last scrape took, from request to series ready.',
        labelNames: ['target'],
      }),
      series: gauge(r, {
        name: 'pillion_app_scrape_series',
        help: 'Series the last scrape yields (0 after a failed scrape).',
        labelNames: ['target'],
      }),
      scrapes: counter(r, {
        name: 'pillion_app_scrapes_total',
        help: 'Scrapes of the app, by result: ok, or why it failed (timeout, unreachable, http_status, too_large, bad_json, bad_text, series_limit).',
        labelNames: ['target', 'result'],
      }),
      problems: counter(r, {
        name: 'pillion_app_scrape_problems_total',
        help: 'Values of the app left out (no_match, not_a_number, label_too_long, duplicate) or renamed (name_collision), by reason.',
        labelNames: ['target', 'reason'],
      }),
    };
    this.#pushMetrics = {
      pushes: counter(r, {
        name: 'pillion_metrics_pushes_total',
        help: "Pushes of the app's metrics, by push and result (ok, failed; a failed one is retried).",
        labelNames: ['push', 'result'],
      }),
      dropped: counter(r, {
        name: 'pillion_metrics_push_dropped_total',
        help: 'What a push let go, by reason: buffer_full (json documents, the endpoint down too long), stopped (json documents still held at a reload or shutdown), unsupported_type (a summary family sent over OTLP).',
        labelNames: ['push', 'reason'],
      }),
      queued: gauge(r, {
        name: 'pillion_metrics_push_queued',
        help: 'Documents (json) or states (pushgateway) waiting to be pushed.',
        labelNames: ['push'],
      }),
    };
  }

  /** For tests: how pushes reach the network. */
  fetch: typeof fetch | undefined;

  async start(): Promise<void> {
    await this.#startScrapers();
    this.#registry.setCollector(COLLECTOR, { families: () => this.#families() });
    if (this.#config.processes) {
      // The same readings as GET /top, from a sampler of its own (CPU seconds need no window).
      const top = await import('../top/index.js');
      const sampler = new top.TopSampler({ clock: this.#clock, env: this.#env });
      this.#registry.setCollector(PROCESSES, { families: () => top.topFamilies(sampler.snapshot()) });
    }
    if (this.#config.statsd) await this.#startStatsd();
    if (this.#config.listen) this.#server = await this.#listen(this.#config.listen);
  }

  async reload(config: MetricsConfig): Promise<ReloadResult> {
    const old = this.#config;
    if (
      JSON.stringify(old.listen) !== JSON.stringify(config.listen) ||
      old.path !== config.path ||
      old.processes !== config.processes ||
      JSON.stringify(old.statsd) !== JSON.stringify(config.statsd)
    )
      return 'restart-needed';
    this.#config = config;
    this.#stopScrapers();
    await this.#startScrapers();
    return 'applied';
  }

  async drain(): Promise<void> {}

  async stop(): Promise<void> {
    this.#stopScrapers();
    this.#registry.removeCollector(COLLECTOR);
    this.#registry.removeCollector(PROCESSES);
    this.#registry.removeCollector(STATSD);
    this.#statsd?.stop();
    this.#statsd = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (server?.listening)
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
  }

  readiness(): Readiness {
    // The app's metrics failing does not make the pod unready; /readyz says so all the same.
    const failing = [
      ...this.#scrapers
        .filter((s) => s.lastError !== undefined)
        .map((s) => `scrape ${s.name}: ${s.lastError}`),
      ...this.#pushers.filter((p) => p.lastError !== undefined).map((p) => `push ${p.name}: ${p.lastError}`),
    ];
    return failing.length === 0 ? { ready: true } : { ready: true, reason: failing.join('; ') };
  }

  status(): unknown {
    return {
      listen: this.#server ? formatAddress(this.address()!) : null,
      targets: this.#scrapers.map((s) => ({
        name: s.name,
        url: this.#config.scrape[s.name]?.url,
        up: s.lastError === undefined && s.scrapes > 0,
        scrapes: s.scrapes,
        ...(s.lastError ? { lastError: s.lastError } : {}),
      })),
      push: this.#pushers.map((p) => ({ name: p.name, ...(p.lastError ? { lastError: p.lastError } : {}) })),
    };
  }

  /** The metrics listener's bound address (port 0 in tests). */
  address(): Address | undefined {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    return a ? { host: a.address, port: a.port } : undefined;
  }

  #families(): MetricSnapshot[] {
    const out: MetricSnapshot[] = [];
    const seen = new Set<string>();
    for (const s of this.#scrapers)
      for (const f of s.families()) {
        // Two targets may expose a family of the same name; one family, their series together.
        if (seen.has(f.name)) {
          const into = out.find((o) => o.name === f.name)!;
          into.values = [...into.values, ...f.values];
        } else {
          seen.add(f.name);
          out.push({ ...f });
        }
      }
    return out;
  }

  async #startScrapers(): Promise<void> {
    const labels = enrichmentLabels(this.#config.enrich, this.#env);
    this.#pushers = await Promise.all(
      Object.entries(this.#config.push).map(([name, p]) =>
        createPusher(name, p, {
          clock: this.#clock,
          logger: this.#logger,
          metrics: this.#pushMetrics,
          labels: Object.fromEntries(labels),
          ...(this.fetch ? { fetch: this.fetch } : {}),
        }),
      ),
    );
    const pushers = this.#pushers;
    const onScrape =
      pushers.length === 0
        ? undefined
        : (target: string, families: readonly MetricSnapshot[], doc: unknown) => {
            for (const p of pushers) p.offer(target, families, doc);
          };
    const targets = Object.entries(this.#config.scrape);
    const json = targets.some(([, t]) => t.format === 'json') ? await import('./json-rules.js') : undefined;
    this.#scrapers = targets.map(
      ([name, t]) =>
        new Scraper(name, t, {
          clock: this.#clock,
          logger: this.#logger,
          registry: this.#registry,
          metrics: this.#metrics,
          labels,
          ...(onScrape ? { onScrape } : {}),
          ...(t.format === 'json'
            ? { mapper: json!.compileRules(t.rules, t.maxLabelValueLength, labels) }
            : {}),
        }),
    );
    for (const s of this.#scrapers) s.start();
  }

  /** The StatsD receiver's UDP address (port 0 in tests). */
  get statsdAddress(): Address | undefined {
    return this.#statsdAddress;
  }

  #statsdAddress: Address | undefined;

  async #startStatsd(): Promise<void> {
    const { StatsdReceiver } = await import('./statsd.js');
    const r = this.#registry;
    const receiver = new StatsdReceiver(this.#config.statsd!, {
      logger: this.#logger,
      clock: this.#clock,
      registry: r,
      labels: enrichmentLabels(this.#config.enrich, this.#env),
      lines: counter(r, { name: 'pillion_statsd_lines_total', help: 'StatsD lines received.' }),
      problems: counter(r, {
        name: 'pillion_statsd_problems_total',
        help: 'StatsD lines dropped, by reason: bad_line (not name:value|type), bad_value, series_limit.',
        labelNames: ['reason'],
      }),
    });
    const series: Gauge = gauge(r, {
      name: 'pillion_statsd_series',
      help: 'StatsD series kept (bounded by metrics.statsd.maxSeries).',
      collect: (): void => series.set(this.#statsd?.series ?? 0),
    });
    this.#statsdAddress = await receiver.start();
    this.#statsd = receiver;
    r.setCollector(STATSD, { families: () => receiver.families() });
  }

  #stopScrapers(): void {
    for (const s of this.#scrapers) s.stop();
    for (const p of this.#pushers) p.stop();
    this.#scrapers = [];
    this.#pushers = [];
  }

  async #listen(listen: Address): Promise<Server> {
    const path = this.#config.path;
    const server = createServer((req, res) => {
      const url = (req.url ?? '/').split('?', 1)[0];
      if (url !== path) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`not found; the metrics are at ${path}\n`);
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
        res.end(`${req.method} is not allowed; use GET\n`);
        return;
      }
      this.#registry.render(req.headers.accept).then(
        (m) => sendExposition(res, m, req.method === 'HEAD'),
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`${err.message}\n`);
        },
      );
    });
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await listenOn(server, listen, 'PILLION_ERR_METRICS_LISTEN', 'metrics listener');
    const a = server.address() as AddressInfo;
    this.#logger.info(
      { metrics: formatAddress({ host: a.address, port: a.port }), path },
      'metrics listener listening',
    );
    return server;
  }
}

/** The labels every app series gets: static ones, the host name, the pod's (downward API). */
export function enrichmentLabels(
  e: MetricsEnrich,
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): [string, string][] {
  const out = new Map<string, string>(Object.entries(e.labels));
  if (e.hostname !== undefined) out.set(e.hostname, env.HOSTNAME ?? hostname());
  if (e.kubernetes) {
    const pod = env.POD_NAME ?? env.PILLION_POD_NAME;
    const namespace = env.POD_NAMESPACE ?? env.PILLION_POD_NAMESPACE;
    if (pod !== undefined) out.set('pod', pod);
    if (namespace !== undefined) out.set('namespace', namespace);
    if (e.kubernetes.labelsFile !== undefined) {
      let text: string;
      try {
        text = readFile(e.kubernetes.labelsFile);
      } catch (err) {
        throw new PillionError(
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `metrics.enrich.kubernetes.labelsFile ${e.kubernetes.labelsFile} cannot be read: ${(err as Error).message}`,
          { cause: err },
        );
      }
      for (const [k, v] of parseDownwardLabels(text)) {
        const name = k.replace(/[^a-zA-Z0-9_]/g, '_').replace(/^(?=[0-9])|^__/, '_');
        if (!out.has(name)) out.set(name, v);
      }
    }
  }
  return [...out];
}

export function metricsModule(): ModuleDefinition<MetricsConfig> {
  return {
    name: 'metrics',
    section: (config) => (config as { metrics?: MetricsConfig }).metrics,
    create: (section, ctx) => new MetricsModule(section, ctx),
  };
}
