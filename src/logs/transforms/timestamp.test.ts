import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TransformConfig } from '../config.js';
import type { LogEvent } from '../types.js';
import { compileTimestamp } from './timestamp.js';

type Format = Extract<TransformConfig, { type: 'timestamp' }>['format'];

function read(format: Format, value: unknown): LogEvent {
  const chain = compileTimestamp({ type: 'timestamp', field: 't', format, target: 'timestamp' });
  return chain([{ t: value }])[0]!;
}

function ok(format: Format, value: unknown, expected: string): void {
  assert.deepEqual(read(format, value), { t: value, timestamp: expected }, `${format} ${String(value)}`);
}

function fails(format: Format, value: unknown, reason: string): void {
  assert.deepEqual(read(format, value), { t: value, timestamp_error: reason }, `${format} ${String(value)}`);
}

describe('timestamp transform', () => {
  test('rfc3339: offsets, fractions (cut to milliseconds), lower-case t and z', () => {
    ok('rfc3339', '2024-02-29T12:34:56Z', '2024-02-29T12:34:56.000Z');
    ok('rfc3339', '2024-02-29t12:34:56.123456789z', '2024-02-29T12:34:56.123Z');
    ok('rfc3339', '2024-03-01T01:00:00.5+02:00', '2024-02-29T23:00:00.500Z');
    ok('rfc3339', '1999-12-31 23:00:00-01:30', '2000-01-01T00:30:00.000Z');
    ok('rfc3339', '0050-06-01T00:00:00Z', '0050-06-01T00:00:00.000Z');
    fails('rfc3339', '2024-02-29T12:34:56', 'not an RFC 3339 time');
    fails('rfc3339', '2024-02-29T12:34Z', 'not an RFC 3339 time');
    fails('rfc3339', '2023-02-29T00:00:00Z', 'invalid date');
    fails('rfc3339', '2023-01-01T24:00:00Z', 'invalid date');
    fails('rfc3339', '2023-01-01T00:00:00+24:00', 'invalid offset');
    fails('rfc3339', 1_700_000_000, 'not a string');
  });

  test('unix and unix_ms: numbers or numeric text', () => {
    ok('unix', 1_700_000_000, '2023-11-14T22:13:20.000Z');
    ok('unix', '1700000000.123', '2023-11-14T22:13:20.123Z');
    ok('unix', 1_700_000_000.123, '2023-11-14T22:13:20.123Z');
    ok('unix', -1, '1969-12-31T23:59:59.000Z');
    ok('unix_ms', 1_700_000_000_123, '2023-11-14T22:13:20.123Z');
    ok('unix_ms', '1700000000123', '2023-11-14T22:13:20.123Z');
    fails('unix', 'soon', 'not a number');
    fails('unix', Number.NaN, 'not a number');
    fails('unix', true, 'not a number');
    fails('unix_ms', 1e300, 'time out of range');
  });

  test('common-log, with or without brackets', () => {
    ok('common-log', '10/Oct/2000:13:55:36 -0700', '2000-10-10T20:55:36.000Z');
    ok('common-log', '[01/Jan/2024:00:00:00 +0100]', '2023-12-31T23:00:00.000Z');
    fails('common-log', '10/Foo/2000:13:55:36 -0700', 'invalid month');
    fails('common-log', '31/Apr/2000:13:55:36 -0700', 'invalid date');
    fails('common-log', '2000-10-10T13:55:36Z', 'not a common log time');
  });

  test('auto: epoch by magnitude, ISO 8601 variants (no offset is UTC), common log', () => {
    ok('auto', 1_700_000_000, '2023-11-14T22:13:20.000Z');
    ok('auto', 1_700_000_000_123, '2023-11-14T22:13:20.123Z');
    ok('auto', 1_700_000_000_123_456, '2023-11-14T22:13:20.123Z');
    ok('auto', '1700000000123456789', '2023-11-14T22:13:20.123Z');
    ok('auto', '1700000000', '2023-11-14T22:13:20.000Z');
    ok('auto', '2024-01-02T03:04Z', '2024-01-02T03:04:00.000Z');
    ok('auto', '2024-01-02 03:04:05,678', '2024-01-02T03:04:05.678Z');
    ok('auto', '2024-01-02T03:04:05+0530', '2024-01-01T21:34:05.000Z');
    ok('auto', '2024-01-02T03:04:05-02', '2024-01-02T05:04:05.000Z');
    ok('auto', '10/Oct/2000:13:55:36 -0700', '2000-10-10T20:55:36.000Z');
    fails('auto', 'yesterday', 'unrecognized time format');
    fails('auto', { at: 1 }, 'not a time');
    fails('auto', '2024-13-01T00:00:00Z', 'invalid date');
  });

  test('a missing field sets the error; the field is left as it was; a custom target', () => {
    const chain = compileTimestamp({ type: 'timestamp', field: 'ts', format: 'auto', target: '@timestamp' });
    const events: LogEvent[] = [{ message: 'x' }, { ts: 'bad' }, { ts: 0 }];
    assert.equal(chain(events), events);
    assert.deepEqual(events, [
      { message: 'x', timestamp_error: 'field ts is missing' },
      { ts: 'bad', timestamp_error: 'unrecognized time format' },
      { ts: 0, '@timestamp': '1970-01-01T00:00:00.000Z' },
    ]);
  });

  test('the target may be the field itself', () => {
    const chain = compileTimestamp({ type: 'timestamp', field: 'time', format: 'unix', target: 'time' });
    assert.deepEqual(chain([{ time: 0 }]), [{ time: '1970-01-01T00:00:00.000Z' }]);
  });
});
