#!/usr/bin/env node
// Footprint benchmark: how soon `pillion run` is ready and how much memory it holds idle, beside
// the floor of the same run (a bare `node -e` process that starts an HTTP server) and beside what
// Linkerd's and Envoy's sidecars are documented to use.
//
//   npm run bench:footprint -- [--runs 7] [--idle-seconds 2] [--node PATH|24 ...] [--ca-certs unset|set|both]
//                              [--pillion BIN] [--json out.json]
//
// Each case is started --runs times, the cases interleaved so that a burst of load elsewhere on
// the machine spreads over all of them. Ready is from the spawn to the first 200 of /readyz (the
// floor: of GET /), polled every 2 ms. CPU is the process's user+system time when it was found
// ready (from /proc/<pid>/task/*/schedstat, in ns: the threads' run time), which other load on the
// machine distorts much less than wall-clock time. Idle RSS is read --idle-seconds after ready.
// `--node 24` runs the same cases on Node 24 from the npm registry (`npx -p node@24`), with a
// floor of its own. NODE_EXTRA_CA_CERTS makes every Node start read and parse a CA bundle (about
// 55 ms on this machine): by default it is unset, as in a sidecar container; `--ca-certs set`
// keeps it as the environment has it (the floor pays it too), `both` runs each case both ways.
// `--pillion BIN` runs another build's bin (say, the main branch's) instead of dist/bin/pillion.js.
// One round of every case runs first and is not counted: it warms the page cache and, on Node
// 22.1+, V8's compile cache, which a sidecar's every later start finds warm.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  clean,
  freePort,
  isRunning,
  machineBasics,
  onExit,
  ROOT,
  sleep,
  startProcess,
  stopProcess,
  table,
  tail,
} from './lib.mjs';

const BIN = path.join(ROOT, 'dist', 'bin', 'pillion.js');
const TARGETS = {
  readyMs: 150,
  readyOverFloorMs: 100,
  inboundRssMb: 50,
  inboundOverFloorMb: 10,
  demoRssMb: 60,
};
const READY_DEADLINE_MS = 20_000;
const POLL_MS = 2;

// What the sidecars of the service meshes are documented to use (shared/reference/proxy_anchors.md).
const DOCUMENTED = [
  {
    who: 'Linkerd2-proxy 2.11.1 (max through a 2,000 req/s benchmark)',
    rss: '26.3 MB',
    source: 'linkerd.io/2021/11/29/linkerd-vs-istio-benchmarks-2021',
  },
  {
    who: 'Envoy in Istio 1.12.0 (max, same benchmark)',
    rss: '156.2 MB',
    source: 'linkerd.io/2021/11/29/linkerd-vs-istio-benchmarks-2021',
  },
  {
    who: 'Envoy in Istio 1.24 (1,000 req/s, 1 KB, 2 workers)',
    rss: '60 MB',
    source: 'istio.io docs, performance-and-scalability',
  },
  {
    who: 'Envoy in Istio 1.9–1.15',
    rss: '40 MB',
    source: 'istio.io/v1.15 docs, performance-and-scalability',
  },
];

function parseArgs(argv) {
  const opts = { runs: 7, idleSeconds: 2, nodes: [], json: null, caCerts: 'unset', pillion: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--runs') opts.runs = Math.max(1, Math.min(50, Number(value())));
    else if (a === '--idle-seconds') opts.idleSeconds = Math.max(0, Math.min(60, Number(value())));
    else if (a === '--node') opts.nodes.push(value());
    else if (a === '--json') opts.json = value();
    else if (a === '--pillion') opts.pillion = path.resolve(value());
    else if (a === '--ca-certs') {
      opts.caCerts = value();
      if (!['unset', 'set', 'both'].includes(opts.caCerts)) usage('--ca-certs: unset, set or both');
    } else usage(`unknown argument ${a}`);
  }
  if (!Number.isFinite(opts.runs) || !Number.isFinite(opts.idleSeconds)) usage('numbers expected');
  if (opts.nodes.length === 0) opts.nodes.push(process.execPath);
  return opts;
}

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node bench/footprint.mjs [--runs 7] [--idle-seconds 2] [--node PATH|24 ...] [--ca-certs unset|set|both] [--pillion BIN] [--json out.json]\n`,
  );
  process.exit(2);
}

/** A node binary: a path, or a major version fetched from the npm registry's `node` package. */
function resolveNode(spec) {
  if (!/^\d+$/.test(spec)) return spec;
  const out = execFileSync(
    'npx',
    ['-y', '-p', `node@${spec}`, 'node', '-e', 'process.stdout.write(process.execPath)'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return out.trim();
}

// ---------------------------------------------------------------------------------------------
// Readings

/** CPU time of every live thread of pid, in ms (ns precision; /proc/<pid>/stat counts in ticks). */
function cpuMs(pid) {
  let ns = 0;
  let tasks;
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  for (const t of tasks) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // A thread that ended between listing and reading.
    }
  }
  return ns / 1e6;
}

/** Resident memory, and its file-backed (the node binary's pages) and anonymous parts, in MB. */
function memory(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, file: kb('RssFile') / 1024, anon: kb('RssAnon') / 1024 };
  } catch {
    return null;
  }
}

function status(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

// ---------------------------------------------------------------------------------------------
// Cases

async function writeCertificate(dir) {
  execFileSync(process.execPath, [path.join(ROOT, 'examples', 'legacy-orders', 'make-cert.mjs'), dir], {
    stdio: 'ignore',
  });
}

/** A TCP and HTTP app for the sidecar to check and forward to. */
function startApp() {
  const server = http.createServer((req, res) => res.end('ok\n'));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function inboundConfig(adminPort, appPort, port) {
  return `admin:
  listen: 127.0.0.1:${adminPort}
app:
  port: ${appPort}
inbound:
  listeners:
    - name: plain
      address: 127.0.0.1:${port}
`;
}

const CASES = [
  {
    name: 'floor',
    label: 'bare `node -e` HTTP server',
    async argv(ctx) {
      const port = await freePort();
      return {
        cmd: ctx.node,
        args: ['-e', `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`],
        url: `http://127.0.0.1:${port}/`,
      };
    },
  },
  {
    name: 'admin',
    label: 'pillion run (no config: admin only)',
    async argv(ctx) {
      const port = await freePort();
      const file = path.join(ctx.tmp, `admin-${port}.yaml`);
      fs.writeFileSync(file, `admin:\n  listen: 127.0.0.1:${port}\n`);
      return { ...pillion(ctx, file), url: `http://127.0.0.1:${port}/readyz` };
    },
  },
  {
    name: 'inbound',
    label: 'pillion run, admin + app + inbound',
    async argv(ctx) {
      const adminPort = await freePort();
      const file = path.join(ctx.tmp, `inbound-${adminPort}.yaml`);
      fs.writeFileSync(file, inboundConfig(adminPort, ctx.app.address().port, await freePort()));
      return { ...pillion(ctx, file), url: `http://127.0.0.1:${adminPort}/readyz` };
    },
  },
  {
    name: 'demo',
    label:
      "pillion run, the demo's sidecar (examples/legacy-orders/pillion.yaml: TLS, JWT, authorization, a rate limit, logs, sync, metrics, outbound with retries)",
    async argv(ctx) {
      const adminPort = await freePort();
      const dir = fs.mkdtempSync(path.join(ctx.tmp, 'demo-'));
      const env = {
        ADMIN_PORT: String(adminPort),
        APP_PORT: String(ctx.app.address().port),
        HTTPS_PORT: String(await freePort()),
        TLS_DIR: ctx.tlsDir,
        LOGS_DATA_DIR: path.join(dir, 'state'),
        APP_LOG_DIR: path.join(dir, 'app-logs'),
        SHIPPED_LOGS_DIR: path.join(dir, 'logs'),
        // The sync role renders the app's config.json from a settings file and signals the app.
        SETTINGS_FILE: path.join(dir, 'settings', 'orders.json'),
        APP_CONFIG_DIR: path.join(dir, 'app-config'),
        APP_PID_FILE: path.join(dir, 'run', 'orders.pid'),
      };
      fs.mkdirSync(env.APP_LOG_DIR);
      fs.mkdirSync(path.dirname(env.SETTINGS_FILE));
      fs.writeFileSync(env.SETTINGS_FILE, '{ "currency": "EUR", "discountPercent": 10 }\n');
      const file = path.join(ROOT, 'examples', 'legacy-orders', 'pillion.yaml');
      return { ...pillion(ctx, file), env, url: `http://127.0.0.1:${adminPort}/readyz` };
    },
  },
];

// As users run it: the bin, whose shebang finds `node` on the PATH (the Node under test first).
function pillion(ctx, file) {
  return {
    cmd: ctx.pillion,
    args: ['run', '-c', file, '--log-level', 'warn'],
    pathPrefix: path.dirname(ctx.node),
  };
}

// A free port can be taken by another process between the probe and the bind (a shared machine):
// such a run is started again on other ports.
async function runOnce(c, ctx) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runOnceOn(c, ctx);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String(err.message))) throw err;
    }
  }
}

async function runOnceOn(c, ctx) {
  const spec = await c.argv(ctx);
  const env = { ...ctx.env, ...(spec.env ?? {}) };
  if (spec.pathPrefix) env.PATH = `${spec.pathPrefix}:${env.PATH}`;
  const t0 = performance.now();
  const child = startProcess(c.name, spec.cmd, spec.args, { env });
  const deadline = t0 + READY_DEADLINE_MS;
  let readyMs = null;
  while (performance.now() < deadline && isRunning(child)) {
    if ((await status(spec.url)) === 200) {
      readyMs = performance.now() - t0;
      break;
    }
    await sleep(POLL_MS);
  }
  const cpu = readyMs === null ? null : cpuMs(child.pid);
  if (readyMs === null) {
    const why = tail(child.stderrText) || tail(child.stdoutText) || '(no output)';
    await stopProcess(child);
    throw new Error(`${c.name} did not get ready within ${READY_DEADLINE_MS} ms: ${why}`);
  }
  await sleep(ctx.idleSeconds * 1000);
  const mem = memory(child.pid);
  await stopProcess(child);
  return { readyMs, cpuMs: cpu, ...mem };
}

// ---------------------------------------------------------------------------------------------
// Report

const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ratio = (a, b) => (a == null || !b ? '—' : `${(a / b).toFixed(2)}×`);
const range = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
const ms = (n) => (n == null ? '—' : `${n.toFixed(0)} ms`);
const mb = (n) => (n == null ? '—' : `${n.toFixed(1)} MB`);
const plus = (n, unit) =>
  n == null ? '—' : `${n >= 0 ? '+' : ''}${n.toFixed(unit === 'MB' ? 1 : 0)} ${unit}`;

function summarize(samples) {
  const pick = (k) => samples.map((s) => s[k]);
  return {
    readyMs: median(pick('readyMs')),
    readyRange: range(pick('readyMs')),
    cpuMs: median(pick('cpuMs')),
    rss: median(pick('rss')),
    file: median(pick('file')),
    anon: median(pick('anon')),
    samples,
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-footprint-'));
  onExit(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const tlsDir = path.join(tmp, 'tls');
  await writeCertificate(tlsDir);
  const app = await startApp();
  // The sidecars' TCP checks connect and go: keep the app's sockets from holding the exit.
  app.on('connection', (s) => s.unref());
  onExit(() => app.close());

  const machine = machineBasics();
  const out = [];
  const print = (text = '') => {
    out.push(text);
    process.stdout.write(`${text}\n`);
  };
  print('# Pillion footprint benchmark');
  print();
  print(`- date: ${machine.date}; ${machine.kernel}; nproc ${machine.nproc}; ${machine.cpu}`);
  print(`- load average at the start: ${machine.loadavg}`);
  print(
    `- ${opts.runs} runs of each case, interleaved; ready polled every ${POLL_MS} ms; idle RSS ${opts.idleSeconds} s after ready`,
  );

  const json = { machine, opts, nodes: [] };
  const caVariants = opts.caCerts === 'both' ? ['unset', 'set'] : [opts.caCerts];
  for (const spec of opts.nodes) {
    const node = resolveNode(spec);
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    for (const ca of caVariants) {
      const env = { ...process.env };
      if (ca === 'unset') delete env.NODE_EXTRA_CA_CERTS;
      const ctx = {
        node,
        tmp,
        tlsDir,
        app,
        idleSeconds: opts.idleSeconds,
        env,
        pillion: opts.pillion ?? BIN,
      };
      const samples = Object.fromEntries(CASES.map((c) => [c.name, []]));
      // Not counted: warms the page cache and V8's compile cache (Node 22.1+).
      for (const c of CASES) await runOnce(c, { ...ctx, idleSeconds: 0 });
      for (let r = 0; r < opts.runs; r++) {
        for (const c of CASES) {
          samples[c.name].push(await runOnce(c, ctx));
          process.stderr.write('.');
        }
      }
      process.stderr.write('\n');
      const s = Object.fromEntries(CASES.map((c) => [c.name, summarize(samples[c.name])]));
      const floor = s.floor;
      print();
      print(
        `## Node ${version}, NODE_EXTRA_CA_CERTS ${ca === 'unset' ? 'unset' : `set (${process.env.NODE_EXTRA_CA_CERTS ?? 'empty'})`}; ${path.relative(ROOT, ctx.pillion) || ctx.pillion} (load average after: ${os
          .loadavg()
          .map((n) => n.toFixed(2))
          .join(' ')})`,
      );
      print();
      print(
        table(
          [
            'case',
            'ready (median, range)',
            'over floor',
            '× floor',
            'CPU at ready',
            'idle RSS',
            'over floor',
            '× floor',
            'file / anon',
          ],
          CASES.map((c) => {
            const x = s[c.name];
            const isFloor = c.name === 'floor';
            return [
              c.label,
              `${ms(x.readyMs)} (${x.readyRange})`,
              isFloor ? '—' : plus(x.readyMs - floor.readyMs, 'ms'),
              isFloor ? '—' : ratio(x.readyMs, floor.readyMs),
              ms(x.cpuMs),
              mb(x.rss),
              isFloor ? '—' : plus(x.rss - floor.rss, 'MB'),
              isFloor ? '—' : ratio(x.rss, floor.rss),
              `${mb(x.file)} / ${mb(x.anon)}`,
            ];
          }),
        ),
      );
      print();
      const check = (ok) => (ok ? 'met' : 'NOT met');
      print(
        table(
          ['target', 'measured', ''],
          [
            [
              `demo ready ≤ ${TARGETS.readyMs} ms`,
              ms(s.demo.readyMs),
              check(s.demo.readyMs <= TARGETS.readyMs),
            ],
            [
              `demo ready ≤ floor + ${TARGETS.readyOverFloorMs} ms`,
              plus(s.demo.readyMs - floor.readyMs, 'ms'),
              check(s.demo.readyMs - floor.readyMs <= TARGETS.readyOverFloorMs),
            ],
            [
              `admin + inbound idle ≤ ${TARGETS.inboundRssMb} MB`,
              mb(s.inbound.rss),
              check(s.inbound.rss <= TARGETS.inboundRssMb),
            ],
            [
              `admin + inbound idle ≤ floor + ${TARGETS.inboundOverFloorMb} MB`,
              plus(s.inbound.rss - floor.rss, 'MB'),
              check(s.inbound.rss - floor.rss <= TARGETS.inboundOverFloorMb),
            ],
            [`demo idle ≤ ${TARGETS.demoRssMb} MB`, mb(s.demo.rss), check(s.demo.rss <= TARGETS.demoRssMb)],
          ],
        ),
      );
      json.nodes.push({ node, version, caCerts: ca, pillion: ctx.pillion, cases: s });
    }
  }
  print();
  print('## Documented sidecar memory (for comparison; other machines, other loads)');
  print();
  print(
    table(
      ['sidecar', 'RSS', 'source'],
      DOCUMENTED.map((d) => [d.who, d.rss, clean(d.source)]),
    ),
  );
  print();
  print(
    'Wall-clock ready times move with other load on the machine; CPU at ready and RSS much less. Compare against the floor of the same run.',
  );
  if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify(json, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  },
);
