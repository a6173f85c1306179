import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { FakeClock } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import { waitFor } from '../../lib/wait-for.js';
import { type HttpReceiver, startHttpReceiver } from '../test-support/receivers.js';
import {
  basicAuth,
  classifyStatus,
  detailOf,
  encodeJsonArray,
  encodeNdjson,
  HttpDelivery,
  splitUrl,
  withUnencodable,
} from './http-delivery.js';

const never = new AbortController().signal;

describe('encoding', () => {
  test('NDJSON: one document per line, each after the prefix, newline-terminated', () => {
    const events = [{ a: 1 }, { b: 'x\ny' }];
    const enc = encodeNdjson(events, 'P\n');
    assert.equal(enc.body.toString(), 'P\n{"a":1}\nP\n{"b":"x\\ny"}\n');
    assert.equal(enc.sent, events, 'the input array itself when nothing is left out');
    assert.deepEqual(enc.unencodable, []);
    assert.equal(encodeNdjson([]).body.toString(), '');
  });

  test('JSON array', () => {
    assert.equal(encodeJsonArray([{ a: 1 }, { b: 2 }]).body.toString(), '[{"a":1},{"b":2}]');
    assert.equal(encodeJsonArray([]).body.toString(), '[]');
  });

  test('events JSON cannot encode are left out and reported, the rest keep their order', () => {
    const cyclic: Record<string, unknown> = { c: 1 };
    cyclic.self = cyclic;
    const events = [{ n: 1 }, { big: 10n }, { n: 2 }, cyclic, { n: 3 }];
    const enc = encodeNdjson(events);
    assert.equal(enc.body.toString(), '{"n":1}\n{"n":2}\n{"n":3}\n');
    assert.deepEqual(enc.sent, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.equal(enc.unencodable.length, 2);
    assert.equal(enc.unencodable[0]!.event, events[1]);
    assert.equal(encodeJsonArray(events).body.toString(), '[{"n":1},{"n":2},{"n":3}]');
    // Once the rest is stored they are dead letters; a failure leaves the batch whole.
    assert.deepEqual(withUnencodable({ kind: 'ok' }, enc.unencodable), {
      kind: 'partial',
      retry: [],
      reject: enc.unencodable,
    });
    const failed = { kind: 'failed', retry: true, reason: 'x' } as const;
    assert.equal(withUnencodable(failed, enc.unencodable), failed);
  });
});

describe('classification', () => {
  test('408, 429 and 5xx are retried; other statuses are not', () => {
    for (const s of [408, 429, 500, 502, 503, 504, 599])
      assert.equal(classifyStatus(s, '').retry, true, `${s}`);
    for (const s of [300, 301, 400, 401, 403, 404, 409, 413, 422])
      assert.equal(classifyStatus(s, '').retry, false, `${s}`);
    const o = classifyStatus(429, 'slow down', '30');
    assert.deepEqual(o, {
      kind: 'failed',
      retry: true,
      reason: 'HTTP 429 (Retry-After: 30): slow down',
      status: 429,
    });
  });

  test('details are one bounded line', () => {
    assert.equal(detailOf('a\r\n  b\tc\u0000'), 'a b c');
    assert.equal(detailOf('x'.repeat(10_000)).length, 501);
  });

  test('URLs lose their credentials; basic auth is base64 of user:password', () => {
    const u = splitUrl('https://us%40er:p%3Ass@example.com:9200/es/?x=1');
    assert.deepEqual(u, {
      origin: 'https://example.com:9200',
      pathname: '/es/',
      basePath: '/es',
      baseQuery: 'x=1',
      user: 'us@er',
      password: 'p:ss',
    });
    assert.equal(basicAuth('a', 'b'), 'Basic YTpi');
  });

  test('a Basic header is a secret as sent and as decoded', async () => {
    const d = new HttpDelivery({
      url: splitUrl('http://127.0.0.1:1/'),
      contentType: 'x',
      compression: 'none',
      timeoutMs: 1000,
      headers: { Authorization: basicAuth('svc', 'dec0ded-pw') },
    });
    assert.equal(
      d.redact(`got ${basicAuth('svc', 'dec0ded-pw')} for svc:dec0ded-pw, password dec0ded-pw`),
      'got [REDACTED] for [REDACTED], password [REDACTED]',
    );
    await d.close();
  });

  test('headers that the HTTP client or the driver own, or values with line breaks, are refused without the value', () => {
    const url = splitUrl('http://127.0.0.1:1/');
    const make = (headers: Record<string, string>) =>
      new HttpDelivery({ url, contentType: 'x', compression: 'none', timeoutMs: 1000, headers });
    assert.throws(() => make({ 'Content-Length': '1' }), PillionError);
    assert.throws(() => make({ 'bad header': '1' }), PillionError);
    assert.throws(
      () => make({ 'x-token': 'se\r\ncret' }),
      (err: Error) =>
        err instanceof PillionError && !err.message.includes('se\r\ncret') && /x-token/.test(err.message),
    );
  });
});

describe('HttpDelivery over a socket', () => {
  let rx: HttpReceiver;
  before(async () => {
    rx = await startHttpReceiver();
  });
  after(async () => {
    await rx.close();
  });

  test('gzip bodies, content type, fixed headers, and the URL path and query are kept', async () => {
    const d = new HttpDelivery({
      url: splitUrl(`${rx.url}/base/?tenant=a`),
      contentType: 'application/x-ndjson',
      compression: 'gzip',
      timeoutMs: 5000,
      headers: { 'X-Api-Key': 'k3y-value' },
    });
    const reply = await d.send(d.path('/push', 'b=2'), '{"a":1}\n', never);
    assert.equal(reply.kind, 'reply');
    const req = rx.requests.at(-1)!;
    assert.equal(req.url, '/base/push?tenant=a&b=2');
    assert.equal(req.headers['content-encoding'], 'gzip');
    assert.equal(req.headers['content-type'], 'application/x-ndjson');
    assert.equal(req.headers['x-api-key'], 'k3y-value');
    assert.equal(gunzipSync(req.raw).toString(), '{"a":1}\n');
    assert.equal(d.path(''), '/base/?tenant=a');
    await d.close();
  });

  test('error bodies are drained so the connection is reused; reply text has secrets redacted', async () => {
    const d = new HttpDelivery({
      url: splitUrl(`http://user:pa55word@127.0.0.1:${new URL(rx.url).port}`),
      contentType: 'text/plain',
      compression: 'none',
      timeoutMs: 5000,
      headers: { Authorization: 'Bearer t0ken-abc' },
      secrets: ['other-secret'],
    });
    const echo = 'denied for Bearer t0ken-abc pa55word other-secret ' + 'x'.repeat(100_000);
    const before = rx.requests.length;
    rx.script(
      { status: 503, body: echo, headers: { 'retry-after': '7' } },
      { status: 400, body: echo },
      500,
      500,
    );
    const first = await d.send('/', 'a', never);
    const second = await d.send('/', 'b', never);
    await d.send('/', 'c', never);
    await d.send('/', 'd', never);
    assert.equal(first.kind, 'reply');
    assert.equal(second.kind, 'reply');
    if (first.kind !== 'reply' || second.kind !== 'reply') return;
    assert.equal(first.retryAfter, '7');
    assert.equal(first.truncated, true);
    const outcome = d.classify(first);
    assert.equal(outcome.retry, true);
    assert.match(
      outcome.reason,
      /^HTTP 503 \(Retry-After: 7\): denied for \[REDACTED\] \[REDACTED\] \[REDACTED\]/,
    );
    for (const secret of ['t0ken-abc', 'pa55word', 'other-secret'])
      assert.ok(!outcome.reason.includes(secret));
    assert.equal(d.classify(second).retry, false);
    // Requests may spread over two connections, but a connection per request means bodies were not drained.
    const ports = new Set(rx.requests.slice(before).map((r) => r.remotePort));
    assert.ok(ports.size <= 2, `${ports.size} connections for 4 requests`);
    await d.close();
  });

  test('an attempt times out on the injected clock; a timeout and an abort are retryable', async () => {
    const clock = new FakeClock();
    const d = new HttpDelivery({
      url: splitUrl(rx.url),
      contentType: 'text/plain',
      compression: 'none',
      timeoutMs: 2000,
      clock,
    });
    rx.script('hang');
    let settled = false;
    const pending = d.send('/', 'x', never).finally(() => (settled = true));
    await waitFor(() => rx.hanging === 1, { what: 'the request to arrive' });
    await clock.advance(1999);
    assert.equal(settled, false);
    await clock.advance(1);
    assert.deepEqual(await pending, { kind: 'failed', retry: true, reason: 'timed out after 2000 ms' });

    rx.script('hang');
    const ac = new AbortController();
    const aborted = d.send('/', 'x', ac.signal);
    await waitFor(() => rx.hanging >= 1, { what: 'the request to arrive' });
    ac.abort();
    assert.deepEqual(await aborted, { kind: 'failed', retry: true, reason: 'aborted' });
    assert.deepEqual(await d.send('/', 'x', ac.signal), {
      kind: 'failed',
      retry: true,
      reason: 'aborted before sending',
    });
    await d.close();
  });

  const plainDelivery = (url: string) =>
    new HttpDelivery({ url: splitUrl(url), contentType: 'x', compression: 'none', timeoutMs: 5000 });

  /**
   * A raw server that answers a connection's first request (keep-alive) and resets it at the
   * second, before any reply or (midBody) after the reply's head and part of its body.
   */
  async function oneRequestPerConnection(opts: { resetAtFirst?: boolean; midBody?: boolean } = {}) {
    let requestsSeen = 0;
    let connections = 0;
    let answered = 0;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      connections++;
      sockets.add(socket);
      let requests = 0;
      socket.on('data', (data) => {
        if (!data.includes('\r\n\r\n')) return; // the bodies are a byte; the head is all that matters
        requests++;
        requestsSeen++;
        if (opts.resetAtFirst || requests > 1) {
          if (!opts.midBody) return void socket.resetAndDestroy();
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart', () =>
            setTimeout(() => socket.resetAndDestroy(), 20),
          );
          return;
        }
        answered++;
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    return {
      url: `http://127.0.0.1:${port}/`,
      get connections() {
        return connections;
      },
      get answered() {
        return answered;
      },
      get requests() {
        return requestsSeen;
      },
      close: () => {
        for (const s of sockets) s.destroy();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  test('a pooled connection the server closed as it was reused is retried once on a new one', async () => {
    const srv = await oneRequestPerConnection();
    const d = plainDelivery(srv.url);
    assert.equal((await d.send('/', 'a', never)).kind, 'reply');
    const second = await d.send('/', 'b', never);
    assert.equal(second.kind, 'reply');
    if (second.kind === 'reply') assert.equal(second.status, 200);
    assert.equal(srv.connections, 2);
    assert.equal(srv.answered, 2);
    await d.close();
    await srv.close();
  });

  test('a reused connection reset after the reply began is a failure, never a second request', async () => {
    const srv = await oneRequestPerConnection({ midBody: true });
    const d = plainDelivery(srv.url);
    assert.equal((await d.send('/', 'a', never)).kind, 'reply');
    const second = await d.send('/', 'b', never, 1000);
    assert.equal(second.kind, 'failed');
    if (second.kind === 'failed') assert.equal(second.retry, true);
    assert.equal(srv.requests, 2, 'the batch was not sent again by the client');
    assert.equal(srv.connections, 1);
    await d.close();
    await srv.close();
  });

  test('a reset on a new connection is a network error, not retried by the client', async () => {
    const srv = await oneRequestPerConnection({ resetAtFirst: true });
    const d = plainDelivery(srv.url);
    const outcome = await d.send('/', 'a', never);
    assert.equal(outcome.kind, 'failed');
    if (outcome.kind === 'failed') assert.match(outcome.reason, /^network error: .*ECONNRESET/);
    assert.equal(srv.connections, 1);
    await d.close();
    await srv.close();
  });

  test('a refused connection is a retryable network error', async () => {
    const closed = await startHttpReceiver();
    await closed.close();
    const d = new HttpDelivery({
      url: splitUrl(closed.url),
      contentType: 'x',
      compression: 'none',
      timeoutMs: 5000,
    });
    const outcome = await d.send('/', 'x', never);
    assert.equal(outcome.kind, 'failed');
    if (outcome.kind !== 'failed') return;
    assert.equal(outcome.retry, true);
    assert.match(outcome.reason, /^network error: .*ECONNREFUSED/);
    await d.close();
  });
});
