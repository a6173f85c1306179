// Authorization through the inbound proxy over real sockets: Istio's evaluation order, the seed's
// policy with mTLS principals from real certificates, path-bypass attempts, and CUSTOM with a real
// check service that is up, slow and down.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../lib/wait-for.js';
import {
  type Backend,
  echoBackend,
  get,
  listen,
  metricValue,
  rawRequest,
  startInbound,
} from '../test-support.js';
import { jwksOf, makeKey, sign, type TestKey } from './test-issuer.js';
import { workloadCerts, type WorkloadCerts } from './test-workload-certs.js';

const LISTEN = [{ address: '127.0.0.1:0' }];

let app: Backend;
let key: TestKey;
before(async () => {
  app = await echoBackend();
  key = await makeKey('k1');
});
after(() => app.close());

const status = async (port: number, req: string) => (await rawRequest(port, req)).status;

describe('authorization', () => {
  test('DENY wins over ALLOW; once an ALLOW policy applies, no match is 403 RBAC: access denied', async () => {
    const p = await startInbound(
      {
        listeners: LISTEN,
        authorization: {
          policies: [
            { name: 'allow-api', action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/api/*'] } }] }] },
            {
              name: 'deny-delete',
              action: 'DENY',
              rules: [{ to: [{ operation: { methods: ['DELETE'], paths: ['/api/*'] } }] }],
            },
            {
              name: 'deny-bots',
              action: 'DENY',
              rules: [{ when: [{ key: 'request.headers[User-Agent]', values: ['badbot*'] }] }],
            },
          ],
        },
      },
      { app: app.port },
    );
    try {
      assert.equal(await status(p.port(), get('/api/orders')), 200);
      const denied = await rawRequest(p.port(), get('/api/orders', {}, 'DELETE'));
      assert.equal(denied.status, 403);
      assert.equal(denied.body.toString(), 'RBAC: access denied\n');
      const none = await rawRequest(p.port(), get('/other'));
      assert.equal(none.status, 403, 'no ALLOW policy matches');
      assert.equal(await status(p.port(), get('/api/x', { 'User-Agent': 'badbot/1.0' })), 403);
      assert.equal(
        await metricValue(p.metrics, 'pillion_authz_decisions_total', {
          policy: 'deny-delete',
          rule: '0',
          decision: 'deny',
        }),
        1,
      );
      assert.equal(
        await metricValue(p.metrics, 'pillion_authz_decisions_total', { policy: '-', decision: 'deny' }),
        1,
      );
      assert.equal(
        await metricValue(p.metrics, 'pillion_authz_decisions_total', {
          policy: 'allow-api',
          rule: '0',
          decision: 'allow',
        }),
        1,
      );
      const state = p.module.filtersState()!;
      assert.deepEqual(
        state.authorization.map((x) => `${x.name}:${x.action}`),
        ['allow-api:ALLOW', 'deny-delete:DENY', 'deny-bots:DENY'],
      );
    } finally {
      await p.stop();
    }
  });

  test('paths are matched in their normalized form: encodings, dot segments, double slashes, case, ;params, trailing dots', async () => {
    const p = await startInbound(
      {
        listeners: LISTEN,
        pathWithEscapedSlashes: 'unescape-and-forward',
        authorization: {
          policies: [
            {
              name: 'deny-admin',
              action: 'DENY',
              rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }],
            },
            // Deny by default: only /public and /api are open.
            {
              name: 'open',
              action: 'ALLOW',
              rules: [{ to: [{ operation: { paths: ['/public/*', '/api/*'] } }] }],
            },
          ],
        },
      },
      { app: app.port },
    );
    try {
      const seen = app.requests.length;
      for (const path of [
        '/admin',
        '/%61dmin',
        '/%61%64%6d%69%6e/users',
        '//admin',
        '/public/../admin',
        '/./admin/./users',
        '/public/%2e%2e/admin',
        '/public%2F..%2Fadmin',
        '/api/..//admin/x',
      ]) {
        assert.equal(await status(p.port(), get(path)), 403, path);
      }
      assert.equal(app.requests.length, seen, 'none reached the app');
      // Not /admin, and not allowed either: deny by default catches other spellings.
      for (const path of ['/ADMIN', '/Admin/users', '/admin;x=1', '/admin.', '/admin./users', '/admin%20']) {
        assert.equal(await status(p.port(), get(path)), 403, path);
      }
      assert.equal(app.requests.length, seen, 'none reached the app');
      assert.equal(await status(p.port(), get('/public/%61')), 200);
      assert.equal(app.requests.at(-1)!.url, '/public/a', 'the app gets the path that was authorized');
    } finally {
      await p.stop();
    }
  });

  test("the seed's policy: only order-service and refund-service may POST /api/v1/charge and /api/v1/refund (mTLS principals)", async () => {
    const certs: WorkloadCerts = await workloadCerts();
    const p = await startInbound(
      {
        listeners: [
          {
            address: '127.0.0.1:0',
            tls: {
              certificates: [{ cert: certs.serverCert, key: certs.serverKey }],
              clientCertificate: { ca: certs.caFile, required: false },
            },
          },
        ],
        authorization: {
          policies: [
            {
              name: 'payments',
              action: 'ALLOW',
              rules: [
                {
                  from: [
                    {
                      source: {
                        principals: [
                          'cluster.local/ns/production/sa/order-service',
                          'cluster.local/ns/production/sa/refund-service',
                        ],
                      },
                    },
                  ],
                  to: [{ operation: { methods: ['POST'], paths: ['/api/v1/charge', '/api/v1/refund'] } }],
                },
              ],
            },
          ],
        },
      },
      { app: app.port },
    );
    try {
      const post = (path: string) => get(path, { 'Content-Length': '0' }, 'POST');
      const as = (c: { cert: string; key: string } | undefined) => ({
        tls: { ca: certs.caPem, servername: 'localhost', ...(c ? { cert: c.cert, key: c.key } : {}) },
      });
      assert.equal((await rawRequest(p.port(), post('/api/v1/charge'), as(certs.order))).status, 200);
      assert.equal((await rawRequest(p.port(), post('/api/v1/refund'), as(certs.refund))).status, 200);
      assert.equal((await rawRequest(p.port(), post('/api/v1/charge'), as(certs.billing))).status, 403);
      assert.equal((await rawRequest(p.port(), post('/api/v1/charge'), as(undefined))).status, 403);
      assert.equal((await rawRequest(p.port(), get('/api/v1/charge'), as(certs.order))).status, 403);
      assert.equal((await rawRequest(p.port(), post('/api/v1/other'), as(certs.order))).status, 403);
    } finally {
      await p.stop();
      await certs.cleanup();
    }
  });

  test('requestPrincipals and claims from the JWT; AUDIT only logs; a dry-run DENY never denies', async () => {
    const p = await startInbound(
      {
        listeners: LISTEN,
        jwt: { issuers: [{ issuer: 'https://issuer.test', jwks: jwksOf(key) }] },
        authorization: {
          policies: [
            {
              name: 'shadow',
              action: 'DENY',
              dryRun: true,
              rules: [{ to: [{ operation: { paths: ['/x'] } }] }],
            },
            { name: 'audit', action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/x'] } }] }] },
            {
              name: 'users',
              action: 'ALLOW',
              rules: [
                {
                  from: [{ source: { requestPrincipals: ['https://issuer.test/*'] } }],
                  to: [{ operation: { notPaths: ['/admin*'] } }],
                },
                {
                  to: [{ operation: { paths: ['/admin*'] } }],
                  when: [{ key: 'request.auth.claims[roles]', values: ['admin'] }],
                },
              ],
            },
          ],
        },
      },
      { app: app.port },
    );
    try {
      const now = Math.floor(Date.now() / 1000);
      const user = await sign(key, now, { roles: ['viewer'] });
      const admin = await sign(key, now, { sub: 'root', roles: ['viewer', 'admin'] });
      const auth = (t: string) => ({ Authorization: `Bearer ${t}` });
      assert.equal(await status(p.port(), get('/x', auth(user))), 200, 'the dry-run DENY does not deny');
      assert.equal(await status(p.port(), get('/x')), 403, 'no token, no request principal');
      assert.equal(await status(p.port(), get('/admin', auth(user))), 403);
      assert.equal(await status(p.port(), get('/admin', auth(admin))), 200);
      assert.equal(
        await metricValue(p.metrics, 'pillion_authz_decisions_total', {
          policy: 'shadow',
          decision: 'dry_run_deny',
        }),
        2,
      );
      assert.equal(
        await metricValue(p.metrics, 'pillion_authz_decisions_total', { policy: 'audit', decision: 'audit' }),
        2,
      );
    } finally {
      await p.stop();
    }
  });

  test('CUSTOM: the check service allows and adds headers, denies with its own answer; slow or down fails closed', async () => {
    let delay = 0;
    const checks: http.IncomingHttpHeaders[] = [];
    const checker = http.createServer((req, res) => {
      checks.push(req.headers);
      setTimeout(() => {
        if (req.url?.startsWith('/check/allowed')) {
          res.writeHead(200, { 'x-authz-user': 'alice', 'x-internal': 'no' }).end();
        } else {
          res
            .writeHead(401, { 'x-reason': 'nope', 'content-type': 'application/json' })
            .end('{"error":"denied"}');
        }
      }, delay);
    });
    const checkPort = await listen(checker);
    const p = await startInbound(
      {
        listeners: LISTEN,
        authorization: {
          providers: {
            checker: {
              address: `127.0.0.1:${checkPort}`,
              pathPrefix: '/check',
              timeout: '300ms',
              includeRequestHeadersInCheck: ['Authorization', 'X-Session'],
              headersToUpstreamOnAllow: ['X-Authz-User'],
              headersToDownstreamOnDeny: ['X-Reason'],
            },
          },
          policies: [
            {
              name: 'ext',
              action: 'CUSTOM',
              provider: 'checker',
              rules: [{ to: [{ operation: { notPaths: ['/healthz'] } }] }],
            },
          ],
        },
      },
      { app: app.port },
    );
    try {
      const ok = await rawRequest(
        p.port(),
        get('/allowed', { Authorization: 'Bearer t', Cookie: 'c=1', 'X-Authz-User': 'spoof' }),
      );
      assert.equal(ok.status, 200);
      const seen = JSON.parse(ok.body.toString()) as { headers: Record<string, string> };
      assert.equal(seen.headers['x-authz-user'], 'alice', 'the check answer replaces the client’s header');
      assert.equal(seen.headers['x-internal'], undefined);
      assert.equal(checks[0]!.authorization, 'Bearer t');
      assert.equal(checks[0]!.cookie, undefined, 'only the chosen headers are sent');
      const no = await rawRequest(p.port(), get('/denied'));
      assert.equal(no.status, 401);
      assert.equal(no.headers['x-reason'], 'nope');
      assert.equal(no.headers['content-type'], 'application/json');
      assert.equal(no.body.toString(), '{"error":"denied"}');
      assert.equal(await status(p.port(), get('/healthz')), 200, 'not matched by the CUSTOM rule: no check');
      delay = 2000;
      const slow = await rawRequest(p.port(), get('/allowed'));
      assert.equal(slow.status, 403, 'a late answer fails closed');
      delay = 0;
      checker.closeAllConnections();
      await new Promise<void>((r) => checker.close(() => r()));
      assert.equal(await status(p.port(), get('/allowed')), 403, 'down fails closed');
      await waitFor(
        async () =>
          (await metricValue(p.metrics, 'pillion_authz_decisions_total', {
            policy: 'ext',
            decision: 'error',
          })) === 2,
        { what: 'two errors counted' },
      );
    } finally {
      await p.stop();
      checker.closeAllConnections();
      checker.close();
    }
  });
});
