// Inbound mutual TLS with PeerAuthentication's modes, over real sockets with certificates from
// pillion's own CA: STRICT refuses what it must (and counts why), PERMISSIVE takes plaintext and
// mutual TLS on one port, the principal reaches the access log and X-Forwarded-Client-Cert, and
// OpenSSL's own client agrees from outside.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type tls from 'node:tls';
import { pino } from 'pino';
import { identityHub, type IdentityMaterial, principalOf } from '../identity/index.js';
import { LocalCa } from '../identity/local-ca.js';
import { waitFor } from '../lib/wait-for.js';
import {
  type Backend,
  echoBackend,
  get,
  metricValue,
  RawClient,
  type StartedProxy,
  startInbound,
  startOutbound,
} from './test-support.js';
import type { InboundSection } from './inbound.js';
import { makeCa, makeLeaf, type TestPair } from './tls/test-certs.js';

const SERVER_ID = 'spiffe://cluster.local/ns/production/sa/payments';
const CLIENT_ID = 'spiffe://cluster.local/ns/production/sa/order-service';

let dir: string;
let ca: LocalCa;
let app: Backend;
let client: TestPair;
const services = new Map<string, unknown>();

async function material(id: string): Promise<IdentityMaterial> {
  const issued = await ca.issue({ spiffeId: id });
  return { ...issued, bundle: ca.bundle, principal: principalOf(id), source: 'ca' };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillion-mtls-'));
  ca = await LocalCa.init(join(dir, 'ca'), { trustDomain: 'cluster.local' });
  identityHub(services).publish(await material(SERVER_ID));
  const c = await ca.issue({ spiffeId: CLIENT_ID });
  client = { cert: c.cert, key: c.key };
  app = await echoBackend();
});
after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

function start(raw: Record<string, unknown>): Promise<StartedProxy<InboundSection>> {
  return startInbound(raw, { app: app.port, services });
}

/** One request over a fresh connection; the status, or the error that ended the connection. */
async function attempt(port: number, opts: tls.ConnectionOptions | undefined): Promise<number | string> {
  let c: RawClient;
  try {
    c = await RawClient.connect(
      port,
      opts ? { tls: { ca: ca.bundle, checkServerIdentity: () => undefined, ...opts } } : {},
    );
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'error';
  }
  try {
    c.write(get('/'));
    return (await c.readResponse()).status;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'closed';
  } finally {
    c.socket.destroy();
  }
}

const refused = (p: StartedProxy<InboundSection>, reason: string) =>
  metricValue(p.metrics, 'pillion_mtls_handshakes_total', { result: 'refused', reason });

describe('STRICT', () => {
  let p: StartedProxy<InboundSection>;
  let log: string;
  before(async () => {
    log = join(dir, 'strict.log');
    p = await start({
      listeners: [{ address: '127.0.0.1:0' }],
      mtls: { mode: 'STRICT' },
      accessLog: { path: log },
    });
  });
  after(() => p.stop());

  test('a client certificate of the trust bundle gets through, with its principal in the access log', async () => {
    const before = app.requests.length;
    assert.equal(await attempt(p.port(), { cert: client.cert, key: client.key }), 200);
    assert.equal(app.requests[before]!.headers['x-forwarded-proto'], 'https');
    assert.equal(app.requests[before]!.headers['x-forwarded-client-cert'], undefined, 'XFCC is opt-in');
    const line = await waitFor(() => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).pop());
    assert.equal(JSON.parse(line).downstream_peer_principal, 'cluster.local/ns/production/sa/order-service');
  });

  test('no certificate, another CA, expired, not yet valid, server-only usage, plaintext: refused and counted by reason', async () => {
    const other = await makeCa({ commonName: 'another CA' });
    const foreign = await makeLeaf(other, { usage: 'client', uris: [CLIENT_ID] });
    const fake = new (await import('../lib/clock.js')).FakeClock(Date.now() - 3 * 86_400_000);
    const old = await (
      await LocalCa.open(join(dir, 'ca'), { clock: fake })
    ).issue({ spiffeId: CLIENT_ID, ttlMs: 3_600_000 });
    const early = await (
      await LocalCa.open(join(dir, 'ca'), {
        clock: new (await import('../lib/clock.js')).FakeClock(Date.now() + 86_400_000),
      })
    ).issue({ spiffeId: CLIENT_ID });
    const cases: [string, tls.ConnectionOptions | undefined][] = [
      ['no_certificate', {}],
      ['unknown_ca', { cert: foreign.cert, key: foreign.key }],
      ['expired', { cert: old.cert, key: old.key }],
      ['not_yet_valid', { cert: early.cert, key: early.key }],
      ['plaintext', undefined],
    ];
    for (const [reason, opts] of cases) {
      const r = await attempt(p.port(), opts);
      assert.notEqual(r, 200, reason);
      await waitFor(async () => (await refused(p, reason)) === 1, { what: `a refusal counted as ${reason}` });
    }
    assert.equal(await metricValue(p.metrics, 'pillion_mtls_handshakes_total', { result: 'accepted' }), 1);
  });

  test('a certificate without clientAuth usage is refused as wrong_key_usage', async () => {
    // The local CA's certificates serve both ends; a server-only one comes from a CA in files.
    const other = await makeCa({ commonName: 'files CA' });
    const serverOnly = await makeLeaf(other, { usage: 'server', uris: [CLIENT_ID] });
    const local = new Map<string, unknown>();
    const leaf = await makeLeaf(other, { usage: 'both', uris: [SERVER_ID] });
    identityHub(local).publish({
      cert: leaf.cert,
      key: leaf.key,
      bundle: other.cert,
      spiffeId: SERVER_ID,
      principal: principalOf(SERVER_ID),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 3_600_000),
      serial: '1',
      source: 'files',
    });
    const q = await startInbound(
      { listeners: [{ address: '127.0.0.1:0' }], mtls: { mode: 'STRICT' } },
      { app: app.port, services: local },
    );
    try {
      const r = await RawClient.connect(q.port(), {
        tls: {
          ca: other.cert,
          cert: serverOnly.cert,
          key: serverOnly.key,
          checkServerIdentity: () => undefined,
        },
      }).then(
        async (c) => {
          c.write(get('/'));
          return c.readResponse().then(
            (x) => x.status,
            (e: Error) => e.message,
          );
        },
        (e: Error) => e.message,
      );
      assert.notEqual(r, 200);
      await waitFor(async () => (await refused(q, 'wrong_key_usage')) === 1, {
        what: 'wrong_key_usage counted',
      });
    } finally {
      await q.stop();
    }
  });

  test('openssl s_client from outside: with the workload certificate it is served, without one it is not', async () => {
    const files = { cert: join(dir, 'c.crt'), key: join(dir, 'c.key'), ca: join(dir, 'bundle.pem') };
    writeFileSync(files.cert, client.cert);
    writeFileSync(files.key, client.key);
    writeFileSync(files.ca, ca.bundle);
    const sclient = (extra: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(
          'openssl',
          [
            's_client',
            '-connect',
            `127.0.0.1:${p.port()}`,
            '-CAfile',
            files.ca,
            '-verify_return_error',
            '-quiet',
            '-ign_eof',
            ...extra,
          ],
          { stdio: ['pipe', 'pipe', 'pipe'] },
        );
        let out = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr.on('data', (b: Buffer) => (out += b.toString()));
        child.stdin.end('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
        child.on('close', (code) => resolve({ code, out }));
      });
    const ok = await sclient(['-cert', files.cert, '-key', files.key]);
    assert.match(ok.out, /HTTP\/1\.1 200/);
    const none = await sclient([]);
    assert.doesNotMatch(none.out, /HTTP\/1\.1 200/);
  });
});

describe('PERMISSIVE', () => {
  let p: StartedProxy<InboundSection>;
  let log: string;
  before(async () => {
    log = join(dir, 'permissive.log');
    p = await start({
      listeners: [{ address: '127.0.0.1:0' }],
      mtls: { mode: 'PERMISSIVE', forwardClientCert: true },
      accessLog: { path: log },
    });
  });
  after(() => p.stop());

  test('plaintext and mutual TLS on one port; only the verified peer has a principal and an XFCC', async () => {
    const n = app.requests.length;
    assert.equal(await attempt(p.port(), undefined), 200);
    assert.equal(await attempt(p.port(), { cert: client.cert, key: client.key }), 200);
    const [plain, mutual] = app.requests.slice(n);
    assert.equal(plain!.headers['x-forwarded-proto'], 'http');
    assert.equal(plain!.headers['x-forwarded-client-cert'], undefined);
    assert.equal(mutual!.headers['x-forwarded-proto'], 'https');
    const hash = new X509Certificate(client.cert).fingerprint256.replaceAll(':', '').toLowerCase();
    assert.equal(
      mutual!.headers['x-forwarded-client-cert'],
      `By=${SERVER_ID};Hash=${hash};Subject="O=cluster.local";URI=${CLIENT_ID}`,
    );
    const lines = await waitFor(() => {
      const l = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
      return l.length >= 2 ? l.map((x) => JSON.parse(x)) : undefined;
    });
    assert.equal(lines[0].downstream_peer_principal, undefined);
    assert.equal(lines[1].downstream_peer_principal, 'cluster.local/ns/production/sa/order-service');
    assert.equal(await metricValue(p.metrics, 'pillion_mtls_handshakes_total', { result: 'plaintext' }), 1);
    assert.equal(await metricValue(p.metrics, 'pillion_mtls_handshakes_total', { result: 'accepted' }), 1);
  });

  test('a TLS client without a certificate is refused even here; XFCC sent by a client never reaches the app', async () => {
    assert.notEqual(await attempt(p.port(), {}), 200);
    await waitFor(async () => (await refused(p, 'no_certificate')) === 1);
    const n = app.requests.length;
    const c = await RawClient.connect(p.port());
    c.write(
      get('/', { 'x-forwarded-client-cert': 'By=spiffe://evil;URI=spiffe://cluster.local/ns/x/sa/admin' }),
    );
    assert.equal((await c.readResponse()).status, 200);
    c.socket.destroy();
    assert.equal(app.requests[n]!.headers['x-forwarded-client-cert'], undefined);
  });

  test('HTTP/2 over mutual TLS carries the principal and XFCC too; a spoofed XFCC is replaced', async () => {
    const session = http2.connect(`https://127.0.0.1:${p.port()}`, {
      ca: ca.bundle,
      cert: client.cert,
      key: client.key,
      checkServerIdentity: () => undefined,
    });
    try {
      const n = app.requests.length;
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/h2', 'x-forwarded-client-cert': 'URI=spiffe://evil' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.equal(status, 200);
      assert.match(
        String(app.requests[n]!.headers['x-forwarded-client-cert']),
        new RegExp(`;URI=${CLIENT_ID}$`),
      );
      assert.doesNotMatch(String(app.requests[n]!.headers['x-forwarded-client-cert']), /evil/);
    } finally {
      session.destroy();
    }
  });
});

test('portLevel and a listener’s own mode override the inbound mode', async () => {
  const p = await start({
    listeners: [
      { name: 'strict', address: '127.0.0.1:0' },
      { name: 'open', address: '127.0.0.1:0', mtls: { mode: 'DISABLE' } },
    ],
    mtls: { mode: 'STRICT' },
  });
  try {
    assert.notEqual(await attempt(p.port('strict'), undefined), 200);
    assert.equal(await attempt(p.port('open'), undefined), 200);
  } finally {
    await p.stop();
  }
});

describe('outbound mutual TLS: one sidecar to another', () => {
  let server: StartedProxy<InboundSection>;
  const clientServices = new Map<string, unknown>();
  before(async () => {
    identityHub(clientServices).publish(await material(CLIENT_ID));
    server = await start({
      listeners: [{ address: '127.0.0.1:0' }],
      mtls: { mode: 'STRICT', forwardClientCert: true },
    });
  });
  after(() => server.stop());

  async function call(upstream: Record<string, unknown>, path = '/payments/charge') {
    const out = await startOutbound({ upstreams: { payments: upstream } }, { services: clientServices });
    try {
      if (upstream.protocol === 'h2') {
        // An HTTP/2 upstream is reached by HTTP/2 clients (h2c with prior knowledge here).
        const session = http2.connect(`http://127.0.0.1:${out.port()}`);
        try {
          return await new Promise<number>((resolve, reject) => {
            const req = session.request({ ':path': path });
            req.on('response', (h) => resolve(Number(h[':status'])));
            req.on('error', reject);
            req.resume();
            req.end();
          });
        } finally {
          session.destroy();
        }
      }
      const c = await RawClient.connect(out.port());
      c.write(get(path));
      const r = await c.readResponse();
      c.socket.destroy();
      return r.status;
    } finally {
      await out.stop();
    }
  }

  test('the workload certificate goes as the client certificate; the server is checked by its SPIFFE ID', async () => {
    const n = app.requests.length;
    const status = await call({
      endpoints: [`127.0.0.1:${server.port()}`],
      tls: { mutual: true, subjectAltNames: [SERVER_ID] },
    });
    assert.equal(status, 200);
    assert.match(
      String(app.requests[n]!.headers['x-forwarded-client-cert']),
      new RegExp(`;URI=${CLIENT_ID}$`),
    );
  });

  test('a server with another SPIFFE ID than expected is refused: 502', async () => {
    const status = await call({
      endpoints: [`127.0.0.1:${server.port()}`],
      tls: { mutual: true, subjectAltNames: ['spiffe://cluster.local/ns/production/sa/someone-else'] },
    });
    assert.equal(status, 502);
  });

  test('over HTTP/2 too, and a renewed client certificate is used for the next connection', async () => {
    const h2server = await start({
      listeners: [{ address: '127.0.0.1:0', http2: true }],
      mtls: { mode: 'STRICT', forwardClientCert: true },
    });
    try {
      const upstream = {
        endpoints: [`127.0.0.1:${h2server.port()}`],
        protocol: 'h2',
        tls: { mutual: true, subjectAltNames: [SERVER_ID] },
      };
      const hashOf = () => {
        const v = String(app.requests[app.requests.length - 1]!.headers['x-forwarded-client-cert']);
        return /Hash=([0-9a-f]+)/.exec(v)?.[1];
      };
      assert.equal(await call(upstream), 200);
      const first = hashOf();
      const renewed = await material(CLIENT_ID);
      identityHub(clientServices).publish(renewed);
      assert.equal(await call(upstream), 200);
      assert.notEqual(hashOf(), first);
      assert.equal(
        hashOf(),
        new X509Certificate(renewed.cert).fingerprint256.replaceAll(':', '').toLowerCase(),
      );
    } finally {
      await h2server.stop();
    }
  });
});

test('refusals are logged at a rate limit: the first of a reason at once, then one line a minute with the count left out', async () => {
  const { FakeClock } = await import('../lib/clock.js');
  const clock = new FakeClock(Date.now());
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'warn' },
    { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
  );
  const p = await startInbound(
    { listeners: [{ address: '127.0.0.1:0' }], mtls: { mode: 'STRICT' } },
    { app: app.port, services, clock, logger },
  );
  try {
    const refusedLines = () => lines.filter((l) => l.code === 'PILLION_ERR_MTLS_REFUSED');
    for (let i = 0; i < 3; i++) await attempt(p.port(), {});
    await waitFor(async () => (await refused(p, 'no_certificate')) === 3);
    assert.equal(refusedLines().length, 1);
    assert.equal(refusedLines()[0]!.reason, 'no_certificate');
    await clock.advance(60_000);
    await attempt(p.port(), {});
    await waitFor(() => refusedLines().length === 2);
    assert.equal(refusedLines()[1]!.suppressed, 2);
  } finally {
    await p.stop();
  }
});
