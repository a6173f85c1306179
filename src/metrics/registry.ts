// The process-wide Prometheus registry every module adds its metrics to, with process metrics
// (CPU, memory, event loop, GC) included. Metrics are got-or-created by name, so a module that
// is restarted on reload keeps counting into the same series instead of failing to register.

import {
  Counter,
  type CounterConfiguration,
  collectDefaultMetrics,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from 'prom-client';

export { Registry };

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function counter<L extends string>(
  registry: Registry,
  cfg: Omit<CounterConfiguration<L>, 'registers'>,
): Counter<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Counter<L> | undefined) ??
    new Counter({ ...cfg, registers: [registry] })
  );
}

export function gauge<L extends string>(
  registry: Registry,
  cfg: Omit<GaugeConfiguration<L>, 'registers'>,
): Gauge<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Gauge<L> | undefined) ??
    new Gauge({ ...cfg, registers: [registry] })
  );
}

export function histogram<L extends string>(
  registry: Registry,
  cfg: Omit<HistogramConfiguration<L>, 'registers'>,
): Histogram<L> {
  return (
    (registry.getSingleMetric(cfg.name) as Histogram<L> | undefined) ??
    new Histogram({ ...cfg, registers: [registry] })
  );
}
