// Active health checks on fake time, with the network check replaced by one the test answers:
// thresholds in both directions, the balancer's set following them, the panic rule, timeouts on
// the clock, interval plus jitter, and no timer at all for an upstream without a check.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { FakeClock } from '../../lib/clock.js';
import type { CheckOutcome } from '../../lib/net-check.js';
import { outboundSchema } from '../config.js';
import type { Endpoint } from './endpoints.js';
import { Upstream } from './upstream.js';

const logger = pino({ level: 'silent' });
const PORTS = [8001, 8002, 8003];

/** An upstream of three endpoints whose checks answer as `answers` says for each port at the time. */
async function checked(healthCheck: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const answers = new Map<number, CheckOutcome | 'hang'>(
    PORTS.map((p) => [p, { kind: 'status', status: 200 }]),
  );
  const probes: { port: number; at: number }[] = [];
  const cfg = outboundSchema.parse({
    upstreams: { svc: { endpoints: PORTS.map((p) => `127.0.0.1:${p}`), healthCheck, ...extra } },
  }).upstreams.svc!;
  const u = new Upstream('svc', cfg, {
    logger,
    timeouts: outboundSchema.parse({}).timeouts,
    rewriteHost: true,
    clock,
    random: () => 0.5,
    healthProbe: (ep: Endpoint, signal: AbortSignal) => {
      probes.push({ port: ep.port, at: clock.now() });
      const a = answers.get(ep.port)!;
      if (a !== 'hang') return Promise.resolve(a);
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ kind: 'aborted' })));
    },
  });
  await u.start();
  /** Ports the balancer picks from, over enough picks to see each. */
  const picked = () => {
    const s = new Set<number>();
    for (let i = 0; i < 12; i++) s.add(u.pick('', undefined)!.port);
    return [...s].sort();
  };
  const health = (port: number) =>
    u.view('outbound', clock.now()).endpoints.find((e) => e.address.endsWith(`:${port}`))!;
  return { u, clock, answers, probes, picked, health };
}

test('unhealthyThreshold failures in a row take an endpoint out; healthyThreshold passes bring it back', async () => {
  const t = await checked({ path: '/healthz', interval: '10s', unhealthyThreshold: 3, healthyThreshold: 2 });
  await t.clock.advance(0);
  assert.equal(t.probes.length, 3, 'the first round runs at once');
  assert.deepEqual(t.picked(), PORTS);
  t.answers.set(8002, { kind: 'status', status: 503 });
  await t.clock.advance(10_000);
  await t.clock.advance(10_000);
  assert.equal(t.health(8002).health, 'healthy', 'two failures are not three');
  assert.equal(t.health(8002).checks_failed, 2);
  assert.equal(t.health(8002).last_check_failure, 'GET /healthz answered 503');
  await t.clock.advance(10_000);
  assert.equal(t.health(8002).health, 'unhealthy');
  assert.deepEqual(t.picked(), [8001, 8003]);
  // Still checked while out; one pass is not two.
  t.answers.set(8002, { kind: 'status', status: 204 });
  await t.clock.advance(10_000);
  assert.deepEqual(t.picked(), [8001, 8003]);
  await t.clock.advance(10_000);
  assert.equal(t.health(8002).health, 'healthy');
  assert.deepEqual(t.picked(), PORTS);
  const stats = t.u.view('outbound', t.clock.now()).stats;
  assert.equal(stats.health_check_bad_status, 3);
  assert.equal(stats.health_check_passed, 3 * 6 - 3);
  t.u.close();
});

test('a failure between passes starts the count again (in both directions)', async () => {
  const t = await checked({ interval: '1s', unhealthyThreshold: 2, healthyThreshold: 2 });
  await t.clock.advance(0);
  const fail: CheckOutcome = { kind: 'error', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' };
  const ok: CheckOutcome = { kind: 'status', status: 200 };
  for (const a of [fail, ok, fail, ok]) {
    t.answers.set(8001, a);
    await t.clock.advance(1000);
  }
  assert.equal(t.health(8001).health, 'healthy');
  t.answers.set(8001, fail);
  await t.clock.advance(2000);
  assert.equal(t.health(8001).health, 'unhealthy');
  assert.equal(t.health(8001).last_check_failure, 'ECONNREFUSED: connect ECONNREFUSED');
  for (const a of [ok, fail, ok]) {
    t.answers.set(8001, a);
    await t.clock.advance(1000);
  }
  assert.equal(t.health(8001).health, 'unhealthy');
  await t.clock.advance(1000);
  assert.equal(t.health(8001).health, 'healthy');
  t.u.close();
});

test('expectedStatuses: codes and ranges', async () => {
  const t = await checked({ expectedStatuses: [200, '300-302'], unhealthyThreshold: 1, interval: '1s' });
  t.answers.set(8001, { kind: 'status', status: 302 });
  t.answers.set(8002, { kind: 'status', status: 204 });
  await t.clock.advance(0);
  assert.equal(t.health(8001).health, 'healthy');
  assert.equal(t.health(8002).health, 'unhealthy');
  t.u.close();
});

test('a check that does not answer within timeout fails as timeout, on the clock', async () => {
  const t = await checked({ timeout: '2s', interval: '5s', unhealthyThreshold: 1 });
  t.answers.set(8003, 'hang');
  await t.clock.advance(1999);
  assert.equal(t.health(8003).health, 'healthy');
  await t.clock.advance(1);
  assert.equal(t.health(8003).health, 'unhealthy');
  assert.equal(t.u.view('outbound', t.clock.now()).stats.health_check_timeout, 1);
  // The next round starts an interval after the slowest check of this one ended.
  const before = t.probes.length;
  await t.clock.advance(4999);
  assert.equal(t.probes.length, before);
  await t.clock.advance(1);
  assert.equal(t.probes.length, before + 3);
  t.u.close();
});

test('jitter adds random × jitter to each interval', async () => {
  const t = await checked({ interval: '10s', jitter: '4s' });
  await t.clock.advance(0);
  await t.clock.advance(11_999);
  assert.equal(t.probes.length, 3, 'random() is 0.5: the next round is 12 s later');
  await t.clock.advance(1);
  assert.equal(t.probes.length, 6);
  t.u.close();
});

test('with every endpoint unhealthy, or fewer than minHealthPercent, requests go to all (panic)', async () => {
  const t = await checked(
    { interval: '1s', unhealthyThreshold: 1 },
    { outlierDetection: { consecutive5xxErrors: 0, minHealthPercent: 50 } },
  );
  t.answers.set(8001, { kind: 'status', status: 500 });
  await t.clock.advance(0);
  assert.deepEqual(t.picked(), [8002, 8003], 'two of three healthy: above 50 %');
  t.answers.set(8002, { kind: 'status', status: 500 });
  await t.clock.advance(1000);
  assert.deepEqual(t.picked(), PORTS, 'one of three: below 50 %');
  t.answers.set(8003, { kind: 'timeout' });
  await t.clock.advance(1000);
  assert.deepEqual(t.picked(), PORTS);
  t.u.close();
});

test('closing the upstream ends its checks; an upstream without healthCheck has no timer', async () => {
  const t = await checked({ interval: '1s' });
  await t.clock.advance(0);
  t.u.close();
  const n = t.probes.length;
  await t.clock.advance(10_000);
  assert.equal(t.probes.length, n);
  assert.equal(t.clock.pending, 0);

  const clock = new FakeClock();
  const cfg = outboundSchema.parse({ upstreams: { svc: { endpoints: ['127.0.0.1:8001'] } } }).upstreams.svc!;
  const plain = new Upstream('svc', cfg, {
    logger,
    timeouts: outboundSchema.parse({}).timeouts,
    rewriteHost: true,
    clock,
  });
  await plain.start();
  assert.equal(clock.pending, 0);
  assert.equal(plain.health, undefined);
  assert.equal('checks_failed' in plain.view('outbound', clock.now()).endpoints[0]!, false);
  plain.close();
});

test('the schema: tcp takes no path; ranges must not be empty', () => {
  const r = outboundSchema.safeParse({
    upstreams: { svc: { endpoints: ['127.0.0.1:1'], healthCheck: { type: 'tcp', path: '/x' } } },
  });
  assert.equal(r.success, false);
  assert.match(JSON.stringify(r.error!.issues), /path is for type: http/);
  const e = outboundSchema.safeParse({
    upstreams: { svc: { endpoints: ['127.0.0.1:1'], healthCheck: { expectedStatuses: ['299-200'] } } },
  });
  assert.equal(e.success, false);
  const ok = outboundSchema.parse({ upstreams: { svc: { endpoints: ['127.0.0.1:1'], healthCheck: {} } } });
  assert.deepEqual(ok.upstreams.svc!.healthCheck!.expectedStatuses, [[200, 399]]);
  assert.equal(ok.upstreams.svc!.healthCheck!.path, '/');
});
