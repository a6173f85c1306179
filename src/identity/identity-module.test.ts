// The identity role: the workload certificate issued at start and renewed at 2/3 of its lifetime
// on the injected clock, while a STRICT mutual-TLS listener serves a steady load of new and
// keep-alive connections that must not see a single failure; and certificate files kept by
// another tool, re-read when they change, a bad write leaving the good certificate in use.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type tls from 'node:tls';
import { pino } from 'pino';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { createMetricsRegistry } from '../metrics/index.js';
import {
  echoBackend,
  get,
  metricValue,
  RawClient,
  startInbound,
  type Backend,
} from '../proxy/test-support.js';
import { identitySchema } from './config.js';
import { identityHub } from './hub.js';
import { IdentityModule } from './identity-module.js';
import { LocalCa } from './local-ca.js';

const HOUR = 3_600_000;
let dir: string;
let app: Backend;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pillion-identity-'));
  app = await echoBackend();
});
after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

function moduleFor(raw: Record<string, unknown>, clock: FakeClock, services = new Map<string, unknown>()) {
  const metrics = createMetricsRegistry();
  const m = new IdentityModule(identitySchema.parse(raw), {
    logger: pino({ level: 'silent' }),
    metrics,
    clock,
    hub: identityHub(services),
  });
  return { m, metrics, services, hub: identityHub(services) };
}

test('renewed at 2/3 of its lifetime under load: no request fails, new handshakes get the new certificate', async () => {
  // The fake clock starts 17 hours back so that every certificate it dates is valid in real time
  // for the TLS stacks, which read the real clock.
  const clock = new FakeClock(Date.now() - 17 * HOUR);
  const caDir = join(dir, 'ca');
  const ca = await LocalCa.init(caDir, { trustDomain: 'cluster.local' });
  const { m, metrics, services, hub } = moduleFor(
    { namespace: 'production', serviceAccount: 'payments', ca: { dir: caDir } },
    clock,
  );
  await m.start();
  const first = hub.current()!;
  assert.equal(first.spiffeId, 'spiffe://cluster.local/ns/production/sa/payments');
  assert.equal(first.notAfter.getTime() - clock.now(), 24 * HOUR);
  assert.equal((m.status() as { renewAt: string }).renewAt, new Date(clock.now() + 16 * HOUR).toISOString());
  assert.deepEqual(m.readiness(), { ready: true });

  const client = await ca.issue({ spiffeId: 'spiffe://cluster.local/ns/production/sa/order-service' });
  const p = await startInbound(
    { listeners: [{ address: '127.0.0.1:0' }], mtls: { mode: 'STRICT' } },
    { app: app.port, services },
  );
  const opts: tls.ConnectionOptions = {
    ca: ca.bundle,
    cert: client.cert,
    key: client.key,
    checkServerIdentity: () => undefined,
  };
  const serials = new Set<string>();
  const failures: string[] = [];
  let done = 0;
  let stop = false;
  const serialOf = (c: RawClient) =>
    new X509Certificate((c.socket as tls.TLSSocket).getPeerCertificate().raw).serialNumber.toLowerCase();
  // Four workers open a connection for each request; one keeps a connection open throughout.
  const fresh = async () => {
    while (!stop) {
      try {
        const c = await RawClient.connect(p.port(), { tls: opts });
        serials.add(serialOf(c));
        c.write(get('/'));
        const r = await c.readResponse();
        if (r.status !== 200) failures.push(`status ${r.status}`);
        c.socket.destroy();
        done++;
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const keepAlive = async () => {
    const c = await RawClient.connect(p.port(), { tls: opts });
    const serial = serialOf(c);
    while (!stop) {
      c.write(get('/'));
      const r = await c.readResponse();
      if (r.status !== 200) failures.push(`keep-alive status ${r.status}`);
      done++;
    }
    assert.equal(serialOf(c), serial, 'an open connection keeps the certificate it began with');
    c.socket.destroy();
  };
  const workers = [fresh(), fresh(), fresh(), fresh(), keepAlive()];
  try {
    await waitFor(() => done >= 20, { what: 'load before the renewal' });
    await clock.advance(16 * HOUR - 1000);
    assert.equal(hub.current(), first, 'not renewed before 2/3 of the lifetime');
    await clock.advance(1000);
    await waitFor(() => hub.current() !== first, { what: 'the renewal' });
    const second = hub.current()!;
    assert.notEqual(second.serial, first.serial);
    await waitFor(() => serials.has(second.serial), { what: 'a handshake with the renewed certificate' });
    const after = done;
    await waitFor(() => done >= after + 20, { what: 'load after the renewal' });
  } finally {
    stop = true;
    await Promise.all(workers);
    await p.stop();
    await m.stop();
  }
  assert.deepEqual(failures, []);
  assert.ok(serials.has(first.serial));
  assert.equal(
    await metricValue(metrics, 'pillion_identity_certificate_updates_total', { result: 'success' }),
    2,
  );
});

test('a renewal that fails keeps the current certificate and is retried with back-off', async () => {
  const clock = new FakeClock();
  const caDir = join(dir, 'ca-retry');
  await LocalCa.init(caDir, { trustDomain: 'td' });
  const { m, metrics, hub } = moduleFor({ trustDomain: 'td', ca: { dir: caDir, ttl: '3h' } }, clock);
  await m.start();
  const first = hub.current()!;
  renameSync(join(caDir, 'ca.crt'), join(caDir, 'ca.crt.away'));
  await clock.advance(2 * HOUR);
  assert.equal(hub.current(), first);
  assert.equal(
    await metricValue(metrics, 'pillion_identity_certificate_updates_total', { result: 'failure' }),
    1,
  );
  assert.equal(m.readiness().ready, true, 'still ready while the certificate is valid');
  assert.match(String(m.readiness().reason), /PILLION_ERR_CA_NOT_FOUND|no CA/);
  await clock.advance(1000);
  assert.equal(
    await metricValue(metrics, 'pillion_identity_certificate_updates_total', { result: 'failure' }),
    2,
  );
  // Still away when the certificate expires: not ready, and /readyz says why.
  await clock.advance(HOUR);
  assert.equal(m.readiness().ready, false);
  assert.match(String(m.readiness().reason), /expired/);
  renameSync(join(caDir, 'ca.crt.away'), join(caDir, 'ca.crt'));
  await clock.advance(60_000);
  await waitFor(() => hub.current() !== first);
  assert.deepEqual(m.readiness(), { ready: true });
  await m.stop();
});

test('certificate files from another tool are checked, published, and re-read when they change', async () => {
  const caDir = join(dir, 'ca-files');
  const ca = await LocalCa.init(caDir, { trustDomain: 'cluster.local' });
  const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), bundle: join(dir, 'ca.crt') };
  const write = async (id: string) => {
    const c = await ca.issue({ spiffeId: id });
    writeFileSync(`${files.key}.tmp`, c.key);
    writeFileSync(`${files.cert}.tmp`, c.cert);
    renameSync(`${files.key}.tmp`, files.key);
    renameSync(`${files.cert}.tmp`, files.cert);
    return c;
  };
  writeFileSync(files.bundle, ca.bundle);
  const a = await write('spiffe://cluster.local/ns/shop/sa/web');
  const clock = new FakeClock();
  const { m, hub } = moduleFor({ namespace: 'shop', files }, clock);
  await m.start();
  assert.equal(hub.current()!.serial, a.serial);
  assert.equal(hub.current()!.principal, 'cluster.local/ns/shop/sa/web');
  const b = await write('spiffe://cluster.local/ns/shop/sa/web');
  await clock.advance(5000);
  await waitFor(() => hub.current()!.serial === b.serial, { what: 'the new files' });
  // Another namespace than identity.namespace: refused, the good one stays.
  await write('spiffe://cluster.local/ns/other/sa/web');
  await clock.advance(5000);
  await waitFor(() => (m.status() as { lastError: string | null }).lastError?.includes('identity.namespace'));
  assert.equal(hub.current()!.serial, b.serial);
  await m.stop();
});

test('identity needs exactly one of ca or files', () => {
  assert.equal(identitySchema.safeParse({}).success, false);
  assert.equal(
    identitySchema.safeParse({ ca: { dir: 'x' }, files: { cert: 'a', key: 'b', bundle: 'c' } }).success,
    false,
  );
});
