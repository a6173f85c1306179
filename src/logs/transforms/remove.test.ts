import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LogEvent } from '../types.js';
import { compileRemove } from './remove.js';

describe('remove transform', () => {
  test('deletes the listed fields whatever their value; missing ones are no error', () => {
    const chain = compileRemove({ type: 'remove', fields: ['password', 'debug', 'absent'] });
    const events: LogEvent[] = [{ message: 'm', password: 'x', debug: { a: 1 } }, { debug: null }, {}];
    assert.equal(chain(events), events);
    assert.deepEqual(events, [{ message: 'm' }, {}, {}]);
    const untouched: LogEvent = { a: 1 };
    assert.equal(chain([untouched])[0], untouched, 'an event with nothing to remove is left as it was');
  });

  test('inherited names and dotted names: only own, literal keys are deleted', () => {
    const chain = compileRemove({ type: 'remove', fields: ['constructor', 'a.b'] });
    const [event] = chain([{ 'a.b': 1, a: { b: 2 } }]);
    assert.deepEqual(event, { a: { b: 2 } });
    assert.equal(typeof event!.constructor, 'function');
  });
});
