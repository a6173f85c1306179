// Pushing the app's metrics: the seed's JSON document POSTed in batches to a receiver, retried
// with back-off on the fake clock, held in a bounded buffer whose overflow is counted; and a real
// Prometheus Pushgateway (Debian's prometheus-pushgateway, on a free loopback port) receiving the
// group, emptied when the app's scrape fails.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { formatIssue } from '../config/index.js';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { parsePillionConfig } from '../roles.js';
import type { MetricsConfig, PushConfig } from './config.js';
import { MetricsModule } from './metrics-module.js';
import { createPusher } from './push.js';
import { counter, gauge, Registry } from './registry.js';
import { freePort } from '../lib/free-port.js';

const root = new URL('../../', import.meta.url).pathname;
let appAnswer: (req: IncomingMessage, res: ServerResponse) => void;
let app: Server;
let appUrl = '';
let gateway: ChildProcess | undefined;
let gatewayUrl = '';

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<[Server, string]> {
  const s = createServer(handler);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return [s, `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`];
}

before(async () => {
  [app, appUrl] = await listen((req, res) => appAnswer(req, res));
  const have = spawnSync('bash', ['scripts/install-peers.sh', 'prometheus-pushgateway'], {
    stdio: 'inherit',
    cwd: root,
  });
  if (have.status !== 0)
    throw new Error('scripts/install-peers.sh could not provide prometheus-pushgateway (its Debian package)');
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  gateway = spawn('prometheus-pushgateway', [`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: 'ignore',
  });
  await waitFor(async () => (await fetch(`${gatewayUrl}/-/ready`)).ok, {
    what: 'the pushgateway ready',
    timeoutMs: 30_000,
  });
});

after(() => {
  gateway?.kill('SIGKILL');
  app.close();
  app.closeAllConnections();
});

async function config(yaml: string): Promise<MetricsConfig> {
  const loaded = await parsePillionConfig(yaml, 'pillion.yaml', {});
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
  return loaded.config.metrics!;
}

async function scraped(m: MetricsModule, n: number): Promise<void> {
  await waitFor(
    () => (m.status() as { targets: { scrapes: number }[] }).targets.every((t) => t.scrapes >= n),
    { what: `scrape ${n}` },
  );
}

const seed = { requests: 12, errors: 1, uptime: 3.2 };

test("the seed's JSON document is POSTed enriched and batched; a failed POST is retried with back-off", async () => {
  appAnswer = (_q, res) => res.end(JSON.stringify(seed));
  const received: unknown[][] = [];
  let fail = 1;
  const [receiver, receiverUrl] = await listen((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      assert.equal(req.headers['content-type'], 'application/json');
      assert.equal(req.headers.authorization, 'Bearer t0k3n');
      if (fail-- > 0) {
        res.statusCode = 503;
        return res.end('busy');
      }
      received.push(JSON.parse(body) as unknown[]);
      res.end();
    });
  });
  const cfg = await config(`
metrics:
  listen: null
  enrich: { labels: { environment: staging, version: "1.4.2" }, hostname: hostname }
  scrape:
    orders:
      url: ${appUrl}/internal/metrics
      format: json
      interval: 10s
      rules: [{ name: orders_requests_total, type: counter, value: $.requests }]
  push:
    export:
      type: json
      url: ${receiverUrl}/ingest
      headers: { authorization: Bearer t0k3n }
      batch: { maxDocuments: 2, maxAge: 15s }
      retry: { initialBackoff: 1s, maxBackoff: 8s }
`);
  const clock = new FakeClock();
  const registry = new Registry();
  const m = new MetricsModule(cfg, {
    clock,
    logger: pino({ level: 'silent' }),
    metrics: registry,
    env: { HOSTNAME: 'node-3' },
  });
  await m.start();
  try {
    await clock.advance(0);
    await scraped(m, 1);
    await clock.advance(10_000);
    await scraped(m, 2);
    // Two documents make a batch: sent at once; the receiver answers 503 the first time.
    await waitFor(
      async () => /pushes_total\{push="export",result="failed"\} 1/.test(await registry.metrics()),
      {
        what: 'the failed push',
      },
    );
    assert.match(m.readiness().reason ?? '', /push export: status 503: busy/);
    await clock.advance(1000); // the back-off's ceiling for the first retry
    await waitFor(() => received.length === 1, { what: 'the batch delivered' });
    const batch = received[0] as Record<string, unknown>[];
    assert.equal(batch.length, 2);
    assert.deepEqual(
      { ...batch[0], timestamp: typeof batch[0]!.timestamp },
      {
        target: 'orders',
        timestamp: 'string',
        labels: { environment: 'staging', version: '1.4.2', hostname: 'node-3' },
        document: seed,
        series: [
          {
            name: 'orders_requests_total',
            type: 'counter',
            labels: { environment: 'staging', version: '1.4.2', hostname: 'node-3' },
            value: 12,
          },
        ],
      },
    );
    assert.equal(new Date(batch[0]!.timestamp as string).getTime(), clock.now() - 11_000);
    const text = await registry.metrics();
    assert.match(text, /pillion_metrics_pushes_total\{push="export",result="ok"\} 1/);
    assert.match(text, /pillion_metrics_push_queued\{push="export"\} 0/);
    assert.equal(m.readiness().reason, undefined);
  } finally {
    await m.stop();
    receiver.close();
  }
});

test('a bounded buffer: while the endpoint is down the oldest documents are dropped and counted', async () => {
  const clock = new FakeClock();
  const registry = new Registry();
  const metrics = {
    pushes: counter(registry, { name: 'p', help: 'p', labelNames: ['push', 'result'] }),
    dropped: counter(registry, { name: 'd', help: 'd', labelNames: ['push', 'reason'] }),
    queued: gauge(registry, { name: 'q', help: 'q', labelNames: ['push'] }),
  };
  const bodies: string[] = [];
  let down = true;
  const fakeFetch = (async (_url: string, init: RequestInit) => {
    bodies.push(init.body as string);
    return new Response(down ? 'down' : 'ok', { status: down ? 502 : 200 });
  }) as typeof fetch;
  const cfg = (
    await config(`
metrics:
  listen: null
  push:
    p:
      type: json
      url: http://127.0.0.1:1/x
      batch: { maxDocuments: 10, maxAge: 1s }
      maxBufferedDocuments: 3
      retry: { initialBackoff: 1s, maxBackoff: 4s }
`)
  ).push.p as PushConfig;
  const p = await createPusher('p', cfg, {
    clock,
    logger: pino({ level: 'silent' }),
    metrics,
    labels: {},
    random: () => 1,
    fetch: fakeFetch,
  });
  for (let i = 0; i < 5; i++) p.offer('t', [], { n: i });
  await clock.advance(1000); // the batch's age: one attempt, failed
  assert.equal(bodies.length, 1);
  assert.deepEqual(
    (JSON.parse(bodies[0]!) as { document: { n: number } }[]).map((d) => d.document.n),
    [2, 3, 4],
  );
  assert.match(await registry.metrics(), /d\{push="p",reason="buffer_full"\} 2/);
  // Back-off doubles: 1 s, 2 s, 4 s, 4 s (the cap).
  await clock.advance(999);
  assert.equal(bodies.length, 1);
  await clock.advance(1);
  assert.equal(bodies.length, 2);
  await clock.advance(2000);
  assert.equal(bodies.length, 3);
  await clock.advance(4000);
  assert.equal(bodies.length, 4);
  down = false;
  await clock.advance(4000);
  assert.equal(bodies.length, 5);
  assert.match(await registry.metrics(), /q\{push="p"\} 0/);
  p.offer('t', [], { n: 5 });
  await clock.advance(1000);
  assert.deepEqual(
    (JSON.parse(bodies[5]!) as { document: { n: number } }[]).map((d) => d.document.n),
    [5],
  );
  p.stop();
});

test('a real Pushgateway receives the group with the enrichment labels, emptied when the scrape fails', async () => {
  let up = true;
  appAnswer = (_q, res) => {
    if (!up) {
      res.statusCode = 500;
      return res.end();
    }
    res.end(JSON.stringify(seed));
  };
  const cfg = await config(`
metrics:
  listen: null
  enrich: { labels: { environment: staging } }
  scrape:
    orders:
      url: ${appUrl}/internal/metrics
      format: json
      rules:
        - { name: orders_requests_total, type: counter, help: Requests served., value: $.requests }
        - { name: orders_uptime_seconds, value: $.uptime }
  push:
    gateway: { type: pushgateway, url: ${gatewayUrl}, job: orders, grouping: { instance: "pod/orders-1" } }
`);
  const clock = new FakeClock();
  const m = new MetricsModule(cfg, {
    clock,
    logger: pino({ level: 'silent' }),
    metrics: new Registry(),
    env: {},
  });
  await m.start();
  const pushed = async () => (await fetch(`${gatewayUrl}/metrics`)).text();
  try {
    await clock.advance(0);
    await scraped(m, 1);
    await clock.advance(0);
    const text = await waitFor(
      async () => {
        const t = await pushed();
        return t.includes('orders_requests_total{') ? t : undefined;
      },
      { what: 'the group on the pushgateway' },
    );
    assert.match(
      text,
      /^orders_requests_total\{environment="staging",instance="pod\/orders-1",job="orders"\} 12$/m,
    );
    assert.match(
      text,
      /^orders_uptime_seconds\{environment="staging",instance="pod\/orders-1",job="orders"\} 3.2$/m,
    );
    assert.match(text, /# HELP orders_requests_total Requests served\./);
    up = false;
    await clock.advance(10_000);
    await scraped(m, 2);
    await clock.advance(0);
    await waitFor(async () => !(await pushed()).includes('orders_requests_total{'), {
      what: "the app's series gone from the group",
    });
  } finally {
    await m.stop();
  }
});

// The OTLP metrics request, as opentelemetry-proto's collector/metrics/v1 and metrics/v1 define it
// (the fields this test reads), for a receiver that decodes what pillion sends.
const OTLP_PROTO = `
syntax = "proto3";
package otlp;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeMetrics { Scope scope = 1; repeated Metric metrics = 2; }
message Scope { string name = 1; string version = 2; }
message Metric {
  string name = 1; string description = 2; string unit = 3;
  oneof data { Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; }
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message NumberDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  oneof value { double as_double = 4; sfixed64 as_int = 6; }
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9; fixed64 count = 4; double sum = 5;
  repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
`;

test('OTLP/HTTP: the series reach a receiver as OpenTelemetry metrics (protobuf), counters as monotonic sums', async () => {
  const { default: protobuf } = await import('protobufjs');
  const Request = protobuf.parse(OTLP_PROTO).root.lookupType('otlp.ExportMetricsServiceRequest');
  const received: Record<string, any>[] = [];
  const types: string[] = [];
  const [receiver, receiverUrl] = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      types.push(req.headers['content-type'] ?? '');
      received.push(
        Request.toObject(Request.decode(Buffer.concat(chunks)), {
          longs: Number,
          defaults: true,
          oneofs: true,
        }),
      );
      res.setHeader('content-type', 'application/x-protobuf');
      res.end();
    });
  });
  appAnswer = (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      return res.end(`# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 2
latency_seconds_bucket{le="1"} 5
latency_seconds_bucket{le="+Inf"} 6
latency_seconds_sum 3.5
latency_seconds_count 6
`);
    }
    res.end(JSON.stringify(seed));
  };
  const cfg = await config(`
metrics:
  listen: null
  enrich: { labels: { environment: staging } }
  scrape:
    orders:
      url: ${appUrl}/internal/metrics
      format: json
      rules:
        - { name: orders_requests_total, type: counter, help: Requests served., value: $.requests }
        - { name: orders_uptime_seconds, value: $.uptime }
    text: { url: "${appUrl}/metrics", format: prometheus }
  push:
    otel: { type: otlp, url: "${receiverUrl}/v1/metrics", serviceName: orders }
`);
  const clock = new FakeClock();
  const m = new MetricsModule(cfg, {
    clock,
    logger: pino({ level: 'silent' }),
    metrics: new Registry(),
    env: {},
  });
  await m.start();
  try {
    await clock.advance(0);
    await scraped(m, 1);
    await clock.advance(0);
    const last = await waitFor(
      () => {
        const r = received.at(-1);
        const names =
          r?.resourceMetrics[0]?.scopeMetrics[0]?.metrics.map((x: { name: string }) => x.name) ?? [];
        return names.includes('orders_requests_total') && names.includes('latency_seconds') ? r : undefined;
      },
      { what: 'both targets at the receiver' },
    );
    assert.equal(types.at(-1), 'application/x-protobuf');
    const rm = last.resourceMetrics[0];
    assert.deepEqual(rm.resource.attributes, [
      { key: 'service.name', value: { stringValue: 'orders', value: 'stringValue' } },
    ]);
    const byName = new Map<string, any>(rm.scopeMetrics[0].metrics.map((x: { name: string }) => [x.name, x]));
    const requests = byName.get('orders_requests_total');
    assert.equal(requests.description, 'Requests served.');
    assert.equal(requests.data, 'sum');
    assert.equal(requests.sum.isMonotonic, true);
    assert.equal(requests.sum.aggregationTemporality, 2); // cumulative
    assert.equal(requests.sum.dataPoints[0].asDouble, 12);
    assert.deepEqual(requests.sum.dataPoints[0].attributes, [
      { key: 'environment', value: { stringValue: 'staging', value: 'stringValue' } },
    ]);
    assert.ok(requests.sum.dataPoints[0].timeUnixNano >= requests.sum.dataPoints[0].startTimeUnixNano);
    assert.equal(byName.get('orders_uptime_seconds').gauge.dataPoints[0].asDouble, 3.2);
    const h = byName.get('latency_seconds').histogram.dataPoints[0];
    assert.deepEqual(h.explicitBounds, [0.1, 1]);
    assert.deepEqual(h.bucketCounts, [2, 3, 1]);
    assert.equal(h.count, 6);
    assert.equal(h.sum, 3.5);
  } finally {
    await m.stop();
    receiver.close();
  }
});
