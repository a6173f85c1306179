// The same filters on HTTP/2 (h2c with prior knowledge): claims to headers with spoofed copies
// removed, 401 with its challenge, 403, and 429 with its headers; and an inbound without filters
// does not load their code.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeClock } from '../../lib/clock.js';
import { type Backend, echoBackend, startInbound } from '../test-support.js';
import { jwksOf, makeKey, sign, type TestKey } from './test-issuer.js';

let app: Backend;
let key: TestKey;
before(async () => {
  app = await echoBackend();
  key = await makeKey('k1');
});
after(() => app.close());

function h2get(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      const s = http2.connect(`http://127.0.0.1:${port}`);
      s.on('error', reject);
      const r = s.request({ ':path': path, ...headers });
      let body = '';
      let head: http2.IncomingHttpHeaders = {};
      r.setEncoding('utf8');
      r.on('response', (h) => (head = h));
      r.on('data', (c: string) => (body += c));
      r.on('end', () => {
        s.close();
        resolve({ status: Number(head[':status']), headers: head, body });
      });
      r.on('error', reject);
    },
  );
}

test('HTTP/2: JWT claims to headers, 401, 403 and 429 as on HTTP/1.1', async () => {
  const clock = new FakeClock();
  const p = await startInbound(
    {
      listeners: [{ address: '127.0.0.1:0' }],
      jwt: {
        issuers: [
          {
            issuer: 'https://issuer.test',
            jwks: jwksOf(key),
            outputClaimToHeaders: [{ header: 'X-User-Id', claim: 'sub' }],
          },
        ],
      },
      authorization: {
        policies: [
          { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
        ],
      },
      rateLimits: [{ name: 'one', maxTokens: 3, fillInterval: '1m' }],
    },
    { app: app.port, clock },
  );
  try {
    const token = await sign(key, Math.floor(clock.now() / 1000));
    const ok = await h2get(p.port(), '/x', { authorization: `Bearer ${token}`, 'x-user-id': 'mallory' });
    assert.equal(ok.status, 200);
    const seen = JSON.parse(ok.body) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-user-id'], 'user-1');
    assert.equal(seen.headers.authorization, undefined);
    const bad = await h2get(p.port(), '/x', { authorization: 'Bearer e30.e30.e30' });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['www-authenticate'], 'Bearer error="invalid_token"');
    assert.equal((await h2get(p.port(), '/admin')).status, 403);
    // The 401 came before the rate limit; /x and /admin took two of the three tokens.
    assert.equal((await h2get(p.port(), '/x')).status, 200);
    const limited = await h2get(p.port(), '/x');
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '60');
    assert.equal(limited.headers['ratelimit-remaining'], '0');
  } finally {
    await p.stop();
  }
});

test('an inbound without filters loads neither their code nor jose', () => {
  const support = fileURLToPath(new URL('../test-support.js', import.meta.url));
  const script = `
    import { startInbound, echoBackend } from ${JSON.stringify(support)};
    const app = await echoBackend();
    const p = await startInbound({ listeners: [{ address: '127.0.0.1:0' }] }, { app: app.port });
    await p.stop(); await app.close();
  `;
  // NODE_DEBUG=esm names every module the process loads.
  const r = spawnSync(process.execPath, ['--input-type=module', '--eval', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_DEBUG: 'esm' },
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr);
  const loaded = r.stderr;
  assert.ok(/proxy-module\.js/.test(loaded), 'the debug output lists loaded modules');
  assert.ok(!/filters\/(index|jwt|authz|rate-limit)\.js/.test(loaded), 'no filter module loaded');
  assert.ok(!/node_modules\/jose\//.test(loaded), 'jose not loaded');
});
