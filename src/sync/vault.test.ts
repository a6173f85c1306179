// The vault source against a server that follows Vault's documented HTTP API (token lookup-self
// and renew-self, AppRole and Kubernetes login, KV v2 data, a dynamic secret with a lease,
// sys/leases/renew, `{"errors": [...]}` answers): no Vault package is available to the tests.
// Renewals run on a fake clock; the server counts what it was asked.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { FakeClock } from '../lib/clock.js';
import type { PillionError } from '../lib/errors.js';
import { waitFor } from '../lib/wait-for.js';
import { createMetricsRegistry } from '../metrics/index.js';
import { syncSchema } from './config.js';
import { SyncEngine } from './engine.js';
import type { SourceHost } from './sources/index.js';
import { VaultSource } from './sources/vault.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'pillion-vault-'));
  dirs.push(d);
  return d;
}

/** Vault's HTTP API as documented, for the paths the source uses. */
async function vault() {
  const tokens = new Map<string, { ttl: number; renewable: boolean }>();
  const kv = { data: { username: 'app', password: 'pw-1' } as Record<string, string>, version: 1 };
  const leases = new Map<string, { ttl: number; remaining: number }>();
  const calls: string[] = [];
  let nextId = 0;
  let down = false;
  const state = {
    approle: { roleId: 'role-1', secretId: 'secret-1' },
    k8s: { role: 'orders', jwt: 'jwt-1' },
    tokenTtl: 60,
    leaseTtl: 100,
    leaseMaxTtl: 250,
    refuseRenewal: false,
  };
  const issue = () => {
    const t = `hvs.token-${++nextId}`;
    tokens.set(t, { ttl: state.tokenTtl, renewable: true });
    return t;
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (down) return req.socket.destroy();
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      const path = new URL(req.url!, 'http://x').pathname.replace(/^\/v1\//, '');
      calls.push(`${req.method} ${path}`);
      if (path === 'auth/approle/login') {
        if (body.role_id !== state.approle.roleId || body.secret_id !== state.approle.secretId)
          return send(res, 400, { errors: ['invalid role or secret ID'] });
        return send(res, 200, {
          auth: { client_token: issue(), lease_duration: state.tokenTtl, renewable: true },
        });
      }
      if (path === 'auth/kubernetes/login') {
        if (body.role !== state.k8s.role || body.jwt !== state.k8s.jwt)
          return send(res, 403, { errors: ['permission denied'] });
        return send(res, 200, {
          auth: { client_token: issue(), lease_duration: state.tokenTtl, renewable: true },
        });
      }
      const token = tokens.get(String(req.headers['x-vault-token']));
      if (!token) return send(res, 403, { errors: ['permission denied'] });
      if (path === 'auth/token/lookup-self')
        return send(res, 200, { data: { ttl: token.ttl, renewable: token.renewable } });
      if (path === 'auth/token/renew-self' && state.refuseRenewal)
        return send(res, 403, { errors: ['permission denied'] });
      if (path === 'auth/token/renew-self')
        return send(res, 200, {
          auth: { client_token: req.headers['x-vault-token'], lease_duration: token.ttl, renewable: true },
        });
      if (path === 'secret/data/orders')
        return send(res, 200, { data: { data: kv.data, metadata: { version: kv.version } } });
      if (path === 'database/creds/orders') {
        const id = `database/creds/orders/lease-${++nextId}`;
        leases.set(id, { ttl: state.leaseTtl, remaining: state.leaseMaxTtl });
        return send(res, 200, {
          lease_id: id,
          lease_duration: state.leaseTtl,
          renewable: true,
          data: { username: `v-orders-${nextId}`, password: `pw-${nextId}` },
        });
      }
      if (path === 'sys/leases/renew') {
        const lease = leases.get(String(body.lease_id));
        if (!lease) return send(res, 400, { errors: ['lease not found'] });
        // A lease is extended up to its max TTL, no further.
        const increment = Number(body.increment);
        lease.remaining -= lease.ttl / 2;
        const duration = Math.min(increment, lease.remaining);
        return send(res, 200, { lease_id: body.lease_id, lease_duration: duration, renewable: true });
      }
      send(res, 404, { errors: [] });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    state,
    kv,
    issue,
    revokeAll: () => tokens.clear(),
    count: (call: string) => calls.filter((c) => c === call).length,
    setDown: (d: boolean) => (down = d),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function recorder(clock: FakeClock) {
  const updates: Map<string, unknown>[] = [];
  const failures: PillionError[] = [];
  const host: SourceHost = {
    clock,
    random: () => 0.5,
    logger: pino({ level: 'silent' }),
    env: {},
    update: (values) => void updates.push(new Map(values)),
    patch: () => assert.fail('vault reports whole values'),
    contact: () => {},
    fail: (err) => void failures.push(err),
  };
  return { host, updates, failures, last: () => updates.at(-1) };
}

function source(cfg: Record<string, unknown>, host: SourceHost): VaultSource {
  const parsed = syncSchema.parse({
    sources: { s: { type: 'vault', backoff: { min: '1s', max: '8s' }, ...cfg } },
    destinations: { d: { path: '/tmp/x', source: 's' } },
  });
  return new VaultSource('s', parsed.sources.s as never, host);
}

test('KV v2 with AppRole: the data fields are the keys; a new version is a change; the token is renewed at half its TTL and obtained again when refused', async () => {
  const v = await vault();
  const clock = new FakeClock();
  const r = recorder(clock);
  const dir = tmp();
  writeFileSync(join(dir, 'secret-id'), 'secret-1\n');
  const src = source(
    {
      address: v.address,
      auth: { method: 'approle', roleId: 'role-1', secretIdFile: join(dir, 'secret-id') },
      kv: { path: 'orders', interval: '10s' },
    },
    r.host,
  );
  src.start();
  await waitFor(() => r.last());
  assert.deepEqual(
    [...r.last()!],
    [
      ['username', 'app'],
      ['password', 'pw-1'],
    ],
  );
  assert.equal(v.count('POST auth/approle/login'), 1);
  await clock.advance(10_000);
  await waitFor(() => v.count('GET secret/data/orders') === 2);
  assert.equal(r.updates.length, 1, 'the same version is no change');
  v.kv.data = { username: 'app', password: 'pw-2' };
  v.kv.version = 2;
  await clock.advance(10_000);
  await waitFor(() => r.last()!.get('password') === 'pw-2');
  // 60 s TTL: renewed at 30 s (20 s have passed).
  await clock.advance(10_000);
  await waitFor(() => v.count('POST auth/token/renew-self') === 1);
  assert.equal(src.counts.tokenRenewals, 1);
  // Vault forgets the token (revoked, expired): the next read is refused, pillion logs in again.
  v.revokeAll();
  await clock.advance(10_000);
  await waitFor(() => v.count('POST auth/approle/login') === 2, { what: 'a new login' });
  await waitFor(() => v.count('GET secret/data/orders') >= 5);
  assert.deepEqual(r.failures, []);
  src.stop();
  await v.close();
});

test('Kubernetes auth with the service-account JWT; a refused login is an auth error on back-off, never a tight loop', async () => {
  const v = await vault();
  const clock = new FakeClock();
  const r = recorder(clock);
  const dir = tmp();
  writeFileSync(join(dir, 'jwt'), 'jwt-old');
  const src = source(
    {
      address: v.address,
      auth: { method: 'kubernetes', role: 'orders', jwtFile: join(dir, 'jwt') },
      kv: { path: 'orders' },
    },
    r.host,
  );
  src.start();
  await waitFor(() => r.failures.length === 1);
  assert.equal(r.failures[0]!.code, 'PILLION_ERR_SYNC_SOURCE_AUTH');
  assert.equal(
    r.failures[0]!.message,
    'vault source s: kubernetes login: HTTP 403 (permission denied): permission denied',
  );
  assert.doesNotMatch(r.failures[0]!.message, /jwt-old/);
  await clock.advance(700);
  assert.equal(v.count('POST auth/kubernetes/login'), 1, 'nothing before the back-off');
  writeFileSync(join(dir, 'jwt'), 'jwt-1'); // the kubelet rotated the token
  await clock.advance(100);
  await waitFor(() => r.last()?.get('username') === 'app');
  src.stop();
  await v.close();
});

test('a dynamic secret: its lease renewed at half, a new secret fetched when the lease cannot be extended (max TTL)', async () => {
  const v = await vault();
  const clock = new FakeClock();
  const r = recorder(clock);
  const dir = tmp();
  const token = v.issue();
  writeFileSync(join(dir, 'token'), token);
  v.state.leaseMaxTtl = 150;
  const src = source(
    {
      address: v.address,
      auth: { method: 'token', tokenFile: join(dir, 'token') },
      secret: { path: 'database/creds/orders' },
    },
    r.host,
  );
  src.start();
  await waitFor(() => r.last());
  const first = r.last()!.get('username');
  // Lease 100 s, max 150 s: renewed at 50 s (to 100), at 100 s (to 50, short of the 100 asked)...
  await clock.advance(50_000);
  await waitFor(() => v.count('PUT sys/leases/renew') === 1);
  await clock.advance(50_000);
  await waitFor(() => v.count('PUT sys/leases/renew') === 2);
  assert.equal(r.updates.length, 1, 'renewals keep the same secret');
  // ...and 25 s later (half of the 50 s left) a new secret, before the old one ends.
  await clock.advance(25_000);
  await waitFor(() => r.updates.length === 2, { what: 'a new secret' });
  assert.notEqual(r.last()!.get('username'), first);
  src.stop();
  await v.close();
});

test('through the engine: a file from vault is 0400 and survives an outage; no value in the log or /sync', async () => {
  const v = await vault();
  const clock = new FakeClock();
  const dir = tmp();
  writeFileSync(join(dir, 'token'), v.issue());
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const cfg = syncSchema.parse({
    sources: {
      db: {
        type: 'vault',
        address: v.address,
        auth: { method: 'token', tokenFile: join(dir, 'token') },
        kv: { path: 'orders', interval: '5s' },
        backoff: { min: '1s', max: '2s' },
      },
    },
    destinations: {
      dsn: {
        path: join(dir, 'out', 'dsn'),
        template: 'postgres://{{ db.username }}:{{ db.password }}@db/orders',
      },
    },
  });
  const e = new SyncEngine(cfg, {
    clock,
    random: () => 0.5,
    logger,
    metrics: createMetricsRegistry(),
    env: {},
  });
  assert.deepEqual(await e.start(), []);
  const out = join(dir, 'out', 'dsn');
  assert.equal(readFileSync(out, 'utf8'), 'postgres://app:pw-1@db/orders');
  assert.equal(statSync(out).mode & 0o777, 0o400);
  v.setDown(true);
  await clock.advance(5_000);
  await waitFor(() => (e.status() as { sources: { db: { state: string } } }).sources.db.state === 'failing');
  assert.equal(readFileSync(out, 'utf8'), 'postgres://app:pw-1@db/orders', 'kept through the outage');
  v.setDown(false);
  v.kv.data = { username: 'app', password: 'pw-3' };
  v.kv.version = 3;
  await clock.advance(2_000);
  await waitFor(() => readFileSync(out, 'utf8').includes('pw-3'), { what: 'recovery' });
  assert.ok(!lines.join('').includes('pw-'), 'no value in the log');
  assert.ok(!JSON.stringify(e.status()).includes('pw-'), 'no value in /sync');
  e.stop();
  await v.close();
});

test('a token whose renewal is refused is obtained again by logging in, before it expires', async () => {
  const v = await vault();
  v.state.refuseRenewal = true;
  const clock = new FakeClock();
  const r = recorder(clock);
  const dir = tmp();
  writeFileSync(join(dir, 'secret-id'), 'secret-1');
  const src = source(
    {
      address: v.address,
      auth: { method: 'approle', roleId: 'role-1', secretIdFile: join(dir, 'secret-id') },
      kv: { path: 'orders', interval: '1h' },
      renewFraction: 0.75,
    },
    r.host,
  );
  src.start();
  await waitFor(() => r.last());
  assert.equal(v.count('POST auth/approle/login'), 1);
  await clock.advance(44_999);
  assert.equal(v.count('POST auth/token/renew-self'), 0, 'not before 3/4 of the 60 s TTL');
  await clock.advance(1);
  await waitFor(() => v.count('POST auth/approle/login') === 2, {
    what: 'a login after the refused renewal',
  });
  assert.equal(v.count('POST auth/token/renew-self'), 1);
  assert.deepEqual(r.failures, []);
  src.stop();
  await v.close();
});
