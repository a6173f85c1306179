// JWT authentication through the inbound proxy over real sockets, with a real JWKS endpoint on
// port 0 and a fake clock for expiry, skew and the JWKS cache.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { base64url, exportSPKI, SignJWT } from 'jose';
import { FakeClock } from '../../lib/clock.js';
import { waitFor } from '../../lib/wait-for.js';
import { type Backend, echoBackend, get, metricValue, rawRequest, startInbound } from '../test-support.js';
import { ISSUER, JwksServer, jwksOf, makeKey, sign, type TestKey } from './test-issuer.js';

const LISTEN = [{ address: '127.0.0.1:0' }];
const T0 = 1_700_000_000_000;
const NOW = T0 / 1000;

interface Echo {
  url: string;
  headers: Record<string, string>;
}
const echo = (b: Buffer) => JSON.parse(b.toString()) as Echo;

let app: Backend;
let k1: TestKey;
let k2: TestKey;
let ec: TestKey;
before(async () => {
  app = await echoBackend();
  [k1, k2, ec] = await Promise.all([makeKey('k1'), makeKey('k2'), makeKey('ec1', 'ES256')]);
});
after(() => app.close());

function issuer(extra: Record<string, unknown>) {
  return {
    issuer: ISSUER,
    audiences: ['orders'],
    outputClaimToHeaders: [
      { header: 'X-User-Id', claim: 'sub' },
      { header: 'X-User-Roles', claim: 'roles' },
      { header: 'X-Tenant', claim: 'org.tenant' },
    ],
    ...extra,
  };
}

describe('JWT authentication', () => {
  test('a valid token passes with its claims as headers; spoofed claim headers are removed; no token passes without them', async () => {
    const clock = new FakeClock(T0);
    const p = await startInbound(
      { listeners: LISTEN, jwt: { issuers: [issuer({ jwks: jwksOf(k1, ec) })] } },
      { app: app.port, clock },
    );
    try {
      const token = await sign(k1, NOW, { roles: ['admin', 'ops'], org: { tenant: 'acme' } });
      const ok = await rawRequest(
        p.port(),
        get('/x', { Authorization: `Bearer ${token}`, 'X-User-Id': 'mallory', 'x-user-roles': 'admin' }),
      );
      assert.equal(ok.status, 200);
      const h = echo(ok.body).headers;
      assert.equal(h['x-user-id'], 'user-1');
      assert.equal(h['x-user-roles'], 'admin,ops');
      assert.equal(h['x-tenant'], 'acme');
      assert.equal(h.authorization, undefined, 'the token is not forwarded by default');
      // An ES256 key of the same issuer works too.
      const ecToken = await sign(ec, NOW, { sub: 'user-2' });
      assert.equal(
        echo((await rawRequest(p.port(), get('/x', { Authorization: `Bearer ${ecToken}` }))).body).headers[
          'x-user-id'
        ],
        'user-2',
      );

      const anon = await rawRequest(p.port(), get('/x', { 'X-User-Id': 'mallory', 'X-User-Roles': 'admin' }));
      assert.equal(anon.status, 200, 'a request without a token passes');
      assert.equal(echo(anon.body).headers['x-user-id'], undefined);
      assert.equal(echo(anon.body).headers['x-user-roles'], undefined);
      assert.equal(await metricValue(p.metrics, 'pillion_jwt_requests_total', { result: 'no_token' }), 1);
      assert.equal(await metricValue(p.metrics, 'pillion_jwt_requests_total', { result: 'valid' }), 2);
    } finally {
      await p.stop();
    }
  });

  test('refused tokens: alg none, HS256 signed with the public key, wrong issuer and audience, bad signature, malformed, oversized', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pillion-jwt-'));
    const clock = new FakeClock(T0);
    const p = await startInbound(
      {
        listeners: LISTEN,
        jwt: { issuers: [issuer({ jwks: jwksOf(k1) })], maxTokenSize: 2048 },
        accessLog: { path: join(dir, 'access.log') },
      },
      { app: app.port, clock },
    );
    try {
      const claims = { iss: ISSUER, sub: 'user-1', aud: 'orders', exp: NOW + 3600 };
      const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
      const none = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
      // The classic confusion: the RSA public key's PEM used as an HMAC secret.
      const pem = await exportSPKI(
        (await import('node:crypto')).createPublicKey({ key: k1.jwk as never, format: 'jwk' }) as never,
      );
      const hs = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .sign(new TextEncoder().encode(pem));
      const otherIss = await sign(k1, NOW, { iss: 'https://evil.test' });
      const otherAud = await sign(k1, NOW, { aud: 'billing' });
      const forged = await sign(k2, NOW, {}, { kid: 'k1' });
      const cases: [string, string, string][] = [
        [none, 'none', 'algorithm|malformed'],
        [hs, 'hs256-with-public-key', 'algorithm|signature|unknown_kid'],
        [otherIss, 'wrong issuer', 'unknown_issuer'],
        [otherAud, 'wrong audience', 'audience'],
        [forged, 'signed by another key', 'signature'],
        ['not.a.jwt', 'malformed', 'malformed'],
        ['abc', 'one segment', 'malformed'],
        [`${'a'.repeat(3000)}`, 'oversized', 'token_too_large'],
      ];
      for (const [i, [token, what, reason]] of cases.entries()) {
        const r = await rawRequest(p.port(), get('/x', { Authorization: `Bearer ${token}` }));
        assert.equal(r.status, 401, what);
        assert.equal(r.headers['www-authenticate'], 'Bearer error="invalid_token"', what);
        const details = await lineDetails(join(dir, 'access.log'), i);
        assert.ok(new RegExp(reason).test(details), `${what}: ${details} is not ${reason}`);
      }
      const log = await readFile(join(dir, 'access.log'), 'utf8');
      assert.ok(
        !log.includes(forged) && !log.includes(otherAud.split('.')[1]!),
        'no token in the access log',
      );
    } finally {
      await p.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('exp and nbf against the clock, with and without skew', async () => {
    const clock = new FakeClock(T0);
    const strict = await startInbound(
      { listeners: LISTEN, jwt: { issuers: [issuer({ jwks: jwksOf(k1), clockSkew: '0s' })], cacheSize: 0 } },
      { app: app.port, clock },
    );
    const lenient = await startInbound(
      { listeners: LISTEN, jwt: { issuers: [issuer({ jwks: jwksOf(k1), clockSkew: '2m' })], cacheSize: 0 } },
      { app: app.port, clock },
    );
    try {
      const expired = await sign(k1, NOW - 3600, { exp: NOW - 60 });
      const future = await sign(k1, NOW, { nbf: NOW + 60 });
      const status = async (port: number, t: string) =>
        (await rawRequest(port, get('/x', { Authorization: `Bearer ${t}` }))).status;
      assert.equal(await status(strict.port(), expired), 401);
      assert.equal(await status(strict.port(), future), 401);
      assert.equal(await status(lenient.port(), expired), 200, 'a minute late is within 2m of skew');
      assert.equal(await status(lenient.port(), future), 200);
      await clock.advance(5 * 60_000);
      assert.equal(await status(lenient.port(), expired), 401, 'beyond the skew');
      assert.equal(await status(strict.port(), future), 200, 'valid once nbf has passed');
    } finally {
      await strict.stop();
      await lenient.stop();
    }
  });

  test('a cached token is refused once it expires', async () => {
    const clock = new FakeClock(T0);
    const p = await startInbound(
      { listeners: LISTEN, jwt: { issuers: [issuer({ jwks: jwksOf(k1), clockSkew: '0s' })] } },
      { app: app.port, clock },
    );
    try {
      const t = await sign(k1, NOW, { exp: NOW + 60 });
      const status = async () =>
        (await rawRequest(p.port(), get('/x', { Authorization: `Bearer ${t}` }))).status;
      assert.equal(await status(), 200);
      assert.equal(await status(), 200);
      assert.equal(p.module.filtersState()?.jwt?.cachedTokens, 1);
      await clock.advance(61_000);
      assert.equal(await status(), 401);
    } finally {
      await p.stop();
    }
  });

  test('the token cache is bounded: the least recently used token goes first', async () => {
    const jwks = await JwksServer.start([k1]);
    const clock = new FakeClock(T0);
    const p = await startInbound(
      { listeners: LISTEN, jwt: { issuers: [issuer({ jwksUri: jwks.uri })], cacheSize: 2 } },
      { app: app.port, clock },
    );
    try {
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((sub) => sign(k1, NOW, { sub })));
      const status = async (t: string) =>
        (await rawRequest(p.port(), get('/x', { Authorization: `Bearer ${t}` }))).status;
      assert.equal(await status(a!), 200);
      assert.equal(await status(b!), 200);
      assert.equal(await status(a!), 200); // a is now the most recently used
      assert.equal(await status(c!), 200); // so b goes
      assert.equal(p.module.filtersState()?.jwt?.cachedTokens, 2);
      // k1 leaves the endpoint's set (picked up by a refetch for k2): only cached tokens still pass.
      jwks.keys = [k2];
      await clock.advance(31_000);
      assert.equal(await status(await sign(k2, NOW + 31)), 200);
      assert.equal(jwks.fetches, 2);
      // The k2 token took the place of a, then the least recently used of a and c.
      assert.equal(await status(c!), 200, 'cached');
      assert.equal(await status(b!), 401, 'evicted, and its key is gone');
      assert.equal(await status(a!), 401, 'evicted by the k2 token');
    } finally {
      await p.stop();
      await jwks.close();
    }
  });

  test('tokens from a query parameter, a cookie and another header with a prefix; forwardOriginalToken', async () => {
    const p = await startInbound(
      {
        listeners: LISTEN,
        jwt: {
          issuers: [
            issuer({
              jwks: jwksOf(k1),
              fromHeaders: [{ name: 'X-Auth', prefix: 'Token ' }],
              fromParams: ['access_token'],
              fromCookies: ['session'],
              forwardOriginalToken: true,
            }),
          ],
        },
      },
      { app: app.port },
    );
    try {
      const t = await sign(k1, Math.floor(Date.now() / 1000));
      const q = await rawRequest(p.port(), get(`/x?a=1&access_token=${t}`));
      assert.equal(echo(q.body).headers['x-user-id'], 'user-1');
      const c = await rawRequest(p.port(), get('/x', { Cookie: `theme=dark; session=${t}` }));
      assert.equal(echo(c.body).headers['x-user-id'], 'user-1');
      const h = await rawRequest(p.port(), get('/x', { 'X-Auth': `Token ${t}` }));
      assert.equal(echo(h.body).headers['x-user-id'], 'user-1');
      assert.equal(echo(h.body).headers['x-auth'], `Token ${t}`, 'forwardOriginalToken keeps the header');
      // Authorization: Bearer is not a location of this issuer: ignored, as Istio ignores it.
      const b = await rawRequest(p.port(), get('/x', { Authorization: `Bearer ${t}` }));
      assert.equal(b.status, 200);
      assert.equal(echo(b.body).headers['x-user-id'], undefined);
      const bad = await rawRequest(p.port(), get('/x?access_token=garbage'));
      assert.equal(bad.status, 401);
    } finally {
      await p.stop();
    }
  });

  test('jwksUri: cached per Cache-Control, a rotated kid is fetched once, the last good set is kept while the endpoint is down', async () => {
    const jwks = await JwksServer.start([k1]);
    const clock = new FakeClock(T0);
    const p = await startInbound(
      { listeners: LISTEN, jwt: { issuers: [issuer({ jwksUri: jwks.uri })], cacheSize: 0 } },
      { app: app.port, clock },
    );
    try {
      assert.equal(jwks.fetches, 1, 'fetched at start');
      const status = async (t: string) =>
        (await rawRequest(p.port(), get('/x', { Authorization: `Bearer ${t}` }))).status;
      const t1 = await sign(k1, NOW);
      assert.equal(await status(t1), 200);
      assert.equal(jwks.fetches, 1, 'served from the cache');
      // Rotation: the endpoint now publishes k2; a token with kid k2 triggers one refetch.
      jwks.keys = [k1, k2];
      const t2 = await sign(k2, NOW);
      assert.equal(await status(t2), 200);
      assert.equal(jwks.fetches, 2);
      // An unknown kid does not make every request a fetch: once per 30 s at most.
      const k3 = await makeKey('k3');
      const t3 = await sign(k3, NOW);
      assert.equal(await status(t3), 401, 'within 30 s of the last refetch: none');
      assert.equal(jwks.fetches, 2);
      await clock.advance(31_000);
      assert.equal(await status(t3), 401);
      assert.equal(await status(t3), 401);
      assert.equal(jwks.fetches, 3);
      // Down: the background refresh (max-age=300) fails, the last good keys stay.
      jwks.down = true;
      await clock.advance(301_000);
      await waitFor(() => p.module.filtersState()?.jwt?.issuers[0]?.lastError !== null, {
        what: 'the failed refresh',
      });
      assert.equal(await status(await sign(k1, NOW + 332)), 200);
      assert.equal(await status(await sign(k2, NOW + 332)), 200);
      const state = p.module.filtersState()!.jwt!.issuers[0]!;
      assert.deepEqual(
        state.keys.map((k) => k.kid),
        ['k1', 'k2'],
      );
      assert.equal(state.lastError, 'HTTP 503');
      assert.equal(
        await metricValue(p.metrics, 'pillion_jwks_fetches_total', { result: 'error', why: 'refresh' }),
        1,
      );
      // Back up: the next refresh (30 s after a failure) takes the endpoint's set again.
      jwks.down = false;
      jwks.keys = [k2];
      await clock.advance(31_000);
      await waitFor(() => p.module.filtersState()?.jwt?.issuers[0]?.lastError === null, {
        what: 'the refresh',
      });
      assert.deepEqual(
        p.module.filtersState()!.jwt!.issuers[0]!.keys.map((k) => k.kid),
        ['k2'],
      );
    } finally {
      await p.stop();
      await jwks.close();
    }
  });

  test('config: no issuer without keys, no HS256 or none in algorithms', async () => {
    const { inboundSchema } = await import('../config.js');
    const bad = (jwt: unknown) => !inboundSchema.safeParse({ listeners: LISTEN, jwt }).success;
    assert.ok(bad({ issuers: [{ issuer: ISSUER }] }));
    assert.ok(bad({ issuers: [{ issuer: ISSUER, jwks: '{}', algorithms: ['HS256'] }] }));
    assert.ok(bad({ issuers: [{ issuer: ISSUER, jwks: '{}', algorithms: ['none'] }] }));
    assert.ok(bad({ issuers: [{ issuer: ISSUER, jwks: '{}', jwksUri: 'http://x/' }] }));
    // pillion validate: an inline JWKS is checked by the schema, a JWKS file by the preflight.
    const inline = inboundSchema.safeParse({
      listeners: LISTEN,
      jwt: { issuers: [{ issuer: ISSUER, jwks: 'nope' }] },
    });
    assert.ok(!inline.success);
    assert.deepEqual(inline.error.issues[0]!.path, ['jwt', 'issuers', 0, 'jwks']);
    const { proxyPreflight } = await import('../preflight.js');
    const missing = inboundSchema.parse({
      listeners: LISTEN,
      jwt: { issuers: [{ issuer: ISSUER, jwksFile: '/nonexistent/jwks.json' }] },
    });
    assert.deepEqual(
      (await proxyPreflight('inbound', missing)).map((i) => `${i.path.join('.')}: ${i.message}`),
      ['inbound.jwt.issuers.0.jwksFile: /nonexistent/jwks.json: cannot read (ENOENT)'],
    );
    // A JWKS of only a symmetric key is refused.
    await assert.rejects(
      startInbound(
        {
          listeners: LISTEN,
          jwt: {
            issuers: [{ issuer: ISSUER, jwks: JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }) }],
          },
        },
        { app: app.port },
      ),
      /no public keys/,
    );
  });
});

/** response_code_details of the access log's line `n` (from 0), once it is written. */
async function lineDetails(file: string, n: number): Promise<string> {
  return waitFor(
    async () => {
      const lines = (await readFile(file, 'utf8').catch(() => '')).trim().split('\n');
      if (lines.length <= n || lines[n] === '') return undefined;
      return (JSON.parse(lines[n]!) as { response_code_details?: string }).response_code_details ?? '-';
    },
    { what: `access log line ${n + 1}` },
  );
}
