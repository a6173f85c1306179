// Local rate limits through the inbound proxy over real sockets, on a fake clock: bursts, refill,
// keys, the key table's bound, the headers of a 429, per-route counting, and reload.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import {
  type Backend,
  echoBackend,
  get,
  inboundSection,
  metricValue,
  RawClient,
  rawRequest,
  startInbound,
} from '../test-support.js';

let app: Backend;
before(async () => {
  app = await echoBackend();
});
after(() => app.close());

const LISTEN = [{ name: 'web', address: '127.0.0.1:0' }];

describe('local rate limits', () => {
  test('a burst of maxTokens passes, the next gets 429 with Retry-After and RateLimit headers; tokens refill on the clock', async () => {
    const clock = new FakeClock();
    const p = await startInbound(
      {
        listeners: LISTEN,
        routes: [{ name: 'api', match: { prefix: '/api' } }, { name: 'other' }],
        rateLimits: [
          { name: 'api-burst', routes: ['api'], maxTokens: 3, tokensPerFill: 1, fillInterval: '2s' },
        ],
      },
      { app: app.port, clock },
    );
    try {
      // One keep-alive connection: a 429 does not close it.
      const c = await RawClient.connect(p.port());
      const send = async (path: string) => {
        c.write(get(path));
        return c.readResponse();
      };
      for (let i = 0; i < 3; i++) assert.equal((await send('/api/x')).status, 200, `burst ${i}`);
      const limited = await send('/api/x');
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '2');
      assert.equal(limited.headers['ratelimit-limit'], '3, 3;w=6');
      assert.equal(limited.headers['ratelimit-remaining'], '0');
      assert.equal(limited.headers['ratelimit-reset'], '6');
      assert.equal((await send('/other')).status, 200, 'another route is not limited');
      await clock.advance(1999);
      assert.equal((await send('/api/x')).status, 429, 'no token before the interval');
      await clock.advance(1);
      assert.equal((await send('/api/x')).status, 200, 'one token after it');
      assert.equal((await send('/api/x')).status, 429);
      await clock.advance(60_000);
      for (let i = 0; i < 3; i++)
        assert.equal((await send('/api/x')).status, 200, 'refilled to maxTokens, no more');
      assert.equal((await send('/api/x')).status, 429);
      c.destroy();
      assert.equal(
        await metricValue(p.metrics, 'pillion_ratelimit_requests_total', {
          route: 'api',
          limit: 'api-burst',
          result: 'limited',
        }),
        4,
      );
      assert.equal(
        await metricValue(p.metrics, 'pillion_ratelimit_requests_total', {
          route: 'api',
          limit: 'api-burst',
          result: 'allowed',
        }),
        7,
      );
      assert.equal(await metricValue(p.metrics, 'pillion_ratelimit_requests_total', { route: 'other' }), 0);
    } finally {
      await p.stop();
    }
  });

  test('keyed by a header: one bucket per value, requests without it share one; the key table is bounded', async () => {
    const clock = new FakeClock();
    const p = await startInbound(
      {
        listeners: LISTEN,
        rateLimits: [
          {
            name: 'per-tenant',
            key: { by: 'header', name: 'X-Tenant' },
            maxTokens: 1,
            fillInterval: '1m',
            maxKeys: 2,
          },
        ],
      },
      { app: app.port, clock },
    );
    try {
      const as = async (tenant?: string) =>
        (await rawRequest(p.port(), get('/', tenant ? { 'X-Tenant': tenant } : {}))).status;
      assert.equal(await as('a'), 200);
      assert.equal(await as('a'), 429);
      assert.equal(await as('b'), 200);
      assert.equal(await as(), 200);
      assert.equal(await as(), 429, 'no key: the shared bucket');
      assert.equal(p.module.filtersState()!.rateLimits[0]!.keys, 2);
      // A third key evicts the least recently used (a), which starts full again.
      assert.equal(await as('c'), 200);
      assert.equal(p.module.filtersState()!.rateLimits[0]!.keys, 2);
      assert.equal(
        await metricValue(p.metrics, 'pillion_ratelimit_keys_evicted_total', { limit: 'per-tenant' }),
        1,
      );
      assert.equal(await as('a'), 200);
      assert.equal(await as('b'), 200, 'b was evicted by a');
    } finally {
      await p.stop();
    }
  });

  test('keyed by client address; a reload with the same limit keeps the buckets, a changed limit starts new ones', async () => {
    const clock = new FakeClock();
    const raw = {
      listeners: LISTEN,
      rateLimits: [{ name: 'per-client', key: { by: 'clientAddress' }, maxTokens: 2, fillInterval: '1m' }],
    };
    const p = await startInbound(raw, { app: app.port, clock });
    try {
      const s = async () => (await rawRequest(p.port(), get('/'))).status;
      assert.equal(await s(), 200);
      assert.equal(await s(), 200);
      assert.equal(await s(), 429);
      assert.equal(
        await p.module.reload(inboundSection({ ...raw, headers: { requestId: false } }, app.port)),
        'applied',
      );
      assert.equal(await s(), 429, 'the same limit keeps its buckets across a reload');
      const changed = { ...raw, rateLimits: [{ ...raw.rateLimits[0]!, maxTokens: 5 }] };
      assert.equal(await p.module.reload(inboundSection(changed, app.port)), 'applied');
      assert.equal(await s(), 200, 'a changed limit starts full');
    } finally {
      await p.stop();
    }
  });

  test('keyed by a JWT claim: each tenant its own bucket, after authentication', async () => {
    const { jwksOf, makeKey, sign } = await import('./test-issuer.js');
    const key = await makeKey('k1');
    const clock = new FakeClock();
    const p = await startInbound(
      {
        listeners: LISTEN,
        jwt: { issuers: [{ issuer: 'https://issuer.test', jwks: jwksOf(key) }] },
        rateLimits: [
          { name: 'per-org', key: { by: 'claim', name: 'org' }, maxTokens: 1, fillInterval: '1m' },
        ],
      },
      { app: app.port, clock },
    );
    try {
      const now = Math.floor(clock.now() / 1000);
      const [a, b] = [await sign(key, now, { org: 'a' }), await sign(key, now, { org: 'b' })];
      const as = async (t: string) =>
        (await rawRequest(p.port(), get('/', { Authorization: `Bearer ${t}` }))).status;
      assert.equal(await as(a), 200);
      assert.equal(await as(a), 429);
      assert.equal(await as(b), 200, 'another org, another bucket');
    } finally {
      await p.stop();
    }
  });

  test('config: routes and listeners named by a limit exist; header and claim keys need a name', async () => {
    const { inboundSchema } = await import('../config.js');
    const issues = (rateLimits: unknown[]) => {
      const r = inboundSchema.safeParse({ listeners: LISTEN, rateLimits });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    assert.match(
      issues([{ name: 'a', routes: ['nope'], maxTokens: 1, fillInterval: '1s' }])[0]!,
      /no route is named nope/,
    );
    assert.match(
      issues([{ name: 'a', listeners: ['x'], maxTokens: 1, fillInterval: '1s' }])[0]!,
      /no listener is named x/,
    );
    assert.match(
      issues([{ name: 'a', key: { by: 'claim' }, maxTokens: 1, fillInterval: '1s' }])[0]!,
      /needs key.name/,
    );
    assert.deepEqual(issues([{ name: 'a', maxTokens: 1, fillInterval: '1s' }]), []);
  });
});
