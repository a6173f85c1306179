// Endpoint discovery: weights and labels, SRV records, and a watched endpoints file whose
// changes apply without a restart (and whose bad versions keep the last good list).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { waitFor } from '../../lib/wait-for.js';
import { createMetricsRegistry } from '../../metrics/index.js';
import { outboundSchema } from '../config.js';
import { Endpoints } from './endpoints.js';
import { Upstream } from './upstream.js';

const logger = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'pillion-endpoints-'));
after(() => rmSync(dir, { recursive: true, force: true }));
void createMetricsRegistry;

function upstream(raw: Record<string, unknown>, opts: { onEndpointsFileError?: (e: Error) => void } = {}) {
  const cfg = outboundSchema.parse({ upstreams: { svc: raw } }).upstreams.svc!;
  return new Upstream('svc', cfg, {
    logger,
    timeouts: outboundSchema.parse({}).timeouts,
    rewriteHost: true,
    ...opts,
  });
}

test('endpoints carry weights and labels; a plain "host:port" has weight 1 and none', () => {
  const u = upstream({
    endpoints: ['127.0.0.1:8001', { address: '127.0.0.1:8002', weight: 3, labels: { version: 'v2' } }],
  });
  assert.deepEqual(
    u.endpoints.all.map((e) => [e.key, e.weight, e.labels]),
    [
      ['127.0.0.1:8001', 1, {}],
      ['127.0.0.1:8002', 3, { version: 'v2' }],
    ],
  );
  u.close();
});

test('SRV: the lowest priority records, weighted by their SRV weight, each target resolved', async () => {
  const e = new Endpoints([], {
    refreshMs: 60_000,
    logger,
    srv: '_http._tcp.inventory.example',
    resolveSrv: async (name) => {
      assert.equal(name, '_http._tcp.inventory.example');
      return [
        { name: 'a.inventory.example', port: 8080, priority: 10, weight: 60 },
        { name: 'b.inventory.example', port: 8081, priority: 10, weight: 20 },
        { name: 'backup.inventory.example', port: 8082, priority: 20, weight: 100 },
      ];
    },
    resolve: async (host) => [{ address: host.startsWith('a.') ? '10.1.0.1' : '10.1.0.2', ttl: 30 }],
  });
  await e.start();
  assert.deepEqual(
    e.all.map((x) => [x.key, x.host, x.weight]),
    [
      ['10.1.0.1:8080', 'a.inventory.example', 60],
      ['10.1.0.2:8081', 'b.inventory.example', 20],
    ],
  );
  e.close();
});

test('the Host of an SRV upstream is its service name; of a file-only upstream, its own name', () => {
  const cfg = (raw: Record<string, unknown>) =>
    outboundSchema.parse({ upstreams: { svc: raw } }).upstreams.svc!;
  assert.equal(
    Upstream.hostHeaderOf('svc', cfg({ srv: '_http._tcp.inventory.example' })),
    'inventory.example',
  );
  assert.equal(Upstream.hostHeaderOf('svc', cfg({ endpointsFile: '/x.yaml' })), 'svc');
});

test('an endpoints file is read at start and followed when it changes; a broken one keeps the last good list', async () => {
  const file = join(dir, 'inventory.yaml');
  writeFileSync(file, '- 127.0.0.1:9001\n- { address: 127.0.0.1:9002, labels: { version: v2 } }\n');
  const errors: string[] = [];
  const u = upstream({ endpointsFile: file }, { onEndpointsFileError: (e) => errors.push(e.message) });
  let changes = 0;
  u.endpoints.onChange(() => changes++);
  await u.start();
  assert.deepEqual(
    u.endpoints.all.map((e) => e.key),
    ['127.0.0.1:9001', '127.0.0.1:9002'],
  );
  const state = u.endpoints.all[0]!.state;
  writeFileSync(file, 'endpoints:\n  - 127.0.0.1:9001\n  - { address: 127.0.0.1:9003, weight: 2 }\n');
  await waitFor(() => u.endpoints.all.some((e) => e.key === '127.0.0.1:9003'), {
    what: 'the changed file applied',
  });
  assert.deepEqual(
    u.endpoints.all.map((e) => [e.key, e.weight]),
    [
      ['127.0.0.1:9001', 1],
      ['127.0.0.1:9003', 2],
    ],
  );
  // An endpoint that stays keeps its state (in-flight counts, outlier state).
  assert.equal(u.endpoints.all[0]!.state, state);
  writeFileSync(file, '- { address: 127.0.0.1:9004, weight: 0 }\n');
  await waitFor(() => errors.length > 0, { what: 'the broken file reported' });
  assert.match(errors[0]!, /weight/);
  assert.deepEqual(
    u.endpoints.all.map((e) => e.key),
    ['127.0.0.1:9001', '127.0.0.1:9003'],
  );
  assert.ok(changes >= 1);
  u.close();
});

test('an upstream needs endpoints, srv or endpointsFile', () => {
  const r = outboundSchema.safeParse({ upstreams: { svc: {} } });
  assert.equal(r.success, false);
});
