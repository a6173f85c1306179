// Bodies through the proxy over real sockets: 100 MB each way with bounded memory, chunked bodies
// with trailers, Expect: 100-continue, WebSocket upgrades, and backpressure that outlives a
// response.

import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket, WebSocketServer } from 'ws';
import { waitFor } from '../../lib/wait-for.js';
import type { InboundSection } from '../inbound.js';
import {
  type Backend,
  echoBackend,
  get,
  metricValue,
  RawClient,
  rawRequest,
  type StartedProxy,
  startBackend,
  startInbound,
} from '../test-support.js';

const LISTEN = [{ address: '127.0.0.1:0' }];
const MB = 1024 * 1024;
const TOTAL = 100 * MB;
const BLOCK = Buffer.alloc(256 * 1024, 'x');

// A collection before each sample, so the samples count live buffers rather than garbage not yet
// collected (a minor one: the socket buffers die young, and a full one per sample is too slow).
setFlagsFromString('--expose-gc');
/**
 * Far below the 100 MB that crosses, so a proxy that held a body would fail; with room above the
 * 20-45 MB measured, since socket buffers promoted before a minor collection are counted until a
 * full one, and a busy machine (tests run two at a time) promotes more of them.
 */
const GROWTH_BOUND = 64 * 1024 * 1024;
const gc = runInNewContext('gc') as (opts?: { type: 'minor' | 'major' }) => void;

/** Samples memory while fn runs; returns the largest growth over the baseline, in bytes. */
async function peakGrowth(fn: () => Promise<void>): Promise<{ rss: number; arrayBuffers: number }> {
  gc();
  const base = process.memoryUsage();
  const peak = { rss: 0, arrayBuffers: 0 };
  const sample = () => {
    gc({ type: 'minor' });
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss - base.rss);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers - base.arrayBuffers);
  };
  const timer = setInterval(sample, 10);
  try {
    await fn();
  } finally {
    clearInterval(timer);
    sample();
  }
  return peak;
}

/** Writes `total` bytes of BLOCKs to a writable, waiting for drain: never more than one block queued. */
async function pump(w: NodeJS.WritableStream, total: number): Promise<void> {
  for (let sent = 0; sent < total; sent += BLOCK.length) {
    const n = Math.min(BLOCK.length, total - sent);
    if (!w.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n)))
      await new Promise((resolve) => w.once('drain', resolve));
  }
}

/** A request through node:http with agent: false; resolves status, headers and the byte count. */
function request(
  port: number,
  opts: http.RequestOptions,
  body?: (req: http.ClientRequest) => Promise<void>,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent: false, ...opts }, (res) => {
      let bytes = 0;
      let text = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (text.length < 1000) text += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body(req).then(() => req.end(), reject);
    else req.end();
  });
}

describe('100 MB bodies with bounded memory', () => {
  let app: Backend;
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    app = await startBackend((req, res) => {
      const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? '0');
      const chunked = req.url?.includes('chunked') ?? false;
      let received = 0;
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => {
        if (size === 0) {
          res.end(String(received));
          return;
        }
        if (!chunked) res.setHeader('content-length', size);
        res.writeHead(200);
        pump(res, size).then(
          () => res.end(),
          () => res.destroy(),
        );
      });
    });
    proxy = await startInbound({ listeners: LISTEN }, { app: app.port });
  });
  after(async () => {
    await proxy.stop();
    await app.close();
  });

  for (const chunked of [false, true]) {
    const framing = chunked ? 'chunked' : 'Content-Length';
    test(`upload of 100 MB (${framing})`, async () => {
      let res: { status: number; text: string } | undefined;
      const growth = await peakGrowth(async () => {
        res = await request(
          proxy.port(),
          { method: 'POST', path: '/up', headers: chunked ? {} : { 'content-length': TOTAL } },
          (req) => pump(req, TOTAL),
        );
      });
      assert.equal(res?.status, 200);
      assert.equal(res?.text, String(TOTAL));
      assert.ok(growth.arrayBuffers < GROWTH_BOUND, `arrayBuffers grew by ${growth.arrayBuffers}`);
      assert.ok(growth.rss < 80 * MB, `rss grew by ${growth.rss}`);
    });

    test(`download of 100 MB (${framing})`, async () => {
      let res: { status: number; bytes: number; headers: http.IncomingHttpHeaders } | undefined;
      const growth = await peakGrowth(async () => {
        res = await request(proxy.port(), { path: `/down?size=${TOTAL}${chunked ? '&chunked' : ''}` });
      });
      assert.equal(res?.status, 200);
      assert.equal(res?.bytes, TOTAL);
      assert.equal(res?.headers['transfer-encoding'], chunked ? 'chunked' : undefined);
      assert.ok(growth.arrayBuffers < GROWTH_BOUND, `arrayBuffers grew by ${growth.arrayBuffers}`);
      assert.ok(growth.rss < 80 * MB, `rss grew by ${growth.rss}`);
    });
  }

  test('an HTTP/1.0 client that stops reading a de-chunked 100 MB response: memory stays bounded', async () => {
    // Regression: the body de-chunked for an HTTP/1.0 client was written without looking at the
    // client's backpressure, so a slow client made the proxy buffer the whole response.
    const c = await RawClient.connect(proxy.port());
    const socket: net.Socket = c.socket;
    socket.removeAllListeners('data');
    let received = 0;
    const growth = await peakGrowth(async () => {
      socket.pause();
      socket.write(`GET /down?size=${TOTAL}&chunked HTTP/1.0\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 300));
      socket.on('data', (b: Buffer) => (received += b.length));
      socket.resume();
      await new Promise<void>((resolve) => socket.once('end', () => resolve()));
    });
    socket.destroy();
    assert.ok(received > TOTAL && received < TOTAL + 1000, `received ${received}`);
    assert.ok(growth.arrayBuffers < GROWTH_BOUND, `arrayBuffers grew by ${growth.arrayBuffers}`);
  });

  test('a slow reader: the pooled upstream connection is usable after the response', async () => {
    // Regression: a response whose last bytes met client backpressure left the upstream socket
    // paused when it went back to the pool, and the next request on it never got its response.
    const p = await startInbound(
      { listeners: LISTEN, timeouts: { upstreamResponse: '2s' } },
      { app: app.port },
    );
    try {
      for (let round = 0; round < 3; round++) {
        const c = await RawClient.connect(p.port());
        c.write(get(`/down?size=${4 * MB}`, { Connection: 'close' }));
        const socket: net.Socket = c.socket;
        // Read in small sips so the proxy keeps meeting a full socket.
        socket.on('data', () => {
          socket.pause();
          setTimeout(() => socket.resume(), 1);
        });
        const res = await c.readResponse();
        assert.equal(res.body.length, 4 * MB);
        const small = await rawRequest(p.port(), get('/up'));
        assert.equal(small.status, 200);
      }
    } finally {
      await p.stop();
    }
  });
});

describe('chunked bodies, trailers and 100-continue', () => {
  let app: Backend;
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    app = await startBackend((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts).toString();
        if (req.url === '/trailers') {
          res.setHeader('Trailer', 'x-checksum');
          res.write(`got ${body.length} bytes; `);
          res.write(`trailer ${req.trailers['x-sum'] ?? 'none'}`);
          res.addTrailers({ 'x-checksum': 'abc123' });
          res.end();
          return;
        }
        res.end(`body=${body}`);
      });
    });
    proxy = await startInbound({ listeners: LISTEN, limits: { maxBodySize: '1KiB' } }, { app: app.port });
  });
  after(async () => {
    await proxy.stop();
    await app.close();
  });

  test('a chunked request with trailers and a chunked response with trailers arrive intact', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(
      'POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n' +
        '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n',
    );
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.body.toString(), 'got 11 bytes; trailer 42');
    assert.deepEqual(res.trailers, { 'x-checksum': 'abc123' });
    // Still in sync: the next request on the connection works.
    c.write(get('/next'));
    assert.equal((await c.readResponse()).body.toString(), 'body=');
    c.destroy();
  });

  test('a chunked request split at every byte', async () => {
    const c = await RawClient.connect(proxy.port());
    const req = Buffer.from(
      'POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    );
    for (let i = 0; i < req.length; i++) {
      c.write(req.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal((await c.readResponse()).body.toString(), 'body=abcde');
    c.destroy();
  });

  test('Expect: 100-continue: the 100 is relayed before the body is sent', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    const interim = await c.readResponse();
    assert.equal(interim.status, 100);
    c.write('hello');
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'body=hello');
    c.destroy();
  });

  test('Expect: 100-continue with a body over the limit: 413 without the body, nothing forwarded', async () => {
    const before = app.requests.length;
    const c = await RawClient.connect(proxy.port());
    c.write('POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\nExpect: 100-continue\r\n\r\n');
    const res = await c.readResponse();
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, 'close');
    assert.equal(await c.waitClosed(), true);
    assert.equal(app.requests.length, before);
  });
});

describe('WebSocket', () => {
  let app: Backend;
  let wss: WebSocketServer;
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    app = await echoBackend();
    wss = new WebSocketServer({ server: app.server });
    wss.on('connection', (ws, req) => {
      ws.send(`hello ${req.url} ${req.headers['x-forwarded-for']}`);
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
    proxy = await startInbound({ listeners: LISTEN }, { app: app.port });
  });
  after(async () => {
    await proxy.stop();
    wss.close();
    await app.close();
  });

  test('echo through the proxy, text and a 4 MB binary message, then close', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port()}/chat?room=1`);
    const inbox: (string | Buffer)[] = [];
    let wake: (() => void) | undefined;
    ws.on('message', (data: Buffer, binary: boolean) => {
      inbox.push(binary ? data : data.toString());
      wake?.();
    });
    const next = async () => {
      while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
      return inbox.shift()!;
    };
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    assert.equal(await next(), 'hello /chat?room=1 127.0.0.1');
    for (let i = 0; i < 20; i++) {
      ws.send(`message ${i}`);
      assert.equal(await next(), `message ${i}`);
    }
    const big = Buffer.alloc(4 * MB, 7);
    ws.send(big);
    const back = (await next()) as Buffer;
    assert.equal(back.length, big.length);
    assert.ok(back.equals(big));
    const closed = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
    ws.close(1000);
    assert.equal(await closed, 1000);
    await waitFor(
      async () =>
        (await metricValue(proxy.metrics, 'pillion_proxy_active_connections', { section: 'inbound' })) === 0,
      { what: 'the tunnel to close on the proxy' },
    );
  });

  test('an upgrade the backend does not take is an ordinary response; the connection stays HTTP', async () => {
    const plain = await echoBackend();
    const p = await startInbound({ listeners: LISTEN }, { app: plain.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/not-ws', { Connection: 'Upgrade', Upgrade: 'something-else' }));
      const res = await c.readResponse();
      assert.equal(res.status, 200);
      c.write(get('/after'));
      assert.equal((await c.readResponse()).status, 200);
      c.destroy();
    } finally {
      await p.stop();
      await plain.close();
    }
  });
});
