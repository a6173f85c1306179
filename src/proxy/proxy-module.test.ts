// The proxy as a module over real sockets: the outbound role, drain with requests in flight, and
// reload applied to open keep-alive connections.

import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';
import { waitFor } from '../lib/wait-for.js';
import {
  echoBackend,
  get,
  inboundSection,
  listen,
  metricValue,
  outboundSection,
  RawClient,
  rawRequest,
  startBackend,
  startInbound,
  startOutbound,
} from './test-support.js';

const LISTEN = [{ address: '127.0.0.1:0' }];

interface Echo {
  url: string;
  headers: Record<string, string>;
}
const echoOf = (body: Buffer): Echo => JSON.parse(body.toString()) as Echo;

describe('outbound', () => {
  test('/<service>/path and Host: <service> reach the service, with Host rewritten', async () => {
    const svc = await echoBackend();
    const p = await startOutbound({ upstreams: { orders: { endpoints: [`127.0.0.1:${svc.port}`] } } });
    try {
      const byPath = await rawRequest(p.port(), get('/orders/v1/list?page=2'));
      assert.equal(byPath.status, 200);
      assert.equal(echoOf(byPath.body).url, '/v1/list?page=2');
      assert.equal(echoOf(byPath.body).headers.host, `127.0.0.1:${svc.port}`);
      const root = await rawRequest(p.port(), get('/orders'));
      assert.equal(echoOf(root.body).url, '/');
      const byHost = await rawRequest(p.port(), 'GET /v1/list HTTP/1.1\r\nHost: orders\r\n\r\n');
      assert.equal(byHost.status, 200);
      assert.equal(echoOf(byHost.body).url, '/v1/list');
      assert.equal(echoOf(byHost.body).headers.host, `127.0.0.1:${svc.port}`);
      // The app's own call through node:http with the ambassador's URL.
      const viaNode = await new Promise<string>((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${p.port()}/orders/x`, { agent: false }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
      assert.equal((JSON.parse(viaNode) as Echo).url, '/x');
      assert.equal((await rawRequest(p.port(), get('/ordersx/y'))).status, 404);
      assert.equal((await rawRequest(p.port(), get('/unknown/y'))).status, 404);
    } finally {
      await p.stop();
      await svc.close();
    }
  });

  test('a DNS name endpoint ("localhost:PORT") resolves', async () => {
    // Listen on every address localhost resolves to here, so round-robin over them all works.
    const addresses = (await lookup('localhost', { all: true })).map((a) => a.address);
    const svc = await echoBackend();
    const extra: http.Server[] = [];
    for (const a of addresses.filter((x) => x !== '127.0.0.1')) {
      const s = http.createServer(svc.server.listeners('request')[0] as http.RequestListener);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(svc.port, a, () => resolve());
      }).catch(() => undefined);
      extra.push(s);
    }
    const p = await startOutbound({ upstreams: { local: { endpoints: [`localhost:${svc.port}`] } } });
    try {
      for (let i = 0; i < addresses.length + 1; i++) {
        const res = await rawRequest(p.port(), get('/local/dns'));
        assert.equal(res.status, 200);
        assert.equal(echoOf(res.body).url, '/dns');
        assert.equal(echoOf(res.body).headers.host, `localhost:${svc.port}`);
      }
    } finally {
      await p.stop();
      for (const s of extra) s.close();
      await svc.close();
    }
  });
});

describe('drain', () => {
  test('in-flight requests finish with Connection: close; idle connections close; new ones are refused', async () => {
    const held: (() => void)[] = [];
    const app = await startBackend((req, res) => {
      if (req.url === '/slow') held.push(() => res.end('finally'));
      else res.end('quick');
    });
    const p = await startInbound({ listeners: LISTEN }, { app: app.port });
    try {
      const port = p.port();
      const idle = await RawClient.connect(port);
      idle.write(get('/'));
      assert.equal((await idle.readResponse()).status, 200);
      const busy = [await RawClient.connect(port), await RawClient.connect(port)];
      for (const c of busy) c.write(get('/slow'));
      await waitFor(() => held.length === 2, { what: 'requests to reach the backend' });

      let drained = false;
      // A deadline no test run reaches: drain must end because the last request finished.
      const draining = p.module.drain(Date.now() + 600_000).then(() => (drained = true));
      assert.equal(await idle.waitClosed(), true);
      await assert.rejects(RawClient.connect(port), /ECONNREFUSED/);
      assert.equal(p.module.readiness().ready, false);
      assert.equal(drained, false);

      for (const release of held) release();
      for (const c of busy) {
        const res = await c.readResponse();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), 'finally');
        assert.equal(res.headers.connection, 'close');
        assert.equal(await c.waitClosed(), true);
      }
      await draining;
    } finally {
      await p.stop();
      await app.close();
    }
  });

  test('drain returns at the deadline when a request does not finish', async () => {
    const app = await startBackend(() => {});
    const p = await startInbound({ listeners: LISTEN }, { app: app.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/never'));
      await waitFor(() => app.requests.length === 1, { what: 'the request to reach the backend' });
      const t0 = Date.now();
      await p.module.drain(Date.now() + 200);
      const took = Date.now() - t0;
      assert.ok(took >= 150, `drain returned after ${took} ms, before its deadline`);
      await p.stop();
      assert.equal(await c.waitClosed(), true);
    } finally {
      await p.stop();
      await app.close();
    }
  });
});

describe('reload', () => {
  test('changed routes apply to the next request on an open keep-alive connection', async () => {
    const raw = (body: string) => ({
      listeners: LISTEN,
      routes: [{ match: { prefix: '/v' }, directResponse: { status: 200, body } }],
    });
    const p = await startInbound(raw('one'));
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/v'));
      assert.equal((await c.readResponse()).body.toString(), 'one');
      assert.equal(await p.module.reload(inboundSection(raw('two'))), 'applied');
      c.write(get('/v'));
      assert.equal((await c.readResponse()).body.toString(), 'two');
      c.destroy();
    } finally {
      await p.stop();
    }
  });

  test('a new app address applies to open connections; the old pool is let go', async () => {
    const a = await echoBackend();
    const b = await echoBackend();
    const p = await startInbound({ listeners: LISTEN }, { app: a.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/1'));
      assert.equal((await c.readResponse()).status, 200);
      assert.equal(await p.module.reload(inboundSection({ listeners: LISTEN }, b.port)), 'applied');
      c.write(get('/2'));
      assert.equal((await c.readResponse()).status, 200);
      assert.deepEqual([a.requests.map((r) => r.url), b.requests.map((r) => r.url)], [['/1'], ['/2']]);
      c.destroy();
    } finally {
      await p.stop();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('a request in flight during a reload completes on the old upstream', async () => {
    const held: (() => void)[] = [];
    const a = await startBackend((_req, res) => held.push(() => res.end('from a')));
    const b = await echoBackend();
    const p = await startInbound({ listeners: LISTEN }, { app: a.port });
    try {
      const c = await RawClient.connect(p.port());
      c.write(get('/in-flight'));
      await waitFor(() => held.length === 1, { what: 'the request to reach the old app' });
      assert.equal(await p.module.reload(inboundSection({ listeners: LISTEN }, b.port)), 'applied');
      held[0]!();
      const res = await c.readResponse();
      assert.equal(res.body.toString(), 'from a');
      c.write(get('/after'));
      assert.equal(echoOf((await c.readResponse()).body).url, '/after');
      c.destroy();
    } finally {
      await p.stop();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('reload bug: a request waiting for a pooled connection hung when its upstream was replaced', async () => {
    const held: (() => void)[] = [];
    const svc = await startBackend((req, res) => {
      if (req.url === '/held') held.push(() => res.end('late'));
      else res.end('quick');
    });
    const raw = (maxIdle: number) => ({
      upstreams: { svc: { endpoints: [`127.0.0.1:${svc.port}`], pool: { maxConnections: 1, maxIdle } } },
    });
    const p = await startOutbound(raw(64));
    try {
      const first = await RawClient.connect(p.port());
      first.write(get('/svc/held'));
      await waitFor(() => held.length === 1, { what: 'the first request to hold the only connection' });
      const waiting = await RawClient.connect(p.port());
      waiting.timeoutMs = 3000;
      waiting.write(get('/svc/waiting'));
      await waitFor(async () => (await metricValue(p.metrics, 'pillion_proxy_active_requests', {})) === 2, {
        what: 'the second request to wait for a connection',
      });
      assert.equal(await p.module.reload(outboundSection(raw(8))), 'applied');
      // Answered at once, not when the connection it waited for comes back (here: never).
      const res = await waiting.readResponse();
      assert.equal(res.status, 503);
      assert.equal(held.length, 1);
      waiting.destroy();
      // The request in flight completes on the replaced upstream; the next one uses the new one.
      held[0]!();
      assert.equal((await first.readResponse()).body.toString(), 'late');
      first.write(get('/svc/after'));
      assert.equal((await first.readResponse()).body.toString(), 'quick');
      assert.equal(svc.connections, 2);
      first.destroy();
    } finally {
      await p.stop();
      await svc.close();
    }
  });

  test('reload bug: unchanged upstreams lost their warm connections; only changed ones are replaced', async () => {
    const keep = await echoBackend();
    const change = await echoBackend();
    const raw = (maxIdle: number) => ({
      upstreams: {
        keep: { endpoints: [`127.0.0.1:${keep.port}`] },
        change: { endpoints: [`127.0.0.1:${change.port}`], pool: { maxIdle } },
      },
    });
    const open = (b: typeof keep) =>
      new Promise<number>((resolve, reject) =>
        b.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
    const p = await startOutbound(raw(64));
    try {
      const c = await RawClient.connect(p.port());
      const call = async (path: string) => {
        c.write(get(path));
        const res = await c.readResponse();
        assert.equal(res.status, 200);
        assert.equal(echoOf(res.body).url, path.slice(path.indexOf('/', 1)));
      };
      await call('/keep/1');
      await call('/change/1');
      // The same settings again: nothing is replaced.
      assert.equal(await p.module.reload(outboundSection(raw(64))), 'applied');
      await call('/keep/2');
      await call('/change/2');
      assert.deepEqual([keep.connections, change.connections], [1, 1]);
      // One upstream changed: its idle connection is closed and a new pool connects; the other
      // upstream keeps its connection.
      assert.equal(await p.module.reload(outboundSection(raw(32))), 'applied');
      await waitFor(async () => (await open(change)) === 0, { what: 'the replaced pool to close' });
      await call('/keep/3');
      await call('/change/3');
      assert.deepEqual([keep.connections, change.connections], [1, 2]);
      c.destroy();
    } finally {
      await p.stop();
      await Promise.all([keep.close(), change.close()]);
    }
  });

  test('a changed listener needs a restart', async () => {
    const p = await startInbound({ listeners: LISTEN });
    try {
      const next = inboundSection({ listeners: [{ address: '127.0.0.1:1' }] });
      assert.equal(await p.module.reload(next), 'restart-needed');
      const limits = inboundSection({ listeners: LISTEN, limits: { maxConnections: 5 } });
      assert.equal(await p.module.reload(limits), 'restart-needed');
    } finally {
      await p.stop();
    }
  });

  test('TCP pairs opened before a reload are still ended by drain', async () => {
    const sockets = new Set<net.Socket>();
    const echo = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.pipe(s);
    });
    const port = await listen(echo);
    const raw = (idle: string) => ({
      listeners: [{ address: '127.0.0.1:0', mode: 'tcp' }],
      timeouts: { idle },
    });
    const p = await startInbound(raw('60s'), { app: port });
    try {
      const s = net.connect(p.port(), '127.0.0.1');
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write('x');
      await new Promise((r) => s.once('data', r));
      assert.equal(await p.module.reload(inboundSection(raw('30s'), port)), 'applied');
      const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
      // A deadline no test run reaches: drain must end because the idle tunnel was closed.
      await p.module.drain(Date.now() + 600_000);
      await closed;
    } finally {
      await p.stop();
      for (const s of sockets) s.destroy();
      echo.close();
    }
  });
});
