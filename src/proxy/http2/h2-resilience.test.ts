// Retries, per-try timeouts and route timeouts for requests from HTTP/2 clients, to HTTP/1.1 and
// to HTTP/2 upstreams that fail on command (503s, resets, refused streams, GOAWAY, hangs), and the
// per-endpoint accounting of both kinds of leg (outlier detection, latency, /clusters counters).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import http2, { type ClientHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import type { OutboundConfig } from '../config.js';
import {
  type Backend,
  listen,
  metricValue,
  startBackend,
  startOutbound,
  type StartedProxy,
  logLines,
} from '../test-support.js';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

const dir = mkdtempSync(join(tmpdir(), 'pillion-h2-retries-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Mode = 'ok' | '503' | 'reset' | 'refuse' | 'goaway' | 'hang' | 'cut';

interface Flaky {
  port: number;
  mode: Mode;
  /** Each request's x-pillion-attempt-count and body size. */
  seen: { attempt: string; bytes: number }[];
  /** HTTP/2 sessions accepted (HTTP/2 backends), or TCP connections (HTTP/1.1 ones). */
  sessions: number;
  close(): Promise<void>;
}

/** An HTTP/1.1 backend whose answer the test sets. */
async function h1Flaky(mode: Mode): Promise<Flaky> {
  const seen: Flaky['seen'] = [];
  const f = { mode, seen } as Flaky & { b: Backend };
  const b = await startBackend((req: http.IncomingMessage, res: http.ServerResponse) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.push({ attempt: String(req.headers['x-pillion-attempt-count'] ?? ''), bytes });
      if (f.mode === 'ok') {
        const body = `ok ${req.socket.localPort} ${bytes}`;
        res.writeHead(200, { 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else if (f.mode === 'hang') return;
      else if (f.mode === 'reset') req.socket.destroy();
      else {
        res.writeHead(503, { 'content-length': 4 });
        res.end('fail');
      }
    });
  });
  return Object.assign(f, {
    port: b.port,
    get sessions() {
      return b.connections;
    },
    close: () => b.close(),
  });
}

/** A node:http2 (h2c) backend whose answer the test sets; it counts sessions and streams. */
async function h2Flaky(mode: Mode): Promise<Flaky & { streams: number; maxOpen: number }> {
  const server = http2.createServer();
  const f = { mode, seen: [], sessions: 0, streams: 0, maxOpen: 0, port: 0 } as unknown as Flaky & {
    streams: number;
    maxOpen: number;
  };
  let open = 0;
  let held: ServerHttp2Stream | undefined;
  const live = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    f.sessions++;
    live.add(s);
    s.on('close', () => live.delete(s));
  });
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    f.streams++;
    f.maxOpen = Math.max(f.maxOpen, ++open);
    stream.on('close', () => open--);
    stream.on('error', () => {});
    const attempt = String(headers['x-pillion-attempt-count'] ?? '');
    if (f.mode === 'refuse') {
      f.seen.push({ attempt, bytes: 0 });
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (f.mode === 'goaway') {
      // Once: the first stream is held until a second comes; then GOAWAY names the first as the
      // last one processed (the second is refused) and the first is answered.
      f.seen.push({ attempt, bytes: 0 });
      if (held === undefined) {
        held = stream;
        return;
      }
      f.mode = 'ok';
      stream.session?.goaway(NGHTTP2_NO_ERROR, held.id!);
      held.respond({ ':status': 200, 'content-length': 4 });
      held.end('held');
      return;
    }
    let bytes = 0;
    stream.on('data', (c: Buffer) => (bytes += c.length));
    stream.on('end', () => {
      f.seen.push({ attempt, bytes });
      switch (f.mode) {
        case 'ok': {
          const body = `ok ${f.port} ${bytes}`;
          stream.respond({ ':status': 200, 'content-length': Buffer.byteLength(body) });
          stream.end(body);
          return;
        }
        case 'hang':
          return;
        case 'reset':
          stream.close(NGHTTP2_INTERNAL_ERROR);
          return;
        case 'cut':
          stream.respond({ ':status': 200 });
          stream.write('x'.repeat(100), () => {
            // A write in flight, so node sends no END_STREAM before the reset.
            stream.write(Buffer.alloc(0));
            stream.close(NGHTTP2_INTERNAL_ERROR);
          });
          return;
        default:
          stream.respond({ ':status': 503, 'content-length': 4 });
          stream.end('fail');
      }
    });
  });
  f.port = await listen(server);
  f.close = async () => {
    for (const s of live) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return f;
}

const proxies: StartedProxy<OutboundConfig>[] = [];
const backends: Flaky[] = [];
const clients: ClientHttp2Session[] = [];
after(async () => {
  for (const c of clients) c.destroy();
  for (const p of proxies) await p.stop();
  for (const b of backends) await b.close();
});

async function proxy(ports: number[], upstream: Record<string, unknown>, log?: string) {
  const p = await startOutbound({
    upstreams: { svc: { endpoints: ports.map((e) => `127.0.0.1:${e}`), ...upstream } },
    ...(log !== undefined ? { accessLog: { path: log } } : {}),
  });
  proxies.push(p);
  const client = http2.connect(`http://127.0.0.1:${p.port()}`);
  client.on('error', () => {});
  clients.push(client);
  return { p, client };
}

interface H2Response {
  status: number;
  body: string;
  /** The stream's RST_STREAM code when it was reset instead of completed. */
  reset?: number;
}

function request(client: ClientHttp2Session, path: string, body?: Buffer): Promise<H2Response> {
  return new Promise((resolve) => {
    const req = client.request(
      { ':method': body ? 'POST' : 'GET', ':path': path, 'x-pillion-attempt-count': '99' },
      { endStream: body === undefined },
    );
    let status = 0;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('close', () => {
      const r: H2Response = { status, body: Buffer.concat(chunks).toString() };
      if (req.rstCode !== NGHTTP2_NO_ERROR) r.reset = req.rstCode;
      resolve(r);
    });
    if (body) {
      // In two pieces, so the body is kept as it came.
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    }
  });
}

const FAST = { base: '1ms', max: '2ms' };
const retried = (p: StartedProxy<OutboundConfig>, outcome: string) =>
  metricValue(p.metrics, 'pillion_proxy_retries_total', { upstream: 'svc', outcome });

async function pair(kind: 'h1' | 'h2', first: Mode, second: Mode) {
  const make = kind === 'h1' ? h1Flaky : h2Flaky;
  const a = await make(first);
  const b = await make(second);
  backends.push(a, b);
  return [a, b] as const;
}

const protocol = (kind: 'h1' | 'h2') => (kind === 'h2' ? { protocol: 'h2' } : {});

for (const kind of ['h1', 'h2'] as const) {
  describe(`HTTP/2 clients, ${kind === 'h1' ? 'HTTP/1.1' : 'HTTP/2'} upstream: retries and timeouts`, () => {
    const cases: [string, Mode, string][] =
      kind === 'h1'
        ? [
            ['5xx', '503', '503'],
            ['reset', 'reset', 'UC'],
          ]
        : [
            ['5xx', '503', '503'],
            ['reset', 'reset', 'UR'],
            ['refused-stream', 'refuse', 'UR'],
          ];
    for (const [retryOn, mode, flag] of cases) {
      test(`${retryOn} (${mode}): retried on the other endpoint, with the attempt count and the access log`, async () => {
        const [bad, good] = await pair(kind, mode, 'ok');
        const log = join(dir, `${kind}-${retryOn}-${mode}.log`);
        const { p, client } = await proxy(
          [bad.port, good.port],
          { ...protocol(kind), retries: { attempts: 2, retryOn, backoff: FAST } },
          log,
        );
        for (let i = 0; i < 3; i++) {
          const r = await request(client, `/svc/item/${i}`);
          assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body}`);
          assert.match(r.body, new RegExp(`^ok ${good.port} `));
        }
        assert.deepEqual(
          bad.seen.map((s) => s.attempt),
          ['1', '1', '1'],
        );
        assert.deepEqual(
          good.seen.map((s) => s.attempt),
          ['2', '2', '2'],
        );
        assert.equal(await retried(p, 'retried'), 3);
        await waitFor(() => logLines(log).length === 3, { what: 'three access log lines' });
        for (const l of logLines(log)) {
          assert.equal(l.protocol, 'HTTP/2');
          assert.equal(l.upstream_attempts, 2);
          assert.equal(l.attempt_flags, flag);
          assert.equal(l.response_flags, '-');
        }
        // Both legs count per endpoint, as HTTP/1.1 clients do.
        const [c] = p.module.clusters();
        assert.equal(c!.stats.rq_2xx, 3);
        assert.equal(c!.stats.rq_retry, 3);
        assert.equal(c!.stats.rq_active, 0);
        const byPort = new Map(c!.endpoints.map((e) => [Number(e.address.split(':')[1]), e]));
        assert.equal(byPort.get(bad.port)!.rq_total, 3);
        assert.equal(byPort.get(good.port)!.rq_total, 3);
        assert.equal(byPort.get(good.port)!.rq_active, 0);
      });
    }

    test('a failure retryOn does not name reaches the client as it is', async () => {
      const [bad] = await pair(kind, kind === 'h2' ? 'reset' : '503', 'ok');
      const { p, client } = await proxy([bad.port], {
        ...protocol(kind),
        retries: { retryOn: 'refused-stream', backoff: FAST },
      });
      const r = await request(client, '/svc/x');
      assert.equal(r.status, kind === 'h2' ? 502 : 503);
      assert.equal(bad.seen.length, 1);
      assert.equal(await retried(p, 'not_retriable'), kind === 'h2' ? 1 : 0);
    });

    test('attempts bounds the tries: the last failure reaches the client with URX', async () => {
      const [bad] = await pair(kind, '503', 'ok');
      const log = join(dir, `${kind}-urx.log`);
      const { p, client } = await proxy(
        [bad.port],
        { ...protocol(kind), retries: { attempts: 2, retryOn: '5xx', backoff: FAST } },
        log,
      );
      const r = await request(client, '/svc/x');
      assert.equal(r.status, 503);
      assert.deepEqual(
        bad.seen.map((s) => s.attempt),
        ['1', '2', '3'],
      );
      assert.equal(await retried(p, 'attempts_exhausted'), 1);
      await waitFor(() => logLines(log).length === 1, { what: 'the access log line' });
      const [l] = logLines(log);
      assert.equal(l!.attempt_flags, '503,503,503');
      assert.equal(l!.response_flags, 'URX');
    });

    test('perTryTimeout abandons a hanging try; the route timeout bounds all tries (504 UT)', async () => {
      const [slow, good] = await pair(kind, 'hang', 'ok');
      const { p, client } = await proxy([slow.port, good.port], {
        ...protocol(kind),
        retries: { retryOn: 'reset', perTryTimeout: '150ms', backoff: FAST },
      });
      const r = await request(client, '/svc/x');
      assert.equal(r.status, 200);
      assert.deepEqual(
        slow.seen.map((s) => s.attempt),
        ['1'],
      );
      assert.deepEqual(
        good.seen.map((s) => s.attempt),
        ['2'],
      );
      assert.equal(
        await metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { kind: 'per_try_timeout' }),
        1,
      );
      const { client: c2 } = await proxy([slow.port], {
        ...protocol(kind),
        timeout: '200ms',
        retries: { retryOn: 'reset', perTryTimeout: '150ms', attempts: 5, backoff: FAST },
      });
      const t = await request(c2, '/svc/x');
      assert.equal(t.status, 504);
      assert.match(t.body, /timeout/);
    });

    test('the route timeout alone (no retries) answers 504 UT', async () => {
      const [slow] = await pair(kind, 'hang', 'ok');
      const { client } = await proxy([slow.port], { ...protocol(kind), timeout: '150ms' });
      const r = await request(client, '/svc/x');
      assert.equal(r.status, 504);
      assert.equal(slow.seen.length, 1);
    });

    test('a small body is kept and sent again whole; one over maxBodySize is sent once', async () => {
      const [bad, good] = await pair(kind, '503', 'ok');
      const { p, client } = await proxy([bad.port, good.port], {
        ...protocol(kind),
        retries: { retryOn: '5xx', maxBodySize: '1KiB', backoff: FAST },
      });
      const small = await request(client, '/svc/x', Buffer.alloc(600, 0x61));
      assert.equal(small.status, 200);
      assert.equal(small.body, `ok ${good.port} 600`);
      assert.deepEqual(good.seen.at(-1), { attempt: '2', bytes: 600 });
      const big = await request(client, '/svc/x', Buffer.alloc(4096, 0x61));
      assert.equal(big.status, 503);
      assert.equal(await retried(p, 'body_too_large'), 1);
      assert.deepEqual(bad.seen.at(-1), { attempt: '1', bytes: 4096 });
    });
  });
}

test('refused-stream: a stream above the last one a GOAWAY says was processed is sent again', async () => {
  const [up] = await pair('h2', 'goaway', 'ok');
  const log = join(dir, 'goaway.log');
  const { p, client } = await proxy(
    [up.port],
    { protocol: 'h2', retries: { retryOn: 'refused-stream', backoff: FAST } },
    log,
  );
  const first = request(client, '/svc/1');
  await waitFor(() => up.seen.length === 1, { what: 'the first stream at the backend' });
  const second = request(client, '/svc/2');
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.status, 200);
  assert.equal(a.body, 'held');
  assert.equal(b.status, 200, b.body);
  assert.match(b.body, /^ok /);
  assert.deepEqual(
    up.seen.map((s) => s.attempt),
    ['1', '1', '2'],
  );
  assert.equal(await retried(p, 'retried'), 1);
  await waitFor(() => logLines(log).length === 2, { what: 'two access log lines' });
  assert.deepEqual(
    logLines(log)
      .map((l) => l.attempt_flags)
      .sort(),
    ['', 'UR'],
  );
});

test('HTTP/2 upstream: a response already streaming to the client is never retried', async () => {
  const [cut, good] = await pair('h2', 'cut', 'ok');
  const { client } = await proxy([cut.port, good.port], {
    protocol: 'h2',
    retries: { retryOn: '5xx,reset', backoff: FAST },
  });
  const r = await request(client, '/svc/x');
  assert.equal(r.status, 200);
  assert.ok(r.reset !== undefined, `the client stream is reset: ${JSON.stringify(r)}`);
  assert.equal(cut.seen.length, 1);
  assert.equal(good.seen.length, 0);
});

test('HTTP/2 clients: the retry budget stops a storm, and counts what it refused', async () => {
  const [bad] = await pair('h2', '503', 'ok');
  const { p, client } = await proxy([bad.port], {
    protocol: 'h2',
    retries: { attempts: 3, retryOn: '5xx', backoff: FAST },
    retryBudget: { ratio: 0.2, minRetriesPerSecond: 0, window: '60s' },
  });
  for (let i = 0; i < 30; i++) assert.equal((await request(client, '/svc/x')).status, 503);
  // 30 requests, retries at most 20 % of them: at most 36 sent instead of 120.
  assert.ok(bad.seen.length <= 36 && bad.seen.length >= 33, `sent ${bad.seen.length}`);
  assert.ok((await retried(p, 'budget_exhausted')) >= 24);
  assert.ok(p.module.clusters()[0]!.stats.rq_retry_budget_exhausted! >= 24);
});

describe('HTTP/2 legs feed the per-endpoint accounting', () => {
  for (const kind of ['h1', 'h2'] as const) {
    test(`${kind === 'h1' ? 'HTTP/1.1' : 'HTTP/2'} upstream: outlier detection ejects an endpoint answering 503s to HTTP/2 clients`, async () => {
      const [bad, good] = await pair(kind, '503', 'ok');
      const { p, client } = await proxy([bad.port, good.port], {
        ...protocol(kind),
        outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: '10m', maxEjectionPercent: 50 },
      });
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push((await request(client, '/svc/x')).status);
      assert.equal(statuses.filter((s) => s === 503).length, 3);
      assert.equal(bad.seen.length, 3);
      assert.equal(good.seen.length, 17);
      const [c] = p.module.clusters();
      assert.equal(c!.stats.ejections, 1);
      assert.equal(c!.stats.rq_5xx, 3);
      assert.equal(c!.stats.rq_2xx, 17);
      const byPort = new Map(c!.endpoints.map((e) => [Number(e.address.split(':')[1]), e]));
      assert.equal(byPort.get(bad.port)!.health, 'ejected');
      assert.equal(byPort.get(good.port)!.rq_total, 17);
      const m = (name: string, labels: Record<string, string>) => metricValue(p.metrics, name, labels);
      assert.equal(await m('pillion_upstream_responses_total', { upstream: 'svc', code_class: '2xx' }), 17);
      assert.equal(await m('pillion_upstream_response_time_seconds_count', { upstream: 'svc' }), 20);
      assert.equal(
        await m('pillion_upstream_endpoint_requests_total', { endpoint: `127.0.0.1:${bad.port}` }),
        3,
      );
    });

    test(`${kind === 'h1' ? 'HTTP/1.1' : 'HTTP/2'} upstream: peak-ewma sees the latency of HTTP/2 clients' requests`, async () => {
      const [ok] = await pair(kind, 'ok', 'ok');
      const { p, client } = await proxy([ok.port], {
        ...protocol(kind),
        loadBalancer: { policy: 'peak-ewma' },
      });
      for (let i = 0; i < 3; i++) assert.equal((await request(client, '/svc/x')).status, 200);
      const e = p.module.clusters()[0]!.endpoints[0]!;
      assert.ok(e.latency_ewma_ms! > 0);
      assert.equal(e.rq_total, 3);
      assert.equal(e.rq_active, 0);
    });

    test(`${kind === 'h1' ? 'HTTP/1.1' : 'HTTP/2'} upstream: pool.maxRequests answers HTTP/2 clients over it with 503 UO`, async () => {
      const [slow] = await pair(kind, 'hang', 'ok');
      const { p, client } = await proxy([slow.port], { ...protocol(kind), pool: { maxRequests: 2 } });
      const hanging = [request(client, '/svc/a'), request(client, '/svc/b')];
      await waitFor(() => slow.seen.length === 2, { what: 'two requests at the backend' });
      const r = await request(client, '/svc/c');
      assert.equal(r.status, 503);
      assert.equal(
        await metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { kind: 'overflow' }),
        1,
      );
      assert.equal(p.module.clusters()[0]!.stats.rq_active, 2);
      client.destroy();
      await Promise.all(hanging);
      await waitFor(() => p.module.clusters()[0]!.stats.rq_active === 0, { what: 'no request in flight' });
    });
  }
});

describe('consistent hashing for HTTP/2 clients', () => {
  for (const kind of ['h1', 'h2'] as const) {
    test(`${kind === 'h1' ? 'HTTP/1.1' : 'HTTP/2'} upstream: ring-hash on a header sends each key to one endpoint`, async () => {
      const [a, b] = await pair(kind, 'ok', 'ok');
      const c = await (kind === 'h1' ? h1Flaky : h2Flaky)('ok');
      backends.push(c);
      const { client } = await proxy([a.port, b.port, c.port], {
        ...protocol(kind),
        loadBalancer: { policy: 'ring-hash', hashOn: { header: 'x-user' } },
      });
      const where = async (user: string) => {
        const ports = new Set<string>();
        for (let i = 0; i < 4; i++) {
          const r = await new Promise<string>((resolve) => {
            const req = client.request({ ':path': '/svc/x', 'x-user': user });
            let body = '';
            req.on('data', (d: Buffer) => (body += d.toString()));
            req.on('error', () => {});
            req.on('close', () => resolve(body.split(' ')[1] ?? ''));
          });
          ports.add(r);
        }
        return ports;
      };
      const seen = new Set<string>();
      for (let u = 0; u < 12; u++) {
        const ports = await where(`user-${u}`);
        assert.equal(ports.size, 1, `user-${u} went to ${[...ports].join(', ')}`);
        seen.add([...ports][0]!);
      }
      // Twelve keys over three endpoints: more than one of them is used.
      assert.ok(seen.size > 1, [...seen].join(', '));
    });
  }
});
