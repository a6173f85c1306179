import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { cutToBytes, utf8Boundary } from './utf8.js';

// 'a' (1 byte) 'é' (2) '€' (3) '😀' (4): characters start at bytes 0, 1, 3, 6; 10 bytes in all.
const MIXED = Buffer.from('aé€😀');

describe('utf8Boundary', () => {
  test('with bytes after the cut, steps back to the start of the character it would split', () => {
    assert.equal(utf8Boundary(MIXED, 0), 0);
    assert.equal(utf8Boundary(MIXED, 1), 1);
    assert.equal(utf8Boundary(MIXED, 2), 1);
    assert.equal(utf8Boundary(MIXED, 3), 3);
    assert.equal(utf8Boundary(MIXED, 5), 3);
    assert.equal(utf8Boundary(MIXED, 7), 6);
    assert.equal(utf8Boundary(MIXED, 9), 6);
  });

  test('with nothing after the cut, drops an incomplete last character', () => {
    assert.equal(utf8Boundary(MIXED, 10), 10);
    assert.equal(utf8Boundary(MIXED, 99), 10);
    assert.equal(utf8Boundary(MIXED.subarray(0, 9), 9), 6);
    assert.equal(utf8Boundary(MIXED.subarray(0, 7), 7), 6);
    assert.equal(utf8Boundary(MIXED.subarray(0, 5), 5), 3);
    assert.equal(utf8Boundary(MIXED.subarray(0, 2), 2), 1);
  });

  test('invalid bytes: the cut stays within 3 bytes of the limit', () => {
    const stray = Buffer.from([0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x41]);
    assert.equal(utf8Boundary(stray, 5), 5);
    assert.equal(utf8Boundary(stray.subarray(0, 6), 6), 6);
    assert.equal(utf8Boundary(Buffer.from([0x80, 0x80]), 2), 2);
  });

  test('property: a cut never splits a character, never passes the limit and loses at most one character', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.nat(200), (text, want) => {
        const buf = Buffer.from(text);
        const max = want % (buf.length + 3);
        const n = utf8Boundary(buf, max);
        assert.ok(n >= 0 && n <= max && n <= buf.length);
        assert.ok(isUtf8(buf.subarray(0, n)) && isUtf8(buf.subarray(n)), `split at ${n} of ${buf.length}`);
        // The character after the cut is the one that did not fit.
        if (n < Math.min(max, buf.length)) {
          const next = String.fromCodePoint(buf.subarray(n).toString('utf8').codePointAt(0)!);
          assert.ok(n + Buffer.byteLength(next) > max);
        }
        // Whether or not buf goes on past the limit, the answer is the same.
        if (max < buf.length) assert.equal(utf8Boundary(buf.subarray(0, max), max), n);
      }),
    );
  });
});

describe('cutToBytes', () => {
  test('keeps whole characters up to the limit', () => {
    assert.equal(cutToBytes('aé€😀', 8), 'aé€');
    assert.equal(cutToBytes('abc', 10), 'abc');
    assert.equal(cutToBytes('abc', 0), '');
  });

  test('property: a prefix of the text, at most the limit, not splitting a character', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.nat(160), (text, max) => {
        const cut = cutToBytes(text, max);
        assert.ok(Buffer.byteLength(cut) <= max);
        assert.ok(text.startsWith(cut));
      }),
    );
  });
});
