// The registry against the rules of Prometheus's text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), and the process metrics against
// the names and labels prom-client gave them (dashboards read them).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { renderOpenMetrics, sendExposition } from './exposition.js';
import { CounterFamily, family, HistogramFamily, observe } from './families.js';
import { counter, createMetricsRegistry, gauge, histogram, Registry } from './registry.js';

// One line of the format: a comment (# HELP / # TYPE), or a sample: name, optional labels
// (name="value" pairs, values with \\, \" and \n escaped), a space, a float.
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = '(?:[-+]?(?:\\d+\\.?\\d*(?:[eE][-+]?\\d+)?|\\.\\d+)|NaN|[-+]Inf)';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*)?\\})? (${VALUE})$`);
const HELP = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Parses exposition text by the format's grammar; throws at the first line that breaks it. */
function parse(text: string): Map<string, { type: string; samples: string[] }> {
  assert.ok(text.endsWith('\n'), 'the text ends with a newline');
  const families = new Map<string, { type: string; samples: string[] }>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const help = HELP.exec(line);
    if (help) {
      assert.ok(!families.has(help[1]!), `family ${help[1]} appears twice`);
      current = help[1]!;
      continue;
    }
    const type = TYPE.exec(line);
    if (type) {
      assert.equal(type[1], current, `TYPE of ${type[1]} follows its HELP`);
      families.set(current!, { type: type[2]!, samples: [] });
      continue;
    }
    const s = SAMPLE.exec(line);
    assert.ok(s, `not a valid line: ${JSON.stringify(line)}`);
    const f = families.get(current!);
    assert.ok(f, `sample before any TYPE: ${line}`);
    const base = f.type === 'histogram' ? s[1]!.replace(/_(bucket|sum|count)$/, '') : s[1];
    assert.equal(base, current, `sample ${s[1]} is grouped under its own family, not ${current}`);
    f.samples.push(line);
  }
  return families;
}

test('counters, gauges and histograms render by the 0.0.4 grammar, escaped', async () => {
  const r = new Registry();
  const c = counter(r, {
    name: 'requests_total',
    help: 'Requests.\nBy "path" \\ status.',
    labelNames: ['path'],
  });
  c.inc({ path: '/a"b\\c\nd' });
  c.inc({ path: '/' }, 2);
  const g = gauge(r, { name: 'temperature', help: 'Now.' });
  g.set(-1.5);
  const h = histogram(r, {
    name: 'latency_seconds',
    help: 'Latency.',
    labelNames: ['route'],
    buckets: [0.1, 1],
  });
  h.observe({ route: 'x' }, 0.05);
  h.observe({ route: 'x' }, 0.5);
  h.observe({ route: 'x' }, 5);
  const special = gauge(r, { name: 'special', help: 'NaN and infinities.', labelNames: ['k'] });
  special.set({ k: 'nan' }, NaN);
  special.set({ k: 'inf' }, Infinity);
  special.set({ k: 'minf' }, -Infinity);

  const text = await r.metrics();
  const f = parse(text);
  assert.deepEqual([...f.keys()], ['requests_total', 'temperature', 'latency_seconds', 'special']);
  assert.match(text, /^# HELP requests_total Requests\.\\nBy "path" \\\\ status\.$/m);
  assert.deepEqual(f.get('requests_total')!.samples, [
    'requests_total{path="/a\\"b\\\\c\\nd"} 1',
    'requests_total{path="/"} 2',
  ]);
  assert.deepEqual(f.get('temperature')!.samples, ['temperature -1.5']);
  assert.deepEqual(f.get('latency_seconds')!.samples, [
    'latency_seconds_bucket{route="x",le="0.1"} 1',
    'latency_seconds_bucket{route="x",le="1"} 2',
    'latency_seconds_bucket{route="x",le="+Inf"} 3',
    'latency_seconds_sum{route="x"} 5.55',
    'latency_seconds_count{route="x"} 3',
  ]);
  assert.deepEqual(f.get('special')!.samples, [
    'special{k="nan"} NaN',
    'special{k="inf"} +Inf',
    'special{k="minf"} -Inf',
  ]);
  assert.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

test('get-or-create by name; a counter never goes down; names and labels are checked', () => {
  const r = new Registry();
  const a = counter(r, { name: 'x_total', help: 'x', labelNames: ['k'] });
  assert.equal(counter(r, { name: 'x_total', help: 'x', labelNames: ['k'] }), a);
  assert.throws(() => gauge(r, { name: 'x_total', help: 'x' }), /another type/);
  assert.throws(() => a.inc({ k: 'v' }, -1), /cannot go down/);
  assert.throws(() => a.inc({ nope: 'v' } as never), /no label nope/);
  assert.throws(() => counter(r, { name: 'bad-name', help: 'x' }), /invalid metric name/);
  assert.throws(() => counter(r, { name: 'ok', help: 'x', labelNames: ['__reserved'] }), /invalid label/);
  assert.throws(() => histogram(r, { name: 'h', help: 'x', labelNames: ['le'] }), /reserved/);
});

test('a gauge collects before each scrape; the plain-number families render beside the registry', async () => {
  const r = new Registry();
  let n = 0;
  const g: ReturnType<typeof gauge> = gauge(r, {
    name: 'scrapes',
    help: 'Scrapes.',
    collect: (): void => g.set(++n),
  });
  const fam = family(r, () => new CounterFamily('fam_total', 'A family.'));
  fam.with({ a: '1' }).value += 3;
  const hist = family(r, () => new HistogramFamily('fam_seconds', 'A histogram family.', [0.5]));
  observe(hist.with({}), hist.bounds, 0.2);
  assert.equal(
    family(r, () => new CounterFamily('fam_total', 'again')),
    fam,
  );
  const f = parse(await r.metrics());
  assert.deepEqual(f.get('scrapes')!.samples, ['scrapes 1']);
  assert.deepEqual(f.get('fam_total')!.samples, ['fam_total{a="1"} 3']);
  assert.deepEqual(f.get('fam_seconds')!.samples, [
    'fam_seconds_bucket{le="0.5"} 1',
    'fam_seconds_bucket{le="+Inf"} 1',
    'fam_seconds_sum 0.2',
    'fam_seconds_count 1',
  ]);
  parse(await r.metrics());
  assert.equal((await r.getMetricsAsJSON()).find((m) => m.name === 'scrapes')!.values[0]!.value, 3);
});

test("the process metrics keep prom-client's names, types and labels", async () => {
  const r = createMetricsRegistry();
  const f = parse(await r.metrics());
  const expected: Record<string, string> = {
    process_cpu_user_seconds_total: 'counter',
    process_cpu_system_seconds_total: 'counter',
    process_cpu_seconds_total: 'counter',
    process_start_time_seconds: 'gauge',
    process_resident_memory_bytes: 'gauge',
    process_virtual_memory_bytes: 'gauge',
    process_heap_bytes: 'gauge',
    process_open_fds: 'gauge',
    process_max_fds: 'gauge',
    nodejs_eventloop_lag_seconds: 'gauge',
    nodejs_eventloop_lag_min_seconds: 'gauge',
    nodejs_eventloop_lag_max_seconds: 'gauge',
    nodejs_eventloop_lag_mean_seconds: 'gauge',
    nodejs_eventloop_lag_stddev_seconds: 'gauge',
    nodejs_eventloop_lag_p50_seconds: 'gauge',
    nodejs_eventloop_lag_p90_seconds: 'gauge',
    nodejs_eventloop_lag_p99_seconds: 'gauge',
    nodejs_active_resources: 'gauge',
    nodejs_active_resources_total: 'gauge',
    nodejs_active_handles: 'gauge',
    nodejs_active_handles_total: 'gauge',
    nodejs_active_requests: 'gauge',
    nodejs_active_requests_total: 'gauge',
    nodejs_heap_size_total_bytes: 'gauge',
    nodejs_heap_size_used_bytes: 'gauge',
    nodejs_external_memory_bytes: 'gauge',
    nodejs_heap_space_size_total_bytes: 'gauge',
    nodejs_heap_space_size_used_bytes: 'gauge',
    nodejs_heap_space_size_available_bytes: 'gauge',
    nodejs_version_info: 'gauge',
    nodejs_gc_duration_seconds: 'histogram',
  };
  assert.deepEqual(Object.fromEntries([...f].map(([name, x]) => [name, x.type])), expected);
  const text = await r.metrics();
  const rss = Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)![1]);
  assert.ok(rss > 1e6, `resident memory ${rss}`);
  assert.match(text, /^process_cpu_seconds_total \d/m);
  assert.match(text, /^nodejs_heap_space_size_used_bytes\{space="old"\} \d+$/m);
  assert.match(
    text,
    new RegExp(
      `^nodejs_version_info\\{version="${process.version}",major="\\d+",minor="\\d+",patch="\\d+"\\} 1$`,
      'm',
    ),
  );
  assert.match(text, /^nodejs_active_handles_total \d+$/m);
});

test('a large exposition is made and sent in pieces that join to the whole, its length in bytes', async () => {
  const r = new Registry();
  const g = gauge(r, { name: 'app_items', help: 'Items.', labelNames: ['item', 'city'] });
  for (let i = 0; i < 10_000; i++) g.set({ item: `item-${i}`, city: i % 2 ? 'Zürich' : '東京' }, i);
  for (const accept of [undefined, 'application/openmetrics-text; version=1.0.0']) {
    const m = await r.render(accept);
    assert.ok(m.body.length > 10, `${m.body.length} pieces`);
    for (const piece of m.body) assert.ok(piece.length < 120_000, `a piece of ${piece.length} bytes`);
    const whole = Buffer.concat(m.body).toString('utf8');
    assert.equal(
      whole,
      accept === undefined ? await r.metrics() : renderOpenMetrics(await r.getMetricsAsJSON()),
    );
    assert.match(whole, /^app_items\{item="item-9999",city="Zürich"\} 9999$/m);

    const server = createServer((_q, res) => sendExposition(res, m));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.headers.get('content-length'), String(body.length));
      assert.equal(body.toString('utf8'), whole);
      assert.equal(res.headers.get('content-type'), m.contentType);
    } finally {
      server.close();
    }
  }
});
