import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatSize, parseSize } from './size.js';

test('parses IEC and SI sizes', () => {
  const cases: [string, number][] = [
    ['512B', 512],
    ['64KiB', 65_536],
    ['1MiB', 1_048_576],
    ['1GiB', 1_073_741_824],
    ['10MB', 10_000_000],
    ['1.5KiB', 1536],
    ['2 KiB', 2048],
  ];
  for (const [text, bytes] of cases) assert.deepEqual(parseSize(text), { ok: true, value: bytes }, text);
});

test('rejects sizes without a unit or with a wrongly-cased unit', () => {
  for (const bad of ['1024', '64k', '64kib', '1gb', 'KiB', '-1KiB', '1 KiB B'])
    assert.equal(parseSize(bad).ok, false, bad);
  const r = parseSize('64kib');
  assert.ok(!r.ok && r.reason.includes('case-sensitive'));
});

test('formatSize and parseSize round-trip', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 45 }), (n) => {
      const r = parseSize(formatSize(n));
      return r.ok && r.value === n;
    }),
  );
});
