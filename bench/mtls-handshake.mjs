#!/usr/bin/env node
// What a client certificate costs pillion: full TLS handshakes on a listener with its own
// certificate (plain TLS) against the same on a STRICT mutual-TLS listener (the client sends its
// workload certificate, pillion verifies it against the trust bundle and reads its SPIFFE ID).
// Same key type (ECDSA P-256) on both, no session resumption, one HTTP/1.1 request per connection,
// answered by a direct response so no upstream takes part.
//
//   npm run bench:mtls -- [--duration 5] [--connections 8] [--json out.json]
//
// pillion runs on core 1, the load (a Node client, one handshake per connection) on core 0. The
// figure is pillion's CPU time per handshake, read from /proc, which does not depend on how fast
// the client is; handshakes per second are shown beside it. Markdown to stdout, progress to stderr.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ROOT,
  cpuSeconds,
  fmtInt,
  fmtRatio,
  freePort,
  initClockTicks,
  machineBasics,
  onExit,
  sleep,
  startProcess,
  stopProcess,
  table,
  tail,
} from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '8' },
    json: { type: 'string' },
    client: { type: 'string' },
    serve: { type: 'string' },
  },
});

// The load, in its own process: `--client <json>` runs it and prints its count.
if (args.client) {
  const o = JSON.parse(args.client);
  const until = Date.now() + o.ms;
  let done = 0;
  let failed = 0;
  // With `resume`, each connection offers the last session ticket it got (TLS 1.3 resumption).
  let session;
  const one = () =>
    new Promise((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: o.port,
        ca: o.ca,
        ...(o.cert ? { cert: o.cert, key: o.key } : {}),
        servername: 'bench.local',
        checkServerIdentity: () => undefined,
        ...(o.resume && session ? { session } : {}),
      });
      if (o.resume) s.on('session', (t) => (session = t));
      let got = '';
      s.on('secureConnect', () =>
        s.write('GET / HTTP/1.1\r\nhost: bench.local\r\nconnection: close\r\n\r\n'),
      );
      s.on('data', (b) => (got += b.toString('latin1')));
      s.on('error', () => {});
      s.on('close', () => {
        if (got.startsWith('HTTP/1.1 200')) done++;
        else failed++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (Date.now() < until) await one();
    }),
  );
  process.stdout.write(JSON.stringify({ done, failed }));
  process.exit(0);
}

// Node's own TLS server, the floor under pillion: `--serve <json>` listens with and without
// client-certificate verification and prints both ports.
if (args.serve) {
  const o = JSON.parse(args.serve);
  const answer = (s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
  };
  const plain = tls.createServer({ cert: o.cert, key: o.key }, answer);
  const mutual = tls.createServer(
    {
      cert: o.cert,
      key: o.key,
      ca: o.ca,
      requestCert: true,
      rejectUnauthorized: true,
      sessionIdContext: 'floor',
    },
    answer,
  );
  await Promise.all([plain, mutual].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r))));
  process.stdout.write(`${JSON.stringify([plain.address().port, mutual.address().port])}\n`);
  await new Promise(() => {});
}

initClockTicks();
const durationMs = Number(args.duration) * 1000;
const connections = Number(args.connections);
const dir = mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-mtls-'));
onExit(() => rmSync(dir, { recursive: true, force: true }));

const { LocalCa } = await import(path.join(ROOT, 'dist/identity/local-ca.js'));
const ca = await LocalCa.init(path.join(dir, 'ca'), { trustDomain: 'cluster.local' });
const server = await ca.issue({
  spiffeId: 'spiffe://cluster.local/ns/bench/sa/server',
  dnsNames: ['bench.local'],
});
const client = await ca.issue({ spiffeId: 'spiffe://cluster.local/ns/bench/sa/client' });
writeFileSync(path.join(dir, 'server.crt'), server.cert);
writeFileSync(path.join(dir, 'server.key'), server.key, { mode: 0o600 });
const [plainPort, mtlsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
const config = path.join(dir, 'pillion.yaml');
writeFileSync(
  config,
  `runtime: { log: { level: warn, format: json } }
admin: { listen: 127.0.0.1:${adminPort} }
identity:
  namespace: bench
  serviceAccount: server
  ca: { dir: ${path.join(dir, 'ca')} }
inbound:
  listeners:
    - name: plain
      address: 127.0.0.1:${plainPort}
      http2: false
      tls: { certificates: [{ cert: ${path.join(dir, 'server.crt')}, key: ${path.join(dir, 'server.key')} }] }
    - name: mtls
      address: 127.0.0.1:${mtlsPort}
      http2: false
      mtls: { mode: STRICT }
  routes: [{ directResponse: { status: 200, body: ok } }]
`,
);

const pillion = startProcess(
  'pillion',
  process.execPath,
  [path.join(ROOT, 'dist/cli/main.js'), 'run', '-c', config],
  {
    core: 1,
  },
);
for (let i = 0; ; i++) {
  try {
    const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    if (r.status === 200) break;
  } catch {
    // not listening yet
  }
  if (i > 200)
    throw new Error(`pillion did not become ready: ${tail(pillion.stderrText + pillion.stdoutText)}`);
  await sleep(50);
}

async function run(name, port, cert, server = pillion, resume = false) {
  const load = startProcess(
    `load ${name}`,
    process.execPath,
    [
      SELF,
      '--client',
      JSON.stringify({
        port,
        resume,
        ca: ca.bundle,
        connections,
        ms: durationMs,
        ...(cert ? { cert: cert.cert, key: cert.key } : {}),
      }),
    ],
    { core: 0 },
  );
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  await load.exited;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(server.pid) - cpu0;
  const { done, failed } = JSON.parse(load.stdoutText);
  process.stderr.write(`${name}: ${done} handshakes, ${failed} failed, server ${cpu.toFixed(2)} s CPU\n`);
  return { name, done, failed, perSecond: done / seconds, cpuMsPerHandshake: (cpu * 1000) / done };
}

process.stderr.write(`warm-up\n`);
await run('warm-up', plainPort, undefined);
const results = [];
// Alternate, so a change in the machine's load lands on both.
for (let round = 0; round < 2; round++) {
  results.push(await run('TLS', plainPort, undefined));
  results.push(await run('mutual TLS', mtlsPort, client));
  results.push(await run('TLS, resumed', plainPort, undefined, pillion, true));
  results.push(await run('mutual TLS, resumed', mtlsPort, client, pillion, true));
}
await stopProcess(pillion);

const floor = startProcess(
  'node tls',
  process.execPath,
  [SELF, '--serve', JSON.stringify({ cert: server.cert, key: server.key, ca: ca.bundle })],
  { core: 1 },
);
for (let i = 0; !floor.stdoutText.includes('\n'); i++) {
  if (i > 200) throw new Error(`the Node TLS server did not start: ${tail(floor.stderrText)}`);
  await sleep(50);
}
const [floorPlain, floorMutual] = JSON.parse(floor.stdoutText);
for (let round = 0; round < 2; round++) {
  results.push(await run('node TLS', floorPlain, undefined, floor));
  results.push(await run('node mutual TLS', floorMutual, client, floor));
}
await stopProcess(floor);

const sum = (name) => {
  const rs = results.filter((r) => r.name === name);
  const done = rs.reduce((a, r) => a + r.done, 0);
  return {
    done,
    failed: rs.reduce((a, r) => a + r.failed, 0),
    perSecond: rs.reduce((a, r) => a + r.perSecond, 0) / rs.length,
    cpuMs: rs.reduce((a, r) => a + r.cpuMsPerHandshake * r.done, 0) / done,
  };
};
const plain = sum('TLS');
const mutual = sum('mutual TLS');
const resumedPlain = sum('TLS, resumed');
const resumedMutual = sum('mutual TLS, resumed');
const nodePlain = sum('node TLS');
const nodeMutual = sum('node mutual TLS');
const machine = machineBasics();
const rows = [
  [
    'TLS (server certificate only)',
    fmtInt(plain.perSecond),
    plain.cpuMs.toFixed(3),
    '1.00×',
    String(plain.failed),
  ],
  [
    'mutual TLS (STRICT, client certificate verified)',
    fmtInt(mutual.perSecond),
    mutual.cpuMs.toFixed(3),
    fmtRatio(mutual.cpuMs / plain.cpuMs),
    String(mutual.failed),
  ],
  ...[
    ['TLS, session resumed', resumedPlain, resumedPlain],
    ['mutual TLS, session resumed', resumedMutual, resumedPlain],
    ['Node tls.createServer, TLS', nodePlain, nodePlain],
    ['Node tls.createServer, mutual TLS', nodeMutual, nodePlain],
  ].map(([name, r, base]) => [
    name,
    fmtInt(r.perSecond),
    r.cpuMs.toFixed(3),
    fmtRatio(r.cpuMs / base.cpuMs),
    String(r.failed),
  ]),
];
process.stdout.write(
  `### TLS handshakes with and without a client certificate (${machine.date.slice(0, 10)})\n\n` +
    `${machine.nproc} cores (${machine.cpu}), Node ${machine.node}, load ${machine.loadavg}; ` +
    `${connections} connections, ${args.duration} s per run, two runs each, ECDSA P-256, one request per connection.\n\n` +
    table(['server', 'handshakes/s', 'server CPU ms per handshake', 'CPU vs its TLS', 'failed'], rows) +
    '\n',
);
if (args.json)
  writeFileSync(
    args.json,
    JSON.stringify(
      { machine, plain, mutual, nodePlain, nodeMutual, ratio: mutual.cpuMs / plain.cpuMs },
      null,
      2,
    ),
  );
