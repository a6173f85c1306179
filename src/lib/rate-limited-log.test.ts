import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { FakeClock } from './clock.js';
import { LogLimiter } from './log-limiter.js';
import { RateLimitedLog } from './rate-limited-log.js';

test('LogLimiter: the first of a kind at once, then one an interval with the count left out; forget starts afresh', async () => {
  const clock = new FakeClock();
  const l = new LogLimiter(clock, 1000, 2);
  assert.equal(l.admit('a'), 0);
  assert.equal(l.admit('a'), -1);
  assert.equal(l.admit('a'), -1);
  assert.equal(l.admit('b'), 0, 'kinds are apart');
  await clock.advance(1000);
  assert.equal(l.admit('a'), 2, 'two were left out');
  l.forget('a');
  assert.equal(l.admit('a'), 0);
  assert.equal(l.admit('c'), 0, 'past maxKinds the oldest kind is forgotten');
  assert.equal(l.admit('b'), 0, 'b was the oldest');
});

test('RateLimitedLog: one line per key and interval, carrying how many were suppressed', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const clock = new FakeClock();
  const log = new RateLimitedLog(logger, clock, 1000);
  for (let i = 0; i < 5; i++) log.log('warn', 'k', { n: i }, 'trouble');
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.n, 0);
  await clock.advance(1000);
  log.log('warn', 'k', { n: 5 }, 'trouble');
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.suppressed, 4);
  log.clear('k');
  log.log('error', 'k', { n: 6 }, 'trouble again');
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.suppressed, undefined);
  assert.equal(lines[2]!.level, 50);
});
