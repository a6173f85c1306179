#!/usr/bin/env node
// Resilience benchmark: a chaos set of three endpoints (one healthy; one answering 503 for half its
// requests; one taking 1 s on 10 % of its requests) reached four ways side by side: no proxy (the
// client picks an endpoint at random), nginx (proxy_next_upstream, max_fails), haproxy (retry-on,
// observe layer7) and pillion's outbound proxy (retries with a budget, per-try timeout, outlier
// detection, peak-EWMA). For each: success rate, latency percentiles and the requests the
// backends got per client request (amplification). Then, with no faults, what pillion's
// resilience settings cost against the same proxy without them (wrk): in requests per second,
// and in pillion's CPU time per request.
//
//   npm run bench:resilience -- [--requests 20000] [--concurrency 32] [--seconds 5] [--rounds 5] [--warmup 8000] [--only pillion,nginx] [--pillion BIN]
//
// The chaos runs go in rounds, the order of the contenders turned by one each round, and each
// figure is the median over the rounds: whoever runs first meets a client and endpoints that have
// not warmed up yet, which in a fixed order moved the p99 by as much as the proxies differ. The
// defaults measure a proxy that has run a while (a p99 of 20,000 requests after 8,000); each
// round starts a fresh proxy, so `--requests 4000 --warmup 500` measures its first second.
//
// Layout: the backends and the client (this process, pinned with all its threads) share one core,
// the proxy under test gets the other. Every peer is started here and killed on exit. Markdown
// goes to stdout; progress to stderr.

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ROOT,
  cpuSeconds,
  firstLine,
  fmtInt,
  freePort,
  initClockTicks,
  installPeers,
  machineBasics,
  pinSelf,
  startProcess,
  stopProcess,
  table,
  waitFor200,
} from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
/** The bin pillion runs from: this build's, or another's with --pillion BIN (to compare two). */
let BIN = path.join(ROOT, 'dist', 'bin', 'pillion.js');

// --- the chaos backends (a child process: this file with --serve) ----------------------------------

if (process.argv[2] === '--serve') {
  const [healthy, flaky, slow, control] = process.argv[3].split(',').map(Number);
  const counts = { healthy: 0, flaky: 0, slow: 0 };
  const serve = (name, port, answer) =>
    http
      .createServer((req, res) => {
        if (req.url === '/health') return res.end('ok');
        counts[name]++;
        answer(res);
      })
      .listen(port, '127.0.0.1');
  const ok = (res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
    res.end('ok\n');
  };
  serve('healthy', healthy, ok);
  serve('flaky', flaky, (res) => {
    if (Math.random() < 0.5) {
      res.writeHead(503, { 'content-length': 5 });
      res.end('fail\n');
    } else ok(res);
  });
  serve('slow', slow, (res) => {
    if (Math.random() < 0.1) setTimeout(() => ok(res), 1000);
    else ok(res);
  });
  http
    .createServer((req, res) => {
      if (req.url === '/reset') for (const k of Object.keys(counts)) counts[k] = 0;
      res.end(JSON.stringify(counts));
    })
    .listen(control, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
} else {
  await main();
}

async function main() {
  const { values: opts } = parseArgs({
    options: {
      requests: { type: 'string', default: '20000' },
      concurrency: { type: 'string', default: '32' },
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '8000' },
      only: { type: 'string' },
      pillion: { type: 'string' },
    },
  });
  if (opts.pillion) BIN = path.resolve(opts.pillion);
  const N = Number(opts.requests);
  const C = Number(opts.concurrency);
  const WARMUP = Number(opts.warmup);
  const only = opts.only ? opts.only.split(',') : undefined;
  installPeers('nginx', 'haproxy', 'wrk', 'taskset');
  const cores = os.availableParallelism();
  const loadCore = 0;
  const proxyCore = cores > 1 ? 1 : 0;
  // The client is this process: on the endpoints' core, off the proxy's.
  pinSelf(loadCore);
  initClockTicks();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-resilience-'));
  const ports = {
    healthy: await freePort(),
    flaky: await freePort(),
    slow: await freePort(),
    control: await freePort(),
  };
  const backend = startProcess(
    'backends',
    process.execPath,
    [SELF, '--serve', [ports.healthy, ports.flaky, ports.slow, ports.control].join(',')],
    { core: loadCore },
  );
  await waitFor200(`http://127.0.0.1:${ports.control}/`, backend);
  const endpoints = [ports.healthy, ports.flaky, ports.slow];

  const peers = [
    { name: 'no proxy (random endpoint)', key: 'direct', start: async () => ({ stop: async () => {} }) },
    { name: 'nginx', key: 'nginx', start: () => startNginx(tmp, endpoints, proxyCore) },
    { name: 'haproxy', key: 'haproxy', start: () => startHaproxy(tmp, endpoints, proxyCore) },
    { name: 'pillion', key: 'pillion', start: () => startPillion(tmp, endpoints, proxyCore, true) },
  ].filter((p) => !only || only.includes(p.key));

  const rounds = Math.max(1, Number(opts.rounds));
  /** Per contender, one result a round. */
  const results = new Map(peers.map((p) => [p.key, []]));
  for (let round = 0; round < rounds; round++) {
    const order = peers.map((_, i) => peers[(i + round) % peers.length]);
    for (const p of order) {
      process.stderr.write(`chaos, round ${round + 1} of ${rounds}: ${p.name}...\n`);
      const peer = await p.start();
      try {
        const target =
          p.key === 'direct'
            ? () => ({ port: endpoints[Math.floor(Math.random() * 3)], host: '127.0.0.1' })
            : () => ({ port: peer.port, host: peer.host ?? '127.0.0.1' });
        // A short warm-up (and for the proxies, time to learn the endpoints), then the measured run.
        await load(target, WARMUP, C);
        await getJson(`http://127.0.0.1:${ports.control}/reset`);
        const r = await load(target, N, C);
        const counts = await getJson(`http://127.0.0.1:${ports.control}/`);
        results.get(p.key).push({ ...r, counts, sent: counts.healthy + counts.flaky + counts.slow });
      } finally {
        await peer.stop();
      }
    }
  }
  const median = (xs) => {
    const a = [...xs].sort((x, y) => x - y);
    return a.length % 2 ? a[a.length >> 1] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
  };
  const rows = peers.map((p) => {
    const rs = results.get(p.key);
    const all = (f) => (rs.length > 1 ? ` (${rs.map(f).join(' · ')})` : '');
    const last = rs.at(-1).counts;
    return [
      p.name,
      `${((median(rs.map((r) => r.ok)) / N) * 100).toFixed(2)} %`,
      ms(median(rs.map((r) => r.p50))),
      ms(median(rs.map((r) => r.p99))) + all((r) => ms(r.p99)),
      ms(median(rs.map((r) => r.p999))),
      `${(median(rs.map((r) => r.sent)) / N).toFixed(2)}×`,
      `${last.healthy} / ${last.flaky} / ${last.slow}`,
    ];
  });

  // No faults: pillion with and without its resilience settings, under wrk; three rounds, each in
  // the other order than the one before, the best of each, so a busy moment of the machine does
  // not decide the comparison.
  const costRows = [];
  if (!only || only.includes('pillion')) {
    const seconds = Number(opts.seconds);
    const best = { plain: 0, resilient: 0 };
    // Pillion's own CPU time per request, every round: req/s is capped by whichever core is
    // busier (wrk and the Node endpoints share one), where the CPU a request costs the proxy is not.
    const cpu = { plain: [], resilient: [] };
    for (let round = 0; round < 3; round++) {
      for (const resilient of round % 2 === 0 ? [false, true] : [true, false]) {
        process.stderr.write(
          `no faults, round ${round + 1}: pillion ${resilient ? 'with' : 'without'} resilience...\n`,
        );
        const peer = await startPillion(tmp, [ports.healthy], proxyCore, resilient);
        try {
          const url = `http://127.0.0.1:${peer.port}/`;
          await wrk(url, 2, C, loadCore, peer.host);
          const cpu0 = cpuSeconds(peer.pid);
          const r = await wrk(url, seconds, C, loadCore, peer.host);
          const k = resilient ? 'resilient' : 'plain';
          best[k] = Math.max(best[k], r.perSecond);
          cpu[k].push(((cpuSeconds(peer.pid) - cpu0) / r.requests) * 1e6);
        } finally {
          await peer.stop();
        }
      }
    }
    const us = { plain: median(cpu.plain), resilient: median(cpu.resilient) };
    costRows.push(['pillion, plain', fmtInt(best.plain), '', `${us.plain.toFixed(1)} µs`, '']);
    costRows.push([
      'pillion, retries + outlier detection + peak-EWMA',
      fmtInt(best.resilient),
      `${(((best.resilient - best.plain) / best.plain) * 100).toFixed(1)} %`,
      `${us.resilient.toFixed(1)} µs`,
      `${(((us.resilient - us.plain) / us.plain) * 100).toFixed(1)} %`,
    ]);
  }
  await stopProcess(backend);
  fs.rmSync(tmp, { recursive: true, force: true });

  const m = machineBasics();
  console.log(`### Resilience (bench/resilience.mjs), ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(
    `${m.cpu ?? os.cpus()[0]?.model}, ${cores} cores; Node ${process.version}; ${firstLine('nginx', ['-v'])}; ${firstLine('haproxy', ['-v'])}. ${fmtInt(N)} requests, ${C} at a time, after ${fmtInt(WARMUP)} to warm up; medians of ${rounds} round(s), the order turned each round (each round's p99 in brackets; the last round's split). Endpoints: healthy / 503 on half / 1 s on 10 %. Every proxy tries a request up to 3 times with a 250 ms per-try timeout.\n`,
  );
  console.log(
    table(
      [
        'client reaches the endpoints through',
        'success',
        'p50',
        'p99',
        'p99.9',
        'backend requests per request',
        'healthy / flaky / slow got',
      ],
      rows,
    ),
  );
  if (costRows.length > 0) {
    console.log(
      `\nNo faults (one healthy endpoint), wrk for ${opts.seconds} s, three rounds, the order swapped each round: the best req/s, and the median of pillion's CPU time per request:\n`,
    );
    console.log(table(['', 'req/s', 'change', 'CPU per request', 'change'], costRows));
  }
}

function ms(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`;
}

/** N requests, C at a time, on keep-alive connections; the latency of each, and how many got 200. */
async function load(target, n, c) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: c });
  const lat = [];
  let ok = 0;
  let next = 0;
  const one = () =>
    new Promise((resolve) => {
      const t = target();
      const t0 = performance.now();
      const req = http.get(
        { host: '127.0.0.1', port: t.port, path: '/', agent, headers: { host: t.host }, timeout: 10_000 },
        (res) => {
          res.resume();
          res.on('end', () => {
            lat.push(performance.now() - t0);
            if (res.statusCode === 200) ok++;
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        lat.push(performance.now() - t0);
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
  agent.destroy();
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { ok, p50: q(0.5), p99: q(0.99), p999: q(0.999) };
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
}

async function wrk(url, seconds, c, core, host) {
  const args = ['-t1', `-c${c}`, `-d${seconds}s`, '-H', `Host: ${host}`, url];
  const child = startProcess('wrk', 'wrk', args, { core });
  await child.exited;
  const m = /Requests\/sec:\s+([\d.]+)/.exec(child.stdoutText);
  const n = /(\d+) requests in/.exec(child.stdoutText);
  if (!m || !n) throw new Error(`wrk: ${child.stderrText || child.stdoutText}`);
  return { perSecond: Number(m[1]), requests: Number(n[1]) };
}

async function startNginx(tmp, endpoints, core) {
  const dir = path.join(tmp, 'nginx');
  fs.mkdirSync(dir, { recursive: true });
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
  const port = await freePort();
  const conf = `worker_processes 1;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream chaos {
${endpoints.map((p) => `    server 127.0.0.1:${p} max_fails=5 fail_timeout=10s;`).join('\n')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://chaos;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_503;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 250ms;
      proxy_read_timeout 250ms;
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = startProcess(
    'nginx',
    'nginx',
    ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid;`],
    { core },
  );
  await waitFor200Any(`http://127.0.0.1:${port}/`, child);
  return { port, stop: () => stopProcess(child) };
}

async function startHaproxy(tmp, endpoints, core) {
  const port = await freePort();
  const file = path.join(tmp, 'haproxy.cfg');
  fs.writeFileSync(
    file,
    `global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 250ms
  timeout client 30s
  timeout server 250ms
  retries 2
  option redispatch 1
  retry-on conn-failure empty-response response-timeout 503

frontend bench
  bind 127.0.0.1:${port}
  default_backend chaos

backend chaos
  balance roundrobin
  option httpchk GET /health
${endpoints.map((p, i) => `  server s${i} 127.0.0.1:${p} check inter 1s observe layer7 error-limit 5 on-error mark-down`).join('\n')}
`,
  );
  const child = startProcess('haproxy', 'haproxy', ['-db', '-f', file], { core });
  await waitFor200Any(`http://127.0.0.1:${port}/`, child);
  return { port, stop: () => stopProcess(child) };
}

async function startPillion(tmp, endpoints, core, resilient) {
  const adminPort = await freePort();
  const port = await freePort();
  const upstream = {
    endpoints: endpoints.map((p) => `127.0.0.1:${p}`),
    ...(resilient
      ? {
          loadBalancer: { policy: 'peak-ewma' },
          retries: { attempts: 2, perTryTimeout: '250ms', retryOn: '5xx,reset,connect-failure' },
          // nginx's max_fails counts failures over a window, not in a row; Envoy's failure
          // percentage is the same idea: an endpoint with 5 % of its requests failed in a second
          // (timeouts included) is ejected. Two of the three may be out at once, as in nginx.
          outlierDetection: {
            consecutive5xxErrors: 5,
            enforcingFailurePercentage: 100,
            failurePercentageThreshold: 5,
            failurePercentageMinimumHosts: 1,
            failurePercentageRequestVolume: 20,
            interval: '1s',
            baseEjectionTime: '10s',
            maxEjectionPercent: 67,
          },
        }
      : {}),
  };
  const file = path.join(tmp, `pillion-${resilient ? 'resilient' : 'plain'}.yaml`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      admin: { listen: `127.0.0.1:${adminPort}` },
      runtime: { log: { level: 'warn' } },
      outbound: { listener: { address: `127.0.0.1:${port}` }, upstreams: { chaos: upstream } },
    }),
  );
  const child = startProcess('pillion', BIN, ['run', '-c', file], {
    core,
  });
  await waitFor200(`http://127.0.0.1:${adminPort}/readyz`, child);
  return { port, host: 'chaos', pid: child.pid, stop: () => stopProcess(child) };
}

/** Waits until the proxy answers at all (a 503 from a chaos endpoint counts). */
async function waitFor200Any(url, child) {
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      http
        .get(url, (res) => {
          res.resume();
          resolve(true);
        })
        .on('error', () => resolve(false));
    });
    if (up) return;
    if (child.exitCode !== null) throw new Error(`${child.label} exited: ${child.stderrText}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.label} did not answer at ${url}`);
}
