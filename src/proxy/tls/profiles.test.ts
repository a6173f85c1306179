// TLS profiles over real handshakes: what each one lets in, the listener's own cipher and group
// lists, and renegotiation refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { waitFor } from '../../lib/wait-for.js';
import type { InboundSection } from '../inbound.js';
import {
  type Backend,
  echoBackend,
  get,
  metricValue,
  RawClient,
  type StartedProxy,
  startInbound,
} from '../test-support.js';
import { makeCa, makeLeaf, type TestCa } from './test-certs.js';

let dir: string;
let ca: TestCa;
let app: Backend;
/** An RSA certificate (static-RSA and ECDHE-RSA suites need one) and an ECDSA one. */
let rsa: { cert: string; key: string };
let ecdsa: { cert: string; key: string };
const proxies: StartedProxy<InboundSection>[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillion-tls-profiles-'));
  ca = await makeCa();
  app = await echoBackend();
  const write = (name: string, pair: { cert: string; key: string }) => {
    writeFileSync(join(dir, `${name}.crt`), pair.cert);
    writeFileSync(join(dir, `${name}.key`), pair.key);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  rsa = write('rsa', await makeLeaf(ca, { names: ['localhost'], keyType: 'rsa' }));
  ecdsa = write('ecdsa', await makeLeaf(ca, { names: ['localhost'] }));
});

after(async () => {
  for (const p of proxies) await p.stop();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listener(tlsConfig: Record<string, unknown>, pair = rsa): Promise<number> {
  const p = await startInbound(
    { listeners: [{ address: '127.0.0.1:0', http2: false, tls: { certificates: [pair], ...tlsConfig } }] },
    { app: app.port },
  );
  proxies.push(p);
  return p.port();
}

/** A handshake with these client options: the protocol and cipher agreed, or the error. */
function handshake(port: number, opts: tls.ConnectionOptions): Promise<{ protocol: string; cipher: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert, ...opts });
    s.once('secureConnect', () => {
      resolve({ protocol: s.getProtocol() ?? '', cipher: s.getCipher().standardName });
      s.destroy();
    });
    s.once('error', reject);
  });
}

const TLS12 = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;
const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

describe('regression: TLS 1.2 accepted static-RSA and CBC-SHA1 suites', () => {
  test('the default (intermediate) takes ECDHE with AES-GCM or ChaCha20 on TLS 1.2, and TLS 1.3', async () => {
    const port = await listener({});
    for (const cipher of [
      'AES128-SHA',
      'AES256-SHA',
      'AES128-GCM-SHA256',
      'ECDHE-RSA-AES128-SHA',
      'DES-CBC3-SHA',
    ])
      await assert.rejects(handshake(port, { ...TLS12, ciphers: cipher }), Error, cipher);
    for (const cipher of [
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-RSA-CHACHA20-POLY1305',
    ])
      assert.equal((await handshake(port, { ...TLS12, ciphers: cipher })).protocol, 'TLSv1.2', cipher);
    for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'])
      assert.equal((await handshake(port, { ...TLS13, ciphers: suite })).cipher, suite);
    // Key exchange: X25519, P-256 and P-384 only.
    await assert.rejects(handshake(port, { ecdhCurve: 'secp521r1' }));
    assert.equal((await handshake(port, { ...TLS12, ecdhCurve: 'secp384r1' })).protocol, 'TLSv1.2');
  });

  test('an ECDSA certificate gets the ECDHE-ECDSA suites', async () => {
    const port = await listener({}, ecdsa);
    assert.equal(
      (await handshake(port, { ...TLS12, ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).cipher,
      'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
    );
    await assert.rejects(handshake(port, { ...TLS12, ciphers: 'ECDHE-ECDSA-AES128-SHA' }));
  });
});

describe('TLS profiles and lists', () => {
  test('modern: TLS 1.3 only', async () => {
    const port = await listener({ profile: 'modern' });
    await assert.rejects(handshake(port, { ...TLS12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }));
    assert.equal((await handshake(port, {})).protocol, 'TLSv1.3');
  });

  test('old: CBC and static-RSA suites on TLS 1.2, and TLS 1.0', async () => {
    const port = await listener({ profile: 'old' });
    assert.equal(
      (await handshake(port, { ...TLS12, ciphers: 'AES128-SHA' })).cipher,
      'TLS_RSA_WITH_AES_128_CBC_SHA',
    );
    const v10 = await handshake(port, {
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1',
      ciphers: 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0',
    });
    assert.equal(v10.protocol, 'TLSv1');
  });

  test('ciphers and ecdhCurves replace the profile lists', async () => {
    const port = await listener({
      ciphers: ['ECDHE-RSA-AES256-GCM-SHA384', 'TLS_AES_256_GCM_SHA384'],
      ecdhCurves: ['secp384r1'],
    });
    await assert.rejects(handshake(port, { ...TLS12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }));
    assert.equal(
      (await handshake(port, { ...TLS12, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' })).cipher,
      'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    );
    await assert.rejects(handshake(port, { ...TLS13, ciphers: 'TLS_AES_128_GCM_SHA256' }));
    assert.equal((await handshake(port, { ...TLS13 })).cipher, 'TLS_AES_256_GCM_SHA384');
    await assert.rejects(handshake(port, { ecdhCurve: 'X25519:prime256v1' }));
    assert.equal((await handshake(port, { ecdhCurve: 'secp384r1' })).protocol, 'TLSv1.3');
  });
});

describe('regression: TLS clients could renegotiate', () => {
  test('a TLS 1.2 client asking to renegotiate is refused, and counted', async () => {
    const p = await startInbound(
      { listeners: [{ address: '127.0.0.1:0', http2: false, tls: { certificates: [rsa] } }] },
      { app: app.port },
    );
    proxies.push(p);
    const c = await RawClient.connect(p.port(), { tls: { ca: ca.cert, servername: 'localhost', ...TLS12 } });
    c.write(get('/'));
    assert.equal((await c.readResponse()).status, 200);
    const socket = c.socket as tls.TLSSocket;
    let renegotiated = false;
    socket.on('error', () => {});
    assert.ok(socket.renegotiate({ rejectUnauthorized: false }, () => (renegotiated = true)));
    // The proxy closes the connection as the new handshake starts.
    await c.closed;
    assert.equal(renegotiated, false);
    await waitFor(
      async () =>
        (await metricValue(p.metrics, 'pillion_proxy_refusals_total', { reason: 'tls_renegotiation' })) === 1,
      { what: 'the refusal to be counted' },
    );
    c.destroy();
  });
});
