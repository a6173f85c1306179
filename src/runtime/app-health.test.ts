import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { after, test } from 'node:test';
import pino from 'pino';
import { FakeClock } from '../lib/clock.js';
import { createMetricsRegistry } from '../metrics/index.js';
import { AppHealthModule } from './app-health.js';
import { type ProbeResult, type ProbeTarget, probeApp } from './app-probe.js';
import { appSchema } from './config.js';
import { HealthSignal } from './health-signal.js';

const silent = pino({ level: 'silent' });

function setup(health: Record<string, unknown>, results: ProbeResult[]) {
  const clock = new FakeClock();
  const signal = new HealthSignal(true);
  const metrics = createMetricsRegistry();
  const probes: ProbeTarget[] = [];
  const config = appSchema.parse({ port: 8080, health });
  const mod = new AppHealthModule(config, {
    clock,
    logger: silent,
    signal,
    metrics,
    probe: async (t) => {
      probes.push(t);
      return results.shift() ?? { ok: true };
    },
  });
  return { clock, signal, metrics, probes, mod };
}

test('unhealthy until the first pass; healthy after healthyThreshold passes in a row', async () => {
  const { clock, signal, probes, mod } = setup({ interval: '2s', healthyThreshold: 2 }, [
    { ok: false, reason: 'connection refused at 127.0.0.1:8080' },
    { ok: true },
    { ok: true },
  ]);
  assert.equal(signal.healthy, false);
  assert.equal(signal.reason, 'not checked yet');
  await mod.start();
  await clock.advance(0);
  assert.equal(probes.length, 1, 'the first check runs at once');
  assert.deepEqual(mod.readiness(), {
    ready: false,
    reason: 'app unhealthy: connection refused at 127.0.0.1:8080',
  });
  await clock.advance(1999);
  assert.equal(probes.length, 1);
  await clock.advance(1);
  assert.equal(probes.length, 2);
  assert.equal(signal.healthy, false, 'one pass of two');
  await clock.advance(2000);
  assert.equal(signal.healthy, true);
  assert.deepEqual(mod.readiness(), { ready: true });
  await mod.stop();
});

test('healthy stays healthy until unhealthyThreshold failures in a row; a pass resets the count', async () => {
  const fail = { ok: false, reason: 'GET / answered 500' };
  const { clock, signal, mod, metrics } = setup({ interval: '1s', unhealthyThreshold: 3 }, [
    { ok: true },
    fail,
    fail,
    { ok: true },
    fail,
    fail,
    fail,
  ]);
  const changes: boolean[] = [];
  signal.onChange((h) => changes.push(h));
  await mod.start();
  await clock.advance(0);
  assert.equal(signal.healthy, true);
  await clock.advance(3000); // fail, fail, pass
  assert.equal(signal.healthy, true);
  await clock.advance(2000); // fail, fail
  assert.equal(signal.healthy, true);
  await clock.advance(1000); // third failure in a row
  assert.equal(signal.healthy, false);
  assert.equal(signal.reason, 'GET / answered 500');
  assert.deepEqual(changes, [true, false]);
  const text = await metrics.metrics();
  assert.match(text, /^pillion_app_healthy 0$/m);
  assert.match(text, /^pillion_app_health_checks_total\{result="fail"\} 5$/m);
  assert.match(text, /^pillion_app_health_checks_total\{result="pass"\} 2$/m);
  await mod.stop();
  await clock.advance(10_000);
  assert.equal(clock.pending, 0, 'no timer is left after stop');
});

test('reload applies a new target in place and checks it at once', async () => {
  const { clock, probes, mod } = setup({ interval: '10s' }, []);
  await mod.start();
  await clock.advance(0);
  assert.equal(
    await mod.reload(appSchema.parse({ port: 9090, health: { path: '/ready', interval: '10s' } })),
    'applied',
  );
  await clock.advance(0);
  assert.equal(probes.length, 2);
  assert.equal(probes[1]!.port, 9090);
  assert.equal(probes[1]!.path, '/ready');
  await mod.stop();
});

// --- the real probe, against real servers -------------------------------------------------------

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function httpServer(handler: Parameters<typeof createHttpServer>[1]): Promise<number> {
  const s = createHttpServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

const target = (port: number, extra: Partial<ProbeTarget> = {}): ProbeTarget => ({
  host: '127.0.0.1',
  port,
  protocol: 'http',
  path: '/health',
  timeoutMs: 300,
  ...extra,
});

test('http probe: 2xx and 3xx pass, others fail with the status; it sends a probe user agent', async () => {
  let ua = '';
  const port = await httpServer((req, res) => {
    ua = req.headers['user-agent'] ?? '';
    res.statusCode = req.url === '/health' ? 200 : req.url === '/moved' ? 302 : 503;
    res.end();
  });
  assert.deepEqual(await probeApp(target(port)), { ok: true });
  assert.equal(ua, 'pillion-health/1');
  assert.deepEqual(await probeApp(target(port, { path: '/moved' })), { ok: true });
  assert.deepEqual(await probeApp(target(port, { path: '/x' })), {
    ok: false,
    reason: 'GET /x answered 503',
  });
});

test('http probe: a slow app times out; a closed port is "connection refused"', async () => {
  const port = await httpServer(() => {
    /* never answers */
  });
  assert.deepEqual(await probeApp(target(port, { timeoutMs: 100 })), {
    ok: false,
    reason: 'GET /health timed out after 100ms',
  });
  const closed = await httpServer(() => {});
  servers.pop()!.close();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(await probeApp(target(closed)), {
    ok: false,
    reason: `connection refused at 127.0.0.1:${closed}`,
  });
});

test('tcp probe: an open port passes, a closed one fails', async () => {
  const s = createTcpServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  assert.deepEqual(await probeApp(target(port, { protocol: 'tcp' })), { ok: true });
  await new Promise((r) => s.close(r));
  assert.deepEqual(await probeApp(target(port, { protocol: 'tcp' })), {
    ok: false,
    reason: `connection refused at 127.0.0.1:${port}`,
  });
});

test('regression: a reload while a check is in flight does not start a second check loop', async () => {
  const clock = new FakeClock();
  const pending: ((r: ProbeResult) => void)[] = [];
  let calls = 0;
  const mod = new AppHealthModule(appSchema.parse({ port: 8080, health: { interval: '1s' } }), {
    clock,
    logger: silent,
    signal: new HealthSignal(true),
    metrics: createMetricsRegistry(),
    probe: () => {
      calls++;
      return new Promise((resolve) => pending.push(resolve));
    },
  });
  await mod.start();
  await clock.advance(0);
  assert.equal(calls, 1);
  await mod.reload(appSchema.parse({ port: 9090, health: { interval: '1s' } }));
  await clock.advance(0);
  assert.equal(calls, 2, 'the new target is checked at once');
  for (const r of pending.splice(0)) r({ ok: true }); // both checks finish
  await clock.advance(0);
  assert.equal(clock.pending, 1, 'exactly one loop is scheduled');
  for (let i = 0; i < 5; i++) {
    const before: number = calls;
    await clock.advance(1000);
    assert.equal(calls, before + 1, 'each interval runs one check, not one per loop');
    for (const r of pending.splice(0)) r({ ok: true });
    await clock.advance(0);
  }
  await mod.stop();
});

test('regression: stop() cancels a check in flight instead of waiting for its timeout', async () => {
  const port = await httpServer(() => {
    /* never answers */
  });
  const signal = new HealthSignal(true);
  const mod = new AppHealthModule(appSchema.parse({ host: '127.0.0.1', port, health: { timeout: '1m' } }), {
    clock: new FakeClock(),
    logger: silent,
    signal,
    metrics: createMetricsRegistry(),
  });
  const controller = new AbortController();
  const check = probeApp(target(port, { timeoutMs: 60_000 }), controller.signal);
  controller.abort();
  // The reason says it: a check that waited for its 60 s timeout would have timed out instead.
  assert.deepEqual(await check, { ok: false, reason: 'check cancelled' });
  await mod.stop();
});
