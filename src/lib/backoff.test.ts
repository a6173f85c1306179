import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, CrashLoopBackoff, KUBELET_BACKOFF } from './backoff.js';

test("the kubelet's sequence: immediate, then 10s, 20s, 40s, ... capped at 5 min", () => {
  const b = new CrashLoopBackoff();
  const seq = Array.from({ length: 9 }, () => b.next(1000) / 1000);
  assert.deepEqual(seq, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
});

test('a container that ran for 10 minutes starts the sequence over', () => {
  const b = new CrashLoopBackoff();
  b.next(0);
  b.next(0);
  assert.equal(b.next(0), 20_000);
  assert.equal(b.next(KUBELET_BACKOFF.resetAfterMs), 0);
  assert.equal(b.next(0), 10_000);
});

test('base and cap can be shortened', () => {
  const b = new CrashLoopBackoff({ baseMs: 50, capMs: 200, resetAfterMs: 1000 });
  assert.deepEqual([b.next(0), b.next(0), b.next(0), b.next(0), b.next(0)], [0, 50, 100, 200, 200]);
  assert.throws(() => new CrashLoopBackoff({ baseMs: 100, capMs: 50, resetAfterMs: 1 }), RangeError);
});

test('delays never decrease and never exceed the cap', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 0, max: 10_000_000 }),
      fc.integer({ min: 1, max: 2000 }),
      (base, extra, n) => {
        const opts = { baseMs: base, capMs: base + extra, resetAfterMs: 1 };
        const d = backoffDelay(n, opts);
        return d <= opts.capMs && d <= backoffDelay(n + 1, opts);
      },
    ),
  );
});
