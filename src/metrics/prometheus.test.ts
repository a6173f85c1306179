// The metrics role against a real Prometheus (Debian's prometheus, installed by
// scripts/install-peers.sh), started on a free loopback port: it scrapes pillion's metrics
// listener, its query API returns the app's JSON counters mapped and enriched, and when the app
// stops, pillion_app_scrape_up goes to 0 and the app's series go stale.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startRuntimeOn } from '../runtime/test-support.js';
import type { Runtime } from '../runtime/index.js';
import { waitFor } from '../lib/wait-for.js';
import { freePort } from '../lib/free-port.js';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pillion-prometheus-'));
let prometheus: ChildProcess | undefined;
let prometheusUrl = '';
let app: Server;
let runtime: Runtime | undefined;
let prometheusLog = '';

before(async () => {
  const have = spawnSync('bash', ['scripts/install-peers.sh', 'prometheus'], { stdio: 'inherit', cwd: root });
  if (have.status !== 0)
    throw new Error('scripts/install-peers.sh could not provide prometheus (Debian package prometheus)');
  let requests = 12;
  app = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ requests: requests++, errors: 1, uptime: 3.2 }));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as net.AddressInfo).port;
  const metricsPort = await freePort();
  writeFileSync(
    join(dir, 'pillion.yaml'),
    `admin: { listen: 127.0.0.1:0 }
metrics:
  listen: 127.0.0.1:${metricsPort}
  enrich:
    labels: { environment: staging, version: "1.4.2" }
    hostname: host
  scrape:
    orders:
      url: http://127.0.0.1:${appPort}/internal/metrics
      format: json
      interval: 500ms
      timeout: 400ms
      rules:
        - { name: orders_requests_total, type: counter, help: Requests served., value: $.requests }
        - { name: orders_errors_total, type: counter, value: $.errors }
        - { name: orders_uptime_seconds, value: $.uptime }
`,
  );
  runtime = await startRuntimeOn(join(dir, 'pillion.yaml'));
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, scrape_timeout: 900ms }
scrape_configs:
  - job_name: pillion
    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]
`,
  );
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prometheus
    .stderr!.setEncoding('utf8')
    .on('data', (c: string) => (prometheusLog = (prometheusLog + c).slice(-4000)));
  await waitFor(async () => (await fetch(`${prometheusUrl}/-/ready`)).ok, {
    what: `prometheus ready (${prometheusLog})`,
    timeoutMs: 60_000,
  });
});

after(async () => {
  prometheus?.kill('SIGKILL');
  await runtime?.shutdown('test over');
  app.close();
  app.closeAllConnections();
  rmSync(dir, { recursive: true, force: true });
});

interface Vector {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Vector[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { status: string; data: { result: Vector[] } };
  assert.equal(body.status, 'success');
  return body.data.result;
}

test("Prometheus scrapes the app's mapped series with the enrichment labels, and sees them go stale when the app stops", async () => {
  const [requests] = await waitFor(
    async () => {
      const r = await query('orders_requests_total');
      return r.length > 0 ? r : undefined;
    },
    { what: 'orders_requests_total in Prometheus', timeoutMs: 60_000, intervalMs: 250 },
  );
  assert.equal(requests!.metric.environment, 'staging');
  assert.equal(requests!.metric.version, '1.4.2');
  assert.ok(requests!.metric.host);
  assert.equal(requests!.metric.job, 'pillion');
  assert.ok(Number(requests!.value[1]) >= 12);
  const [uptime] = await query('orders_uptime_seconds');
  assert.equal(uptime!.value[1], '3.2');
  assert.equal((await query('pillion_app_scrape_up{target="orders"}'))[0]!.value[1], '1');
  // Prometheus asked in OpenMetrics: the counter's family is orders_requests, its samples _total.
  assert.equal((await query('up{job="pillion"}'))[0]!.value[1], '1');

  app.close();
  app.closeAllConnections();
  await waitFor(async () => (await query('pillion_app_scrape_up{target="orders"}'))[0]?.value[1] === '0', {
    what: 'pillion_app_scrape_up 0 in Prometheus',
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  await waitFor(async () => (await query('orders_requests_total')).length === 0, {
    what: 'orders_requests_total stale in Prometheus',
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  // Pillion's own series are still there: only the app's went stale.
  assert.equal((await query('up{job="pillion"}'))[0]!.value[1], '1');
});
