// The scan that lets lean events skip JSON.parse must accept exactly what JSON.parse accepts:
// checked case by case at the grammar's edges, and differentially against JSON.parse on generated
// objects and on mutations of them.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { SCAN_DUPLICATE, SCAN_INVALID, SCAN_NAMED, SCAN_UNSURE, scanObject } from './json-scan.js';
import { memberCount } from './json.js';

function scan(text: string, names: readonly string[] = []): number {
  return scanObject(text, text.indexOf('{'), text.lastIndexOf('}'), names);
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('scanObject', () => {
  test('valid objects: their member count', () => {
    const cases: [string, number][] = [
      ['{}', 0],
      ['{ }', 0],
      ['{"a":1}', 1],
      [' {"a" : 1 , "b":[1,2,{"c":null}],"d":{"e":"f"}} ', 3],
      ['{"n":-0,"m":0.5,"o":1e5,"p":1E-5,"q":-12.75e+3,"r":123456789012345678901234567890}', 6],
      ['{"t":true,"f":false,"z":null,"s":"","a":[],"o":{}}', 6],
      ['{"esc":"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\uDEAD"}', 1],
      ['{"é":"ü","😀":"x"}', 2],
      ['{\t"a":\r\n1}', 1],
    ];
    for (const [text, n] of cases) {
      assert.ok(parses(text), text);
      assert.equal(scan(text), n, text);
    }
  });

  test('invalid texts are refused, as JSON.parse refuses them', () => {
    const cases = [
      '{"a":01}',
      '{"a":1.}',
      '{"a":.5}',
      '{"a":-}',
      '{"a":1e}',
      '{"a":1e+}',
      '{"a":+1}',
      '{"a":0x10}',
      '{"a":NaN}',
      '{"a":Infinity}',
      '{"a":tru}',
      '{"a":nul}',
      '{"a":True}',
      '{"a":"\\x"}',
      '{"a":"\\u12G4"}',
      '{"a":"\\u12"}',
      '{"a":"tab\there"}',
      '{"a":"\u0001"}',
      '{"a":"unterminated}',
      '{"a":1,}',
      '{,}',
      '{"a" 1}',
      '{"a":1 "b":2}',
      '{"a":1}}',
      '{"a":[1,]}',
      '{"a":[1 2]}',
      '{"a":{"b":1]}',
      '{"a":[}',
      "{'a':1}",
      '{a:1}',
      '{"a":1,"b"}',
      '{"a":}',
      '{"a":1}{"b":2}',
    ];
    for (const text of cases) {
      assert.ok(!parses(text), `JSON.parse takes ${text}`);
      assert.equal(scan(text), SCAN_INVALID, text);
    }
  });

  test('repeated names, enriched names, escaped names and deep nesting', () => {
    assert.equal(scan('{"a":1,"b":2,"a":3}'), SCAN_DUPLICATE);
    assert.equal(scan('{"a":1,"ab":2}'), 2);
    assert.equal(scan('{"a":1,"env":"x"}', ['host', 'env']), SCAN_NAMED);
    assert.equal(scan('{"a":1,"envy":"x","en":1}', ['host', 'env']), 3);
    // "\u0061" is "a": only JSON.parse knows the two names are one.
    assert.equal(scan('{"a":1,"\\u0061":2}'), SCAN_UNSURE);
    const deep = `{"a":${'['.repeat(100)}${']'.repeat(100)}}`;
    assert.ok(parses(deep));
    assert.equal(scan(deep), SCAN_UNSURE);
    assert.equal(scan(`{"a":${'['.repeat(100)}}`), SCAN_UNSURE, 'too deep to tell: JSON.parse decides');
  });

  test('agrees with JSON.parse on generated objects and on mutations of them (property)', () => {
    const key = fc.string({ unit: fc.constantFrom('a', 'b', 'é', '"', '\\', ' ', ',', ':', '{', '\u0007') });
    const objectText = fc
      .tuple(fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }), fc.constantFrom(0, 1, '\t'))
      .map(([obj, indent]) => JSON.stringify(obj, null, indent));
    const edit = fc.tuple(
      fc.nat(),
      fc.constantFrom('delete', 'insert', 'replace'),
      fc.constantFrom(...'{}[]",:\\0123456789-+.eEtfnul "\t\u0001x'.split('')),
    );
    fc.assert(
      fc.property(objectText, fc.array(edit, { maxLength: 3 }), fc.boolean(), (text, edits, named) => {
        for (const [at, kind, ch] of edits) {
          const i = at % (text.length + 1);
          if (kind === 'delete') text = text.slice(0, i) + text.slice(i + 1);
          else if (kind === 'insert') text = text.slice(0, i) + ch + text.slice(i);
          else text = text.slice(0, i) + ch + text.slice(i + 1);
        }
        const start = text.indexOf('{');
        const end = text.lastIndexOf('}');
        // parseJson scans only what starts with `{` and ends with `}` once whitespace is trimmed.
        if (start !== 0 || end !== text.length - 1) return;
        const names = named ? ['a', 'b'] : [];
        const r = scanObject(text, start, end, names);
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          assert.ok(r === SCAN_INVALID || r === SCAN_UNSURE, `scan took what JSON.parse refuses: ${text}`);
          return;
        }
        assert.notEqual(r, SCAN_INVALID, `scan refused what JSON.parse takes: ${text}`);
        const keys = Object.keys(parsed);
        const members = memberCount(text, start, end);
        if (r >= 0) {
          assert.equal(r, keys.length, text);
          assert.equal(r, members, text);
          for (const n of names) assert.ok(!keys.includes(n), text);
        } else if (r === SCAN_DUPLICATE) assert.ok(keys.length < members, text);
        else if (r === SCAN_NAMED)
          assert.ok(
            names.some((n) => keys.includes(n)),
            text,
          );
      }),
      { numRuns: 3000 },
    );
  });
});
