// pathWithEscapedSlashes and the encoded NUL over real sockets, HTTP/1.1 and HTTP/2: what is
// refused, redirected or forwarded, and that a route on /admin cannot be reached around.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import {
  type Backend,
  echoBackend,
  get,
  metricValue,
  rawRequest,
  type StartedProxy,
  startInbound,
  startOutbound,
} from './test-support.js';
import type { InboundSection } from './inbound.js';

const ROUTES = [{ match: { prefix: '/admin' }, directResponse: { status: 403, body: 'no\n' } }, {}];

let app: Backend;
const proxies: { stop(): Promise<void> }[] = [];

async function inbound(pathWithEscapedSlashes?: string): Promise<StartedProxy<InboundSection>> {
  const p = await startInbound(
    {
      listeners: [{ address: '127.0.0.1:0' }],
      routes: ROUTES,
      ...(pathWithEscapedSlashes !== undefined ? { pathWithEscapedSlashes } : {}),
    },
    { app: app.port },
  );
  proxies.push(p);
  return p;
}

function refused(p: { metrics: StartedProxy<InboundSection>['metrics'] }, reason: string): Promise<number> {
  return metricValue(p.metrics, 'pillion_proxy_refusals_total', { reason });
}

function h2get(
  port: number,
  path: string,
  extra: http2.OutgoingHttpHeaders = {},
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const req = s.request({ ':path': path, ...extra }, { endStream: true });
    let body = '';
    let headers: http2.IncomingHttpHeaders = {};
    req.setEncoding('utf8');
    req.on('response', (h) => (headers = h));
    req.on('data', (d: string) => (body += d));
    req.on('error', reject);
    req.on('close', () => {
      s.close();
      resolve({ status: Number(headers[':status']), headers, body });
    });
  });
}

before(async () => {
  app = await echoBackend();
});

after(async () => {
  for (const p of proxies) await p.stop();
  await app.close();
});

describe('regression: /x/%2e%2e%2fadmin reached the app as /x/..%2Fadmin, which decodes to /admin', () => {
  test('inbound default (reject): 400, never forwarded, counted', async () => {
    const p = await inbound();
    const seen = app.requests.length;
    for (const t of ['/x/%2e%2e%2fadmin', '/x/..%2Fadmin', '/a%5Cb']) {
      assert.equal((await rawRequest(p.port(), get(t))).status, 400, t);
      assert.equal((await h2get(p.port(), t)).status, 400, `${t} over HTTP/2`);
    }
    assert.equal(app.requests.length, seen);
    assert.equal(await refused(p, 'escaped_slash'), 6);
    assert.equal((await rawRequest(p.port(), get('/a/b'))).status, 200);
  });

  test('unescape-and-forward: decoded before routing, so the route on /admin answers; others reach the app decoded', async () => {
    const p = await inbound('unescape-and-forward');
    assert.equal((await rawRequest(p.port(), get('/x/%2e%2e%2fadmin'))).status, 403);
    assert.equal((await h2get(p.port(), '/x/%2e%2e%2fadmin')).status, 403);
    const res = await rawRequest(p.port(), get('/files/a%2Fb%5Cc?q=%2F'));
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body.toString()) as { url: string }).url, '/files/a/b/c?q=%2F');
  });

  test('unescape-and-redirect: 307 to the decoded path, which the routes then judge; gRPC gets 400', async () => {
    const p = await inbound('unescape-and-redirect');
    const seen = app.requests.length;
    const res = await rawRequest(p.port(), get('/x/%2e%2e%2fadmin?q=1'));
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, '/admin?q=1');
    const r2 = await h2get(p.port(), '/files/a%2fb');
    assert.equal(r2.status, 307);
    assert.equal(r2.headers.location, '/files/a/b');
    const grpc = await h2get(p.port(), '/pkg.Svc%2FMethod', { 'content-type': 'application/grpc' });
    assert.equal(grpc.status, 400);
    assert.equal(app.requests.length, seen);
    assert.equal(await refused(p, 'escaped_slash_redirect'), 2);
    assert.equal(await refused(p, 'escaped_slash'), 1);
  });

  test('keep: forwarded as it came (upper-cased), for apps that use %2F as data', async () => {
    const p = await inbound('keep');
    const res = await rawRequest(p.port(), get('/files/a%2fb'));
    assert.equal((JSON.parse(res.body.toString()) as { url: string }).url, '/files/a%2Fb');
  });

  test('outbound keeps encoded slashes by default: the app calling out means them', async () => {
    const p = await startOutbound({ upstreams: { svc: { endpoints: [`127.0.0.1:${app.port}`] } } });
    proxies.push(p);
    const res = await rawRequest(p.port(), get('/svc/projects/group%2Fname'));
    assert.equal((JSON.parse(res.body.toString()) as { url: string }).url, '/projects/group%2Fname');
  });
});

describe('regression: an encoded NUL in the path was forwarded', () => {
  test('%00 is 400 in every mode, over HTTP/1.1 and HTTP/2, and counted', async () => {
    for (const mode of ['keep', 'reject', 'unescape-and-redirect', 'unescape-and-forward']) {
      const p = await inbound(mode);
      assert.equal((await rawRequest(p.port(), get('/file%00.php'))).status, 400, mode);
      assert.equal((await h2get(p.port(), '/file%00.php')).status, 400, `${mode} over HTTP/2`);
      assert.equal(await refused(p, 'nul_in_path'), 2);
    }
  });
});

describe('";" path parameters, as docs/proxy.md says', () => {
  test('/admin;x is its own path to routing; the documented regex route refuses it with its parameters', async () => {
    const plain = await inbound();
    const res = await rawRequest(plain.port(), get('/admin;jsessionid=1'));
    assert.equal(
      res.status,
      200,
      'forwarded: the prefix /admin does not cover the segment admin;jsessionid=1',
    );
    assert.equal((JSON.parse(res.body.toString()) as { url: string }).url, '/admin;jsessionid=1');

    const strict = await startInbound(
      {
        listeners: [{ address: '127.0.0.1:0' }],
        routes: [
          { match: { regex: '/admin(;[^/]*)?(/.*)?' }, directResponse: { status: 403, body: 'no\n' } },
          {},
        ],
      },
      { app: app.port },
    );
    proxies.push(strict);
    for (const t of ['/admin', '/admin;x', '/admin;x/users', '/admin/users'])
      assert.equal((await rawRequest(strict.port(), get(t))).status, 403, t);
    assert.equal((await rawRequest(strict.port(), get('/administrator'))).status, 200);
  });
});
