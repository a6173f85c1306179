// Istio's traffic YAML read as it is: the seed's VirtualService (90/10 between subsets, timeout,
// retries) and DestinationRule (connection pool limits, outlier detection, subsets by version)
// loaded unchanged through policies.istio and run by the outbound proxy; unsupported fields and
// unknown hosts at their line:col.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { formatIssue } from '../config/index.js';
import { type Backend, RawClient, startBackend, startOutbound } from '../proxy/test-support.js';
import { loadPillionConfig } from '../roles.js';

export const SEED_VIRTUAL_SERVICE = `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v2
      weight: 10
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: 5xx,reset
`;

export const SEED_DESTINATION_RULE = `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 100
      http:
        http1MaxPendingRequests: 50
        http2MaxRequests: 100
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
`;

let dir = '';
const backends: Backend[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pillion-istio-traffic-'));
});
after(async () => {
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
});

async function named(name: string): Promise<Backend> {
  const b = await startBackend((_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-length': name.length });
    res.end(name);
  });
  backends.push(b);
  return b;
}

async function load(pillion: string, istio: string) {
  await writeFile(join(dir, 'traffic.yaml'), istio);
  await writeFile(join(dir, 'pillion.yaml'), pillion);
  return loadPillionConfig(join(dir, 'pillion.yaml'), {});
}

const outbound = (v1: number, v2: number) => `outbound:
  listener: { address: 127.0.0.1:0 }
  upstreams:
    reviews:
      endpoints:
        - { address: 127.0.0.1:${v1}, labels: { version: v1 } }
        - { address: 127.0.0.1:${v2}, labels: { version: v2 } }
policies:
  istio: [traffic.yaml]
`;

test("the seed's VirtualService and DestinationRule, unchanged, become routes and upstream settings", async () => {
  const v1 = await named('v1');
  const v2 = await named('v2');
  const r = await load(outbound(v1.port, v2.port), `${SEED_VIRTUAL_SERVICE}---\n${SEED_DESTINATION_RULE}`);
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  const o = r.config.outbound!;
  const u = o.upstreams.reviews!;
  assert.deepEqual(Object.keys(u.subsets), ['v1', 'v2']);
  assert.equal(u.pool.maxConnections, 100);
  assert.equal(u.pool.maxPending, 50);
  assert.equal(u.pool.maxRequests, 100);
  assert.deepEqual(u.outlierDetection, {
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 0,
    consecutiveLocalOriginFailures: 0,
    failurePercentageThreshold: 85,
    enforcingFailurePercentage: 0,
    failurePercentageMinimumHosts: 5,
    failurePercentageRequestVolume: 50,
    interval: 30_000,
    baseEjectionTime: 30_000,
    maxEjectionPercent: 50,
    minHealthPercent: 0,
  });
  const [route] = o.routes;
  assert.equal(route!.match.host, 'reviews');
  assert.deepEqual(
    route!.destinations!.map((d) => [d.upstream, d.subset, d.weight]),
    [
      ['reviews', 'v1', 90],
      ['reviews', 'v2', 10],
    ],
  );
  assert.equal(route!.timeout, 10_000);
  assert.equal(route!.retries!.attempts, 3);
  assert.equal(route!.retries!.perTryTimeout, 2000);
  assert.deepEqual(route!.retries!.retryOn, ['5xx', 'reset']);

  // And the outbound proxy runs it: about 90 % to v1.
  const raw = r.raw as { outbound: Record<string, unknown> };
  const p = await startOutbound(raw.outbound);
  try {
    const c = await RawClient.connect(p.port());
    let n2 = 0;
    for (let i = 0; i < 400; i++) {
      c.write('GET / HTTP/1.1\r\nHost: reviews\r\n\r\n');
      if ((await c.readResponse()).body.toString() === 'v2') n2++;
    }
    c.destroy();
    // 400 × 0.1 = 40, sd 6: five of them either way.
    assert.ok(n2 > 10 && n2 < 70, `v2 got ${n2} of 400`);
  } finally {
    await p.stop();
  }
});

test('an unsupported field is an error at its line:col naming it; so is a host that names no upstream', async () => {
  const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings.prod.svc.cluster.local]
  http:
  - corsPolicy:
      allowOrigins: [{ exact: "*" }]
    route:
    - destination: { host: ratings }
`;
  const r = await load(outbound(1, 2), vs);
  assert.ok(!r.ok);
  const lines = r.issues.map(formatIssue);
  assert.ok(
    lines.some((l) => /traffic\.yaml:8:5 PILLION_ERR_POLICY_UNSUPPORTED_FIELD .*corsPolicy/.test(l)),
    lines.join('\n'),
  );
  const dr = `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: details
spec:
  host: details.prod.svc.cluster.local
  trafficPolicy:
    connectionPool:
      http:
        useClientProtocol: true
`;
  const r2 = await load(outbound(1, 2), dr);
  assert.ok(!r2.ok);
  const l2 = r2.issues.map(formatIssue);
  assert.ok(
    l2.some((l) => /traffic\.yaml:10:9 PILLION_ERR_POLICY_UNSUPPORTED_FIELD .*useClientProtocol/.test(l)),
    l2.join('\n'),
  );
});

test('h2UpgradePolicy: DEFAULT and DO_NOT_UPGRADE keep HTTP/1.1 to the upstream; UPGRADE makes it protocol: h2 (HTTP/1.1 clients too go over HTTP/2)', async () => {
  for (const [apiVersion, policy, protocol, max] of [
    ['v1', 'DEFAULT', 'http1', 7],
    ['v1', 'DO_NOT_UPGRADE', 'http1', 7],
    ['v1alpha3', 'UPGRADE', 'h2', 9],
  ] as const) {
    const dr = `apiVersion: networking.istio.io/${apiVersion}
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http:
        h2UpgradePolicy: ${policy}
        http2MaxRequests: ${max}
`;
    const r = await load(outbound(1, 2), dr);
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    const u = r.config.outbound!.upstreams.reviews!;
    assert.equal(u.protocol, protocol, policy);
    assert.equal(u.pool.maxRequests, max);
  }
});

test('a header match, query parameters, faults and mirror translate; gRPC retry conditions are refused', async () => {
  const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        x-canary: { exact: "true" }
      queryParams:
        beta: { prefix: "1" }
    route:
    - destination: { host: reviews, subset: v2 }
    fault:
      abort: { httpStatus: 503, percentage: { value: 5 } }
    mirror: { host: reviews }
    mirrorPercentage: { value: 10 }
  - route:
    - destination: { host: reviews, subset: v1 }
    retries: { attempts: 2, retryOn: "unavailable,503" }
`;
  const dr = SEED_DESTINATION_RULE;
  const r = await load(outbound(1, 2), `${vs}---\n${dr}`);
  assert.ok(!r.ok);
  assert.deepEqual(
    r.issues.map(formatIssue).map((l) => l.replace(/^.*traffic\.yaml:/, '')),
    [
      '21:38 PILLION_ERR_CONFIG_BAD_VALUE spec.http[1].retries.retryOn: not supported: retryOn "unavailable" (gRPC conditions need gRPC retries, not built)',
    ],
  );
  const ok = await load(outbound(1, 2), `${vs.replace('unavailable,503', '503')}---\n${dr}`);
  assert.ok(ok.ok, ok.ok ? '' : ok.issues.map(formatIssue).join('\n'));
  const [a, b] = ok.config.outbound!.routes;
  assert.deepEqual(a!.match.headers, [{ name: 'x-canary', exact: 'true' }]);
  assert.deepEqual(a!.match.query, [{ name: 'beta', regex: '^1.*' }]);
  assert.deepEqual(a!.fault, { abort: { status: 503, percent: 5 } });
  assert.deepEqual(a!.mirror, { upstream: 'reviews', percent: 10 });
  assert.deepEqual(b!.retries!.retryOn, ['retriable-status-codes']);
  assert.deepEqual(b!.retries!.retriableStatusCodes, [503]);
});
