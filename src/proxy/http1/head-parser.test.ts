import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  HeadError,
  type HeadLimits,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
} from './head-parser.js';

const LIMITS: HeadLimits = { maxHeadSize: 8192, maxHeaders: 50 };

function parse(text: string, limits = LIMITS): RequestHead | HeadError | undefined {
  const buf = Buffer.from(text, 'latin1');
  return parseRequestHead(buf, 0, buf.length, limits);
}

function ok(text: string, limits = LIMITS): RequestHead {
  const r = parse(text, limits);
  assert.ok(r !== undefined && !(r instanceof HeadError), `expected a head, got ${JSON.stringify(r)}`);
  return r;
}

function status(text: string, limits = LIMITS): number | 'incomplete' | 'ok' {
  const r = parse(text, limits);
  return r === undefined ? 'incomplete' : r instanceof HeadError ? r.status : 'ok';
}

/**
 * Feeds buf the way a connection does: one piece at a time, each parse on the bytes so far with
 * scanFrom at the old end. Returns the first answer that is not "incomplete".
 */
function parseInPieces(buf: Buffer, cuts: number[], limits = LIMITS): RequestHead | HeadError | undefined {
  let prev = 0;
  for (const cut of [...cuts, buf.length]) {
    if (cut <= prev && cut !== buf.length) continue;
    const r = parseRequestHead(buf.subarray(0, cut), 0, cut, limits, prev);
    if (r !== undefined) return r;
    prev = cut;
  }
  return undefined;
}

test('a simple GET: method, target, version, fields in order, host and keep-alive', () => {
  const text = 'GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-Thing:  v  \r\nx-thing: w\r\n\r\n';
  const h = ok(text);
  assert.equal(h.method, 'GET');
  assert.equal(h.target, '/a/b?x=1');
  assert.equal(h.minor, 1);
  assert.deepEqual(h.names, ['Host', 'X-Thing', 'x-thing']);
  assert.deepEqual(h.lower, ['host', 'x-thing', 'x-thing']);
  assert.deepEqual(h.values, ['example.com:8080', 'v', 'w'], 'OWS around values is trimmed');
  assert.equal(h.host, 'example.com:8080');
  assert.equal(h.contentLength, -1);
  assert.equal(h.chunked, false);
  assert.equal(h.keepAlive, true);
  assert.equal(h.size, text.length);
});

test('size covers exactly the head, so the body that follows is left for the caller', () => {
  const head = 'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n';
  const buf = Buffer.from(`${head}hello`);
  const r = parseRequestHead(buf, 0, buf.length, LIMITS) as RequestHead;
  assert.equal(r.size, head.length);
  assert.equal(r.contentLength, 5);
});

test('a head can start mid-buffer (pipelining), and up to four stray CRLFs before it are skipped', () => {
  const first = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n';
  const buf = Buffer.from(`${first}\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n`);
  const r = parseRequestHead(buf, first.length, buf.length, LIMITS) as RequestHead;
  assert.equal(r.target, '/two');
  assert.equal(r.size, buf.length - first.length);
  assert.equal(status('\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n'), 400);
});

test('HTTP/1.0: Host optional, keep-alive only when asked', () => {
  const h = ok('GET / HTTP/1.0\r\n\r\n');
  assert.equal(h.minor, 0);
  assert.equal(h.keepAlive, false);
  assert.equal(h.host, '');
  assert.equal(ok('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').keepAlive, true);
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n').keepAlive, false);
  assert.deepEqual(ok('GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n').connection, [
    'foo',
    'close',
  ]);
});

test('framing: Content-Length, chunked (any case), Expect and Upgrade are read', () => {
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n').contentLength, 42);
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  7 \r\n\r\n').contentLength, 7);
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n').chunked, true);
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n').chunked, true);
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n').expectContinue, true);
  assert.equal(status('POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n'), 417);
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').upgrade, 'websocket');
});

test('obs-text (0x80-0xFF) is allowed in values and kept byte for byte', () => {
  const h = ok('GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9 \xff\r\n\r\n');
  assert.equal(h.values[1], 'caf\xe9 \xff');
});

test('every known method except CONNECT is accepted', () => {
  for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'M-SEARCH', 'QUERY'])
    assert.equal(ok(`${m} / HTTP/1.1\r\nHost: a\r\n\r\n`).method, m);
});

// Each case: [name, head, status]. Framing and syntax errors are 400; what is merely not offered
// has its own status.
const REJECTED: [string, string, number][] = [
  [
    'CL and TE together',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
    400,
  ],
  [
    'TE before CL',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
    400,
  ],
  ['TE xchunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n', 400],
  ['TE chunked, identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n', 400],
  ['TE gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 400],
  [
    'TE repeated',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
    400,
  ],
  [
    'TE then TE x',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n',
    400,
  ],
  ['TE with VT', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n', 400],
  // llhttp refuses a tab after a framing value, so the proxy must not pass such a message on.
  ['TE with a tab after it', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n', 400],
  ['CL with a tab after it', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\t\r\n\r\n', 400],
  ['CL with a space and a tab after it', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4 \t\r\n\r\n', 400],
  ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
  ['space before colon', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n', 400],
  ['tab before colon', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n', 400],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400],
  ['obs-fold with tab', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n', 400],
  ['space before the first name', 'GET / HTTP/1.1\r\n Host: a\r\n\r\n', 400],
  [
    'CL repeated, same value',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n',
    400,
  ],
  [
    'CL repeated, other value',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    400,
  ],
  ['CL list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n', 400],
  ['CL plus', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n', 400],
  ['CL minus', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400],
  ['CL empty', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n', 400],
  ['CL inner space', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n', 400],
  ['CL hex', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n', 400],
  ['CL 16 digits', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000\r\n\r\n', 400],
  ['bare LF in request line', 'GET / HTTP/1.1\nHost: a\r\n\r\n', 400],
  ['bare LF after a field', 'GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n', 400],
  ['bare CR in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n', 400],
  ['NUL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: b\x00c\r\n\r\n', 400],
  ['0x01 in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: b\x01c\r\n\r\n', 400],
  ['DEL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: b\x7fc\r\n\r\n', 400],
  ['DEL in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX\x7f: b\r\n\r\n', 400],
  ['NUL in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: b\r\n\r\n', 400],
  ['space in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n', 400],
  ['quote in a name', 'GET / HTTP/1.1\r\nHost: a\r\nX"Y: b\r\n\r\n', 400],
  ['empty name', 'GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n', 400],
  ['no colon', 'GET / HTTP/1.1\r\nHost: a\r\nXY\r\n\r\n', 400],
  ['method with a space', 'G ET / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['lowercase method', 'get / HTTP/1.1\r\nHost: a\r\n\r\n', 501],
  ['unknown method', 'FOO / HTTP/1.1\r\nHost: a\r\n\r\n', 501],
  ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 501],
  ['absolute-form', 'GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['authority-form', 'GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['target with a fragment', 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['target with a backslash', 'GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['target with a raw high byte', 'GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['target with a space', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['target with a tab', 'GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505],
  ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
  ['HTTP/0.9', 'GET / HTTP/0.9\r\nHost: a\r\n\r\n', 505],
  ['version with a trailing space', 'GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400],
  ['lowercase version', 'GET / http/1.1\r\nHost: a\r\n\r\n', 400],
  ['no version', 'GET /\r\nHost: a\r\n\r\n', 400],
  ['version 1.10', 'GET / HTTP/1.10\r\nHost: a\r\n\r\n', 400],
  ['Host missing', 'GET / HTTP/1.1\r\nX: a\r\n\r\n', 400],
  ['Host repeated', 'GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n', 400],
  ['Host empty', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', 400],
  ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
  ['Host with a slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 400],
  ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', 400],
  ['Host with two colons', 'GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n', 400],
  ['Host with a non-numeric port', 'GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n', 400],
  ['Host with a 6-digit port', 'GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n', 400],
  ['Host with a percent-escape', 'GET / HTTP/1.1\r\nHost: adm%69n.example\r\n\r\n', 400],
  ['Host with an unclosed IP literal', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 400],
  ['Host with a name in brackets', 'GET / HTTP/1.1\r\nHost: [example.com]\r\n\r\n', 400],
  ['Host with a port only', 'GET / HTTP/1.1\r\nHost: :80\r\n\r\n', 400],
];

test('Host: names, IPv4 and IPv6 literals, with or without a port', () => {
  for (const h of [
    'example.com',
    'Example.COM:8080',
    '127.0.0.1:1',
    '[::1]',
    '[::ffff:1.2.3.4]:443',
    'a_b-c.d',
    'a:',
  ])
    assert.equal(ok(`GET / HTTP/1.1\r\nHost: ${h}\r\n\r\n`).host, h);
});

for (const [name, text, want] of REJECTED) {
  test(`rejected with ${want}: ${name}`, () => {
    assert.equal(status(text), want);
  });
}

test('incomplete heads wait for more, but what is already broken is refused at once', () => {
  assert.equal(status('GET / HTTP/1.1\r\nHost: a\r\n'), 'incomplete');
  assert.equal(status('GET / HTTP/1.1\r\nHost: a\r\n\r'), 'incomplete');
  assert.equal(status(''), 'incomplete');
  assert.equal(status('GET / HTTP/1.1\nHost'), 400, 'bare LF');
  assert.equal(status('GET / HTTP/1.1\r\nHost: a\r\n\n'), 400, 'bare LF as the final empty line');
  assert.equal(status('GET / HTTP/1.1\rX'), 400, 'bare CR');
  assert.equal(status('GET / HT\x00'), 400, 'NUL');
});

test('431: a head over maxHeadSize, whole or still arriving; 431: more fields than maxHeaders', () => {
  const limits = { maxHeadSize: 1024, maxHeaders: 5 };
  const big = `GET / HTTP/1.1\r\nHost: a\r\nX: ${'v'.repeat(1100)}\r\n\r\n`;
  assert.equal(status(big, limits), 431);
  assert.equal(status(big.slice(0, 1030), limits), 431);
  const exact = `GET / HTTP/1.1\r\nHost: a\r\nX: `;
  const fill = 'v'.repeat(1024 - exact.length - 4);
  assert.equal(status(`${exact}${fill}\r\n\r\n`, limits), 'ok', 'exactly maxHeadSize fits');
  assert.equal(status(`${exact}${fill}v\r\n\r\n`, limits), 431);
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
  assert.equal(status(`GET / HTTP/1.1\r\nHost: a\r\n${fields(4)}\r\n`, limits), 'ok');
  assert.equal(status(`GET / HTTP/1.1\r\nHost: a\r\n${fields(5)}\r\n`, limits), 431);
});

test('the end of the head is searched only up to `end`', () => {
  const buf = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  assert.equal(parseRequestHead(buf, 0, buf.length - 1, LIMITS), undefined);
  assert.ok(!(parseRequestHead(buf, 0, buf.length, LIMITS) instanceof HeadError));
});

test('responses: status line, reason, framing', () => {
  const buf = Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc');
  const r = parseResponseHead(buf, 0, buf.length, LIMITS);
  assert.ok(r && !(r instanceof HeadError));
  assert.equal(r.status, 404);
  assert.equal(r.reason, 'Not Found');
  assert.equal(r.contentLength, 3);
  assert.equal(r.size, buf.length - 3);
  const bad = (s: string) => parseResponseHead(Buffer.from(s), 0, s.length, LIMITS) instanceof HeadError;
  assert.ok(bad('HTTP/1.1 20 OK\r\n\r\n'));
  assert.ok(bad('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'));
  assert.ok(bad('HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n'));
  assert.ok(!bad('HTTP/1.1 204\r\n\r\n'));
});

// --- property tests ----------------------------------------------------------------------------

const tokenChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*');
const token = fc.string({ unit: tokenChar, minLength: 1, maxLength: 12 });
const valueChar = fc.constantFrom(...'abcXYZ019 \t;,=/"\'()<>@[]{}?:\xe9\xff');
const fieldValue = fc
  .string({ unit: valueChar, minLength: 0, maxLength: 30 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
const pathChar = fc.constantFrom(..."abcXYZ019-._~!$&'()*+,;=:@/%?");
const target = fc.string({ unit: pathChar, maxLength: 30 }).map((t) => `/${t}`);
const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH');
const field = fc.tuple(
  token.filter((n) => !['host', 'content-length', 'transfer-encoding', 'expect'].includes(n.toLowerCase())),
  fieldValue,
);
const validHead = fc
  .record({
    method,
    target,
    minor: fc.constantFrom(0, 1),
    fields: fc.array(field, { maxLength: 12 }),
    framing: fc.oneof(
      fc.constant(''),
      fc.nat({ max: 10_000 }).map((n) => `Content-Length: ${n}\r\n`),
      fc.constant('Transfer-Encoding: chunked\r\n'),
    ),
    hostAt: fc.nat(),
  })
  .map(({ method, target, minor, fields, framing, hostAt }) => {
    const lines = fields.map(([n, v]) => `${n}: ${v}\r\n`);
    lines.splice(hostAt % (lines.length + 1), 0, 'Host: example.com\r\n');
    const f = minor === 0 && framing.startsWith('Transfer') ? '' : framing;
    return `${method} ${target} HTTP/1.${minor}\r\n${lines.join('')}${f}\r\n`;
  });

const cutsFor = (len: number) =>
  fc
    .uniqueArray(fc.integer({ min: 0, max: Math.max(0, len - 1) }), { maxLength: 8 })
    .map((a) => a.sort((x, y) => x - y));

test('property: valid heads parse, and every split gives the same head as the whole', () => {
  fc.assert(
    fc.property(validHead, (text) => {
      const buf = Buffer.from(text, 'latin1');
      const whole = parseRequestHead(buf, 0, buf.length, LIMITS);
      assert.ok(whole && !(whole instanceof HeadError), `${JSON.stringify(text)}: ${JSON.stringify(whole)}`);
      assert.equal(whole.size, buf.length);
      // Cut at every byte position.
      for (let i = 1; i < buf.length; i++)
        assert.deepEqual(parseInPieces(buf, [i]), whole, `split at ${i} of ${JSON.stringify(text)}`);
      // And byte by byte, the way a slow client sends it.
      assert.deepEqual(
        parseInPieces(
          buf,
          Array.from({ length: buf.length }, (_, i) => i + 1),
        ),
        whole,
      );
    }),
    { numRuns: 200 },
  );
});

const mutated = validHead.chain((text) =>
  fc
    .array(
      fc.record({
        at: fc.nat({ max: text.length }),
        del: fc.nat({ max: 2 }),
        ins: fc.string({
          unit: fc.constantFrom('\r', '\n', ' ', '\t', ':', '\x00', '\x7f', 'a', ','),
          maxLength: 2,
        }),
      }),
      { minLength: 1, maxLength: 3 },
    )
    .map((muts) => {
      let t = text;
      for (const m of muts) t = t.slice(0, m.at) + m.ins + t.slice(m.at + m.del);
      return t;
    }),
);

test('property: any head, split anywhere, gets the same kind of answer as the whole', () => {
  fc.assert(
    fc.property(
      mutated.chain((t) => fc.tuple(fc.constant(t), cutsFor(t.length))),
      ([text, cuts]) => {
        const buf = Buffer.from(text, 'latin1');
        const whole = parseRequestHead(buf, 0, buf.length, LIMITS);
        const pieces = parseInPieces(buf, cuts);
        if (whole instanceof HeadError) assert.ok(pieces instanceof HeadError, JSON.stringify(text));
        else assert.deepEqual(pieces, whole, JSON.stringify(text));
      },
    ),
    { numRuns: 2000 },
  );
});

/** A control character other than HTAB. */
const isControl = (ch: string) => {
  const c = ch.charCodeAt(0);
  return (c < 0x20 && c !== 0x09) || c === 0x7f;
};

test('property: an accepted head holds no control bytes, and only token names', () => {
  fc.assert(
    fc.property(mutated, (text) => {
      const r = parse(text);
      if (r === undefined || r instanceof HeadError) return;
      for (const s of [r.method, r.target, ...r.names, ...r.values])
        assert.ok(![...s].some(isControl), `${JSON.stringify(s)} from ${JSON.stringify(text)}`);
      for (const n of r.names) assert.ok(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n));
    }),
    { numRuns: 2000 },
  );
});

test('names and values seen before are reused only when every byte matches', () => {
  // "Aa" and "BB" hash alike; so do "AaAa", "AaBB" and "BBBB". Each must come back as sent.
  const first = ok('GET / HTTP/1.1\r\nHost: a\r\nAa: AaAa\r\nX-Long: ' + 'v'.repeat(300) + '\r\n\r\n');
  const second = ok('GET / HTTP/1.1\r\nHost: a\r\nBB: BBBB\r\nx-long: ' + 'w'.repeat(300) + '\r\n\r\n');
  const third = ok('GET / HTTP/1.1\r\nHost: a\r\nAa: AaBB\r\nX-LONG: v\r\n\r\n');
  assert.deepEqual(
    [first.names, first.lower, first.values.slice(0, 2)],
    [
      ['Host', 'Aa', 'X-Long'],
      ['host', 'aa', 'x-long'],
      ['a', 'AaAa'],
    ],
  );
  assert.equal(first.values[2], 'v'.repeat(300));
  assert.deepEqual(
    [second.names, second.lower, second.values.slice(0, 2)],
    [
      ['Host', 'BB', 'x-long'],
      ['host', 'bb', 'x-long'],
      ['a', 'BBBB'],
    ],
  );
  assert.equal(second.values[2], 'w'.repeat(300));
  assert.deepEqual(
    [third.names, third.lower, third.values],
    [
      ['Host', 'Aa', 'X-LONG'],
      ['host', 'aa', 'x-long'],
      ['a', 'AaBB', 'v'],
    ],
  );
});

test('repeated parsing of random field lines gives back exactly the bytes sent', () => {
  const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/);
  const value = fc.stringMatching(/^[!-~]([ -~]{0,20}[!-~])?$/);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('Aa', 'BB', 'aA', 'X-A'), value), { maxLength: 4 }),
      fc.array(fc.tuple(token, value), { maxLength: 6 }),
      (colliding, fields) => {
        const all = [...colliding, ...fields].filter(
          ([n]) => !/^(host|content-length|transfer-encoding|connection|upgrade|expect)$/i.test(n),
        );
        const text =
          'GET / HTTP/1.1\r\nHost: a\r\n' + all.map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n';
        for (let round = 0; round < 2; round++) {
          const head = ok(text);
          assert.deepEqual(
            head.names.slice(1),
            all.map(([n]) => n),
          );
          assert.deepEqual(
            head.lower.slice(1),
            all.map(([n]) => n.toLowerCase()),
          );
          assert.deepEqual(
            head.values.slice(1),
            all.map(([, v]) => v),
          );
        }
      },
    ),
    { numRuns: 300 },
  );
});
