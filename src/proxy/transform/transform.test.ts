// The API adapter through a real proxy to a real backend: JSONata rewrites both ways, form and
// XML conversion, status and header mapping, the body limits, failures answered with coded
// errors (and counted), bodies that do not parse, an untransformed route that still streams,
// and HTTP/2 clients.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { parsePillionConfig } from '../../roles.js';
import { waitFor } from '../../lib/wait-for.js';
import { startRuntimeOn } from '../../runtime/test-support.js';
import {
  freePort,
  metricValue,
  quiet,
  RawClient,
  startBackend,
  startInbound,
  startOutbound,
  type Backend,
  type StartedProxy,
} from '../test-support.js';
import type { InboundSection } from '../inbound.js';

/** What the proxy logged, one JSON line each. */
const logged: string[] = [];
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      logged.push(chunk.toString());
      done();
    },
  }),
);

/** The legacy app: answers what it got (method, url, content-type, body) as JSON, or as the path says. */
let app: Backend;
let proxy: StartedProxy<InboundSection>;
let base = '';

before(async () => {
  app = await startBackend((req, res) => {
    if (req.url === '/stream') {
      let bytes = 0;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.end(`${bytes}\n`));
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString();
      const url = req.url ?? '';
      if (url.startsWith('/legacy')) {
        // Speaks {action, payload} and answers {result, ok}.
        const got = JSON.parse(body) as { action: string; payload: unknown };
        const out = JSON.stringify({ result: { did: got.action, with: got.payload }, ok: true });
        res.writeHead(200, { 'content-type': 'application/json', 'x-legacy': '1' });
        res.end(out);
        return;
      }
      if (url.startsWith('/xml')) {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end('<order id="7"><item>tea</item><qty>2</qty></order>');
        return;
      }
      if (url.startsWith('/notjson')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('this is not json');
        return;
      }
      if (url.startsWith('/chunked')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.write('{"err');
        setImmediate(() => res.end('or": "gone"}'));
        return;
      }
      if (url.startsWith('/stream')) {
        // Answers before the request body has ended: only a proxy that streams gets this through.
        return;
      }
      if (url.startsWith('/big')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ blob: 'x'.repeat(5000) }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url, type: req.headers['content-type'] ?? null, body }));
    });
  });
  proxy = await startInbound(
    {
      listeners: [{ address: '127.0.0.1:0' }],
      readinessGate: false,
      routes: [
        {
          name: 'legacy',
          match: { prefix: '/api/orders' },
          rewritePrefix: '/legacy',
          transform: {
            request: {
              body: '{ "action": method, "payload": data, "caller": $headers."x-caller", "page": $number($query.page) }',
              headers: { set: { 'x-adapted': 'yes' }, remove: ['x-caller'] },
            },
            response: {
              body: '{ "data": result, "status": ok ? "done" : "failed", "for": $request.method }',
              headers: { remove: ['x-legacy'], add: { 'x-api': 'v2' } },
              status: { '200': 201 },
            },
          },
        },
        {
          name: 'form',
          match: { prefix: '/form' },
          transform: { request: { from: 'form', to: 'json' }, response: { body: '$' } },
        },
        {
          name: 'to-form',
          match: { prefix: '/to-form' },
          transform: { request: { from: 'json', to: 'form' } },
        },
        {
          name: 'xml-in',
          match: { prefix: '/xml' },
          transform: { response: { from: 'xml', to: 'json' } },
        },
        {
          name: 'to-xml',
          match: { prefix: '/to-xml' },
          transform: { request: { body: '{ "order": { "@id": id, "item": item } }', to: 'xml' } },
        },
        {
          name: 'failing',
          match: { prefix: '/failing' },
          transform: { request: { body: '$number(n) + 1' } },
        },
        {
          name: 'notjson',
          match: { prefix: '/notjson' },
          transform: { response: { body: 'a' } },
        },
        {
          name: 'chunked',
          match: { prefix: '/chunked' },
          transform: { response: { body: '{ "problem": error }', status: { '404': 410 } } },
        },
        {
          name: 'small',
          match: { prefix: '/small' },
          transform: { maxBodyBytes: '1KiB', request: { body: '$' } },
        },
        {
          name: 'big',
          match: { prefix: '/big' },
          transform: { maxBodyBytes: '1KiB', response: { body: '$' } },
        },
        {},
      ],
    },
    { app: app.port, logger },
  );
  base = `http://127.0.0.1:${proxy.port()}`;
});

after(async () => {
  await proxy.stop();
  await app.close();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
  method = 'POST',
  origin = base,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${origin}${path}`, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const json = { 'content-type': 'application/json' };

test('the recipe: {method, data} in, {action, payload} to the legacy app, {result, ok} back as {data, status}', async () => {
  const r = await send('/api/orders?page=3', JSON.stringify({ method: 'create', data: { sku: 'tea' } }), {
    ...json,
    'x-caller': 'shop',
  });
  assert.equal(r.status, 201, 'status 200 mapped to 201');
  assert.deepEqual(JSON.parse(r.body), {
    data: { did: 'create', with: { sku: 'tea' } },
    status: 'done',
    for: 'POST',
  });
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
  assert.equal(r.headers['x-legacy'], undefined, 'response header removed');
  assert.equal(r.headers['x-api'], 'v2', 'response header added');
  const seen = app.requests.at(-1)!;
  assert.equal(seen.url, '/legacy?page=3');
  assert.equal(seen.headers['x-adapted'], 'yes', 'request header set');
  assert.equal(seen.headers['x-caller'], undefined, 'request header removed');
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.headers['transfer-encoding'], undefined);
  const sent = JSON.stringify({ action: 'create', payload: { sku: 'tea' }, caller: 'shop', page: 3 });
  assert.equal(seen.headers['content-length'], String(Buffer.byteLength(sent)));
});

test('form to JSON on the request; the same JSON back through an identity expression', async () => {
  const r = await send('/form', 'a=1&b=two+words&a=3', {
    'content-type': 'application/x-www-form-urlencoded',
  });
  assert.equal(r.status, 200);
  const echoed = JSON.parse(r.body) as { type: string; body: string };
  assert.equal(echoed.type, 'application/json');
  assert.deepEqual(JSON.parse(echoed.body), { a: ['1', '3'], b: 'two words' });
});

test('JSON to form on the request; a result that no form can hold is 502, counted as bad_result', async () => {
  const nested = await send('/to-form', JSON.stringify({ q: { deep: 1 } }), json);
  assert.equal(nested.status, 502);
  assert.match(nested.body, /PILLION_ERR_PROXY_TRANSFORM_FAILED/);
  assert.equal(await transforms({ route: 'to-form', side: 'request', result: 'bad_result' }), 1);
  const r = await send('/to-form', JSON.stringify({ q: 'tea & cake', n: 2, tags: ['x', 'y'] }), json);
  const echoed = JSON.parse(r.body) as { type: string; body: string };
  assert.equal(echoed.type, 'application/x-www-form-urlencoded');
  assert.equal(echoed.body, 'q=tea+%26+cake&n=2&tags=x&tags=y');
});

test('XML to JSON on the response, JSON to XML on the request', async () => {
  const r = await send('/xml', undefined, {}, 'GET');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(r.body), { order: { '@id': '7', item: 'tea', qty: '2' } });

  const x = await send('/to-xml', JSON.stringify({ id: 9, item: 'scone' }), json);
  const echoed = JSON.parse(x.body) as { type: string; body: string };
  assert.equal(echoed.type, 'application/xml');
  assert.equal(echoed.body, '<order id="9"><item>scone</item></order>');
});

test('a chunked response is read whole, rewritten, and its status mapped', async () => {
  const r = await send('/chunked', undefined, {}, 'GET');
  assert.equal(r.status, 410);
  assert.deepEqual(JSON.parse(r.body), { problem: 'gone' });
  assert.equal(r.headers['transfer-encoding'], undefined);
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
});

const transforms = (labels: Record<string, string>) =>
  metricValue(proxy.metrics, 'pillion_proxy_transforms_total', labels);

test('an expression that fails answers 502 with a coded error, counted, logged with the expression and never the body', async () => {
  const before = await transforms({ route: 'failing', result: 'expression_error' });
  const r = await send('/failing', JSON.stringify({ n: 'secret-value-42' }), json);
  assert.equal(r.status, 502);
  assert.equal(r.headers['content-type'], 'application/json');
  const err = (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
  assert.equal(err.code, 'PILLION_ERR_PROXY_TRANSFORM_FAILED');
  assert.match(err.message, /D3030/);
  assert.ok(!r.body.includes('secret-value-42'), r.body);
  assert.equal(await transforms({ route: 'failing', result: 'expression_error' }), before + 1);
  const line = logged.find((l) => l.includes('"route":"failing"'));
  assert.ok(line !== undefined, 'the failure is logged');
  assert.ok(line.includes('$number(n) + 1'), 'with its expression');
  assert.ok(!logged.some((l) => l.includes('secret-value-42')), 'never with the body');
  assert.equal(app.requests.filter((q) => q.url.startsWith('/failing')).length, 0, 'nothing forwarded');
});

test('a body that is not what the route declares: 400 for a request, 502 for a response', async () => {
  const bad = await send('/api/orders', '{"method": ', json);
  assert.equal(bad.status, 400);
  assert.equal(
    (JSON.parse(bad.body) as { error: { code: string } }).error.code,
    'PILLION_ERR_PROXY_TRANSFORM_BAD_BODY',
  );
  const xml = await send('/xml', undefined, {}, 'GET');
  assert.equal(xml.status, 200, 'the well-formed one still passes');
  const r = await send('/notjson', undefined, {}, 'GET');
  assert.equal(r.status, 502);
  assert.equal(
    (JSON.parse(r.body) as { error: { code: string } }).error.code,
    'PILLION_ERR_PROXY_TRANSFORM_BAD_BODY',
  );
  assert.ok(!r.body.includes('this is not json'));
  assert.equal(await transforms({ route: 'notjson', side: 'response', result: 'bad_body' }), 1);
  assert.equal(await transforms({ route: 'legacy', side: 'request', result: 'bad_body' }), 1);
});

test('bodies over maxBodyBytes: 413 for a request (by length or as chunks arrive), 502 for a response', async () => {
  const big = JSON.stringify({ blob: 'y'.repeat(2000) });
  const r = await send('/small', big, json);
  assert.equal(r.status, 413);
  assert.equal(
    (JSON.parse(r.body) as { error: { code: string } }).error.code,
    'PILLION_ERR_PROXY_TRANSFORM_TOO_LARGE',
  );
  // Chunked: no length to refuse up front; the limit is found while reading.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${base}/small`, { method: 'POST', headers: json, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write(big.slice(0, 600));
    req.write(big.slice(600));
    req.end();
  });
  assert.equal(chunked, 413);
  const small = await send('/small', '{"ok": true}', json);
  assert.equal(small.status, 200);
  const res = await send('/big', undefined, {}, 'GET');
  assert.equal(res.status, 502);
  assert.equal(await transforms({ route: 'small', side: 'request', result: 'too_large' }), 2);
  assert.equal(await transforms({ route: 'big', side: 'response', result: 'too_large' }), 1);
});

test('a route without a transform still streams: the response starts before a 3 MiB request body has been sent', async () => {
  await new Promise<void>((resolve, reject) => {
    const req = http.request(`${base}/stream`, { method: 'POST', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        // The first line came while the body was still being sent: now send the rest.
        if (text === 'started\n') req.end(Buffer.alloc(2 * 1024 * 1024, 0x62));
      });
      res.on('end', () => {
        try {
          assert.equal(text, `started\n${3 * 1024 * 1024}\n`);
          resolve();
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
    req.write(Buffer.alloc(1024 * 1024, 0x61));
  });
});

function h2(
  path: string,
  body: string | undefined,
  headers: Record<string, string> = {},
  origin = base,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin);
    session.on('error', reject);
    const req = session.request({
      ':method': body === undefined ? 'GET' : 'POST',
      ':path': path,
      ...headers,
    });
    const parts: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      session.close();
      resolve({
        status: Number(head[':status']),
        headers: head as http.IncomingHttpHeaders,
        body: Buffer.concat(parts).toString(),
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('HTTP/2 clients: the recipe, XML conversion, a failing expression and the limits', async () => {
  const r = await h2('/api/orders', JSON.stringify({ method: 'cancel', data: 5 }), json);
  assert.equal(r.status, 201);
  assert.deepEqual(JSON.parse(r.body), { data: { did: 'cancel', with: 5 }, status: 'done', for: 'POST' });
  assert.equal(r.headers['x-api'], 'v2');
  assert.equal(r.headers['x-legacy'], undefined);
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));

  const x = await h2('/xml', undefined);
  assert.deepEqual(JSON.parse(x.body), { order: { '@id': '7', item: 'tea', qty: '2' } });

  const c = await h2('/chunked', undefined);
  assert.equal(c.status, 410);
  assert.deepEqual(JSON.parse(c.body), { problem: 'gone' });

  const f = await h2('/form', 'k=v', { 'content-type': 'application/x-www-form-urlencoded' });
  assert.deepEqual(JSON.parse((JSON.parse(f.body) as { body: string }).body), { k: 'v' });

  const bad = await h2('/failing', '{"n": "x"}', json);
  assert.equal(bad.status, 502);
  assert.equal(
    (JSON.parse(bad.body) as { error: { code: string } }).error.code,
    'PILLION_ERR_PROXY_TRANSFORM_FAILED',
  );

  assert.equal((await h2('/small', JSON.stringify({ blob: 'z'.repeat(2000) }), json)).status, 413);
  assert.equal((await h2('/big', undefined)).status, 502);
});

test('an expression that does not parse is a config error at its line:col', async () => {
  const text = `app: { port: 8081 }
inbound:
  listeners: [{ address: ":8080" }]
  routes:
    - match: { prefix: /v2 }
      transform:
        request:
          body: '{ "action": method, "payload": '
`;
  const r = await parsePillionConfig(text, 'pillion.yaml', {});
  assert.ok(!r.ok);
  const issue = r.issues[0]!;
  assert.equal(issue.line, 8);
  assert.equal(issue.col, 17);
  assert.equal(issue.code, 'PILLION_ERR_CONFIG_BAD_VALUE');
  assert.match(issue.message, /JSONata expression does not parse: S0203/);
  assert.equal(issue.path, 'inbound.routes[0].transform.request.body');

  const direct = await parsePillionConfig(
    `app: { port: 8081 }
inbound:
  listeners: [{ address: ":8080" }]
  routes:
    - directResponse: { status: 200 }
      transform: { response: { body: '$' } }
`,
    'pillion.yaml',
    {},
  );
  assert.ok(!direct.ok);
  assert.match(direct.issues[0]!.message, /nothing to transform/);
});

test('a transformed response whose body stalls gets 504 (nothing of it was sent), over HTTP/1.1 and HTTP/2', async () => {
  const stalling = await startBackend((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
    res.write('{"half": ');
  });
  const p = await startInbound(
    {
      listeners: [{ address: '127.0.0.1:0' }],
      readinessGate: false,
      timeouts: { idle: '300ms' },
      routes: [{ transform: { response: { body: '$' } } }],
    },
    { app: stalling.port },
  );
  try {
    const at = `http://127.0.0.1:${p.port()}`;
    const h1 = await new Promise<number>((resolve, reject) => {
      http
        .get(`${at}/x`, { agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
    assert.equal(h1, 504);
    const session = http2.connect(at);
    try {
      const h2status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/x' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.end();
      });
      assert.equal(h2status, 504);
    } finally {
      session.close();
    }
  } finally {
    await p.stop();
    await stalling.close();
  }
});

test('a client that leaves while its body is being buffered (HTTP/1.1 and HTTP/2) leaves nothing behind', async () => {
  const forwarded = () => app.requests.filter((r) => r.url.startsWith('/legacy')).length;
  const before = forwarded();
  const c = await RawClient.connect(proxy.port());
  c.write(
    'POST /api/orders HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"method"',
  );
  await waitFor(async () => (await metricValue(proxy.metrics, 'pillion_proxy_active_requests', {})) === 1, {
    what: 'the request to be in progress',
  });
  c.destroy();
  const h2c = http2.connect(base);
  const req = h2c.request({ ':method': 'POST', ':path': '/api/orders', 'content-type': 'application/json' });
  req.on('error', () => {}); // cancelled by the destroy below, as meant
  req.write('{"method": ');
  await waitFor(async () => (await metricValue(proxy.metrics, 'pillion_proxy_active_requests', {})) === 1, {
    what: 'the HTTP/2 request to be in progress',
  });
  h2c.destroy();
  await quiet(proxy);
  assert.equal(forwarded(), before, 'neither was forwarded');
});

test('keep-alive: transformed exchanges, a refused one among them, follow each other on one connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const one = (path: string, body: string) =>
    new Promise<Answer>((resolve, reject) => {
      const req = http.request(`${base}${path}`, { method: 'POST', headers: json, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    const connections = app.connections;
    const a = await one('/api/orders', JSON.stringify({ method: 'a', data: 1 }));
    const b = await one('/failing', '{"n": "x"}');
    const c = await one('/api/orders', JSON.stringify({ method: 'c', data: 3 }));
    const d = await one('/plain', 'untouched');
    assert.deepEqual([a.status, b.status, c.status, d.status], [201, 502, 201, 200]);
    assert.equal((JSON.parse(c.body) as { data: { did: string } }).data.did, 'c');
    assert.equal((JSON.parse(d.body) as { body: string }).body, 'untouched');
    assert.ok(app.connections - connections <= 2, 'upstream connections are reused');
  } finally {
    agent.destroy();
  }
});

test('Expect: 100-continue on a transformed route is answered by the proxy, which reads the (chunked) body itself without its framing', async () => {
  const r = await new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      `${base}/api/orders`,
      { method: 'POST', headers: { ...json, expect: '100-continue' }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('continue', () => req.end(JSON.stringify({ method: 'later', data: null })));
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.equal(r.status, 201, r.body);
  assert.equal((JSON.parse(r.body) as { data: { did: string } }).data.did, 'later');
  assert.equal(app.requests.at(-1)!.headers.expect, undefined, 'the upstream gets the whole body, no Expect');
});

test('outbound routes take the same transform', async () => {
  const out = await startOutbound({
    upstreams: { legacy: { endpoints: [`127.0.0.1:${app.port}`] } },
    routes: [
      {
        match: { prefix: '/v2' },
        upstream: 'legacy',
        rewritePrefix: '/legacy',
        transform: {
          request: { body: '{ "action": method, "payload": data }' },
          response: { body: '{ "data": result.with }' },
        },
      },
    ],
  });
  try {
    const r = await send(
      '/v2',
      JSON.stringify({ method: 'ping', data: [1, 2] }),
      json,
      'POST',
      `http://127.0.0.1:${out.port()}`,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { data: [1, 2] });
    assert.equal(
      await metricValue(out.metrics, 'pillion_proxy_transforms_total', { section: 'outbound', result: 'ok' }),
      2,
    );
  } finally {
    await out.stop();
  }
});

test('a reload whose expression does not parse keeps the running transform; a good one replaces it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pillion-transform-reload-'));
  const port = await freePort();
  const config = join(dir, 'pillion.yaml');
  const write = (expr: string) =>
    writeFile(
      config,
      `admin: { listen: "127.0.0.1:0" }
app: { port: ${app.port}, health: { protocol: tcp } }
inbound:
  listeners: [{ address: "127.0.0.1:${port}" }]
  readinessGate: false
  routes:
    - match: { prefix: /v }
      transform: { response: { body: '${expr}' } }
`,
    );
  await write('{ "v": 1 }');
  const runtime = await startRuntimeOn(config);
  const value = async () => {
    const r = await fetch(`http://127.0.0.1:${port}/v`);
    return (await r.json()) as { v: number };
  };
  try {
    assert.deepEqual(await value(), { v: 1 });
    await write('{ "v": ');
    const bad = await runtime.reload('test');
    assert.ok(!bad.ok, 'the reload is refused');
    assert.deepEqual(await value(), { v: 1 }, 'the running transform is kept');
    await write('{ "v": 2 }');
    assert.ok((await runtime.reload('test')).ok);
    assert.deepEqual(await value(), { v: 2 });
  } finally {
    await runtime.shutdown('test');
    await rm(dir, { recursive: true, force: true });
  }
});

test('HTTP/2 and HTTP/1.1 clients to an HTTP/2 upstream: both bodies transformed', async () => {
  const upstream = http2.createServer();
  upstream.on('stream', (stream, headers) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.on('end', () => {
      const got = JSON.parse(Buffer.concat(parts).toString()) as { action: string };
      stream.respond({
        ':status': 200,
        'content-type': 'application/json',
        'x-seen-type': String(headers['content-type']),
      });
      stream.end(JSON.stringify({ result: got.action, ok: true }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as { port: number }).port;
  const p = await startInbound(
    {
      listeners: [{ address: '127.0.0.1:0' }],
      readinessGate: false,
      upstreams: { modern: { endpoints: [`127.0.0.1:${port}`], protocol: 'h2' } },
      routes: [
        {
          upstream: 'modern',
          transform: {
            request: { body: '{ "action": method }' },
            response: { body: '{ "data": result }', status: { '200': 202 } },
          },
        },
      ],
    },
    {},
  );
  const session = http2.connect(`http://127.0.0.1:${p.port()}`);
  try {
    const r = await new Promise<Answer>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/x', 'content-type': 'application/json' });
      let head: http2.IncomingHttpHeaders = {};
      let text = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (head = h));
      req.on('data', (c: string) => (text += c));
      req.on('end', () =>
        resolve({ status: Number(head[':status']), headers: head as http.IncomingHttpHeaders, body: text }),
      );
      req.on('error', reject);
      req.end(JSON.stringify({ method: 'sync' }));
    });
    assert.equal(r.status, 202);
    assert.deepEqual(JSON.parse(r.body), { data: 'sync' });
    assert.equal(r.headers['x-seen-type'], 'application/json');
    // An HTTP/1.1 client's request goes to the HTTP/2 upstream as an HTTP/2 exchange: transformed once, both ways.
    const r1 = await send(
      '/x',
      JSON.stringify({ method: 'again' }),
      json,
      'POST',
      `http://127.0.0.1:${p.port()}`,
    );
    assert.equal(r1.status, 202, r1.body);
    assert.deepEqual(JSON.parse(r1.body), { data: 'again' });
    assert.equal(r1.headers['content-length'], String(Buffer.byteLength(r1.body)));
  } finally {
    session.close();
    await p.stop();
    upstream.close();
  }
});

test('a retried request sends the transformed body again (HTTP/1.1 and HTTP/2 clients)', async () => {
  // Fails every other request with 503; answers the others with the body it got.
  let n = 0;
  const flaky = await startBackend((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (n++ % 2 === 0) {
        res.writeHead(503);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.concat(parts));
    });
  });
  const out = await startOutbound({
    upstreams: { legacy: { endpoints: [`127.0.0.1:${flaky.port}`] } },
    routes: [
      {
        match: { prefix: '/' },
        upstream: 'legacy',
        retries: { attempts: 2, retryOn: '5xx' },
        transform: { request: { body: '{ "action": method, "payload": data }' } },
      },
    ],
  });
  try {
    const body = JSON.stringify({ method: 'ping', data: [1, 2] });
    const want = { action: 'ping', payload: [1, 2] };
    const origin = `http://127.0.0.1:${out.port()}`;
    const r1 = await send('/x', body, json, 'POST', origin);
    assert.equal(r1.status, 200, r1.body);
    assert.deepEqual(JSON.parse(r1.body), want);
    const r2 = await h2('/x', body, json, origin);
    assert.equal(r2.status, 200, r2.body);
    assert.deepEqual(JSON.parse(r2.body), want);
    assert.equal(n, 4, 'each request was tried twice');
  } finally {
    await out.stop();
    await flaky.close();
  }
});
