import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseLogfmt } from './logfmt.js';

const counter = () => ({ labels: {}, value: 0 });

describe('logfmt parser', () => {
  test('pairs, quoted values with escapes, bare keys and empty values', () => {
    const errors = counter();
    assert.deepEqual(
      parseLogfmt(
        'level=info msg="hello \\"world\\"\\n\\tcaf\\u00e9 \\\\ \\/" took=12ms ok empty= q=""',
        errors,
      ),
      { level: 'info', msg: 'hello "world"\n\tcafé \\ /', took: '12ms', ok: true, empty: '', q: '' },
    );
    assert.equal(errors.value, 0);
  });

  test('`=` inside a bare value and a raw tab inside quotes are kept', () => {
    assert.deepEqual(parseLogfmt('url=/a?b=c&d=e token=YWJj==', counter()), {
      url: '/a?b=c&d=e',
      token: 'YWJj==',
    });
    assert.deepEqual(parseLogfmt('msg="a\tb"', counter()), { msg: 'a\tb' });
  });

  test('whitespace of any kind separates pairs; the last of a repeated key wins', () => {
    assert.deepEqual(parseLogfmt('  a=1\t\tb=2  a=3 ', counter()), { a: '3', b: '2' });
  });

  test('no pair, or a broken quote, keeps the text raw with a reason, and counts it', () => {
    const errors = counter();
    const cases: [string, string][] = [
      ['', 'no key=value pair'],
      ['hello world', 'no key=value pair'],
      ['a="unterminated', 'unterminated quote'],
      ['a="ends with escape\\"', 'unterminated quote'],
      ['a="b"c', 'text after a closing quote'],
      ['a=b"c', 'unexpected quote'],
      ['"a"=b', 'unexpected quote'],
      ['a"b=c', 'unexpected quote'],
      ['=b', 'missing key'],
      ['a="\\q"', 'invalid escape in a quoted value'],
      ['a="\\u12"', 'invalid escape in a quoted value'],
    ];
    for (const [text, reason] of cases)
      assert.deepEqual(parseLogfmt(text, errors), { message: text, parse_error: reason }, text);
    assert.equal(errors.value, cases.length);
  });

  test('a "__proto__" key is an ordinary field', () => {
    const event = parseLogfmt('__proto__=x a=1', counter());
    assert.equal(Object.getPrototypeOf(event), Object.prototype);
    assert.deepEqual(Object.entries(event), [
      ['__proto__', 'x'],
      ['a', '1'],
    ]);
  });

  const key = fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 12 })
    .filter((k) => [...k].every((c) => c.codePointAt(0)! > 0x20 && c !== '=' && c !== '"'));
  const value = fc.oneof(fc.constant(true), fc.string({ unit: 'grapheme', maxLength: 20 }));

  function encode(pairs: [string, string | true][]): string {
    return pairs
      .map(([k, v]) => {
        if (v === true) return k;
        const bare = v !== '' && [...v].every((c) => c.codePointAt(0)! > 0x20 && c !== '"');
        return `${k}=${bare ? v : JSON.stringify(v)}`;
      })
      .join(' ');
  }

  test('property: any text gives an event holding it, raw as message or as fields that re-encode', () => {
    const logfmtish = fc.string({
      unit: fc.constantFrom('a', 'b', '=', '"', '\\', ' ', '\t', 'n', 'u', '0', 'é', '\u{1F600}', '\ud800'),
      maxLength: 30,
    });
    fc.assert(
      fc.property(fc.oneof(logfmtish, fc.string({ unit: 'grapheme' })), (text) => {
        const errors = counter();
        const event = parseLogfmt(text, errors);
        if (errors.value === 1) {
          assert.deepEqual(event, { message: text, parse_error: event.parse_error });
          return;
        }
        assert.equal(errors.value, 0);
        const pairs = Object.entries(event) as [string, string | true][];
        // `a= a` has a pair, then makes `a` bare: re-encoded, no pair would be left.
        if (!pairs.some(([, v]) => typeof v === 'string')) return;
        assert.deepEqual(parseLogfmt(encode(pairs), errors), event);
        assert.equal(errors.value, 0);
      }),
      { numRuns: 1000 },
    );
  });

  test('property: generated key/value sets round-trip', () => {
    fc.assert(
      fc.property(
        key,
        fc.string({ unit: 'grapheme', maxLength: 20 }),
        fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 8 }),
        (k0, v0, rest) => {
          // One string pair is always there, so the line is never "no pair".
          const pairs: [string, string | true][] = [[k0, v0], ...rest.filter(([k]) => k !== k0)];
          const errors = counter();
          assert.deepEqual(parseLogfmt(encode(pairs), errors), Object.fromEntries(pairs));
          assert.equal(errors.value, 0);
        },
      ),
      { numRuns: 500 },
    );
  });
});
