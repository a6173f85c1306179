import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { crc32 } from './crc32.js';

describe('crc32', () => {
  test('matches the published check values', () => {
    assert.equal(crc32(Buffer.alloc(0)), 0);
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(Buffer.from('a')), 0xe8b7be43);
    assert.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
    assert.equal(crc32(Buffer.alloc(32)), 0x190a55ad);
    assert.equal(crc32(Buffer.alloc(32, 0xff)), 0xff6cab0b);
  });

  test('a range checks only those bytes', () => {
    const b = Buffer.from('xx123456789yy');
    assert.equal(crc32(b, 2, 11), 0xcbf43926);
  });

  test('continuing over pieces equals one pass', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(200), (bytes, cut) => {
        const at = Math.min(cut, bytes.length);
        assert.equal(crc32(bytes, at, bytes.length, crc32(bytes, 0, at)), crc32(bytes));
      }),
      { numRuns: 200 },
    );
  });

  test('detects any single flipped bit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.nat(), (bytes, bit) => {
        const flipped = Uint8Array.from(bytes);
        const i = bit % (bytes.length * 8);
        flipped[i >> 3]! ^= 1 << (i & 7);
        assert.notEqual(crc32(flipped), crc32(bytes));
      }),
      { numRuns: 200 },
    );
  });
});
