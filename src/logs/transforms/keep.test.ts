import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LogEvent } from '../types.js';
import { compileKeep } from './keep.js';

describe('keep transform', () => {
  test('deletes every field not listed; a listed field that is missing stays missing', () => {
    const chain = compileKeep({ type: 'keep', fields: ['message', 'level', 'ts'] });
    const events: LogEvent[] = [
      { a: 1, message: 'm', b: { c: 2 }, level: 'info', d: null },
      { z: 1 },
      { message: 'only' },
    ];
    assert.equal(chain(events), events);
    assert.deepEqual(events, [{ message: 'm', level: 'info' }, {}, { message: 'only' }]);
    assert.deepEqual(Object.keys(events[0]!), ['message', 'level']);
  });

  test('a __proto__ field is kept as a field', () => {
    const chain = compileKeep({ type: 'keep', fields: ['__proto__'] });
    const [event] = chain([JSON.parse('{"__proto__":{"x":1},"a":2}')]);
    assert.equal(Object.getPrototypeOf(event), Object.prototype);
    assert.deepEqual(Object.entries(event!), [['__proto__', { x: 1 }]]);
  });
});
