import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileParser } from './index.js';

describe('compileParser', () => {
  test('each configured parser, sharing one failure counter', () => {
    const errors = { labels: {}, value: 0 };
    assert.deepEqual(compileParser('none', errors)('{"a":1}'), { message: '{"a":1}' });
    assert.deepEqual(compileParser('json', errors)('{"a":1}'), { a: 1 });
    assert.deepEqual(compileParser('logfmt', errors)('a=1'), { a: '1' });
    assert.deepEqual(compileParser({ type: 'regex', pattern: '(?<a>\\d)' }, errors)('x1'), { a: '1' });
    assert.equal(errors.value, 0);
    compileParser('json', errors)('nope');
    compileParser('logfmt', errors)('nope');
    compileParser({ type: 'regex', pattern: '^\\d$' }, errors)('nope');
    assert.deepEqual(compileParser('none', errors)(''), { message: '' });
    assert.equal(errors.value, 3);
  });
});
