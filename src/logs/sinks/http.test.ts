import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import { waitFor } from '../../lib/wait-for.js';
import { type HttpSinkConfig, logsSchema } from '../config.js';
import { type HttpReceiver, startHttpReceiver } from '../test-support/receivers.js';
import type { LogEvent, SendOutcome } from '../types.js';
import { createHttpDriver } from './http.js';

const never = new AbortController().signal;

function config(raw: Record<string, unknown>): HttpSinkConfig {
  const logs = logsSchema.parse({
    sources: { app: { type: 'stdin' } },
    sinks: { out: { type: 'http', ...raw } },
  });
  return logs.sinks.out as HttpSinkConfig;
}

const batch = (): LogEvent[] => [
  { message: 'one', level: 'info', nested: { a: [1, 2] } },
  { message: 'two "quoted"\nline', n: 2 },
];

describe('HTTP driver', () => {
  let rx: HttpReceiver;
  before(async () => {
    rx = await startHttpReceiver();
  });
  after(async () => {
    await rx.close();
  });

  test('NDJSON (default), gzip, POST to the URL path as written', async () => {
    const d = createHttpDriver(config({ url: `${rx.url}/ingest/v1?source=pillion` }));
    const events = batch();
    const copy = structuredClone(events);
    const before = rx.events.length;
    assert.deepEqual(await d.send(events, never), { kind: 'ok' });
    assert.deepEqual(events, copy, 'events are not mutated');
    const req = rx.requests.at(-1)!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/ingest/v1?source=pillion');
    assert.equal(req.headers['content-type'], 'application/x-ndjson');
    assert.equal(req.headers['content-encoding'], 'gzip');
    assert.equal(req.body.toString(), `${JSON.stringify(events[0])}\n${JSON.stringify(events[1])}\n`);
    assert.deepEqual(rx.events.slice(before), events);
    await d.close();
  });

  test('a JSON array with PUT, uncompressed, with extra headers (a configured content type wins)', async () => {
    const d = createHttpDriver(
      config({
        url: rx.url,
        method: 'PUT',
        encoding: 'json',
        compression: 'none',
        headers: { 'X-Api-Key': 'abc-secret-123', 'Content-Type': 'application/vnd.logs+json' },
      }),
    );
    const events = batch();
    assert.deepEqual(await d.send(events, never), { kind: 'ok' });
    const req = rx.requests.at(-1)!;
    assert.equal(req.method, 'PUT');
    assert.equal(req.url, '/');
    assert.equal(req.headers['content-encoding'], undefined);
    assert.equal(req.headers['content-type'], 'application/vnd.logs+json');
    assert.equal(req.headers['x-api-key'], 'abc-secret-123');
    assert.deepEqual(JSON.parse(req.raw.toString()), events);
    await d.close();
  });

  test('status classification: 2xx ok, 408/429/5xx retried, other 4xx and 3xx permanent', async () => {
    const d = createHttpDriver(config({ url: rx.url }));
    const cases: [number, SendOutcome['kind'], boolean | undefined][] = [
      [200, 'ok', undefined],
      [202, 'ok', undefined],
      [204, 'ok', undefined],
      [301, 'failed', false],
      [400, 'failed', false],
      [401, 'failed', false],
      [404, 'failed', false],
      [408, 'failed', true],
      [413, 'failed', false],
      [429, 'failed', true],
      [500, 'failed', true],
      [503, 'failed', true],
    ];
    rx.script(...cases.map((c) => c[0]));
    for (const [status, kind, retry] of cases) {
      const o = await d.send([{ status }], never);
      assert.equal(o.kind, kind, `${status}`);
      if (o.kind === 'failed') {
        assert.equal(o.retry, retry, `${status}`);
        assert.equal(o.status, status);
      }
    }
    await d.close();
  });

  test('secrets in headers and URL credentials never reach a reason, even when the server echoes them', async () => {
    // The schema refuses credentials in a URL; the driver still keeps them out of reasons.
    const d = createHttpDriver({
      ...config({
        url: rx.url,
        headers: { Authorization: 'Bearer tok-XYZ-987', 'X-Api-Key': 'key-555-abc' },
      }),
      url: `http://svc:url-pa55@127.0.0.1:${new URL(rx.url).port}/`,
    });
    rx.script({
      status: 403,
      body: 'rejected Authorization: Bearer tok-XYZ-987, X-Api-Key: key-555-abc, password url-pa55',
    });
    const o = await d.send(batch(), never);
    assert.equal(o.kind, 'failed');
    if (o.kind !== 'failed') return;
    for (const secret of ['tok-XYZ-987', 'key-555-abc', 'url-pa55'])
      assert.ok(!o.reason.includes(secret), o.reason);
    assert.match(o.reason, /^HTTP 403: rejected Authorization: \[REDACTED\]/);
    assert.equal(
      rx.requests.at(-1)!.headers.authorization,
      'Bearer tok-XYZ-987',
      'the configured header wins',
    );
    await d.close();
  });

  test('retry.timeout bounds one attempt (on the injected clock)', async () => {
    const clock = new FakeClock();
    const d = createHttpDriver(config({ url: rx.url, retry: { timeout: '5s' } }), { clock });
    rx.script('hang');
    const pending = d.send(batch(), never);
    await waitFor(() => rx.hanging === 1, { what: 'the request to be held' });
    await clock.advance(5000);
    assert.deepEqual(await pending, { kind: 'failed', retry: true, reason: 'timed out after 5000 ms' });
    await d.close();
  });

  test('an empty batch sends nothing', async () => {
    const d = createHttpDriver(config({ url: rx.url }));
    const before = rx.requests.length;
    assert.deepEqual(await d.send([], never), { kind: 'ok' });
    assert.equal(rx.requests.length, before);
    await d.close();
  });
});
