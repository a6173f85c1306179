import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { PillionError } from '../../lib/errors.js';
import { waitFor } from '../../lib/wait-for.js';
import type { HttpSourceConfig } from '../config.js';
import { fakeContext } from '../test-support/source-context.js';
import type { SourceContext } from '../types.js';
import { createHttpSource, type HttpSource } from './http.js';

const sources: HttpSource[] = [];
after(async () => {
  for (const s of sources) await s.stop();
});

async function started(over: Partial<HttpSourceConfig> = {}) {
  const f = fakeContext();
  const cfg: HttpSourceConfig = {
    type: 'http',
    listen: { host: '127.0.0.1', port: 0 },
    path: '/logs',
    maxBodyBytes: 64 * 1024,
    acknowledgements: false,
    ...over,
  };
  const source = createHttpSource(cfg, f.ctx);
  sources.push(source);
  await source.start();
  const url = `http://127.0.0.1:${source.address().port}`;
  return { ...f, source, url };
}

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const r = await request(url, { method: 'POST', body, headers });
  return { status: r.statusCode, headers: r.headers, json: (await r.body.json()) as Record<string, unknown> };
}

describe('http source: bodies', () => {
  test('a JSON object, a JSON array of objects and NDJSON are events', async () => {
    const s = await started();
    assert.deepEqual(await post(`${s.url}/logs`, '{"msg":"one","n":1}').then((r) => [r.status, r.json]), [
      202,
      { accepted: 1 },
    ]);
    assert.equal((await post(`${s.url}/logs`, ' [{"a":1},{"a":2}]')).json.accepted, 2);
    const nd = '{"l":1}\n\n{"l":2}\r\n{"l":3}';
    assert.equal(
      (await post(`${s.url}/logs`, nd, { 'content-type': 'application/x-ndjson' })).json.accepted,
      3,
    );
    // Sniffed: two objects on two lines are not one JSON value, so the body is NDJSON.
    assert.equal((await post(`${s.url}/logs?x=1`, '{"l":4}\n{"l":5}\n')).json.accepted, 2);
    assert.deepEqual(s.events(), [
      { msg: 'one', n: 1 },
      { a: 1 },
      { a: 2 },
      { l: 1 },
      { l: 2 },
      { l: 3 },
      { l: 4 },
      { l: 5 },
    ]);
    assert.equal(s.stats.events.value, 8);
    assert.equal(s.stats.parseErrors.value, 0);
    assert.equal(s.chunks[0]!.source, 'app');
  });

  test('lines and elements that are not objects are kept, flagged and counted', async () => {
    const s = await started();
    const r = await post(`${s.url}/logs`, '{"ok":1}\nplain text\n{"broken":\n[1,2]\n"str"', {
      'content-type': 'application/x-ndjson; charset=utf-8',
    });
    assert.equal(r.json.accepted, 5);
    const evs = s.events();
    assert.deepEqual(evs[0], { ok: 1 });
    assert.deepEqual(evs[1], { message: 'plain text', parse_error: 'line 2: not a JSON object' });
    assert.equal(evs[2]!.message, '{"broken":');
    assert.match(String(evs[2]!.parse_error), /^line 3: /);
    assert.equal(evs[3]!.parse_error, 'line 4: not a JSON object');
    assert.equal(evs[4]!.message, '"str"');
    const arr = await post(`${s.url}/logs`, '[{"a":1}, 5, null]');
    assert.equal(arr.json.accepted, 3);
    assert.deepEqual(s.events().slice(5), [
      { a: 1 },
      { message: '5', parse_error: 'element 1: not a JSON object' },
      { message: 'null', parse_error: 'element 2: not a JSON object' },
    ]);
    assert.equal(s.stats.parseErrors.value, 6);
  });

  test('gzip bodies are accepted; an unreadable one is 400', async () => {
    const s = await started();
    const r = await post(`${s.url}/logs`, gzipSync('{"z":1}\n{"z":2}'), { 'content-encoding': 'gzip' });
    assert.equal(r.status, 202);
    assert.deepEqual(s.events(), [{ z: 1 }, { z: 2 }]);
    const bad = await post(`${s.url}/logs`, 'not gzip at all', { 'content-encoding': 'gzip' });
    assert.equal(bad.status, 400);
    assert.match(String(bad.json.error), /not readable gzip/);
    const br = await post(`${s.url}/logs`, 'x', { 'content-encoding': 'br' });
    assert.equal(br.status, 415);
  });

  test('bodies above maxBodyBytes are 413, on the wire and once decompressed', async () => {
    const s = await started({ maxBodyBytes: 1024 });
    const big = `{"m":"${'x'.repeat(2000)}"}`;
    const r = await post(`${s.url}/logs`, big);
    assert.equal(r.status, 413);
    assert.match(String(r.json.error), /exceeds the limit of 1024 bytes/);
    const bomb = await post(`${s.url}/logs`, gzipSync(big), { 'content-encoding': 'gzip' });
    assert.equal(bomb.status, 413);
    assert.match(String(bomb.json.error), /decompressed/);
    assert.equal(s.events().length, 0);
    // Chunked, without a Content-Length: cut while reading.
    const chunked = await request(`${s.url}/logs`, {
      method: 'POST',
      body: Readable.from(
        (async function* () {
          for (let i = 0; i < 4; i++) yield Buffer.alloc(400, 0x20);
        })(),
      ),
    });
    assert.equal(chunked.statusCode, 413);
    await chunked.body.dump();
  });

  test('other paths are 404, other methods 405, errors are JSON', async () => {
    const s = await started();
    const r404 = await request(`${s.url}/nope`, { method: 'POST', body: '{}' });
    assert.equal(r404.statusCode, 404);
    assert.match(String(((await r404.body.json()) as { error: string }).error), /POST logs to \/logs/);
    const r405 = await request(`${s.url}/logs`, { method: 'GET' });
    assert.equal(r405.statusCode, 405);
    assert.equal(r405.headers.allow, 'POST');
    await r405.body.dump();
  });
});

describe('http source: flow control', () => {
  test('503 with Retry-After while buffers are full; nothing is read or emitted', async () => {
    const s = await started();
    s.setRoom(false);
    const r = await post(`${s.url}/logs`, '{"a":1}');
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(String(r.json.error), /full/);
    assert.equal(s.chunks.length, 0);
    s.setRoom(true);
    assert.equal((await post(`${s.url}/logs`, '{"a":1}')).status, 202);
  });

  test('with acknowledgements, 200 {"accepted":N} only once onAck is called', async () => {
    const s = await started({ acknowledgements: true });
    let answered = false;
    const pending = post(`${s.url}/logs`, '[{"a":1},{"a":2},{"a":3}]').then((r) => {
      answered = true;
      return r;
    });
    await waitFor(() => s.chunks.length === 1);
    // The answer waits on the acknowledgement; give the response a turn in which it would arrive.
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(answered, false);
    s.chunks[0]!.onAck!();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { accepted: 3 });
  });

  test('an acknowledgement inside emit (all events filtered) answers at once', async () => {
    const s = await started({ acknowledgements: true });
    const emit = s.ctx.emit;
    (s.ctx as { emit: SourceContext['emit'] }).emit = (chunk) => {
      const r = emit(chunk);
      chunk.onAck?.();
      return r;
    };
    const r = await post(`${s.url}/logs`, '{"a":1}');
    assert.deepEqual([r.status, r.json], [200, { accepted: 1 }]);
  });

  test('without acknowledgements the chunk has no onAck and 202 is at once', async () => {
    const s = await started();
    assert.equal((await post(`${s.url}/logs`, '{"a":1}')).status, 202);
    assert.equal(s.chunks[0]!.onAck, undefined);
  });

  test('a client that aborts mid-body or before its ack breaks nothing', async () => {
    const s = await started({ acknowledgements: true });
    const port = s.source.address().port;
    // Mid-body: the source never sees the request's events.
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    await new Promise((r) =>
      c.write('POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":', r),
    );
    c.destroy();
    // Before the ack: the late ack writes to nobody.
    const ctl = new AbortController();
    const gone = request(`${s.url}/logs`, { method: 'POST', body: '{"b":1}', signal: ctl.signal }).catch(
      (e: Error) => e,
    );
    await waitFor(() => s.chunks.length === 1);
    ctl.abort();
    assert.ok((await gone) instanceof Error);
    s.chunks[0]!.onAck!();
    // Still serving.
    const next = post(`${s.url}/logs`, '{"c":1}');
    await waitFor(() => s.chunks.length === 2);
    s.chunks[1]!.onAck!();
    assert.equal((await next).status, 200);
    assert.deepEqual(s.events(), [{ b: 1 }, { c: 1 }]);
  });

  test('stop() answers requests still waiting for their ack with 503', async () => {
    const f = fakeContext();
    const source = createHttpSource(
      {
        type: 'http',
        listen: { host: '127.0.0.1', port: 0 },
        path: '/',
        maxBodyBytes: 1024,
        acknowledgements: true,
      },
      f.ctx,
    );
    await source.start();
    const pending = post(`http://127.0.0.1:${source.address().port}/`, '{"a":1}');
    await waitFor(() => f.chunks.length === 1);
    await source.stop();
    const r = await pending;
    assert.equal(r.status, 503);
    f.chunks[0]!.onAck!(); // late: harmless
  });
});

test('a port in use fails with PILLION_ERR_LOGS_LISTEN', async () => {
  const s = await started();
  const f = fakeContext();
  const clash = createHttpSource(
    {
      type: 'http',
      listen: { host: '127.0.0.1', port: s.source.address().port },
      path: '/',
      maxBodyBytes: 1024,
      acknowledgements: true,
    },
    f.ctx,
  );
  await assert.rejects(clash.start(), (err: unknown) => {
    assert.ok(err instanceof PillionError);
    assert.equal(err.code, 'PILLION_ERR_LOGS_LISTEN');
    assert.match(err.message, /127\.0\.0\.1:\d+/);
    return true;
  });
});
