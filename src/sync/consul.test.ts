// The consul source against a server that follows Consul's documented KV API and blocking queries
// (GET /v1/kv/<key>[?recurse][&index=&wait=], X-Consul-Index, X-Consul-Token, 404 for no key,
// 403 for a denied token): no Consul server package is available to the tests.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { FakeClock, systemClock } from '../lib/clock.js';
import type { PillionError } from '../lib/errors.js';
import { waitFor } from '../lib/wait-for.js';
import { syncSchema } from './config.js';
import type { SourceHost } from './sources/index.js';
import { ConsulSource } from './sources/consul.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Consul's KV endpoint as documented, with a raft index the test can move (and move backwards). */
async function consulKv(opts: { token?: string } = {}) {
  const kv = new Map<string, { value: string; modifyIndex: number }>();
  let index = 1;
  let down = false;
  const waiting = new Set<() => void>();
  const queries: URLSearchParams[] = [];
  const wake = () => {
    for (const w of waiting) w();
    waiting.clear();
  };
  const matching = (key: string, recurse: boolean) =>
    [...kv].filter(([k]) => (recurse ? k.startsWith(key) : k === key)).sort(([a], [b]) => a.localeCompare(b));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (down) return req.socket.destroy();
    const url = new URL(req.url!, 'http://x');
    queries.push(url.searchParams);
    if (opts.token && req.headers['x-consul-token'] !== opts.token) {
      res.statusCode = 403;
      return res.end('ACL not found');
    }
    const key = decodeURIComponent(url.pathname.replace(/^\/v1\/kv\//, ''));
    const recurse = url.searchParams.has('recurse');
    // The index of an answer: the highest ModifyIndex of what matches, as Consul's KV does, or the
    // store's index when nothing matches (at least 1).
    const indexOf = (found: [string, { modifyIndex: number }][]) =>
      Math.max(1, ...found.map(([, v]) => v.modifyIndex), found.length ? 0 : index);
    const answer = () => {
      const found = matching(key, recurse);
      const idx = indexOf(found);
      res.setHeader('x-consul-index', String(idx));
      if (found.length === 0) {
        res.statusCode = 404;
        return res.end();
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify(
          found.map(([k, v]) => ({
            Key: k,
            Value: Buffer.from(v.value).toString('base64'),
            ModifyIndex: v.modifyIndex,
            Flags: 0,
          })),
        ),
      );
    };
    const want = Number(url.searchParams.get('index') ?? 0);
    const current = () => indexOf(matching(key, recurse));
    if (want > 0 && current() <= want) {
      const waitMs = Number((url.searchParams.get('wait') ?? '300s').replace(/s$/, '')) * 1000;
      const timer = setTimeout(() => {
        waiting.delete(done);
        answer();
      }, waitMs);
      const done = () => {
        clearTimeout(timer);
        answer();
      };
      waiting.add(done);
      res.on('close', () => {
        clearTimeout(timer);
        waiting.delete(done);
      });
      return;
    }
    answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    queries,
    /** Blocking queries being held now. */
    held: () => waiting.size,
    put(k: string, v: string) {
      index++;
      kv.set(k, { value: v, modifyIndex: index });
      wake();
    },
    delete(k: string) {
      index++;
      kv.delete(k);
      wake();
    },
    /** A snapshot restore: every index goes back. */
    restoreOlder() {
      index = 1;
      for (const [k, v] of kv) kv.set(k, { value: v.value, modifyIndex: 1 });
      wake();
    },
    setDown(d: boolean) {
      down = d;
      if (d) wake();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function recorder(clock = systemClock) {
  const updates: { values: Map<string, unknown>; version: string }[] = [];
  const failures: PillionError[] = [];
  let contacts = 0;
  const host: SourceHost = {
    clock,
    random: () => 0.5,
    logger: pino({ level: 'silent' }),
    env: {},
    update: (values, version) => void updates.push({ values: new Map(values), version }),
    patch: () => assert.fail('consul reports whole values'),
    contact: () => void contacts++,
    fail: (err) => void failures.push(err),
  };
  return { host, updates, failures, contacts: () => contacts, last: () => updates.at(-1) };
}

function source(cfg: Record<string, unknown>, host: SourceHost): ConsulSource {
  const parsed = syncSchema.parse({
    sources: { s: { type: 'consul', backoff: { min: '50ms', max: '200ms' }, minInterval: '0s', ...cfg } },
    destinations: { d: { path: '/tmp/x', source: 's' } },
  });
  return new ConsulSource('s', parsed.sources.s as never, host);
}

test('one key: read, then blocking queries on its X-Consul-Index; changed, deleted (no value), written again', async () => {
  const consul = await consulKv();
  consul.put('app/config', 'v1');
  const r = recorder();
  const src = source({ address: consul.address, key: 'app/config', wait: '30s' }, r.host);
  src.start();
  await waitFor(() => r.last()?.values.get('') === 'v1');
  await waitFor(() => consul.queries.length === 2, { what: 'a blocking query' });
  assert.equal(consul.queries[1]!.get('index'), String(src.index));
  assert.equal(consul.queries[1]!.get('wait'), '30s');
  consul.put('app/config', 'v2');
  await waitFor(() => r.last()?.values.get('') === 'v2');
  consul.delete('app/config');
  await waitFor(() => r.last()?.values.size === 0, { what: 'the delete: no value' });
  consul.put('app/config', 'v3');
  await waitFor(() => r.last()?.values.get('') === 'v3');
  // Each change was one answer: a blocking query is not a busy loop.
  assert.ok(consul.queries.length <= 8, `${consul.queries.length} queries`);
  src.stop();
  await consul.close();
});

test('recurse: keys named without the prefix; an index that goes backwards is reset and read in full', async () => {
  const consul = await consulKv();
  consul.put('cfg/a', '1');
  consul.put('cfg/b', '2');
  consul.put('other', 'x');
  const r = recorder();
  const src = source({ address: consul.address, key: 'cfg/', recurse: true, wait: '30s' }, r.host);
  src.start();
  await waitFor(() => r.last()?.values.size === 2);
  assert.deepEqual(
    [...r.last()!.values],
    [
      ['a', '1'],
      ['b', '2'],
    ],
  );
  const before = src.index;
  assert.ok(before > 1);
  // (A query sent after the restore would wait out its `wait` on the higher index, as with Consul.)
  await waitFor(() => consul.held() === 1, { what: 'a held blocking query' });
  consul.restoreOlder();
  consul.put('cfg/c', '3'); // index 2 now: below what the source waited on
  await waitFor(() => r.last()?.values.get('c') === '3', { what: 'the change after the restore' });
  const plain = consul.queries.findIndex((q, i) => i > 1 && !q.has('index'));
  assert.ok(plain > 0, 'a plain read after the index went backwards');
  src.stop();
  await consul.close();
});

test('a token from a file; 403 at start is an auth error retried on back-off, not in a tight loop; outage and recovery', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pillion-consul-'));
  dirs.push(dir);
  const consul = await consulKv({ token: 'good-token' });
  consul.put('k', 'v');
  writeFileSync(join(dir, 'token'), 'bad-token\n');
  const clock = new FakeClock();
  const r = recorder(clock);
  const src = source(
    { address: consul.address, key: 'k', tokenFile: join(dir, 'token'), backoff: { min: '1s', max: '8s' } },
    r.host,
  );
  src.start();
  await waitFor(() => r.failures.length === 1);
  assert.equal(r.failures[0]!.code, 'PILLION_ERR_SYNC_SOURCE_AUTH');
  assert.equal(
    r.failures[0]!.message,
    'consul source s: HTTP 403 (permission denied): ACL not found or permission denied',
  );
  assert.doesNotMatch(r.failures[0]!.message, /bad-token/);
  await clock.advance(700);
  assert.equal(consul.queries.length, 1, 'no retry before the back-off');
  writeFileSync(join(dir, 'token'), 'good-token');
  await clock.advance(100);
  await waitFor(() => r.last()?.values.get('') === 'v');
  src.stop();
  // The server goes away and comes back: failures, then the value again.
  consul.setDown(true);
  const r2 = recorder();
  const again = source(
    { address: consul.address, key: 'k', tokenFile: join(dir, 'token'), wait: '30s' },
    r2.host,
  );
  again.start();
  await waitFor(() => r2.failures.length >= 1);
  consul.setDown(false);
  await waitFor(() => r2.last()?.values.get('') === 'v', { what: 'recovery' });
  again.stop();
  await consul.close();
});
