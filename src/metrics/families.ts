// Metric families that count on plain numbers: the hot path looks a series up once (per route,
// per log source) and increments a field, and the family renders itself into the registry only
// when /metrics is scraped. Registry's own counters look a series up by its labels on every increment.

import type { Registry } from './registry.js';

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

function seriesKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join('\u0001');
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
    const key = seriesKey(labels);
    let s = this.series.get(key);
    if (!s) {
      s = this.make(labels);
      this.series.set(key, s);
    }
    return s;
  }

  /** Drops a series (a file let go, a component removed), so /metrics stops showing it. */
  remove(labels: Record<string, string>): void {
    this.series.delete(seriesKey(labels));
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
export function family<F extends Family<unknown>>(registry: Registry, make: () => F): F {
  const f = make();
  const existing = registry.getSingleMetric(f.name) as unknown as F | undefined;
  if (existing) return existing;
  registry.registerMetric(f as never);
  return f;
}
