// The process-wide metrics registry every module adds its metrics to, with the process's own
// metrics (CPU, memory, event loop, GC) included. Metrics are got-or-created by name, so a module
// that is restarted on reload keeps counting into the same series instead of failing to register.
// Pillion's own, small: counters, gauges and histograms with labels, rendered in Prometheus's text
// format 0.0.4 when /metrics is scraped (prom-client cost a tenth of a second at every start).

import { type Exposition, negotiate, render, renderText, TEXT_CONTENT_TYPE } from './exposition.js';
import { processMetrics } from './process-metrics.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'untyped';
export type LabelValues = Record<string, string | number>;

export interface Sample {
  labels: LabelValues;
  value: number;
  /** For a histogram's _bucket, _sum and _count lines; the family's name otherwise. */
  metricName?: string;
}

/** A family of series as it is when scraped. */
export interface MetricSnapshot {
  name: string;
  help: string;
  type: MetricType | string;
  values: Sample[];
}

/** Anything that can be registered: it renders itself when scraped. */
export interface Metric {
  readonly name: string;
  readonly help: string;
  get(): MetricSnapshot | Promise<MetricSnapshot>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Families that are not pillion's own: the app's series, scraped. They are rendered after
 * pillion's, and their owner keeps their names clear of pillion's (see `ownsName`).
 */
export interface Collector {
  families(): readonly MetricSnapshot[];
}

export class Registry {
  readonly contentType = TEXT_CONTENT_TYPE;
  #metrics = new Map<string, Metric>();
  #collectors = new Map<string, Collector>();

  /** Adds (or replaces) a collector under a key its owner keeps. */
  setCollector(key: string, collector: Collector): void {
    this.#collectors.set(key, collector);
  }

  removeCollector(key: string): void {
    this.#collectors.delete(key);
  }

  /** Whether a family of this name is pillion's own (or would be: the pillion_ prefix is reserved). */
  ownsName(name: string): boolean {
    return this.#metrics.has(name) || name.startsWith('pillion_');
  }

  /** Adds a metric; a second one of the same name is a bug (use the get-or-create helpers). */
  registerMetric(metric: Metric): void {
    if (!NAME.test(metric.name)) throw new Error(`invalid metric name: ${metric.name}`);
    if (this.#metrics.has(metric.name))
      throw new Error(`a metric named ${metric.name} is already registered`);
    this.#metrics.set(metric.name, metric);
  }

  getSingleMetric(name: string): Metric | undefined {
    return this.#metrics.get(name);
  }

  removeSingleMetric(name: string): void {
    this.#metrics.delete(name);
  }

  /** Every family as it is now (collect callbacks run first). */
  async getMetricsAsJSON(): Promise<MetricSnapshot[]> {
    const out: MetricSnapshot[] = [];
    for (const m of this.#metrics.values()) out.push(await m.get());
    for (const c of this.#collectors.values()) for (const f of c.families()) out.push(f);
    return out;
  }

  /** The format the Accept header asks for (Prometheus text or OpenMetrics), rendered. */
  async render(accept?: string): Promise<Exposition> {
    return render(await this.getMetricsAsJSON(), negotiate(accept));
  }

  /** The text exposition format 0.0.4, what /metrics serves. */
  async metrics(): Promise<string> {
    return renderText(await this.getMetricsAsJSON());
  }
}

interface MetricConfig<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Called before each scrape: sets the metric's values from wherever they live. */
  collect?: () => void | Promise<void>;
}

export type CounterConfiguration<L extends string> = MetricConfig<L>;
export type GaugeConfiguration<L extends string> = MetricConfig<L>;
export interface HistogramConfiguration<L extends string> extends MetricConfig<L> {
  /** Upper bounds, ascending; +Inf is added. */
  buckets?: readonly number[];
}

/** prom-client's default buckets, for histograms that name none. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

abstract class Labelled<L extends string, S> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: MetricType;
  #collect: (() => void | Promise<void>) | undefined;
  protected series = new Map<string, { labels: LabelValues; data: S }>();

  constructor(cfg: MetricConfig<L>) {
    this.name = cfg.name;
    this.help = cfg.help;
    this.labelNames = cfg.labelNames ?? [];
    for (const l of this.labelNames) {
      if (!LABEL.test(l) || l.startsWith('__')) throw new Error(`invalid label name ${l} in ${cfg.name}`);
    }
    this.#collect = cfg.collect;
  }

  protected abstract make(): S;
  protected abstract samples(labels: LabelValues, data: S): Sample[];

  protected at(labels: Partial<Record<L, string | number>> | undefined): S {
    const l = (labels ?? {}) as LabelValues;
    for (const k of Object.keys(l)) {
      if (!(this.labelNames as readonly string[]).includes(k))
        throw new Error(`metric ${this.name} has no label ${k}`);
    }
    const key = this.labelNames.map((n) => String(l[n] ?? '')).join('\u0001');
    let s = this.series.get(key);
    if (!s) {
      s = { labels: { ...l }, data: this.make() };
      this.series.set(key, s);
    }
    return s.data;
  }

  /** Drops every series (a scrape shows the family with no samples). */
  reset(): void {
    this.series.clear();
  }

  /** Drops one series. */
  remove(labels: Partial<Record<L, string | number>>): void {
    const l = labels as LabelValues;
    this.series.delete(this.labelNames.map((n) => String(l[n] ?? '')).join('\u0001'));
  }

  async get(): Promise<MetricSnapshot> {
    if (this.#collect) await this.#collect();
    const values: Sample[] = [];
    for (const s of this.series.values()) values.push(...this.samples(s.labels, s.data));
    return { name: this.name, help: this.help, type: this.type, values };
  }
}

interface Cell {
  value: number;
}

export class Counter<L extends string = string> extends Labelled<L, Cell> {
  readonly type = 'counter';
  constructor(cfg: CounterConfiguration<L>) {
    super(cfg);
    // A counter without labels starts at 0, so it is seen before its first increment.
    if (this.labelNames.length === 0) this.at(undefined);
  }
  protected make(): Cell {
    return { value: 0 };
  }
  protected samples(labels: LabelValues, data: Cell): Sample[] {
    return [{ labels, value: data.value }];
  }
  inc(labels?: Partial<Record<L, string | number>> | number, value = 1): void {
    if (typeof labels === 'number') [labels, value] = [undefined, labels];
    if (!(value >= 0)) throw new Error(`counter ${this.name} cannot go down (inc by ${value})`);
    this.at(labels).value += value;
  }
}

export class Gauge<L extends string = string> extends Labelled<L, Cell> {
  readonly type = 'gauge';
  constructor(cfg: GaugeConfiguration<L>) {
    super(cfg);
    if (this.labelNames.length === 0) this.at(undefined);
  }
  protected make(): Cell {
    return { value: 0 };
  }
  protected samples(labels: LabelValues, data: Cell): Sample[] {
    return [{ labels, value: data.value }];
  }
  set(labels: Partial<Record<L, string | number>> | number, value?: number): void {
    if (typeof labels === 'number') this.at(undefined).value = labels;
    else this.at(labels).value = value ?? 0;
  }
  inc(labels?: Partial<Record<L, string | number>> | number, value = 1): void {
    if (typeof labels === 'number') [labels, value] = [undefined, labels];
    this.at(labels).value += value;
  }
  dec(labels?: Partial<Record<L, string | number>> | number, value = 1): void {
    if (typeof labels === 'number') [labels, value] = [undefined, labels];
    this.at(labels).value -= value;
  }
}

interface Buckets {
  counts: Float64Array;
  sum: number;
  count: number;
}

export class Histogram<L extends string = string> extends Labelled<L, Buckets> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  constructor(cfg: HistogramConfiguration<L>) {
    super(cfg);
    if ((cfg.labelNames as readonly string[] | undefined)?.includes('le'))
      throw new Error(`le is reserved in histogram ${cfg.name}`);
    this.buckets = [...(cfg.buckets ?? DEFAULT_BUCKETS)].sort((a, b) => a - b);
    if (this.labelNames.length === 0) this.at(undefined);
  }
  protected make(): Buckets {
    return { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
  }
  protected samples(labels: LabelValues, data: Buckets): Sample[] {
    const out: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += data.counts[i]!;
      out.push({
        labels: { ...labels, le: this.buckets[i]! },
        value: cumulative,
        metricName: `${this.name}_bucket`,
      });
    }
    out.push({ labels: { ...labels, le: '+Inf' }, value: data.count, metricName: `${this.name}_bucket` });
    out.push({ labels, value: data.sum, metricName: `${this.name}_sum` });
    out.push({ labels, value: data.count, metricName: `${this.name}_count` });
    return out;
  }
  observe(labels: Partial<Record<L, string | number>> | number, value?: number): void {
    if (typeof labels === 'number') [labels, value] = [{}, labels];
    const v = value ?? 0;
    const data = this.at(labels);
    data.sum += v;
    data.count++;
    const i = this.buckets.findIndex((b) => v <= b);
    if (i !== -1) data.counts[i]!++;
  }
}

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  processMetrics(registry);
  return registry;
}

export function counter<L extends string>(registry: Registry, cfg: CounterConfiguration<L>): Counter<L> {
  return getOrCreate(registry, cfg.name, Counter, () => new Counter(cfg));
}

export function gauge<L extends string>(registry: Registry, cfg: GaugeConfiguration<L>): Gauge<L> {
  return getOrCreate(registry, cfg.name, Gauge, () => new Gauge(cfg));
}

export function histogram<L extends string>(
  registry: Registry,
  cfg: HistogramConfiguration<L>,
): Histogram<L> {
  return getOrCreate(registry, cfg.name, Histogram, () => new Histogram(cfg));
}

function getOrCreate<M extends Metric>(
  registry: Registry,
  name: string,
  kind: abstract new (...args: never[]) => Metric,
  make: () => M,
): M {
  const existing = registry.getSingleMetric(name);
  if (existing) {
    if (!(existing instanceof kind)) throw new Error(`metric ${name} is already registered as another type`);
    return existing as M;
  }
  const m = make();
  registry.registerMetric(m);
  return m;
}
