import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ownString } from './own-string.js';

test('ownString gives the same text', () => {
  for (const s of ['', 'a', 'x'.repeat(12), 'abcdefghijklmnopq', 'é€😀 and more text'])
    assert.equal(ownString(s), s);
});
