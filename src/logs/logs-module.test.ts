// The log role end to end, on real files and sockets: every record kind arrives (flagged, never
// dropped), a sink that is down holds memory to its bound and pauses the tail, the disk buffer
// carries events across a restart, and a reload swaps the pipeline without losing a line.

import assert from 'node:assert/strict';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { formatIssue } from '../config/index.js';
import { type Clock, FakeClock, systemClock } from '../lib/clock.js';
import { waitFor } from '../lib/wait-for.js';
import { createMetricsRegistry, type Registry } from '../metrics/index.js';
import { parsePillionConfig } from '../roles.js';
import { HealthSignal } from '../runtime/health-signal.js';
import type { LogsConfig } from './config.js';
import { LogsModule } from './logs-module.js';
import { freePort } from '../lib/free-port.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pillion-logs-module-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function logsConfig(yaml: string): Promise<LogsConfig> {
  const r = await parsePillionConfig(yaml, 'pillion.yaml', {});
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.config.logs!;
}

function startModule(
  cfg: LogsConfig,
  metrics: Registry = createMetricsRegistry(),
  clock: Clock = systemClock,
) {
  const m = new LogsModule(cfg, {
    logger: pino({ level: 'silent' }),
    metrics,
    clock,
    appHealth: new HealthSignal(true),
    env: {},
    services: new Map(),
  });
  return { module: m, metrics, started: m.start() };
}

async function metric(metrics: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await metrics.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return Number(v?.value ?? 0);
}

function ndjson(path: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** An NDJSON receiver that can be started late on a chosen port (the sink is "down" until then). */
function counter() {
  const seqs: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8');
      for (const line of text.split('\n')) if (line) seqs.push((JSON.parse(line) as { seq: number }).seq);
      res.end('ok');
    });
  });
  return {
    seqs,
    listen: (port = 0) =>
      new Promise<number>((resolve) =>
        server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function lines(from: number, to: number, pad = ''): string {
  let s = '';
  for (let i = from; i < to; i++) s += `{"seq":${i},"msg":"line ${i}${pad}"}\n`;
  return s;
}

test('every kind of record arrives, parsed or kept raw and flagged; redaction happens before the sink', async () => {
  const d = join(dir, 'kinds');
  mkdirSync(join(d, 'in'), { recursive: true });
  const out = join(d, 'out.ndjson');
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    json:
      type: tail
      include: ["${d}/in/*.json.log"]
      parser: json
      pollInterval: 10ms
      globInterval: 20ms
    java:
      type: tail
      include: ["${d}/in/*.java.log"]
      pollInterval: 10ms
      globInterval: 20ms
      multiline: { startPattern: '^\\d{4}-\\d{2}-\\d{2} ', timeout: 50ms }
      parser: { type: regex, pattern: '^(?<time>\\S+ \\S+) (?<level>[A-Z]+) (?<msg>[\\s\\S]*)$' }
  transforms:
    - { type: enrich, fields: { service: orders }, hostname: host }
    - { type: redact, patterns: [email, bearer] }
  sinks:
    out: { type: file, path: ${out}, batch: { maxAge: 20ms } }
`);
  const big = 'x'.repeat(5 * 1024 * 1024);
  writeFileSync(
    join(d, 'in', 'app.json.log'),
    Buffer.concat([
      Buffer.from('{"seq":1,"msg":"ok","user":"ann@example.com"}\n'),
      Buffer.from('{"seq":2, broken\n'),
      Buffer.from(`{"seq":3,"msg":"${big}"}\n`),
      Buffer.from('{"seq":4,"msg":"caf'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}\n'),
      Buffer.from('{"seq":5,"auth":"Bearer abc.def.ghi"}\n'),
    ]),
  );
  writeFileSync(
    join(d, 'in', 'svc.java.log'),
    [
      '2026-11-21 10:00:00 ERROR request failed',
      'java.lang.IllegalStateException: boom',
      '\tat com.example.Orders.place(Orders.java:42)',
      'Caused by: java.io.IOException: disk',
      '\t... 5 more',
      '2026-11-21 10:00:01 INFO next',
      '',
    ].join('\n'),
  );
  const { module, metrics, started } = startModule(cfg);
  await started;
  try {
    const events = await waitFor(() => {
      const e = ndjson(out);
      return e.length >= 7 ? e : undefined;
    });
    const bySeq = new Map(events.filter((e) => e.seq !== undefined).map((e) => [e.seq, e]));
    assert.equal(bySeq.get(1)?.user, '[REDACTED]');
    assert.equal(bySeq.get(1)?.service, 'orders');
    assert.equal(typeof bySeq.get(1)?.host, 'string');
    const broken = events.find((e) => e.message === '{"seq":2, broken');
    assert.ok(broken?.parse_error, 'malformed JSON kept raw with parse_error');
    const cut = events.find((e) => e.truncated === true);
    assert.ok(cut, 'the 5 MB line arrives cut and flagged');
    assert.equal(String(cut.message).length <= 1024 * 1024, true);
    const bad = events.find((e) => e.invalid_utf8 === true);
    assert.ok(bad, 'invalid UTF-8 arrives flagged');
    assert.match(String(bad.msg ?? bad.message), /caf\uFFFD/);
    assert.equal(bySeq.get(5)?.auth, 'Bearer [REDACTED]');
    const traces = events.filter((e) => e.level !== undefined);
    assert.equal(traces.length, 2);
    assert.match(String(traces[0]!.msg), /IllegalStateException[\s\S]*Caused by[\s\S]*5 more$/);
    assert.equal(traces[1]!.msg, 'next');
    // The broken line, and the 5 MB line whose cut leaves it unterminated JSON.
    assert.equal(await metric(metrics, 'pillion_logs_parse_errors_total', { source: 'json' }), 2);
    assert.equal(await metric(metrics, 'pillion_logs_truncated_total', { source: 'json' }), 1);
    // Counted once the write returned, which can be just after its lines show in the file.
    await waitFor(
      async () =>
        (await metric(metrics, 'pillion_logs_events_total', { component: 'out', direction: 'out' })) === 7,
      { what: 'the seven events counted out' },
    );
  } finally {
    await module.stop();
  }
});

test('a sink that is down: memory stays under the buffer bound, the tail pauses, nothing is lost', async () => {
  const d = join(dir, 'down');
  mkdirSync(join(d, 'in'), { recursive: true });
  const port = await freePort();
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  unhealthyAfter: 100ms
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    up:
      type: http
      url: http://127.0.0.1:${port}/
      batch: { maxEvents: 500, maxAge: 10ms }
      retry: { initialBackoff: 5ms, maxBackoff: 40ms, timeout: 1s }
      buffer: { maxBytes: 64KiB }
`);
  const total = 20_000;
  writeFileSync(join(d, 'in', 'app.log'), lines(0, total));
  const { module, metrics, started } = startModule(cfg);
  await started;
  const receiver = counter();
  try {
    await waitFor(async () => (await metric(metrics, 'pillion_logs_retries_total', { sink: 'up' })) > 3);
    const lag = await metric(metrics, 'pillion_logs_file_lag_bytes', { source: 'app' });
    assert.ok(lag > 0, 'the tail stopped reading: bytes remain unread');
    const buffered = await metric(metrics, 'pillion_logs_buffer_bytes', { sink: 'up' });
    // The bound, plus at most the one chunk that crossed it: 500 events of ~40 bytes, each
    // counted at what it holds in memory (2 × its bytes + 176 for a JSON line that keeps its text).
    assert.ok(buffered <= 64 * 1024 + 500 * (2 * 40 + 176), `buffer holds ${buffered} bytes`);
    await waitFor(() => !module.readiness().ready, { what: 'readiness to drop' });
    assert.match(module.readiness().reason ?? '', /logs sink "up" has been failing/);

    await receiver.listen(port);
    await waitFor(() => receiver.seqs.length >= total, { timeoutMs: 20_000, what: 'every line' });
    assert.equal(receiver.seqs.length, total);
    assert.equal(new Set(receiver.seqs).size, total);
    await waitFor(() => module.readiness().ready, { what: 'readiness to return' });
  } finally {
    await module.stop();
    await receiver.close();
  }
});

test('a slow but healthy sink: the tail reads about one batch ahead of it, not a buffer full', async () => {
  const d = join(dir, 'slow');
  mkdirSync(join(d, 'in'), { recursive: true });
  let held: (() => void)[] = [];
  let holding = true;
  let received = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => {
      for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) received++;
    });
    req.on('end', () => (holding ? held.push(() => res.end('ok')) : res.end('ok')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    slow: { type: http, url: "http://127.0.0.1:${port}/", compression: none, batch: { maxEvents: 500, maxAge: 10ms } }
`);
  const total = 20_000;
  writeFileSync(join(d, 'in', 'app.log'), lines(0, total));
  const { module, metrics, started } = startModule(cfg);
  await started;
  try {
    await waitFor(() => held.length === 1, { what: 'the first batch to be in flight' });
    await waitFor(async () => (await metric(metrics, 'pillion_logs_file_lag_bytes', { source: 'app' })) > 0, {
      what: 'the tail to pause',
    });
    const buffered = await metric(metrics, 'pillion_logs_buffer_bytes', { sink: 'slow' });
    // A batch in flight, two waiting, and at most the one chunk that completed them, each event
    // counted at what it holds in memory (2 × its bytes + 176 for a JSON line that keeps its text).
    assert.ok(buffered <= 4 * 500 * (2 * 40 + 176), `buffer holds ${buffered} bytes of a 64 MiB bound`);
    holding = false;
    for (const r of held) r();
    held = [];
    await waitFor(() => received >= total, { timeoutMs: 20_000, what: 'every line' });
    assert.equal(received, total);
  } finally {
    await module.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('the disk buffer carries acknowledged events across a restart', async () => {
  const d = join(dir, 'disk');
  mkdirSync(join(d, 'in'), { recursive: true });
  const port = await freePort();
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    up:
      type: http
      url: http://127.0.0.1:${port}/
      batch: { maxEvents: 200, maxAge: 10ms }
      retry: { initialBackoff: 5ms, maxBackoff: 20ms, timeout: 1s }
      buffer: { type: disk, maxBytes: 16MiB }
`);
  const total = 5_000;
  const file = join(d, 'in', 'app.log');
  writeFileSync(file, lines(0, total));
  const size = readFileSync(file).length;
  const first = startModule(cfg);
  await first.started;
  // The tail has read everything (the disk buffer acknowledged it) while the sink is still down.
  await waitFor(
    async () =>
      (await metric(first.metrics, 'pillion_logs_events_total', { component: 'app', direction: 'in' })) ===
      total,
  );
  await waitFor(
    () => {
      const cp = JSON.parse(readFileSync(join(d, 'data', 'checkpoints.json'), 'utf8')) as unknown;
      return JSON.stringify(cp).includes(`${size}`);
    },
    { what: 'the checkpoint to reach the end of the file' },
  );
  await first.module.stop();

  const receiver = counter();
  await receiver.listen(port);
  const second = startModule(cfg);
  await second.started;
  try {
    await waitFor(() => receiver.seqs.length >= total, { timeoutMs: 20_000, what: 'the buffered lines' });
    assert.equal(new Set(receiver.seqs).size, total);
    assert.equal(receiver.seqs.length, total, 'nothing sent twice');
  } finally {
    await second.module.stop();
    await receiver.close();
  }
});

test('a reload drains the old pipeline into its sink and starts the new one where it stopped', async () => {
  const d = join(dir, 'reload');
  mkdirSync(join(d, 'in'), { recursive: true });
  const yaml = (out: string) => `
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    out: { type: file, path: ${join(d, out)}, batch: { maxAge: 10ms } }
`;
  const file = join(d, 'in', 'app.log');
  writeFileSync(file, lines(0, 1000));
  const { module, started } = startModule(await logsConfig(yaml('a.ndjson')));
  await started;
  try {
    await waitFor(() => ndjson(join(d, 'a.ndjson')).length === 1000);
    assert.equal(await module.reload(await logsConfig(yaml('b.ndjson'))), 'applied');
    appendFileSync(file, lines(1000, 2000));
    await waitFor(() => ndjson(join(d, 'b.ndjson')).length === 1000);
    const seqs = [...ndjson(join(d, 'a.ndjson')), ...ndjson(join(d, 'b.ndjson'))].map((e) => e.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: 2000 }, (_, i) => i),
    );
  } finally {
    await module.stop();
  }
});

test('regression: with its only sink down, a tail holds a few batches in memory, not its buffer, and /readyz shows the backlog', async () => {
  const d = join(dir, 'pace');
  mkdirSync(join(d, 'in'), { recursive: true });
  const port = await freePort();
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    up:
      type: http
      url: http://127.0.0.1:${port}/
      batch: { maxEvents: 500, maxAge: 10ms }
      retry: { initialBackoff: 5ms, maxBackoff: 40ms, timeout: 1s }
`);
  const total = 20_000;
  const file = join(d, 'in', 'app.log');
  writeFileSync(file, lines(0, total));
  const { module, metrics, started } = startModule(cfg);
  await started;
  const receiver = counter();
  try {
    await waitFor(async () => (await metric(metrics, 'pillion_logs_retries_total', { sink: 'up' })) > 3);
    // Two batches waiting and the one that failed, each event counted at what it holds (~256 bytes).
    const buffered = await metric(metrics, 'pillion_logs_buffer_bytes', { sink: 'up' });
    assert.ok(buffered <= 4 * 500 * (2 * 40 + 176), `buffer holds ${buffered} bytes of a 64 MiB bound`);
    const lag = await metric(metrics, 'pillion_logs_file_lag_bytes', { source: 'app', path: file });
    assert.ok(lag > readFileSync(file).length / 2, `the file keeps the rest: ${lag} bytes not read`);
    appendFileSync(file, lines(total, total + 1000));
    await waitFor(
      async () =>
        (await metric(metrics, 'pillion_logs_file_lag_bytes', { source: 'app', path: file })) ===
        lag + lines(total, total + 1000).length,
      { what: 'the lag to follow the file while paused' },
    );
    await waitFor(
      () => /logs source "app" has .* not read yet in 1 file/.test(module.readiness().reason ?? ''),
      {
        what: 'the backlog in the readiness reason',
      },
    );
    await receiver.listen(port);
    await waitFor(() => receiver.seqs.length >= total + 1000, { timeoutMs: 20_000, what: 'every line' });
    assert.equal(new Set(receiver.seqs).size, total + 1000);
  } finally {
    await module.stop();
    await receiver.close();
  }
});

test('two sinks, one down: the failing one buffers (to its bound) so the other keeps going', async () => {
  const d = join(dir, 'two');
  mkdirSync(join(d, 'in'), { recursive: true });
  const port = await freePort();
  const out = join(d, 'out.ndjson');
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    archive: { type: file, path: ${out}, batch: { maxEvents: 500 } }
    up:
      type: http
      url: http://127.0.0.1:${port}/
      batch: { maxEvents: 500, maxAge: 10ms }
      retry: { initialBackoff: 5ms, maxBackoff: 40ms, timeout: 1s }
`);
  const total = 20_000;
  writeFileSync(join(d, 'in', 'app.log'), lines(0, total));
  const { module, metrics, started } = startModule(cfg);
  await started;
  const receiver = counter();
  try {
    await waitFor(() => ndjson(out).length === total, {
      timeoutMs: 20_000,
      what: 'every line in the file sink',
    });
    assert.ok((await metric(metrics, 'pillion_logs_buffer_bytes', { sink: 'up' })) > 0);
    await receiver.listen(port);
    await waitFor(() => receiver.seqs.length >= total, {
      timeoutMs: 20_000,
      what: 'every line delivered late',
    });
    assert.equal(new Set(receiver.seqs).size, total);
  } finally {
    await module.stop();
    await receiver.close();
  }
});

test('regression (issue 14): a file sink that cannot write says so in /readyz from its first failure', async () => {
  const d = join(dir, 'cannot-write');
  mkdirSync(join(d, 'in'), { recursive: true });
  // Its directory cannot be made: a file is in the way (modes would not stop root).
  writeFileSync(join(d, 'blocker'), '');
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json, pollInterval: 10ms, globInterval: 20ms }
  sinks:
    archive: { type: file, path: ${d}/blocker/out.ndjson, retry: { initialBackoff: 5ms, maxBackoff: 40ms } }
`);
  writeFileSync(join(d, 'in', 'app.log'), lines(0, 10));
  const { module, started } = startModule(cfg);
  await started;
  try {
    const r = await waitFor(
      () => {
        const now = module.readiness();
        return now.reason?.includes('archive') ? now : undefined;
      },
      { what: 'a reason naming the sink' },
    );
    assert.equal(r.ready, true, 'readiness itself waits for unhealthyAfter');
    assert.match(
      r.reason!,
      /logs sink "archive" is failing .*file sink: cannot open .*blocker\/out\.ndjson: E[A-Z]+/,
    );
  } finally {
    await module.stop();
  }
});

test('regression (issue 14): an unreadable tail directory shows in /readyz and in pillion_logs_unreadable_paths', async () => {
  const d = join(dir, 'unreadable');
  mkdirSync(d, { recursive: true });
  // A symbolic link loop cannot be read, not even by root.
  symlinkSync('in', join(d, 'in'));
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], pollInterval: 10ms, globInterval: 20ms }
  sinks:
    out: { type: file, path: ${d}/out.ndjson }
`);
  const { module, metrics, started } = startModule(cfg);
  await started;
  try {
    await waitFor(
      async () => (await metric(metrics, 'pillion_logs_unreadable_paths', { source: 'app' })) === 1,
    );
    const r = module.readiness();
    assert.equal(r.ready, true);
    assert.ok((r.reason ?? '').includes(`logs source "app" cannot read ${d}/in (ELOOP)`), r.reason);
  } finally {
    await module.stop();
  }
});

test("regression: a restart during an outage carries the sink's failing-since, so /readyz does not read 200 for another unhealthyAfter", async () => {
  const d = join(dir, 'carried');
  mkdirSync(join(d, 'in'), { recursive: true });
  const port = await freePort();
  const cfg = await logsConfig(`
logs:
  dataDir: ${d}/data
  unhealthyAfter: 1m
  sources:
    app: { type: tail, include: ["${d}/in/*.log"], parser: json }
  sinks:
    up: { type: http, url: "http://127.0.0.1:${port}/", batch: { maxAge: 0s } }
`);
  writeFileSync(join(d, 'in', 'app.log'), lines(0, 100));
  const clock = new FakeClock();
  const first = startModule(cfg, createMetricsRegistry(), clock);
  await first.started;
  await waitFor(() => first.module.readiness().reason?.includes('is failing'), { what: 'the first failure' });
  await first.module.stop();
  assert.ok(existsSync(join(d, 'data', 'health', 'up.json')), 'the run of failures is in the data directory');
  // Down for two minutes, and the sink still failing when it comes back.
  await clock.advance(120_000);
  const second = startModule(cfg, createMetricsRegistry(), clock);
  await second.started;
  try {
    await waitFor(() => !second.module.readiness().ready, { what: 'not ready at once' });
    assert.match(second.module.readiness().reason ?? '', /logs sink "up" has been failing for 120s/);
  } finally {
    await second.module.stop();
  }
});

describe('config errors name the place and the fix', () => {
  const issues = async (yaml: string) => {
    const r = await parsePillionConfig(yaml, 'pillion.yaml', {});
    return r.ok ? [] : r.issues.map(formatIssue);
  };

  test('a sink or transform naming a missing source, with a suggestion', async () => {
    assert.deepEqual(
      await issues(`
logs:
  sources:
    app: { type: stdin }
  transforms:
    - { type: remove, fields: [x], sources: [ap] }
  sinks:
    out: { type: stdout, sources: [app, nginx] }
`),
      [
        'pillion.yaml:6:46 PILLION_ERR_LOGS_UNKNOWN_SOURCE logs.transforms[0].sources[0]: no source named "ap" (did you mean "app"? defined: app)',
        'pillion.yaml:8:41 PILLION_ERR_LOGS_UNKNOWN_SOURCE logs.sinks.out.sources[1]: no source named "nginx" (defined: app)',
      ],
    );
  });

  test('credentials in a sink URL are refused, pointing at the secret fields', async () => {
    assert.deepEqual(
      await issues(`
logs:
  sources:
    app: { type: stdin }
  sinks:
    ch: { type: clickhouse, url: "http://bob:hunter2@127.0.0.1:8123", table: logs }
`),
      [
        'pillion.yaml:6:34 PILLION_ERR_CONFIG_BAD_VALUE logs.sinks.ch.url: the URL holds credentials (user:password@), which would show in /config and logs (put them in `user` and `password` (or `headers`), which are kept secret)',
      ],
    );
  });

  test('a source that feeds no sink', async () => {
    assert.deepEqual(
      await issues(`
logs:
  sources:
    app: { type: stdin }
    other: { type: http, listen: "127.0.0.1:9000" }
  sinks:
    out: { type: stdout, sources: [app] }
`),
      [
        'pillion.yaml:5:12 PILLION_ERR_LOGS_UNKNOWN_SOURCE logs.sources.other: source "other" feeds no sink: its events would go nowhere (add it to a sink\'s `sources:`, or remove the source)',
      ],
    );
  });

  test('a filter needs exactly one test, a bad regex is reported at its place', async () => {
    const out = await issues(`
logs:
  sources:
    app: { type: stdin, multiline: { startPattern: "([" } }
  transforms:
    - { type: filter, field: level }
  sinks:
    out: { type: stdout }
`);
    assert.equal(out.length, 2, out.join('\n'));
    assert.match(
      out[0]!,
      /^pillion\.yaml:4:52 PILLION_ERR_CONFIG_BAD_VALUE logs\.sources\.app\.multiline\.startPattern: not a valid regular expression: \/\(\[\/: Unterminated character class$/,
    );
    assert.match(
      out[1]!,
      /^pillion\.yaml:6:7 PILLION_ERR_CONFIG_BAD_VALUE logs\.transforms\[0\]: a filter needs exactly one of `equals` and `matches`/,
    );
  });
});
