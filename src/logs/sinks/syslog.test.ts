import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../../lib/clock.js';
import { waitFor } from '../../lib/wait-for.js';
import { makeCa, makeLeaf } from '../../proxy/tls/test-certs.js';
import type { SyslogSinkConfig } from '../config.js';
import { startSyslogNg, type SyslogNg } from '../test-support/syslog-ng.js';
import type { SendOutcome, SinkDriver } from '../types.js';
import { createSyslogDriver } from './syslog.js';

function sinkConfig(port: number, over: Partial<SyslogSinkConfig> = {}): SyslogSinkConfig {
  return {
    type: 'syslog',
    batch: { maxEvents: 1000, maxBytes: 1 << 20, maxAge: 1000 },
    retry: { initialBackoff: 10, maxBackoff: 100, timeout: 5000 },
    buffer: { type: 'memory', maxBytes: 1 << 20 },
    address: { host: '127.0.0.1', port },
    facility: 'local3',
    appName: 'pillion',
    severityField: 'level',
    ...over,
  };
}

const signal = () => AbortSignal.timeout(5000);
const parsed = (ng: SyslogNg) => ng.lines().map((l) => JSON.parse(l) as Record<string, string>);

describe('syslog sink into syslog-ng over TCP', () => {
  let ng: SyslogNg;
  const drivers: SinkDriver[] = [];
  before(async () => {
    ng = await startSyslogNg();
  });
  after(async () => {
    for (const d of drivers) await d.close();
    await ng?.stop();
  });

  test('every event arrives with its severity, app name, time and message', async () => {
    const clock = new FakeClock(Date.parse('2024-05-06T07:08:09.010Z'));
    const d = createSyslogDriver(sinkConfig(ng.port), { clock, hostname: 'web 1\u00e9' });
    drivers.push(d);
    const events = [
      { level: 'error', msg: 'disk full', timestamp: '2024-01-02T03:04:05.123456789Z' },
      { level: 'warn', msg: 'slow\nsecond line' },
      { level: 30, msg: 'pino info', time: 'not a time' },
      { level: 'DEBUG', msg: 'ünïcödé' },
      { level: 5, msg: 'notice' },
      { msg: 'no level' },
    ];
    const out = await d.send(events, signal());
    assert.deepEqual(out, { kind: 'ok' });
    await waitFor(() => ng.lines().length === events.length, { what: `${events.length} lines in syslog-ng` });
    const got = parsed(ng);
    assert.deepEqual(
      got.map((g) => [g.FACILITY, g.SEVERITY]),
      [
        ['local3', 'err'],
        ['local3', 'warning'],
        ['local3', 'info'],
        ['local3', 'debug'],
        ['local3', 'notice'],
        ['local3', 'info'],
      ],
    );
    for (const [i, g] of got.entries()) {
      assert.equal(g.PROGRAM, 'pillion');
      assert.equal(g.HOST, 'web_1_', 'hostname sanitised to printable ASCII');
      assert.deepEqual(JSON.parse(g.MESSAGE!), events[i]);
    }
    assert.equal(got[0]!.ISODATE, '2024-01-02T03:04:05.123456+00:00');
    assert.equal(got[2]!.ISODATE, '2024-05-06T07:08:09.010000+00:00');
  });

  test('messageField and an app name from a field; a large batch arrives whole', async () => {
    const d = createSyslogDriver(sinkConfig(ng.port, { appName: '{{service}}', messageField: 'msg' }));
    drivers.push(d);
    const before = ng.lines().length;
    const n = 2000;
    const events = Array.from({ length: n }, (_, i) => ({
      service: i % 2 ? 'api' : 'worker',
      msg: `line ${i}`,
    }));
    assert.deepEqual(await d.send(events, signal()), { kind: 'ok' });
    await waitFor(() => ng.lines().length === before + n, { what: `${n} more lines` });
    const got = parsed(ng).slice(before);
    assert.deepEqual(
      got.map((g) => g.MESSAGE),
      events.map((e) => e.msg),
    );
    assert.equal(got[0]!.PROGRAM, 'worker');
    assert.equal(got[1]!.PROGRAM, 'api');
  });
});

test('the sink reconnects after syslog-ng restarts', async () => {
  let ng = await startSyslogNg();
  const port = ng.port;
  const d = createSyslogDriver(sinkConfig(port, { messageField: 'msg' }));
  try {
    assert.deepEqual(await d.send([{ msg: 'before' }], signal()), { kind: 'ok' });
    await waitFor(() => ng.lines().length === 1);
    await ng.stop();

    // Down: a send fails and may be retried.
    const down = await d.send([{ msg: 'while down' }], signal());
    assert.equal(down.kind, 'failed');
    assert.equal((down as Extract<SendOutcome, { kind: 'failed' }>).retry, true);
    assert.match((down as Extract<SendOutcome, { kind: 'failed' }>).reason, /ECONNREFUSED/);

    ng = await startSyslogNg({ port });
    let out: SendOutcome = { kind: 'failed', retry: true, reason: '' };
    for (let i = 0; i < 5 && out.kind !== 'ok'; i++) out = await d.send([{ msg: 'after' }], signal());
    assert.deepEqual(out, { kind: 'ok' });
    await waitFor(() => ng.lines().some((l) => JSON.parse(l).MESSAGE === 'after'), {
      what: '"after" received',
    });
  } finally {
    await d.close();
    await ng.stop();
  }
});

describe('syslog sink over TLS', () => {
  let ng: SyslogNg;
  let dir: string;
  let caFile: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pillion-syslog-tls-'));
    const ca = await makeCa();
    const leaf = await makeLeaf(ca, { names: ['syslog.test', '127.0.0.1'] });
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, ca.cert);
    writeFileSync(join(dir, 'cert.pem'), leaf.cert);
    writeFileSync(join(dir, 'key.pem'), leaf.key);
    ng = await startSyslogNg({ tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } });
  });
  after(async () => {
    await ng?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('events arrive over TLS, verified against the CA and server name', async () => {
    const d = createSyslogDriver(
      sinkConfig(ng.port, { tls: { caFile, serverName: 'syslog.test' }, messageField: 'msg' }),
    );
    try {
      const events = Array.from({ length: 50 }, (_, i) => ({ msg: `secure ${i}`, level: 'info' }));
      assert.deepEqual(await d.send(events, signal()), { kind: 'ok' });
      await waitFor(() => ng.lines().length === 50);
      assert.deepEqual(
        parsed(ng).map((g) => g.MESSAGE),
        events.map((e) => e.msg),
      );
    } finally {
      await d.close();
    }
  });

  test('a server certificate the CA did not sign fails the send, retryably', async () => {
    const other = await makeCa({ commonName: 'Other CA' });
    const otherFile = join(dir, 'other-ca.pem');
    writeFileSync(otherFile, other.cert);
    const d = createSyslogDriver(sinkConfig(ng.port, { tls: { caFile: otherFile } }));
    try {
      const out = await d.send([{ msg: 'x' }], signal());
      assert.equal(out.kind, 'failed');
      assert.match(
        (out as Extract<SendOutcome, { kind: 'failed' }>).reason,
        /cannot connect to tls 127\.0\.0\.1/,
      );
    } finally {
      await d.close();
    }
  });
});

test('send() resolves only once the batch is written; a timeout fails it and drops the connection', async () => {
  // A server that accepts and never reads: the kernel buffers fill and the write callback waits.
  const held: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.pause();
    held.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const d = createSyslogDriver(sinkConfig(port, { messageField: 'msg' }));
  try {
    const big = Array.from({ length: 2000 }, () => ({ msg: 'x'.repeat(4000) }));
    const ctl = new AbortController();
    let settled = false;
    const pending = d.send(big, ctl.signal).then((o) => {
      settled = true;
      return o;
    });
    await waitFor(() => held.length === 1);
    // An absence cannot be awaited: give the write a moment in which it would have completed.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false);
    ctl.abort();
    const out = await pending;
    assert.equal(out.kind, 'failed');
    assert.match((out as Extract<SendOutcome, { kind: 'failed' }>).reason, /timed out/);
    // The next send opens a new connection.
    const next = d.send([{ msg: 'small' }], signal());
    await waitFor(() => held.length === 2);
    assert.deepEqual(await next, { kind: 'ok' });
  } finally {
    await d.close();
    for (const s of held) s.destroy();
    await new Promise((r) => server.close(r));
  }
});
