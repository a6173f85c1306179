// Regression: an upstream that goes away in the middle of a response body must never make the
// client see a complete response. An HTTP/2 client's stream is reset (never END_STREAM), an
// HTTP/1.1 client's connection is closed (never a keep-alive end); either way the failure is
// counted (pillion_proxy_upstream_errors_total{kind="reset"}) and flagged in the access log.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import http2, { type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { waitFor } from '../../lib/wait-for.js';
import type { OutboundConfig } from '../config.js';
import {
  get,
  listen,
  metricValue,
  RawClient,
  startBackend,
  startOutbound,
  type StartedProxy,
  logLines,
} from '../test-support.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants;

const dir = mkdtempSync(join(tmpdir(), 'pillion-truncation-'));
const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** An HTTP/1.1 upstream that promises a body and closes its connection (FIN) part-way. */
async function h1Cutter() {
  const b = await startBackend((req, res) => {
    const sock = res.socket as net.Socket;
    if (req.url?.endsWith('/length')) {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('x'.repeat(200), () => sock.end());
    } else {
      // Chunked, cut before the last chunk.
      res.writeHead(200);
      res.write('y'.repeat(200), () => sock.end());
    }
  });
  cleanups.push(() => b.close());
  return b.port;
}

/** An HTTP/2 upstream whose whole session dies in the middle of a response body. */
async function h2Cutter() {
  const server = http2.createServer();
  const live = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => sockets.add(s));
  server.on('session', (s) => {
    live.add(s);
    s.on('close', () => live.delete(s));
  });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200, 'content-length': 1000 });
    // The TCP connection goes, with no GOAWAY and no RST_STREAM: as a crashed upstream does.
    stream.write('z'.repeat(200), () => {
      for (const s of sockets) s.destroy();
    });
  });
  const port = await listen(server);
  cleanups.push(async () => {
    for (const s of live) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return port;
}

/** Warnings the proxy logs (upstream failures are logged at a rate limit). */
const warnings: Record<string, unknown>[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });

async function proxy(port: number, extra: Record<string, unknown>, log: string) {
  const p = await startOutbound(
    {
      upstreams: { svc: { endpoints: [`127.0.0.1:${port}`], ...extra } },
      accessLog: { path: log },
    },
    { logger },
  );
  cleanups.push(() => p.stop());
  return p;
}

const resets = (p: StartedProxy<OutboundConfig>) =>
  metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { upstream: 'svc', kind: 'reset' });

function h2Get(client: ClientHttp2Session, path: string) {
  return new Promise<{ status: number; bytes: number; ended: boolean; rst: number }>((resolve) => {
    const req = client.request({ ':path': path });
    let status = 0;
    let bytes = 0;
    let ended = false;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => (ended = true));
    req.on('error', () => {});
    req.on('close', () => resolve({ status, bytes, ended, rst: req.rstCode ?? NGHTTP2_NO_ERROR }));
  });
}

describe('an upstream that closes mid-body', () => {
  const cases: [string, string, 'h1' | 'h2', string][] = [
    ['HTTP/1.1 upstream, Content-Length 1000 cut after 200 bytes', '/svc/length', 'h1', 'UC'],
    ['HTTP/1.1 upstream, chunked body cut before its last chunk', '/svc/chunked', 'h1', 'UC'],
    ['HTTP/2 upstream whose session dies mid-stream', '/svc/x', 'h2', 'UC'],
  ];
  for (const [name, path, kind, flag] of cases) {
    test(`HTTP/2 client, ${name}: the client stream is reset, never ended cleanly`, async () => {
      const port = kind === 'h1' ? await h1Cutter() : await h2Cutter();
      const log = join(dir, `h2-${kind}-${path.slice(5)}.log`);
      const p = await proxy(port, kind === 'h2' ? { protocol: 'h2' } : {}, log);
      const client = http2.connect(`http://127.0.0.1:${p.port()}`);
      client.on('error', () => {});
      cleanups.push(() => client.destroy());
      const r = await h2Get(client, path);
      assert.equal(r.status, 200);
      assert.equal(r.ended, false, 'the truncated body must not end with END_STREAM');
      assert.equal(r.rst, NGHTTP2_INTERNAL_ERROR);
      assert.ok(r.bytes <= 200);
      assert.equal(await resets(p), 1);
      const lines = await waitFor(() => (logLines(log).length > 0 ? logLines(log) : undefined), {
        what: 'the access log line',
      });
      assert.equal(lines[0]!.response_flags, flag);
      assert.equal(lines[0]!.error, 'PILLION_ERR_PROXY_UPSTREAM_PROTOCOL');
      const warned = warnings.filter((w) => w.msg === 'upstream failure' && w.kind === 'reset');
      assert.ok(warned.length > 0, 'the failure is logged');
      warnings.length = 0;
    });
  }

  for (const [name, path] of [
    ['Content-Length 1000 cut after 200 bytes', '/svc/length'],
    ['chunked body cut before its last chunk', '/svc/chunked'],
  ] as const) {
    test(`HTTP/1.1 client, ${name}: the client connection closes, no clean keep-alive end`, async () => {
      const port = await h1Cutter();
      const log = join(dir, `h1-${path.slice(5)}.log`);
      const p = await proxy(port, {}, log);
      const c = await RawClient.connect(p.port());
      // Keep-alive: only a closed connection tells the client the body is incomplete.
      c.write(get(path));
      const all = (await c.readAll()).toString('latin1');
      assert.match(all, /^HTTP\/1\.1 200 /);
      if (path.endsWith('/length')) {
        assert.match(all, /content-length: 1000/i);
        assert.ok(all.endsWith('x'.repeat(200)));
      } else {
        assert.doesNotMatch(all, /\r\n0\r\n\r\n$/, 'no last chunk may be made up');
      }
      assert.equal(await resets(p), 1);
      const lines = await waitFor(() => (logLines(log).length > 0 ? logLines(log) : undefined), {
        what: 'the access log line',
      });
      assert.equal(lines[0]!.response_flags, 'UC');
    });
  }
});
