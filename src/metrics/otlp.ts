// The app's series sent as OTLP/HTTP metrics after each scrape, encoded by OpenTelemetry's own
// serializer (@opentelemetry/otlp-transformer, protobuf or its JSON mapping): counters as
// cumulative monotonic sums, gauges and untyped as gauges, histograms with their bounds and
// per-bucket counts. Summaries have no OTLP form the serializer writes: they are left out and
// counted (reason unsupported_type). Like the Pushgateway, only the newest state is kept while the
// collector is down.

import { ValueType } from '@opentelemetry/api';
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import {
  AggregationTemporality,
  DataPointType,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { PushConfig } from './config.js';
import { LatestStatePusher, type PushDeps } from './push.js';
import type { MetricSnapshot, Sample } from './registry.js';

type OtlpPush = Extract<PushConfig, { type: 'otlp' }>;
type HrTime = [number, number];

const hr = (ms: number): HrTime => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

export class OtlpPusher extends LatestStatePusher {
  #start: HrTime;

  constructor(name: string, config: PushConfig, deps: PushDeps) {
    super(name, config, deps);
    this.#start = hr(deps.clock.now());
  }

  protected request(families: MetricSnapshot[], targets: string[]) {
    const c = this.config as OtlpPush;
    const now = hr(this.deps.clock.now());
    // One resource (the serializer writes one a request): the targets' families, merged by name
    // as /metrics shows them.
    const metrics: MetricData[] = [];
    for (const f of families) {
      const m = this.#metric(f, now);
      if (m) metrics.push(m);
    }
    const resource = {
      resource: {
        attributes: { 'service.name': c.serviceName ?? (targets.length === 1 ? targets[0]! : 'app') },
      },
      scopeMetrics: [{ scope: { name: 'pillion', version: '1' }, metrics }],
    } as unknown as ResourceMetrics;
    const body =
      c.encoding === 'json'
        ? JsonMetricsSerializer.serializeRequest(resource)
        : ProtobufMetricsSerializer.serializeRequest(resource);
    return {
      method: 'POST',
      url: c.url,
      type: c.encoding === 'json' ? 'application/json' : 'application/x-protobuf',
      body: body ?? new Uint8Array(),
    };
  }

  #metric(f: MetricSnapshot, now: HrTime): MetricData | undefined {
    const point = (s: Sample) => ({
      startTime: this.#start,
      endTime: now,
      attributes: { ...s.labels },
      value: s.value,
    });
    const descriptor = { name: f.name, description: f.help, unit: '', valueType: ValueType.DOUBLE };
    if (f.type === 'counter')
      return {
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.SUM,
        isMonotonic: true,
        dataPoints: f.values.filter((v) => v.metricName === undefined).map(point),
      } as MetricData;
    if (f.type === 'gauge' || f.type === 'untyped')
      return {
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints: f.values.map(point),
      } as MetricData;
    if (f.type === 'histogram') return this.#histogram(f, descriptor, now);
    this.drop('unsupported_type', 1);
    return undefined;
  }

  /** Prometheus's cumulative _bucket lines, per label set, as OTLP's bounds and counts. */
  #histogram(f: MetricSnapshot, descriptor: object, now: HrTime): MetricData {
    const byLabels = new Map<
      string,
      { attributes: Record<string, string | number>; buckets: [number, number][]; sum: number; count: number }
    >();
    for (const v of f.values) {
      const { le, ...rest } = v.labels;
      const key = JSON.stringify(rest);
      let h = byLabels.get(key);
      if (!h) byLabels.set(key, (h = { attributes: rest, buckets: [], sum: 0, count: 0 }));
      const suffix = (v.metricName ?? f.name).slice(f.name.length);
      if (suffix === '_bucket' && le !== undefined)
        h.buckets.push([le === '+Inf' ? Infinity : Number(le), v.value]);
      else if (suffix === '_sum') h.sum = v.value;
      else if (suffix === '_count') h.count = v.value;
    }
    const dataPoints = [...byLabels.values()].map((h) => {
      h.buckets.sort((a, b) => a[0] - b[0]);
      const boundaries = h.buckets.filter(([b]) => b !== Infinity).map(([b]) => b);
      const counts: number[] = [];
      let previous = 0;
      for (const [, cumulative] of h.buckets) {
        counts.push(cumulative - previous);
        previous = cumulative;
      }
      if (h.buckets.at(-1)?.[0] !== Infinity) counts.push(h.count - previous);
      return {
        startTime: this.#start,
        endTime: now,
        attributes: h.attributes,
        value: { buckets: { boundaries, counts }, sum: h.sum, count: h.count },
      };
    });
    return {
      descriptor,
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints,
    } as unknown as MetricData;
  }
}
