import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { FakeClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { AccessLog, type AccessRecord } from './access-log.js';

const dir = () => mkdtempSync(join(tmpdir(), 'pillion-access-'));

const FIELDS = [
  'start_time',
  'method',
  'path',
  'protocol',
  'response_code',
  'response_flags',
  'bytes_received',
  'bytes_sent',
  'duration',
  'upstream_service_time',
  'upstream_host',
  'x_forwarded_for',
  'user_agent',
  'request_id',
  'authority',
  'downstream_remote_address',
  'listener',
  'route',
];

function record(over: Partial<AccessRecord> = {}): AccessRecord {
  return {
    start_time: Date.UTC(2026, 10, 21, 7, 35, 46, 123),
    method: 'GET',
    path: '/orders/42',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    bytes_received: 0,
    bytes_sent: 512,
    duration: 12.3456789,
    upstream_service_time: 10.5,
    upstream_host: '127.0.0.1:8080',
    x_forwarded_for: null,
    user_agent: 'curl/8.5.0',
    request_id: 'b5f1c1d2',
    authority: 'orders.local',
    downstream_remote_address: '10.0.0.7:53211',
    listener: 'inbound',
    route: 'orders',
    ...over,
  };
}

/** A destination the test controls: it can stop accepting bytes, as a stuck stdout pipe does. */
class Capture extends Writable {
  chunks: Buffer[] = [];
  stalled = false;
  #held: (() => void)[] = [];

  constructor() {
    super({ highWaterMark: 16 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    if (this.stalled) this.#held.push(() => cb());
    else cb();
  }

  release(): void {
    this.stalled = false;
    for (const cb of this.#held.splice(0)) cb();
  }

  lines(): string[] {
    return Buffer.concat(this.chunks).toString('utf8').split('\n').slice(0, -1);
  }
}

const fileLines = (path: string): string[] => {
  const text = readFileSync(path, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), `${path} ends inside a line`);
  return text.split('\n').slice(0, -1);
};

test('a line holds the fields in Envoy order, ISO time, nulls and at most 3 decimals', async () => {
  const out = new Capture();
  const log = AccessLog.open({ path: 'stdout', maxSize: 1 << 20, maxFiles: 1 }, { stream: out });
  log.write(record());
  log.write(
    record({
      response_code: 0,
      response_flags: 'DC',
      upstream_service_time: null,
      route: null,
      error: 'PILLION_ERR_PROXY_UPSTREAM_CONNECT',
    }),
  );
  await log.close();
  const [first, second] = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(Object.keys(first!), FIELDS);
  assert.deepEqual(Object.keys(second!), [...FIELDS, 'error']);
  assert.equal(first!.start_time, '2026-11-21T07:35:46.123Z');
  assert.equal(first!.duration, 12.346);
  assert.equal(first!.upstream_service_time, 10.5);
  assert.equal(first!.x_forwarded_for, null);
  assert.equal(first!.response_code, 200);
  assert.equal(second!.response_code, 0);
  assert.equal(second!.response_flags, 'DC');
  assert.equal(second!.upstream_service_time, null);
  assert.equal(second!.route, null);
  assert.equal(second!.error, 'PILLION_ERR_PROXY_UPSTREAM_CONNECT');
  assert.match(
    out.lines()[0]!,
    /^\{"start_time":"2026-11-21T07:35:46\.123Z","method":"GET","path":"\/orders\/42",/,
  );
});

test('values that are not JSON numbers or dates are written as null, never as invalid JSON', async () => {
  const out = new Capture();
  const log = AccessLog.open({ path: 'stdout', maxSize: 1 << 20, maxFiles: 1 }, { stream: out });
  log.write(
    record({
      start_time: NaN,
      duration: Infinity,
      bytes_sent: NaN,
      user_agent: undefined as unknown as null,
    }),
  );
  await log.close();
  const rec = JSON.parse(out.lines()[0]!) as Record<string, unknown>;
  assert.equal(rec.start_time, null);
  assert.equal(rec.duration, null);
  assert.equal(rec.bytes_sent, null);
  assert.equal(rec.user_agent, null);
});

test('quotes, backslashes, newlines, control characters and non-ASCII are escaped into valid UTF-8 JSON', async () => {
  const path = join(dir(), 'access.log');
  const log = AccessLog.open({ path, maxSize: 1 << 20, maxFiles: 1 }, { clock: new FakeClock() });
  const nasty = {
    path: '/a"b\\c\nd\re\tf\u0000g\u001fh\u007f/ünï/日本/😀\u2028',
    user_agent: 'Mozilla "x"\n\u0007 \ud800 lone \udfff surrogates',
    x_forwarded_for: '1.2.3.4, "5.6.7.8"',
  };
  log.write(record(nasty));
  await log.close();
  const raw = readFileSync(path);
  assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(raw), 'file is valid UTF-8');
  const lines = fileLines(path);
  assert.equal(lines.length, 1, 'an escaped newline does not break the line');
  assert.ok(lines[0]!.includes('ünï/日本/😀'), 'non-ASCII passes through unescaped');
  const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(rec.path, nasty.path);
  assert.equal(rec.user_agent, nasty.user_agent);
  assert.equal(rec.x_forwarded_for, nasty.x_forwarded_for);
});

test('any string and any time round-trip through a line as JSON.stringify and toISOString write them', async () => {
  // Any UTF-16 code unit, lone surrogates included, weighted towards the ones that need escaping.
  const unit = fc.oneof(
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('"', '\\', '\n', '\u0000', '\u007f', '\u2028', '\ud800', '😀', 'ü'),
    fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  );
  const text = fc.string({ unit, maxLength: 40 });
  const samples = fc.sample(
    fc.record({
      path: text,
      user_agent: text,
      start_time: fc.oneof(
        fc.integer({ min: 0, max: 4102444800000 }),
        fc.double({ min: -1e13, max: 1e14, noNaN: true }),
      ),
    }),
    { numRuns: 2000, seed: 42 },
  );
  const out = new Capture();
  const log = AccessLog.open({ path: 'stdout', maxSize: 1 << 20, maxFiles: 1 }, { stream: out });
  for (const s of samples) log.write(record(s));
  await log.close();
  const raw = Buffer.concat(out.chunks);
  assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(raw), 'output is valid UTF-8');
  const lines = out.lines();
  assert.equal(lines.length, samples.length);
  lines.forEach((line, i) => {
    const s = samples[i]!;
    const rec = JSON.parse(line) as Record<string, unknown>;
    assert.equal(rec.path, s.path);
    assert.equal(rec.user_agent, s.user_agent);
    assert.equal(rec.start_time, new Date(s.start_time).toISOString());
    assert.ok(
      line.includes(`"path":${JSON.stringify(s.path)},`),
      'strings are written as JSON.stringify writes them',
    );
  });
});

test('many writes in one turn are batched, complete and in order', async () => {
  const out = new Capture();
  const log = AccessLog.open({ path: 'stdout', maxSize: 1 << 20, maxFiles: 1 }, { stream: out });
  const n = 5000;
  for (let i = 0; i < n; i++) log.write(record({ request_id: String(i) }));
  assert.equal(out.chunks.length <= 1, true, 'nothing is written line by line');
  await log.flush();
  const lines = out.lines();
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as AccessRecord).request_id),
    Array.from({ length: n }, (_, i) => String(i)),
  );
  const total = out.chunks.reduce((sum, c) => sum + c.length, 0);
  assert.ok(
    out.chunks.length <= Math.ceil(total / (64 * 1024)) + 1,
    `${out.chunks.length} writes for ${total} bytes`,
  );
  for (const c of out.chunks) assert.equal(c[c.length - 1], 10, 'a write ends on a line boundary');
  await log.close();
});

test('lines written across turns reach the file complete and in order', async () => {
  const path = join(dir(), 'access.log');
  writeFileSync(path, 'an earlier line\n');
  const log = AccessLog.open({ path, maxSize: 1 << 20, maxFiles: 1 }, { clock: new FakeClock() });
  for (let turn = 0; turn < 20; turn++) {
    for (let i = 0; i < 50; i++) log.write(record({ request_id: `${turn}-${i}` }));
    await new Promise((r) => setImmediate(r));
  }
  await log.flush();
  const lines = fileLines(path);
  assert.equal(lines[0], 'an earlier line', 'the file is appended to');
  const ids = lines.slice(1).map((l) => (JSON.parse(l) as AccessRecord).request_id);
  assert.equal(ids.length, 1000);
  assert.equal(ids[0], '0-0');
  assert.equal(ids[999], '19-49');
  assert.deepEqual(
    ids,
    [...ids].sort((a, b) => order(a!) - order(b!)),
  );
  await log.close();
});

const order = (id: string) => {
  const [t, i] = id.split('-').map(Number);
  return t! * 1000 + i!;
};

test('rotation keeps path and path.1 … path.N, never splits a line and loses only what rotated out', async () => {
  const path = join(dir(), 'access.log');
  const maxSize = 1024;
  const maxFiles = 3;
  const log = AccessLog.open({ path, maxSize, maxFiles }, { clock: new FakeClock() });
  const n = 200;
  // Half in one batch, half a line per turn: rotation splits a batch at line boundaries either way.
  for (let i = 0; i < n / 2; i++) log.write(record({ request_id: String(i) }));
  for (let i = n / 2; i < n; i++) {
    log.write(record({ request_id: String(i) }));
    await new Promise((r) => setImmediate(r));
  }
  await log.close();
  const files = [`${path}.3`, `${path}.2`, `${path}.1`, path];
  for (const f of files) {
    assert.ok(existsSync(f), `${f} exists`);
    assert.ok(statSync(f).size <= maxSize, `${f} is within maxSize`);
  }
  assert.equal(existsSync(`${path}.4`), false, 'no more than maxFiles rotated files');
  const ids = files.flatMap((f) =>
    fileLines(f).map((l) => Number((JSON.parse(l) as AccessRecord).request_id)),
  );
  assert.equal(ids[ids.length - 1], n - 1);
  assert.deepEqual(
    ids,
    Array.from({ length: ids.length }, (_, i) => n - ids.length + i),
    'the kept lines are the newest, contiguous',
  );
  const perFile = Math.floor(maxSize / (readFileSync(path, 'utf8').split('\n')[0]!.length + 1));
  assert.ok(ids.length > perFile * 3, 'rotated files are filled up to maxSize');
});

test('a line larger than maxSize is written whole, to a file of its own', async () => {
  const path = join(dir(), 'access.log');
  const log = AccessLog.open({ path, maxSize: 1024, maxFiles: 2 }, { clock: new FakeClock() });
  log.write(record({ request_id: 'small-1' }));
  log.write(record({ request_id: 'big', user_agent: 'x'.repeat(3000) }));
  log.write(record({ request_id: 'small-2' }));
  await log.close();
  const ids = (f: string) => fileLines(f).map((l) => (JSON.parse(l) as AccessRecord).request_id);
  assert.deepEqual(ids(`${path}.2`), ['small-1']);
  assert.deepEqual(ids(`${path}.1`), ['big']);
  assert.deepEqual(ids(path), ['small-2']);
});

test('a file removed or renamed away by logrotate is replaced by a new one', async () => {
  const path = join(dir(), 'access.log');
  const clock = new FakeClock();
  const log = AccessLog.open({ path, maxSize: 1 << 20, maxFiles: 2 }, { clock });
  const ids = (f: string) => fileLines(f).map((l) => (JSON.parse(l) as AccessRecord).request_id);

  log.write(record({ request_id: 'a' }));
  await log.flush();
  renameSync(path, `${path}-20261121`);
  await clock.advance(1000);
  log.write(record({ request_id: 'b' }));
  await log.flush();
  assert.deepEqual(ids(`${path}-20261121`), ['a']);
  assert.deepEqual(ids(path), ['b']);

  unlinkSync(path);
  await clock.advance(1000);
  log.write(record({ request_id: 'c' }));
  await log.close();
  assert.deepEqual(ids(path), ['c']);
});

test('a destination that does not drain makes new lines drop, counted and reported once, until it drains', async () => {
  const out = new Capture();
  out.stalled = true;
  const errors: Error[] = [];
  const log = AccessLog.open(
    { path: 'stdout', maxSize: 1 << 20, maxFiles: 1 },
    { stream: out, onError: (err) => errors.push(err) },
  );
  const ua = 'u'.repeat(4000);
  const n = 3000; // about 12 MiB, well past the 8 MiB bound
  for (let i = 0; i < n; i++) log.write(record({ request_id: String(i), user_agent: ua }));
  assert.ok(log.dropped > 0, 'lines beyond the bound are dropped');
  assert.ok(log.dropped < n - 1500, `most of 8 MiB is kept (dropped ${log.dropped})`);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /not keeping up/);
  const kept = n - log.dropped;

  out.release();
  await log.flush();
  const ids = out.lines().map((l) => Number((JSON.parse(l) as AccessRecord).request_id));
  assert.deepEqual(
    ids,
    Array.from({ length: kept }, (_, i) => i),
    'the kept lines are the first ones, whole and in order',
  );

  const dropped = log.dropped;
  log.write(record({ request_id: 'after' }));
  await log.close();
  assert.equal(log.dropped, dropped, 'writing resumes once drained');
  assert.equal((JSON.parse(out.lines().at(-1)!) as AccessRecord).request_id, 'after');
  assert.equal(errors.length, 1);
});

test('a stream that fails is reported, its lines are counted as dropped, and close() still resolves', async () => {
  const errors: Error[] = [];
  const out = new Writable({
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const log = AccessLog.open(
    { path: 'stdout', maxSize: 1 << 20, maxFiles: 1 },
    { stream: out, onError: (err) => errors.push(err) },
  );
  log.write(record());
  await log.flush();
  log.write(record());
  log.write(record());
  await log.close();
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /EPIPE/);
  assert.equal(log.dropped, 2, 'the lines after the failure are dropped');
});

test('a file in a missing directory fails clearly through onError', async () => {
  const path = join(dir(), 'no-such-dir', 'access.log');
  const errors: Error[] = [];
  const log = AccessLog.open(
    { path, maxSize: 1 << 20, maxFiles: 1 },
    { clock: new FakeClock(), onError: (err) => errors.push(err) },
  );
  log.write(record());
  await log.close();
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /no-such-dir does not exist/);
  assert.equal(log.dropped, 1);
  assert.equal(existsSync(path), false);
});

test('a file that cannot be written is retried each second and catches up without losing lines', async () => {
  const path = join(dir(), 'access.log');
  mkdirSync(path); // opening a directory for append fails, as a full or read-only disk would
  const clock = new FakeClock();
  const errors: Error[] = [];
  const log = AccessLog.open(
    { path, maxSize: 1 << 20, maxFiles: 1 },
    {
      clock,
      onError: (err) => {
        errors.push(err);
        throw new Error('a throwing onError does not stop the writer');
      },
    },
  );
  log.write(record({ request_id: '1' }));
  await waitFor(() => clock.pending === 1, { what: 'the retry to be scheduled' });
  log.write(record({ request_id: '2' }));
  await clock.advance(1000);
  await waitFor(() => clock.pending === 1, { what: 'the second retry' });
  assert.equal(errors.length, 1, 'one report for the whole failure');
  rmdirSync(path);
  await clock.advance(1000);
  log.write(record({ request_id: '3' }));
  await log.close();
  assert.deepEqual(
    fileLines(path).map((l) => (JSON.parse(l) as AccessRecord).request_id),
    ['1', '2', '3'],
  );
  assert.equal(log.dropped, 0);
});

test('close() flushes what was written, and later writes are ignored', async () => {
  const path = join(dir(), 'access.log');
  const log = AccessLog.open({ path, maxSize: 1 << 20, maxFiles: 1 }, { clock: new FakeClock() });
  for (let i = 0; i < 100; i++) log.write(record({ request_id: String(i) }));
  await log.close();
  assert.equal(fileLines(path).length, 100);
  log.write(record());
  await log.flush();
  await log.close();
  assert.equal(fileLines(path).length, 100);
  assert.equal(log.dropped, 0);
});
