#!/usr/bin/env node
// `npm run demo:local`: the demo pod's pair without a pod (and without root): the legacy orders
// app and `pillion run -c examples/legacy-orders/pillion.yaml`, the same file the pod's sidecar
// loads from its ConfigMap, as plain processes, with the two inventory replicas the app calls
// through the sidecar (the second answering 503 to INVENTORY_FAIL_PERCENT, default 50, of its requests). What the pod's init containers and volumes do
// is done here by hand: a throwaway certificate, and directories under $PILLION_DEMO_DIR
// (default /tmp/pillion-demo) for the certificate, the app's log file, the sidecar's state, the
// shipped log, the settings the app's config.json is rendered from (seeded from config.json here)
// and the app's pid file; `pillion sync --once` renders config.json before the app starts, as the
// pod's init container does. Ctrl-C stops the app first, then the sidecar, as the pod does.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', '..', 'dist', 'bin', 'pillion.js');
const demo = process.env.PILLION_DEMO_DIR || '/tmp/pillion-demo';
const dirs = {
  TLS_DIR: join(demo, 'tls'),
  APP_LOG_DIR: join(demo, 'app-logs'),
  LOGS_DATA_DIR: join(demo, 'state'),
  SHIPPED_LOGS_DIR: join(demo, 'logs'),
  APP_CONFIG_DIR: join(demo, 'app-config'),
};
for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
const files = {
  SETTINGS_FILE: join(demo, 'settings', 'orders.json'),
  APP_PID_FILE: join(demo, 'run', 'orders.pid'),
};
for (const file of Object.values(files)) mkdirSync(dirname(file), { recursive: true });
if (!existsSync(files.SETTINGS_FILE)) copyFileSync(join(here, 'config.json'), files.SETTINGS_FILE);
const appPort = process.env.APP_PORT ?? '8080';
const inventoryPorts = [process.env.INVENTORY_PORT ?? '9201', process.env.INVENTORY_FLAKY_PORT ?? '9202'];
const outboundPort = process.env.OUTBOUND_PORT ?? '15001';

const cert = spawnSync(process.execPath, [join(here, 'make-cert.mjs'), dirs.TLS_DIR], { stdio: 'inherit' });
if (cert.status !== 0) process.exit(1);

const pillionEnv = {
  ...process.env,
  ...dirs,
  ...files,
  APP_PORT: appPort,
  INVENTORY_PORT: inventoryPorts[0],
  INVENTORY_FLAKY_PORT: inventoryPorts[1],
  OUTBOUND_PORT: outboundPort,
};
// The init container's job: config.json in place before the app starts.
const logFormat = process.env.LOG_FORMAT ?? 'pretty';
const once = spawnSync(
  process.execPath,
  [cli, 'sync', '--once', '-c', join(here, 'pillion.yaml'), '--log-format', logFormat],
  { env: pillionEnv, stdio: 'inherit' },
);
if (once.status !== 0) process.exit(1);
const admin = `127.0.0.1:${process.env.ADMIN_PORT ?? '15000'}`;
const https = `127.0.0.1:${process.env.HTTPS_PORT ?? '8443'}`;
console.log(`
  without a pod: the app and its sidecar from examples/legacy-orders/pillion.yaml
    orders   node examples/legacy-orders/app.mjs: plain HTTP on 127.0.0.1:${appPort}, logs to ${dirs.APP_LOG_DIR}
    pillion  pillion run -c examples/legacy-orders/pillion.yaml: HTTPS on ${https}, admin on ${admin},
             ships the app's log to ${dirs.SHIPPED_LOGS_DIR}/orders.ndjson
  Try: curl -i ${admin}/readyz    curl -ki https://${https.replace('127.0.0.1', 'localhost')}/orders
       TOKEN=$(npm run -s demo:token -- --sub alice --roles admin)
       curl -k -H "Authorization: Bearer $TOKEN" https://${https.replace('127.0.0.1', 'localhost')}/admin   (403 without the admin role)
       curl ${admin}/policies          the policies, the issuer's keys and the rate limit the sidecar enforces
       for i in $(seq 20); do curl -s 127.0.0.1:${appPort}/stock/book; echo; done
                                       the app asks the inventory through the sidecar: every call answers,
       curl ${admin}/clusters          though one replica fails half the time: retries (rq_retry), the
                                       flaky replica ejected, and each replica's health checks
  Edit examples/legacy-orders/pillion.yaml while this runs: the change is applied, a mistake reported.
  Edit ${files.SETTINGS_FILE} (say "discountPercent": 25): the app has it within a second.
  Set "discountPercent": 150: the app stops serving, and pillion puts the last config back;
  curl -s ${admin}/sync shows the failed version.
`);

// The inventory replicas first: the app may ask for stock as soon as it serves.
const inventory = inventoryPorts.map((port, i) =>
  start(i === 0 ? 'inv-a' : 'inv-b', [join(here, 'inventory.mjs')], {
    ...process.env,
    PORT: port,
    REPLICA: i === 0 ? 'inventory-a' : 'inventory-b',
    FAIL_PERCENT: i === 0 ? '0' : (process.env.INVENTORY_FAIL_PERCENT ?? '50'),
  }),
);
const sidecar = start(
  'pillion',
  [cli, 'run', '-c', join(here, 'pillion.yaml'), '--log-format', logFormat],
  pillionEnv,
);
const app = start('orders', [join(here, 'app.mjs')], {
  ...process.env,
  PORT: appPort,
  LOG_FILE: join(dirs.APP_LOG_DIR, 'orders.log'),
  CONFIG_FILE: join(dirs.APP_CONFIG_DIR, 'config.json'),
  INVENTORY_URL: `http://127.0.0.1:${outboundPort}/inventory`,
});
// What the pod's container does with `echo $$ > ...`: the sidecar signals the app through it.
writeFileSync(files.APP_PID_FILE, `${app.pid}\n`);

let stopping = false;
const alive = (child) => child.exitCode === null && child.signalCode === null;
function stop() {
  if (stopping) return;
  stopping = true;
  // The app first, then the sidecar once the app is gone: the sidecar serves until the app has left.
  if (alive(app)) app.kill('SIGTERM');
  else if (alive(sidecar)) sidecar.kill('SIGTERM');
}
app.on('close', () => {
  if (!stopping) stop();
  else if (alive(sidecar)) sidecar.kill('SIGTERM');
});
sidecar.on('close', (code) => {
  if (!alive(app)) return exit(code ?? 1);
  stopping = true;
  app.kill('SIGTERM');
  app.on('close', () => exit(code ?? 1));
});
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

// The inventory replicas go last (they are in their own process groups: nothing else would end
// them), then this script, once the last line written to a pipe is out.
function exit(code) {
  const left = inventory.filter(alive);
  for (const c of left) c.kill('SIGTERM');
  void Promise.all(left.map((c) => new Promise((resolve) => c.on('close', resolve)))).then(() =>
    process.stdout.write('', () => process.exit(code)),
  );
}

function start(name, args, env) {
  // Its own process group: Ctrl-C reaches this script only, which stops the two in order.
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => console.log(`${name.padEnd(7)} | ${line}`));
  }
  return child;
}
