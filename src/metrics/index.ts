// The metrics capability's public surface: the shared registry, get-or-create helpers, and the
// plain-number families the hot paths count on.

export {
  Counter,
  counter,
  createMetricsRegistry,
  Gauge,
  gauge,
  Histogram,
  histogram,
  type Collector,
  type Metric,
  type MetricSnapshot,
  Registry,
  type Sample,
} from './registry.js';
export {
  negotiate,
  OPENMETRICS_CONTENT_TYPE,
  render,
  renderOpenMetrics,
  renderText,
  TEXT_CONTENT_TYPE,
} from './exposition.js';
export {
  CounterFamily,
  family,
  GaugeFamily,
  HistogramFamily,
  type HistogramSeries,
  observe,
  type Series,
} from './families.js';
