// The app's text passed through with its series kept from one scrape to the next: a series seen
// again keeps its objects and gets its new value; one whose labels change, one that disappears,
// a family whose type changes, the same series twice, and pillion's names taken later all give
// what a fresh parse would.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { renderText } from './exposition.js';
import { type PassthroughSkip, TextPassthrough } from './passthrough.js';
import { parsePrometheusText, TextFormatError } from './prom-text.js';
import type { RelabelRule } from './config.js';
import { linePieces } from './scraper.js';

function passthrough(
  relabel: RelabelRule[] = [],
  labels: [string, string][] = [],
  owned = new Set<string>(),
) {
  const skips: [PassthroughSkip, string][] = [];
  const p = new TextPassthrough({
    relabel,
    labels,
    maxLabelValueLength: 20,
    ownsName: (n) => owned.has(n),
    skip: (reason, family) => skips.push([reason, family]),
  });
  return { p, skips, owned };
}

test('a series seen again keeps its sample and labels and gets its new value; its labels are enriched and relabeled once', () => {
  const { p } = passthrough([{ action: 'addLabel', label: 'team', value: 'shop' }], [['method', 'sidecar']]);
  const doc = (v: number) => `# TYPE req_total counter\nreq_total{method="get",code="200"} ${v}\n`;
  const [a] = p.read(doc(1));
  const [b] = p.read(doc(2));
  assert.equal(a!.values[0], b!.values[0]);
  assert.equal(b!.values[0]!.value, 2);
  assert.deepEqual(b!.values[0]!.labels, {
    exported_method: 'get',
    code: '200',
    method: 'sidecar',
    team: 'shop',
  });
  assert.equal(
    renderText([b!]),
    '# HELP req_total \n# TYPE req_total counter\nreq_total{exported_method="get",code="200",method="sidecar",team="shop"} 2\n',
  );
});

test('a series whose labels change is a new series; one that disappears is gone from the next scrape and not kept', () => {
  const { p } = passthrough();
  p.read('a{x="1"} 1\na{x="2"} 2\nb 3\n');
  assert.equal(p.kept, 3);
  const out = p.read('a{x="1",y="1"} 4\nb 5\n');
  assert.deepEqual(
    out.map((f) => [f.name, f.values.map((v) => [v.labels, v.value])]),
    [
      ['a', [[{ x: '1', y: '1' }, 4]]],
      ['b', [[{}, 5]]],
    ],
  );
  assert.equal(p.kept, 2);
  assert.deepEqual(
    p.read('b 6\n').map((f) => f.name),
    ['b'],
  );
  assert.equal(p.kept, 1);
});

test('a family whose type changes gets its series anew, named as its new type names them', () => {
  const { p } = passthrough();
  let out = p.read(
    '# TYPE lat histogram\nlat_bucket{le="+Inf"} 2\nlat_sum 0.5\nlat_count 2\n# TYPE jobs gauge\njobs 1\n',
  );
  assert.deepEqual(
    out.map((f) => [f.name, f.type, f.values.map((v) => v.metricName)]),
    [
      ['lat', 'histogram', ['lat_bucket', 'lat_sum', 'lat_count']],
      ['jobs', 'gauge', [undefined]],
    ],
  );
  const before = out[1]!.values[0];
  out = p.read('lat_bucket{le="+Inf"} 3\nlat_sum 0.7\nlat_count 3\n# TYPE jobs counter\njobs 2\n');
  assert.deepEqual(
    out.map((f) => [f.name, f.type, f.values.map((v) => [v.metricName, v.value])]),
    [
      ['lat_bucket', 'untyped', [[undefined, 3]]],
      ['lat_sum', 'untyped', [[undefined, 0.7]]],
      ['lat_count', 'untyped', [[undefined, 3]]],
      ['jobs_total', 'counter', [[undefined, 2]]],
    ],
  );
  assert.notEqual(out[3]!.values[0], before);
  // And what a fresh parse of the same document gives.
  assert.deepEqual(
    out,
    parsePrometheusText('lat_bucket{le="+Inf"} 3\nlat_sum 0.7\nlat_count 3\n# TYPE jobs counter\njobs 2\n'),
  );
});

test('the same series twice in one scrape: the first is kept, the second counted as a duplicate, on every scrape', () => {
  const { p, skips } = passthrough();
  const doc = 'a{x="1"} 1\na{x="1"} 2\na{x="2"} 3\n';
  for (let i = 0; i < 2; i++) {
    const [f] = p.read(doc);
    assert.deepEqual(
      f!.values.map((v) => [v.labels, v.value]),
      [
        [{ x: '1' }, 1],
        [{ x: '2' }, 3],
      ],
    );
  }
  assert.deepEqual(skips, [
    ['duplicate', 'a'],
    ['duplicate', 'a'],
  ]);
});

test('a label value holding "} " or escapes is read in full and kept by its whole text', () => {
  const { p } = passthrough();
  const doc = (v: number) => `weird{path="a} b",q="\\"x\\"\\n"} ${v} 1700000000000\nweird{path="a"} 9\n`;
  const [a] = p.read(doc(1));
  const [b] = p.read(doc(2));
  assert.deepEqual(
    b!.values.map((v) => [v.labels, v.value]),
    [
      [{ path: 'a} b', q: '"x"\n' }, 2],
      [{ path: 'a' }, 9],
    ],
  );
  assert.equal(a!.values[0], b!.values[0]);
});

test('relabeling: dropped families are left out on every scrape, renamed ones keep their samples\u2019 suffixes', () => {
  const { p } = passthrough([
    { action: 'drop', name: 'debug_.*' },
    { action: 'rename', name: 'latency_(.*)', to: 'app_latency_$1' },
    { action: 'rename', name: 'jobs_total', to: 'tasks_total' },
    { action: 'dropLabel', label: 'code' },
  ]);
  const doc = `# TYPE latency_seconds histogram
latency_seconds_bucket{le="+Inf",code="1"} 3
latency_seconds_count 3
debug_x 1
# TYPE jobs counter
jobs_total 4
jobs_created 1.6e9
`;
  for (let i = 0; i < 2; i++) {
    const out = p.read(doc);
    assert.deepEqual(
      out.map((f) => [f.name, f.values.map((v) => [v.metricName, v.labels])]),
      [
        [
          'app_latency_seconds',
          [
            ['app_latency_seconds_bucket', { le: '+Inf' }],
            ['app_latency_seconds_count', {}],
          ],
        ],
        [
          'tasks_total',
          [
            [undefined, {}],
            ['tasks_created', {}],
          ],
        ],
      ],
    );
  }
});

test('a name pillion takes after the first scrape is given up: the app\u2019s family becomes app_NAME, counted', () => {
  const { p, skips, owned } = passthrough();
  const doc = '# TYPE up_seconds histogram\nup_seconds_sum 1\nup_seconds_count 2\n';
  assert.equal(p.read(doc)[0]!.name, 'up_seconds');
  owned.add('up_seconds');
  const [f] = p.read(doc);
  assert.deepEqual(
    [f!.name, f!.values.map((v) => v.metricName)],
    ['app_up_seconds', ['app_up_seconds_sum', 'app_up_seconds_count']],
  );
  assert.deepEqual(skips, [['name_collision', 'up_seconds']]);
});

test('a long label value is left out and counted on every scrape; a bad line fails the read, and forget() keeps nothing', () => {
  const { p, skips } = passthrough();
  const long = `a{x="${'y'.repeat(21)}"} 1\nb 2\n`;
  p.read(long);
  assert.deepEqual(
    p.read(long).map((f) => f.name),
    ['b'],
  );
  assert.deepEqual(skips, [
    ['label_too_long', 'a'],
    ['label_too_long', 'a'],
  ]);
  assert.throws(
    () => p.read('b 3\nb{x="1" 2\n'),
    (e: unknown) => e instanceof TextFormatError && e.line === 2,
  );
  assert.throws(() => p.read('b x\n'), /"x" is not a value/);
  p.forget();
  assert.equal(p.kept, 0);
});

test('passed through without relabeling, any document reads as a fresh parse of it does, scrape after scrape', () => {
  // Documents made from a few parts in varying order: kept series must never change the result.
  const parts = [
    '# HELP h Help \\\\ text.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n',
    '# TYPE c counter\nc_total{a="1"} 5\nc_created{a="1"} 1\n',
    'g{a="1", b="2"} 1\ng{a="1",b="2"} 2\n',
    '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n',
    'u 7 1700000000\n',
  ];
  const { p } = passthrough();
  let seed = 7;
  const rand = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 40; i++) {
    const doc = parts
      .filter(() => rand() < 0.7)
      .sort(() => rand() - 0.5)
      .join('')
      .replace(/ (\d+)\n/g, () => ` ${Math.floor(rand() * 100)}\n`);
    assert.deepEqual(p.read(doc), parsePrometheusText(doc), doc);
  }
});

test('kept series hold their own strings, not the bodies they were read from', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { p } = passthrough();
  const pad = `# ${'x'.repeat(1 << 20)}\n`;
  gc();
  const before = process.memoryUsage().heapUsed;
  // Twenty bodies of 1 MiB, each with a series first seen in it and kept after.
  for (let i = 0; i < 20; i++) {
    let doc = pad;
    for (let j = 0; j <= i; j++)
      doc += `series_with_a_long_name{label_with_a_long_name="value number ${j}"} ${i}\n`;
    p.read(doc);
  }
  gc();
  assert.equal(p.kept, 20);
  const grown = (process.memoryUsage().heapUsed - before) / 1048576;
  assert.ok(grown < 8, `the heap grew ${grown.toFixed(1)} MiB for 20 series`);
});

test('a body decoded in pieces of whole lines reads as the whole: multibyte text, line numbers, # EOF', () => {
  let doc = '# HELP c Café ☕ counts.\n# TYPE c counter\n';
  for (let i = 0; i < 6000; i++) doc += `c_total{city="Zürich ${i}",where="東京"} ${i}\r\n`;
  const buf = Buffer.from(doc);
  const pieces = linePieces(buf, buf.length);
  assert.ok(pieces.length > 5, `${pieces.length} pieces`);
  assert.equal(pieces.join(''), doc);
  for (const piece of pieces) assert.ok(piece.endsWith('\n'));
  assert.deepEqual(passthrough().p.read(pieces), parsePrometheusText(doc));
  // Within the bytes given, not past them (the buffer is reused and may be longer).
  assert.equal(linePieces(buf, 60).join(''), buf.toString('utf8', 0, 60));

  // A bad line far into the body is named by its number in the whole document.
  const bad = Buffer.from(`${doc}c_total{city="x"} not-a-number\n`);
  assert.throws(
    () => passthrough().p.read(linePieces(bad, bad.length)),
    (err: unknown) => err instanceof TextFormatError && err.line === 6003,
  );
  // What follows # EOF is not read, in whichever piece it is.
  const eof = Buffer.from(`${doc}# EOF\n${'junk line\n'.repeat(5000)}`);
  assert.deepEqual(passthrough().p.read(linePieces(eof, eof.length)), parsePrometheusText(doc));
});
