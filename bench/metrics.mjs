#!/usr/bin/env node
// `npm run bench:metrics`: the metrics role's scrape-and-adapt with 10 000 series, in JSON (mapped
// by rules: an array of 10 000 elements, a value and two labels each) and in Prometheus text
// (100 families of 100 series, passed through with a relabeling step). For each: the time from
// the scrape's request to the exposition rendered (the app's body served over loopback HTTP by a process of its own), and
// the RSS the process gains over SCRAPES scrapes. Beside it, in the same run, Prometheus's own
// `promtool check metrics` parsing the same text (a reference, not a peer doing the same work).
// Targets: 10 000 series mapped and exposed in ≤ 50 ms per scrape and ≤ 20 MB extra RSS.
//
//   node bench/metrics.mjs [--scrapes 30]

import { spawn, spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { installPeers, machineBasics, table } from './lib.mjs';
import { compileRules } from '../dist/metrics/json-rules.js';
import { Registry, counter, gauge } from '../dist/metrics/registry.js';
import { Scraper } from '../dist/metrics/scraper.js';
import { metricsSchema } from '../dist/metrics/config.js';

const SERIES = 10_000;
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
};
const SCRAPES = arg('scrapes', 30);

const json = JSON.stringify({
  items: Array.from({ length: SERIES }, (_, i) => ({
    name: `item-${i}`,
    shard: `s${i % 16}`,
    value: i * 1.5,
    ok: i % 3 !== 0,
  })),
});
let text = '';
for (let f = 0; f < 100; f++) {
  text += `# HELP app_family_${f}_total Requests of family ${f}.\n# TYPE app_family_${f}_total counter\n`;
  for (let s = 0; s < 100; s++)
    text += `app_family_${f}_total{path="/api/v1/resource/${s}",method="GET",code="200"} ${f * 100 + s}\n`;
}

// The app is a process of its own, as it is beside a sidecar: what serving its bodies costs is not
// counted in the RSS of the process that scrapes.
const app = spawn(
  process.execPath,
  [
    '-e',
    `const bodies = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const json = Buffer.from(bodies.json), text = Buffer.from(bodies.text);
const server = require('node:http').createServer((req, res) => {
  res.setHeader('content-type', req.url === '/json' ? 'application/json' : 'text/plain; version=0.0.4');
  res.end(req.url === '/json' ? json : text);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));`,
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
app.stdin.end(JSON.stringify({ json, text }));
const port = await new Promise((resolve, reject) => {
  app.stdout.once('data', (c) => resolve(Number(String(c).trim())));
  app.once('exit', (code) => reject(new Error(`the app exited ${code}`)));
});
process.on('exit', () => app.kill());
const server = { close: () => app.kill() };
const base = `http://127.0.0.1:${port}`;

// The scrape is driven by hand: a clock whose timers never fire, and scrapeOnce() awaited.
const clock = { now: () => Date.now(), setTimeout: () => ({ cancel() {} }) };

function scraper(name, target) {
  const registry = new Registry();
  const metrics = {
    up: gauge(registry, { name: 'pillion_app_scrape_up', help: 'x', labelNames: ['target'] }),
    duration: gauge(registry, {
      name: 'pillion_app_scrape_duration_seconds',
      help: 'x',
      labelNames: ['target'],
    }),
    series: gauge(registry, { name: 'pillion_app_scrape_series', help: 'x', labelNames: ['target'] }),
    scrapes: counter(registry, {
      name: 'pillion_app_scrapes_total',
      help: 'x',
      labelNames: ['target', 'result'],
    }),
    problems: counter(registry, {
      name: 'pillion_app_scrape_problems_total',
      help: 'x',
      labelNames: ['target', 'reason'],
    }),
  };
  const t = metricsSchema.parse({ listen: null, scrape: { [name]: target } }).scrape[name];
  const labels = [
    ['environment', 'prod'],
    ['version', '1.4.2'],
    ['host', 'node-3'],
  ];
  const s = new Scraper(name, t, {
    clock,
    logger: pino({ level: 'silent' }),
    registry,
    metrics,
    labels,
    ...(t.format === 'json' ? { mapper: compileRules(t.rules, t.maxLabelValueLength, labels) } : {}),
  });
  registry.setCollector('app', { families: () => s.families() });
  return { s, registry };
}

async function run(label, name, target) {
  const { s, registry } = scraper(name, target);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const times = [];
  let bytes = 0;
  let rss1 = rss0;
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = process.hrtime.bigint();
    await s.scrapeOnce();
    const out = await registry.metrics();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    bytes = out.length;
    if (i === 0) rss1 = process.memoryUsage().rss;
    if (s.lastError) throw new Error(`${label}: ${s.lastError}`);
  }
  global.gc?.();
  const rss2 = process.memoryUsage().rss;
  const series = s.families().reduce((n, f) => n + f.values.length, 0);
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const p95 = times[Math.floor(times.length * 0.95)];
  return {
    label,
    series,
    median,
    p95,
    extraMb: (rss2 - rss0) / 1048576,
    perScrapeMb: (rss2 - rss1) / 1048576 / Math.max(1, SCRAPES - 1),
    bytes,
  };
}

const results = [
  await run('JSON, 10 000 elements mapped by one rule (value, 2 labels, 3 enrichment labels)', 'json', {
    url: `${base}/json`,
    format: 'json',
    interval: '10s',
    timeout: '5s',
    rules: [
      {
        name: 'app_item_value',
        path: '$.items[*]',
        value: '$.value',
        labels: { item: '$.name', shard: '$.shard' },
      },
    ],
  }),
  await run('Prometheus text, 100 families × 100 series passed through (relabel: addLabel)', 'text', {
    url: `${base}/text`,
    format: 'prometheus',
    interval: '10s',
    timeout: '5s',
    relabel: [{ action: 'addLabel', label: 'team', value: 'shop' }],
  }),
];
server.close();

// StatsD: a sender process paces RATE lines a second for SECONDS seconds (20 lines to a datagram)
// at a receiver in this process; received vs sent, and this process's CPU while receiving.
const RATE = arg('statsd-rate', 100_000);
const SECONDS = arg('statsd-seconds', 5);
const { StatsdReceiver } = await import('../dist/metrics/statsd.js');
const sreg = new Registry();
const receiver = new StatsdReceiver(
  metricsSchema.parse({ listen: null, statsd: { listen: '127.0.0.1:0', receiveBuffer: '8MiB' } }).statsd,
  {
    logger: pino({ level: 'silent' }),
    clock,
    registry: sreg,
    labels: [],
    lines: counter(sreg, { name: 'l', help: 'l' }),
    problems: counter(sreg, { name: 'p', help: 'p', labelNames: ['reason'] }),
  },
);
const { port: statsdPort } = await receiver.start();
const sender = `
const s = require('node:dgram').createSocket('udp4');
const rate = ${RATE}, seconds = ${SECONDS}, perTick = rate / 100;
let sent = 0, tick = 0;
const datagrams = [];
for (let d = 0; d < perTick / 20; d++) {
  const lines = [];
  for (let i = 0; i < 20; i++) lines.push(i % 4 === 3 ? 'app.latency.r' + (d % 50) + ':' + (i * 3) + '|ms' : 'app.requests.r' + (d % 50) + ':1|c|#code:' + (200 + i));
  datagrams.push(Buffer.from(lines.join('\\n')));
}
const t = setInterval(() => {
  for (const d of datagrams) s.send(d, ${statsdPort}, '127.0.0.1');
  sent += perTick;
  if (++tick >= seconds * 100) { clearInterval(t); setTimeout(() => { process.stdout.write(String(sent)); s.close(); }, 200); }
}, 10);
`;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const sentLines = await new Promise((resolve, reject) => {
  const child = spawn(process.execPath, ['-e', sender], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.on('exit', (code) =>
    code === 0 ? resolve(Number(out)) : reject(new Error(`sender exited ${code}`)),
  );
});
await new Promise((r) => setTimeout(r, 300));
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
receiver.stop();
const statsd = {
  sent: sentLines,
  received: receiver.received,
  wall,
  cpuPercent: ((cpu.user + cpu.system) / 1e6 / wall) * 100,
};

let promtool;
{
  installPeers('promtool');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // promtool lints as well as parses; its findings (if any) do not stop the parse.
  promtool = `${ms.toFixed(0)} ms for the same 10 000-series text (exit ${r.status}${r.stdout.trim() ? `, ${r.stdout.trim().split('\n').length} lint findings` : ''}), a process start included`;
}

const fmt = (n, d = 1) => n.toFixed(d);
const m = machineBasics();
console.log(
  `\nbench:metrics, ${m.date.slice(0, 16)}Z, Node ${m.node}, ${m.nproc} cores (${m.cpu}), load ${m.loadavg}, ${SCRAPES} scrapes each\n`,
);
console.log(
  table(
    [
      'case',
      'series',
      'scrape → exposition, median',
      'p95',
      'extra RSS after all scrapes',
      'RSS growth per scrape',
      'exposition size',
    ],
    results.map((r) => [
      r.label,
      String(r.series),
      `${fmt(r.median)} ms`,
      `${fmt(r.p95)} ms`,
      `${fmt(r.extraMb)} MB`,
      `${fmt(r.perScrapeMb, 2)} MB`,
      `${fmt(r.bytes / 1024, 0)} KiB`,
    ]),
  ),
);
console.log(`\npromtool check metrics: ${promtool}`);
console.log(
  `\nStatsD: ${statsd.sent} lines sent at ${RATE} lines/s for ${SECONDS} s (20 to a datagram), ${statsd.received} received (${(((statsd.sent - statsd.received) / statsd.sent) * 100).toFixed(2)}% lost), receiving process at ${statsd.cpuPercent.toFixed(0)}% of one core`,
);
console.log(
  'Targets: ≤ 50 ms per scrape, ≤ 20 MB extra RSS; StatsD 100 000 lines/s on one core without loss.',
);
