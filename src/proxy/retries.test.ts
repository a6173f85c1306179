// Retries and timeouts over real sockets: small upstreams that fail on command (503s, resets,
// refused connects, hangs, responses cut off mid-body) behind an outbound proxy with retries.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';
import {
  type Backend,
  freePort,
  get,
  metricValue,
  outboundSection,
  rawRequest,
  startBackend,
  startOutbound,
  type StartedProxy,
  logLines,
} from './test-support.js';
import type { OutboundConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'pillion-retries-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Mode = 'ok' | '503' | '500' | '502' | 'reset' | 'hang' | 'cut' | '409';

/** A backend whose answer is set by the test; it records the attempt count and body size of each request. */
async function flaky(
  mode: Mode,
): Promise<Backend & { mode: Mode; seen: { attempt: string; bytes: number }[] }> {
  const seen: { attempt: string; bytes: number }[] = [];
  const b = await startBackend((req: http.IncomingMessage, res: http.ServerResponse) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.push({ attempt: String(req.headers['x-pillion-attempt-count'] ?? ''), bytes });
      const m = (b as unknown as { mode: Mode }).mode;
      if (m === 'ok') {
        const body = `ok ${req.socket.localPort} ${bytes}`;
        res.writeHead(200, { 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else if (m === 'reset') req.socket.destroy();
      else if (m === 'hang') return;
      else if (m === 'cut') {
        res.writeHead(200, { 'content-length': 1000 });
        res.write('x'.repeat(100), () => setImmediate(() => req.socket.destroy()));
      } else {
        res.writeHead(Number(m), { 'content-length': 4 });
        res.end('fail');
      }
    });
  });
  return Object.assign(b, { mode, seen });
}

const proxies: StartedProxy<OutboundConfig>[] = [];
const backends: Backend[] = [];
after(async () => {
  for (const p of proxies) await p.stop();
  for (const b of backends) await b.close();
});

async function proxy(endpoints: (string | number)[], upstream: Record<string, unknown>, log?: string) {
  const p = await startOutbound({
    upstreams: {
      svc: {
        endpoints: endpoints.map((e) => (typeof e === 'number' ? `127.0.0.1:${e}` : e)),
        ...upstream,
      },
    },
    ...(log !== undefined ? { accessLog: { path: log } } : {}),
  });
  proxies.push(p);
  return p;
}

async function two(first: Mode, second: Mode) {
  const a = await flaky(first);
  const b = await flaky(second);
  backends.push(a, b);
  return [a, b] as const;
}

const FAST = { base: '1ms', max: '2ms' };

const retried = (p: StartedProxy<OutboundConfig>, outcome: string) =>
  metricValue(p.metrics, 'pillion_proxy_retries_total', { upstream: 'svc', outcome });

describe('retryOn conditions, each against an upstream failing that way', () => {
  const cases: [string, Mode, string][] = [
    ['5xx', '500', '500'],
    ['gateway-error', '502', '502'],
    ['retriable-status-codes', '503', '503'],
    ['retriable-4xx', '409', '409'],
    ['reset', 'reset', 'UC'],
  ];
  for (const [retryOn, mode, flag] of cases) {
    test(`${retryOn}: the failed try goes again, to the other endpoint, and the client gets 200`, async () => {
      const [bad, good] = await two(mode, 'ok');
      const log = join(dir, `${retryOn}.log`);
      const p = await proxy([bad.port, good.port], { retries: { attempts: 2, retryOn, backoff: FAST } }, log);
      for (let i = 0; i < 4; i++) {
        const r = await rawRequest(p.port(), get(`/svc/item/${i}`));
        assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body.toString()}`);
      }
      // Round robin: each first try lands on the failing endpoint (the retry's pick moved the turn
      // on), and each retry on the good one, never back on the endpoint that failed.
      assert.deepEqual(
        bad.seen.map((s) => s.attempt),
        ['1', '1', '1', '1'],
      );
      assert.deepEqual(
        good.seen.map((s) => s.attempt),
        ['2', '2', '2', '2'],
      );
      assert.equal(await retried(p, 'retried'), 4);
      await waitFor(() => logLines(log).length === 4, { what: 'four access log lines' });
      const withRetry = logLines(log).filter((l) => l.upstream_attempts === 2);
      assert.equal(withRetry.length, 4);
      assert.equal(withRetry[0]!.attempt_flags, flag);
      assert.equal(withRetry[0]!.response_flags, '-');
    });
  }

  test('connect-failure: a refused endpoint is retried elsewhere (flag UF)', async () => {
    const [good] = await two('ok', 'ok');
    const closed = await freePort();
    const p = await proxy([closed, good.port], { retries: { retryOn: 'connect-failure', backoff: FAST } });
    for (let i = 0; i < 4; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
    assert.equal(await retried(p, 'retried'), 4);
  });

  test('a failure retryOn does not name goes to the client as it is', async () => {
    const [bad] = await two('500', 'ok');
    const p = await proxy([bad.port], { retries: { retryOn: 'gateway-error', backoff: FAST } });
    assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 500);
    assert.equal(bad.seen.length, 1);
  });
});

describe('tries, timeouts and bodies', () => {
  test('attempts bounds the tries; the last failure reaches the client with URX', async () => {
    const [bad] = await two('503', 'ok');
    const log = join(dir, 'urx.log');
    const p = await proxy([bad.port], { retries: { attempts: 3, retryOn: '5xx', backoff: FAST } }, log);
    const r = await rawRequest(p.port(), get('/svc/x'));
    assert.equal(r.status, 503);
    assert.deepEqual(
      bad.seen.map((s) => s.attempt),
      ['1', '2', '3', '4'],
    );
    assert.equal(await retried(p, 'attempts_exhausted'), 1);
    await waitFor(() => logLines(log).length === 1, { what: 'the access log line' });
    const [l] = logLines(log);
    assert.equal(l!.upstream_attempts, 4);
    assert.equal(l!.attempt_flags, '503,503,503,503');
    assert.equal(l!.response_flags, 'URX');
  });

  test('perTryTimeout abandons a hanging try and retries it on the other endpoint', async () => {
    const [slow, good] = await two('hang', 'ok');
    const p = await proxy([slow.port, good.port], {
      retries: { retryOn: 'reset', perTryTimeout: '150ms', backoff: FAST },
    });
    const r = await rawRequest(p.port(), get('/svc/x'));
    assert.equal(r.status, 200);
    assert.deepEqual(
      slow.seen.map((s) => s.attempt),
      ['1'],
    ); // and never answered it
    assert.deepEqual(
      good.seen.map((s) => s.attempt),
      ['2'],
    );
    assert.equal(
      await metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { kind: 'per_try_timeout' }),
      1,
    );
  });

  test('the route timeout covers every try: 504 UT when it ends first', async () => {
    const [slow] = await two('hang', 'ok');
    const p = await proxy([slow.port], {
      timeout: '200ms',
      retries: { retryOn: 'reset', perTryTimeout: '150ms', attempts: 5, backoff: FAST },
    });
    const r = await rawRequest(p.port(), get('/svc/x'));
    assert.equal(r.status, 504);
  });

  test('a small body is kept and sent again whole; a body over maxBodySize is sent once', async () => {
    const [bad, good] = await two('503', 'ok');
    const p = await proxy([bad.port, good.port], {
      retries: { retryOn: '5xx', maxBodySize: '1KiB', backoff: FAST },
    });
    const post = (n: number) =>
      Buffer.concat([
        Buffer.from(`POST /svc/x HTTP/1.1\r\nHost: t\r\ncontent-length: ${n}\r\n\r\n`),
        Buffer.alloc(n, 0x61),
      ]);
    // Every first try is on the failing endpoint (round robin starts there); retried with its 600 bytes.
    const small = await rawRequest(p.port(), post(600));
    assert.equal(small.status, 200);
    assert.equal(small.body.toString(), `ok ${good.port} 600`);
    assert.deepEqual(good.seen.at(-1), { attempt: '2', bytes: 600 });
    const big = await rawRequest(p.port(), post(4096));
    assert.equal(big.status, 503);
    assert.equal(await retried(p, 'body_too_large'), 1);
    assert.deepEqual(bad.seen.at(-1), { attempt: '1', bytes: 4096 });
  });

  test('a chunked body is kept as it came and retried', async () => {
    const [bad, good] = await two('503', 'ok');
    const p = await proxy([bad.port, good.port], { retries: { retryOn: '5xx', backoff: FAST } });
    const r = await rawRequest(
      p.port(),
      'POST /svc/x HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `ok ${good.port} 11`);
  });

  test('a response already streaming to the client is never retried', async () => {
    const [cut, good] = await two('cut', 'ok');
    const p = await proxy([cut.port, good.port], { retries: { retryOn: '5xx,reset', backoff: FAST } });
    await assert.rejects(rawRequest(p.port(), get('/svc/x')));
    assert.equal(cut.seen.length, 1);
    assert.equal(good.seen.length, 0);
  });
});

describe('the retry budget', () => {
  test('stops a retry storm: beyond the budget the failure goes to the client, and is counted', async () => {
    const [bad] = await two('503', 'ok');
    const p = await proxy([bad.port], {
      retries: { attempts: 3, retryOn: '5xx', backoff: FAST },
      retryBudget: { ratio: 0.1, minRetriesPerSecond: 1, window: '60s' },
    });
    for (let i = 0; i < 20; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 503);
    // 60 retries (1/s over the window) + 10 % of 20 requests = 62 allowed; 20 requests × 3
    // retries would be 60 more, so the floor alone covers them. Spend it: a tighter budget below.
    const spent = await retried(p, 'retried');
    assert.equal(spent, 60);
    const q = await proxy([bad.port], {
      retries: { attempts: 3, retryOn: '5xx', backoff: FAST },
      retryBudget: { ratio: 0.2, minRetriesPerSecond: 0, window: '60s' },
    });
    const before = bad.seen.length;
    for (let i = 0; i < 50; i++) assert.equal((await rawRequest(q.port(), get('/svc/x'))).status, 503);
    const sent = bad.seen.length - before;
    // 50 requests, retries at most 20 % of them: at most 60 sent upstream instead of 200.
    assert.ok(sent <= 60 && sent >= 55, `sent ${sent}`);
    assert.ok((await retried(q, 'budget_exhausted')) >= 40);
  });
});

describe('circuit breaking', () => {
  test('pool.maxRequests: requests over the limit get 503 UO at once, not queued', async () => {
    const [slow] = await two('hang', 'ok');
    const p = await proxy([slow.port], { pool: { maxRequests: 2 } });
    const hanging = [rawRequest(p.port(), get('/svc/a')), rawRequest(p.port(), get('/svc/b'))];
    await waitFor(() => slow.seen.length === 2, { what: 'two requests at the backend' });
    const r = await rawRequest(p.port(), get('/svc/c'));
    assert.equal(r.status, 503);
    assert.equal(
      await metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { kind: 'overflow' }),
      1,
    );
    await p.stop();
    await Promise.allSettled(hanging);
  });

  test('pool.maxPending: with its connections busy, the upstream queues this many and refuses more (UO)', async () => {
    const [slow] = await two('hang', 'ok');
    const p = await proxy([slow.port], { pool: { maxConnections: 1, maxPending: 1 } });
    const first = rawRequest(p.port(), get('/svc/a'));
    await waitFor(() => slow.seen.length === 1, { what: 'the first request at the backend' });
    const queued = rawRequest(p.port(), get('/svc/b'));
    await waitFor(async () => (p.module.poolOccupancy().get('svc')?.waiting ?? 0) === 1, {
      what: 'one waiting',
    });
    const r = await rawRequest(p.port(), get('/svc/c'));
    assert.equal(r.status, 503);
    assert.match(r.body.toString(), /waiting/);
    await p.stop();
    await Promise.allSettled([first, queued]);
  });

  test('pool.maxRequestsPerConnection closes a connection after that many requests', async () => {
    const [ok] = await two('ok', 'ok');
    const p = await proxy([ok.port], { pool: { maxRequestsPerConnection: 2 } });
    for (let i = 0; i < 6; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
    assert.equal(ok.connections, 3);
  });

  test('outlier detection ejects an endpoint answering 503s; requests then go to the others', async () => {
    const [bad, good] = await two('503', 'ok');
    const p = await proxy([bad.port, good.port], {
      outlierDetection: {
        consecutive5xxErrors: 3,
        interval: '1s',
        baseEjectionTime: '30s',
        maxEjectionPercent: 50,
      },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await rawRequest(p.port(), get('/svc/x'))).status);
    // Round robin: the bad endpoint answers every other request until its third 503.
    assert.equal(statuses.filter((s) => s === 503).length, 3);
    assert.equal(bad.seen.length, 3);
    assert.equal(good.seen.length, 17);
  });

  test('with retries, the client never sees the ejected endpoint', async () => {
    const [bad, good] = await two('503', 'ok');
    const p = await proxy([bad.port, good.port], {
      retries: { retryOn: '5xx', backoff: FAST },
      outlierDetection: { consecutive5xxErrors: 2, maxEjectionPercent: 50 },
    });
    for (let i = 0; i < 10; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
    assert.equal(bad.seen.length, 2);
  });
});

test('a reload that keeps the upstream keeps its ejections', async () => {
  const [bad, good] = await two('503', 'ok');
  const raw = {
    upstreams: {
      svc: {
        endpoints: [`127.0.0.1:${bad.port}`, `127.0.0.1:${good.port}`],
        outlierDetection: { consecutive5xxErrors: 1, baseEjectionTime: '10m', maxEjectionPercent: 50 },
      },
    },
  };
  const p = await startOutbound(raw);
  proxies.push(p);
  for (let i = 0; i < 4; i++) await rawRequest(p.port(), get('/svc/x'));
  assert.equal(bad.seen.length, 1);
  // Another setting changes; the upstream's do not.
  assert.equal(await p.module.reload(outboundSection({ ...raw, headers: { requestId: false } })), 'applied');
  for (let i = 0; i < 4; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
  assert.equal(bad.seen.length, 1);
});

test('/clusters and the upstream metrics show endpoints, ejections and counters', async () => {
  const [bad, good] = await two('503', 'ok');
  const p = await proxy([bad.port, good.port], {
    retries: { retryOn: '5xx', backoff: FAST },
    outlierDetection: { consecutive5xxErrors: 2, baseEjectionTime: '10m', maxEjectionPercent: 50 },
  });
  for (let i = 0; i < 10; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
  const [c] = p.module.clusters();
  assert.equal(c!.name, 'svc');
  assert.equal(c!.policy, 'round-robin');
  assert.equal(c!.stats.rq_2xx, 10);
  assert.equal(c!.stats.ejections, 1);
  // Each 503 of the bad endpoint was tried again on the good one.
  assert.equal(c!.stats.rq_retry, bad.seen.length);
  assert.equal(c!.stats.rq_retry_budget_exhausted, 0);
  const byPort = new Map(c!.endpoints.map((e) => [Number(e.address.split(':')[1]), e]));
  assert.equal(byPort.get(bad.port)!.health, 'ejected');
  assert.ok(byPort.get(bad.port)!.ejected_for_ms > 0);
  assert.equal(byPort.get(good.port)!.health, 'healthy');
  const m = (name: string, labels: Record<string, string>) => metricValue(p.metrics, name, labels);
  assert.equal(await m('pillion_upstream_endpoints', { upstream: 'svc', state: 'ejected' }), 1);
  assert.equal(await m('pillion_upstream_ejections_total', { upstream: 'svc' }), 1);
  assert.equal(await m('pillion_upstream_responses_total', { upstream: 'svc', code_class: '2xx' }), 10);
  assert.equal(
    await m('pillion_upstream_endpoint_requests_total', { endpoint: `127.0.0.1:${bad.port}` }),
    bad.seen.length,
  );
  assert.equal(await m('pillion_upstream_response_time_seconds_count', { upstream: 'svc' }), 10);
});

test('peak-ewma: the latency average of each endpoint in /clusters and the metrics', async () => {
  const [ok] = await two('ok', 'ok');
  const p = await proxy([ok.port], { loadBalancer: { policy: 'peak-ewma' } });
  for (let i = 0; i < 3; i++) assert.equal((await rawRequest(p.port(), get('/svc/x'))).status, 200);
  const [c] = p.module.clusters();
  assert.ok(c!.endpoints[0]!.latency_ewma_ms! > 0);
  const v = await metricValue(p.metrics, 'pillion_upstream_endpoint_latency_ewma_seconds', {
    endpoint: `127.0.0.1:${ok.port}`,
  });
  assert.ok(v > 0 && v < 5, String(v));
});
