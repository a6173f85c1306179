import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type ClickhouseSinkConfig, logsSchema } from '../config.js';
import { CLICKHOUSE_WRITER, type StartedClickhouse, startClickhouse } from '../test-support/clickhouse.js';
import { type HttpReceiver, startHttpReceiver } from '../test-support/receivers.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import { createClickhouseDriver, quoteIdentifier } from './clickhouse.js';

const never = new AbortController().signal;

function config(raw: Record<string, unknown>): ClickhouseSinkConfig {
  const logs = logsSchema.parse({
    sources: { app: { type: 'stdin' } },
    sinks: { ch: { type: 'clickhouse', ...raw } },
  });
  return logs.sinks.ch as ClickhouseSinkConfig;
}

function rows(n: number, from = 0): LogEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    timestamp: `2024-05-01T10:00:${String((from + i) % 60).padStart(2, '0')}.123Z`,
    level: i % 2 === 0 ? 'info' : 'warn',
    message: `line ${from + i}`,
    n: from + i,
  }));
}

function failed(o: SendOutcome) {
  assert.equal(o.kind, 'failed', JSON.stringify(o));
  return o as Extract<SendOutcome, { kind: 'failed' }>;
}

test('identifiers are backquoted with backslash escapes', () => {
  assert.equal(quoteIdentifier('logs'), '`logs`');
  assert.equal(quoteIdentifier('we`ird\\name'), '`we\\`ird\\\\name`');
});

describe('the request a ClickHouse driver makes', () => {
  let rx: HttpReceiver;
  before(async () => {
    rx = await startHttpReceiver();
  });
  after(async () => {
    await rx.close();
  });

  test('INSERT ... FORMAT JSONEachRow in the query string, auth headers, gzip NDJSON body', async () => {
    const driver = createClickhouseDriver(
      config({ url: `${rx.url}/`, database: 'my db', table: 'app`logs', user: 'u', password: 'pw-123' }),
    );
    const events = rows(2);
    assert.deepEqual(await driver.send(events, never), { kind: 'ok' });
    const req = rx.requests.at(-1)!;
    const url = new URL(req.url, rx.url);
    assert.equal(url.pathname, '/');
    assert.equal(url.searchParams.get('query'), 'INSERT INTO `my db`.`app\\`logs` FORMAT JSONEachRow');
    assert.equal(url.searchParams.get('input_format_skip_unknown_fields'), '1');
    assert.equal(req.headers['x-clickhouse-user'], 'u');
    assert.equal(req.headers['x-clickhouse-key'], 'pw-123');
    assert.equal(req.headers['content-encoding'], 'gzip');
    assert.ok(!req.url.includes('pw-123'));
    const lines = gunzipSync(req.raw).toString().split('\n');
    assert.deepEqual(
      lines.slice(0, -1).map((l) => JSON.parse(l)),
      events,
    );
    assert.equal(lines.at(-1), '');
    await driver.close();
  });

  test('an error body without a ClickHouse code is classified by status; secrets stay out', async () => {
    const driver = createClickhouseDriver(config({ url: rx.url, table: 't', password: 'hunter2-pw' }));
    rx.script({ status: 502, body: 'bad gateway' }, { status: 403, body: 'forbidden for hunter2-pw' });
    const bad = failed(await driver.send(rows(1), never));
    assert.equal(bad.retry, true);
    const forbidden = failed(await driver.send(rows(1), never));
    assert.equal(forbidden.retry, false);
    assert.ok(!forbidden.reason.includes('hunter2-pw'), forbidden.reason);
    assert.equal(rx.requests.at(-1)!.headers['x-clickhouse-user'], 'default');
    await driver.close();
  });

  test('a ClickHouse code decides: known permanent codes are not retried, unknown ones are', async () => {
    const driver = createClickhouseDriver(config({ url: rx.url, table: 't', compression: 'none' }));
    rx.script(
      {
        status: 500,
        body: 'Code: 252, e.displayText() = DB::Exception: Too many parts (300)., e.what() = DB::Exception\n',
      },
      { status: 500, body: 'Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH) (version 24.3.1)\n' },
      { status: 400, body: 'Code: 9999. DB::Exception: something new\n' },
    );
    const parts = failed(await driver.send(rows(1), never));
    assert.equal(parts.retry, true);
    assert.match(parts.reason, /^HTTP 500: ClickHouse error 252: DB::Exception: Too many parts \(300\)\.$/);
    const mismatch = failed(await driver.send(rows(1), never));
    assert.equal(mismatch.retry, false);
    assert.match(mismatch.reason, /ClickHouse error 53 \(TYPE_MISMATCH\)/);
    assert.equal(failed(await driver.send(rows(1), never)).retry, true);
    await driver.close();
  });
});

describe('a real ClickHouse server', () => {
  let ch: StartedClickhouse;
  const drivers: SinkDriver[] = [];
  const driver = (raw: Record<string, unknown>) => {
    const d = createClickhouseDriver(config({ url: ch.url, ...raw }));
    drivers.push(d);
    return d;
  };
  const count = async (table: string) => Number((await ch.query(`SELECT count() FROM ${table}`)).trim());

  before(async () => {
    ch = await startClickhouse();
    await ch.query(
      'CREATE TABLE logs (timestamp DateTime, level String, message String, n UInt32) ENGINE = MergeTree ORDER BY timestamp',
    );
    await ch.query('CREATE TABLE `odd-name` (n UInt32) ENGINE = MergeTree ORDER BY n');
  });
  after(async () => {
    for (const d of drivers) await d.close();
    await ch?.stop();
  });

  test('batches are inserted, plain and gzip, RFC 3339 timestamps included; events are not mutated', async () => {
    const plain = driver({ table: 'logs', compression: 'none' });
    const gzip = driver({ table: 'logs' });
    const a = rows(50, 0);
    const b = rows(70, 50);
    const copy = structuredClone([a, b]);
    assert.deepEqual(await plain.send(a, never), { kind: 'ok' });
    assert.deepEqual(await gzip.send(b, never), { kind: 'ok' });
    assert.deepEqual([a, b], copy);
    assert.equal(await count('logs'), 120);
    assert.equal(
      (await ch.query("SELECT toString(timestamp, 'UTC') FROM logs WHERE n = 61")).trim(),
      '2024-05-01 10:00:01',
    );
  });

  test('unknown fields are skipped when skipUnknownFields, a permanent error otherwise', async () => {
    const before = await count('logs');
    const extra = rows(3, 500).map((e) => ({ ...e, extra: { nested: [1, 2] }, other: 'x' }));
    assert.deepEqual(await driver({ table: 'logs' }).send(extra, never), { kind: 'ok' });
    assert.equal(await count('logs'), before + 3);
    const strict = failed(await driver({ table: 'logs', skipUnknownFields: false }).send(extra, never));
    assert.equal(strict.retry, false);
    assert.match(strict.reason, /ClickHouse error 117 \(INCORRECT_DATA\)/);
    assert.equal(await count('logs'), before + 3);
  });

  test('a missing table or database is permanent (ClickHouse answers 404/500 with code 60/81)', async () => {
    const table = failed(await driver({ table: 'nope' }).send(rows(1), never));
    assert.equal(table.retry, false);
    assert.match(table.reason, /ClickHouse error 60 \(UNKNOWN_TABLE\).*nope/);
    const db = failed(await driver({ database: 'nodb', table: 'logs' }).send(rows(1), never));
    assert.equal(db.retry, false);
    assert.match(db.reason, /ClickHouse error 81 \(UNKNOWN_DATABASE\)/);
  });

  test('a value of the wrong type is permanent and nothing of the batch is stored', async () => {
    const before = await count('logs');
    const events: LogEvent[] = [...rows(2, 900), { ...rows(1, 902)[0], n: 'not a number' }];
    const o = failed(await driver({ table: 'logs' }).send(events, never));
    assert.equal(o.retry, false);
    assert.equal(o.status, 500);
    assert.match(o.reason, /ClickHouse error 27 .*at row 3/);
    assert.equal(await count('logs'), before);
  });

  test('quoted identifiers reach a table whose name needs them', async () => {
    assert.deepEqual(await driver({ table: 'odd-name' }).send([{ n: 1 }, { n: 2 }], never), { kind: 'ok' });
    assert.equal(await count('`odd-name`'), 2);
  });

  test('a user with a password is sent as X-ClickHouse-User/Key; a wrong one is permanent and not echoed', async () => {
    const good = driver({
      table: 'odd-name',
      user: CLICKHOUSE_WRITER.user,
      password: CLICKHOUSE_WRITER.password,
    });
    assert.deepEqual(await good.send([{ n: 3 }], never), { kind: 'ok' });
    const wrong = failed(
      await driver({ table: 'odd-name', user: CLICKHOUSE_WRITER.user, password: 'Wr0ng-pass' }).send(
        [{ n: 4 }],
        never,
      ),
    );
    assert.equal(wrong.retry, false);
    assert.equal(wrong.status, 401);
    assert.match(wrong.reason, /ClickHouse error 193 \(WRONG_PASSWORD\)/);
    assert.ok(!wrong.reason.includes('Wr0ng-pass'));
    assert.equal(await count('`odd-name`'), 3);
  });

  // Last: it stops the server this file started.
  test('a stopped server is a retryable network error (also on a pooled keep-alive connection)', async () => {
    const d = driver({ table: 'odd-name' });
    assert.deepEqual(await d.send([{ n: 5 }], never), { kind: 'ok' });
    await ch.stop();
    const down = failed(await d.send([{ n: 6 }], never));
    assert.equal(down.retry, true);
    assert.match(down.reason, /^network error: /);
  });
});
