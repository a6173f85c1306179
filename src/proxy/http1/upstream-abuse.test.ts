// Upstreams that break HTTP/1.1 in the response, over real sockets, to HTTP/1.1, HTTP/1.0 and
// HTTP/2 clients: chunked framing broken in the bytes that come with the head, and a flood of
// interim responses.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { InboundSection } from '../inbound.js';
import { get, listen, metricValue, RawClient, type StartedProxy, startInbound } from '../test-support.js';

/** What the upstream answers, by path: each request gets the bytes its path names. */
const ANSWERS: Record<string, (sock: net.Socket) => void> = {
  // Chunk size "ZZ": broken from the first byte after the head.
  '/bad-chunk': (s) =>
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n'),
  // A good chunk and a broken one in the same read: nothing has gone out when the break is seen.
  '/bad-second-chunk': (s) =>
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworldXX0\r\n\r\n'),
  // A good chunk; the broken one is written by the test once the client has the first.
  '/bad-later': (s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    held = s;
  },
  '/continue-flood': (s) => {
    const one = 'HTTP/1.1 100 Continue\r\n\r\n';
    // 2000 of them, in a few writes, then the final response.
    for (let i = 0; i < 4; i++) s.write(one.repeat(500));
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  },
  '/interims': (s) =>
    s.write(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n' +
        'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n' +
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ),
};

let upstream: net.Server;
/** The upstream connection of /bad-later, for the test to finish. */
let held: net.Socket | undefined;
let proxy: StartedProxy<InboundSection>;

before(async () => {
  upstream = net.createServer((sock) => {
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const path = buf.split(' ')[1]!;
      buf = '';
      (ANSWERS[path] ?? ((s: net.Socket) => s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')))(
        sock,
      );
    });
  });
  const port = await listen(upstream);
  proxy = await startInbound({ listeners: [{ address: '127.0.0.1:0' }] }, { app: port });
});

after(async () => {
  await proxy.stop();
  await new Promise((resolve) => upstream.close(resolve));
});

function protocolErrors(): Promise<number> {
  return metricValue(proxy.metrics, 'pillion_proxy_upstream_errors_total', { kind: 'protocol' });
}

function h2request(
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<{ status: number; interims: number[]; rst: number }> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${proxy.port()}`);
    s.on('error', reject);
    const interims: number[] = [];
    let status = 0;
    const req = s.request({ ':path': path, ...headers }, { endStream: true });
    req.on('headers', (h) => interims.push(Number(h[':status'])));
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('error', () => {});
    req.resume();
    req.on('close', () => {
      s.close();
      resolve({ status, interims, rst: req.rstCode });
    });
  });
}

describe('regression: a malformed chunked body from the upstream gave an empty reply instead of 502', () => {
  test('HTTP/1.1 client: 502, the broken bytes never forwarded', async () => {
    const before = await protocolErrors();
    const c = await RawClient.connect(proxy.port());
    c.write(get('/bad-chunk'));
    const res = await c.readResponse();
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /invalid chunked framing/);
    c.destroy();
    assert.equal(await protocolErrors(), before + 1);
  });

  test('HTTP/1.0 client (the body is de-chunked for it): 502', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write('GET /bad-chunk HTTP/1.0\r\nHost: test.local\r\n\r\n');
    assert.equal((await c.readResponse()).status, 502);
    c.destroy();
  });

  test('HTTP/2 client: 502, not a reset stream', async () => {
    const r = await h2request('/bad-chunk');
    assert.equal(r.status, 502);
  });

  test('a break further in the same read is still a 502: nothing had gone out', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/bad-second-chunk'));
    assert.equal((await c.readResponse()).status, 502);
    c.destroy();
    const d = await RawClient.connect(proxy.port());
    d.write('GET /bad-second-chunk HTTP/1.0\r\nHost: test.local\r\n\r\n');
    assert.equal((await d.readResponse()).status, 502, 'HTTP/1.0');
    d.destroy();
    assert.equal((await h2request('/bad-second-chunk')).status, 502, 'HTTP/2');
  });

  test('once body bytes have gone out, the client is cut off instead (nothing else is possible)', async () => {
    const sock = net.connect(proxy.port(), '127.0.0.1');
    let got = '';
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('hello\r\n') && held !== undefined) {
        held.write('5\r\nworldXX0\r\n\r\n');
        held = undefined;
      }
    });
    sock.write(get('/bad-later'));
    await closed;
    assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(!got.includes('world'), 'the broken chunk was forwarded');
    assert.ok(!got.includes('\r\n0\r\n\r\n'), 'the body looked complete');
  });
});

describe('regression: an upstream sending 2000 100 Continue responses had them all relayed', () => {
  test('HTTP/1.1 client: one 100 Continue relayed, then 502 after a few', async () => {
    const before = await protocolErrors();
    const c = await RawClient.connect(proxy.port());
    c.write(get('/continue-flood', { Expect: '100-continue', 'Content-Length': '0' }));
    const first = await c.readResponse();
    assert.equal(first.status, 100);
    const final = await c.readResponse();
    assert.equal(final.status, 502);
    assert.match(final.body.toString(), /more than 8 interim \(1xx\) responses/);
    c.destroy();
    assert.equal(await protocolErrors(), before + 1);
  });

  test('HTTP/2 client: at most one interim response, then 502', async () => {
    const r = await h2request('/continue-flood', { expect: '100-continue' });
    assert.equal(r.status, 502);
    assert.ok(r.interims.length <= 1, `${r.interims.length} interim responses`);
  });

  test('a repeated 100 is relayed once; 103 Early Hints pass', async () => {
    const c = await RawClient.connect(proxy.port());
    c.write(get('/interims', { Expect: '100-continue', 'Content-Length': '0' }));
    assert.equal((await c.readResponse()).status, 100);
    const hints = await c.readResponse();
    assert.equal(hints.status, 103);
    assert.equal(hints.headers.link, '</a.css>; rel=preload');
    const final = await c.readResponse();
    assert.equal(final.status, 200);
    assert.equal(final.body.toString(), 'ok');
    c.destroy();
  });
});
