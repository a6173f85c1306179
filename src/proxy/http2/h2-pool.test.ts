// HTTP/2 upstreams' multiplexed pool over real sockets: node:http2 servers that count sessions and
// streams behind an outbound proxy reached by HTTP/2 clients: streams per session up to the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS, sessions up to pool.maxConnections, pool.maxPending then 503 UO,
// and sessions retired after pool.maxRequestsPerConnection streams.

import assert from 'node:assert/strict';
import http2, { type ClientHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { after, test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import type { OutboundConfig } from '../config.js';
import { listen, metricValue, startOutbound, type StartedProxy } from '../test-support.js';

interface CountingServer {
  port: number;
  /** Sessions accepted, the most streams open on one session at once, streams in all. */
  sessions: number;
  maxOpenPerSession: number;
  streams: number;
  /** Sessions the proxy closed with GOAWAY. */
  goaways: number;
  /** Streams held (unanswered) until release(). */
  held: ServerHttp2Stream[];
  hold: boolean;
  release(): void;
  close(): Promise<void>;
}

async function countingServer(maxConcurrentStreams: number, hold: boolean): Promise<CountingServer> {
  const server = http2.createServer({ settings: { maxConcurrentStreams } });
  const live = new Set<http2.ServerHttp2Session>();
  const answer = (stream: ServerHttp2Stream) => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-length': 2 });
    stream.end('ok');
  };
  const c: CountingServer = {
    port: 0,
    sessions: 0,
    maxOpenPerSession: 0,
    streams: 0,
    goaways: 0,
    held: [],
    hold,
    release() {
      c.hold = false;
      for (const s of c.held.splice(0)) answer(s);
    },
    async close() {
      for (const s of live) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('session', (s) => {
    c.sessions++;
    live.add(s);
    let open = 0;
    s.on('goaway', () => c.goaways++);
    s.on('close', () => live.delete(s));
    s.on('stream', (stream: ServerHttp2Stream) => {
      c.streams++;
      c.maxOpenPerSession = Math.max(c.maxOpenPerSession, ++open);
      stream.on('close', () => open--);
      stream.on('error', () => {});
      stream.resume();
      if (c.hold) c.held.push(stream);
      else answer(stream);
    });
  });
  c.port = await listen(server);
  return c;
}

const proxies: StartedProxy<OutboundConfig>[] = [];
const servers: CountingServer[] = [];
const clients: ClientHttp2Session[] = [];
after(async () => {
  for (const c of clients) c.destroy();
  for (const p of proxies) await p.stop();
  for (const s of servers) await s.close();
});

async function setup(maxConcurrentStreams: number, hold: boolean, upstream: Record<string, unknown>) {
  const server = await countingServer(maxConcurrentStreams, hold);
  servers.push(server);
  const p = await startOutbound({
    upstreams: { svc: { endpoints: [`127.0.0.1:${server.port}`], protocol: 'h2', ...upstream } },
  });
  proxies.push(p);
  const client = http2.connect(`http://127.0.0.1:${p.port()}`);
  client.on('error', () => {});
  clients.push(client);
  return { server, p, client };
}

function request(client: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = client.request({ ':path': path });
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('error', () => {});
    req.resume();
    req.on('close', () => resolve(status));
  });
}

test('streams share a session up to its SETTINGS_MAX_CONCURRENT_STREAMS, sessions go up to maxConnections, then maxPending wait and more get 503 UO', async () => {
  const { server, p, client } = await setup(2, true, { pool: { maxConnections: 2, maxPending: 1 } });
  const pending: Promise<number>[] = [];
  // One at a time until each is at the server (or waiting), so the sessions' settings are known.
  for (let i = 1; i <= 4; i++) {
    pending.push(request(client, `/svc/${i}`));
    await waitFor(() => server.streams === i, { what: `stream ${i} at the server` });
  }
  assert.equal(server.sessions, 2);
  assert.equal(server.maxOpenPerSession, 2);
  pending.push(request(client, '/svc/5'));
  await waitFor(() => p.module.clusters()[0]!.stats.rq_pending === 1, { what: 'one request waiting' });
  assert.equal(p.module.poolOccupancy().get('svc')!.waiting, 1);
  assert.equal(p.module.poolOccupancy().get('svc')!.open, 2);
  assert.equal(await request(client, '/svc/6'), 503);
  assert.equal(await metricValue(p.metrics, 'pillion_proxy_upstream_errors_total', { kind: 'overflow' }), 1);
  // A stream ends: the waiting request takes its place on that session.
  server.release();
  assert.deepEqual(await Promise.all(pending), [200, 200, 200, 200, 200]);
  assert.equal(server.streams, 5);
  assert.equal(server.sessions, 2);
  assert.equal(p.module.clusters()[0]!.stats.rq_pending, 0);
});

test('many concurrent requests are multiplexed on one session when the peer allows them', async () => {
  const { server, client } = await setup(100, true, {});
  const first = request(client, '/svc/warm');
  await waitFor(() => server.streams === 1, { what: 'the first stream' });
  const rest = Array.from({ length: 20 }, (_, i) => request(client, `/svc/${i}`));
  await waitFor(() => server.streams === 21, { what: '21 streams at the server' });
  assert.equal(server.sessions, 1);
  assert.equal(server.maxOpenPerSession, 21);
  server.release();
  for (const s of await Promise.all([first, ...rest])) assert.equal(s, 200);
});

test('pool.maxRequestsPerConnection: a session carries that many streams, then is closed with GOAWAY', async () => {
  const { server, client } = await setup(100, false, { pool: { maxRequestsPerConnection: 2 } });
  for (let i = 0; i < 6; i++) assert.equal(await request(client, `/svc/${i}`), 200);
  assert.equal(server.streams, 6);
  assert.equal(server.sessions, 3);
  await waitFor(() => server.goaways >= 2, { what: 'GOAWAY on the retired sessions' });
});

test('a closed endpoint fails the requests waiting for it as connect failures (502 UF)', async () => {
  const { server, p, client } = await setup(100, false, {});
  const port = server.port;
  await server.close();
  servers.splice(servers.indexOf(server), 1);
  const statuses = await Promise.all(Array.from({ length: 5 }, (_, i) => request(client, `/svc/${i}`)));
  assert.deepEqual(statuses, [502, 502, 502, 502, 502]);
  assert.equal(p.module.clusters()[0]!.stats.rq_pending, 0);
  assert.equal(p.module.clusters()[0]!.endpoints[0]!.address, `127.0.0.1:${port}`);
});
