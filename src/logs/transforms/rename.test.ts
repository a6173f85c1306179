import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LogEvent } from '../types.js';
import { compileRename } from './rename.js';

describe('rename transform', () => {
  test('moves values of any type; a missing field is no error', () => {
    const chain = compileRename({ type: 'rename', fields: { msg: 'message', lvl: 'level', gone: 'x' } });
    const events: LogEvent[] = [{ msg: 'hi', lvl: { n: 3 }, keep: 1 }, { other: true }];
    const untouched = events[1];
    assert.equal(chain(events), events);
    assert.deepEqual(events, [{ keep: 1, message: 'hi', level: { n: 3 } }, { other: true }]);
    assert.deepEqual(Object.keys(events[0]!), ['keep', 'message', 'level']);
    assert.equal(events[1], untouched, 'an event with nothing to rename is left as it was');
  });

  test('renames happen at once: two fields swap', () => {
    const chain = compileRename({ type: 'rename', fields: { a: 'b', b: 'a' } });
    assert.deepEqual(chain([{ a: 1, b: 2 }, { a: 3 }]), [{ b: 1, a: 2 }, { b: 3 }]);
  });

  test('a rename onto an existing field replaces it; a rename to itself changes nothing', () => {
    const chain = compileRename({ type: 'rename', fields: { a: 'b', c: 'c' } });
    assert.deepEqual(chain([{ a: 1, b: 2, c: 3 }]), [{ b: 1, c: 3 }]);
  });

  test('a null value is moved; an inherited name is not a field', () => {
    const chain = compileRename({ type: 'rename', fields: { a: 'b', constructor: 'c' } });
    assert.deepEqual(chain([{ a: null }]), [{ b: null }]);
  });

  test('a dotted name is a literal key, not a path', () => {
    const chain = compileRename({ type: 'rename', fields: { 'http.status': 'status' } });
    assert.deepEqual(chain([{ 'http.status': 200, http: { status: 500 } }]), [
      { http: { status: 500 }, status: 200 },
    ]);
  });
});
