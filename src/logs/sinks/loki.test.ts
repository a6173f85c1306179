import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { FakeClock } from '../../lib/clock.js';
import { logsSchema, type LokiSinkConfig } from '../config.js';
import { type LokiReceiver, lokiStreamKey, startLokiReceiver } from '../test-support/receivers.js';
import type { LogEvent } from '../types.js';
import { createLokiDriver, eventTime } from './loki.js';

const never = new AbortController().signal;

function config(raw: Record<string, unknown>): LokiSinkConfig {
  const logs = logsSchema.parse({
    sources: { app: { type: 'stdin' } },
    sinks: { loki: { type: 'loki', ...raw } },
  });
  return logs.sinks.loki as LokiSinkConfig;
}

test('event times: RFC 3339 to the nanosecond, epoch numbers by magnitude, `time` as a fallback', () => {
  const t = { ms: 0, ns: 0 };
  const at = (e: LogEvent) => (eventTime(e, t) ? `${t.ms}${String(t.ns).padStart(6, '0')}` : undefined);
  assert.equal(at({ timestamp: '2024-01-01T00:00:00.123456789Z' }), '1704067200123456789');
  assert.equal(at({ timestamp: '2024-01-01T00:00:00Z' }), '1704067200000000000');
  assert.equal(at({ timestamp: '2024-01-01T01:00:00.5+01:00' }), '1704067200500000000');
  assert.equal(at({ time: '2016-10-06T00:17:09.669794202Z' }), '1475713029669794202');
  assert.equal(at({ timestamp: 'not a date', time: '2024-01-01T00:00:00Z' }), '1704067200000000000');
  assert.equal(at({ timestamp: 1704067200 }), '1704067200000000000');
  assert.equal(at({ timestamp: 1704067200123 }), '1704067200123000000');
  assert.equal(at({ timestamp: '1' }), undefined, 'Date.parse would read "1" as 2001');
  assert.equal(at({ timestamp: 'Nov 21 09:44:44' }), undefined, 'no year');
  assert.equal(at({ message: 'x' }), undefined);
});

describe('Loki driver', () => {
  let loki: LokiReceiver;
  const clock = new FakeClock(1_700_000_000_000);
  before(async () => {
    loki = await startLokiReceiver();
  });
  after(async () => {
    await loki.close();
  });

  test('groups events into streams by label set: `{{field}}` (dotted too), fixed text, missing fields omitted', async () => {
    const d = createLokiDriver(
      config({
        url: loki.url,
        tenant: 'team-a',
        labels: { app: 'orders', level: '{{level}}', pod: '{{kubernetes.pod}}', env: 'env-{{env}}' },
      }),
      { clock },
    );
    const batch: LogEvent[] = [
      {
        level: 'info',
        kubernetes: { pod: 'p1' },
        env: 'prod',
        message: 'a',
        timestamp: '2024-01-01T00:00:01Z',
      },
      {
        level: 'error',
        kubernetes: { pod: 'p1' },
        env: 'prod',
        message: 'b',
        timestamp: '2024-01-01T00:00:02Z',
      },
      {
        level: 'info',
        kubernetes: { pod: 'p1' },
        env: 'prod',
        message: 'c',
        timestamp: '2024-01-01T00:00:03Z',
      },
      { kubernetes: { pod: 'p2' }, message: 'd', timestamp: '2024-01-01T00:00:04Z' },
      { level: 42, 'kubernetes.pod': 'p3', message: 'e' },
    ];
    const copy = structuredClone(batch);
    assert.deepEqual(await d.send(batch, never), { kind: 'ok' });
    assert.deepEqual(batch, copy, 'events are not mutated');
    const req = loki.requests.at(-1)!;
    assert.equal(req.status, 204);
    assert.equal(req.url, '/loki/api/v1/push');
    assert.equal(req.headers['x-scope-orgid'], 'team-a');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['content-encoding'], 'gzip');
    const push = JSON.parse(req.body.toString()) as {
      streams: { stream: Record<string, string>; values: string[][] }[];
    };
    assert.deepEqual(
      push.streams.map((s) => [s.stream, s.values.map((v) => (JSON.parse(v[1]!) as LogEvent).message)]),
      [
        [{ app: 'orders', level: 'info', pod: 'p1', env: 'env-prod' }, ['a', 'c']],
        [{ app: 'orders', level: 'error', pod: 'p1', env: 'env-prod' }, ['b']],
        [{ app: 'orders', pod: 'p2' }, ['d']],
        [{ app: 'orders', level: '42', pod: 'p3' }, ['e']],
      ],
    );
    assert.deepEqual(push.streams[0]!.values[0], ['1704067201000000000', JSON.stringify(batch[0])]);
    assert.equal(push.streams[3]!.values[0]![0], '1700000000000000000', 'no time field: the clock');
    await d.close();
  });

  test('entries of a stream are sorted by time (stable for equal times), so Loki accepts them', async () => {
    const d = createLokiDriver(config({ url: loki.url, labels: { job: 'sorted' }, compression: 'none' }), {
      clock,
    });
    const batch: LogEvent[] = [
      { message: 'third', timestamp: '2024-02-01T00:00:03Z' },
      { message: 'first', timestamp: '2024-02-01T00:00:01Z' },
      { message: 'second-a', timestamp: '2024-02-01T00:00:02Z' },
      { message: 'second-b', timestamp: '2024-02-01T00:00:02Z' },
    ];
    assert.deepEqual(await d.send(batch, never), { kind: 'ok' });
    const stored = loki.streams.get(lokiStreamKey({ job: 'sorted' }))!;
    assert.deepEqual(
      stored.map((e) => (JSON.parse(e.line) as LogEvent).message),
      ['first', 'second-a', 'second-b', 'third'],
    );
    // An older entry in a later push is what Loki refuses (400): permanent, not retried.
    const late = await d.send([{ message: 'late', timestamp: '2024-02-01T00:00:00Z' }], never);
    assert.equal(late.kind, 'failed');
    assert.ok(
      late.kind === 'failed' && !late.retry && /entry out of order/.test(late.reason),
      JSON.stringify(late),
    );
    await d.close();
  });

  test('no label applies: a fallback label, since Loki refuses a stream without one', async () => {
    const d = createLokiDriver(config({ url: loki.url, labels: { level: '{{level}}' } }), { clock });
    assert.deepEqual(await d.send([{ message: 'x' }], never), { kind: 'ok' });
    const push = JSON.parse(loki.requests.at(-1)!.body.toString()) as { streams: { stream: unknown }[] };
    assert.deepEqual(push.streams[0]!.stream, { job: 'pillion' });
    await d.close();
  });

  test('429 and 5xx are retried, 4xx not', async () => {
    const d = createLokiDriver(config({ url: loki.url, labels: { job: 'status' } }), { clock });
    loki.script(429, 500, { status: 400, body: 'stream limit exceeded' });
    assert.deepEqual(await d.send([{ m: 1 }], never), {
      kind: 'failed',
      retry: true,
      reason: 'HTTP 429',
      status: 429,
    });
    assert.equal((await d.send([{ m: 1 }], never)).kind === 'failed', true);
    assert.deepEqual(await d.send([{ m: 1 }], never), {
      kind: 'failed',
      retry: false,
      reason: 'HTTP 400: stream limit exceeded',
      status: 400,
    });
    await d.close();
  });

  test('property: any times and label values give pushes Loki accepts whole, every event once', async () => {
    const d = createLokiDriver(
      config({ url: loki.url, labels: { run: '{{run}}', group: '{{g}}' }, compression: 'none' }),
      { clock },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            g: fc.constantFrom('a', 'b', 'c', undefined),
            t: fc.integer({ min: 1_600_000_000_000, max: 1_600_000_100_000 }),
            ns: fc.integer({ min: 0, max: 999_999 }),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        async (specs) => {
          run++;
          const batch = specs.map((s, i) => ({
            run: `r${run}`,
            ...(s.g === undefined ? {} : { g: s.g }),
            i,
            timestamp: `${new Date(s.t).toISOString().slice(0, -1)}${String(s.ns).padStart(6, '0')}Z`,
          }));
          const before = loki.entries.length;
          const o = await d.send(batch, never);
          assert.deepEqual(o, { kind: 'ok' });
          const got = loki.entries.slice(before).map((e) => (JSON.parse(e.line) as { i: number }).i);
          assert.deepEqual(
            [...got].sort((a, b) => a - b),
            batch.map((_, i) => i),
          );
        },
      ),
      { numRuns: 30 },
    );
    await d.close();
  });
});
