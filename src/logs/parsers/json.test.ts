import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeEvent } from '../sinks/encode.js';
import { dropRaw, isLean, materialize, rawOf } from '../types.js';
import { memberCount, parseJson } from './json.js';

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

  test('keepRaw: an object of one line with distinct keys keeps its text, which sinks then send as written', () => {
    const errors = counter();
    const ev = parseJson(' {"a":1.50, "b":"x,}\\"", "big":12345678901234567890} ', errors, true);
    assert.equal(rawOf(ev), '{"a":1.50, "b":"x,}\\"", "big":12345678901234567890');
    assert.equal(
      encodeEvent(ev),
      '{"a":1.50, "b":"x,}\\"", "big":12345678901234567890}',
      'as the app wrote it',
    );
    assert.deepEqual(Object.keys(ev), ['a', 'b', 'big'], 'invisible as a field');
    assert.equal(rawOf(parseJson('{"a":1}', errors)), undefined, 'only when asked');
    // Duplicate keys: JSON.parse keeps the last; the text would send both, so it is not kept.
    const dup = parseJson('{"a":1,"b":2,"a":3}', errors, true);
    assert.equal(rawOf(dup), undefined);
    assert.equal(encodeEvent(dup), '{"a":3,"b":2}');
    assert.equal(rawOf(parseJson('{"a":\n1}', errors, true)), undefined, 'a multiline record');
    assert.equal(rawOf(parseJson('{"a":\r1}', errors, true)), undefined);
    assert.equal(rawOf(parseJson('{}', errors, true)), undefined);
    assert.equal(rawOf(parseJson('{"a":', errors, true)), undefined, 'a failure is never raw');
    assert.equal(errors.value, 1);
  });

  test('lean: an event that keeps its text is only that text until its fields are asked for; names enrich sets keep it whole', () => {
    const errors = counter();
    const lean = ['env', 'host'];
    const ev = parseJson('{"a":1.50,"b":"x"}', errors, true, lean);
    assert.ok(isLean(ev));
    assert.deepEqual(Object.keys(ev), [], 'no fields yet');
    assert.equal(encodeEvent(ev), '{"a":1.50,"b":"x"}', 'sent as written');
    materialize(ev);
    assert.ok(!isLean(ev));
    assert.deepEqual(Object.fromEntries(Object.entries(ev)), { a: 1.5, b: 'x' });
    assert.equal(encodeEvent(ev), '{"a":1.50,"b":"x"}', 'still its text');
    // dropRaw gives a lean event its fields before it lets go of the text.
    const other = parseJson('{"a":2}', errors, true, lean);
    dropRaw(other);
    assert.deepEqual(Object.fromEntries(Object.entries(other)), { a: 2 });
    assert.equal(rawOf(other), undefined);
    // A line that already has a field enrich will set stays parsed, so enrich sees the clash.
    const clash = parseJson('{"a":1,"env":"dev"}', errors, true, lean);
    assert.ok(!isLean(clash));
    assert.deepEqual(Object.keys(clash), ['a', 'env']);
    // Only with keepRaw, and never for what keepRaw refuses.
    assert.ok(!isLean(parseJson('{"a":1}', errors, false, lean)));
    assert.ok(!isLean(parseJson('{"a":1,"a":2}', errors, true, lean)));
    assert.ok(!isLean(parseJson('nope', errors, true, lean)));
  });

  test('memberCount counts top-level members whatever the strings and nesting hold (property)', () => {
    const key = fc.string({ unit: fc.constantFrom('a', ',', '"', '\\', '{', '}', '[', ']', ':', 'é', ' ') });
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue(), { maxKeys: 8 }), fc.boolean(), (obj, dup) => {
        const keys = Object.keys(obj).length;
        let text = JSON.stringify(obj);
        if (dup && keys > 0) text = `{${JSON.stringify(Object.keys(obj)[0])}:0,${text.slice(1)}`;
        const members = dup && keys > 0 ? keys + 1 : keys;
        assert.equal(memberCount(text, 0, text.length - 1), members);
        // V8 12.8 and later (Node 24) can decode an escaped key (\" or \n) as a backslash when an
        // earlier parse had a key of one backslash (nodejs/node#63785, open): JSON.parse itself
        // then gives other names than the text holds. Such inputs test V8, not the parser here.
        fc.pre(Object.keys(JSON.parse(text) as object).every((k) => Object.hasOwn(obj, k)));
        const ev = parseJson(text, counter(), true);
        assert.equal(rawOf(ev) !== undefined, keys > 0 && !dup, 'kept exactly when the keys are distinct');
        assert.deepEqual(JSON.parse(encodeEvent(ev)), JSON.parse(JSON.stringify(ev)));
      }),
      { numRuns: 500 },
    );
  });
});
