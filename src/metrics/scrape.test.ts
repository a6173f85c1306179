// The metrics role's scrape-and-adapt: JSON mapped by rules (arrays, maps, value mappings, the
// series cap), Prometheus text passed through with relabeling, enrichment, OpenMetrics by Accept,
// a failed scrape dropping the app's series, and bad input counted with its reason. The app is a
// real HTTP server on port 0; scrapes are driven by a fake clock.

import assert from 'node:assert/strict';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { formatIssue } from '../config/index.js';
import { FakeClock } from '../lib/clock.js';
import { parsePillionConfig } from '../roles.js';
import type { MetricsConfig } from './config.js';
import { negotiate } from './exposition.js';
import { MetricsModule } from './metrics-module.js';
import { parsePrometheusText } from './prom-text.js';
import { createMetricsRegistry, Registry } from './registry.js';

let answer: (req: IncomingMessage, res: ServerResponse) => void = (_q, s) => s.end('{}');
let app: Server;
let appUrl = '';

before(async () => {
  app = createServer((req, res) => answer(req, res));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
});
after(() => app.close());

async function config(yaml: string, env: Record<string, string> = {}): Promise<MetricsConfig> {
  const loaded = await parsePillionConfig(yaml, 'pillion.yaml', env);
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
  return loaded.config.metrics!;
}

async function issues(yaml: string): Promise<string[]> {
  const loaded = await parsePillionConfig(yaml, 'pillion.yaml', {});
  assert.ok(!loaded.ok, 'the config is accepted');
  return loaded.issues.map(formatIssue);
}

function json(body: unknown) {
  return (_q: IncomingMessage, s: ServerResponse) => {
    s.setHeader('content-type', 'application/json');
    s.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}

async function started(cfg: MetricsConfig, env: Record<string, string> = {}) {
  const clock = new FakeClock();
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const m = new MetricsModule(cfg, { clock, logger, metrics: registry, env });
  await m.start();
  return { clock, registry, m, lines };
}

/** Lets the scrape the clock fired finish (a real HTTP exchange). */
async function scraped(s: { m: MetricsModule }, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((s.m.status() as { targets: { scrapes: number }[] }).targets.some((t) => t.scrapes < n)) {
    if (Date.now() > deadline) throw new Error(`scrape ${n} did not finish`);
    await new Promise((r) => setImmediate(r));
  }
}

function fetch(url: string, accept?: string): Promise<{ type: string; body: string; status: number }> {
  return new Promise((resolve, reject) => {
    get(url, { headers: accept ? { accept } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ type: res.headers['content-type'] ?? '', body, status: res.statusCode ?? 0 }),
      );
    }).on('error', reject);
  });
}

const lineOf = (text: string, prefix: string) => text.split('\n').filter((l) => l.startsWith(prefix));

test("the seed's JSON document becomes series: counters, gauges, arrays, maps, value mappings, enrichment", async () => {
  answer = json({
    requests: 12,
    errors: 1,
    uptime: 3.2,
    status: 'up',
    queues: [
      { name: 'orders', depth: 4 },
      { name: 'mail', depth: '7' },
    ],
    workers: { w1: { busy: true }, w2: { busy: false } },
  });
  const cfg = await config(
    `
metrics:
  listen: 127.0.0.1:0
  enrich:
    labels: { env: "\${ENVIRONMENT}", version: "1.4.2" }
    hostname: host
    kubernetes: {}
  scrape:
    orders:
      url: ${appUrl}/internal/metrics
      format: json
      rules:
        - { name: orders_requests_total, type: counter, help: Requests served., value: $.requests }
        - { name: orders_errors_total, type: counter, value: $.errors }
        - { name: orders_uptime_seconds, value: $.uptime }
        - { name: orders_up, value: $.status, valueMap: { up: 1, down: 0 } }
        - { name: orders_queue_depth, path: "$.queues[*]", value: $.depth, labels: { queue: $.name } }
        - { name: orders_worker_busy, path: "$.workers.*", value: $.busy, labels: { worker: "@key", pool: main } }
`,
    { ENVIRONMENT: 'staging' },
  );
  const s = await started(cfg, { HOSTNAME: 'node-7', POD_NAME: 'orders-1', POD_NAMESPACE: 'shop' });
  try {
    await s.clock.advance(0);
    await scraped(s, 1);
    const text = await s.registry.metrics();
    const enriched = 'env="staging",version="1.4.2",host="node-7",pod="orders-1",namespace="shop"';
    assert.deepEqual(lineOf(text, 'orders_requests_total'), [`orders_requests_total{${enriched}} 12`]);
    assert.match(
      text,
      /# HELP orders_requests_total Requests served\.\n# TYPE orders_requests_total counter/,
    );
    assert.deepEqual(lineOf(text, 'orders_up{'), [`orders_up{${enriched}} 1`]);
    assert.deepEqual(lineOf(text, 'orders_queue_depth'), [
      `orders_queue_depth{queue="orders",${enriched}} 4`,
      `orders_queue_depth{queue="mail",${enriched}} 7`,
    ]);
    assert.deepEqual(lineOf(text, 'orders_worker_busy'), [
      `orders_worker_busy{worker="w1",pool="main",${enriched}} 1`,
      `orders_worker_busy{worker="w2",pool="main",${enriched}} 0`,
    ]);
    assert.match(text, /pillion_app_scrape_up\{target="orders"\} 1/);
    assert.match(text, /pillion_app_scrape_series\{target="orders"\} 8/);
    assert.match(text, /pillion_app_scrapes_total\{target="orders",result="ok"\} 1/);
    // /top's numbers: this process (pillion's, here) with its CPU seconds and memory.
    assert.match(
      text,
      new RegExp(
        `^pillion_top_process_resident_memory_bytes\\{pid="${process.pid}",command="node"\\} \\d+$`,
        'm',
      ),
    );
    assert.match(
      text,
      new RegExp(
        `^pillion_top_process_cpu_seconds_total\\{pid="${process.pid}",command="node"\\} [\\d.]+$`,
        'm',
      ),
    );
    assert.match(text, /^pillion_top_host_memory_used_bytes \d+$/m);
    // The same on the listener of its own, in OpenMetrics when asked.
    const a = s.m.address()!;
    const om = await fetch(
      `http://127.0.0.1:${a.port}/metrics`,
      'application/openmetrics-text;version=1.0.0',
    );
    assert.equal(om.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.match(
      om.body,
      /# TYPE orders_requests counter\n# HELP orders_requests Requests served\.\norders_requests_total\{/,
    );
    assert.ok(om.body.endsWith('# EOF\n'));
    const plain = await fetch(`http://127.0.0.1:${a.port}/metrics`);
    assert.equal(plain.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal((await fetch(`http://127.0.0.1:${a.port}/other`)).status, 404);
  } finally {
    await s.m.stop();
  }
});

test('a failed scrape drops the series (staleness), up goes to 0, and they come back with the app', async () => {
  answer = json({ requests: 5 });
  const cfg = await config(`
metrics:
  listen: null
  scrape:
    app: { url: ${appUrl}/m, format: json, interval: 10s, timeout: 1s, rules: [{ name: app_requests_total, type: counter, value: $.requests }] }
`);
  const s = await started(cfg);
  try {
    await s.clock.advance(0);
    await scraped(s, 1);
    assert.match(await s.registry.metrics(), /^app_requests_total 5$/m);
    answer = (_q, res) => {
      res.statusCode = 503;
      res.end('down');
    };
    await s.clock.advance(10_000);
    await scraped(s, 2);
    let text = await s.registry.metrics();
    assert.doesNotMatch(text, /^app_requests_total/m);
    assert.match(text, /pillion_app_scrape_up\{target="app"\} 0/);
    assert.match(text, /pillion_app_scrapes_total\{target="app",result="http_status"\} 1/);
    assert.match(s.m.readiness().reason ?? '', /scrape app: http_status: status 503/);
    assert.equal(s.m.readiness().ready, true);
    answer = json({ requests: 9 });
    await s.clock.advance(10_000);
    await scraped(s, 3);
    text = await s.registry.metrics();
    assert.match(text, /^app_requests_total 9$/m);
    assert.match(text, /pillion_app_scrape_up\{target="app"\} 1/);
  } finally {
    await s.m.stop();
  }
});

test('without a timeout, a scrape may take 5 s or the interval when that is shorter, as Prometheus', async () => {
  answer = () => {}; // never answers
  const cfg = await config(`
metrics:
  listen: null
  scrape:
    app: { url: ${appUrl}/m, format: json, interval: 2s, rules: [{ name: app_requests_total, type: counter, value: $.requests }] }
`);
  assert.equal(cfg.scrape.app?.timeout, undefined);
  const s = await started(cfg);
  try {
    await s.clock.advance(0);
    await s.clock.advance(1_999);
    assert.doesNotMatch(await s.registry.metrics(), /result="timeout"/);
    await s.clock.advance(1);
    await scraped(s, 1);
    assert.match(await s.registry.metrics(), /pillion_app_scrapes_total\{target="app",result="timeout"\} 1/);
    assert.match(s.m.readiness().reason ?? '', /no complete answer within 2000 ms/);
  } finally {
    await s.m.stop();
  }
});

test('passed-through text from scrape to scrape: new values, series gone, a bad body drops them all, bodies larger than before', async () => {
  let body = 'a{x="1"} 1\na{x="2"} 2\nb 3\n';
  // In two writes, so no content-length: the buffer grows as the body comes.
  answer = (_q, res) => {
    res.write(body.slice(0, body.length >> 1));
    res.end(body.slice(body.length >> 1));
  };
  const cfg = await config(`
metrics:
  listen: null
  enrich: { labels: { env: prod } }
  scrape:
    app: { url: ${appUrl}/m, format: prometheus, interval: 10s, timeout: 1s }
`);
  const s = await started(cfg);
  const next = async (n: number) => {
    await s.clock.advance(n === 1 ? 0 : 10_000);
    await scraped(s, n);
    return (await s.registry.metrics()).split('\n').filter((l) => /^[ab]\b|^a\{/.test(l));
  };
  try {
    assert.deepEqual(await next(1), ['a{x="1",env="prod"} 1', 'a{x="2",env="prod"} 2', 'b{env="prod"} 3']);
    body = 'a{x="2"} 20\nb 30\n';
    assert.deepEqual(await next(2), ['a{x="2",env="prod"} 20', 'b{env="prod"} 30']);
    body = 'a{x="2"} 21\nb{ 31\n';
    assert.deepEqual(await next(3), []);
    // Larger than any body before: read into a grown buffer, every series whole.
    body = `a{x="2"} 22\n${Array.from({ length: 3000 }, (_, i) => `a{x="${i + 10}",pad="${'p'.repeat(40)}"} ${i}`).join('\n')}\nb 32\n`;
    const lines = await next(4);
    assert.equal(lines.length, 3002);
    assert.equal(lines[0], 'a{x="2",env="prod"} 22');
    assert.equal(lines[3000], `a{x="3009",pad="${'p'.repeat(40)}",env="prod"} 2999`);
    assert.equal(lines[3001], 'b{env="prod"} 32');
    body = 'b 33\n';
    assert.deepEqual(await next(5), ['b{env="prod"} 33']);
  } finally {
    await s.m.stop();
  }
});

test('bad input is counted with its reason and logged at a rate limit: not JSON, no match, NaN, long labels, duplicates', async () => {
  const cfg = await config(`
metrics:
  listen: null
  scrape:
    app:
      url: ${appUrl}/m
      format: json
      maxLabelValueLength: 8
      rules:
        - { name: a, value: $.missing }
        - { name: b, value: $.text }
        - { name: c, path: "$.items[*]", value: $.v, labels: { id: $.id } }
`);
  const s = await started(cfg);
  try {
    answer = json('{"requests": 1,');
    await s.clock.advance(0);
    await scraped(s, 1);
    let text = await s.registry.metrics();
    assert.match(text, /pillion_app_scrapes_total\{target="app",result="bad_json"\} 1/);
    assert.ok(s.lines.some((l) => l.reason === 'bad_json'));
    answer = json({
      text: 'NaN',
      items: [
        { id: 'short', v: 1 },
        { id: 'much-too-long-an-id', v: 2 },
        { id: 'short', v: 3 },
        { id: 'x', v: null },
      ],
    });
    await s.clock.advance(10_000);
    await scraped(s, 2);
    text = await s.registry.metrics();
    for (const [reason, n] of [
      ['no_match', 1],
      ['not_a_number', 2],
      ['label_too_long', 1],
      ['duplicate', 1],
    ] as const)
      assert.match(
        text,
        new RegExp(`pillion_app_scrape_problems_total\\{target="app",reason="${reason}"\\} ${n}\\b`),
      );
    assert.deepEqual(lineOf(text, 'c{'), ['c{id="short"} 1']);
    // The same problems again within the minute are counted but not logged again.
    const logged = s.lines.length;
    await s.clock.advance(10_000);
    await scraped(s, 3);
    assert.equal(s.lines.length, logged);
    assert.match(await s.registry.metrics(), /reason="no_match"\} 2\b/);
  } finally {
    await s.m.stop();
  }
});

test('the series cap fails the scrape with a clear error; a body over maxBodySize too', async () => {
  answer = json({ items: Array.from({ length: 100 }, (_, i) => ({ id: `i${i}`, v: i })) });
  const cfg = await config(`
metrics:
  listen: null
  scrape:
    app:
      url: ${appUrl}/m
      format: json
      maxSeries: 20
      rules: [{ name: item, path: "$.items[*]", value: $.v, labels: { id: $.id } }]
    big:
      url: ${appUrl}/m
      format: json
      maxBodySize: 1KiB
      rules: [{ name: item2, path: "$.items[*]", value: $.v, labels: { id: $.id } }]
`);
  const s = await started(cfg);
  try {
    await s.clock.advance(0);
    await scraped(s, 1);
    const text = await s.registry.metrics();
    assert.doesNotMatch(text, /^item/m);
    assert.match(text, /result="series_limit"\} 1/);
    assert.match(text, /target="big",result="too_large"\} 1/);
    const status = s.m.status() as { targets: { name: string; lastError?: string }[] };
    assert.match(
      status.targets[0]!.lastError!,
      /100 series exceed maxSeries 20; raise metrics.scrape.app.maxSeries or drop families with relabel/,
    );
  } finally {
    await s.m.stop();
  }
});

test('Prometheus text is passed through with relabeling, and kept clear of pillion\u2019s own names', async () => {
  answer = (_q, res) => {
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(`# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",method="get"} 1027 1395066363000
http_requests_total{code="400",method="post"} 3
# TYPE debug_things gauge
debug_things 1
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 2
latency_seconds_bucket{le="+Inf"} 3
latency_seconds_sum 0.4
latency_seconds_count 3
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
weird{path="C:\\\\dir\\"x\\"\\n"} NaN
`);
  };
  const registry = createMetricsRegistry();
  const cfg = await config(`
metrics:
  listen: null
  enrich: { labels: { method: sidecar } }
  scrape:
    app:
      url: ${appUrl}/metrics
      format: prometheus
      relabel:
        - { action: drop, name: "debug_.*" }
        - { action: rename, name: "latency_(.*)", to: "app_latency_$1" }
        - { action: addLabel, name: "http_.*", label: team, value: shop }
        - { action: dropLabel, label: code }
`);
  const clock = new FakeClock();
  const m = new MetricsModule(cfg, { clock, logger: pino({ level: 'silent' }), metrics: registry, env: {} });
  await m.start();
  try {
    await clock.advance(0);
    await scraped({ m }, 1);
    const text = await registry.metrics();
    assert.deepEqual(lineOf(text, 'http_requests_total{'), [
      'http_requests_total{exported_method="get",method="sidecar",team="shop"} 1027',
      'http_requests_total{exported_method="post",method="sidecar",team="shop"} 3',
    ]);
    assert.doesNotMatch(text, /debug_things/);
    assert.match(
      text,
      /# TYPE app_latency_seconds histogram\napp_latency_seconds_bucket\{le="0.1",method="sidecar"\} 2/,
    );
    assert.match(text, /^app_latency_seconds_count\{method="sidecar"\} 3$/m);
    // The app's own process_cpu_seconds_total would collide with pillion's: it is renamed, counted.
    assert.match(text, /^app_process_cpu_seconds_total\{method="sidecar"\} 12.5$/m);
    assert.equal(lineOf(text, '# TYPE process_cpu_seconds_total').length, 1);
    assert.match(text, /reason="name_collision"\} 1/);
    assert.match(text, /^weird\{path="C:\\\\dir\\"x\\"\\n",method="sidecar"\} NaN$/m);
    // What pillion writes, Prometheus's own format, parses back to the same families.
    const again = parsePrometheusText(text);
    assert.ok(again.some((f) => f.name === 'app_latency_seconds' && f.type === 'histogram'));
  } finally {
    await m.stop();
  }
});

test('a text body that does not parse fails the scrape with its line number', async () => {
  answer = (_q, res) => res.end('good 1\nbad{x="1" 2\n');
  const cfg = await config(`
metrics:
  listen: null
  scrape: { app: { url: ${appUrl}/metrics, format: prometheus } }
`);
  const s = await started(cfg);
  try {
    await s.clock.advance(0);
    await scraped(s, 1);
    assert.doesNotMatch(await s.registry.metrics(), /^good/m);
    const t = (s.m.status() as { targets: { lastError?: string }[] }).targets[0]!;
    assert.match(t.lastError!, /^bad_text: line 2: expected , or \} in bad/);
  } finally {
    await s.m.stop();
  }
});

test('OpenMetrics input: counters named without _total, exemplars and # EOF', () => {
  const f = parsePrometheusText(`# TYPE jobs counter
# HELP jobs Jobs done.
jobs_total{kind="a"} 3 # {trace_id="abc"} 1 1.6e9
jobs_created{kind="a"} 1.6e9
# EOF
ignored 1
`);
  assert.deepEqual(
    f.map((x) => [x.name, x.type, x.values.length]),
    [['jobs_total', 'counter', 2]],
  );
  assert.equal(f[0]!.values[0]!.value, 3);
});

test('Accept negotiation prefers OpenMetrics only when the scraper weighs it at least as much as text', () => {
  assert.equal(negotiate(undefined), 'text');
  assert.equal(negotiate('text/plain'), 'text');
  assert.equal(
    negotiate(
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
    ),
    'openmetrics',
  );
  assert.equal(negotiate('application/openmetrics-text;q=0.2,text/plain'), 'text');
  assert.equal(negotiate('application/openmetrics-text;version=2.0.0'), 'text');
});

test('the config refuses what cannot work, at its line', async () => {
  const out = await issues(`metrics:
  scrape:
    app:
      url: ftp://x/m
      format: json
    text:
      url: http://x/m
      format: prometheus
      interval: 1s
      timeout: 2s
      rules: [{ name: a }]
      relabel: [{ action: rename, name: "a" }]
    typo:
      url: http://x/m
      format: json
      rules: [{ name: b, path: "$.items[", value: "$[?(@.x > 1)]" }]
`);
  const joined = out.join('\n');
  assert.match(joined, /:4:\d+ .*url/);
  assert.match(joined, /a json target needs rules/);
  assert.match(joined, /timeout is longer than interval/);
  assert.match(joined, /rules map JSON; a prometheus target is passed through/);
  assert.match(joined, /action rename needs `to`/);
  assert.match(joined, /:16:\d+ .*"\$\.items\[" has an unclosed bracket, parenthesis or quote/);
  assert.doesNotMatch(joined, /\?\(@\.x > 1\)/);
});
