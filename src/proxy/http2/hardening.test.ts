// HTTP/2 clients that break the protocol, over raw sockets: whatever ends a session must close its
// socket and cancel its streams' upstream exchanges; closed sessions must not stay in memory; and
// header fields that nghttp2 drops must make the request malformed, never forwarded without them.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { waitFor } from '../../lib/wait-for.js';
import {
  type Backend,
  get as h1Get,
  metricValue,
  rawRequest,
  type StartedProxy,
  startBackend,
  startInbound,
} from '../test-support.js';
import type { InboundSection } from '../inbound.js';

const { NGHTTP2_PROTOCOL_ERROR, NGHTTP2_FRAME_SIZE_ERROR, NGHTTP2_STREAM_CLOSED } = http2.constants;

// --- frames written by hand ---------------------------------------------------------------------------

const T_DATA = 0;
const T_HEADERS = 1;
const T_PRIORITY = 2;
const T_RST_STREAM = 3;
const T_SETTINGS = 4;
const T_GOAWAY = 7;
const T_CONTINUATION = 9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, stream: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const h = Buffer.alloc(9);
  h.writeUIntBE(body.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, body]);
}

/** An HPACK string literal, not Huffman-coded (lengths under 127). */
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** A literal field without indexing, with a new name (RFC 7541 §6.2.2). */
function literal(name: string | Buffer, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x00]), str(name), str(value)]);
}

/** A literal field with incremental indexing and a new name: it enters the dynamic table. */
function indexed(name: string | Buffer, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x40]), str(name), str(value)]);
}

/** A request header block: :method, :scheme http, :path and :authority, then `extra` fields. */
function request(method: 'GET' | 'POST', path: string, ...extra: Buffer[]): Buffer {
  return Buffer.concat([
    Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x86]),
    Buffer.concat([Buffer.from([0x04]), str(path)]),
    Buffer.concat([Buffer.from([0x01]), str('test.local')]),
    ...extra,
  ]);
}

/** :status from the first field of a response block, when nghttp2 took it from the static table. */
const STATIC_STATUS: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8c: 400, 0x8d: 404, 0x8e: 500 };

interface Seen {
  goaway: number | undefined;
  resets: Map<number, number>;
  /** Streams of the HEADERS frames the proxy sent, in order. */
  headers: number[];
  /** :status of each response, by stream (0 when not a static-table status). */
  status: Map<number, number>;
  ended: boolean;
  closed: boolean;
}

/** A raw client: writes exact bytes, reads the proxy's frames, and notes its FIN and close. */
async function rawH2(port: number): Promise<{ sock: net.Socket; seen: Seen }> {
  const sock = net.connect(port, '127.0.0.1');
  const seen: Seen = {
    goaway: undefined,
    resets: new Map(),
    headers: [],
    status: new Map(),
    ended: false,
    closed: false,
  };
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3];
      if (type === T_GOAWAY) seen.goaway = buf.readUInt32BE(13);
      if (type === T_RST_STREAM) seen.resets.set(buf.readUInt32BE(5), buf.readUInt32BE(9));
      if (type === T_HEADERS) {
        const stream = buf.readUInt32BE(5);
        seen.headers.push(stream);
        if (!seen.status.has(stream)) seen.status.set(stream, STATIC_STATUS[buf[9]!] ?? 0);
      }
      buf = buf.subarray(9 + len);
    }
  });
  sock.on('end', () => (seen.ended = true));
  sock.on('close', () => (seen.closed = true));
  sock.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.write(Buffer.concat([PREFACE, frame(T_SETTINGS, 0, 0, Buffer.alloc(0))]));
  return { sock, seen };
}

// --- the proxy and its upstream ---------------------------------------------------------------------

let backend: Backend;
let proxy: StartedProxy<InboundSection>;
let port: number;
/** Requests the backend has received and not answered yet. */
let held = 0;

before(async () => {
  backend = await startBackend((req, res) => {
    const path = req.url ?? '/';
    if (path === '/echo') {
      // Answers once the whole body is in: while the body is open, the exchange holds its connection.
      held++;
      req.resume();
      req.on('end', () => {
        held--;
        res.end('echo');
      });
      req.on('close', () => {
        if (!req.complete) held--;
      });
      return;
    }
    if (path === '/hang') {
      held++;
      res.on('close', () => held--);
      return;
    }
    res.end(JSON.stringify({ url: path, headers: req.headers }));
  });
  proxy = await startInbound({
    listeners: [{ address: '127.0.0.1:0' }],
    // Two connections at most: two pinned exchanges would hang every later request.
    upstreams: { be: { endpoints: [`127.0.0.1:${backend.port}`], pool: { maxConnections: 2 } } },
    routes: [{ upstream: 'be' }],
  });
  port = proxy.port();
});

after(async () => {
  await proxy.stop();
  await backend.close();
});

function pool() {
  return proxy.module.poolOccupancy().get('be')!;
}

async function backendConnections(): Promise<number> {
  return new Promise((resolve, reject) =>
    backend.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** Waits until no upstream connection is in use and the backend holds no request. */
async function poolFree(what: string): Promise<void> {
  await waitFor(
    () => {
      const o = pool();
      return o.open === o.idle && o.waiting === 0 && held === 0;
    },
    { what: `${what}: the upstream pool to be free`, timeoutMs: 5000 },
  );
}

// --- item 1: malformed frames end the session, its socket and its upstream exchanges -------------------

interface BrokenCase {
  name: string;
  /** Opens stream 1 so that an upstream exchange is in flight. */
  open: Buffer[];
  /** What breaks the protocol. */
  bad: Buffer[];
  goaway: number;
}

const post = request('POST', '/echo');
const hang = request('GET', '/hang');

const BROKEN: BrokenCase[] = [
  {
    name: 'DATA padding longer than its payload (the report: pad length 9, payload "abc")',
    open: [frame(T_HEADERS, END_HEADERS, 1, post)],
    bad: [frame(T_DATA, PADDED, 1, '\x09abc')],
    goaway: NGHTTP2_PROTOCOL_ERROR,
  },
  {
    name: 'h2spec 4.2/2: a DATA frame larger than SETTINGS_MAX_FRAME_SIZE',
    open: [frame(T_HEADERS, END_HEADERS, 1, post)],
    bad: [frame(T_DATA, 0, 1, Buffer.alloc(16385))],
    goaway: NGHTTP2_FRAME_SIZE_ERROR,
  },
  {
    name: 'h2spec 5.1/5: DATA on a half-closed (remote) stream',
    open: [frame(T_HEADERS, END_HEADERS | END_STREAM, 1, hang)],
    bad: [frame(T_DATA, 0, 1, 'test')],
    goaway: NGHTTP2_STREAM_CLOSED,
  },
  {
    name: 'h2spec 5.1/7: CONTINUATION on a half-closed (remote) stream',
    open: [frame(T_HEADERS, END_HEADERS | END_STREAM, 1, hang)],
    bad: [frame(T_CONTINUATION, END_HEADERS, 1, Buffer.from([0x88]))],
    goaway: NGHTTP2_PROTOCOL_ERROR,
  },
  {
    name: 'h2spec 6.1/2: DATA on a stream not open or half-closed (local)',
    open: [frame(T_HEADERS, END_HEADERS | END_STREAM, 1, hang)],
    bad: [frame(T_DATA, END_STREAM, 1, 'test')],
    goaway: NGHTTP2_STREAM_CLOSED,
  },
  {
    name: 'h2spec 6.1/3: DATA with an invalid pad length',
    open: [frame(T_HEADERS, END_HEADERS, 1, post)],
    bad: [frame(T_DATA, PADDED | END_STREAM, 1, '\x06test')],
    goaway: NGHTTP2_PROTOCOL_ERROR,
  },
  {
    name: 'h2spec 6.3/2: a PRIORITY frame of 4 octets',
    open: [frame(T_HEADERS, END_HEADERS, 1, post)],
    bad: [frame(T_PRIORITY, 0, 1, Buffer.from([0x80, 0, 0, 1]))],
    goaway: NGHTTP2_FRAME_SIZE_ERROR,
  },
  {
    name: 'h2spec 6.4/3: a RST_STREAM frame of 3 octets',
    open: [frame(T_HEADERS, END_HEADERS, 1, post)],
    bad: [frame(T_RST_STREAM, 0, 1, Buffer.from([0, 0, 8]))],
    goaway: NGHTTP2_FRAME_SIZE_ERROR,
  },
  {
    name: 'h2spec 6.10/4: CONTINUATION after a HEADERS frame with END_HEADERS',
    open: [frame(T_HEADERS, END_HEADERS, 1, post)],
    bad: [frame(T_CONTINUATION, END_HEADERS, 1, Buffer.from([0x88]))],
    goaway: NGHTTP2_PROTOCOL_ERROR,
  },
  {
    name: 'h2spec 6.10/5: CONTINUATION after a CONTINUATION frame with END_HEADERS',
    open: [
      frame(T_HEADERS, 0, 1, post.subarray(0, 4)),
      frame(T_CONTINUATION, END_HEADERS, 1, post.subarray(4)),
    ],
    bad: [frame(T_CONTINUATION, END_HEADERS, 1, Buffer.from([0x88]))],
    goaway: NGHTTP2_PROTOCOL_ERROR,
  },
];

describe('regression: a malformed HTTP/2 frame left the client socket in CLOSE-WAIT and the upstream connection pinned', () => {
  for (const c of BROKEN) {
    test(`${c.name}: GOAWAY, the proxy closes the socket and frees the upstream connection`, async () => {
      const before = await metricValue(proxy.metrics, 'pillion_proxy_refusals_total', {
        reason: 'h2_protocol_error',
      });
      const { sock, seen } = await rawH2(port);
      sock.write(Buffer.concat(c.open));
      await waitFor(() => held === 1 && pool().open - pool().idle === 1, {
        what: 'the request to be in flight upstream',
      });
      sock.write(Buffer.concat(c.bad));
      // The client does not close: the proxy must, by itself (no CLOSE-WAIT on its side).
      await waitFor(() => seen.ended, { what: 'the proxy to close its side of the connection' });
      assert.equal(seen.goaway, c.goaway);
      await poolFree(c.name);
      sock.destroy();
      await waitFor(() => seen.closed);
      assert.equal(
        await metricValue(proxy.metrics, 'pillion_proxy_refusals_total', { reason: 'h2_protocol_error' }),
        before + 1,
      );
    });
  }

  test('after ten broken sessions at once, an HTTP/1.1 request through the two-connection pool is served', async () => {
    // Ten sessions broken at once, more than the pool has connections.
    const clients = await Promise.all(Array.from({ length: 10 }, () => rawH2(port)));
    for (const { sock } of clients) sock.write(frame(T_HEADERS, END_HEADERS, 1, post));
    await waitFor(() => held === 2, { what: 'the pool to be full' });
    for (const { sock } of clients) sock.write(frame(T_DATA, PADDED, 1, '\x09abc'));
    await waitFor(() => clients.every((c) => c.seen.ended), { what: 'every session to be closed' });
    for (const { sock } of clients) sock.destroy();
    await poolFree('ten broken sessions');
    const res = await rawRequest(port, h1Get('/ok'));
    assert.equal(res.status, 200);
    await waitFor(
      async () => (await metricValue(proxy.metrics, 'pillion_proxy_active_connections', {})) === 0,
      { what: 'every client connection to be gone' },
    );
    assert.equal(await backendConnections(), pool().open);
  });

  test('drain (SIGTERM) ends when the broken sessions are gone, not at its deadline', async () => {
    const p = await startInbound({
      listeners: [{ address: '127.0.0.1:0' }],
      upstreams: { be: { endpoints: [`127.0.0.1:${backend.port}`] } },
      routes: [{ upstream: 'be' }],
    });
    try {
      const clients = await Promise.all(Array.from({ length: 3 }, () => rawH2(p.port())));
      for (const { sock } of clients) sock.write(frame(T_HEADERS, END_HEADERS, 1, post));
      await waitFor(() => held === 3, { what: 'three requests in flight upstream' });
      for (const { sock } of clients) sock.write(frame(T_DATA, PADDED, 1, '\x09abc'));
      // A deadline far off: had drain waited for it, the sessions would still be counted below.
      await p.module.drain(Date.now() + 60_000);
      assert.equal(await metricValue(p.metrics, 'pillion_proxy_active_connections', {}), 0);
      for (const { sock } of clients) sock.destroy();
      await waitFor(() => held === 0, { what: 'the upstream requests to be cancelled' });
    } finally {
      await p.stop();
    }
  });

  test('a client that sends half a request and closes its side ends the session and frees the upstream connection', async () => {
    const { sock, seen } = await rawH2(port);
    sock.write(frame(T_HEADERS, END_HEADERS, 1, post));
    await waitFor(() => held === 1, { what: 'the request to be in flight upstream' });
    sock.end();
    await waitFor(() => seen.closed, { what: 'the proxy to close the connection' });
    await poolFree('a half-closed client');
  });
});

describe('regression: an HTTP/2 request body that stalls held its upstream connection for good', () => {
  test('stream idle: no bytes for timeouts.idle ends the exchange with 408 and frees the connection', async () => {
    const p = await startInbound({
      listeners: [{ address: '127.0.0.1:0' }],
      upstreams: { be: { endpoints: [`127.0.0.1:${backend.port}`] } },
      routes: [{ upstream: 'be' }],
      timeouts: { idle: '300ms' },
    });
    try {
      const { sock, seen } = await rawH2(p.port());
      sock.write(frame(T_HEADERS, END_HEADERS, 1, post));
      await waitFor(() => held === 1, { what: 'the request to be in flight upstream' });
      // The body never comes; the connection itself stays open (SETTINGS ACK, no close).
      await waitFor(() => seen.headers.includes(1), { what: 'the 408 on stream 1' });
      await waitFor(() => held === 0, { what: 'the upstream exchange to be cancelled' });
      const o = p.module.poolOccupancy().get('be')!;
      assert.equal(o.open, o.idle);
      assert.equal(seen.ended, false);
      sock.destroy();
    } finally {
      await p.stop();
    }
  });
});

// --- item 4: closed sessions do not stay in memory -------------------------------------------------------

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Objects whose constructor has one of these names, in a heap snapshot taken after a full GC. */
async function countObjects(names: string[]): Promise<Map<string, number>> {
  gc();
  gc();
  const chunks: Buffer[] = [];
  for await (const c of v8.getHeapSnapshot()) chunks.push(c as Buffer);
  const snap = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const objectType = snap.snapshot.meta.node_types[0].indexOf('object');
  const wanted = new Set(names);
  const out = new Map(names.map((n) => [n, 0]));
  for (let i = 0; i < snap.nodes.length; i += width) {
    if (snap.nodes[i + typeAt] !== objectType) continue;
    const name = snap.strings[snap.nodes[i + nameAt]!]!;
    if (wanted.has(name)) out.set(name, out.get(name)! + 1);
  }
  return out;
}

/** One short h2c connection: a GET, its whole response, then the client closes. */
async function shortConnection(p: number): Promise<void> {
  const sock = net.connect(p, '127.0.0.1');
  sock.on('error', () => {});
  sock.write(
    Buffer.concat([
      PREFACE,
      frame(T_SETTINGS, 0, 0, Buffer.alloc(0)),
      frame(T_HEADERS, END_HEADERS | END_STREAM, 1, request('GET', '/ok')),
    ]),
  );
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let o = 0; buf.length - o >= 9;) {
        const len = buf.readUIntBE(o, 3);
        if (buf.length - o < 9 + len) break;
        if (buf[o + 3] === T_DATA && (buf[o + 4]! & END_STREAM) !== 0) sock.end();
        o += 9 + len;
      }
    });
    sock.on('close', () => resolve());
  });
}

describe('regression: closed HTTP/2 sessions stayed in memory until the idle timeout', () => {
  test('12 000 short h2c connections leave no session behind', async () => {
    const run = async (n: number) => {
      for (let i = 0; i < n; i += 50)
        await Promise.all(Array.from({ length: 50 }, () => shortConnection(port)));
    };
    await run(500);
    const names = ['ServerHttp2Session', 'FrameGuard'];
    const before = await countObjects(names);
    await run(12_000);
    await waitFor(
      async () => (await metricValue(proxy.metrics, 'pillion_proxy_active_connections', {})) === 0,
      { what: 'every session to close' },
    );
    // With the default 60 s idle timeout, node's session timer held every one of them.
    const left = await countObjects(names);
    for (const n of names)
      assert.ok(left.get(n)! - before.get(n)! < 50, `${n}: ${before.get(n)} → ${left.get(n)}`);
  });
});

// --- item 6: fields nghttp2 drops make the request malformed ------------------------------------------

describe('regression: HTTP/2 header fields with CR, LF, NUL, a space or a colon were dropped and the rest forwarded', () => {
  const BAD: [string, Buffer][] = [
    ['a space in a name', literal('x y', 'v')],
    ['a colon inside a name', literal('x:y', 'v')],
    ['NUL in a name', literal('x\0y', 'v')],
    ['CR in a name', literal('x\ry', 'v')],
    ['LF in a name', literal('x\ny', 'v')],
    ['an empty name', literal('', 'v')],
    ['CR in a value', literal('x-a', 'a\rb')],
    ['LF in a value', literal('x-a', 'a\nb')],
    ['NUL in a value', literal('x-a', 'a\0b')],
    ['a leading space in a value', literal('x-a', ' v')],
    ['a trailing tab in a value', literal('x-a', 'v\t')],
    ['another control byte in a value', literal('x-a', 'a\x01b')],
    // Huffman-coded value "a\0" (a: 00011, NUL: 1111111111111000, EOS padding).
    [
      'NUL in a Huffman-coded value',
      Buffer.concat([Buffer.from([0x00]), str('x-a'), Buffer.from([0x83, 0x1f, 0xfe, 0x3f])]),
    ],
    // A name from the static table (user-agent, index 58) with a bad literal value.
    ['LF in the value of a static-table name', Buffer.concat([Buffer.from([0x0f, 0x2b]), str('a\nb')])],
  ];

  test('each one is answered 400 and never reaches the app; the session goes on', async () => {
    const before = await metricValue(proxy.metrics, 'pillion_proxy_refusals_total', {
      reason: 'h2_malformed_field',
    });
    const seenBefore = backend.requests.length;
    const { sock, seen } = await rawH2(port);
    let id = 1;
    for (const [, field] of BAD) {
      sock.write(frame(T_HEADERS, END_HEADERS | END_STREAM, id, request('GET', `/ok?bad=${id}`, field)));
      id += 2;
    }
    // A good request after them, on the same connection.
    sock.write(
      frame(T_HEADERS, END_HEADERS | END_STREAM, id, request('GET', '/ok?good', literal('x-a', 'fine'))),
    );
    await waitFor(() => seen.status.has(id), { what: 'the good request to be answered' });
    for (let i = 0, s = 1; i < BAD.length; i++, s += 2) assert.equal(seen.status.get(s), 400, BAD[i]![0]);
    assert.equal(seen.status.get(id), 200);
    const reached = backend.requests.slice(seenBefore).map((r) => r.url);
    assert.deepEqual(reached, ['/ok?good']);
    assert.equal(
      await metricValue(proxy.metrics, 'pillion_proxy_refusals_total', { reason: 'h2_malformed_field' }),
      before + BAD.length,
    );
    assert.equal(seen.goaway, undefined);
    sock.destroy();
  });

  test('a bad field put in the dynamic table is bad wherever it is referenced; good entries stay good', async () => {
    const seenBefore = backend.requests.length;
    const { sock, seen } = await rawH2(port);
    // Stream 1 adds "x-bad: a\0b" to the table (index 62), stream 3 adds "x-good: yes" (now 62; bad 63).
    sock.write(
      frame(T_HEADERS, END_HEADERS | END_STREAM, 1, request('GET', '/ok?1', indexed('x-bad', 'a\0b'))),
    );
    sock.write(
      frame(T_HEADERS, END_HEADERS | END_STREAM, 3, request('GET', '/ok?3', indexed('x-good', 'yes'))),
    );
    sock.write(
      frame(T_HEADERS, END_HEADERS | END_STREAM, 5, request('GET', '/ok?5', Buffer.from([0x80 | 63]))),
    );
    sock.write(
      frame(T_HEADERS, END_HEADERS | END_STREAM, 7, request('GET', '/ok?7', Buffer.from([0x80 | 62]))),
    );
    // The bad entry's name with a good value (literal with indexed name 63): fine.
    sock.write(
      frame(
        T_HEADERS,
        END_HEADERS | END_STREAM,
        9,
        request('GET', '/ok?9', Buffer.concat([Buffer.from([0x0f, 63 - 15]), str('ok')])),
      ),
    );
    await waitFor(() => [1, 3, 5, 7, 9].every((s) => seen.status.has(s)), { what: 'five answers' });
    assert.deepEqual(
      [1, 3, 5, 7, 9].map((s) => seen.status.get(s)),
      [400, 200, 400, 200, 200],
    );
    const reached = backend.requests.slice(seenBefore);
    assert.deepEqual(
      reached.map((r) => r.url),
      ['/ok?3', '/ok?7', '/ok?9'],
    );
    assert.equal(reached[1]!.headers['x-good'], 'yes');
    assert.equal(reached[2]!.headers['x-bad'], 'ok');
    sock.destroy();
  });

  test('a trailer with a bad field ends the exchange before the trailers reach the app', async () => {
    const before = await metricValue(proxy.metrics, 'pillion_proxy_refusals_total', {
      reason: 'h2_malformed_field',
    });
    const { sock, seen } = await rawH2(port);
    sock.write(frame(T_HEADERS, END_HEADERS, 1, request('POST', '/echo')));
    await waitFor(() => held === 1, { what: 'the request to be in flight upstream' });
    sock.write(frame(T_DATA, 0, 1, 'body'));
    sock.write(frame(T_HEADERS, END_HEADERS | END_STREAM, 1, literal('x-trailer', 'a\rb')));
    await waitFor(() => seen.status.has(1), { what: 'the answer' });
    assert.equal(seen.status.get(1), 400);
    await poolFree('a bad trailer');
    assert.equal(
      await metricValue(proxy.metrics, 'pillion_proxy_refusals_total', { reason: 'h2_malformed_field' }),
      before + 1,
    );
    sock.destroy();
  });

  test("node's own client (Huffman coding, the dynamic table, evictions): 300 requests with varied fields all pass", async () => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
    try {
      const seenBefore = backend.requests.length;
      for (let i = 0; i < 300; i++) {
        const headers: http2.OutgoingHttpHeaders = {
          ':path': `/ok?n=${i}`,
          'x-seq': String(i),
          // Repeated values are indexed; long and changing ones push entries out of the 4 KiB table.
          'x-fixed': 'the same value every time',
          [`x-name-${i % 7}`]: `value ${'x'.repeat(i % 300)} ~!@#$%^&*()_+{}|:"<>? \u00e9`.replace(
            '\u00e9',
            'e',
          ),
          cookie: `a=${i}; b=${'y'.repeat(i % 50)}`,
        };
        const status = await new Promise<number>((resolve, reject) => {
          const req = client.request(headers, { endStream: true });
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('error', reject);
          req.resume();
        });
        assert.equal(status, 200, `request ${i}`);
      }
      const got = backend.requests.slice(seenBefore);
      assert.equal(got.length, 300);
      assert.equal(got[299]!.headers['x-seq'], '299');
    } finally {
      client.destroy();
    }
  });
});

describe('regression: HTTP/2 upstream sessions the upstream closed stayed in memory until the idle timeout', () => {
  test('an upstream that closes its session after every response leaves no client session behind; idle ones still close', async () => {
    const upstream = http2.createServer();
    let upstreamSessions = 0;
    let upstreamClosed = 0;
    upstream.on('session', (s) => {
      upstreamSessions++;
      s.on('close', () => upstreamClosed++);
    });
    upstream.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
      // Like a server with a connection age limit: GOAWAY after each response.
      if (headers[':path'] !== '/keep') stream.session?.close();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamPort = (upstream.address() as net.AddressInfo).port;
    const p = await startInbound({
      listeners: [{ address: '127.0.0.1:0' }],
      upstreams: { h2: { endpoints: [`127.0.0.1:${upstreamPort}`], protocol: 'h2' } },
      routes: [{ upstream: 'h2' }],
      timeouts: { idle: '300ms' },
    });
    try {
      // A client session per phase: the proxy closes an idle one (timeouts.idle) while the heap
      // is inspected.
      const session = () => {
        const client = http2.connect(`http://127.0.0.1:${p.port()}`);
        client.on('error', () => {});
        const get = (path: string) =>
          new Promise<number>((resolve, reject) => {
            const req = client.request({ ':path': path }, { endStream: true });
            req.on('response', (h) => resolve(Number(h[':status'])));
            req.on('error', reject);
            req.resume();
          });
        return { client, get };
      };
      const warm = session();
      assert.equal(await warm.get('/warm'), 200);
      warm.client.destroy();
      const before = await countObjects(['ClientHttp2Session']);
      const load = session();
      for (let i = 0; i < 300; i++) assert.equal(await load.get(`/n${i}`), 200);
      load.client.destroy();
      await waitFor(() => upstreamClosed === upstreamSessions, { what: 'the upstream sessions to close' });
      // The proxy keeps none of the 300 sessions the upstream sent away.
      const left = await countObjects(['ClientHttp2Session']);
      assert.ok(left.get('ClientHttp2Session')! - before.get('ClientHttp2Session')! < 20, `${[...left]}`);
      // A session left idle is closed after timeouts.idle, by the proxy's own sweep.
      const opened = upstreamSessions;
      const keep = session();
      assert.equal(await keep.get('/keep'), 200);
      await waitFor(() => upstreamSessions === opened + 1 && upstreamClosed === upstreamSessions, {
        what: 'the idle upstream session to be closed',
      });
      keep.client.destroy();
    } finally {
      await p.stop();
      upstream.close();
    }
  });
});
