#!/usr/bin/env node
// `npm start`: the legacy orders app with a pillion sidecar beside it, as two plain processes.
// The pod runner will run the same pair as a pod; until then this script plays the part.

import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'pillion-demo-'));
copyFileSync(join(here, 'config.json'), join(work, 'config.json'));

for (const port of [8080, 15000]) {
  if (!(await isFree(port))) {
    console.error(`port ${port} on 127.0.0.1 is in use; stop whatever holds it and run npm start again`);
    process.exit(1);
  }
}

const children = [
  start('orders', [join(here, 'app.mjs')], {
    PORT: '8080',
    LOG_FILE: join(work, 'orders.log'),
    CONFIG_FILE: join(work, 'config.json'),
  }),
  start(
    'pillion',
    [join(root, 'dist', 'cli', 'main.js'), 'run', '-c', join(here, 'pillion.yaml'), '--log-format', 'pretty'],
    {},
  ),
];

console.log(`
  The legacy orders app (http://127.0.0.1:8080) now has a pillion sidecar (admin on 127.0.0.1:15000).
  Try, from another terminal:
    curl -i localhost:15000/readyz        503 while the app warms up, 200 once its health check passes
    curl localhost:15000/metrics          Prometheus metrics: process, app health, config reloads
    curl localhost:15000/config           the effective config, defaults filled in, secrets redacted
    edit examples/legacy-orders/pillion.yaml and save: applied in place (a typo is reported, old config kept)
    curl -X POST localhost:15000/quitquitquit   graceful exit, as a Kubernetes Job would ask
  The app's own log file: ${join(work, 'orders.log')}
  Ctrl-C stops both.
`);

let stopping = false;
function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null))).then(
    () => process.exit(code),
  );
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

function start(name, args, env) {
  const child = spawn(process.execPath, args, {
    cwd: work,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const color = name === 'pillion' ? '\x1b[36m' : '\x1b[33m';
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const line of lines) process.stdout.write(`${color}${name.padEnd(8)}|\x1b[0m ${line}\n`);
    });
  }
  child.on('exit', (code, signal) => {
    process.stdout.write(`${color}${name.padEnd(8)}|\x1b[0m exited (${signal ?? code})\n`);
    stopAll(name === 'pillion' ? (code ?? 0) : 1);
  });
  return child;
}

function isFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
