import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LogEvent } from '../types.js';
import { compileFilter } from './filter.js';

describe('filter transform', () => {
  test('drop by equals; nothing dropped returns the same array', () => {
    const chain = compileFilter({
      type: 'filter',
      action: 'drop',
      field: 'level',
      equals: ['debug', 'trace'],
    });
    const events: LogEvent[] = [{ level: 'info' }, { level: 'warn' }];
    assert.equal(chain(events), events);
    const mixed: LogEvent[] = [
      { level: 'debug' },
      { level: 'info', n: 1 },
      { level: 'trace' },
      { level: 'error' },
    ];
    const kept = chain(mixed);
    assert.notEqual(kept, mixed);
    assert.deepEqual(kept, [{ level: 'info', n: 1 }, { level: 'error' }]);
    assert.equal(kept[0], mixed[1]);
    assert.equal(mixed.length, 4, 'the input array is not edited');
  });

  test('keep by matches: the others, and events without the field, are dropped', () => {
    const chain = compileFilter({ type: 'filter', action: 'keep', field: 'path', matches: '^/api/' });
    assert.deepEqual(chain([{ path: '/api/x' }, { path: '/health' }, { other: 1 }, { path: '/api/y' }]), [
      { path: '/api/x' },
      { path: '/api/y' },
    ]);
  });

  test('a missing field never matches, so `drop` lets the event through', () => {
    const chain = compileFilter({ type: 'filter', action: 'drop', field: 'level', matches: '.*' });
    const events: LogEvent[] = [{ message: 'x' }, { level: undefined }];
    assert.equal(chain(events), events);
  });

  test('a non-string value is compared as text', () => {
    const chain = compileFilter({
      type: 'filter',
      action: 'keep',
      field: 'v',
      equals: ['500', 'true', 'null', '1,2'],
    });
    const events: LogEvent[] = [
      { v: 500 },
      { v: true },
      { v: null },
      { v: [1, 2] },
      { v: 404 },
      { v: false },
    ];
    assert.deepEqual(chain(events), [{ v: 500 }, { v: true }, { v: null }, { v: [1, 2] }]);
  });

  test('an object value with its own `toString` field does not throw', () => {
    const chain = compileFilter({ type: 'filter', action: 'drop', field: 'v', equals: ['[object Object]'] });
    assert.deepEqual(chain([JSON.parse('{"v":{"toString":"x"}}'), { v: 'x' }]), [{ v: 'x' }]);
  });

  test('a filter that drops everything returns an empty array', () => {
    const chain = compileFilter({ type: 'filter', action: 'drop', field: 'a', matches: '' });
    assert.deepEqual(chain([{ a: 1 }, { a: 'x' }, { a: '' }]), []);
    assert.deepEqual(chain([]), []);
  });

  test('the pattern keeps no state from one event to the next', () => {
    const chain = compileFilter({ type: 'filter', action: 'keep', field: 'a', matches: 'x' });
    assert.equal(chain([{ a: 'x' }, { a: 'x' }, { a: 'x' }]).length, 3);
  });

  test('the field is an own top-level key: inherited and dotted names do not reach further', () => {
    const inherited = compileFilter({
      type: 'filter',
      action: 'drop',
      field: 'constructor',
      matches: 'Object',
    });
    assert.equal(inherited([{}]).length, 1);
    const dotted = compileFilter({ type: 'filter', action: 'drop', field: 'a.b', equals: ['1'] });
    assert.deepEqual(dotted([{ a: { b: 1 } }, { 'a.b': 1 }]), [{ a: { b: 1 } }]);
  });
});
