// Outlier detection's state machine on fake time: ejection after failures in a row, return after
// the ejection time (multiplied by the times ejected), the cap on ejected endpoints, the panic
// threshold, and the multiplier forgiven while an endpoint stays healthy.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import { outboundSchema } from '../config.js';
import { type Endpoint, EndpointState } from './endpoints.js';
import { OutlierDetector } from './outlier.js';

function ep(i: number): Endpoint {
  const ip = `10.0.0.${i}`;
  return { ip, port: 80, host: ip, key: `${ip}:80`, weight: 1, labels: {}, state: new EndpointState() };
}

function detector(raw: Record<string, unknown>, n: number) {
  const cfg = outboundSchema.parse({
    upstreams: { u: { endpoints: ['127.0.0.1:1'], outlierDetection: raw } },
  }).upstreams.u!.outlierDetection!;
  const clock = new FakeClock();
  const all = Array.from({ length: n }, (_, i) => ep(i + 1));
  let changes = 0;
  const ejected: string[] = [];
  const d = new OutlierDetector(cfg, clock, {
    changed: () => changes++,
    ejected: (e) => ejected.push(e.key),
  });
  d.update(all);
  const available = () => d.available(all).map((e) => e.key.slice(7, 8));
  return { d, clock, all, available, ejected, changes: () => changes };
}

test('consecutive5xxErrors ejects; a success in between resets the count; it returns after baseEjectionTime', async () => {
  const t = detector(
    { consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
    4,
  );
  const [a] = t.all;
  t.d.report(a!, 503);
  t.d.report(a!, 500);
  t.d.report(a!, 200);
  t.d.report(a!, 503);
  t.d.report(a!, 503);
  assert.deepEqual(t.available(), ['1', '2', '3', '4']);
  t.d.report(a!, 0); // a reset counts as a 5xx
  assert.deepEqual(t.available(), ['2', '3', '4']);
  assert.deepEqual(t.ejected, ['10.0.0.1:80']);
  await t.clock.advance(29_000);
  assert.deepEqual(t.available(), ['2', '3', '4']);
  await t.clock.advance(1_000);
  assert.deepEqual(t.available(), ['1', '2', '3', '4']);
});

test('the second ejection lasts twice as long; healthy intervals forgive it', async () => {
  const t = detector(
    { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 50 },
    2,
  );
  const [a] = t.all;
  t.d.report(a!, 500);
  await t.clock.advance(10_000);
  assert.deepEqual(t.available(), ['1', '2']);
  t.d.report(a!, 500);
  assert.equal(a!.state.ejections, 2);
  await t.clock.advance(10_000);
  assert.deepEqual(t.available(), ['2'], 'still out: 2 × 10 s');
  await t.clock.advance(10_000);
  assert.deepEqual(t.available(), ['1', '2']);
  // Back and healthy: each interval brings the multiplier down by one.
  await t.clock.advance(3_000);
  assert.equal(a!.state.ejections, 0);
});

test('maxEjectionPercent: at most that share is out at once, and at least one', () => {
  const t = detector({ consecutive5xxErrors: 1, maxEjectionPercent: 20 }, 10);
  for (const e of t.all) t.d.report(e, 503);
  assert.equal(t.ejected.length, 2);
  const one = detector({ consecutive5xxErrors: 1, maxEjectionPercent: 0 }, 3);
  for (const e of one.all) one.d.report(e, 503);
  assert.equal(one.ejected.length, 1);
});

test('gateway errors and local-origin failures have their own counts', () => {
  const t = detector(
    {
      consecutive5xxErrors: 0,
      consecutiveGatewayErrors: 2,
      consecutiveLocalOriginFailures: 3,
      maxEjectionPercent: 100,
    },
    3,
  );
  const [a, b] = t.all;
  t.d.report(a!, 500);
  t.d.report(a!, 500);
  t.d.report(a!, 502);
  assert.equal(t.ejected.length, 0, '500 is not a gateway error');
  t.d.report(a!, 504);
  assert.deepEqual(t.ejected, ['10.0.0.1:80']);
  // A failure with no response at all is a gateway error too (Envoy maps it to 503).
  t.d.report(b!, 0);
  t.d.report(b!, 0);
  assert.deepEqual(t.ejected, ['10.0.0.1:80', '10.0.0.2:80']);
  const local = detector(
    { consecutive5xxErrors: 0, consecutiveLocalOriginFailures: 3, maxEjectionPercent: 100 },
    2,
  );
  const [x] = local.all;
  local.d.report(x!, 0);
  local.d.report(x!, 0);
  local.d.report(x!, 503);
  local.d.report(x!, 0);
  local.d.report(x!, 0);
  assert.equal(local.ejected.length, 0, 'a response in between starts the count again');
  local.d.report(x!, 0);
  assert.deepEqual(local.ejected, ['10.0.0.1:80']);
});

test('minHealthPercent: below it every endpoint is balanced over (panic); with none left, always', () => {
  const t = detector({ consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 50 }, 4);
  const [a, b, c] = t.all;
  t.d.report(a!, 503);
  assert.deepEqual(t.available(), ['2', '3', '4']);
  t.d.report(b!, 503);
  assert.deepEqual(t.available(), ['3', '4'], 'exactly 50 % healthy: not below');
  t.d.report(c!, 503);
  assert.deepEqual(t.available(), ['1', '2', '3', '4'], '25 % healthy: panic');
  const none = detector({ consecutive5xxErrors: 1, maxEjectionPercent: 100 }, 2);
  for (const e of none.all) none.d.report(e, 503);
  assert.deepEqual(none.available(), ['1', '2']);
});

test('failure percentage: an endpoint failing 1 in 10, never in a row, is ejected at the end of the interval', async () => {
  const t = detector(
    {
      consecutive5xxErrors: 5,
      interval: '1s',
      maxEjectionPercent: 50,
      enforcingFailurePercentage: 100,
      failurePercentageThreshold: 10,
      failurePercentageMinimumHosts: 2,
      failurePercentageRequestVolume: 20,
    },
    3,
  );
  const [slow, healthy, quiet] = t.all;
  for (let i = 0; i < 30; i++) {
    t.d.report(slow!, i % 10 === 9 ? 0 : 200);
    t.d.report(healthy!, 200);
  }
  for (let i = 0; i < 4; i++) t.d.report(quiet!, 503); // too few requests to be judged, fewer than 5 in a row
  assert.deepEqual(t.available(), ['1', '2', '3']);
  await t.clock.advance(1_000);
  assert.deepEqual(t.ejected, ['10.0.0.1:80']);
  assert.deepEqual(t.available(), ['2', '3']);
});

test('failure percentage: off by default, below the threshold, below the request volume or the minimum hosts', async () => {
  const cases: Record<string, unknown>[] = [
    { failurePercentageThreshold: 10, failurePercentageMinimumHosts: 1, failurePercentageRequestVolume: 10 },
    {
      enforcingFailurePercentage: 100,
      failurePercentageThreshold: 20,
      failurePercentageMinimumHosts: 1,
      failurePercentageRequestVolume: 10,
    },
    {
      enforcingFailurePercentage: 100,
      failurePercentageThreshold: 10,
      failurePercentageMinimumHosts: 1,
      failurePercentageRequestVolume: 31,
    },
    {
      enforcingFailurePercentage: 100,
      failurePercentageThreshold: 10,
      failurePercentageMinimumHosts: 3,
      failurePercentageRequestVolume: 10,
    },
  ];
  for (const raw of cases) {
    const t = detector({ interval: '1s', maxEjectionPercent: 50, ...raw }, 3);
    const [a, b] = t.all;
    for (let i = 0; i < 30; i++) {
      t.d.report(a!, i % 10 === 9 ? 500 : 200);
      t.d.report(b!, 200);
    }
    await t.clock.advance(1_000);
    assert.deepEqual(t.ejected, [], JSON.stringify(raw));
  }
});

test('failure percentage counts each interval afresh', async () => {
  const t = detector(
    {
      interval: '1s',
      maxEjectionPercent: 50,
      enforcingFailurePercentage: 100,
      failurePercentageThreshold: 50,
      failurePercentageMinimumHosts: 1,
      failurePercentageRequestVolume: 10,
    },
    2,
  );
  const [a] = t.all;
  for (let i = 0; i < 8; i++) t.d.report(a!, i % 2 ? 503 : 200);
  await t.clock.advance(1_000); // 8 requests: under the volume
  for (let i = 0; i < 8; i++) t.d.report(a!, i % 2 ? 503 : 200);
  await t.clock.advance(1_000); // 8 more, counted alone: still under it
  assert.deepEqual(t.ejected, []);
  for (let i = 0; i < 10; i++) t.d.report(a!, i % 2 ? 503 : 200);
  await t.clock.advance(1_000);
  assert.deepEqual(t.ejected, ['10.0.0.1:80']);
});
