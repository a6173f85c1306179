// JSON rules from one scrape to the next: a series given again keeps its sample and gets its new
// value, one not given is gone and not kept, and the same labels twice are a duplicate every time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules, type SkipReason } from './json-rules.js';
import type { JsonRule } from './config.js';

const rule: JsonRule = {
  name: 'item_value',
  help: 'Items.',
  type: 'gauge',
  path: '$.items[*]',
  value: '$.v',
  labels: { id: '$.id' },
  valueMap: {},
};

test('a series given again keeps its sample; one not given is gone; the same labels twice are a duplicate on every scrape', () => {
  const skips: SkipReason[] = [];
  const m = compileRules([rule], 100, [['env', 'prod']]);
  const map = (items: { id: string; v: number }[]) => m.map({ items }, (reason) => skips.push(reason));
  const [a] = map([
    { id: 'a', v: 1 },
    { id: 'b', v: 2 },
  ]);
  const [b] = map([
    { id: 'b', v: 3 },
    { id: 'c', v: 4 },
    { id: 'c', v: 5 },
  ]);
  assert.equal(b!.values[0], a!.values[1]);
  assert.deepEqual(
    b!.values.map((s) => [s.labels, s.value]),
    [
      [{ id: 'b', env: 'prod' }, 3],
      [{ id: 'c', env: 'prod' }, 4],
    ],
  );
  const [c] = map([
    { id: 'a', v: 6 },
    { id: 'c', v: 7 },
    { id: 'c', v: 8 },
  ]);
  assert.deepEqual(
    c!.values.map((s) => [s.labels.id, s.value]),
    [
      ['a', 6],
      ['c', 7],
    ],
  );
  assert.notEqual(c!.values[0], a!.values[0]);
  assert.deepEqual(skips, ['duplicate', 'duplicate']);
  assert.deepEqual(map([]), []);
  assert.deepEqual(skips, ['duplicate', 'duplicate', 'no_match']);
});

test('two rules of one family: with other label names each keeps its own series; with the same names, the same labels twice are a duplicate', () => {
  const queue: JsonRule = { ...rule, path: '$.queues[*]', value: '$.depth', labels: { queue: '$.name' } };
  const worker: JsonRule = { ...rule, path: '$.workers[*]', value: '$.busy', labels: { worker: '$.name' } };
  const doc = { queues: [{ name: 'a', depth: 4 }], workers: [{ name: 'a', busy: 1 }] };
  for (const read of ['map', 'mapBytes'] as const) {
    const skips: SkipReason[] = [];
    const m = compileRules([queue, worker], 100);
    for (let scrape = 0; scrape < 2; scrape++) {
      const families =
        read === 'map'
          ? m.map(doc, (reason) => skips.push(reason))
          : m.mapBytes(Buffer.from(JSON.stringify(doc)), (reason) => skips.push(reason))!;
      assert.deepEqual(
        families.map((f) => f.values.map((s) => [s.labels, s.value])),
        [
          [
            [{ queue: 'a' }, 4],
            [{ worker: 'a' }, 1],
          ],
        ],
        read,
      );
    }
    assert.deepEqual(skips, [], read);
    const same = compileRules([queue, { ...worker, labels: { queue: '$.name' } }], 100);
    const twice: SkipReason[] = [];
    same.map(doc, (reason) => twice.push(reason));
    assert.deepEqual(twice, ['duplicate']);
  }
});
