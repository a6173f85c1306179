// Health checks stay out of the access log by default and are counted instead (Envoy's health-check
// filter): a kubelet probing through the sidecar every second should not bury the real requests.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isHealthCheck } from './access-log.js';
import { echoBackend, get, metricValue, rawRequest, startInbound } from './test-support.js';

const dir = mkdtempSync(join(tmpdir(), 'pillion-hc-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('probers are known by their User-Agent; people and apps are not', () => {
  for (const ua of [
    'kube-probe/1.33',
    'kube-probe/1.33 (pillion)',
    'ELB-HealthChecker/2.0',
    'GoogleHC/1.0',
    'Envoy/HC',
    'Consul Health Check',
    'pillion-health/1',
  ])
    assert.ok(isHealthCheck(ua), ua);
  for (const ua of [null, 'curl/8.5.0', 'Mozilla/5.0', 'kube-proxy', 'my-kube-probe/1'])
    assert.ok(!isHealthCheck(ua), String(ua));
});

async function run(accessLog: Record<string, unknown>) {
  const app = await echoBackend();
  const file = join(dir, `${Math.random().toString(36).slice(2)}.log`);
  const p = await startInbound(
    { listeners: [{ name: 'web', address: '127.0.0.1:0' }], accessLog: { path: file, ...accessLog } },
    { app: app.port },
  );
  try {
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await rawRequest(p.port(), get('/healthz', { 'user-agent': 'kube-probe/1.33' }))).status,
        200,
      );
    assert.equal((await rawRequest(p.port(), get('/orders', { 'user-agent': 'curl/8.5.0' }))).status, 200);
  } finally {
    await p.stop(); // flushes the access log
    app.server.close();
  }
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { path: string });
  const counted = await metricValue(p.metrics, 'pillion_proxy_health_checks_total', {
    section: 'inbound',
    listener: 'web',
  });
  return { paths: lines.map((l) => l.path), counted };
}

test('regression: kubelet probes through the proxy are counted, not written to the access log', async () => {
  const { paths, counted } = await run({});
  assert.deepEqual(paths, ['/orders']);
  assert.equal(counted, 3);
});

test('accessLog.healthChecks: true logs them like any request', async () => {
  const { paths, counted } = await run({ healthChecks: true });
  assert.deepEqual(paths, ['/healthz', '/healthz', '/healthz', '/orders']);
  assert.equal(counted, 0);
});
