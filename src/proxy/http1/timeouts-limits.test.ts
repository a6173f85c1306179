// Timeouts, limits, the readiness gate and upstream failures, over real sockets. Timeouts are
// short (100-300 ms) since here the passing of time is the thing under test.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import { HealthSignal } from '../../runtime/health-signal.js';
import type { InboundSection } from '../inbound.js';
import {
  type Backend,
  echoBackend,
  freePort,
  get,
  metricValue,
  quiet,
  RawClient,
  rawRequest,
  type StartedProxy,
  startBackend,
  startInbound,
} from '../test-support.js';

const LISTEN = [{ address: '127.0.0.1:0' }];

const upstreamErrors = (p: StartedProxy<InboundSection>, upstream: string, kind: string) =>
  metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { section: 'inbound', upstream, kind });

/**
 * A port where a connect never completes, as at a black-holed address: a listener whose process
 * is stopped, with its accept queue filled, so the kernel drops further SYNs.
 */
async function blackhole(): Promise<{ port: number; close: () => void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>process.stdout.write(s.address().port+'\\n'))",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: net.Socket[] = [];
  const close = () => {
    for (const s of fillers) s.destroy();
    child.kill('SIGKILL');
  };
  try {
    const port = await new Promise<number>((resolve) =>
      child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    process.kill(child.pid!, 'SIGSTOP');
    for (;;) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      fillers.push(s);
      const connected = await new Promise<boolean>((resolve) => {
        s.once('connect', () => resolve(true));
        setTimeout(() => resolve(false), 100);
      });
      if (!connected) break;
      assert.ok(fillers.length < 100, 'the accept queue never filled');
    }
    return { port, close };
  } catch (err) {
    close();
    throw err;
  }
}

describe('timeouts', () => {
  let app: Backend;
  let proxy: StartedProxy<InboundSection>;
  /** Requests the backend holds without answering; released after each test file. */
  const held: (() => void)[] = [];
  before(async () => {
    app = await startBackend((req, res) => {
      if (req.url === '/hang') {
        held.push(() => res.destroy());
        return;
      }
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-length': 100 });
        res.write('only a part');
        held.push(() => res.destroy());
        return;
      }
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    proxy = await startInbound(
      {
        listeners: LISTEN,
        timeouts: { requestHead: '200ms', idle: '200ms', upstreamResponse: '200ms' },
      },
      { app: app.port },
    );
  });
  after(async () => {
    for (const release of held) release();
    await quiet(proxy);
    await proxy.stop();
    await app.close();
  });

  test('requestHead: a head that does not finish in time gets 408 and the connection closes', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('GET /slow HTTP/1.1\r\nHost: x\r\n');
    const t0 = Date.now();
    const res = await c.readResponse();
    assert.equal(res.status, 408);
    assert.ok(Date.now() - t0 >= 150, `answered after ${Date.now() - t0} ms`);
    assert.equal(res.headers.connection, 'close');
    assert.equal(await c.waitClosed(), true);
  });

  test('requestHead: trickling bytes does not extend the deadline', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('GET /slow HTTP/1.1\r\n');
    const timer = setInterval(() => c.write('X-A: b\r\n'), 20);
    try {
      const res = await c.readResponse();
      assert.equal(res.status, 408);
    } finally {
      clearInterval(timer);
      c.destroy();
    }
  });

  test('idle: a keep-alive connection with no request is closed', async () => {
    // A connection that never sends anything is closed the same way.
    const silent = await RawClient.connect(proxy.port());
    const c = await RawClient.connect(proxy.port());
    c.write(get('/'));
    assert.equal((await c.readResponse()).status, 200);
    const t0 = Date.now();
    assert.equal(await c.waitClosed(), true);
    assert.ok(Date.now() - t0 >= 150, `closed after ${Date.now() - t0} ms`);
    assert.equal(await silent.waitClosed(), true);
  });

  test('upstreamResponse: a backend that never answers gets 504', async () => {
    const before = await upstreamErrors(proxy, 'app', 'response_timeout');
    const c = await RawClient.connect(proxy.port());
    c.write(get('/hang'));
    const res = await c.readResponse();
    assert.equal(res.status, 504);
    assert.equal(await upstreamErrors(proxy, 'app', 'response_timeout'), before + 1);
    // The client connection stays usable: the request was complete.
    c.write(get('/'));
    assert.equal((await c.readResponse()).status, 200);
    c.destroy();
  });

  test('idle: a request body that stalls mid-way gets 408 (stream idle), not an endless wait', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf!');
    const res = await c.readResponse();
    assert.equal(res.status, 408);
    assert.equal(await c.waitClosed(), true);
  });

  test('idle: a response body that stalls mid-way is cut off (stream idle)', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/stall-body'));
    const all = (await c.readAll()).toString('latin1');
    assert.match(all, /^HTTP\/1\.1 200 /);
    assert.ok(all.endsWith('only a part'), all);
  });

  test('a client that half-closes inside a request body gets 400 at once', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf!');
    await new Promise((r) => setTimeout(r, 20)); // let the head go upstream first
    c.end();
    const res = await c.readResponse();
    // 400, not the 408 of the body timeout: the half-close was answered, not the timer.
    assert.equal(res.status, 400);
  });

  test('a client that half-closes inside a request head gets 400 at once', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('GET /x HTTP/1.1\r\nHost: x\r\n');
    c.end();
    const res = await c.readResponse();
    // 400, not the 408 of the head timeout: the half-close was answered, not the timer.
    assert.equal(res.status, 400);
  });

  test('request: a body that does not arrive in time gets 408', async () => {
    const p = await startInbound({ listeners: LISTEN, timeouts: { request: '250ms' } }, { app: app.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf!');
      const res = await c.readResponse();
      assert.equal(res.status, 408);
      assert.equal(await c.waitClosed(), true);
    } finally {
      await p.stop();
    }
  });

  test('request: a response head that does not come in time gets 504', async () => {
    const p = await startInbound({ listeners: LISTEN, timeouts: { request: '250ms' } }, { app: app.port });
    try {
      const res = await rawRequest(p.port(), get('/hang'));
      assert.equal(res.status, 504);
    } finally {
      await p.stop();
    }
  });

  test('request: a response body that stalls is cut off', async () => {
    const p = await startInbound({ listeners: LISTEN, timeouts: { request: '250ms' } }, { app: app.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/stall-body'));
      const all = (await c.readAll()).toString('latin1');
      assert.match(all, /^HTTP\/1\.1 200 /);
      assert.ok(all.endsWith('only a part'), all);
    } finally {
      await p.stop();
    }
  });

  test('a connect abandoned by a request timeout does not answer the next request', async () => {
    // Regression: the pool called back the connection that had started a connect even after that
    // request timed out, so the connect's late failure answered whatever request the client had
    // sent next with 504 "upstream connect timeout".
    const hole = await blackhole();
    try {
      const p = await startInbound(
        {
          listeners: LISTEN,
          // requestHead only makes deadlines checked every 10 ms, for sharp timings.
          timeouts: { request: '200ms', upstreamConnect: '300ms', requestHead: '40ms' },
          upstreams: { hole: { endpoints: [`127.0.0.1:${hole.port}`], pool: { maxConnections: 1 } } },
          routes: [{ upstream: 'hole' }],
        },
        {},
      );
      try {
        const c = await RawClient.connect(p.port());
        c.write(get('/1'));
        const first = await c.readResponse();
        assert.equal(first.status, 504);
        assert.equal(first.body.toString(), 'upstream response timeout\n');
        // Waits behind the first connect (the pool allows one), then connects on its own; its
        // own deadline (about 400 ms) comes before its own connect timeout (about 500 ms).
        c.write(get('/2'));
        const second = await c.readResponse();
        assert.equal(second.status, 504);
        assert.equal(second.body.toString(), 'upstream response timeout\n');
        c.destroy();
      } finally {
        await p.stop();
      }
    } finally {
      hole.close();
    }
  });

  test('upstreamConnect: an upstream that never completes the handshake gets 504', async () => {
    const hole = await blackhole();
    try {
      const p = await startInbound(
        {
          listeners: LISTEN,
          timeouts: { upstreamConnect: '150ms' },
          upstreams: { blackhole: { endpoints: [`127.0.0.1:${hole.port}`] } },
          routes: [{ upstream: 'blackhole' }],
        },
        {},
      );
      try {
        const t0 = Date.now();
        const res = await rawRequest(p.port(), get('/'));
        assert.equal(res.status, 504);
        assert.ok(Date.now() - t0 >= 100);
        assert.equal(await upstreamErrors(p, 'blackhole', 'connect_timeout'), 1);
      } finally {
        await p.stop();
      }
    } finally {
      hole.close();
    }
  });
});

describe('limits', () => {
  let app: Backend;
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    app = await echoBackend();
    proxy = await startInbound(
      {
        listeners: LISTEN,
        limits: { maxHeadSize: '1KiB', maxHeaders: 5, maxBodySize: '1KiB', maxConnections: 3 },
      },
      { app: app.port },
    );
  });
  after(async () => {
    await quiet(proxy);
    await proxy.stop();
    await app.close();
  });

  test('maxHeadSize: 431, complete or still arriving', async () => {
    const res = await rawRequest(proxy.port(), get('/', { 'X-Big': 'b'.repeat(2000) }));
    assert.equal(res.status, 431);
    assert.equal(res.headers.connection, 'close');
    const c = await RawClient.connect(proxy.port());
    c.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(2000)}`);
    assert.equal((await c.readResponse()).status, 431);
    c.destroy();
  });

  test('maxHeaders: 431', async () => {
    const ok = await rawRequest(proxy.port(), get('/', { A: '1', B: '2', C: '3', D: '4' }));
    assert.equal(ok.status, 200);
    const res = await rawRequest(proxy.port(), get('/', { A: '1', B: '2', C: '3', D: '4', E: '5' }));
    assert.equal(res.status, 431);
  });

  test('maxBodySize: 413 on Content-Length, without forwarding', async () => {
    const before = app.requests.length;
    const c = await RawClient.connect(proxy.port());
    c.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n${'z'.repeat(2000)}`);
    const res = await c.readResponse();
    assert.equal(res.status, 413);
    assert.equal(await c.waitClosed(), true);
    assert.equal(app.requests.length, before);
    const ok = await rawRequest(
      proxy.port(),
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n${'z'.repeat(1024)}`,
    );
    assert.equal(ok.status, 200);
  });

  test('maxBodySize: 413 on a chunked body that grows past it', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 5; i++) c.write(`200\r\n${'y'.repeat(512)}\r\n`);
    const res = await c.readResponse();
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, 'close');
    c.destroy();
  });

  test('maxConnections: connections over the limit are closed at once', async () => {
    const open: RawClient[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = await RawClient.connect(proxy.port());
        c.write(get('/'));
        assert.equal((await c.readResponse()).status, 200);
        open.push(c);
      }
      const extra = await RawClient.connect(proxy.port());
      extra.write(get('/'));
      assert.equal(await extra.waitClosed(), true);
      // A slot that frees up is usable again.
      open.pop()!.destroy();
      await waitFor(
        async () => {
          const r = await rawRequest(proxy.port(), get('/')).catch(() => undefined);
          return r?.status === 200;
        },
        { what: 'a freed connection slot' },
      );
    } finally {
      for (const c of open) c.destroy();
    }
  });
});

describe('upstream pool limits', () => {
  test('requests wait for a connection up to maxPending; more get 503', async () => {
    const held: (() => void)[] = [];
    const app = await startBackend((req, res) => {
      if (req.url === '/hold') held.push(() => res.end('held'));
      else res.end('ok');
    });
    const p = await startInbound(
      {
        listeners: LISTEN,
        upstreams: {
          narrow: { endpoints: [`127.0.0.1:${app.port}`], pool: { maxConnections: 1, maxPending: 1 } },
        },
        routes: [{ upstream: 'narrow' }],
      },
      {},
    );
    try {
      const first = await RawClient.connect(p.port());
      first.write(get('/hold'));
      await waitFor(() => held.length === 1, { what: 'the first request to reach the backend' });
      const waiting = await RawClient.connect(p.port());
      waiting.write(get('/queued'));
      const overflow = await rawRequest(p.port(), get('/overflow'));
      assert.equal(overflow.status, 503);
      assert.equal(await upstreamErrors(p, 'narrow', 'overflow'), 1);
      held[0]!();
      assert.equal((await first.readResponse()).body.toString(), 'held');
      assert.equal((await waiting.readResponse()).body.toString(), 'ok');
      assert.equal(app.connections, 1);
      first.destroy();
      waiting.destroy();
      await quiet(p);
    } finally {
      await p.stop();
      await app.close();
    }
  });

  test('a client that leaves while waiting for a connection gives up its place', async () => {
    // The client resets its connection while its request waits in the pool's queue; the request
    // must leave the queue and never be sent.
    const held: (() => void)[] = [];
    const app = await startBackend((req, res) => {
      if (req.url === '/hold') held.push(() => res.end('held'));
      else res.end('ok');
    });
    const p = await startInbound(
      {
        listeners: LISTEN,
        upstreams: {
          narrow: { endpoints: [`127.0.0.1:${app.port}`], pool: { maxConnections: 1, maxPending: 1 } },
        },
        routes: [{ upstream: 'narrow' }],
      },
      {},
    );
    try {
      const first = await RawClient.connect(p.port());
      first.write(get('/hold'));
      await waitFor(() => held.length === 1, { what: 'the first request to reach the backend' });
      const leaver = await RawClient.connect(p.port());
      leaver.write(get('/leaving'));
      await waitFor(async () => (await metricValue(p.metrics, 'pillion_proxy_active_requests', {})) === 2, {
        what: 'the second request to wait for a connection',
      });
      leaver.socket.resetAndDestroy();
      await waitFor(async () => (await metricValue(p.metrics, 'pillion_proxy_active_requests', {})) === 1, {
        what: 'the leaving request to be dropped',
      });
      // Its place in the queue is free again.
      const next = await RawClient.connect(p.port());
      next.write(get('/next'));
      held[0]!();
      assert.equal((await first.readResponse()).status, 200);
      assert.equal((await next.readResponse()).body.toString(), 'ok');
      assert.deepEqual(
        app.requests.map((r) => r.url),
        ['/hold', '/next'],
      );
      first.destroy();
      next.destroy();
      await quiet(p);
    } finally {
      await p.stop();
      await app.close();
    }
  });
});

describe('readiness gate', () => {
  test('503 with Retry-After until the app is healthy, then forwarded', async () => {
    const app = await echoBackend();
    const other = await echoBackend();
    const health = new HealthSignal(false, 'starting');
    const p = await startInbound(
      {
        listeners: LISTEN,
        upstreams: { other: { endpoints: [`127.0.0.1:${other.port}`] } },
        routes: [{ match: { prefix: '/other' }, upstream: 'other' }, {}],
      },
      { app: app.port, health },
    );
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/'));
      const res = await c.readResponse();
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(app.requests.length, 0);
      // Routes to other upstreams are not held.
      c.write(get('/other'));
      assert.equal((await c.readResponse()).status, 200);
      health.set(true);
      c.write(get('/'));
      assert.equal((await c.readResponse()).status, 200);
      assert.equal(app.requests.length, 1);
      c.destroy();
    } finally {
      await p.stop();
      await Promise.all([app.close(), other.close()]);
    }
  });
});

describe('upstream failures', () => {
  test('connect refused: 502, counted', async () => {
    const port = await freePort();
    const p = await startInbound({ listeners: LISTEN }, { app: port });
    try {
      const res = await rawRequest(p.port(), get('/'));
      assert.equal(res.status, 502);
      assert.equal(await upstreamErrors(p, 'app', 'connect_refused'), 1);
    } finally {
      await p.stop();
    }
  });

  test('a backend that resets mid-response: the client sees a truncated body; the proxy carries on', async () => {
    const app = await startBackend((req, res) => {
      if (req.url === '/reset') {
        res.writeHead(200, { 'content-length': 1000 });
        res.write('x'.repeat(100), () => setTimeout(() => res.socket?.resetAndDestroy(), 10));
        return;
      }
      res.end('fine');
    });
    const p = await startInbound({ listeners: LISTEN }, { app: app.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/reset'));
      const all = (await c.readAll()).toString('latin1');
      assert.match(all, /^HTTP\/1\.1 200 /);
      assert.ok(all.endsWith('x'.repeat(100)));
      assert.equal(await upstreamErrors(p, 'app', 'reset'), 1);
      assert.equal((await rawRequest(p.port(), get('/'))).body.toString(), 'fine');
    } finally {
      await p.stop();
      await app.close();
    }
  });

  test('a backend that closes before any response: 502', async () => {
    const app = await startBackend((_req, res) => res.socket?.destroy());
    const p = await startInbound({ listeners: LISTEN }, { app: app.port });
    try {
      const res = await rawRequest(p.port(), get('/'));
      assert.equal(res.status, 502);
    } finally {
      await p.stop();
      await app.close();
    }
  });

  test('an invalid response head from the backend: 502', async () => {
    const server = net.createServer((s) => {
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx'));
    });
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
    );
    const p = await startInbound({ listeners: LISTEN }, { app: port });
    try {
      const res = await rawRequest(p.port(), get('/'));
      assert.equal(res.status, 502);
      assert.equal(await upstreamErrors(p, 'app', 'protocol'), 1);
    } finally {
      await p.stop();
      server.close();
    }
  });

  test('a reused connection closed as the request goes out: retried once on a new connection', async () => {
    // Each connection answers its first request and closes on its second without a word: the
    // keep-alive race, made deterministic.
    let accepted = 0;
    const server = net.createServer((s) => {
      accepted++;
      let seen = 0;
      s.on('data', (b: Buffer) => {
        for (let i = b.indexOf('\r\n\r\n'); i !== -1; i = b.indexOf('\r\n\r\n', i + 4)) {
          if (++seen === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          else s.destroy();
        }
      });
    });
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
    );
    const p = await startInbound({ listeners: LISTEN }, { app: port });
    try {
      const c = await RawClient.connect(p.port());
      for (let i = 0; i < 3; i++) {
        c.write(get(`/${i}`));
        assert.equal((await c.readResponse()).status, 200);
      }
      assert.equal(accepted, 3);
      // A body cannot be sent twice: that request fails instead of being retried.
      c.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
      assert.equal((await c.readResponse()).status, 502);
      c.destroy();
    } finally {
      await p.stop();
      server.close();
    }
  });

  for (const kind of ['Connection: close', 'keepAliveTimeout 1ms'] as const) {
    test(`a backend that closes keep-alive connections (${kind}): no 502 over 200 requests`, async () => {
      const app = await startBackend(
        (_req, res) => {
          if (kind === 'Connection: close') res.setHeader('connection', 'close');
          res.end('ok');
        },
        kind === 'keepAliveTimeout 1ms' ? { keepAliveTimeout: 1 } : {},
      );
      const p = await startInbound({ listeners: LISTEN }, { app: app.port });
      try {
        const c = await RawClient.connect(p.port());
        const statuses = new Map<number, number>();
        for (let i = 0; i < 200; i++) {
          c.write(get(`/${i}`));
          const res = await c.readResponse();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          // Vary the gap around the backend's 1 ms keep-alive timer, to meet the close mid-request.
          if (i % 3 !== 0) await new Promise((r) => setTimeout(r, i % 3));
        }
        c.destroy();
        assert.deepEqual([...statuses], [[200, 200]]);
      } finally {
        await p.stop();
        await app.close();
      }
    });
  }
});
