// The proxy's metrics. Counting happens on plain numbers held by series objects that the data
// path looks up once per route and listener, not once per request; the families render
// themselves into the admin registry only when /metrics is scraped. prom-client's own
// counters hash a label object on every increment, which costs more than parsing a request.

import type { Registry } from '../metrics/index.js';

export interface Series {
  labels: Record<string, string>;
  value: number;
}

export interface HistogramSeries {
  labels: Record<string, string>;
  buckets: Float64Array;
  sum: number;
  count: number;
}

interface MetricValue {
  labels: Record<string, string>;
  value: number;
  metricName?: string;
}

abstract class Family<S> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum';
  protected series = new Map<string, S>();

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  abstract readonly type: string;
  protected abstract make(labels: Record<string, string>): S;
  abstract get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] };

  /** The series for these labels (created once; keep the result). */
  with(labels: Record<string, string>): S {
    const key = Object.keys(labels)
      .sort()
      .map((k) => `${k}=${labels[k]}`)
      .join('\u0001');
    let s = this.series.get(key);
    if (!s) {
      s = this.make(labels);
      this.series.set(key, s);
    }
    return s;
  }

  reset(): void {}
}

export class CounterFamily extends Family<Series> {
  readonly type: string = 'counter';
  protected make(labels: Record<string, string>): Series {
    return { labels, value: 0 };
  }
  get() {
    const values = [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class GaugeFamily extends CounterFamily {
  override readonly type = 'gauge';
}

export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram';
  readonly bounds: number[];
  constructor(name: string, help: string, bounds: number[]) {
    super(name, help);
    this.bounds = bounds;
  }
  protected make(labels: Record<string, string>): HistogramSeries {
    return { labels, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
  }
  get() {
    const values: MetricValue[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.buckets[i]!;
        values.push({
          labels: { ...s.labels, le: String(this.bounds[i]) },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export function observe(h: HistogramSeries, bounds: number[], v: number): void {
  h.sum += v;
  h.count++;
  for (let i = 0; i < bounds.length; i++) {
    if (v <= bounds[i]!) {
      h.buckets[i]!++;
      return;
    }
  }
}

/** Get-or-create by name, so a module restarted on reload keeps counting into the same series. */
function family<F extends Family<unknown>>(registry: Registry, make: () => F): F {
  const f = make();
  const existing = registry.getSingleMetric(f.name) as unknown as F | undefined;
  if (existing) return existing;
  registry.registerMetric(f as never);
  return f;
}

export const DURATION_BOUNDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Methods get their own label value; everything else is "other" (bounds cardinality). */
/** A switch, not an object lookup: keyed loads on strings go megamorphic on the hot path. */
function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'POST':
      return 1;
    case 'PUT':
      return 2;
    case 'DELETE':
      return 3;
    case 'PATCH':
      return 4;
    case 'HEAD':
      return 5;
    case 'OPTIONS':
      return 6;
    default:
      return 7;
  }
}
const METHOD_NAMES = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'other'];
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

/** The series of one route on one listener, resolved at config load. */
export class RouteStats {
  #requests: CounterFamily;
  #labels: Record<string, string>;
  #byMethodClass: (Series | undefined)[] = new Array(METHOD_NAMES.length * CLASSES.length);
  readonly duration: HistogramSeries;

  constructor(stats: ProxyStats, listener: string, route: string) {
    this.#labels = { section: stats.section, listener, route };
    this.#requests = stats.requests;
    this.duration = stats.duration.with(this.#labels);
  }

  count(method: string, status: number): void {
    const m = methodIndex(method);
    const c = status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : 4;
    const i = m * 5 + c;
    let s = this.#byMethodClass[i];
    if (s === undefined) {
      s = this.#requests.with({ ...this.#labels, method: METHOD_NAMES[m]!, code_class: CLASSES[c]! });
      this.#byMethodClass[i] = s;
    }
    s.value++;
  }
}

/** Every proxy metric of one section (inbound or outbound). */
export class ProxyStats {
  readonly section: string;
  readonly requests: CounterFamily;
  readonly duration: HistogramFamily;
  readonly bytes: CounterFamily;
  readonly connections: GaugeFamily;
  readonly activeRequests: GaugeFamily;
  readonly upstreamErrors: CounterFamily;

  constructor(registry: Registry, section: string) {
    this.section = section;
    this.requests = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_requests_total',
          'Requests answered, by listener, route, method and status class.',
        ),
    );
    this.duration = family(
      registry,
      () =>
        new HistogramFamily(
          'pillion_proxy_request_duration_seconds',
          'Time from the first byte of the request head to the last byte of the response.',
          DURATION_BOUNDS,
        ),
    );
    this.bytes = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_bytes_total',
          'Bytes received from and sent to clients, by direction.',
        ),
    );
    this.connections = family(
      registry,
      () => new GaugeFamily('pillion_proxy_active_connections', 'Client connections open, by listener.'),
    );
    this.activeRequests = family(
      registry,
      () => new GaugeFamily('pillion_proxy_active_requests', 'Requests in progress, by listener.'),
    );
    this.upstreamErrors = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_upstream_errors_total',
          'Upstream failures by kind: connect_refused, connect_timeout, no_endpoint, overflow, response_timeout, reset, protocol.',
        ),
    );
  }
}

/** The series of one listener, resolved at start. */
export class ListenerStats {
  readonly bytesIn: Series;
  readonly bytesOut: Series;
  readonly connections: Series;
  readonly active: Series;
  readonly stats: ProxyStats;
  readonly listener: string;
  #routes = new Map<string, RouteStats>();

  constructor(stats: ProxyStats, listener: string) {
    this.stats = stats;
    this.listener = listener;
    const l = { section: stats.section, listener };
    this.bytesIn = stats.bytes.with({ ...l, direction: 'in' });
    this.bytesOut = stats.bytes.with({ ...l, direction: 'out' });
    this.connections = stats.connections.with(l);
    this.active = stats.activeRequests.with(l);
  }

  route(name: string): RouteStats {
    let r = this.#routes.get(name);
    if (!r) {
      r = new RouteStats(this.stats, this.listener, name);
      this.#routes.set(name, r);
    }
    return r;
  }

  upstreamError(upstream: string, kind: string): void {
    this.stats.upstreamErrors.with({ section: this.stats.section, upstream, kind }).value++;
  }
}
