// The etcd source against a real etcd (Debian's etcd-server), started on free loopback ports and
// stopped after; a TCP relay between them cuts the watch to test resuming.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { systemClock } from '../lib/clock.js';
import type { PillionError } from '../lib/errors.js';
import { waitFor } from '../lib/wait-for.js';
import { syncSchema } from './config.js';
import { EtcdSource, prefixRangeEnd } from './sources/etcd.js';
import type { SourceHost } from './sources/index.js';
import { freePort } from '../lib/free-port.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

let etcd: ChildProcess | undefined;
let dataDir: string;
let url: string;

async function startEtcd(): Promise<void> {
  const have = spawnSync('bash', ['scripts/install-peers.sh', 'etcd', 'etcdctl'], {
    stdio: 'inherit',
    cwd: new URL('../../', import.meta.url).pathname,
  });
  if (have.status !== 0)
    throw new Error('scripts/install-peers.sh could not provide etcd (Debian package etcd-server)');
  for (let attempt = 0; ; attempt++) {
    const [client, peer] = [await freePort(), await freePort()];
    dataDir = mkdtempSync(join(tmpdir(), 'pillion-etcd-'));
    url = `http://127.0.0.1:${client}`;
    etcd = spawn(
      'etcd',
      [
        '--name',
        'pillion-test',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        url,
        '--advertise-client-urls',
        url,
        '--listen-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peer}`,
        '--initial-cluster',
        `pillion-test=http://127.0.0.1:${peer}`,
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitFor(async () => (await fetch(`${url}/health`)).ok, { what: 'etcd up', timeoutMs: 20_000 });
      return;
    } catch (err) {
      etcd.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      if (attempt >= 2) throw err;
    }
  }
}

before(startEtcd);
after(() => {
  etcd?.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Record<string, any>> {
  const res = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body), headers });
  const json = (await res.json()) as Record<string, any>;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
const put = async (key: string, value: string) =>
  Number((await call('/v3/kv/put', { key: b64(key), value: b64(value) })).header.revision);
const del = (key: string) => call('/v3/kv/deleterange', { key: b64(key) });

/** A relay that can cut every connection and refuse new ones, standing for a network outage. */
async function relay(target: string) {
  const { port } = new URL(target);
  const sockets = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((s) => {
    if (down) return s.destroy();
    const up = net.connect(Number(port), '127.0.0.1');
    sockets.add(s).add(up);
    s.pipe(up).pipe(s);
    const close = () => {
      s.destroy();
      up.destroy();
    };
    s.on('error', close).on('close', close);
    up.on('error', close).on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function recorder() {
  const updates: { values: Map<string, unknown>; version: string }[] = [];
  const failures: PillionError[] = [];
  const host: SourceHost = {
    clock: systemClock,
    random: () => 0.5,
    logger: pino({ level: 'silent' }),
    env: {},
    update: (values, version) => void updates.push({ values: new Map(values), version }),
    // A watch's events: applied to the last values, so each record is the whole set after it.
    patch: (changes, version) => {
      const values = new Map(updates.at(-1)?.values);
      for (const [k, v] of changes) {
        if (v === undefined) values.delete(k);
        else values.set(k, v);
      }
      updates.push({ values, version });
    },
    contact: () => {},
    fail: (err) => void failures.push(err),
  };
  return { host, updates, failures, last: () => updates.at(-1) };
}

function source(cfg: Record<string, unknown>, host: SourceHost): EtcdSource {
  const parsed = syncSchema.parse({
    sources: { s: { type: 'etcd', backoff: { min: '20ms', max: '200ms' }, ...cfg } },
    destinations: { d: { path: '/tmp/x', source: 's' } },
  });
  return new EtcdSource('s', parsed.sources.s as never, host);
}

test('prefix range end as etcd computes it', () => {
  assert.deepEqual(prefixRangeEnd('app/'), Buffer.from('app0'));
  assert.deepEqual(prefixRangeEnd('config/app-'), Buffer.from('config/app.'));
});

test('one key: read, changed, deleted (no value, not an empty one), written again', async () => {
  await put('single/key', 'v1');
  const r = recorder();
  const src = source({ endpoints: [url], key: 'single/key' }, r.host);
  src.start();
  await waitFor(() => r.last()?.values.get('') === 'v1');
  const rev = await put('single/key', 'v2');
  await waitFor(() => r.last()?.values.get('') === 'v2', { what: 'the change' });
  assert.equal(r.last()!.version, String(rev));
  await del('single/key');
  await waitFor(() => r.last()?.values.size === 0, { what: 'the delete' });
  await put('single/key', 'v3');
  await waitFor(() => r.last()?.values.get('') === 'v3');
  assert.deepEqual(r.failures, []);
  src.stop();
});

test('a prefix: keys named without it; the watch resumes after a cut from the last revision, missing and repeating nothing', async () => {
  await put('app/a', '1');
  await put('app/b', '1');
  await put('other', 'x');
  const link = await relay(url);
  const r = recorder();
  const src = source({ endpoints: [link.url], key: 'app/', prefix: true }, r.host);
  src.start();
  await waitFor(() => r.last()?.values.size === 2);
  assert.deepEqual([...r.last()!.values].sort(), [
    ['a', '1'],
    ['b', '1'],
  ]);
  await put('app/a', '2');
  await waitFor(() => r.last()?.values.get('a') === '2');
  link.cut();
  await waitFor(() => r.failures.length > 0, { what: 'the cut seen' });
  // Changes while the watch is cut.
  await put('app/a', '3');
  await put('app/c', '1');
  await del('app/b');
  await put('other', 'y');
  const seen = r.updates.length;
  link.restore();
  await waitFor(
    () =>
      r.last()?.values.get('c') === '1' && !r.last()!.values.has('b') && r.last()!.values.get('a') === '3',
    {
      what: 'every change made during the cut',
    },
  );
  await put('app/a', '4');
  await waitFor(() => r.last()?.values.get('a') === '4');
  const versions = r.updates.map((u) => Number(u.version));
  assert.deepEqual(
    [...versions].sort((x, y) => x - y),
    versions,
    'revisions only go forward',
  );
  assert.equal(new Set(versions).size, versions.length, 'no revision applied twice');
  assert.ok(
    r.updates.length - seen <= 4,
    `the cut's three changes and the last one, at most (${r.updates.length - seen})`,
  );
  src.stop();
  await link.close();
});

test('compaction: the revision to resume from is gone, so everything is read again and watched from there', async () => {
  await put('cmp/a', '1');
  const link = await relay(url);
  const r = recorder();
  const src = source({ endpoints: [link.url], key: 'cmp/', prefix: true }, r.host);
  src.start();
  await waitFor(() => r.last()?.values.get('a') === '1');
  link.cut();
  await waitFor(() => r.failures.length > 0);
  await put('cmp/a', '2');
  await put('cmp/b', '1');
  const rev = await put('cmp/a', '3');
  await call('/v3/kv/compaction', { revision: String(rev), physical: true });
  link.restore();
  await waitFor(() => r.last()?.values.get('a') === '3' && r.last()?.values.get('b') === '1', {
    what: 'the values after compaction',
  });
  assert.equal(src.revision, rev);
  await put('cmp/b', '2');
  await waitFor(() => r.last()?.values.get('b') === '2', { what: 'watching after the re-read' });
  src.stop();
  await link.close();
});

test('etcd unreachable at start: a clear error, retried with back-off', async () => {
  const port = await freePort();
  const r = recorder();
  const src = source({ endpoints: [`http://127.0.0.1:${port}`], key: 'x' }, r.host);
  src.start();
  await waitFor(() => r.failures.length >= 2);
  assert.equal(r.failures[0]!.code, 'PILLION_ERR_SYNC_SOURCE');
  assert.match(r.failures[0]!.message, /etcd source s: http:\/\/127\.0\.0\.1:\d+ ECONNREFUSED/);
  src.stop();
});

test('auth: a user and a password file; a wrong password is an auth error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-etcd-auth-'));
  try {
    await call('/v3/auth/user/add', { name: 'root', password: 'r00t-pw' });
    await call('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await call('/v3/auth/enable', {});
    const token = (await call('/v3/auth/authenticate', { name: 'root', password: 'r00t-pw' }))
      .token as string;
    await call('/v3/kv/put', { key: b64('auth/k'), value: b64('secret-v') }, { authorization: token });
    writeFileSync(join(dir, 'pw'), 'r00t-pw\n');
    writeFileSync(join(dir, 'bad'), 'wrong');
    const ok = recorder();
    const src = source(
      { endpoints: [url], key: 'auth/k', username: 'root', passwordFile: join(dir, 'pw') },
      ok.host,
    );
    src.start();
    await waitFor(() => ok.last()?.values.get('') === 'secret-v');
    src.stop();
    const bad = recorder();
    const denied = source(
      { endpoints: [url], key: 'auth/k', username: 'root', passwordFile: join(dir, 'bad') },
      bad.host,
    );
    denied.start();
    await waitFor(() => bad.failures.length > 0);
    assert.equal(bad.failures[0]!.code, 'PILLION_ERR_SYNC_SOURCE_AUTH');
    assert.doesNotMatch(bad.failures[0]!.message, /wrong/);
    denied.stop();
    await call('/v3/auth/disable', {}, { authorization: token });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
