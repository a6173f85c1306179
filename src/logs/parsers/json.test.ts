import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseJson } from './json.js';

const counter = () => ({ labels: {}, value: 0 });

describe('json parser', () => {
  test('a JSON object becomes its fields, whitespace around it allowed', () => {
    const errors = counter();
    assert.deepEqual(parseJson('{"level":"info","n":3,"nested":{"a":[1,null]}}', errors), {
      level: 'info',
      n: 3,
      nested: { a: [1, null] },
    });
    assert.deepEqual(parseJson(' \t{"a":1}\r', errors), { a: 1 });
    assert.equal(errors.value, 0);
  });

  test('anything but an object is kept raw with a reason, and counted', () => {
    const errors = counter();
    const cases: [string, string][] = [
      ['', 'empty line'],
      ['   ', 'empty line'],
      ['[1,2]', 'not a JSON object'],
      ['42', 'not a JSON object'],
      ['null', 'not a JSON object'],
      ['"text"', 'not a JSON object'],
      ['plain text', 'not a JSON object'],
      ['{"a":1', 'not a JSON object'],
      ['{"a":}', 'invalid JSON'],
      ['{"a":1} {"b":2}', 'invalid JSON'],
    ];
    for (const [text, reason] of cases)
      assert.deepEqual(parseJson(text, errors), { message: text, parse_error: reason }, text);
    assert.equal(errors.value, cases.length);
  });

  test('a "__proto__" key is an ordinary field, not the prototype', () => {
    const event = parseJson('{"__proto__":{"polluted":true}}', counter());
    assert.equal(Object.getPrototypeOf(event), Object.prototype);
    assert.deepEqual(Object.keys(event), ['__proto__']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('property: any text gives an event holding it, parsed or as message', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), fc.json()), (text) => {
        const errors = counter();
        const event = parseJson(text, errors);
        if (event.parse_error === undefined) {
          assert.deepEqual(event, JSON.parse(text));
          assert.equal(errors.value, 0);
        } else {
          assert.deepEqual(event, { message: text, parse_error: event.parse_error });
          assert.equal(errors.value, 1);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('property: every serialized object parses back to itself', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        assert.deepEqual(parseJson(JSON.stringify(obj), counter()), JSON.parse(JSON.stringify(obj)));
      }),
      { numRuns: 300 },
    );
  });
});
