// Active health checks over real sockets: a backend whose health path fails on command leaves
// balancing and returns, a closed port fails its TCP checks, and /clusters and the metrics show it.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { after, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';
import type { OutboundConfig } from './config.js';
import { makeCa, makeLeaf } from './tls/test-certs.js';
import {
  type Backend,
  freePort,
  listen,
  get,
  metricValue,
  rawRequest,
  startBackend,
  startOutbound,
  type StartedProxy,
} from './test-support.js';

const proxies: StartedProxy<OutboundConfig>[] = [];
const backends: Backend[] = [];
after(async () => {
  for (const p of proxies) await p.stop();
  for (const b of backends) await b.close();
});

/** A backend answering its port on every path, and 200 or 503 on /healthz as its `ctl` says. */
async function backend(): Promise<Backend & { ctl: { healthy: boolean; served: number; checks: string[] } }> {
  const ctl = { healthy: true, served: 0, checks: [] as string[] };
  const b = await startBackend((req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/healthz') {
      ctl.checks.push(String(req.headers.host));
      res.writeHead(ctl.healthy ? 200 : 503, { 'content-length': 0 });
      res.end();
      return;
    }
    ctl.served++;
    const body = String(req.socket.localPort);
    res.writeHead(200, { 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  backends.push(b);
  return Object.assign(b, { ctl });
}

test('an endpoint failing its HTTP health check leaves balancing and comes back when it passes again', async () => {
  const a = await backend();
  const b = await backend();
  const p = await startOutbound({
    upstreams: {
      svc: {
        endpoints: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
        healthCheck: {
          path: '/healthz',
          interval: '100ms',
          timeout: '2s',
          unhealthyThreshold: 2,
          healthyThreshold: 2,
        },
      },
    },
  });
  proxies.push(p);
  const endpoint = (port: number) =>
    p.module.clusters()[0]!.endpoints.find((e) => e.address === `127.0.0.1:${port}`)!;
  await waitFor(() => a.ctl.checks.length >= 1 && b.ctl.checks.length >= 1, { what: 'the first checks' });
  assert.equal(
    a.ctl.checks[0],
    `127.0.0.1:${a.port}`,
    'checks carry the Host requests to the upstream carry',
  );

  a.ctl.healthy = false;
  await waitFor(() => endpoint(a.port).health === 'unhealthy', { what: 'a marked unhealthy' });
  assert.equal(endpoint(a.port).last_check_failure, 'GET /healthz answered 503');
  const servedBefore = a.ctl.served;
  for (let i = 0; i < 6; i++) {
    const r = await rawRequest(p.port(), get('/svc/x'));
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), String(b.port));
  }
  assert.equal(a.ctl.served, servedBefore, 'no request reached the unhealthy endpoint');
  const m = (name: string, labels: Record<string, string>) => metricValue(p.metrics, name, labels);
  assert.equal(await m('pillion_upstream_endpoints', { upstream: 'svc', state: 'unhealthy' }), 1);
  assert.equal(await m('pillion_upstream_endpoints', { upstream: 'svc', state: 'healthy' }), 1);
  assert.ok(
    (await m('pillion_upstream_health_checks_total', { upstream: 'svc', result: 'bad_status' })) >= 2,
  );
  assert.ok((await m('pillion_upstream_health_checks_total', { upstream: 'svc', result: 'passed' })) >= 2);

  a.ctl.healthy = true;
  await waitFor(() => endpoint(a.port).health === 'healthy', { what: 'a back in balancing' });
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add((await rawRequest(p.port(), get('/svc/x'))).body.toString());
  assert.deepEqual([...seen].sort(), [String(a.port), String(b.port)].sort());
});

test('a TCP check of a port nobody listens on fails as connect_failure', async () => {
  const a = await backend();
  const closed = await freePort();
  const p = await startOutbound({
    upstreams: {
      svc: {
        endpoints: [`127.0.0.1:${a.port}`, `127.0.0.1:${closed}`],
        healthCheck: { type: 'tcp', interval: '100ms', unhealthyThreshold: 1 },
      },
    },
  });
  proxies.push(p);
  await waitFor(
    () =>
      p.module.clusters()[0]!.endpoints.find((e) => e.address === `127.0.0.1:${closed}`)!.health ===
      'unhealthy',
    { what: 'the closed port marked unhealthy' },
  );
  const e = p.module.clusters()[0]!.endpoints.find((x) => x.address === `127.0.0.1:${closed}`)!;
  assert.match(e.last_check_failure!, /^ECONNREFUSED/);
  for (let i = 0; i < 4; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
  assert.ok(
    (await metricValue(p.metrics, 'pillion_upstream_health_checks_total', {
      upstream: 'svc',
      result: 'connect_failure',
    })) >= 1,
  );
});

test('checks of a TLS upstream go over TLS, verified as its requests are: a wrong CA fails them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-health-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await makeCa();
  const leaf = await makeLeaf(ca, { names: ['backend.test'] });
  const seen: string[] = [];
  const server = https.createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    seen.push(`${req.url} ${(req.socket as tls.TLSSocket).servername || '-'}`);
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  });
  const port = await listen(server);
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const caPath = join(dir, 'ca.crt');
  writeFileSync(caPath, ca.cert);
  const otherCa = join(dir, 'other.crt');
  writeFileSync(otherCa, (await makeCa({ commonName: 'Unrelated CA' })).cert);
  const healthCheck = { path: '/healthz', interval: '100ms', unhealthyThreshold: 1 };
  const p = await startOutbound({
    upstreams: {
      good: {
        endpoints: [`127.0.0.1:${port}`],
        tls: { ca: caPath, serverName: 'backend.test' },
        healthCheck,
      },
      wrongCa: {
        endpoints: [`127.0.0.1:${port}`],
        tls: { ca: otherCa, serverName: 'backend.test' },
        healthCheck,
      },
    },
  });
  proxies.push(p);
  const view = (name: string) => p.module.clusters().find((c) => c.name === name)!;
  await waitFor(() => view('good').stats.health_check_passed! >= 2, { what: 'checks over TLS passing' });
  assert.equal(view('good').endpoints[0]!.health, 'healthy');
  assert.ok(seen.includes('/healthz backend.test'), seen.join(', '));
  await waitFor(() => view('wrongCa').endpoints[0]!.health === 'unhealthy', { what: 'the wrong CA failing' });
  assert.match(view('wrongCa').endpoints[0]!.last_check_failure!, /certificate/i);
});
