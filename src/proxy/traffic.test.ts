// Traffic management over real sockets: weighted destinations (a 90/10 canary, within
// statistical bounds), subsets by endpoint labels, matches on headers and query, header edits per
// destination, and fault injection (aborts, and delays on a fake clock).

import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, test } from 'node:test';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import type { OutboundConfig } from './config.js';
import {
  type Backend,
  get,
  metricValue,
  RawClient,
  rawRequest,
  startBackend,
  startOutbound,
  type StartedProxy,
} from './test-support.js';

const proxies: StartedProxy<OutboundConfig>[] = [];
const backends: Backend[] = [];
after(async () => {
  for (const p of proxies) await p.stop();
  for (const b of backends) await b.close();
});

/** A backend that answers with its name and echoes x-* request headers it got as x-seen-*. */
async function named(name: string): Promise<Backend> {
  const b = await startBackend((req: http.IncomingMessage, res: http.ServerResponse) => {
    const seen = Object.entries(req.headers)
      .filter(([k]) => k.startsWith('x-dest'))
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(';');
    res.writeHead(200, { 'content-length': Buffer.byteLength(name), 'x-seen': seen });
    res.end(name);
  });
  backends.push(b);
  return b;
}

async function reviews(routes: unknown[], opts: { clock?: FakeClock } = {}) {
  const v1 = await named('v1');
  const v2 = await named('v2');
  const p = await startOutbound(
    {
      upstreams: {
        reviews: {
          endpoints: [
            { address: `127.0.0.1:${v1.port}`, labels: { version: 'v1' } },
            { address: `127.0.0.1:${v2.port}`, labels: { version: 'v2' } },
          ],
          subsets: {
            v1: { labels: { version: 'v1' } },
            v2: { labels: { version: 'v2' } },
            v3: { labels: { version: 'v3' } },
          },
        },
      },
      routes,
    },
    opts,
  );
  proxies.push(p);
  return p;
}

/** A GET / with Host: reviews (the name of the upstream, as an app calling it sends). */
function toReviews(extra: Record<string, string> = {}): string {
  let h = 'GET / HTTP/1.1\r\nHost: reviews\r\n';
  for (const [k, v] of Object.entries(extra)) h += `${k}: ${v}\r\n`;
  return `${h}\r\n`;
}

const SPLIT = {
  match: { host: 'reviews' },
  destinations: [
    { upstream: 'reviews', subset: 'v1', weight: 90 },
    { upstream: 'reviews', subset: 'v2', weight: 10 },
  ],
};

test('a 90/10 split between subsets: within five standard deviations over 2000 requests', async () => {
  const p = await reviews([SPLIT]);
  const c = await RawClient.connect(p.port());
  let v2 = 0;
  const n = 2000;
  try {
    for (let i = 0; i < n; i++) {
      c.write(toReviews());
      const r = await c.readResponse();
      assert.equal(r.status, 200);
      if (r.body.toString() === 'v2') v2++;
    }
  } finally {
    c.destroy();
  }
  const sd = Math.sqrt(n * 0.1 * 0.9);
  assert.ok(Math.abs(v2 - n * 0.1) < 5 * sd, `v2 got ${v2} of ${n}`);
});

test('a header match sends x-canary: true to v2; the others take the split route', async () => {
  const p = await reviews([
    {
      match: { host: 'reviews', headers: [{ name: 'x-canary', exact: 'true' }] },
      destinations: [{ upstream: 'reviews', subset: 'v2' }],
    },
    { match: { host: 'reviews' }, destinations: [{ upstream: 'reviews', subset: 'v1' }] },
  ]);
  for (let i = 0; i < 5; i++) {
    assert.equal((await rawRequest(p.port(), toReviews({ 'x-canary': 'true' }))).body.toString(), 'v2');
    assert.equal((await rawRequest(p.port(), toReviews())).body.toString(), 'v1');
  }
});

test('a query match, and header edits per destination on the request and the response', async () => {
  const p = await reviews([
    {
      match: { prefix: '/reviews', query: [{ name: 'beta', exact: '1' }] },
      rewritePrefix: '/',
      requestHeaders: { add: { 'x-dest-route': 'beta' } },
      destinations: [
        {
          upstream: 'reviews',
          subset: 'v2',
          requestHeaders: { add: { 'x-dest-subset': 'v2' } },
          responseHeaders: { add: { 'x-served-by': 'v2' } },
        },
      ],
    },
  ]);
  const beta = await rawRequest(p.port(), get('/reviews/1?x=2&beta=1'));
  assert.equal(beta.body.toString(), 'v2');
  assert.equal(beta.headers['x-seen'], 'x-dest-route=beta;x-dest-subset=v2');
  assert.equal(beta.headers['x-served-by'], 'v2');
  // Without the parameter: the route made for the upstream, round robin over all endpoints.
  const plain = await rawRequest(p.port(), get('/reviews/1?beta=2'));
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['x-served-by'], undefined);
});

test('a subset with no endpoint answers 503 UH', async () => {
  const p = await reviews([
    { match: { host: 'reviews' }, destinations: [{ upstream: 'reviews', subset: 'v3' }] },
  ]);
  assert.equal((await rawRequest(p.port(), toReviews())).status, 503);
});

test('fault abort: the share of requests answered with the status (FI), the rest forwarded', async () => {
  const p = await reviews([{ ...SPLIT, fault: { abort: { status: 418, percent: 30 } } }]);
  const c = await RawClient.connect(p.port());
  let aborted = 0;
  const n = 1000;
  try {
    for (let i = 0; i < n; i++) {
      c.write(toReviews());
      const r = await c.readResponse();
      if (r.status === 418) aborted++;
      else assert.equal(r.status, 200);
    }
  } finally {
    c.destroy();
  }
  const sd = Math.sqrt(n * 0.3 * 0.7);
  assert.ok(Math.abs(aborted - n * 0.3) < 5 * sd, `aborted ${aborted} of ${n}`);
});

test('fault delay holds the request for the delay on the injected clock, then forwards it', async () => {
  const clock = new FakeClock();
  const p = await reviews([{ ...SPLIT, fault: { delay: { fixed: '5s', percent: 100 } } }], { clock });
  const pending = rawRequest(p.port(), toReviews());
  await waitFor(() => clock.pending > 0, { what: 'the delay timer' });
  const served = backends.slice(-2).reduce((n, b) => n + b.requests.length, 0);
  assert.equal(served, 0);
  await clock.advance(4999);
  assert.equal(
    backends.slice(-2).reduce((n, b) => n + b.requests.length, 0),
    0,
  );
  await clock.advance(1);
  assert.equal((await pending).status, 200);
});

test('mirroring: copies go to the shadow upstream with Host -shadow; its failures never reach the client', async () => {
  const shadow = await named('shadow');
  const v1 = await named('v1');
  const dead = await named('dead');
  await dead.close();
  const p = await startOutbound({
    upstreams: {
      reviews: { endpoints: [`127.0.0.1:${v1.port}`] },
      shadow: { endpoints: [`127.0.0.1:${shadow.port}`] },
      broken: { endpoints: [`127.0.0.1:${dead.port}`] },
    },
    routes: [
      {
        match: { host: 'reviews', methods: ['GET'] },
        upstream: 'reviews',
        mirror: { upstream: 'shadow', percent: 100 },
      },
      { match: { host: 'reviews' }, upstream: 'reviews', mirror: { upstream: 'broken' } },
    ],
  });
  proxies.push(p);
  for (let i = 0; i < 5; i++) assert.equal((await rawRequest(p.port(), toReviews())).body.toString(), 'v1');
  await waitFor(() => shadow.requests.length === 5, { what: 'five copies at the shadow' });
  assert.equal(shadow.requests[0]!.headers.host, 'reviews-shadow');
  // A mirror that cannot be reached: the client still gets its answer; the failure is counted.
  const post = 'POST / HTTP/1.1\r\nHost: reviews\r\ncontent-length: 0\r\n\r\n';
  const del = 'DELETE / HTTP/1.1\r\nHost: reviews\r\n\r\n';
  assert.equal((await rawRequest(p.port(), del)).status, 200);
  assert.equal((await rawRequest(p.port(), post)).status, 200);
  const m = (outcome: string) => metricValue(p.metrics, 'pillion_proxy_mirror_total', { outcome });
  await waitFor(async () => (await m('failed')) === 2, { what: 'the failed copies counted' });
  assert.equal(await m('sent'), 5);
  const body = 'POST / HTTP/1.1\r\nHost: reviews\r\ncontent-length: 2\r\n\r\nhi';
  assert.equal((await rawRequest(p.port(), body)).status, 200);
  assert.equal(await m('skipped_body'), 1);
});
