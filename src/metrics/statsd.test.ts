// StatsD over real UDP on port 0: counters with sample rates, gauges set and moved, timers and
// histograms into buckets, DogStatsD tags as labels, names made Prometheus names, enrichment, the
// series bound and bad lines counted with their reasons.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { pino } from 'pino';
import { formatIssue } from '../config/index.js';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { parsePillionConfig } from '../roles.js';
import { MetricsModule } from './metrics-module.js';
import { createMetricsRegistry } from './registry.js';

async function started(yaml: string) {
  const loaded = await parsePillionConfig(yaml, 'pillion.yaml', {});
  assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
  const registry = createMetricsRegistry();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const m = new MetricsModule(loaded.config.metrics!, {
    clock: new FakeClock(),
    logger,
    metrics: registry,
    env: {},
  });
  await m.start();
  const socket = createSocket('udp4');
  let sent = 0;
  const send = async (datagram: string) => {
    sent += datagram.split('\n').filter(Boolean).length;
    await new Promise<void>((resolve, reject) =>
      socket.send(datagram, m.statsdAddress!.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
    );
    const want = sent;
    return waitFor(
      async () => {
        const text = await registry.metrics();
        return new RegExp(`^pillion_statsd_lines_total ${want}$`, 'm').test(text) ? text : undefined;
      },
      { what: `${want} lines received` },
    );
  };
  return { m, registry, send, lines, close: async () => (socket.close(), await m.stop()) };
}

test('counters, gauges, timers, histograms and tags become Prometheus series', async () => {
  const s = await started(`
metrics:
  listen: null
  enrich: { labels: { env: prod } }
  statsd: { listen: 127.0.0.1:0, buckets: [0.01, 0.1, 1] }
`);
  try {
    await s.send('orders.created:1|c\norders.created:2|c|@0.5\norders.created:1|c|#region:eu,tier:gold');
    await s.send('queue.depth:10|g\nqueue.depth:+5|g\nqueue.depth:-3|g\nworkers:4|g');
    await s.send('db.query:5|ms\ndb.query:50|ms\ndb.query:500|ms|@0.5\npayload.size:0.5|h');
    const text = await s.send('process.cpu.seconds.total:1|c');
    assert.match(
      text,
      /# TYPE orders_created counter\norders_created\{env="prod"\} 5\norders_created\{region="eu",tier="gold",env="prod"\} 1\n/,
    );
    assert.match(text, /^queue_depth\{env="prod"\} 12$/m);
    assert.match(text, /^workers\{env="prod"\} 4$/m);
    assert.match(text, /# TYPE db_query histogram\n/);
    for (const [le, n] of [
      ['0.01', 1],
      ['0.1', 2],
      ['1', 4],
      ['+Inf', 4],
    ] as const)
      assert.match(
        text,
        new RegExp(`^db_query_bucket\\{env="prod",le="${le.replace('+', '\\+')}"\\} ${n}$`, 'm'),
      );
    assert.match(text, /^db_query_sum\{env="prod"\} 1.055$/m);
    assert.match(text, /^db_query_count\{env="prod"\} 4$/m);
    assert.match(text, /^payload_size_bucket\{env="prod",le="1"\} 1$/m);
    assert.match(text, /^pillion_statsd_series 7$/m);
    // A StatsD name that is one of pillion's own is exposed as app_NAME.
    assert.match(text, /^app_process_cpu_seconds_total\{env="prod"\} 1$/m);
  } finally {
    await s.close();
  }
});

test('bad lines and series past the bound are dropped, counted with their reason, logged at a rate limit', async () => {
  const s = await started(`
metrics:
  listen: null
  statsd: { listen: 127.0.0.1:0, maxSeries: 2, prefix: legacy_ }
`);
  try {
    await s.send('a:1|c\nb:1|g');
    const text = await s.send(
      [
        'c:1|c',
        'a:1|c|#new:series',
        'no-colon',
        'x:1',
        'y:abc|c',
        'z:1|q',
        'w:1|c|@2',
        'v:NaN|g',
        'a:1|g',
        'a:2|c',
      ].join('\n'),
    );
    assert.match(text, /^legacy_a 3$/m);
    assert.match(text, /^legacy_b 1$/m);
    assert.doesNotMatch(text, /^legacy_c /m);
    assert.match(text, /^pillion_statsd_problems_total\{reason="series_limit"\} 2$/m);
    assert.match(text, /^pillion_statsd_problems_total\{reason="bad_line"\} 4$/m);
    assert.match(text, /^pillion_statsd_problems_total\{reason="bad_value"\} 3$/m);
    const logged = s.lines.filter((l) => l.msg === 'a StatsD line is dropped');
    assert.equal(logged.length, 2, 'one line per reason within the minute');
    assert.ok(logged.some((l) => l.line === 'no-colon'));
  } finally {
    await s.close();
  }
});
