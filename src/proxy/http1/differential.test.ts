// Differential test of the request parser against llhttp (Node's own, default strict settings).
// Generated requests, valid and mutated, go over raw TCP both to a recording node:http server and
// through the proxy to an identical recording server. The proxy may refuse more than llhttp does
// (it is stricter by design; those cases are counted and printed), but it must never forward
// what llhttp refuses, and what it forwards must be what llhttp read: the same method, target
// (after the proxy's path normalization), fields (less those the proxy owns), body and trailers.
//
// Every case ends with the same padding: an empty line, a long run of 'x' and another empty line.
// Whatever state a mutation left the two parsers in, the padding either completes what they wait
// for or is itself refused, so both close the connection without a timeout. It is part of the
// input both sides see, so it does not change what is compared.

import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { normalizeTarget, PathError } from '../path.js';
import { listen, RawClient, startProxy, type TestProxy } from './wire-test-support.js';

const PADDING = `\r\n\r\n${'x'.repeat(6000)}\r\n\r\n`;
const RUNS = 1000;

interface Seen {
  method: string;
  url: string;
  /** "1.0" or "1.1"; not compared (the proxy always forwards HTTP/1.1). */
  version: string;
  /** [name, value] pairs as llhttp read them. */
  fields: [string, string][];
  body: Buffer;
  trailers: [string, string][];
}

/** A node:http server that records every request it completes and every parse error. */
class Recorder {
  server: http.Server;
  port = 0;
  seen: Seen[] = [];
  /** Parse errors: code and the stream offset where llhttp stopped. */
  errors: { code: string; offset: number }[] = [];
  /** Requests whose head arrived but whose body never completed. */
  aborted = 0;
  #open = 0;

  constructor() {
    this.server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      this.#open++;
      const parts: Buffer[] = [];
      let ended = false;
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        ended = true;
        this.seen.push({
          method: req.method!,
          url: req.url!,
          version: req.httpVersion,
          fields: pairs(req.rawHeaders),
          body: Buffer.concat(parts),
          trailers: pairs(req.rawTrailers),
        });
        res.writeHead(200, { 'content-length': 0 });
        res.end();
      });
      req.on('close', () => {
        this.#open--;
        if (!ended) this.aborted++;
      });
    });
    this.server.on(
      'clientError',
      (err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }, socket: net.Socket) => {
        const offset = socket.bytesRead - (err.rawPacket?.length ?? 0) + (err.bytesParsed ?? 0);
        this.errors.push({ code: err.code ?? String(err), offset });
        socket.destroy();
      },
    );
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  get open(): number {
    return this.#open;
  }

  reset(): void {
    this.seen = [];
    this.errors = [];
    this.aborted = 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

// --- generators -----------------------------------------------------------------------------------

const TCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
/** Fields the proxy owns or rewrites; generated only by mutations. */
const OWNED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'upgrade',
  'expect',
  'trailer',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
]);

const hex = (n: number) => n.toString(16);
const escape = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.boolean())
  .map(([c, upper]) => `%${(upper ? hex(c).toUpperCase() : hex(c)).padStart(2, '0')}`);
const pathChar = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(..."abcxyzABC019-._~!$&'()*+,;=:@") },
  { weight: 2, arbitrary: escape },
  { weight: 1, arbitrary: fc.constantFrom('%2e', '%2E', '%2f', '%5c', '%61', '%7E') },
);
const segment = fc.oneof(
  { weight: 8, arbitrary: fc.array(pathChar, { maxLength: 6 }).map((a) => a.join('')) },
  { weight: 1, arbitrary: fc.constantFrom('.', '..', '', '%2e%2e') },
);
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.oneof(fc.constantFrom(..."abc=&/?:@!$'()*+,;-._~"), escape), { maxLength: 10 })
    .map((a) => `?${a.join('')}`),
);
const target = fc
  .tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), query)
  .map(([segs, q]) => `/${segs.join('/')}${q}`);

const fieldName = fc
  .string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 10 })
  .filter((n) => !OWNED.has(n.toLowerCase()));
const valueChar = fc.oneof(
  { weight: 20, arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 3, arbitrary: fc.constantFrom(' ', '\t') },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
);
const fieldValue = fc
  .array(valueChar, { maxLength: 16 })
  .map((a) => a.join('').replace(/^[ \t]+|[ \t]+$/g, ''));
const field = fc.tuple(
  fc.oneof(
    { weight: 4, arbitrary: fieldName },
    { weight: 1, arbitrary: fc.constantFrom('User-Agent', 'accept', 'X-Api-Key') },
  ),
  fieldValue,
);
const hostValue = fc.constantFrom('example.com', 'Example.COM:8080', '127.0.0.1', '[::1]:80', 'a_b-c.d');
const bodyBytes = fc
  .array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 })
  .map((a) => String.fromCharCode(...a));
const extension = fc.constantFrom('', '', ';a', ';name=value', ';q="x y;\\"z"', ';a=1;b', ';A-B=C');
const trailer = fc.tuple(fieldName, fieldValue).map(([n, v]) => `${n}: ${v}\r\n`);

const chunked = fc
  .record({
    data: bodyBytes,
    cuts: fc.array(fc.nat({ max: 40 }), { maxLength: 4 }),
    exts: fc.array(extension, { minLength: 6, maxLength: 6 }),
    upper: fc.boolean(),
    zeros: fc.nat({ max: 2 }),
    trailers: fc.array(trailer, { maxLength: 2 }),
  })
  .map(({ data, cuts, exts, upper, zeros, trailers }) => {
    const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
    let out = '';
    let prev = 0;
    let i = 0;
    for (const p of [...points, data.length]) {
      if (p === prev) continue;
      const size = hex(p - prev);
      out += `${'0'.repeat(zeros)}${upper ? size.toUpperCase() : size}${exts[i++ % 5]}\r\n${data.slice(prev, p)}\r\n`;
      prev = p;
    }
    return `${out}0${exts[5]}\r\n${trailers.join('')}\r\n`;
  });

const request = fc
  .record({
    method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
    target,
    minor: fc.constantFrom(1, 1, 1, 0),
    host: fc.option(hostValue, { freq: 8 }),
    hostAt: fc.nat(),
    fields: fc.array(field, { maxLength: 5 }),
    framing: fc.oneof(
      fc.constant({ kind: 'none' as const, body: '' }),
      bodyBytes.map((body) => ({ kind: 'length' as const, body })),
      chunked.map((body) => ({ kind: 'chunked' as const, body })),
    ),
    teSpelling: fc.constantFrom('chunked', 'Chunked', 'CHUNKED'),
    clSpelling: fc.constantFrom('', '0', ' '),
    connection: fc.constantFrom('', '', '', '', 'keep-alive', 'close', 'X-Hop'),
  })
  .map((r) => {
    const lines = r.fields.map(([n, v]) => `${n}: ${v}\r\n`);
    if (r.host !== null) lines.splice(r.hostAt % (lines.length + 1), 0, `Host: ${r.host}\r\n`);
    let framing = r.framing;
    // HTTP/1.0 and chunked is refused by the proxy by design; keep valid cases valid for both.
    if (r.minor === 0 && framing.kind === 'chunked') framing = { kind: 'length', body: 'abc' };
    if (framing.kind === 'length')
      lines.push(
        `Content-Length:${r.clSpelling === ' ' ? ' ' : ''}${r.clSpelling === '0' ? '0' : ''}${framing.body.length}\r\n`,
      );
    if (framing.kind === 'chunked') lines.push(`Transfer-Encoding: ${r.teSpelling}\r\n`);
    if (r.connection !== '') lines.push(`Connection: ${r.connection}\r\n`);
    if (r.connection === 'X-Hop') lines.push('X-Hop: dropped by the proxy\r\n');
    return `${r.method} ${r.target} HTTP/1.${r.minor}\r\n${lines.join('')}\r\n${framing.body}`;
  });

const INSERTS = [
  '\r',
  '\n',
  '\r\n',
  ' ',
  '\t',
  ':',
  ',',
  ';',
  '0',
  '1',
  'a',
  'f',
  '\x00',
  '\x0b',
  '\x7f',
  '\x80',
  '\xff',
  '"',
  '\\',
  '/',
  '%',
  '#',
  '?',
  'x',
];
const FRAMING_FIELDS = [
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Content-Length: 5\r\nContent-Length: 5\r\n',
  'Content-Length: +5\r\n',
  'Content-Length: 5,5\r\n',
  'Content-Length: -1\r\n',
  'Content-Length : 3\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: identity\r\n',
  'Transfer-Encoding: chunked, identity\r\n',
  'Transfer-Encoding: xchunked\r\n',
  'Transfer-Encoding:\tchunked\r\n',
  'Transfer-Encoding : chunked\r\n',
  'Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n',
  ' Transfer-Encoding: chunked\r\n',
  'Host: other.example\r\n',
  'Expect: 100-continue\r\n',
];
const VERSIONS = ['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1.01', 'HTTP/0.9'];

type Mutation =
  | { op: 'insert'; at: number; s: string }
  | { op: 'delete'; at: number; n: number }
  | { op: 'replace'; at: number; s: string }
  | { op: 'crlf'; k: number; to: string }
  | { op: 'beforeColon'; k: number; s: string }
  | { op: 'framing'; k: number; s: string }
  | { op: 'version'; k: number; s: string }
  | { op: 'case'; at: number; n: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), s: fc.constantFrom(...INSERTS) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('replace' as const), at: fc.nat(), s: fc.constantFrom(...INSERTS) }),
  fc.record({
    op: fc.constant('crlf' as const),
    k: fc.nat(),
    to: fc.constantFrom('\n', '\r', '\r\n ', '\r\n\t', '\n\r'),
  }),
  fc.record({ op: fc.constant('beforeColon' as const), k: fc.nat(), s: fc.constantFrom(' ', '\t', '\x00') }),
  fc.record({ op: fc.constant('framing' as const), k: fc.nat(), s: fc.constantFrom(...FRAMING_FIELDS) }),
  fc.record({ op: fc.constant('version' as const), k: fc.nat(), s: fc.constantFrom(...VERSIONS) }),
  fc.record({ op: fc.constant('case' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 20 }) }),
);

/** Index of the k-th (mod count) match of re in s, or -1. */
function nth(s: string, re: RegExp, k: number): number {
  const at = [...s.matchAll(re)].map((m) => m.index);
  return at.length === 0 ? -1 : at[k % at.length]!;
}

function mutate(s: string, m: Mutation): string {
  switch (m.op) {
    case 'insert': {
      const at = m.at % (s.length + 1);
      return s.slice(0, at) + m.s + s.slice(at);
    }
    case 'delete': {
      const at = m.at % (s.length + 1);
      return s.slice(0, at) + s.slice(at + m.n);
    }
    case 'replace': {
      const at = m.at % (s.length + 1);
      return s.slice(0, at) + m.s + s.slice(at + 1);
    }
    case 'crlf': {
      const at = nth(s, /\r\n/g, m.k);
      return at === -1 ? s : s.slice(0, at) + m.to + s.slice(at + 2);
    }
    case 'beforeColon': {
      const at = nth(s, /\r\n[^\r\n:]+:/g, m.k);
      if (at === -1) return s;
      const colon = s.indexOf(':', at);
      return s.slice(0, colon) + m.s + s.slice(colon);
    }
    case 'framing': {
      const at = nth(s, /HTTP\/1\.[01]\r\n/g, m.k);
      return at === -1 ? s : s.slice(0, at + 10) + m.s + s.slice(at + 10);
    }
    case 'version': {
      const at = nth(s, /HTTP\/1\.[01]\r\n/g, m.k);
      return at === -1 ? s : s.slice(0, at) + m.s + s.slice(at + 8);
    }
    case 'case': {
      const at = m.at % (s.length + 1);
      const part = s.slice(at, at + m.n);
      const flipped = part === part.toUpperCase() ? part.toLowerCase() : part.toUpperCase();
      return s.slice(0, at) + flipped + s.slice(at + m.n);
    }
  }
}

const testCase = fc
  .record({
    requests: fc.array(request, { minLength: 1, maxLength: 3 }),
    mutations: fc.oneof(
      { weight: 2, arbitrary: fc.constant([] as Mutation[]) },
      { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
    ),
  })
  .map(({ requests, mutations }) => {
    let s = requests.join('');
    for (const m of mutations) s = mutate(s, m);
    return { payload: s, mutated: mutations.length > 0 };
  });

// --- comparing -------------------------------------------------------------------------------------

/** Fields the proxy drops or writes itself; both sides are compared without them. */
const NOT_COMPARED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
]);

function comparable(s: Seen, dropHostless: boolean): object {
  const named = new Set<string>();
  for (const [n, v] of s.fields)
    if (n.toLowerCase() === 'connection') for (const t of v.split(',')) named.add(t.trim().toLowerCase());
  const fields = s.fields.filter(([n]) => {
    const l = n.toLowerCase();
    return !NOT_COMPARED.has(l) && !named.has(l) && !(dropHostless && l === 'host');
  });
  return { method: s.method, fields, body: s.body.toString('latin1'), trailers: s.trailers };
}

/** The request asks to close the connection after its response. */
function closes(s: Seen): boolean {
  const tokens = s.fields
    .filter(([n]) => n.toLowerCase() === 'connection')
    .flatMap(([, v]) => v.split(',').map((t) => t.trim().toLowerCase()));
  return s.version === '1.0' ? !tokens.includes('keep-alive') : tokens.includes('close');
}

function statuses(bytes: Buffer): number[] {
  return [...bytes.toString('latin1').matchAll(/(?:^|\n)HTTP\/1\.[01] (\d{3}) /g)]
    .map((m) => Number(m[1]))
    .filter((s) => s >= 200);
}

/** Sends payload on a new connection and returns all that came back until the server closed it. */
async function send(port: number, payload: Buffer, what: string): Promise<Buffer> {
  const client = await RawClient.connect(port);
  const chunks: Buffer[] = [];
  client.socket.on('data', (b: Buffer) => chunks.push(b));
  client.write(payload);
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    client.destroy();
  }, 8000);
  await client.closed();
  clearTimeout(deadline);
  assert.ok(!timedOut, `${what} did not close the connection: ${JSON.stringify(payload.toString('latin1'))}`);
  return Buffer.concat(chunks);
}

/** Waits until the recorder has no request in progress (its close events have run). */
async function settle(r: Recorder): Promise<void> {
  for (let i = 0; i < 200; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (r.open === 0) return;
    if (i > 20) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// --- the test -----------------------------------------------------------------------------------------

let reference: Recorder;
let backend: Recorder;
let proxy: TestProxy;

before(async () => {
  reference = await new Recorder().start();
  backend = await new Recorder().start();
  // Backstops only: the padding ends every case long before these.
  proxy = await startProxy(backend.port, { timeouts: { requestHead: '2s', request: '3s' } });
});

after(async () => {
  await proxy.stop();
  await reference.close();
  await backend.close();
});

test('differential: the proxy never forwards what llhttp refuses, and forwards what llhttp reads', async () => {
  const stats = { cases: 0, mutated: 0, llhttpRejected: 0, forwardedRequests: 0, stricter: 0, cutShort: 0 };
  const stricterExamples = new Map<string, string>();
  await fc.assert(
    fc.asyncProperty(testCase, async ({ payload, mutated }) => {
      stats.cases++;
      if (mutated) stats.mutated++;
      const bytes = Buffer.from(payload + PADDING, 'latin1');

      reference.reset();
      const refOut = await send(reference.port, bytes, 'llhttp');
      await settle(reference);
      const L = reference.seen;
      // llhttp refused something before the padding (a parse error, or an answer of its own such
      // as 400 for a missing Host).
      // HPE_CLOSED_CONNECTION is not a refusal: llhttp reads nothing after a request that closes
      // the connection (HTTP/1.0, Connection: close), and neither does the proxy.
      const llhttpRejected =
        reference.errors.some((e) => e.offset < payload.length && e.code !== 'HPE_CLOSED_CONNECTION') ||
        statuses(refOut).some((s) => s >= 400);
      if (llhttpRejected) stats.llhttpRejected++;

      backend.reset();
      const out = await send(proxy.port, bytes, 'the proxy');
      await settle(backend);
      const P = backend.seen;
      stats.forwardedRequests += P.length;
      const context = () =>
        JSON.stringify({
          payload,
          llhttp: L.map((s) => s.url),
          forwarded: P.map((s) => s.url),
          out: out.toString('latin1').slice(0, 400),
        });

      // What the proxy forwarded, llhttp read too, in the same order and the same way.
      assert.ok(
        P.length <= L.length,
        `forwarded ${P.length} requests, llhttp read ${L.length}: ${context()}`,
      );
      for (let i = 0; i < P.length; i++) {
        const l = L[i]!;
        const p = P[i]!;
        const norm = normalizeTarget(l.url);
        assert.ok(!(norm instanceof PathError), `forwarded a target the proxy refuses: ${context()}`);
        assert.equal(p.url, norm.path + norm.query, `target of request ${i}: ${context()}`);
        const hostless = !l.fields.some(([n]) => n.toLowerCase() === 'host');
        assert.deepEqual(comparable(p, hostless), comparable(l, false), `request ${i}: ${context()}`);
      }
      // The backend never had to refuse anything the proxy sent; a request cut short because the
      // proxy found its body malformed ends in an EOF or a reset, never in a parse error.
      for (const e of backend.errors)
        assert.ok(
          ['HPE_INVALID_EOF_STATE', 'ECONNRESET'].includes(e.code),
          `backend refused what the proxy sent (${e.code}): ${context()}`,
        );
      // A request the proxy cut short after streaming its head (its body broke the framing).
      if (backend.aborted > 0) stats.cutShort++;

      // The client got the backend's 200 for each forwarded request, then at most one answer of
      // the proxy's own, which is an error.
      const st = statuses(out);
      assert.deepEqual(
        st.slice(0, P.length),
        P.map(() => 200),
        context(),
      );
      assert.ok(st.length <= P.length + 1, context());
      if (st.length > P.length) assert.ok(st[P.length]! >= 400, context());
      // And that answer is there: the padding at least is refused, unless the last forwarded
      // request closed the connection before it.
      if (P.length === 0 || !closes(L[P.length - 1]!))
        assert.equal(st.length, P.length + 1, `no answer to what was refused: ${context()}`);

      if (P.length < L.length) {
        stats.stricter++;
        const reason = out.toString('latin1').split('\r\n\r\n').at(-1)!.trim();
        const key = `${st.at(-1)} ${reason}`;
        if (!stricterExamples.has(key)) stricterExamples.set(key, JSON.stringify(payload.slice(0, 160)));
      }
    }),
    { numRuns: RUNS },
  );
  const examples = [...stricterExamples]
    .map(([reason, payload]) => `  ${reason}\n    e.g. ${payload}`)
    .join('\n');
  console.log(
    `differential: ${stats.cases} cases (${stats.mutated} mutated), llhttp refused ${stats.llhttpRejected}, ` +
      `${stats.forwardedRequests} requests forwarded and matched, ${stats.cutShort} cut short mid-body, ` +
      `the proxy stricter than llhttp in ${stats.stricter}:\n${examples}`,
  );
  assert.ok(stats.forwardedRequests > RUNS / 2, 'enough requests got through to compare');
  assert.ok(stats.llhttpRejected > RUNS / 10, 'enough mutations were refused by llhttp');
});
