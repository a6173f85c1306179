// HTTP/1.1 clients to an HTTP/2 upstream (protocol: h2, Istio's h2UpgradePolicy: UPGRADE): their
// requests are multiplexed on the upstream's session pool, bodies stream both ways with HTTP/1.1
// framing back to the client, and retries, outlier detection and resets behave as for HTTP/2
// clients. The upstream is node:http2, counting sessions and streams.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2, { type ServerHttp2Stream } from 'node:http2';
import type net from 'node:net';
import { after, describe, test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import type { OutboundConfig } from '../config.js';
import { listen, metricValue, RawClient, startOutbound, type StartedProxy } from '../test-support.js';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants;

interface H2Upstream {
  port: number;
  sessions: number;
  streams: number;
  maxOpen: number;
  /** Streams by the headers they came with. */
  seen: http2.IncomingHttpHeaders[];
  /** 'ok' answers; 'refuse' refuses every stream; '503' answers 503. */
  mode: 'ok' | 'refuse' | '503';
  close(): Promise<void>;
}

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function h2Upstream(): Promise<H2Upstream> {
  const server = http2.createServer();
  const u = { sessions: 0, streams: 0, maxOpen: 0, seen: [], mode: 'ok' } as unknown as H2Upstream;
  let open = 0;
  let released = false;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => sockets.add(s));
  server.on('session', () => u.sessions++);
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    u.streams++;
    u.maxOpen = Math.max(u.maxOpen, ++open);
    u.seen.push(headers);
    stream.on('close', () => open--);
    stream.on('error', () => {});
    if (u.mode === 'refuse') {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (u.mode === '503') {
      stream.respond({ ':status': 503, 'content-length': 4 });
      stream.end('fail');
      return;
    }
    const path = String(headers[':path']);
    if (path.startsWith('/slow')) {
      // Held until ten streams are open at once: only multiplexing gets them all answered.
      const answer = () => {
        stream.respond({ ':status': 200, 'content-length': 2 });
        stream.end('ok');
      };
      const wait = setInterval(() => {
        if (open >= 10) released = true;
        if (released || stream.closed) {
          clearInterval(wait);
          if (!stream.closed) answer();
        }
      }, 5);
      return;
    }
    if (path.startsWith('/echo')) {
      // Streams the body back as it comes (no content-length: chunked to the client), with its digest as a trailer.
      const h = createHash('sha256');
      stream.respond(
        { ':status': 200, 'content-type': 'application/octet-stream' },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-digest': h.digest('hex') }));
      stream.on('data', (c: Buffer) => h.update(c));
      stream.pipe(stream);
      return;
    }
    if (path.startsWith('/big')) {
      const n = 4 * 1024 * 1024;
      stream.respond({ ':status': 200, 'content-length': n });
      stream.end(Buffer.alloc(n, 7));
      return;
    }
    if (path.startsWith('/cut')) {
      stream.respond({ ':status': 200 });
      stream.write('x'.repeat(100), () => {
        stream.write(Buffer.alloc(0));
        stream.close(NGHTTP2_INTERNAL_ERROR);
      });
      return;
    }
    if (path.startsWith('/reset')) {
      stream.close(NGHTTP2_INTERNAL_ERROR);
      return;
    }
    if (path.startsWith('/nocontent')) {
      stream.respond({ ':status': 204 }, { endStream: true });
      return;
    }
    stream.on('data', () => {});
    stream.on('end', () => {
      const body = `ok ${u.port} ${path}`;
      stream.respond({ ':status': 200, 'content-length': Buffer.byteLength(body), 'x-upstream': 'h2' });
      stream.end(headers[':method'] === 'HEAD' ? undefined : body);
    });
  });
  u.port = await listen(server);
  u.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  cleanups.push(() => u.close());
  return u;
}

async function proxy(ports: number[], extra: Record<string, unknown> = {}) {
  const p = await startOutbound({
    upstreams: { svc: { endpoints: ports.map((x) => `127.0.0.1:${x}`), protocol: 'h2', ...extra } },
  });
  cleanups.push(() => p.stop());
  return p;
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  trailers: http.IncomingHttpHeaders;
}

function send(
  port: number,
  path: string,
  opts: { method?: string; body?: Buffer; headers?: Record<string, string>; agent?: http.Agent } = {},
): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        port,
        host: '127.0.0.1',
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks),
            trailers: res.trailers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) {
      // Streamed in pieces, without a Content-Length unless the caller gave one: chunked.
      const b = opts.body;
      const step = 256 * 1024;
      let i = 0;
      const pump = (): void => {
        while (i < b.length) {
          const piece = b.subarray(i, i + step);
          i += step;
          if (!req.write(piece)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else req.end();
  });
}

const upstreamErrors = (p: StartedProxy<OutboundConfig>, kind: string) =>
  metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { upstream: 'svc', kind });

describe('HTTP/1.1 clients to an HTTP/2 upstream', () => {
  test('many keep-alive HTTP/1.1 connections are multiplexed on one HTTP/2 session', async () => {
    const u = await h2Upstream();
    const p = await proxy([u.port]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    cleanups.push(() => agent.destroy());
    // Ten at once, held by the upstream until all ten are open on its session.
    const slow = await Promise.all(Array.from({ length: 10 }, () => send(p.port(), '/svc/slow', { agent })));
    for (const r of slow) assert.equal(r.status, 200);
    const rest = await Promise.all(
      Array.from({ length: 40 }, (_, i) => send(p.port(), `/svc/item/${i}`, { agent })),
    );
    for (let i = 0; i < rest.length; i++) {
      assert.equal(rest[i]!.status, 200);
      assert.equal(rest[i]!.body.toString(), `ok ${u.port} /item/${i}`);
      assert.equal(rest[i]!.headers['x-upstream'], 'h2');
      assert.equal(rest[i]!.headers['content-length'], String(rest[i]!.body.length));
    }
    assert.equal(u.sessions, 1);
    assert.equal(u.streams, 50);
    assert.ok(u.maxOpen >= 10, `at most ${u.maxOpen} streams were open at once`);
    // Hop-by-hop fields stay on the client's hop.
    assert.equal(u.seen[10]!.connection, undefined);
    assert.equal(u.seen[10]!['keep-alive'], undefined);
  });

  test('large bodies stream both ways (chunked request, chunked response, trailers for TE: trailers)', async () => {
    const u = await h2Upstream();
    const p = await proxy([u.port]);
    const body = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(i, i);
    const digest = createHash('sha256').update(body).digest('hex');
    const r = await send(p.port(), '/svc/echo', { method: 'POST', body, headers: { te: 'trailers' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.ok(r.body.equals(body), `echoed ${r.body.length} bytes of ${body.length}`);
    assert.equal(r.trailers['x-digest'], digest);
    // Without TE: trailers the trailers are dropped; the body is whole.
    const r2 = await send(p.port(), '/svc/echo', { method: 'POST', body: body.subarray(0, 100_000) });
    assert.equal(r2.body.length, 100_000);
    assert.equal(r2.trailers['x-digest'], undefined);
    // A Content-Length request body, and a 4 MiB Content-Length response.
    const r3 = await send(p.port(), '/svc/echo', {
      method: 'PUT',
      body: body.subarray(0, 300_000),
      headers: { 'content-length': '300000' },
    });
    assert.ok(r3.body.equals(body.subarray(0, 300_000)));
    assert.equal(u.seen[2]!['content-length'], '300000');
    assert.equal(u.seen[0]!.te, 'trailers');
    assert.equal(u.seen[0]!['transfer-encoding'], undefined);
    const big = await send(p.port(), '/svc/big');
    assert.equal(big.headers['content-length'], String(4 * 1024 * 1024));
    assert.equal(big.body.length, 4 * 1024 * 1024);
  });

  test('HEAD, 204, Expect: 100-continue and pipelined requests on one connection', async () => {
    const u = await h2Upstream();
    const p = await proxy([u.port]);
    const c = await RawClient.connect(p.port());
    cleanups.push(() => c.destroy());
    c.write('HEAD /svc/h HTTP/1.1\r\nHost: a\r\n\r\nGET /svc/nocontent HTTP/1.1\r\nHost: a\r\n\r\n');
    const head = await c.readResponse({ head: true });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(`ok ${u.port} /h`.length));
    assert.equal(head.body.length, 0);
    const nc = await c.readResponse();
    assert.equal(nc.status, 204);
    c.write('POST /svc/e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    const cont = await c.readResponse();
    assert.equal(cont.status, 100);
    c.write('hello');
    const ok = await c.readResponse();
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), `ok ${u.port} /e`);
    assert.equal(u.seen.at(-1)!.expect, undefined);
    assert.equal(u.sessions, 1);
  });

  test('an upstream reset: 502 before the response, a closed connection (no last chunk) after', async () => {
    const u = await h2Upstream();
    const p = await proxy([u.port]);
    const r = await send(p.port(), '/svc/reset');
    assert.equal(r.status, 502);
    const c = await RawClient.connect(p.port());
    c.write('GET /svc/cut HTTP/1.1\r\nHost: a\r\n\r\n');
    const all = (await c.readAll()).toString('latin1');
    assert.match(all, /^HTTP\/1\.1 200 /);
    assert.match(all, /transfer-encoding: chunked/i);
    assert.ok(!all.endsWith('0\r\n\r\n'), 'a cut body must not end with a last chunk');
    assert.equal(await upstreamErrors(p, 'reset'), 2);
    // The session survives a stream's reset.
    assert.equal((await send(p.port(), '/svc/after')).status, 200);
    assert.equal(u.sessions, 1);
  });

  test('retries go to the other endpoint, with the attempt count', async () => {
    const bad = await h2Upstream();
    bad.mode = 'refuse';
    const good = await h2Upstream();
    const p = await proxy([bad.port, good.port], {
      retries: { attempts: 2, retryOn: 'refused-stream', backoff: { base: '1ms', max: '2ms' } },
    });
    for (let i = 0; i < 4; i++) {
      const r = await send(p.port(), `/svc/r/${i}`);
      assert.equal(r.status, 200);
      assert.match(r.body.toString(), new RegExp(`^ok ${good.port} `));
    }
    assert.ok(bad.streams >= 1);
    for (const h of bad.seen) assert.equal(h['x-pillion-attempt-count'], '1');
    const retriedOnes = good.seen.filter((h) => h['x-pillion-attempt-count'] === '2').length;
    assert.equal(retriedOnes, bad.streams);
    assert.equal(
      await metricValue(p.metrics, 'pillion_proxy_retries_total', { upstream: 'svc', outcome: 'retried' }),
      bad.streams,
    );
  });

  test('outlier detection ejects an endpoint answering 5xx to HTTP/1.1 clients', async () => {
    const bad = await h2Upstream();
    bad.mode = '503';
    const good = await h2Upstream();
    const p = await proxy([bad.port, good.port], {
      outlierDetection: {
        consecutive5xxErrors: 2,
        interval: '1h',
        baseEjectionTime: '1h',
        maxEjectionPercent: 50,
      },
    });
    let fails = 0;
    for (let i = 0; i < 20; i++) if ((await send(p.port(), `/svc/o/${i}`)).status === 503) fails++;
    assert.equal(fails, 2, 'two 503s eject the endpoint; the rest go to the other');
    await waitFor(
      async () =>
        (await metricValue(p.metrics, 'pillion_upstream_endpoints', {
          upstream: 'svc',
          state: 'ejected',
        })) === 1 || undefined,
      { what: 'the endpoint to show as ejected' },
    );
  });
});
