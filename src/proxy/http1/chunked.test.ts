import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ChunkedReader } from './chunked.js';

interface Result {
  /** Index after the message, or -1. */
  used: number;
  error: string | undefined;
  done: boolean;
  payload: string;
}

/** Feeds text to a fresh reader in the given pieces; stops at the end of the message or an error. */
function read(text: string, cuts: number[] = [], maxTrailer = 1024): Result {
  const buf = Buffer.from(text, 'latin1');
  const parts: Buffer[] = [];
  const r = new ChunkedReader(maxTrailer, (b, s, e) => parts.push(Buffer.from(b.subarray(s, e))));
  let prev = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < buf.length), buf.length]) {
    if (cut <= prev) continue;
    const used = r.feed(buf, prev, cut);
    if (used === -1)
      return { used: -1, error: r.error, done: false, payload: Buffer.concat(parts).toString('latin1') };
    if (r.done)
      return { used, error: undefined, done: true, payload: Buffer.concat(parts).toString('latin1') };
    assert.equal(used, cut, 'an unfinished message uses all it is given');
    prev = cut;
  }
  return {
    used: buf.length,
    error: undefined,
    done: false,
    payload: Buffer.concat(parts).toString('latin1'),
  };
}

function accepted(text: string): Result {
  const r = read(text);
  assert.ok(r.done, `expected a complete body, got ${JSON.stringify(r)} for ${JSON.stringify(text)}`);
  return r;
}

function refused(text: string): string {
  const r = read(text);
  assert.equal(r.used, -1, `expected a refusal for ${JSON.stringify(text)}, got ${JSON.stringify(r)}`);
  return r.error!;
}

test('a body ends after the last chunk and its CRLF; what follows is left over', () => {
  const body = '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n';
  const r = read(`${body}GET / HTTP/1.1\r\n`);
  assert.ok(r.done);
  assert.equal(r.used, body.length);
  assert.equal(r.payload, 'hello world');
});

test('hex sizes in either case, leading zeros up to 12 digits', () => {
  assert.equal(accepted('A\r\n0123456789\r\n0\r\n\r\n').payload, '0123456789');
  assert.equal(accepted('a\r\n0123456789\r\n0\r\n\r\n').payload, '0123456789');
  assert.equal(accepted('00000000000a\r\n0123456789\r\n000\r\n\r\n').payload, '0123456789');
});

test('chunk extensions: token names, token or quoted values', () => {
  accepted('1;a\r\nx\r\n0\r\n\r\n');
  accepted('1;a=b;c=d\r\nx\r\n0;last\r\n\r\n');
  accepted('1;a="b c; \\"d\\""\r\nx\r\n0\r\n\r\n');
  accepted('1;a=""\r\nx\r\n0\r\n\r\n');
  accepted(`1;${'e'.repeat(256)}\r\nx\r\n0\r\n\r\n`);
});

test('trailers are read and may hold any field but framing ones', () => {
  const r = accepted('1\r\nx\r\n0\r\nX-Checksum: abc\r\nother:\r\nobs: caf\xe9\r\n\r\n');
  assert.equal(r.payload, 'x');
});

const REFUSED: [string, string][] = [
  ['size longer than 12 hex digits', '1000000000000\r\n'],
  ['size with leading zeros past 12 digits', '0000000000001\r\nx\r\n0\r\n\r\n'],
  ['size with 0x', '0x5\r\nhello\r\n0\r\n\r\n'],
  ['negative size', '-1\r\nx\r\n0\r\n\r\n'],
  ['size with a leading space', ' 1\r\nx\r\n0\r\n\r\n'],
  ['size with a trailing space', '1 \r\nx\r\n0\r\n\r\n'],
  ['space before the extension', '1 ;a\r\nx\r\n0\r\n\r\n'],
  ['empty size', '\r\nx\r\n0\r\n\r\n'],
  ['size line ends with a bare LF', '1\nx\r\n0\r\n\r\n'],
  ['size line with a bare CR', '1\rx\r\n0\r\n\r\n'],
  ['data longer than its size', '1\r\nxy\r\n0\r\n\r\n'],
  ['data ends with a bare LF', '1\r\nx\n0\r\n\r\n'],
  ['data ends with CR and no LF', '1\r\nx\rz0\r\n\r\n'],
  ['extension too long', `1;${'e'.repeat(257)}\r\nx\r\n0\r\n\r\n`],
  ['empty extension', '1;\r\nx\r\n0\r\n\r\n'],
  ['extension with a space', '1;a b\r\nx\r\n0\r\n\r\n'],
  ['extension with BWS around =', '1;a = b\r\nx\r\n0\r\n\r\n'],
  ['extension with a trailing space', '1;a \r\nx\r\n0\r\n\r\n'],
  ['extension with a control byte', '1;a\x01\r\nx\r\n0\r\n\r\n'],
  ['extension with NUL', '1;a=\x00\r\nx\r\n0\r\n\r\n'],
  ['extension value with a non-token char', '1;a=b"c\r\nx\r\n0\r\n\r\n'],
  ['extension with an unterminated quote', '1;a="b\r\nx\r\n0\r\n\r\n'],
  ['extension with text after the quote', '1;a="b"c\r\nx\r\n0\r\n\r\n'],
  ['extension escape of a control byte', '1;a="\\\x01"\r\nx\r\n0\r\n\r\n'],
  ['extension with a high byte', '1;a="\xe9"\r\nx\r\n0\r\n\r\n'],
  ['extension with a bare LF', '1;a\nx\r\n0\r\n\r\n'],
  ['trailer with a space before the colon', '0\r\nX : y\r\n\r\n'],
  ['trailer without a colon', '0\r\nXY\r\n\r\n'],
  ['trailer obs-fold', '0\r\nX: y\r\n z\r\n\r\n'],
  ['trailer with a bare LF', '0\r\nX: y\nZ: w\r\n\r\n'],
  ['trailer with a bare CR', '0\r\nX: y\rZ: w\r\n\r\n'],
  ['trailer with a control byte', '0\r\nX: y\x01\r\n\r\n'],
  ['trailer Content-Length', '0\r\nContent-Length: 5\r\n\r\n'],
  ['trailer Transfer-Encoding', '0\r\ntransfer-ENCODING: chunked\r\n\r\n'],
  ['final line is a bare LF', '0\r\n\n'],
  ['final CR without LF', '0\r\n\rx'],
];

for (const [name, text] of REFUSED) {
  test(`refused: ${name}`, () => {
    refused(text);
  });
}

test('trailers over the limit are refused', () => {
  assert.equal(read(`0\r\nX: ${'v'.repeat(100)}\r\n\r\n`, [], 50).error, 'trailers too large');
  assert.ok(read(`0\r\nX: ${'v'.repeat(40)}\r\n\r\n`, [], 50).done);
});

test('names close to the framing ones are fine in trailers', () => {
  accepted('0\r\nContent-Lengthx: 5\r\nContent-Lengt: 5\r\nTransfer: x\r\n\r\n');
});

test('a refusal happens at the offending byte: nothing after it is consumed', () => {
  // The refused byte is the 'y' that stands where the CR should be.
  const r = new ChunkedReader(1024);
  const buf = Buffer.from('1\r\nxy\r\n0\r\n\r\n');
  assert.equal(r.feed(buf, 0, 4), 4);
  assert.equal(r.feed(buf, 4, buf.length), -1);
  assert.equal(r.payloadBytes, 1);
});

// --- property tests ----------------------------------------------------------------------------

const extension = fc.oneof(
  fc.constant(''),
  fc.constant(';a'),
  fc.constant(';name=value'),
  fc.constant(';q="quoted \\" ; ="'),
  fc.constant(';a=1;b;c="2"'),
);
const chunkedBody = fc
  .record({
    payload: fc.string({ unit: 'binary-ascii', maxLength: 200 }),
    splits: fc.array(fc.nat(), { maxLength: 6 }),
    exts: fc.array(extension, { minLength: 8, maxLength: 8 }),
    upper: fc.boolean(),
    zeros: fc.nat({ max: 3 }),
    trailers: fc.array(fc.constantFrom('X-A: 1\r\n', 'x-checksum: abc def\r\n', 'T:\r\n'), { maxLength: 3 }),
  })
  .map(({ payload, splits, exts, upper, zeros, trailers }) => {
    const points = [...new Set(splits.map((s) => s % (payload.length + 1)))].sort((a, b) => a - b);
    const pieces: string[] = [];
    let prev = 0;
    for (const p of [...points, payload.length]) {
      if (p > prev) pieces.push(payload.slice(prev, p));
      prev = p;
    }
    let text = '';
    pieces.forEach((piece, i) => {
      let size = piece.length.toString(16);
      if (upper) size = size.toUpperCase();
      text += `${'0'.repeat(zeros)}${size}${exts[i % exts.length]}\r\n${piece}\r\n`;
    });
    text += `0${exts[7]}\r\n${trailers.join('')}\r\n`;
    return { text, payload };
  });

test('property: a valid body gives back its payload, however it is split into reads', () => {
  fc.assert(
    fc.property(
      chunkedBody.chain((b) =>
        fc.tuple(fc.constant(b), fc.uniqueArray(fc.nat({ max: b.text.length }), { maxLength: 10 })),
      ),
      fc.string({ maxLength: 10 }),
      ([{ text, payload }, cuts], after) => {
        const r = read(text + after, cuts);
        assert.ok(r.done, JSON.stringify({ text, cuts, r }));
        assert.equal(r.used, text.length);
        assert.equal(r.payload, payload);
        // Byte by byte, too.
        const one = read(
          text,
          Array.from({ length: text.length }, (_, i) => i + 1),
        );
        assert.ok(one.done);
        assert.equal(one.payload, payload);
      },
    ),
    { numRuns: 300 },
  );
});

test('property: a mutated body gets the same answer whole and in pieces', () => {
  const mutatedBody = chunkedBody.chain(({ text }) =>
    fc
      .record({
        at: fc.nat({ max: text.length }),
        del: fc.nat({ max: 2 }),
        ins: fc.string({
          unit: fc.constantFrom('\r', '\n', ' ', ';', '=', '"', '0', 'f', 'x', ':'),
          maxLength: 2,
        }),
      })
      .map((m) => text.slice(0, m.at) + m.ins + text.slice(m.at + m.del)),
  );
  fc.assert(
    fc.property(
      mutatedBody.chain((t) =>
        fc.tuple(fc.constant(t), fc.uniqueArray(fc.nat({ max: t.length }), { maxLength: 6 })),
      ),
      ([text, cuts]) => {
        const whole = read(text);
        const pieces = read(text, cuts);
        assert.deepEqual(pieces, whole, JSON.stringify({ text, cuts }));
      },
    ),
    { numRuns: 1000 },
  );
});
