import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { PillionError } from '../../lib/errors.js';
import { waitFor } from '../../lib/wait-for.js';
import type { SyslogSourceConfig } from '../config.js';
import { fakeContext } from '../test-support/source-context.js';
import {
  createSyslogSource,
  type SyslogSource,
  type SyslogSourceOptions,
  TCP_IDLE_TIMEOUT_MS,
} from './syslog.js';

function config(protocol: 'udp' | 'tcp', maxMessageBytes = 64 * 1024): SyslogSourceConfig {
  return { type: 'syslog', listen: { host: '127.0.0.1', port: 0 }, protocol, maxMessageBytes };
}

const sources: SyslogSource[] = [];
after(async () => {
  for (const s of sources) await s.stop();
});

async function started(protocol: 'udp' | 'tcp', maxMessageBytes?: number, opts?: SyslogSourceOptions) {
  const f = fakeContext('sl');
  const source = createSyslogSource(config(protocol, maxMessageBytes), f.ctx, opts);
  sources.push(source);
  await source.start();
  return { ...f, source, port: source.address().port };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.setNoDelay(true);
    s.on('error', reject);
  });
}

function frame(msg: string): string {
  return `${Buffer.byteLength(msg)} ${msg}`;
}

const M5424 = '<165>1 2003-10-11T22:14:15.003Z host app 12 ID1 [a@1 k="v"] hello 5424';
const M3164 = '<34>Oct 11 22:14:15 mymachine su[7]: hello 3164';

describe('syslog source over UDP', () => {
  test('one message per datagram, parsed, with the peer address; chunks group a burst', async () => {
    const s = await started('udp');
    const client = dgram.createSocket('udp4');
    after(() => client.close());
    const n = 200;
    for (let i = 0; i < n; i++) client.send(i % 2 ? M3164 : `${M5424} ${i}\n`, s.port, '127.0.0.1');
    await waitFor(() => s.events().length === n, { what: `${n} events` });
    const evs = s.events();
    assert.equal(evs[0]!.appname, 'app');
    assert.equal(evs[0]!.message, 'hello 5424 0');
    assert.deepEqual(evs[0]!.structured_data, { 'a@1': { k: 'v' } });
    assert.equal(evs[1]!.appname, 'su');
    assert.equal(evs[1]!.hostname, 'mymachine');
    assert.equal(evs[1]!.source_ip, '127.0.0.1');
    assert.ok(s.chunks.length < n, `a burst is grouped: ${s.chunks.length} chunks for ${n} datagrams`);
    assert.equal(s.stats.events.value, n);
    assert.equal(s.chunks[0]!.source, 'sl');
  });

  test('a datagram above maxMessageBytes is cut at a character boundary and flagged', async () => {
    const s = await started('udp', 480);
    const client = dgram.createSocket('udp4');
    after(() => client.close());
    // 'é' is two bytes: the cut at 480 falls inside one and must not leave half of it.
    const msg = `<13>1 - - - - - - x${'é'.repeat(400)}`;
    client.send(msg, s.port, '127.0.0.1');
    client.send('garbage', s.port, '127.0.0.1');
    await waitFor(() => s.events().length === 2);
    const [cut, bad] = s.events();
    assert.equal(cut!.truncated, true);
    assert.ok(Buffer.byteLength(String(cut!.message)) <= 480);
    assert.ok(!String(cut!.message).includes('\uFFFD'));
    assert.equal(cut!.invalid_utf8, undefined);
    assert.equal(bad!.message, 'garbage');
    assert.match(String(bad!.parse_error), /no <PRI>/);
    assert.equal(s.stats.truncated.value, 1);
    assert.equal(s.stats.parseErrors.value, 1);
  });

  test('while buffers are full, datagrams are dropped and counted', async () => {
    const s = await started('udp');
    const client = dgram.createSocket('udp4');
    after(() => client.close());
    s.setRoom(false);
    for (let i = 0; i < 25; i++) client.send(M5424, s.port, '127.0.0.1');
    await waitFor(() => s.stats.dropped.value === 25, { what: '25 drops' });
    assert.equal(s.events().length, 0);
    s.setRoom(true);
    client.send(M5424, s.port, '127.0.0.1');
    await waitFor(() => s.events().length === 1);
    assert.equal(s.stats.dropped.value, 25);
  });
});

describe('syslog source over TCP', () => {
  test('octet-counted and newline-framed messages mixed on one connection', async () => {
    const s = await started('tcp');
    const c = await connect(s.port);
    c.write(frame(M5424) + `${M3164}\n` + frame('<13>1 - - - - - - multi\nline') + '\n' + `${M3164} 2\r\n`);
    c.end(`<13>last line without newline`);
    await waitFor(() => s.events().length === 5, { what: '5 events' });
    assert.deepEqual(
      s.events().map((e) => e.message),
      ['hello 5424', 'hello 3164', 'multi\nline', 'hello 3164 2', 'last line without newline'],
    );
    assert.equal(s.stats.parseErrors.value, 0);
  });

  test('what one read delivers is one chunk, not one chunk per message', async () => {
    const s = await started('tcp');
    const c = await connect(s.port);
    const n = 100;
    let wire = '';
    for (let i = 0; i < n; i++) wire += i % 2 ? frame(`${M5424} ${i}`) : `${M3164} ${i}\n`;
    c.write(wire);
    await waitFor(() => s.events().length === n);
    // A 10 KB write on loopback is one or two reads.
    assert.ok(s.chunks.length <= 2, `${s.chunks.length} chunks`);
    assert.equal(s.chunks[0]!.bytes + (s.chunks[1]?.bytes ?? 0), Buffer.byteLength(wire));
    assert.equal(s.stats.events.value, n);
    c.destroy();
  });

  test('messages split across reads at every byte are framed the same', async () => {
    const s = await started('tcp');
    const c = await connect(s.port);
    const wire = Buffer.from(frame(M5424) + `${M3164}\n` + frame('<13>1 - - - - - - ünïcödé'));
    // One byte per read: wait until the source has read each byte before sending the next.
    for (let i = 0; i < wire.length; i++) {
      c.write(wire.subarray(i, i + 1));
      await waitFor(() => s.stats.bytes.value === i + 1, { intervalMs: 1 });
    }
    await waitFor(() => s.events().length === 3);
    assert.deepEqual(
      s.events().map((e) => e.message),
      ['hello 5424', 'hello 3164', 'ünïcödé'],
    );
    c.destroy();
  });

  test('oversize messages in both framings are cut, flagged, and the next one is intact', async () => {
    const s = await started('tcp', 480);
    const c = await connect(s.port);
    const big = `<13>1 - - - - - - ${'x'.repeat(2000)}`;
    c.write(frame(big) + frame(M5424) + `${big}\n` + `${M3164}\n`);
    await waitFor(() => s.events().length === 4);
    const [a, b, d, e] = s.events();
    for (const cut of [a!, d!]) {
      assert.equal(cut.truncated, true);
      assert.equal(String(cut.message).length, 480 - '<13>1 - - - - - - '.length);
    }
    assert.equal(b!.message, 'hello 5424');
    assert.equal(e!.message, 'hello 3164');
    assert.equal(s.stats.truncated.value, 2);
    c.destroy();
  });

  test('a bad octet count keeps what was read as a raw record and closes the connection', async () => {
    const s = await started('tcp');
    const c = await connect(s.port);
    const closed = new Promise((r) => c.on('close', r));
    c.on('error', () => {});
    c.write(frame(M5424) + '12x4 not a frame\n');
    await closed;
    await waitFor(() => s.events().length === 2);
    const bad = s.events()[1]!;
    assert.equal(bad.message, '12x4 not a frame\n');
    assert.match(String(bad.parse_error), /bad octet count/);
    assert.equal(s.stats.parseErrors.value, 1);
  });

  test('when the pipeline is full, every connection pauses until capacity() resolves', async () => {
    const s = await started('tcp');
    const c1 = await connect(s.port);
    s.setRoom(false);
    c1.write(frame(M5424));
    await waitFor(() => s.events().length === 1);
    // Paused: a second connection and more data on the first are not read.
    const c2 = await connect(s.port);
    c1.write(frame(M5424));
    c2.write(`${M3164}\n`);
    // An absence cannot be awaited; give the sockets a moment in which they would have been read.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.events().length, 1);
    assert.equal(s.stats.bytes.value, Buffer.byteLength(frame(M5424)));
    s.setRoom(true);
    await waitFor(() => s.events().length === 3, { what: 'reading resumed' });
    c1.destroy();
    c2.destroy();
  });

  test('stop() keeps a partial line and closes the sockets', async () => {
    const f = fakeContext('sl');
    const source = createSyslogSource(config('tcp'), f.ctx);
    await source.start();
    const c = await connect(source.address().port);
    const closed = new Promise((r) => c.on('close', r));
    c.on('error', () => {});
    c.write('<13>held');
    await waitFor(() => f.stats.bytes.value === 8);
    await source.stop();
    await closed;
    assert.deepEqual(
      f.events().map((e) => e.message),
      ['held'],
    );
  });

  test('a connection idle for the idle timeout is closed, keeping its partial line', async () => {
    assert.equal(TCP_IDLE_TIMEOUT_MS, 5 * 60_000);
    const s = await started('tcp', undefined, { tcpIdleTimeoutMs: 100 });
    const c = await connect(s.port);
    const closed = new Promise((r) => c.on('close', r));
    c.write(`${M3164}\n<13>held`);
    await closed;
    await waitFor(() => s.events().length === 2, { what: 'both messages' });
    assert.deepEqual(
      s.events().map((e) => e.message),
      ['hello 3164', 'held'],
    );
  });

  test('a connection paused because the pipeline is full is not idle; once resumed, it can be', async () => {
    const s = await started('tcp', undefined, { tcpIdleTimeoutMs: 50 });
    const c = await connect(s.port);
    let isClosed = false;
    const closed = new Promise((r) => c.on('close', r)).then(() => (isClosed = true));
    s.setRoom(false);
    c.write(frame(M5424));
    await waitFor(() => s.events().length === 1);
    // An absence cannot be awaited: several idle timeouts pass while paused.
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(isClosed, false);
    s.setRoom(true);
    await closed;
    assert.equal(s.events().length, 1);
  });
});

test('a port in use fails with PILLION_ERR_LOGS_LISTEN naming the address', async () => {
  const s = await started('tcp');
  const f = fakeContext('sl');
  const clash = createSyslogSource({ ...config('tcp'), listen: { host: '127.0.0.1', port: s.port } }, f.ctx);
  await assert.rejects(clash.start(), (err: unknown) => {
    assert.ok(err instanceof PillionError);
    assert.equal(err.code, 'PILLION_ERR_LOGS_LISTEN');
    assert.match(err.message, new RegExp(`tcp 127\\.0\\.0\\.1:${s.port}`));
    return true;
  });
});
