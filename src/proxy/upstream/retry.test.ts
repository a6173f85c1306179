// The retry policy's decisions and back-off, and the retry budget, on fake time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FakeClock } from '../../lib/clock.js';
import { retriesSchema, retryBudgetSchema } from '../config.js';
import { F_CONNECT, F_REFUSED, F_RESET, F_TIMEOUT } from './resilience.js';
import { RetryBudget, RetryPolicy } from './retry.js';

const policy = (raw: Record<string, unknown>, random?: () => number) =>
  new RetryPolicy(retriesSchema.parse(raw), random);

test('retryOn: each condition retries what it names, and nothing else', () => {
  const cases: [string, (p: RetryPolicy) => boolean, boolean][] = [
    ['5xx', (p) => p.onResponse(500, [], []), true],
    ['5xx', (p) => p.onResponse(404, [], []), false],
    ['5xx', (p) => p.onFailure(F_RESET) && p.onFailure(F_CONNECT) && p.onFailure(F_TIMEOUT), true],
    ['gateway-error', (p) => p.onResponse(502, [], []) && p.onResponse(504, [], []), true],
    ['gateway-error', (p) => p.onResponse(500, [], []), false],
    ['gateway-error', (p) => p.onFailure(F_RESET), false],
    ['gateway-error', (p) => p.onFailure(F_CONNECT), true],
    ['reset', (p) => p.onFailure(F_RESET) && p.onFailure(F_TIMEOUT), true],
    ['reset', (p) => p.onFailure(F_CONNECT) || p.onResponse(503, [], []), false],
    ['connect-failure', (p) => p.onFailure(F_CONNECT), true],
    ['connect-failure', (p) => p.onFailure(F_RESET) || p.onResponse(503, [], []), false],
    ['refused-stream', (p) => p.onFailure(F_RESET) || p.onResponse(503, [], []), false],
    ['refused-stream', (p) => p.onFailure(F_REFUSED), true],
    ['reset', (p) => p.onFailure(F_REFUSED), true],
    ['5xx', (p) => p.onFailure(F_REFUSED), true],
    ['connect-failure', (p) => p.onFailure(F_REFUSED), false],
    ['retriable-4xx', (p) => p.onResponse(409, [], []), true],
    ['retriable-4xx', (p) => p.onResponse(429, [], []), false],
  ];
  for (const [on, check, want] of cases) assert.equal(check(policy({ retryOn: on })), want, on);
  const codes = policy({ retryOn: 'retriable-status-codes', retriableStatusCodes: [429] });
  assert.equal(codes.onResponse(429, [], []), true);
  assert.equal(codes.onResponse(503, [], []), false);
  const headers = policy({
    retryOn: ['retriable-headers'],
    retriableHeaders: [{ name: 'X-Retry', exact: 'yes' }],
  });
  assert.equal(headers.onResponse(200, ['x-retry'], ['yes']), true);
  assert.equal(headers.onResponse(200, ['x-retry'], ['no']), false);
  // Istio's default: connect failures and 503.
  const d = policy({});
  assert.equal(d.maxTries, 3);
  assert.equal(d.onResponse(503, [], []) && d.onFailure(F_CONNECT), true);
  assert.equal(d.onResponse(500, [], []), false);
});

test("back-off is full jitter: retry n waits in [0, min(max, base × 2^(n-1))] (Envoy's 25 ms and 250 ms)", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      fc.integer({ min: 1, max: 40 }),
      (r, n) => {
        const p = policy({}, () => r);
        const d = p.backoffMs(n);
        const ceiling = Math.min(250, 25 * 2 ** (n - 1));
        return d >= 0 && d <= ceiling && Number.isInteger(d);
      },
    ),
  );
  assert.equal(policy({}, () => 0.999999).backoffMs(1), 25);
  assert.equal(policy({}, () => 0.999999).backoffMs(3), 100);
  assert.equal(policy({}, () => 0.999999).backoffMs(10), 250);
  assert.equal(policy({}, () => 0).backoffMs(10), 0);
});

test('the retry budget: 20 % of requests plus 10 per second over 10 s, refilled as the window moves', async () => {
  const clock = new FakeClock(1_700_000_000_000);
  const b = new RetryBudget(retryBudgetSchema.parse({}), clock);
  // No requests: the floor alone, 10/s × 10 s.
  let n = 0;
  while (b.withdraw()) n++;
  assert.equal(n, 100);
  // 1000 requests add 200 more.
  for (let i = 0; i < 1000; i++) b.deposit();
  n = 0;
  while (b.withdraw()) n++;
  assert.equal(n, 200);
  assert.equal(b.remaining, 0);
  // Ten seconds later, what was counted has left the window.
  await clock.advance(10_000);
  assert.equal(b.remaining, 100);
});

test('a budget with no floor allows exactly the ratio', () => {
  const clock = new FakeClock();
  const b = new RetryBudget(retryBudgetSchema.parse({ minRetriesPerSecond: 0, ratio: 0.1 }), clock);
  for (let i = 0; i < 50; i++) b.deposit();
  let n = 0;
  while (b.withdraw()) n++;
  assert.equal(n, 5);
});
