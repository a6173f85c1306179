#!/usr/bin/env node
// Config sync benchmark against a real etcd (Debian's etcd-server), in one run:
//  1. Change to app: N changes to one key, each timed from the etcd write (a put through etcd's
//     JSON gateway) to an app process having received its SIGHUP and read the new file (pillion
//     run: etcd source → file destination, fsynced → signal notifier with the app's pid file).
//     The floor is `etcdctl watch` on the same key in the same run: the time from the same write to
//     etcdctl printing the value. Both ends stamp CLOCK_MONOTONIC (process.hrtime), shared by
//     processes on one host.
//  2. Fan-out: 10 000 keys under one prefix and 1 000 templates (each reading one key); one key
//     changes M times: templates rendered per change (from pillion_sync_renders_total), pillion's
//     CPU time per change (/proc), and its RSS next to the RSS of the one-key run.
//
//   npm run bench:sync -- [--changes 1000] [--keys 10000] [--templates 1000] [--fanout-changes 200]
//
// Markdown goes to stdout; progress to stderr. Every process is stopped and every temp file removed.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  ROOT,
  cpuSeconds,
  freePort,
  initClockTicks,
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

const { values: opts } = parseArgs({
  options: {
    changes: { type: 'string', default: '1000' },
    keys: { type: 'string', default: '10000' },
    templates: { type: 'string', default: '1000' },
    'fanout-changes': { type: 'string', default: '200' },
  },
});
const CHANGES = Number(opts.changes);
const KEYS = Number(opts.keys);
const TEMPLATES = Number(opts.templates);
const FANOUT_CHANGES = Number(opts['fanout-changes']);
const log = (m) => process.stderr.write(`${m}\n`);
const b64 = (s) => Buffer.from(s).toString('base64');
const now = () => process.hrtime.bigint();
const ms = (ns) => Number(ns) / 1e6;

installPeers('etcd', 'etcdctl');
initClockTicks();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-sync-'));
onExit(() => fs.rmSync(work, { recursive: true, force: true }));

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function post(url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(JSON.parse(text))
            : reject(new Error(`${url}: ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

// --- etcd ------------------------------------------------------------------------------------------
const [clientPort, peerPort] = [await freePort(), await freePort()];
const etcdUrl = `http://127.0.0.1:${clientPort}`;
const etcd = startProcess('etcd', 'etcd', [
  '--name',
  'bench',
  '--data-dir',
  path.join(work, 'etcd'),
  '--listen-client-urls',
  etcdUrl,
  '--advertise-client-urls',
  etcdUrl,
  '--listen-peer-urls',
  `http://127.0.0.1:${peerPort}`,
  '--initial-advertise-peer-urls',
  `http://127.0.0.1:${peerPort}`,
  '--initial-cluster',
  `bench=http://127.0.0.1:${peerPort}`,
  '--log-level',
  'error',
]);

await waitFor200(`${etcdUrl}/health`, etcd, 20_000);
const put = (key, value) => post(`${etcdUrl}/v3/kv/put`, { key: b64(key), value: b64(value) });

// --- 1. change → app notified ----------------------------------------------------------------------
// The app: on SIGHUP it reads its file and reports the content with the monotonic time it had it.
const appScript = path.join(work, 'app.cjs');
fs.writeFileSync(
  appScript,
  `const fs = require('fs'); const file = process.argv[2];
   fs.writeFileSync(process.argv[3], String(process.pid));
   process.on('SIGHUP', () => { const v = fs.readFileSync(file, 'utf8'); process.stdout.write(v + ' ' + process.hrtime.bigint() + '\\n'); });
   setInterval(() => {}, 1 << 30);`,
);
const appFile = path.join(work, 'app', 'value.txt');
const pidFile = path.join(work, 'app.pid');
await put('bench/one', 'v-start');
const app = spawn(process.execPath, [appScript, appFile, pidFile], { stdio: ['ignore', 'pipe', 'inherit'] });
onExit(() => app.kill('SIGKILL'));
while (!fs.existsSync(pidFile)) await sleep(10);

const adminPort = await freePort();
const oneConfig = path.join(work, 'one.yaml');
fs.writeFileSync(
  oneConfig,
  [
    `admin: { listen: 127.0.0.1:${adminPort} }`,
    'sync:',
    '  sources:',
    `    v: { type: etcd, endpoints: ["${etcdUrl}"], key: bench/one }`,
    '  destinations:',
    `    value: { path: ${appFile}, source: v }`,
    '  notify:',
    `    app: { type: signal, pidFile: ${pidFile} }`,
    '',
  ].join('\n'),
);
const pillion = startProcess('pillion', process.execPath, [
  path.join(ROOT, 'dist/cli/main.js'),
  'run',
  '-c',
  oneConfig,
]);

await waitFor200(`http://127.0.0.1:${adminPort}/readyz`, pillion, 20_000);

const watcher = spawn('etcdctl', ['--endpoints', etcdUrl, 'watch', 'bench/one'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, ETCDCTL_API: '3' },
});
onExit(() => watcher.kill('SIGKILL'));

/** Resolves the first time a line satisfying `match` comes from the stream; each returns its time. */
function lines(stream) {
  const waiting = [];
  let buf = '';
  stream.on('data', (c) => {
    const at = now();
    buf += c;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      for (let i = 0; i < waiting.length; i++)
        if (waiting[i].match(line)) {
          waiting[i].resolve({ line, at });
          waiting.splice(i, 1);
          break;
        }
    }
  });
  return (match) => new Promise((resolve) => waiting.push({ match, resolve }));
}
const appLine = lines(app.stdout);
const watchLine = lines(watcher.stdout);
await sleep(500); // etcdctl's watch is set up
log(`change → app: ${CHANGES} changes`);
const viaPillion = [];
const viaEtcdctl = [];
for (let i = 0; i < CHANGES; i++) {
  const value = `v-${i}-${Date.now()}`;
  const gotApp = appLine((l) => l.startsWith(`${value} `));
  const gotWatch = watchLine((l) => l === value);
  const t0 = now();
  await put('bench/one', value);
  const [a, w] = await Promise.all([gotApp, gotWatch]);
  viaPillion.push(ms(BigInt(a.line.split(' ')[1]) - t0));
  viaEtcdctl.push(ms(w.at - t0));
}
const oneRss = statusMb(pillion.pid, 'VmRSS'); // after its changes, as the fan-out's below
watcher.kill('SIGTERM');
await stopProcess(pillion);

const pct = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const f = (x) => x.toFixed(2);

// --- 2. fan-out ------------------------------------------------------------------------------------
log(`fan-out: ${KEYS} keys, ${TEMPLATES} templates`);
for (let i = 0; i < KEYS; i += 200)
  await Promise.all(
    Array.from({ length: Math.min(200, KEYS - i) }, (_, j) => put(`fan/k${i + j}`, `value-${i + j}`)),
  );
const fanDir = path.join(work, 'fan');
const adminPort2 = await freePort();
const step = Math.max(1, Math.floor(KEYS / TEMPLATES));
const fanConfig = path.join(work, 'fan.yaml');
const destinations = Array.from(
  { length: TEMPLATES },
  (_, t) =>
    `    t${t}: { path: ${path.join(fanDir, `t${t}.conf`)}, template: "key=k${t * step} value={{ kv.k${t * step} }}", notify: [] }`,
);
fs.writeFileSync(
  fanConfig,
  [
    `admin: { listen: 127.0.0.1:${adminPort2} }`,
    'sync:',
    '  sources:',
    `    kv: { type: etcd, endpoints: ["${etcdUrl}"], key: fan/, prefix: true }`,
    '  destinations:',
    ...destinations,
    '',
  ].join('\n'),
);
const fan = startProcess('pillion-fanout', process.execPath, [
  path.join(ROOT, 'dist/cli/main.js'),
  'run',
  '-c',
  fanConfig,
]);

await waitFor200(`http://127.0.0.1:${adminPort2}/readyz`, fan, 60_000);
const renders = async () => {
  const text = await new Promise((resolve, reject) =>
    http
      .get(`http://127.0.0.1:${adminPort2}/metrics`, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(t));
      })
      .on('error', reject),
  );
  let n = 0;
  for (const m of text.matchAll(/^pillion_sync_renders_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
};
await sleep(1000);
const rendersBefore = await renders();
const cpuBefore = cpuSeconds(fan.pid);
const target = path.join(fanDir, 't7.conf');
for (let i = 0; i < FANOUT_CHANGES; i++) {
  const value = `changed-${i}`;
  await put(`fan/k${7 * step}`, value);
  while (!fs.readFileSync(target, 'utf8').endsWith(value)) await sleep(1);
}
const cpuPerChange = ((cpuSeconds(fan.pid) - cpuBefore) / FANOUT_CHANGES) * 1000;
const rendersPerChange = ((await renders()) - rendersBefore) / FANOUT_CHANGES;
const fanRss = statusMb(fan.pid, 'VmRSS');
await stopProcess(fan);

// --- report ----------------------------------------------------------------------------------------
const m = machineBasics();
console.log(
  `### Sync (${m.date.slice(0, 10)}, ${m.cpu}, ${m.nproc} CPUs, Node ${m.node}, load ${m.loadavg})\n`,
);
console.log(
  table(
    [`${CHANGES} changes to one etcd key, ms from the write`, 'p50', 'p99', 'max'],
    [
      [
        'pillion: file written (fsync), app got SIGHUP and read it',
        f(pct(viaPillion, 50)),
        f(pct(viaPillion, 99)),
        f(Math.max(...viaPillion)),
      ],
      [
        'etcdctl watch printed it (floor)',
        f(pct(viaEtcdctl, 50)),
        f(pct(viaEtcdctl, 99)),
        f(Math.max(...viaEtcdctl)),
      ],
    ],
  ),
);
console.log('');
console.log(
  table(
    [`${KEYS} keys, ${TEMPLATES} templates, one key changed ${FANOUT_CHANGES} times`, 'value'],
    [
      ['templates rendered per change', rendersPerChange.toFixed(2)],
      ['pillion CPU time per change (ms)', cpuPerChange.toFixed(2)],
      [`pillion RSS with one key, one file, after its ${CHANGES} changes (MB)`, oneRss.toFixed(1)],
      [
        `pillion RSS with ${KEYS} keys, ${TEMPLATES} files, after its ${FANOUT_CHANGES} changes (MB)`,
        fanRss.toFixed(1),
      ],
      ['RSS growth (MB)', (fanRss - oneRss).toFixed(1)],
    ],
  ),
);
process.exit(0);
