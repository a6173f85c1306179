import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { type Clock, FakeClock, systemClock } from '../lib/clock.js';
import type { PillionError } from '../lib/errors.js';
import { waitFor } from '../lib/wait-for.js';
import { type SourceConfig, syncSchema } from './config.js';
import { createSource, type SourceHost } from './sources/index.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'pillion-src-'));
  dirs.push(d);
  return d;
}

function sourceConfig(s: unknown): SourceConfig {
  return syncSchema.parse({ sources: { s }, destinations: { d: { path: '/tmp/x', source: 's' } } }).sources
    .s!;
}

/** A host that records what a source reports. */
function recorder(clock: Clock = systemClock) {
  const events: {
    kind: 'update' | 'contact' | 'fail';
    values?: Map<string, unknown>;
    version?: string | undefined;
    err?: PillionError;
  }[] = [];
  const host: SourceHost = {
    clock,
    random: () => 0.5,
    logger: pino({ level: 'silent' }),
    env: { APP_DB: 'pg', APP_MODE: 'blue', OTHER: 'x' },
    update: (values, version) => void events.push({ kind: 'update', values: new Map(values), version }),
    patch: () => assert.fail('these sources report whole values'),
    contact: (version) => void events.push({ kind: 'contact', version }),
    fail: (err) => void events.push({ kind: 'fail', err }),
  };
  const last = (kind: string) => events.filter((e) => e.kind === kind).at(-1);
  return { host, events, last };
}

test('file source: read at start, changes seen through the directory watch, a deleted file is a failure (not an empty value)', async () => {
  const d = tmp();
  const file = join(d, 'config.json');
  writeFileSync(file, '{"v":1}');
  const r = recorder();
  const src = createSource('s', sourceConfig({ type: 'file', path: file, poll: '1h' }), r.host);
  src.start();
  await waitFor(() => r.last('update'));
  assert.equal(r.last('update')!.values!.get(''), '{"v":1}');
  writeFileSync(`${file}.tmp`, '{"v":2}');
  // An editor's save: a new file renamed over the old one.
  const { renameSync } = await import('node:fs');
  renameSync(`${file}.tmp`, file);
  await waitFor(() => r.last('update')!.values!.get('') === '{"v":2}', { what: 'the new content' });
  unlinkSync(file);
  await waitFor(() => r.last('fail'), { what: 'a failure' });
  assert.match(r.last('fail')!.err!.message, /file source s: cannot read .*config.json: ENOENT/);
  writeFileSync(file, '{"v":3}');
  await waitFor(() => r.last('update')!.values!.get('') === '{"v":3}', { what: 'recovery' });
  src.stop();
});

test("directory source: each file a key, a ConfigMap volume's ..data entries left out, a removed key is gone", async () => {
  const d = tmp();
  mkdirSync(join(d, '..2024_01_01'));
  writeFileSync(join(d, '..2024_01_01', 'db_host'), 'pg.internal');
  writeFileSync(join(d, '..2024_01_01', 'mode'), 'blue');
  symlinkSync('..2024_01_01', join(d, '..data'));
  symlinkSync('..data/db_host', join(d, 'db_host'));
  symlinkSync('..data/mode', join(d, 'mode'));
  const r = recorder();
  const src = createSource('s', sourceConfig({ type: 'directory', path: d, poll: '1h' }), r.host);
  src.start();
  await waitFor(() => r.last('update'));
  assert.deepEqual(
    [...r.last('update')!.values!],
    [
      ['db_host', 'pg.internal'],
      ['mode', 'blue'],
    ],
  );
  unlinkSync(join(d, 'mode'));
  await waitFor(() => r.last('update')!.values!.size === 1, { what: 'the key gone' });
  src.stop();
});

test('env source: by name and by prefix', () => {
  const r = recorder();
  createSource('s', sourceConfig({ type: 'env', names: ['OTHER'], prefix: 'APP_' }), r.host).start();
  assert.deepEqual(
    [...r.last('update')!.values!],
    [
      ['OTHER', 'x'],
      ['DB', 'pg'],
      ['MODE', 'blue'],
    ],
  );
});

/** An HTTP server whose answers the test sets; it records each request's headers. */
async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const requests: IncomingMessage['headers'][] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/config`;
  return { server, url, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('http source: ETag and If-None-Match (a 304 is a contact, not a change), a token file read at every request', async () => {
  const d = tmp();
  const tokenFile = join(d, 'token');
  writeFileSync(tokenFile, 'tok-1\n');
  let body = 'v1';
  const srv = await httpServer((req, res) => {
    const etag = `"${body}"`;
    if (req.headers['if-none-match'] === etag) {
      res.statusCode = 304;
      return res.end();
    }
    res.setHeader('etag', etag);
    res.end(body);
  });
  const clock = new FakeClock();
  const r = recorder(clock);
  const src = createSource(
    's',
    sourceConfig({ type: 'http', url: srv.url, interval: '30s', tokenFile }),
    r.host,
  );
  src.start();
  await waitFor(() => r.last('update'));
  assert.equal(r.last('update')!.values!.get(''), 'v1');
  assert.equal(r.last('update')!.version, '"v1"');
  assert.equal(srv.requests[0]!.authorization, 'Bearer tok-1');
  await clock.advance(30_000);
  await waitFor(() => r.last('contact'));
  assert.equal(srv.requests[1]!['if-none-match'], '"v1"');
  body = 'v2';
  writeFileSync(tokenFile, 'tok-2');
  await clock.advance(30_000);
  await waitFor(() => r.last('update')!.values!.get('') === 'v2');
  assert.equal(srv.requests[2]!.authorization, 'Bearer tok-2');
  src.stop();
  await srv.close();
});

test('http source: 403 at start is a clear auth error, retried on back-off, never in a tight loop; outage and recovery', async () => {
  let status = 403;
  const srv = await httpServer((_req, res) => {
    res.statusCode = status;
    res.end(status === 200 ? 'ok' : 'denied: secret-detail');
  });
  const clock = new FakeClock();
  const r = recorder(clock);
  const src = createSource(
    's',
    sourceConfig({ type: 'http', url: srv.url, backoff: { min: '1s', max: '8s' } }),
    r.host,
  );
  src.start();
  await waitFor(() => r.last('fail'));
  const err = r.last('fail')!.err!;
  assert.equal(err.code, 'PILLION_ERR_SYNC_SOURCE_AUTH');
  assert.equal(err.message, 'http source s: HTTP 403 (permission denied)');
  // Back-off: 0.75 s, then 1.5 s, 3 s (the upper half of 1, 2, 4 s with this random): 3 requests in 4 s, not hundreds.
  await clock.advance(4_000);
  await waitFor(() => srv.requests.length === 3);
  await clock.advance(1_000);
  assert.equal(srv.requests.length, 3);
  status = 200;
  await clock.advance(3_000);
  await waitFor(() => r.last('update'));
  assert.equal(r.last('update')!.values!.get(''), 'ok');
  src.stop();
  await srv.close();
  // An outage: the server is gone; the source reports failures and keeps retrying.
  const r2 = recorder(clock);
  const gone = createSource('g', sourceConfig({ type: 'http', url: srv.url }), r2.host);
  gone.start();
  await waitFor(() => r2.last('fail'));
  assert.equal(r2.last('fail')!.err!.code, 'PILLION_ERR_SYNC_SOURCE');
  assert.match(r2.last('fail')!.err!.message, /ECONNREFUSED/);
  gone.stop();
});

test('http source: long-poll holds the request until the value changes', async () => {
  let body = 'v1';
  const waiting: ServerResponse[] = [];
  const srv = await httpServer((req, res) => {
    if (req.headers['if-none-match'] === `"${body}"`) {
      waiting.push(res); // held until the value changes
      return;
    }
    res.setHeader('etag', `"${body}"`);
    res.end(body);
  });
  const r = recorder(systemClock);
  const src = createSource(
    's',
    sourceConfig({ type: 'http', url: srv.url, longPoll: { wait: '30s' } }),
    r.host,
  );
  src.start();
  await waitFor(() => r.last('update'));
  await waitFor(() => waiting.length === 1, { what: 'a held request' });
  assert.equal(srv.requests[1]!.prefer, 'wait=30');
  body = 'v2';
  const held = waiting.shift()!;
  held.setHeader('etag', '"v2"');
  held.end('v2');
  await waitFor(() => r.last('update')!.values!.get('') === 'v2');
  await waitFor(() => waiting.length === 1, { what: 'the next held request at once' });
  src.stop();
  waiting.forEach((w) => w.destroy());
  srv.server.closeAllConnections();
  await srv.close();
});
