import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Interner, ownString } from './own-string.js';

test('ownString gives the same text', () => {
  for (const s of [
    '',
    'a',
    'x'.repeat(12),
    'abcdefghijklmnopq',
    'é€😀 and more text',
    'lone \ud800 surrogate',
  ])
    assert.equal(ownString(s), s);
});

test('an Interner gives one copy per value, and starts afresh past its bound', () => {
  const i = new Interner(3);
  const body = 'method="GET" method="GET" a-longer-value-here a-longer-value-here';
  const a = i.intern(body.slice(8, 11));
  assert.equal(a, 'GET');
  assert.equal(i.intern(body.slice(21, 24)), a);
  const long = i.intern(body.slice(26, 45));
  assert.equal(long, 'a-longer-value-here');
  assert.equal(i.intern(body.slice(46)), long);
  i.intern('x');
  i.intern('y'); // the fourth distinct value: afresh
  assert.equal(i.intern('GET'), 'GET');
});

test('a label value is shared when short (it repeats across series) and copied when long', () => {
  const i = new Interner();
  const body = 'code="200" code="200" path="/api/v1/resource/17"';
  assert.equal(i.labelValue(body.slice(6, 9)), '200');
  assert.equal(i.labelValue(body.slice(17, 20)), i.labelValue('200'));
  assert.equal(i.labelValue(body.slice(28, 47)), '/api/v1/resource/17');
});
