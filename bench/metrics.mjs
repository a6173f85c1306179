#!/usr/bin/env node
// `npm run bench:metrics`: the metrics role's scrape-and-adapt with 10 000 series, in JSON (mapped
// by rules: an array of 10 000 elements, a value and two labels each) and in Prometheus text
// (100 families of 100 series, passed through with a relabeling step), the app's bodies served
// over loopback HTTP by a process of its own. Two ways:
//  - in this process, scrape after scrape with no pause: the time from the scrape's request to
//    the exposition rendered, and the RSS gained over SCRAPES scrapes (after a full collection),
//    each case measured after five unmeasured scrapes of every case;
//  - in `pillion run` as users start it, scraping every --sidecar-interval seconds (10, the
//    default interval): pillion's own scrape duration, the time of GET /metrics (the exposition
//    of 10 000 series, as Prometheus fetches it), and the resident memory against a twin process
//    whose app serves one series, read at the same moments (--sidecar-pairs pairs side by side).
// Beside it, in the same run, Prometheus's own `promtool check metrics` parsing the same text (a
// reference, not a peer doing the same work), and StatsD received at 100 000 lines/s.
// Targets: 10 000 series mapped and exposed in ≤ 50 ms per scrape and ≤ 20 MB extra RSS.
//
//   node bench/metrics.mjs [--scrapes 30] [--sidecar-interval 10] [--sidecar-rounds 12]
//                          [--sidecar-pairs 2] [--statsd-seconds 5] [--pillion BIN]

import { spawn, spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ROOT,
  freePort,
  get,
  installPeers,
  machineBasics,
  onExit,
  sleep,
  startProcess,
  statusMb,
  stopProcess,
  table,
  waitFor200,
} from './lib.mjs';
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
// Another build's bin for the sidecar processes (to compare two), as bench:footprint's --pillion.
const BIN = (() => {
  const i = process.argv.indexOf('--pillion');
  return i === -1 ? undefined : path.resolve(process.argv[i + 1]);
})();

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
const served = { '/json': bodies.json, '/text': bodies.text, '/json1': bodies.json1, '/text1': bodies.text1 };
for (const k of Object.keys(served)) served[k] = Buffer.from(served[k]);
const server = require('node:http').createServer((req, res) => {
  res.setHeader('content-type', req.url.startsWith('/json') ? 'application/json' : 'text/plain; version=0.0.4');
  res.end(served[req.url]);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));`,
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);
// One series of each format, for the sidecar processes that measure what 10 000 add.
const json1 = JSON.stringify({ items: [{ name: 'item-0', shard: 's0', value: 1.5, ok: true }] });
const text1 = text.slice(0, text.indexOf('\n', text.indexOf('app_family_0_total{')) + 1);
app.stdin.end(JSON.stringify({ json, text, json1, text1 }));
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

async function run(label, name, target, scrapes = SCRAPES) {
  const { s, registry } = scraper(name, target);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const times = [];
  let bytes = 0;
  let rss1 = rss0;
  for (let i = 0; i < scrapes; i++) {
    const t0 = process.hrtime.bigint();
    await s.scrapeOnce();
    // As GET /metrics makes it: in pieces, each encoded as the socket write does.
    const out = await registry.render();
    bytes = 0;
    for (const piece of out.body) bytes += Buffer.byteLength(piece);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
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
    perScrapeMb: (rss2 - rss1) / 1048576 / Math.max(1, scrapes - 1),
    bytes,
  };
}

// The cases, then each measured. Whichever case ran first paid the process's one-time costs (V8
// compiling the scrape's and the exposition's code, its young generation growing to the rate of
// allocation): about 40 MB of RSS in one case's account, none in the other's. Five scrapes of
// each first, unmeasured, so both are measured in a process already warm.
const CASES = [
  [
    'JSON, 10 000 elements mapped by one rule (value, 2 labels, 3 enrichment labels)',
    'json',
    {
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
    },
  ],
  [
    'Prometheus text, 100 families × 100 series passed through (relabel: addLabel)',
    'text',
    {
      url: `${base}/text`,
      format: 'prometheus',
      interval: '10s',
      timeout: '5s',
      relabel: [{ action: 'addLabel', label: 'team', value: 'shop' }],
    },
  ],
];
for (const c of CASES) await run(...c, 5);
const results = [];
for (const c of CASES) results.push(await run(...c));

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

// The same work in `pillion run` as users start it (the bin, its V8 flags), scraping at an interval:
// one process per format scraping the 10 000 series, and beside each a twin whose app serves one
// series. Every interval, after the scrape, the admin API's /metrics is fetched as Prometheus
// would fetch it (timed: the exposition of 10 000 series rendered), and the resident memory of
// each process is read; the extra RSS is the 10 000-series process's minus its twin's, read at the
// same moment. The in-process loop above scrapes back to back, with no idle time between scrapes.
const INTERVAL_S = arg('sidecar-interval', 10);
const ROUNDS = arg('sidecar-rounds', 12);
const PAIRS = arg('sidecar-pairs', 2);
const sidecar = [];
if (ROUNDS > 0) {
  const dir = mkdtempSync(path.join(tmpdir(), 'pillion-bench-metrics-'));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  const targets = {
    json: (p) =>
      `      url: ${base}/${p}\n      format: json\n      rules:\n        - name: app_item_value\n          path: $.items[*]\n          value: $.value\n          labels: { item: $.name, shard: $.shard }`,
    text: (p) =>
      `      url: ${base}/${p}\n      format: prometheus\n      relabel:\n        - { action: addLabel, label: team, value: shop }`,
  };
  const start = async (name, body) => {
    const port = await freePort();
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `runtime:\n  log: { level: warn }\nadmin:\n  listen: 127.0.0.1:${port}\nmetrics:\n  listen: null\n  enrich:\n    labels: { environment: prod, version: 1.4.2, host: node-3 }\n  scrape:\n    app:\n      interval: ${INTERVAL_S}s\n      timeout: ${Math.min(5, INTERVAL_S)}s\n${body}\n`,
    );
    const child = startProcess(name, BIN ?? path.join(ROOT, 'dist', 'bin', 'pillion.js'), [
      'run',
      '-c',
      file,
    ]);
    await waitFor200(`http://127.0.0.1:${port}/readyz`, child);
    return { name, child, url: `http://127.0.0.1:${port}/metrics`, rss: [], expose: [], scrape: [] };
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const format of ['json', 'text']) {
    // PAIRS pairs side by side, started a fraction of an interval apart so their scrapes do not
    // meet; each pair read at the same moment, half an interval after its scrape.
    const pairs = await Promise.all(
      Array.from({ length: PAIRS }, async (_, n) => {
        await sleep((INTERVAL_S * 1000 * n) / PAIRS);
        const big = await start(`${format}-10k-${n}`, targets[format](format));
        const one = await start(`${format}-1-${n}`, targets[format](`${format}1`));
        await sleep((INTERVAL_S * 1000) / 2);
        for (let round = 0; round < ROUNDS; round++) {
          for (const p of [big, one]) {
            const t0 = process.hrtime.bigint();
            const res = await get(p.url, 10_000);
            p.expose.push(Number(process.hrtime.bigint() - t0) / 1e6);
            const m = /^pillion_app_scrape_duration_seconds\{[^}]*\} (\S+)$/m.exec(String(res.body));
            if (m) p.scrape.push(Number(m[1]) * 1000);
          }
          big.rss.push(statusMb(big.child.pid, 'VmRSS'));
          one.rss.push(statusMb(one.child.pid, 'VmRSS'));
          if (round < ROUNDS - 1) await sleep(INTERVAL_S * 1000);
        }
        return { big, one };
      }),
    );
    const { big } = pairs[0];
    const series = (await get(big.url, 10_000)).body
      .toString()
      .split('\n')
      .filter((l) => /^app_/.test(l)).length;
    await Promise.all(pairs.flatMap((p) => [stopProcess(p.big.child), stopProcess(p.one.child)]));
    // The extra RSS once the processes settle: the rounds of the second half, every pair.
    const late = (p, key) => p[key].rss.slice(Math.floor(ROUNDS / 2));
    const extra = pairs.flatMap((p) => late(p, 'big').map((r, i) => r - late(p, 'one')[i]));
    sidecar.push({
      format,
      series,
      scrape: median(pairs.flatMap((p) => p.big.scrape)),
      expose: median(pairs.flatMap((p) => p.big.expose)),
      exposeMax: Math.max(...pairs.flatMap((p) => p.big.expose)),
      scrapeOne: median(pairs.flatMap((p) => p.one.scrape)),
      exposeOne: median(pairs.flatMap((p) => p.one.expose)),
      rssBig: median(pairs.flatMap((p) => late(p, 'big'))),
      rssOne: median(pairs.flatMap((p) => late(p, 'one'))),
      extra: median(extra),
      extraMax: Math.max(...extra),
    });
  }
}
server.close();

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
if (sidecar.length > 0)
  console.log(
    `\nIn \`pillion run\`, scraping every ${INTERVAL_S} s, ${ROUNDS} rounds, ${PAIRS} pairs of processes (a 10 000-series process beside a twin whose app serves one series; RSS: medians over the second half of the rounds):\n\n` +
      table(
        [
          'format',
          'series exposed',
          'scrape, median (pillion_app_scrape_duration_seconds); one series',
          'GET /metrics, median (max); one series',
          'RSS: 10 000 series / one series',
          'extra RSS, median (max)',
        ],
        sidecar.map((r) => [
          r.format,
          String(r.series),
          `${r.scrape.toFixed(1)} ms; ${r.scrapeOne.toFixed(1)} ms`,
          `${r.expose.toFixed(1)} ms (${r.exposeMax.toFixed(1)}); ${r.exposeOne.toFixed(1)} ms`,
          `${r.rssBig.toFixed(1)} / ${r.rssOne.toFixed(1)} MB`,
          `${r.extra.toFixed(1)} MB (${r.extraMax.toFixed(1)})`,
        ]),
      ),
  );
console.log(
  'Targets: ≤ 50 ms per scrape, ≤ 20 MB extra RSS; StatsD 100 000 lines/s on one core without loss.',
);
