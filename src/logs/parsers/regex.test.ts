import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { regexParser } from './regex.js';

const counter = () => ({ labels: {}, value: 0 });

describe('regex parser', () => {
  test('named groups become fields; optional groups that did not match are left out', () => {
    const errors = counter();
    const parse = regexParser(String.raw`^(?<level>\w+) (?<msg>[^|]*)(?:\|(?<extra>.*))?$`, errors);
    assert.deepEqual(parse('INFO started'), { level: 'INFO', msg: 'started' });
    assert.deepEqual(parse('WARN slow|db'), { level: 'WARN', msg: 'slow', extra: 'db' });
    assert.equal(errors.value, 0);
  });

  test('no match keeps the text raw and counts it', () => {
    const errors = counter();
    const parse = regexParser(String.raw`^(?<n>\d+)$`, errors);
    assert.deepEqual(parse('abc'), { message: 'abc', parse_error: 'no match' });
    assert.deepEqual(parse('12'), { n: '12' });
    assert.deepEqual(parse('x'), { message: 'x', parse_error: 'no match' });
    assert.equal(errors.value, 2);
  });

  test('a match that yields no field keeps the text as message', () => {
    const errors = counter();
    assert.deepEqual(regexParser('^GET', errors)('GET /'), { message: 'GET /' });
    assert.deepEqual(regexParser('^(?<a>x)?', errors)('GET /'), { message: 'GET /' });
    assert.equal(errors.value, 0);
  });

  test('a group named __proto__ is an ordinary field', () => {
    const event = regexParser('(?<__proto__>.+)', counter())('v');
    assert.equal(Object.getPrototypeOf(event), Object.prototype);
    assert.deepEqual(Object.entries(event), [['__proto__', 'v']]);
  });

  test('the compiled pattern keeps no state between records', () => {
    const parse = regexParser('(?<w>b)', counter());
    for (let i = 0; i < 3; i++) assert.deepEqual(parse('ab'), { w: 'b' });
  });

  test('property: any text gives an event holding it, parsed or as message', () => {
    const errors = counter();
    const parse = regexParser(String.raw`^(?<k>[a-z]+)=(?<v>\d*)$`, errors);
    const pair = fc
      .tuple(fc.string({ unit: fc.constantFrom('a', 'z'), minLength: 1 }), fc.nat())
      .map(([k, n]) => `${k}=${n}`);
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), pair), (text) => {
        const event = parse(text);
        if (event.parse_error === undefined) assert.equal(`${event.k as string}=${event.v as string}`, text);
        else assert.deepEqual(event, { message: text, parse_error: 'no match' });
      }),
      { numRuns: 500 },
    );
  });
});
