// TLS listeners over real sockets: certificates chosen by SNI, TLS 1.2 and 1.3, a certificate
// replaced on disk while a connection is open, and client-certificate verification.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type tls from 'node:tls';
import { waitFor } from '../lib/wait-for.js';
import type { InboundSection } from './inbound.js';
import {
  type Backend,
  echoBackend,
  get,
  listen,
  RawClient,
  type StartedProxy,
  startInbound,
} from './test-support.js';
import { makeCa, makeClientLeaf, makeLeaf, type TestCa, type TestPair } from './tls/test-certs.js';

let dir: string;
let ca: TestCa;
let app: Backend;

/** Writes a pair as name.crt / name.key, atomically (rename), and returns the paths. */
function writePair(name: string, pair: TestPair): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(`${key}.tmp`, pair.key);
  writeFileSync(`${cert}.tmp`, pair.cert);
  renameSync(`${key}.tmp`, key);
  renameSync(`${cert}.tmp`, cert);
  return { cert, key };
}

/** The leaf certificate the server presented on this connection. */
function peerCert(c: RawClient): X509Certificate {
  const raw = (c.socket as tls.TLSSocket).getPeerCertificate().raw;
  return new X509Certificate(raw);
}

/** Connects, sends one request, and returns the answer and the connection. */
async function exchange(
  port: number,
  opts: tls.ConnectionOptions,
): Promise<{ c: RawClient; status: number; body: string }> {
  const c = await RawClient.connect(port, { tls: { ca: ca.cert, ...opts } });
  c.write(get('/'));
  const res = await c.readResponse();
  return { c, status: res.status, body: res.body.toString() };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillion-tls-proxy-'));
  ca = await makeCa();
  app = await echoBackend();
});
after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('certificates by SNI', () => {
  let proxy: StartedProxy<InboundSection>;
  before(async () => {
    const a = writePair('a', await makeLeaf(ca, { names: ['a.test'] }));
    const b = writePair('b', await makeLeaf(ca, { names: ['b.test', '*.b.test'] }));
    proxy = await startInbound(
      { listeners: [{ address: '127.0.0.1:0', tls: { certificates: [a, b] } }] },
      { app: app.port },
    );
  });
  after(() => proxy.stop());

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`the certificate matches the SNI name (${version}); X-Forwarded-Proto is https`, async () => {
      const pin = { minVersion: version, maxVersion: version };
      for (const [servername, cn] of [
        ['a.test', 'CN=a.test'],
        ['b.test', 'CN=b.test'],
        ['x.b.test', 'CN=b.test'],
        ['unknown.test', 'CN=a.test'],
      ] as const) {
        const { c, status, body } = await exchange(proxy.port(), {
          ...pin,
          servername,
          // The default certificate does not carry an unknown name; only the choice matters here.
          checkServerIdentity: () => undefined,
        });
        assert.equal(status, 200);
        assert.equal(peerCert(c).subject, cn, servername);
        assert.equal((c.socket as tls.TLSSocket).getProtocol(), version);
        const echo = JSON.parse(body) as { headers: Record<string, string> };
        assert.equal(echo.headers['x-forwarded-proto'], 'https');
        c.destroy();
      }
    });
  }

  test('ALPN offers http/1.1', async () => {
    const { c } = await exchange(proxy.port(), { servername: 'a.test', ALPNProtocols: ['http/1.1'] });
    assert.equal((c.socket as tls.TLSSocket).alpnProtocol, 'http/1.1');
    c.destroy();
  });
});

test('minVersion TLSv1.3 refuses a TLS 1.2 client', async () => {
  const a = writePair('min13', await makeLeaf(ca, { names: ['a.test'] }));
  const p = await startInbound(
    { listeners: [{ address: '127.0.0.1:0', tls: { certificates: [a], minVersion: 'TLSv1.3' } }] },
    { app: app.port },
  );
  try {
    await assert.rejects(
      RawClient.connect(p.port(), { tls: { ca: ca.cert, servername: 'a.test', maxVersion: 'TLSv1.2' } }),
    );
    const { c, status } = await exchange(p.port(), { servername: 'a.test' });
    assert.equal(status, 200);
    c.destroy();
  } finally {
    await p.stop();
  }
});

test('a certificate replaced on disk: open connections keep working, new ones get the new one', async () => {
  const files = writePair('rotate', await makeLeaf(ca, { names: ['r.test'] }));
  const p = await startInbound(
    { listeners: [{ address: '127.0.0.1:0', tls: { certificates: [files] } }] },
    { app: app.port },
  );
  try {
    const first = await exchange(p.port(), { servername: 'r.test' });
    const oldSerial = peerCert(first.c).serialNumber;
    const replacement = await makeLeaf(ca, { names: ['r.test'] });
    writePair('rotate', replacement);
    const newSerial = new X509Certificate(replacement.cert).serialNumber;
    await waitFor(
      async () => {
        const { c } = await exchange(p.port(), { servername: 'r.test' });
        const serial = peerCert(c).serialNumber;
        c.destroy();
        return serial === newSerial;
      },
      { what: 'new connections to see the new certificate' },
    );
    // Clients without SNI get the new default certificate too.
    const noSni = await exchange(p.port(), { checkServerIdentity: () => undefined });
    assert.equal(peerCert(noSni.c).serialNumber, newSerial);
    noSni.c.destroy();
    // The connection opened before the change still works, on its old certificate.
    first.c.write(get('/again'));
    assert.equal((await first.c.readResponse()).status, 200);
    assert.equal(peerCert(first.c).serialNumber, oldSerial);
    first.c.destroy();
  } finally {
    await p.stop();
  }
});

describe('client certificates', () => {
  let proxy: StartedProxy<InboundSection>;
  let client: TestPair;
  let stranger: TestPair;
  before(async () => {
    const server = writePair('mtls', await makeLeaf(ca, { names: ['m.test'] }));
    const caPath = join(dir, 'clients-ca.crt');
    writeFileSync(caPath, ca.cert);
    client = await makeClientLeaf(ca);
    stranger = await makeClientLeaf(await makeCa({ commonName: 'Other CA' }));
    proxy = await startInbound(
      {
        listeners: [
          {
            address: '127.0.0.1:0',
            tls: { certificates: [server], clientCertificate: { ca: caPath, required: true } },
          },
        ],
      },
      { app: app.port },
    );
  });
  after(() => proxy.stop());

  /** 'answered' or 'refused', whichever way the TLS version reports a refusal. */
  async function attempt(opts: tls.ConnectionOptions): Promise<string> {
    try {
      const { c, status } = await exchange(proxy.port(), { servername: 'm.test', ...opts });
      c.destroy();
      return `answered ${status}`;
    } catch {
      return 'refused';
    }
  }

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`required (${version}): no certificate or a stranger's is refused; a valid one is served`, async () => {
      const pin = { minVersion: version, maxVersion: version };
      assert.equal(await attempt(pin), 'refused');
      assert.equal(await attempt({ ...pin, cert: stranger.cert, key: stranger.key }), 'refused');
      assert.equal(await attempt({ ...pin, cert: client.cert, key: client.key }), 'answered 200');
    });
  }
});

describe('TLS to the upstream', () => {
  test('verified against a CA file, by IP or by serverName; a wrong CA is a 502', async () => {
    const leaf = await makeLeaf(ca, { names: ['127.0.0.1', 'backend.test'] });
    const backend = https.createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      res.end(`secure ${req.url} ${(req.socket as tls.TLSSocket).servername || '-'}`);
    });
    const port = await listen(backend);
    const caPath = join(dir, 'upstream-ca.crt');
    writeFileSync(caPath, ca.cert);
    const otherCa = join(dir, 'other-ca.crt');
    writeFileSync(otherCa, (await makeCa({ commonName: 'Unrelated CA' })).cert);
    const endpoints = [`127.0.0.1:${port}`];
    const p = await startInbound({
      listeners: [{ address: '127.0.0.1:0' }],
      upstreams: {
        byIp: { endpoints, tls: { ca: caPath } },
        byName: { endpoints, tls: { ca: caPath, serverName: 'backend.test' } },
        wrongCa: { endpoints, tls: { ca: otherCa } },
        skip: { endpoints, tls: { ca: otherCa, insecureSkipVerify: true } },
      },
      routes: ['byIp', 'byName', 'wrongCa', 'skip'].map((u) => ({
        match: { prefix: `/${u}` },
        upstream: u,
      })),
    });
    try {
      const ask = async (path: string) => {
        const c = await RawClient.connect(p.port());
        c.write(get(path));
        const res = await c.readResponse();
        c.destroy();
        return `${res.status} ${res.status === 200 ? res.body.toString() : ''}`.trim();
      };
      assert.equal(await ask('/byIp/a'), '200 secure /byIp/a -');
      assert.equal(await ask('/byName/b'), '200 secure /byName/b backend.test');
      assert.equal(await ask('/wrongCa/c'), '502');
      assert.equal(await ask('/skip/d'), '200 secure /skip/d -');
    } finally {
      await p.stop();
      backend.closeAllConnections();
      backend.close();
    }
  });
});
