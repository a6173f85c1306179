// HTTP/1.1 exchanges through the proxy over real sockets: keep-alive on both sides, pipelining,
// routing and path normalization, header handling, metrics and the access log.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import {
  type Backend,
  echoBackend,
  freePort,
  get,
  listen,
  metricValue,
  quiet,
  RawClient,
  rawRequest,
  type StartedProxy,
  startBackend,
  startInbound,
} from '../test-support.js';
import type { InboundSection } from '../inbound.js';

const LISTEN = [{ address: '127.0.0.1:0' }];

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  bytes: number;
}

const echoOf = (body: Buffer): Echo => JSON.parse(body.toString()) as Echo;

describe('keep-alive and pipelining', () => {
  let app: Backend;
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    app = await echoBackend();
    proxy = await startInbound({ listeners: LISTEN }, { app: app.port });
  });
  after(async () => {
    await proxy.stop();
    await app.close();
  });

  test('sequential requests on one client connection reuse one upstream connection', async () => {
    const before = app.connections;
    const c = await RawClient.connect(proxy.port());
    for (let i = 0; i < 50; i++) {
      c.write(get(`/n/${i}`));
      const res = await c.readResponse();
      assert.equal(res.status, 200);
      assert.equal(echoOf(res.body).url, `/n/${i}`);
      assert.equal(res.headers.connection, undefined);
    }
    c.destroy();
    assert.equal(app.connections - before, 1);
  });

  test('pipelined requests in one write are answered in order', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/first') + get('/second') + get('/third', {}, 'HEAD'));
    const a = await c.readResponse();
    const b = await c.readResponse();
    const h = await c.readResponse({ head: true });
    assert.equal(echoOf(a.body).url, '/first');
    assert.equal(echoOf(b.body).url, '/second');
    assert.equal(h.status, 200);
    assert.ok(Number(h.headers['content-length']) > 0);
    // The connection is still usable after a HEAD response (no body was expected or sent).
    c.write(get('/fourth'));
    assert.equal(echoOf((await c.readResponse()).body).url, '/fourth');
    c.destroy();
  });

  test('a request split over many writes is assembled', async () => {
    const c = await RawClient.connect(proxy.port());
    const req = Buffer.from(get('/slowly/arriving', { 'X-Long': 'v'.repeat(200) }));
    for (let i = 0; i < req.length; i += 7) {
      c.write(req.subarray(i, i + 7));
      if (i % 70 === 0) await new Promise((r) => setImmediate(r));
    }
    const res = await c.readResponse();
    assert.equal(echoOf(res.body).url, '/slowly/arriving');
    c.destroy();
  });

  test('Connection: close from the client: the response says close and the connection ends', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/bye', { Connection: 'close' }));
    const res = await c.readResponse();
    assert.equal(res.headers.connection, 'close');
    assert.equal(await c.waitClosed(), true);
  });

  test('Connection: close with a request pipelined behind it: the proxy lets go of the socket at once', async () => {
    // The held pipelined bytes must not keep the connection open (or counted) after the close.
    const p = await startInbound({ listeners: LISTEN }, { app: app.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/last', { Connection: 'close' }) + get('/ignored'));
      const res = await c.readResponse();
      assert.equal(echoOf(res.body).url, '/last');
      assert.equal(await c.waitClosed(), true);
      await quiet(p, 'the closed connection to be released');
    } finally {
      await p.stop();
    }
  });

  test('HTTP/1.0 keep-alive is honored and a 1.0 request without keep-alive closes', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'keep-alive');
    c.write('GET /ten-again HTTP/1.0\r\n\r\n');
    const res2 = await c.readResponse();
    assert.equal(echoOf(res2.body).url, '/ten-again');
    assert.equal(await c.waitClosed(), true);
  });

  test('an HTTP/1.0 client gets a chunked response de-chunked, ending at close', async () => {
    const b = await startBackend((_req, res) => {
      res.write('part one, ');
      res.end('part two');
    });
    const p = await startInbound({ listeners: LISTEN }, { app: b.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      const res = await c.readResponse();
      assert.equal(res.headers['transfer-encoding'], undefined);
      assert.equal(res.headers.connection, 'close');
      assert.equal(res.body.toString(), 'part one, part two');
    } finally {
      await p.stop();
      await b.close();
    }
  });

  test('a POST with a body on a keep-alive connection, then a GET', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(`POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello${get('/after')}`);
    const a = await c.readResponse();
    assert.equal(echoOf(a.body).bytes, 5);
    const b = await c.readResponse();
    assert.equal(echoOf(b.body).url, '/after');
    c.destroy();
  });
});

describe('response framing', () => {
  /** A raw backend: each request (head only) is answered with the next scripted bytes. */
  async function scripted(answers: string[]): Promise<{ port: number; close: () => void }> {
    const server = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.on('data', (b: Buffer) => {
        for (let i = b.indexOf('\r\n\r\n'); i !== -1; i = b.indexOf('\r\n\r\n', i + 4)) {
          const a = answers.shift();
          if (a === undefined) sock.destroy();
          else if (a.endsWith('<close>')) sock.end(a.slice(0, -7));
          else sock.write(a);
        }
      });
    });
    const port = await listen(server);
    return { port, close: () => server.close() };
  }

  test('204, 304, HEAD and Content-Length: 0 keep the connection in step', async () => {
    const b = await scripted([
      'HTTP/1.1 204 No Content\r\nX-N: 1\r\n\r\n',
      'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast',
    ]);
    const p = await startInbound({ listeners: LISTEN }, { app: b.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/204'));
      assert.equal((await c.readResponse()).status, 204);
      c.write(get('/304'));
      assert.equal((await c.readResponse()).status, 304);
      c.write(get('/head', {}, 'HEAD'));
      const head = await c.readResponse({ head: true });
      assert.equal(head.headers['content-length'], '1234');
      c.write(get('/empty'));
      assert.equal((await c.readResponse()).body.length, 0);
      c.write(get('/last'));
      assert.equal((await c.readResponse()).body.toString(), 'last');
      c.destroy();
    } finally {
      await p.stop();
      b.close();
    }
  });

  test('a response without length ends at close; the client connection closes after it', async () => {
    const b = await scripted(['HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end<close>']);
    const p = await startInbound({ listeners: LISTEN }, { app: b.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/'));
      const res = await c.readResponse();
      assert.equal(res.headers.connection, 'close');
      assert.equal(res.body.toString(), 'until the end');
    } finally {
      await p.stop();
      b.close();
    }
  });

  test('103 Early Hints are relayed before the response', async () => {
    const b = await startBackend((_req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.end('done');
    });
    const p = await startInbound({ listeners: LISTEN }, { app: b.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/'));
      const hints = await c.readResponse();
      assert.equal(hints.status, 103);
      assert.equal(hints.headers.link, '</style.css>; rel=preload; as=style');
      const res = await c.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'done');
      c.destroy();
    } finally {
      await p.stop();
      await b.close();
    }
  });
});

describe('routes', () => {
  let app: Backend;
  let other: Backend;
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    app = await echoBackend();
    other = await echoBackend();
    proxy = await startInbound(
      {
        listeners: LISTEN,
        upstreams: { other: { endpoints: [`127.0.0.1:${other.port}`] } },
        routes: [
          { name: 'direct', match: { exact: '/healthz' }, directResponse: { status: 200, body: 'ok\n' } },
          {
            name: 'teapot',
            match: { exact: '/tea' },
            directResponse: { status: 418, body: '{"short":"stout"}', contentType: 'application/json' },
            responseHeaders: { add: { 'x-direct': 'yes' } },
          },
          { name: 'api', match: { prefix: '/api' }, upstream: 'other', rewritePrefix: '/v2' },
          { name: 'regex', match: { regex: '/items/[0-9]+' }, upstream: 'other' },
          { name: 'deletes', match: { prefix: '/m', methods: ['DELETE'] }, upstream: 'other' },
          { name: 'host-exact', match: { host: 'api.example.com' }, upstream: 'other' },
          { name: 'host-wild', match: { host: '*.wild.test' }, upstream: 'other' },
          {
            name: 'canary',
            match: { prefix: '/h', headers: [{ name: 'X-Canary', exact: '1' }] },
            upstream: 'other',
          },
          {
            name: 'no-debug',
            match: { prefix: '/d', headers: [{ name: 'X-Debug', present: false }] },
            upstream: 'other',
          },
          {
            name: 'edits',
            match: { prefix: '/edit' },
            requestHeaders: { add: { 'x-added': 'by-proxy' }, remove: ['x-secret'] },
            responseHeaders: { add: { 'x-resp': 'added' }, remove: ['x-powered-by'] },
          },
          { name: 'admin', match: { exact: '/admin' }, upstream: 'other' },
          { name: 'app-only', match: { prefix: '/' } },
        ],
      },
      { app: app.port },
    );
  });
  after(async () => {
    await proxy.stop();
    await Promise.all([app.close(), other.close()]);
  });

  const send = (req: string) => rawRequest(proxy.port(), req);
  /** Which backend got it: 'app' or 'other', and the path it saw. */
  async function where(req: string): Promise<[string, string]> {
    const res = await send(req);
    assert.equal(res.status, 200, res.body.toString());
    const e = echoOf(res.body);
    return [isFrom(other, e) ? 'other' : 'app', e.url];
  }
  const isFrom = (b: Backend, e: Echo) =>
    b.requests.some((r) => r.headers['x-request-id'] === e.headers['x-request-id']);

  test('prefix on segment boundaries, with the prefix rewritten', async () => {
    assert.deepEqual(await where(get('/api')), ['other', '/v2']);
    assert.deepEqual(await where(get('/api/users?x=1')), ['other', '/v2/users?x=1']);
    assert.deepEqual(await where(get('/apix')), ['app', '/apix']);
  });

  test('exact, regex and methods', async () => {
    assert.deepEqual(await where(get('/items/42')), ['other', '/items/42']);
    assert.deepEqual(await where(get('/items/4x')), ['app', '/items/4x']);
    assert.deepEqual(await where(get('/m/1', {}, 'DELETE')), ['other', '/m/1']);
    assert.deepEqual(await where(get('/m/1')), ['app', '/m/1']);
  });

  test('host, exact and one-label wildcard, port ignored', async () => {
    const h = (host: string) => `GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    assert.deepEqual(await where(h('api.example.com')), ['other', '/x']);
    assert.deepEqual(await where(h('API.example.com:8080')), ['other', '/x']);
    assert.deepEqual(await where(h('a.wild.test')), ['other', '/x']);
    assert.deepEqual(await where(h('a.b.wild.test')), ['app', '/x']);
    assert.deepEqual(await where(h('wild.test')), ['app', '/x']);
  });

  test('Connection: host bug: the Host routing used is the Host the upstream gets, not localhost', async () => {
    for (const conn of ['host', 'Host', 'keep-alive, HOST', 'x-a,host , x-b']) {
      const res = await send(`GET /x HTTP/1.1\r\nHost: api.example.com\r\nConnection: ${conn}\r\n\r\n`);
      assert.equal(res.status, 200, res.body.toString());
      const e = echoOf(res.body);
      assert.ok(isFrom(other, e), `routed by Host with Connection: ${conn}`);
      assert.equal(e.headers.host, 'api.example.com', `Connection: ${conn}`);
    }
    // Framing stays the proxy's own: a body is forwarded with its length whatever Connection names.
    const body = 'hello';
    const res = await send(
      `POST /x HTTP/1.1\r\nHost: api.example.com\r\nConnection: content-length, transfer-encoding, host\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    const e = echoOf(res.body);
    assert.equal(e.headers.host, 'api.example.com');
    assert.equal(e.headers['content-length'], String(body.length));
    assert.equal(e.bytes, body.length);
    // Nor can Connection strip the request id the proxy logs and echoes.
    const idRes = await send(
      'GET /x HTTP/1.1\r\nHost: api.example.com\r\nX-Request-Id: abc-1\r\nConnection: x-request-id\r\n\r\n',
    );
    assert.equal(echoOf(idRes.body).headers['x-request-id'], 'abc-1');
    assert.equal(idRes.headers['x-request-id'], 'abc-1');
  });

  test('header conditions: exact value, and absence', async () => {
    assert.deepEqual(await where(get('/h', { 'X-Canary': '1' })), ['other', '/h']);
    assert.deepEqual(await where(get('/h', { 'X-Canary': '2' })), ['app', '/h']);
    assert.deepEqual(await where(get('/d')), ['other', '/d']);
    assert.deepEqual(await where(get('/d', { 'X-Debug': '1' })), ['app', '/d']);
  });

  test('request and response header edits', async () => {
    const res = await send(get('/edit', { 'X-Secret': 's3cret', 'X-Added': 'from-client' }));
    const e = echoOf(res.body);
    assert.equal(e.headers['x-secret'], undefined);
    assert.equal(e.headers['x-added'], 'by-proxy');
    assert.equal(res.headers['x-resp'], 'added');
  });

  test('response header removal', async () => {
    const b = await startBackend((_req, res) => {
      res.setHeader('x-powered-by', 'php/4');
      res.setHeader('x-keep', 'yes');
      res.end('ok');
    });
    const p = await startInbound(
      {
        listeners: LISTEN,
        routes: [{ responseHeaders: { remove: ['X-Powered-By'] } }],
      },
      { app: b.port },
    );
    try {
      const res = await rawRequest(p.port(), get('/'));
      assert.equal(res.headers['x-powered-by'], undefined);
      assert.equal(res.headers['x-keep'], 'yes');
    } finally {
      await p.stop();
      await b.close();
    }
  });

  test('direct responses', async () => {
    const ok = await send(get('/healthz'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'ok\n');
    const tea = await send(get('/tea'));
    assert.equal(tea.status, 418);
    assert.equal(tea.headers['content-type'], 'application/json');
    assert.equal(tea.headers['x-direct'], 'yes');
    assert.equal(tea.body.toString(), '{"short":"stout"}');
    const head = await rawRequest(proxy.port(), get('/healthz', {}, 'HEAD'), { head: true });
    assert.equal(head.headers['content-length'], '3');
  });

  test('dot segments, merged slashes and encoded unreserved characters route as /admin', async () => {
    for (const path of ['/a/../admin', '//admin', '/%61dmin', '/./admin', '/x/y/../../admin']) {
      assert.deepEqual(await where(get(path)), ['other', '/admin'], path);
    }
  });

  test('no route: 404', async () => {
    const p = await startInbound(
      { listeners: LISTEN, routes: [{ match: { prefix: '/only' } }] },
      { app: app.port },
    );
    try {
      const res = await rawRequest(p.port(), get('/elsewhere'));
      assert.equal(res.status, 404);
      assert.ok(res.headers['x-request-id']);
      // The connection stays usable after a local response.
      const c = await RawClient.connect(p.port());
      c.write(get('/nope') + get('/only/yes'));
      assert.equal((await c.readResponse()).status, 404);
      assert.equal((await c.readResponse()).status, 200);
      c.destroy();
    } finally {
      await p.stop();
    }
  });
});

describe('headers', () => {
  let app: Backend;
  let proxy: StartedProxy<InboundSection>;
  let trusting: StartedProxy<InboundSection>;
  before(async () => {
    app = await startBackend((req, res) => {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes: 0 });
      res.setHeader('Connection', 'x-hop-res, keep-alive');
      res.setHeader('X-Hop-Res', 'should not reach the client');
      res.setHeader('Keep-Alive', 'timeout=5');
      if (req.headers['x-respond-id']) res.setHeader('x-request-id', 'from-app');
      res.end(body);
    });
    proxy = await startInbound({ listeners: LISTEN }, { app: app.port });
    trusting = await startInbound(
      { listeners: LISTEN, headers: { trustForwarded: true } },
      { app: app.port },
    );
  });
  after(async () => {
    await Promise.all([proxy.stop(), trusting.stop()]);
    await app.close();
  });

  test('hop-by-hop headers, and headers named in Connection, are not forwarded either way', async () => {
    const res = await rawRequest(
      proxy.port(),
      get('/', {
        Connection: 'keep-alive, X-Hop',
        'X-Hop': 'secret',
        'Keep-Alive': 'timeout=1',
        TE: 'trailers',
        'Proxy-Connection': 'keep-alive',
        'X-Kept': 'yes',
      }),
    );
    const e = echoOf(res.body);
    assert.equal(e.headers['x-hop'], undefined);
    assert.equal(e.headers['te'], undefined);
    assert.equal(e.headers['proxy-connection'], undefined);
    assert.equal(e.headers['x-kept'], 'yes');
    assert.notEqual(e.headers['keep-alive'], 'timeout=1');
    assert.equal(res.headers['x-hop-res'], undefined);
    assert.equal(res.headers['keep-alive'], undefined);
  });

  test('X-Forwarded-* set, and a forged X-Forwarded-For replaced', async () => {
    const res = await rawRequest(
      proxy.port(),
      get('/', { 'X-Forwarded-For': '6.6.6.6', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil' }),
    );
    const e = echoOf(res.body);
    assert.equal(e.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(e.headers['x-forwarded-proto'], 'http');
    assert.equal(e.headers['x-forwarded-host'], 'test.local');
    assert.equal(e.headers.host, 'test.local');
  });

  test('with trustForwarded, X-Forwarded-For is appended to', async () => {
    const res = await rawRequest(
      trusting.port(),
      get('/', { 'X-Forwarded-For': '10.0.0.1, 10.0.0.2', 'X-Forwarded-Proto': 'https' }),
    );
    const e = echoOf(res.body);
    assert.equal(e.headers['x-forwarded-for'], '10.0.0.1, 10.0.0.2, 127.0.0.1');
    assert.equal(e.headers['x-forwarded-proto'], 'https');
  });

  test('X-Request-Id generated when absent, echoed, and kept when present', async () => {
    const a = await rawRequest(proxy.port(), get('/'));
    const id = echoOf(a.body).headers['x-request-id'];
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(a.headers['x-request-id'], id);
    const b = await rawRequest(proxy.port(), get('/', { 'X-Request-Id': 'abc-123' }));
    assert.equal(echoOf(b.body).headers['x-request-id'], 'abc-123');
    assert.equal(b.headers['x-request-id'], 'abc-123');
    // The app's own id on the response wins over the echo.
    const c = await rawRequest(proxy.port(), get('/', { 'X-Respond-Id': '1', 'X-Request-Id': 'mine' }));
    assert.equal(c.headers['x-request-id'], 'from-app');
  });

  test('request ids can be turned off', async () => {
    const p = await startInbound({ listeners: LISTEN, headers: { requestId: false } }, { app: app.port });
    try {
      const res = await rawRequest(p.port(), get('/'));
      assert.equal(echoOf(res.body).headers['x-request-id'], undefined);
      assert.equal(res.headers['x-request-id'], undefined);
    } finally {
      await p.stop();
    }
  });
});

describe('metrics and access log', () => {
  test('requests counted by route, method and status class; bytes counted', async () => {
    const app = await echoBackend();
    const p = await startInbound(
      {
        listeners: [{ name: 'web', address: '127.0.0.1:0' }],
        routes: [{ name: 'only', match: { prefix: '/ok' } }],
      },
      { app: app.port },
    );
    try {
      for (let i = 0; i < 3; i++) await rawRequest(p.port(), get('/ok'));
      await rawRequest(p.port(), `POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi`);
      await rawRequest(p.port(), get('/missing'));
      const base = { section: 'inbound', listener: 'web' };
      const requests = 'pillion_proxy_requests_total';
      assert.equal(
        await metricValue(p.metrics, requests, { ...base, route: 'only', method: 'GET', code_class: '2xx' }),
        3,
      );
      assert.equal(
        await metricValue(p.metrics, requests, { ...base, route: 'only', method: 'POST', code_class: '2xx' }),
        1,
      );
      assert.equal(
        await metricValue(p.metrics, requests, { ...base, route: '-', method: 'GET', code_class: '4xx' }),
        1,
      );
      assert.ok(
        (await metricValue(p.metrics, 'pillion_proxy_bytes_total', { ...base, direction: 'in' })) > 100,
      );
      assert.equal(
        await metricValue(p.metrics, 'pillion_proxy_request_duration_seconds_count', {
          ...base,
          route: 'only',
        }),
        4,
      );
    } finally {
      await p.stop();
      await app.close();
    }
  });

  test('one JSON line per request with the expected fields', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pillion-proxy-log-'));
    const path = join(dir, 'access.log');
    const app = await echoBackend();
    const refused = await freePort();
    const p = await startInbound(
      {
        listeners: [{ name: 'web', address: '127.0.0.1:0' }],
        accessLog: { path },
        upstreams: { gone: { endpoints: [`127.0.0.1:${refused}`] } },
        routes: [{ name: 'gone', match: { prefix: '/gone' }, upstream: 'gone' }, {}],
      },
      { app: app.port },
    );
    try {
      await rawRequest(
        p.port(),
        `POST /log/me?q=1 HTTP/1.1\r\nHost: svc.local\r\nUser-Agent: t/1\r\nX-Request-Id: rid-1\r\nContent-Length: 4\r\n\r\nbody`,
      );
      const line = await waitFor(
        () =>
          readFileSync(path, 'utf8')
            .split('\n')
            .find((l) => l !== ''),
        {
          what: 'an access log line',
        },
      );
      const rec = JSON.parse(line) as Record<string, unknown>;
      assert.equal(rec.method, 'POST');
      assert.equal(rec.path, '/log/me?q=1');
      assert.equal(rec.protocol, 'HTTP/1.1');
      assert.equal(rec.response_code, 200);
      assert.equal(rec.response_flags, '-');
      assert.equal(rec.upstream_host, `127.0.0.1:${app.port}`);
      assert.equal(rec.request_id, 'rid-1');
      assert.equal(rec.user_agent, 't/1');
      assert.equal(rec.authority, 'svc.local');
      assert.equal(rec.listener, 'web');
      assert.equal(rec.route, 'route-1');
      assert.ok(typeof rec.bytes_received === 'number' && rec.bytes_received > 4);
      assert.ok(typeof rec.bytes_sent === 'number' && rec.bytes_sent > 100);
      assert.equal(typeof rec.duration, 'number');
      assert.equal(typeof rec.upstream_service_time, 'number');
      assert.match(String(rec.downstream_remote_address), /^127\.0\.0\.1:\d+$/);
      assert.match(String(rec.start_time), /^\d{4}-\d\d-\d\dT/);
      assert.equal(rec.error, undefined);

      await rawRequest(p.port(), get('/gone'));
      const failed = await waitFor(
        () =>
          readFileSync(path, 'utf8')
            .split('\n')
            .filter((l) => l !== '')[1],
        { what: 'a second access log line' },
      );
      const bad = JSON.parse(failed) as Record<string, unknown>;
      assert.equal(bad.response_code, 502);
      assert.equal(bad.response_flags, 'UF');
      assert.equal(bad.error, 'PILLION_ERR_PROXY_UPSTREAM_CONNECT');
      assert.equal(bad.upstream_host, `127.0.0.1:${refused}`);
      assert.equal(bad.route, 'gone');
    } finally {
      await p.stop();
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
