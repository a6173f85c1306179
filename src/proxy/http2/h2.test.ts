// HTTP/2 inbound over real sockets: TLS (ALPN) and h2c clients through the proxy to an HTTP/1.1 app,
// to a grpc-js server and to raw node:http2 upstreams; floods, limits, idle close and drain.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2, {
  type ClientHttp2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { systemClock } from '../../lib/clock.js';
import { waitFor } from '../../lib/wait-for.js';
import { createMetricsRegistry, type Registry } from '../../metrics/index.js';
import { appSchema } from '../../runtime/config.js';
import { HealthSignal } from '../../runtime/health-signal.js';
import { inboundSchema } from '../config.js';
import { type InboundSection, inboundSettings } from '../inbound.js';
import { ProxyModule } from '../proxy-module.js';
import { makeCa, makeLeaf, type TestCa } from '../tls/test-certs.js';
import { TrailerChunkedReader } from './trailer-reader.js';
import { freePort } from '../../lib/free-port.js';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants;

// --- a gRPC service with JSON messages (no code generation) -----------------------------------------

interface Msg {
  text?: string;
  n?: number;
  hold?: boolean;
  hang?: boolean;
}
const ser = (m: Msg): Buffer => Buffer.from(JSON.stringify(m));
const de = (b: Buffer): Msg => JSON.parse(b.toString()) as Msg;

function method(
  name: string,
  requestStream: boolean,
  responseStream: boolean,
): grpc.MethodDefinition<Msg, Msg> {
  return {
    path: `/pt.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de,
  };
}

const service: grpc.ServiceDefinition = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Bidi: method('Bidi', true, true),
};

const grpcState = { cancelled: false, release: () => {}, held: Promise.resolve() };

const grpcImpl = {
  Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
    if (call.request.text === 'fail') {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad input' });
      return;
    }
    const md = new grpc.Metadata();
    md.set('x-server-meta', String(call.metadata.get('x-client-meta')[0] ?? 'none'));
    call.sendMetadata(md);
    const trailer = new grpc.Metadata();
    trailer.set('x-trailer-meta', 'bye');
    cb(null, { text: `echo:${call.request.text}` }, trailer);
  },
  async ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
    if (call.request.hang) {
      call.on('cancelled', () => (grpcState.cancelled = true));
      call.write({ n: 0 });
      return;
    }
    const n = call.request.n ?? 3;
    for (let i = 0; i < n; i++) {
      call.write({ n: i });
      if (i === 0 && call.request.hold) await grpcState.held;
    }
    call.end();
  },
  ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
    let sum = 0;
    call.on('data', (m: Msg) => (sum += m.n ?? 0));
    call.on('end', () => cb(null, { n: sum }));
  },
  Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
    call.on('data', (m: Msg) => call.write({ text: (m.text ?? '').toUpperCase() }));
    call.on('end', () => call.end());
  },
};

function unary(
  client: grpc.Client,
  msg: Msg,
  md = new grpc.Metadata(),
): Promise<{ res: Msg; headers: grpc.Metadata | undefined; status: grpc.StatusObject }> {
  return new Promise((resolve, reject) => {
    let res: Msg | undefined;
    let headers: grpc.Metadata | undefined;
    const call = client.makeUnaryRequest('/pt.Echo/Unary', ser, de, msg, md, (err, value) => {
      if (err) reject(err);
      else res = value;
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) resolve({ res: res!, headers, status });
    });
  });
}

async function collect(stream: grpc.ClientReadableStream<Msg>): Promise<Msg[]> {
  const out: Msg[] = [];
  for await (const m of stream) out.push(m as Msg);
  return out;
}

// --- the HTTP/1.1 app ------------------------------------------------------------------------------

function piece(i: number): Buffer {
  return Buffer.alloc(64 * 1024, i % 251);
}

let appSawBig = false;

function app(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://app');
  switch (url.pathname) {
    case '/hello': {
      if (req.headers['x-big'] !== undefined) appSawBig = true;
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    case '/upload': {
      const h = createHash('sha256');
      let bytes = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      req.on('end', () =>
        res.end(
          JSON.stringify({
            bytes,
            sha: h.digest('hex'),
            te: req.headers['transfer-encoding'] ?? null,
            cl: req.headers['content-length'] ?? null,
          }),
        ),
      );
      return;
    }
    case '/chunked': {
      // No Content-Length: node sends chunked, with the trailer at the end.
      const pieces = Number(url.searchParams.get('pieces') ?? '3');
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-checksum' });
      const h = createHash('sha256');
      let i = 0;
      const pump = (): void => {
        while (i < pieces) {
          const p = piece(i++);
          h.update(p);
          if (!res.write(p)) {
            res.once('drain', pump);
            return;
          }
        }
        res.addTrailers({ 'x-checksum': h.digest('hex') });
        res.end();
      };
      pump();
      return;
    }
    case '/slow':
      return; // never answers
    case '/truncate':
      res.writeHead(200, { 'content-length': '100' });
      res.write('0123456789', () => res.socket?.destroy());
      return;
    default:
      res.writeHead(404).end();
  }
}

// --- clients -----------------------------------------------------------------------------------------

interface H2Response {
  headers: IncomingHttpHeaders;
  flags: number;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
}

function h2(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: Buffer | AsyncIterable<Buffer>,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let head: IncomingHttpHeaders | undefined;
    let flags = 0;
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (h, f) => {
      head = h;
      flags = f;
    });
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('error', reject);
    req.on('close', () => {
      if (head === undefined) reject(new Error(`stream closed without a response (code ${req.rstCode})`));
      else resolve({ headers: head, flags, body: Buffer.concat(chunks), trailers });
    });
    if (Buffer.isBuffer(body)) req.end(body);
    else if (body !== undefined) {
      void (async () => {
        for await (const b of body) if (!req.write(b)) await once(req, 'drain');
        req.end();
      })().catch(reject);
    }
  });
}

/** HTTP/2 frames written by hand, for what no well-behaved client sends. */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** GET http, :path "/" or a literal, :authority a literal (HPACK static indexes 4 and 1). */
function requestBlock(authority: string, path?: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0x86]),
    path === undefined ? Buffer.from([0x84]) : Buffer.from([0x04, path.length, ...Buffer.from(path)]),
    Buffer.from([0x01, authority.length]),
    Buffer.from(authority),
  ]);
}

/** A raw connection that reads the server's frames, noting GOAWAY codes and whether it closed. */
function rawClient(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  const seen = { goaway: undefined as number | undefined, closed: false, headers: 0, resets: [] as number[] };
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      if (type === 7) seen.goaway = buf.readUInt32BE(13);
      if (type === 1) seen.headers++;
      if (type === 3) seen.resets.push(buf.readUInt32BE(9));
      buf = buf.subarray(9 + len);
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => (seen.closed = true));
  return { sock, seen };
}

// --- the proxy ---------------------------------------------------------------------------------------

const deps = (appHealth: HealthSignal) => ({
  logger: pino({ level: 'silent' }),
  metrics: createMetricsRegistry(),
  clock: systemClock,
  appHealth,
});

let dir: string;
let ca: TestCa;
let certFile: string;
let keyFile: string;
let appServer: http.Server;
let appPort: number;
let grpcServer: grpc.Server;
let grpcPort: number;
let deadPort: number;
let rawServer: http2.Http2Server;
let rawPort: number;
let caFile: string;
let securePort: number;
/** rstCode of each stream the raw HTTP/2 upstream saw close, by path. */
const rawClosed = new Map<string, number>();
/** Upstream streams a test resets itself, once the client has seen the response start. */
const rawOpen = new Map<string, http2.ServerHttp2Stream>();
let health: HealthSignal;
let proxy: ProxyModule<InboundSection>;
let mainMetrics: Registry;
let tlsPort: number;
let plainPort: number;
let logFile: string;
const cleanups: (() => unknown)[] = [];

function section(extra: Record<string, unknown>, listeners: unknown[]): InboundSection {
  return {
    inbound: inboundSchema.parse({
      listeners,
      routes: [
        { name: 'grpc', match: { prefix: '/pt.Echo' }, upstream: 'grpc' },
        { name: 'h2raw', match: { prefix: '/raw' }, upstream: 'h2raw' },
        { name: 'h2tls', match: { prefix: '/secure' }, upstream: 'h2tls' },
        { name: 'dead-h1', match: { prefix: '/dead-h1' }, upstream: 'deadh1' },
        { name: 'dead-h2', match: { prefix: '/dead-h2' }, upstream: 'deadh2' },
        { name: 'direct', match: { exact: '/direct' }, directResponse: { status: 200, body: 'direct\n' } },
        { name: 'app', responseHeaders: { add: { 'x-served-by': 'pillion' } } },
      ],
      upstreams: {
        grpc: { endpoints: [`127.0.0.1:${grpcPort}`], protocol: 'h2' },
        h2raw: { endpoints: [`127.0.0.1:${rawPort}`], protocol: 'h2' },
        // No serverName: the certificate is checked against the endpoint's IP.
        h2tls: { endpoints: [`127.0.0.1:${securePort}`], protocol: 'h2', tls: { ca: caFile } },
        deadh1: { endpoints: [`127.0.0.1:${deadPort}`] },
        deadh2: { endpoints: [`127.0.0.1:${deadPort}`], protocol: 'h2' },
      },
      http2: { maxConcurrentStreams: 50, maxResetsPerSecond: 50, maxHeaderListSize: '16KiB' },
      timeouts: { upstreamResponse: '400ms' },
      ...extra,
    }),
    app: appSchema.parse({ host: '127.0.0.1', port: appPort }),
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pillion-h2-'));
  ca = await makeCa();
  const leaf = await makeLeaf(ca, { names: ['localhost', '127.0.0.1'] });
  certFile = join(dir, 'server.crt');
  keyFile = join(dir, 'server.key');
  logFile = join(dir, 'access.log');
  await writeFile(certFile, leaf.cert);
  await writeFile(keyFile, leaf.key);
  caFile = join(dir, 'ca.crt');
  await writeFile(caFile, ca.cert);

  // A large header limit, so that what the proxy refuses is not refused by the app as well.
  appServer = http.createServer({ maxHeaderSize: 64 * 1024 }, app);
  appServer.listen(0, '127.0.0.1');
  await once(appServer, 'listening');
  appPort = (appServer.address() as net.AddressInfo).port;
  cleanups.push(() => {
    appServer.closeAllConnections();
    appServer.close();
  });

  grpcServer = new grpc.Server();
  grpcServer.addService(service, grpcImpl as unknown as grpc.UntypedServiceImplementation);
  grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
  cleanups.push(() => grpcServer.forceShutdown());
  deadPort = await freePort();

  rawServer = http2.createServer();
  rawServer.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    stream.on('error', () => {});
    stream.on('close', () => rawClosed.set(path, stream.rstCode));
    switch (path) {
      case '/raw/echo':
        // Echoes the body, then trailers.
        stream.respond({ ':status': 200, 'x-seen-te': String(headers.te) }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-done': 'yes' }));
        stream.pipe(stream);
        return;
      case '/raw/reset-before':
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      case '/raw/reset-after':
        // Reset by the test once the client has the first bytes: a reset in the same read as the
        // head makes Node 24's client drop the head, so the proxy would never see a response.
        stream.respond({ ':status': 200 });
        stream.write('partial');
        rawOpen.set(path, stream);
        return;
      default: // hangs after the head
        stream.respond({ ':status': 200 });
        stream.write('first');
    }
  });
  rawServer.listen(0, '127.0.0.1');
  await once(rawServer, 'listening');
  rawPort = (rawServer.address() as net.AddressInfo).port;
  cleanups.push(() => rawServer.close());

  const secure = http2.createSecureServer({ cert: leaf.cert, key: leaf.key });
  secure.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.end(`${String(headers[':scheme'])} ${String(headers[':authority'])}`);
  });
  secure.listen(0, '127.0.0.1');
  await once(secure, 'listening');
  securePort = (secure.address() as net.AddressInfo).port;
  cleanups.push(() => secure.close());

  health = new HealthSignal(true);
  const d = deps(health);
  mainMetrics = d.metrics;
  proxy = new ProxyModule(
    section({ accessLog: { path: logFile } }, [
      { name: 'tls', address: '127.0.0.1:0', tls: { certificates: [{ cert: certFile, key: keyFile }] } },
      { name: 'plain', address: '127.0.0.1:0' },
    ]),
    inboundSettings,
    d,
  );
  await proxy.start();
  cleanups.push(() => proxy.stop());
  tlsPort = proxy.addresses().get('tls')!.port;
  plainPort = proxy.addresses().get('plain')!.port;
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await rm(dir, { recursive: true, force: true });
});

function connectTls(): ClientHttp2Session {
  const s = http2.connect(`https://localhost:${tlsPort}`, { ca: ca.cert });
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  return s;
}

function connectPlain(port = plainPort): ClientHttp2Session {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  return s;
}

async function* body(pieces: number): AsyncIterable<Buffer> {
  for (let i = 0; i < pieces; i++) yield piece(i);
}

function sha(pieces: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < pieces; i++) h.update(piece(i));
  return h.digest('hex');
}

describe('HTTP/2 to an HTTP/1.1 app', () => {
  test('over TLS (ALPN h2): GET, with forwarding headers and the route edits', async () => {
    const s = connectTls();
    const r = await h2(s, { ':path': '/hello?x=1', 'user-agent': 'h2-test', cookie: ['a=1', 'b=2'] });
    assert.equal((s.socket as unknown as { alpnProtocol: string }).alpnProtocol, 'h2');
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['x-served-by'], 'pillion');
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const seen = JSON.parse(r.body.toString()) as {
      method: string;
      url: string;
      headers: Record<string, string>;
    };
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers.host, `localhost:${tlsPort}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-request-id'], r.headers['x-request-id']);
    assert.equal(seen.headers.cookie, 'a=1; b=2');
    assert.equal(seen.headers['user-agent'], 'h2-test');
  });

  test('over TLS: a streamed POST of several MB is chunk-encoded upstream; one with a length is not', async () => {
    const s = connectTls();
    const pieces = 64; // 4 MiB
    const r = await h2(s, { ':method': 'POST', ':path': '/upload' }, body(pieces));
    assert.equal(r.headers[':status'], 200);
    const got = JSON.parse(r.body.toString()) as { bytes: number; sha: string; te: string; cl: string };
    assert.deepEqual(got, { bytes: pieces * 65536, sha: sha(pieces), te: 'chunked', cl: null });

    const r2 = await h2(
      s,
      { ':method': 'POST', ':path': '/upload', 'content-length': String(4 * 65536) },
      body(4),
    );
    const got2 = JSON.parse(r2.body.toString()) as { bytes: number; sha: string; te: string; cl: string };
    assert.deepEqual(got2, { bytes: 4 * 65536, sha: sha(4), te: null, cl: String(4 * 65536) });
  });

  test('over TLS: a chunked response (4 MiB) is de-chunked, and its trailer becomes an HTTP/2 trailer', async () => {
    const s = connectTls();
    const r = await h2(s, { ':path': '/chunked?pieces=64' });
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers['transfer-encoding'], undefined);
    assert.equal(r.body.length, 64 * 65536);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), sha(64));
    assert.equal(r.trailers?.['x-checksum'], sha(64));
  });

  test('h2c with prior knowledge reaches the same app', async () => {
    const s = connectPlain();
    const r = await h2(s, { ':path': '/hello' });
    assert.equal(r.headers[':status'], 200);
    const seen = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers.host, `127.0.0.1:${plainPort}`);
    const up = await h2(s, { ':method': 'POST', ':path': '/upload' }, body(8));
    assert.equal((JSON.parse(up.body.toString()) as { sha: string }).sha, sha(8));
  });

  test('ALPN http/1.1 on the same TLS listener is served by the HTTP/1.1 engine', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      https
        .get(
          {
            host: '127.0.0.1',
            servername: 'localhost',
            port: tlsPort,
            path: '/hello',
            ca: ca.cert,
            ALPNProtocols: ['http/1.1'],
            agent: false,
          } as https.RequestOptions,
          resolve,
        )
        .on('error', reject),
    );
    assert.equal((res.socket as unknown as { alpnProtocol: string }).alpnProtocol, 'http/1.1');
    assert.equal(res.httpVersion, '1.1');
    assert.equal(res.statusCode, 200);
    res.resume();
    await once(res, 'end');
  });

  test('proxy answers: direct response, no route, bad path, readiness gate, upstream down, response timeout', async () => {
    const s = connectPlain();
    const direct = await h2(s, { ':path': '/direct' });
    assert.equal(direct.headers[':status'], 200);
    assert.equal(direct.body.toString(), 'direct\n');
    const bad = await h2(s, { ':path': '/a/%zz' });
    assert.equal(bad.headers[':status'], 400);
    // :authority is held to the HTTP/1.1 Host grammar (a looser HTTP/2 check let these through).
    for (const authority of ['host:evil', 'a:b:c', '[::1']) {
      const badHost = await h2(s, { ':path': '/hello', ':authority': authority });
      assert.equal(badHost.headers[':status'], 400, authority);
    }

    health.set(false, 'starting');
    try {
      const gated = await h2(s, { ':path': '/hello' });
      assert.equal(gated.headers[':status'], 503);
      assert.equal(gated.headers['retry-after'], '1');
    } finally {
      health.set(true);
    }

    const d1 = await h2(s, { ':path': '/dead-h1' });
    assert.equal(d1.headers[':status'], 502);
    const d2 = await h2(s, { ':path': '/dead-h2/x' });
    assert.equal(d2.headers[':status'], 502);
    const slow = await h2(s, { ':path': '/slow' });
    assert.equal(slow.headers[':status'], 504);
  });

  test('an app that closes mid-response makes a reset, not a clean end', async () => {
    const s = connectPlain();
    const req = s.request({ ':path': '/truncate' });
    req.on('error', () => {});
    let ended = false;
    let got = 0;
    req.on('data', (d: Buffer) => (got += d.length));
    req.on('end', () => (ended = true));
    await new Promise((resolve) => req.on('close', resolve));
    assert.equal(req.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
    assert.equal(ended, false);
    assert.equal(got, 10);
  });

  test('a header block over maxHeaderListSize is refused, never forwarded; the session goes on', async () => {
    const s = connectPlain();
    const big = { ':path': '/hello', 'x-big': 'a'.repeat(20_000) };
    // Sent before the client has acknowledged the proxy's SETTINGS: node does not apply the limit
    // yet, so the proxy checks the list itself.
    const early = await h2(s, big);
    assert.equal(early.headers[':status'], 431);
    // The client acknowledged the proxy's SETTINGS before it read that answer, so now node itself
    // refuses the stream while decoding it (RST_STREAM ENHANCE_YOUR_CALM).
    await assert.rejects(h2(s, big), /ENHANCE_YOUR_CALM/);
    const r = await h2(s, { ':path': '/hello' });
    assert.equal(r.headers[':status'], 200);
    assert.equal(appSawBig, false);
  });

  test('the access log records HTTP/2 exchanges', async () => {
    const lines = await waitFor(async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      const found = text
        .split('\n')
        .filter((l) => l.includes('"protocol":"HTTP/2"') && l.includes('"/hello?x=1"'));
      return found.length > 0 ? found : undefined;
    });
    const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(rec.response_code, 200);
    assert.equal(rec.listener, 'tls');
    assert.equal(rec.route, 'app');
    assert.equal(rec.user_agent, 'h2-test');
    assert.equal(rec.upstream_host, `127.0.0.1:${appPort}`);
  });
});

describe('gRPC through the proxy (h2c in, HTTP/2 upstream)', () => {
  let client: grpc.Client;
  before(() => {
    client = new grpc.Client(`127.0.0.1:${plainPort}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
  });

  test('unary, with metadata both ways and trailing metadata', async () => {
    const md = new grpc.Metadata();
    md.set('x-client-meta', 'hi');
    const r = await unary(client, { text: 'one' }, md);
    assert.deepEqual(r.res, { text: 'echo:one' });
    assert.equal(r.headers?.get('x-server-meta')[0], 'hi');
    assert.equal(r.status.metadata.get('x-trailer-meta')[0], 'bye');
  });

  test('an error status with its message (trailers-only) arrives as sent', async () => {
    await assert.rejects(unary(client, { text: 'fail' }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(err.details, 'bad input');
      return true;
    });
    // The same call by hand: the response is a single HEADERS frame carrying grpc-status.
    const s = connectPlain();
    const msg = ser({ text: 'fail' });
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
    const r = await h2(
      s,
      { ':method': 'POST', ':path': '/pt.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' },
      framed,
    );
    assert.equal(r.flags & http2.constants.NGHTTP2_FLAG_END_STREAM, http2.constants.NGHTTP2_FLAG_END_STREAM);
    assert.equal(r.headers['grpc-status'], String(grpc.status.INVALID_ARGUMENT));
    assert.equal(r.headers['grpc-message'], 'bad%20input'); // percent-encoded on the wire, as gRPC does
    assert.equal(r.trailers, undefined);
  });

  test('server streaming, client streaming and bidi streaming', async () => {
    const server = await collect(
      client.makeServerStreamRequest('/pt.Echo/ServerStream', ser, de, { n: 5 }, new grpc.Metadata(), {}),
    );
    assert.deepEqual(
      server.map((m) => m.n),
      [0, 1, 2, 3, 4],
    );

    const sum = await new Promise<Msg>((resolve, reject) => {
      const call = client.makeClientStreamRequest('/pt.Echo/ClientStream', ser, de, (err, v) =>
        err ? reject(err) : resolve(v!),
      );
      for (let i = 1; i <= 10; i++) call.write({ n: i });
      call.end();
    });
    assert.equal(sum.n, 55);

    const bidi = client.makeBidiStreamRequest('/pt.Echo/Bidi', ser, de);
    const replies: string[] = [];
    bidi.on('data', (m: Msg) => {
      replies.push(m.text ?? '');
      if (replies.length < 3) bidi.write({ text: `msg${replies.length}` });
      else bidi.end();
    });
    bidi.write({ text: 'msg0' });
    await once(bidi, 'status');
    assert.deepEqual(replies, ['MSG0', 'MSG1', 'MSG2']);
  });

  test('a cancelled call reaches the server as cancelled', async () => {
    grpcState.cancelled = false;
    const call = client.makeServerStreamRequest('/pt.Echo/ServerStream', ser, de, { hang: true });
    call.on('error', () => {});
    await once(call, 'data');
    call.cancel();
    await waitFor(() => grpcState.cancelled, { what: 'the server to see the cancellation' });
  });
});

describe('HTTP/2 upstream: bodies, trailers and resets', () => {
  test('a streamed body goes both ways with trailers; te: trailers passes', async () => {
    const s = connectPlain();
    const r = await h2(s, { ':method': 'POST', ':path': '/raw/echo', te: 'trailers' }, body(32));
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['x-seen-te'], 'trailers');
    assert.equal(r.body.length, 32 * 65536);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), sha(32));
    assert.equal(r.trailers?.['x-done'], 'yes');
  });

  test('an HTTP/2 upstream over TLS, verified against its CA', async () => {
    const s = connectPlain();
    const r = await h2(s, { ':path': '/secure/x' });
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body.toString(), `https 127.0.0.1:${plainPort}`);
  });

  test('an upstream reset before the response head is a 502', async () => {
    const s = connectPlain();
    const r = await h2(s, { ':path': '/raw/reset-before' });
    assert.equal(r.headers[':status'], 502);
  });

  test('an upstream reset mid-response resets the client stream with the same code', async () => {
    const s = connectPlain();
    const req = s.request({ ':path': '/raw/reset-after' });
    req.on('error', () => {});
    let ended = false;
    req.on('end', () => (ended = true));
    const closed = new Promise((resolve) => req.on('close', resolve));
    await once(req, 'data');
    req.resume();
    // A write in flight, so Node sends no END_STREAM before the reset.
    const upstream = rawOpen.get('/raw/reset-after')!;
    upstream.write(Buffer.alloc(0));
    upstream.close(NGHTTP2_ENHANCE_YOUR_CALM);
    await closed;
    assert.equal(req.rstCode, NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(ended, false);
  });

  test('a client reset reaches the upstream as CANCEL', async () => {
    const s = connectPlain();
    // The request body is still open, as in a bidi gRPC call.
    const req = s.request({ ':method': 'POST', ':path': '/raw/hang' });
    req.on('error', () => {});
    req.write('x');
    await once(req, 'data');
    req.close(http2.constants.NGHTTP2_CANCEL);
    const code = await waitFor(() => rawClosed.get('/raw/hang'), { what: 'the upstream stream to close' });
    assert.equal(code, http2.constants.NGHTTP2_CANCEL);
  });
});

describe('HTTP/2 floods and limits', () => {
  test('maxConcurrentStreams is advertised in SETTINGS', async () => {
    const s = connectPlain();
    const [settings] = (await once(s, 'remoteSettings')) as [http2.Settings];
    assert.equal(settings.maxConcurrentStreams, 50);
    assert.equal(settings.maxHeaderListSize, 16 * 1024);
  });

  test('maxConcurrentStreams is enforced: the stream beyond it is refused', async () => {
    const { sock, seen } = rawClient(plainPort);
    await once(sock, 'connect');
    sock.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0))]));
    const block = requestBlock(`127.0.0.1:${plainPort}`, '/slow');
    const frames: Buffer[] = [];
    // 51 requests whose bodies never end (END_HEADERS only): they stay open.
    for (let i = 0, id = 1; i < 51; i++, id += 2) frames.push(frame(1, 0x4, id, block));
    sock.write(Buffer.concat(frames));
    await waitFor(() => seen.resets.length > 0, { what: 'a stream to be refused' });
    assert.deepEqual(seen.resets, [http2.constants.NGHTTP2_REFUSED_STREAM]);
    assert.equal(await gauge(mainMetrics, 'pillion_proxy_active_requests', 'plain'), 50);
    // Regression: the listener keeps connections half-open; a session whose client has gone must
    // still end, with its streams.
    sock.destroy();
    await waitFor(async () => (await gauge(mainMetrics, 'pillion_proxy_active_requests', 'plain')) === 0, {
      what: 'the streams of the closed connection to end',
    });
  });

  test('Rapid Reset: a client opening and resetting streams gets GOAWAY and is closed; others are served', async () => {
    const { sock, seen } = rawClient(plainPort);
    await once(sock, 'connect');
    sock.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0))]));
    const block = requestBlock(`127.0.0.1:${plainPort}`);
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
    let id = 1;
    for (let batch = 0; batch < 40 && !seen.closed; batch++) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 10; i++, id += 2) {
        frames.push(frame(1, 0x5, id, block), frame(3, 0, id, cancel));
      }
      sock.write(Buffer.concat(frames));
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => seen.closed, { what: 'the flooding connection to be closed' });
    assert.equal(seen.goaway, NGHTTP2_ENHANCE_YOUR_CALM);

    const s = connectPlain();
    const r = await h2(s, { ':path': '/hello' });
    assert.equal(r.headers[':status'], 200);
  });

  test('CONTINUATION flood: an endless header block closes the connection early', async () => {
    const { sock, seen } = rawClient(plainPort);
    await once(sock, 'connect');
    sock.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0))]));
    sock.write(frame(1, 0x0, 1, requestBlock(`127.0.0.1:${plainPort}`))); // no END_HEADERS
    // Literal header x-a: <1000 bytes>, again and again, never ending the block.
    const lit = Buffer.concat([
      Buffer.from([0x00, 0x03]),
      Buffer.from('x-a'),
      Buffer.from([0x7f, 0xe9, 0x06]), // value length 1000 (7-bit prefix integer)
      Buffer.alloc(1000, 0x61),
    ]);
    let sent = 0;
    while (!seen.closed && sent < 4_000_000) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 20; i++) frames.push(frame(9, 0, 1, lit));
      sent += 20 * lit.length;
      if (!sock.write(Buffer.concat(frames))) await Promise.race([once(sock, 'drain'), once(sock, 'close')]);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => seen.closed, { what: 'the connection to be closed' });
    assert.ok(sent < 4_000_000, `closed only after ${sent} bytes`);
    const s = connectPlain();
    assert.equal((await h2(s, { ':path': '/hello' })).headers[':status'], 200);
  });
});

async function gauge(registry: Registry, name: string, listener: string): Promise<number | undefined> {
  const family = registry.getSingleMetric(name) as unknown as {
    get(): Promise<{ values: { labels: Record<string, string>; value: number }[] }>;
  };
  return (await family.get()).values.find((v) => v.labels.listener === listener)?.value;
}

describe('session lifecycle', () => {
  test('an idle session is closed with GOAWAY (NO_ERROR) after timeouts.idle', async () => {
    const d = deps(new HealthSignal(true));
    const m = new ProxyModule(
      section({ timeouts: { idle: '150ms' } }, [{ name: 'idle', address: '127.0.0.1:0' }]),
      inboundSettings,
      d,
    );
    await m.start();
    cleanups.push(() => m.stop());
    const s = connectPlain(m.addresses().get('idle')!.port);
    const goaway = once(s, 'goaway') as Promise<[number]>;
    assert.equal((await h2(s, { ':path': '/hello' })).headers[':status'], 200);
    assert.equal(await gauge(d.metrics, 'pillion_proxy_active_connections', 'idle'), 1);
    const [code] = await goaway;
    assert.equal(code, NGHTTP2_NO_ERROR);
    await waitFor(() => s.closed || s.destroyed, { what: 'the idle session to close' });
    await waitFor(async () => (await gauge(d.metrics, 'pillion_proxy_active_connections', 'idle')) === 0);
    assert.equal(await gauge(d.metrics, 'pillion_proxy_active_requests', 'idle'), 0);
  });

  test('drain: the in-flight gRPC stream completes after GOAWAY; new connections are refused', async () => {
    const d = deps(new HealthSignal(true));
    const m = new ProxyModule(section({}, [{ name: 'plain', address: '127.0.0.1:0' }]), inboundSettings, d);
    await m.start();
    cleanups.push(() => m.stop());
    const port = m.addresses().get('plain')!.port;

    grpcState.held = new Promise((resolve) => (grpcState.release = () => resolve()));
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = client.makeServerStreamRequest('/pt.Echo/ServerStream', ser, de, { n: 4, hold: true });
    const got: number[] = [];
    call.on('data', (msg: Msg) => got.push(msg.n!));
    const status = once(call, 'status') as Promise<[grpc.StatusObject]>;
    await waitFor(() => got.length === 1, { what: 'the first streamed message' });

    const watcher = connectPlain(port);
    await once(watcher, 'remoteSettings');
    const goaway = once(watcher, 'goaway') as Promise<[number]>;

    // A deadline no test run reaches: drain must end because the sessions closed.
    const drained = m.drain(Date.now() + 600_000);
    const [code] = await goaway;
    assert.equal(code, NGHTTP2_NO_ERROR);
    await assert.rejects(
      new Promise((resolve, reject) =>
        net.connect(port, '127.0.0.1', () => resolve(undefined)).on('error', reject),
      ),
      /ECONNREFUSED/,
    );

    grpcState.release();
    const [st] = await status;
    assert.equal(st.code, grpc.status.OK);
    assert.deepEqual(got, [0, 1, 2, 3]);
    await drained;
    assert.equal(await gauge(d.metrics, 'pillion_proxy_active_connections', 'plain'), 0);
    assert.equal(await gauge(d.metrics, 'pillion_proxy_active_requests', 'plain'), 0);
  });
});

describe('reload', () => {
  /** One listener; /up goes to the upstream `up` (when there is one), the rest to the app. */
  function reloadSection(
    upstreams: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ): InboundSection {
    const up = 'up' in upstreams ? [{ name: 'up', match: { prefix: '/up' }, upstream: 'up' }] : [];
    return {
      inbound: inboundSchema.parse({
        listeners: [{ name: 'plain', address: '127.0.0.1:0' }],
        routes: [...up, { name: 'app' }],
        upstreams,
        ...extra,
      }),
      app: appSchema.parse({ host: '127.0.0.1', port: appPort }),
    };
  }

  async function startModule(sec: InboundSection) {
    const d = deps(new HealthSignal(true));
    const m = new ProxyModule(sec, inboundSettings, d);
    await m.start();
    cleanups.push(() => m.stop());
    return { m, metrics: d.metrics, port: m.addresses().get('plain')!.port };
  }

  /** Fails instead of hanging when the promise does not settle in time. */
  async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    });
    try {
      return await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  test('reload bug: HTTP/2 upstream sessions were dropped by every reload; kept if unchanged, closed if changed', async () => {
    const up = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    let made = 0;
    let closed = 0;
    up.on('session', (ss) => {
      made++;
      sessions.add(ss);
      ss.on('close', () => closed++);
    });
    up.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    up.listen(0, '127.0.0.1');
    await once(up, 'listening');
    const upPort = (up.address() as net.AddressInfo).port;
    cleanups.push(() => {
      for (const ss of sessions) ss.destroy();
      up.close();
    });
    const ups = (maxIdle: number) => ({
      up: { endpoints: [`127.0.0.1:${upPort}`], protocol: 'h2', pool: { maxIdle } },
    });
    const { m, port } = await startModule(reloadSection(ups(64)));
    const ask = async () => {
      // A new client connection each time: a reload sends GOAWAY to the ones open.
      const c = connectPlain(port);
      const r = await h2(c, { ':path': '/up/x' });
      c.close();
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.body.toString(), 'ok');
    };
    await ask();
    assert.equal(made, 1);
    assert.equal(await m.reload(reloadSection(ups(64))), 'applied');
    await ask();
    assert.equal(made, 1, 'the unchanged upstream kept its session');
    assert.equal(await m.reload(reloadSection(ups(32))), 'applied');
    await waitFor(() => closed === 1, { what: 'the replaced upstream session to close' });
    await ask();
    assert.equal(made, 2);
  });

  test('reload bug: a stream waiting for a pooled HTTP/1.1 connection hung when its upstream was replaced', async () => {
    const held: (() => void)[] = [];
    const b = http.createServer((req, res) => {
      if (req.url === '/up/held') held.push(() => res.end('late'));
      else res.end('quick');
    });
    b.listen(0, '127.0.0.1');
    await once(b, 'listening');
    const bPort = (b.address() as net.AddressInfo).port;
    cleanups.push(() => {
      b.closeAllConnections();
      b.close();
    });
    const ups = (maxIdle: number) => ({
      up: { endpoints: [`127.0.0.1:${bPort}`], pool: { maxConnections: 1, maxIdle } },
    });
    const { m, metrics, port } = await startModule(reloadSection(ups(64)));
    const c = connectPlain(port);
    const first = h2(c, { ':path': '/up/held' });
    await waitFor(() => held.length === 1, { what: 'the first stream to hold the only connection' });
    const second = h2(c, { ':path': '/up/waiting' });
    await waitFor(async () => (await gauge(metrics, 'pillion_proxy_active_requests', 'plain')) === 2, {
      what: 'the second stream to wait for a connection',
    });
    assert.equal(await m.reload(reloadSection(ups(32))), 'applied');
    const r = await within(second, 3000, 'the waiting stream to be answered');
    assert.equal(r.headers[':status'], 503);
    held[0]!();
    const r1 = await first;
    assert.equal(r1.headers[':status'], 200);
    assert.equal(r1.body.toString(), 'late');
  });

  test('reload bug: sessions of a replaced HTTP/2 handler were forgotten by drain and stop', async () => {
    // No response timeout: the stream to /slow stays open until the proxy ends it.
    const { m, metrics, port } = await startModule(
      reloadSection({}, { timeouts: { upstreamResponse: '0s' } }),
    );
    const c = connectPlain(port);
    const goaway = once(c, 'goaway');
    const req = c.request({ ':path': '/slow' });
    req.on('error', () => {});
    await waitFor(async () => (await gauge(metrics, 'pillion_proxy_active_requests', 'plain')) === 1, {
      what: 'the stream to reach the app',
    });
    assert.equal(await m.reload(reloadSection({}, { timeouts: { upstreamResponse: '0s' } })), 'applied');
    await goaway;
    assert.equal(c.destroyed, false);
    // The old session is still open, so drain waits for it until the deadline.
    const t0 = Date.now();
    await m.drain(Date.now() + 300);
    const took = Date.now() - t0;
    assert.ok(took >= 250, `drain returned after ${took} ms with a session open`);
    const closed = once(c, 'close');
    await m.stop();
    await within(closed, 3000, "stop to close the replaced handler's session");
  });
});

describe('TrailerChunkedReader', () => {
  test('finds the trailers however the body is split', () => {
    const wire = Buffer.from('5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nx-one: 1\r\nx-two:  two \r\n\r\n');
    for (const step of [wire.length, 1, 2, 3, 7]) {
      const payload: Buffer[] = [];
      const r = new TrailerChunkedReader(1024, (b, s, e) => payload.push(Buffer.from(b.subarray(s, e))));
      for (let p = 0; p < wire.length; p += step) {
        const end = Math.min(wire.length, p + step);
        assert.equal(r.feed(wire, p, end), end);
      }
      assert.ok(r.done);
      assert.equal(Buffer.concat(payload).toString(), 'helloabc');
      assert.deepEqual(r.trailers(), { lower: ['x-one', 'x-two'], values: ['1', 'two'] }, `step ${step}`);
    }
    const none = new TrailerChunkedReader(1024, () => {});
    const plain = Buffer.from('2\r\nhi\r\n0\r\n\r\n');
    assert.equal(none.feed(plain, 0, plain.length), plain.length);
    assert.equal(none.trailers(), undefined);
  });
});
