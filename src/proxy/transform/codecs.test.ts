// The adapter's body formats: what each reads into and writes from, and what each refuses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyFormatError, decodeBody, encodeBody } from './codecs.js';

const b = (s: string) => Buffer.from(s);

test('JSON: read and written as it is; an empty body is undefined and writes as nothing', () => {
  assert.deepEqual(decodeBody(b('{"a":[1,null]}'), 'json'), { a: [1, null] });
  assert.equal(decodeBody(b(''), 'json'), undefined);
  assert.equal(encodeBody(undefined, 'json').length, 0);
  assert.equal(encodeBody({ a: 'é' }, 'json').toString(), '{"a":"é"}');
  assert.throws(() => decodeBody(b('{"a":'), 'json'), BodyFormatError);
});

test('forms: repeated fields become lists and back; objects are refused', () => {
  assert.deepEqual(decodeBody(b('a=1&a=2&b=x+y&c=%26'), 'form'), { a: ['1', '2'], b: 'x y', c: '&' });
  assert.equal(
    encodeBody({ a: ['1', 2], b: true, c: 'x y&z' }, 'form').toString(),
    'a=1&a=2&b=true&c=x+y%26z',
  );
  assert.throws(() => encodeBody({ a: { nested: 1 } }, 'form'), /form field "a" is an object/);
  assert.throws(() => encodeBody([1, 2], 'form'), BodyFormatError);
});

test('XML: attributes as @name, text beside them as #text, values as strings; one root written; DOCTYPE refused', () => {
  assert.deepEqual(decodeBody(b('<a x="1">t&amp;u<b>2</b><b>3</b></a>'), 'xml'), {
    a: { '@x': '1', '#text': 't&u', b: ['2', '3'] },
  });
  assert.equal(
    encodeBody({ order: { '@id': 'a"&', item: ['tea & <cake>', 'scone'] } }, 'xml').toString(),
    '<order id="a&quot;&amp;"><item>tea &amp; &lt;cake&gt;</item><item>scone</item></order>',
  );
  assert.throws(() => encodeBody({ a: 1, b: 2 }, 'xml'), /one root element/);
  assert.throws(() => decodeBody(b('<a><b></a>'), 'xml'), /not well-formed/);
  assert.throws(
    () => decodeBody(b('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'), 'xml'),
    /DOCTYPE/,
  );
});
