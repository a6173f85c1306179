import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import fc from 'fast-check';
import { parseJson } from '../parsers/json.js';
import { encodeEvent } from '../sinks/encode.js';
import { type LogEvent, materialize, rawOf } from '../types.js';
import { compileEnrich } from './enrich.js';
import { compileTransforms, leanNames, type TransformDeps } from './index.js';

function deps(over: Partial<TransformDeps> = {}): TransformDeps {
  return {
    hostname: 'node-a',
    env: {},
    clock: new FakeClock(1_700_000_000_000),
    readFile: () => {
      throw new Error('no file expected');
    },
    ...over,
  };
}

describe('enrich transform', () => {
  test('static fields and the host name are set on every event, replacing same-named fields', () => {
    const chain = compileEnrich(
      { type: 'enrich', fields: { env: 'prod', app: 'web' }, hostname: 'host' },
      deps(),
    );
    const events: LogEvent[] = [{ message: 'a', env: 'dev' }, { n: 1 }];
    assert.equal(chain(events), events);
    assert.deepEqual(events, [
      { message: 'a', env: 'prod', app: 'web', host: 'node-a' },
      { n: 1, env: 'prod', app: 'web', host: 'node-a' },
    ]);
  });

  test('collectedAt is the clock time of the chain call, as RFC 3339', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const chain = compileEnrich({ type: 'enrich', fields: {}, collectedAt: 'collected_at' }, deps({ clock }));
    const first = chain([{}, {}]);
    assert.deepEqual(first, [
      { collected_at: '2023-11-14T22:13:20.000Z' },
      { collected_at: '2023-11-14T22:13:20.000Z' },
    ]);
    await clock.advance(1_234);
    assert.deepEqual(chain([{}]), [{ collected_at: '2023-11-14T22:13:21.234Z' }]);
  });

  test('kubernetes: pod, namespace and node from the environment, labels read once from the file', () => {
    let reads = 0;
    const file = [
      'app="web"',
      'app.kubernetes.io/name="orders"',
      'quoted="say \\"hi\\"\\n\\ttab"',
      'unicode="caf\\u00e9 \\U0001F600"',
      'bytes="\\xc3\\xa9\\303\\251"',
      'plain="naïve"',
      '',
      'not a label line',
      'raw=unquoted',
      'broken="bad \\q escape"',
    ].join('\n');
    const chain = compileEnrich(
      { type: 'enrich', fields: {}, kubernetes: { field: 'kubernetes', labelsFile: '/etc/podinfo/labels' } },
      deps({
        env: { POD_NAME: 'orders-7d9', POD_NAMESPACE: 'shop', NODE_NAME: 'node-3' },
        readFile: (p) => {
          assert.equal(p, '/etc/podinfo/labels');
          reads++;
          return file;
        },
      }),
    );
    const events = chain([{ message: 'x' }, { message: 'y' }]);
    chain([{}]);
    assert.equal(reads, 1);
    assert.deepEqual(events[0], {
      message: 'x',
      kubernetes: {
        pod: 'orders-7d9',
        namespace: 'shop',
        node: 'node-3',
        labels: {
          app: 'web',
          'app.kubernetes.io/name': 'orders',
          quoted: 'say "hi"\n\ttab',
          unicode: 'café 😀',
          bytes: 'éé',
          plain: 'naïve',
          raw: 'unquoted',
          broken: '"bad \\q escape"',
        },
      },
    });
    // Each event gets its own object, so editing one (redact) cannot change another.
    assert.notEqual(events[0]!.kubernetes, events[1]!.kubernetes);
    assert.deepEqual(events[0]!.kubernetes, events[1]!.kubernetes);
  });

  test('kubernetes: missing variables are left out, no labels without a file, a custom field', () => {
    const chain = compileEnrich(
      { type: 'enrich', fields: {}, kubernetes: { field: 'k8s' } },
      deps({ env: { POD_NAME: 'p' } }),
    );
    assert.deepEqual(chain([{}]), [{ k8s: { pod: 'p' } }]);
  });

  test('an unreadable labels file fails the compile with a config error naming the path', () => {
    assert.throws(
      () =>
        compileEnrich(
          { type: 'enrich', fields: {}, kubernetes: { field: 'kubernetes', labelsFile: '/nope/labels' } },
          deps({
            readFile: () => {
              throw new Error('ENOENT');
            },
          }),
        ),
      (err: unknown) =>
        err instanceof PillionError &&
        err.code === 'PILLION_ERR_CONFIG_BAD_VALUE' &&
        /\/nope\/labels/.test(err.message),
    );
  });

  test('a dotted or __proto__ field name is a literal top-level key', () => {
    const chain = compileEnrich(
      {
        type: 'enrich',
        fields: Object.fromEntries([
          ['a.b', '1'],
          ['__proto__', '2'],
        ]),
      },
      deps(),
    );
    const [event] = chain([{}]);
    assert.equal(Object.getPrototypeOf(event), Object.prototype);
    assert.deepEqual(Object.entries(event!), [
      ['a.b', '1'],
      ['__proto__', '2'],
    ]);
  });

  test("an event's raw JSON text gets the fields appended, exactly as JSON.stringify would end the object", () => {
    const chain = compileEnrich(
      {
        type: 'enrich',
        fields: { env: 'prod', 'a"b': 'x\ny' },
        hostname: 'host',
        kubernetes: { field: 'kubernetes' },
        collectedAt: 'collected_at',
      },
      deps({ env: { POD_NAME: 'web-1', POD_NAMESPACE: 'shop' } }),
    );
    const errors = { labels: {}, value: 0 };
    const fresh = parseJson('{"msg":"hi","n":1}', errors, true);
    const clash = parseJson('{"msg":"hi","host":"app-set"}', errors, true);
    chain([fresh, clash]);
    assert.equal(encodeEvent(fresh), JSON.stringify({ ...fresh }), 'byte for byte');
    assert.ok(rawOf(fresh) !== undefined, 'still raw');
    // A field that is already there is replaced in its place: the text is dropped.
    assert.equal(rawOf(clash), undefined);
    assert.equal(encodeEvent(clash), JSON.stringify({ ...clash }));
    assert.equal(JSON.parse(encodeEvent(clash)).host, 'node-a');
  });

  test('raw text and encoding agree for any object and any enrich (property)', () => {
    const name = fc.string({ minLength: 1, maxLength: 4 }).map((s) => `k${s}`);
    fc.assert(
      fc.property(
        fc.dictionary(name, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }),
        fc.dictionary(name, fc.string(), { maxKeys: 3 }),
        fc.option(name, { nil: undefined }),
        (obj, fields, hostname) => {
          const ev = parseJson(JSON.stringify(obj), { labels: {}, value: 0 }, true);
          compileEnrich({ type: 'enrich', fields, hostname }, deps())([ev]);
          // Keys that do not look like array indexes keep their order, so the text is stringify's own.
          assert.equal(encodeEvent(ev), JSON.stringify({ ...ev }));
        },
      ),
      { numRuns: 500 },
    );
  });

  test('lean events through one or two enrich transforms encode and materialize as parsed ones do (property)', () => {
    const name = fc.string({ minLength: 1, maxLength: 3 }).map((s) => `k${s}`);
    fc.assert(
      fc.property(
        fc.dictionary(name, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }),
        fc.dictionary(name, fc.string(), { maxKeys: 3 }),
        fc.dictionary(name, fc.string(), { maxKeys: 3 }),
        (obj, first, second) => {
          const transforms = [
            { type: 'enrich' as const, fields: first },
            { type: 'enrich' as const, fields: second },
          ];
          const chain = compileTransforms(transforms, ['app'], deps()).get('app')!;
          const names = leanNames(transforms, 'app');
          assert.ok(names !== undefined);
          const text = JSON.stringify(obj);
          const errors = { labels: {}, value: 0 };
          const [lean] = chain([parseJson(text, errors, true, names)]);
          const [parsed] = chain([parseJson(text, errors, true)]);
          assert.equal(encodeEvent(lean!), encodeEvent(parsed!));
          materialize(lean!);
          assert.deepEqual(Object.entries(lean!), Object.entries(parsed!));
        },
      ),
      { numRuns: 500 },
    );
  });

  test('leanNames: the names enrich sets, or nothing when a filter or an edit applies to the source', () => {
    const enrich = { type: 'enrich' as const, fields: { env: 'prod' }, hostname: 'host' };
    assert.deepEqual(leanNames([enrich], 'app'), ['env', 'host']);
    assert.deepEqual(leanNames([], 'app'), []);
    const filter = {
      type: 'filter' as const,
      sources: ['other'],
      action: 'drop' as const,
      field: 'level',
      equals: ['x'],
    };
    assert.deepEqual(leanNames([enrich, filter], 'app'), ['env', 'host'], 'a filter of another source');
    assert.equal(leanNames([enrich, { ...filter, sources: undefined }], 'app'), undefined);
  });
});
