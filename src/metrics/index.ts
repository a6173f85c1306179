// The metrics capability's public surface: the shared registry and get-or-create helpers.

export type { Counter, Gauge, Histogram } from 'prom-client';
export { counter, createMetricsRegistry, gauge, histogram, Registry } from './registry.js';
export {
  CounterFamily,
  family,
  GaugeFamily,
  HistogramFamily,
  type HistogramSeries,
  observe,
  type Series,
} from './families.js';
