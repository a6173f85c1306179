// The request-smuggling corpus: raw requests sent through a real proxy to a raw TCP backend that
// records every byte. What the proxy finds ambiguous must be answered by the proxy, with the
// connection closed, and must not reach the backend at all: alone, pipelined behind a valid
// request, or sent after one on a kept-alive connection. A few accepted requests show that the
// corpus is not satisfied by refusing everything.
//
// Decisions the corpus pins:
// - OWS around a field value is not part of it (RFC 9110 §5.5): "Content-Length:  5 " is 5 and
//   "Transfer-Encoding:\tchunked" is chunked; the proxy forwards both re-serialized.
// - "CHUNKED" is chunked: coding names are case-insensitive.
// - Versions other than HTTP/1.0 and HTTP/1.1 ("HTTP/1.2", "HTTP/2.0") get 505; malformed ones 400.
// - Well-formed methods that are not offered (CONNECT, "get", "FOO") get 501; malformed ones 400.
// - A chunked body whose framing breaks after a valid head: the head may already be upstream (the
//   proxy streams), so the case asserts that the client gets the status, that the connection
//   closes, and that the backend never receives a byte past the point where the framing broke.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawBackend, RawClient, type RawResponse, startProxy, type TestProxy } from './wire-test-support.js';

/** Refused before anything is forwarded, with this status. */
type Refused = number;
/** The head is valid and may be forwarded; the body's framing breaks after `validBody`. */
interface BrokenBody {
  status: 400 | 413;
  validBody: string;
}
/** Accepted: forwarded with this body (chunked bodies are forwarded as they are). */
interface Forwarded {
  body: string;
  /** Lines the forwarded head must hold, lower-case. */
  headHas?: string[];
}
type Expect = Refused | BrokenBody | Forwarded;

const H = 'Host: t.example\r\n';
const big = (n: number) => 'a'.repeat(n);
const manyFields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join('');
const chunk16k = `4000\r\n${big(16384)}\r\n`;
const CHUNKED_BODY = '5;ext=1;q="a b"\r\nhello\r\n6\r\n world\r\n0;last\r\nX-Sum: abc\r\n\r\n';

// name, raw request, expectation. Add a row to add a case.
// prettier-ignore
const CORPUS: [string, string, Expect][] = [
  // --- Content-Length and Transfer-Encoding together ---------------------------------------------
  ['CL.TE', `POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`, 400],
  ['TE.CL', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`, 400],
  ['CL 0 with TE', `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  // --- TE.TE obfuscations --------------------------------------------------------------------------
  ['TE xchunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunked, identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, 400],
  ['TE identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, 400],
  ['TE gzip, chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunked,chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked,chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE empty', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n`, 400],
  ['TE space before colon', `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE tab before colon', `POST / HTTP/1.1\r\n${H}Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE name after a space (obs-fold)', `POST / HTTP/1.1\r\n${H} Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE name after a tab (obs-fold)', `POST / HTTP/1.1\r\n${H}\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE value folded onto the next line', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE name and colon on two lines', `POST / HTTP/1.1\r\n${H}Transfer-Encoding\r\n : chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunked then TE x', `POST / HTTP/1.1\r\n${H}Transfer-encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`, 400],
  ['TE x then TE chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE repeated chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunked + VT', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n`, 400],
  ['TE VT + chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE chunked + NUL', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n`, 400],
  ['TE after a bare-LF line', `POST / HTTP/1.1\r\n${H}X: y\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['TE in HTTP/1.0', `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  // --- Content-Length ---------------------------------------------------------------------------
  ['CL repeated, same value', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, 400],
  ['CL repeated, other value', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, 400],
  ['CL list 1,1', `POST / HTTP/1.1\r\n${H}Content-Length: 1,1\r\n\r\nx`, 400],
  ['CL list 1, 1', `POST / HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\nx`, 400],
  ['CL +5', `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, 400],
  ['CL -1', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400],
  ['CL empty', `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, 400],
  ['CL 5 5', `POST / HTTP/1.1\r\n${H}Content-Length: 5 5\r\n\r\nhello`, 400],
  ['CL hex', `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`, 400],
  ['CL 5.0', `POST / HTTP/1.1\r\n${H}Content-Length: 5.0\r\n\r\nhello`, 400],
  ['CL 16 digits', `POST / HTTP/1.1\r\n${H}Content-Length: 1000000000000000\r\n\r\n`, 400],
  ['CL 20 digits (2^64 wraps to 0)', `POST / HTTP/1.1\r\n${H}Content-Length: 18446744073709551616\r\n\r\n`, 400],
  ['CL 15 digits is over maxBodySize', `POST / HTTP/1.1\r\n${H}Content-Length: 999999999999999\r\n\r\n`, 413],
  ['CL over maxBodySize', `POST / HTTP/1.1\r\n${H}Content-Length: 16385\r\n\r\n`, 413],
  ['CL with VT', `POST / HTTP/1.1\r\n${H}Content-Length: 5\x0b\r\n\r\nhello`, 400],
  ['CL space before colon', `POST / HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`, 400],
  // --- line endings, folding, whitespace, control bytes ------------------------------------------
  ['bare LF ends the request line', `GET / HTTP/1.1\n${H}\r\n`, 400],
  ['bare LF ends a field', `GET / HTTP/1.1\r\nHost: t.example\nX: y\r\n\r\n`, 400],
  ['bare LF as the final empty line', `GET / HTTP/1.1\r\n${H}\n`, 400],
  ['bare LF everywhere', `GET / HTTP/1.1\nHost: t.example\n\n`, 400],
  ['bare CR ends the request line', `GET / HTTP/1.1\r${H}\r\n`, 400],
  ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 400],
  ['bare CR as the final empty line', `GET / HTTP/1.1\r\n${H}\rX`, 400],
  ['obs-fold with a space', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, 400],
  ['obs-fold with a tab', `GET / HTTP/1.1\r\n${H}X: a\r\n\tb\r\n\r\n`, 400],
  ['space before the first field', `GET / HTTP/1.1\r\n ${H}\r\n`, 400],
  ['space before a colon', `GET / HTTP/1.1\r\n${H}X : y\r\n\r\n`, 400],
  ['Host with space before colon', `GET / HTTP/1.1\r\nHost : t.example\r\n\r\n`, 400],
  ['NUL in a name', `GET / HTTP/1.1\r\n${H}X\x00Y: z\r\n\r\n`, 400],
  ['NUL in a value', `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`, 400],
  ['0x01 in a name', `GET / HTTP/1.1\r\n${H}X\x01Y: z\r\n\r\n`, 400],
  ['0x01 in a value', `GET / HTTP/1.1\r\n${H}X: a\x01b\r\n\r\n`, 400],
  ['DEL in a name', `GET / HTTP/1.1\r\n${H}X\x7fY: z\r\n\r\n`, 400],
  ['DEL in a value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, 400],
  ['ESC in a value', `GET / HTTP/1.1\r\n${H}X: a\x1bb\r\n\r\n`, 400],
  ['space in a name', `GET / HTTP/1.1\r\n${H}X Y: z\r\n\r\n`, 400],
  ['quote in a name', `GET / HTTP/1.1\r\n${H}X"Y: z\r\n\r\n`, 400],
  ['slash in a name', `GET / HTTP/1.1\r\n${H}X/Y: z\r\n\r\n`, 400],
  ['high byte in a name', `GET / HTTP/1.1\r\n${H}X\xe9: z\r\n\r\n`, 400],
  ['empty name', `GET / HTTP/1.1\r\n${H}: z\r\n\r\n`, 400],
  ['field without a colon', `GET / HTTP/1.1\r\n${H}XYZ\r\n\r\n`, 400],
  ['NUL in the request line', `GET /\x00 HTTP/1.1\r\n${H}\r\n`, 400],
  // --- methods -------------------------------------------------------------------------------------
  ['method with a space (G ET)', `G ET / HTTP/1.1\r\n${H}\r\n`, 400],
  ['space before the method', ` GET / HTTP/1.1\r\n${H}\r\n`, 400],
  ['tab after the method', `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['two spaces after the method', `GET  / HTTP/1.1\r\n${H}\r\n`, 400],
  ['lowercase method', `get / HTTP/1.1\r\n${H}\r\n`, 501],
  ['unknown method', `FOO / HTTP/1.1\r\n${H}\r\n`, 501],
  ['CONNECT', `CONNECT t.example:443 HTTP/1.1\r\nHost: t.example:443\r\n\r\n`, 501],
  ['method with a control byte', `GE\x01T / HTTP/1.1\r\n${H}\r\n`, 400],
  // --- request targets ---------------------------------------------------------------------------
  ['absolute-form', `GET http://t.example/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form naming another host', `GET http://evil.example/admin HTTP/1.1\r\n${H}\r\n`, 400],
  ['authority-form', `GET t.example:80 HTTP/1.1\r\n${H}\r\n`, 400],
  ['asterisk-form', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, 400],
  ['target with a space', `GET /a b HTTP/1.1\r\n${H}\r\n`, 400],
  ['target with a fragment', `GET /a#b HTTP/1.1\r\n${H}\r\n`, 400],
  ['target with a raw high byte', `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, 400],
  ['target with a backslash', `GET /a\\..\\admin HTTP/1.1\r\n${H}\r\n`, 400],
  ['target not starting with /', `GET a/b HTTP/1.1\r\n${H}\r\n`, 400],
  ['target with a malformed escape', `GET /a%zz HTTP/1.1\r\n${H}\r\n`, 400],
  ['target with a truncated escape', `GET /a% HTTP/1.1\r\n${H}\r\n`, 400],
  ['empty target', `GET  HTTP/1.1\r\n${H}\r\n`, 400],
  // --- versions ----------------------------------------------------------------------------------
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 505],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 505],
  ['HTTP/0.9 with a version', `GET / HTTP/0.9\r\n${H}\r\n`, 505],
  ['version with a trailing space', `GET / HTTP/1.1 \r\n${H}\r\n`, 400],
  ['lowercase version', `GET / http/1.1\r\n${H}\r\n`, 400],
  ['missing version', `GET /\r\n${H}\r\n`, 400],
  ['version 1.1.1', `GET / HTTP/1.1.1\r\n${H}\r\n`, 400],
  ['version 11.1', `GET / HTTP/11.1\r\n${H}\r\n`, 400],
  // --- Host ----------------------------------------------------------------------------------------
  ['Host missing in HTTP/1.1', `GET / HTTP/1.1\r\nX: y\r\n\r\n`, 400],
  ['Host repeated', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400],
  ['Host repeated, other value', `GET / HTTP/1.1\r\n${H}Host: evil.example\r\n\r\n`, 400],
  ['Host empty', `GET / HTTP/1.1\r\nHost:\r\n\r\n`, 400],
  ['Host with a space', `GET / HTTP/1.1\r\nHost: t example\r\n\r\n`, 400],
  ['Host with a slash', `GET / HTTP/1.1\r\nHost: t.example/admin\r\n\r\n`, 400],
  ['Host with userinfo', `GET / HTTP/1.1\r\nHost: user@t.example\r\n\r\n`, 400],
  ['Host with a non-numeric port', `GET / HTTP/1.1\r\nHost: t.example:evil\r\n\r\n`, 400],
  ['Host with a percent-escape', `GET / HTTP/1.1\r\nHost: t.%65xample\r\n\r\n`, 400],
  // --- limits --------------------------------------------------------------------------------------
  ['head larger than maxHeadSize', `GET / HTTP/1.1\r\n${H}X: ${big(9000)}\r\n\r\n`, 431],
  ['head larger than maxHeadSize, no end in sight', `GET / HTTP/1.1\r\n${H}X: ${big(9000)}`, 431],
  ['more fields than maxHeaders', `GET / HTTP/1.1\r\n${H}${manyFields(50)}\r\n`, 431],
  ['Expect other than 100-continue', `GET / HTTP/1.1\r\n${H}Expect: 200-ok\r\n\r\n`, 417],
  // --- chunked framing broken after a valid head ---------------------------------------------------
  ...brokenChunked([
    ['chunk size of 13 hex digits', '0000000000001\r\nx\r\n0\r\n\r\n', '000000000000'],
    ['chunk size past 2^64', '10000000000000000\r\nx\r\n0\r\n\r\n', '100000000000'],
    ['chunk size with 0x', '0x1\r\nx\r\n0\r\n\r\n', '0'],
    ['negative chunk size', '-1\r\nx\r\n0\r\n\r\n', ''],
    ['chunk size after a space', ' 1\r\nx\r\n0\r\n\r\n', ''],
    ['chunk size before a space', '1 \r\nx\r\n0\r\n\r\n', '1'],
    ['chunk size line with a bare LF', '1\nx\r\n0\r\n\r\n', '1'],
    ['chunk extension longer than 256 bytes', `1;${big(300)}\r\nx\r\n0\r\n\r\n`, `1;${big(256)}`],
    ['chunk extension with a control byte', '1;a=\x01\r\nx\r\n0\r\n\r\n', '1;a='],
    ['chunk extension with a space', '1;a b\r\nx\r\n0\r\n\r\n', '1;a'],
    ['chunk extension with a bare LF', '1;a\nx\r\n0\r\n\r\n', '1;a'],
    ['chunk data longer than its size', '1\r\nxy\r\n0\r\n\r\n', '1\r\nx'],
    ['chunk data without its CRLF', '1\r\nx0\r\n\r\n', '1\r\nx'],
    ['chunk data ends with a bare LF', '1\r\nx\n0\r\n\r\n', '1\r\nx'],
    ['chunked body smuggling a request after a short chunk', '3\r\nabcGET /smuggled HTTP/1.1\r\n\r\n', '3\r\nabc'],
    ['trailer with a space before the colon', '0\r\nX : y\r\n\r\n', '0\r\nX'],
    ['trailer obs-fold', '0\r\nX: y\r\n z\r\n\r\n', '0\r\nX: y\r\n'],
    ['trailer Content-Length', '0\r\nContent-Length: 5\r\n\r\nhello', '0\r\nContent-Length'],
    ['last chunk ends with a bare LF', '0\r\n\n', '0\r\n'],
  ]),
  ['chunked body over maxBodySize', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunk16k}1\r\nx\r\n0\r\n\r\n`, { status: 413, validBody: chunk16k }],
  // --- accepted: a normal request of each kind is forwarded ----------------------------------------
  ['accepted: GET', `GET /x?y=1 HTTP/1.1\r\n${H}Accept: */*\r\n\r\n`, { body: '', headHas: ['get /x?y=1 http/1.1', 'accept: */*'] }],
  ['accepted: POST with Content-Length', `POST /p HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, { body: 'hello', headHas: ['content-length: 5'] }],
  ['accepted: POST chunked, with extensions and trailers', `POST /p HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}`, { body: CHUNKED_BODY, headHas: ['transfer-encoding: chunked'] }],
  ['accepted: HTTP/1.0 without Host', `GET /old HTTP/1.0\r\n\r\n`, { body: '', headHas: ['get /old http/1.1'] }],
  ['accepted: Transfer-Encoding CHUNKED in upper case', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n`, { body: '1\r\nx\r\n0\r\n\r\n', headHas: ['transfer-encoding: chunked'] }],
  ['accepted: Transfer-Encoding with OWS (spaces) around chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:   chunked  \r\n\r\n1\r\nx\r\n0\r\n\r\n`, { body: '1\r\nx\r\n0\r\n\r\n', headHas: ['transfer-encoding: chunked'] }],
  ['accepted: Transfer-Encoding with OWS (tab) before chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked \r\n\r\n1\r\nx\r\n0\r\n\r\n`, { body: '1\r\nx\r\n0\r\n\r\n', headHas: ['transfer-encoding: chunked'] }],
  ['accepted: Content-Length with OWS around it', `POST / HTTP/1.1\r\n${H}Content-Length:  5 \r\n\r\nhello`, { body: 'hello', headHas: ['content-length: 5'] }],
  ['accepted: Content-Length with leading zeros', `POST / HTTP/1.1\r\n${H}Content-Length: 005\r\n\r\nhello`, { body: 'hello', headHas: ['content-length: 5'] }],
  ['accepted: path normalized before it is forwarded', `GET /a/../%61dmin//x HTTP/1.1\r\n${H}\r\n`, { body: '', headHas: ['get /admin/x http/1.1'] }],
  ['accepted: stray CRLF before the request line', `\r\nGET / HTTP/1.1\r\n${H}\r\n`, { body: '' }],
];

function brokenChunked(rows: [string, string, string][]): [string, string, Expect][] {
  return rows.map(([name, body, validBody]) => [
    `${name} (head valid: may be forwarded, body never past the break)`,
    `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}`,
    { status: 400, validBody },
  ]);
}

const FIRST = `GET /first HTTP/1.1\r\n${H}\r\n`;
/** Sent right behind every refused case: nothing after a refused request may be forwarded. */
const AFTER = `GET /after HTTP/1.1\r\n${H}\r\n`;

let backend: RawBackend;
let proxy: TestProxy;

before(async () => {
  backend = await new RawBackend().start();
  proxy = await startProxy(backend.port, {
    limits: { maxHeadSize: '8KiB', maxHeaders: 50, maxBodySize: '16KiB' },
    timeouts: { requestHead: '3s' },
  });
});

after(async () => {
  await proxy.stop();
  await backend.close();
});

/** Lets every socket event already due run, so bytes the proxy wrote are seen by the backend. */
const settle = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));

type Mode = 'alone' | 'pipelined after a valid request' | 'after a valid request on a kept-alive connection';
const MODES: Mode[] = [
  'alone',
  'pipelined after a valid request',
  'after a valid request on a kept-alive connection',
];

interface Outcome {
  /** The answer to the case, or undefined when the connection ended without one. */
  res: RawResponse | undefined;
  client: RawClient;
  /** Backend connections opened before the case was sent (the valid request's, if any). */
  connectionsBefore: number;
}

/** Sends the case in one mode and reads the answer to it. */
async function run(mode: Mode, request: string): Promise<Outcome> {
  backend.reset();
  const client = await RawClient.connect(proxy.port);
  let connectionsBefore = 0;
  if (mode === 'alone') client.write(request);
  else {
    client.write(mode === 'pipelined after a valid request' ? FIRST + request : FIRST);
    const first = await client.readResponse();
    assert.equal(first?.status, 200, `${mode}: the valid request before the case is answered`);
    connectionsBefore = backend.connections;
    if (mode !== 'pipelined after a valid request') client.write(request);
  }
  return { res: await client.readResponse(), client, connectionsBefore };
}

/**
 * What the backend got for the case itself: the forwarded head and the bytes after it, with the
 * valid request sent before the case (in the modes that send one) checked and taken off.
 */
function forwarded(mode: Mode): { head: string; rest: Buffer; requests: number } {
  let got = backend.received();
  let requests = backend.requests;
  if (mode !== 'alone') {
    assert.ok(
      got.toString('latin1').startsWith('GET /first HTTP/1.1\r\n'),
      `${mode}: the valid request first`,
    );
    got = got.subarray(got.indexOf('\r\n\r\n') + 4);
    requests--;
  }
  const end = got.indexOf('\r\n\r\n');
  return end === -1
    ? { head: got.toString('latin1'), rest: Buffer.alloc(0), requests }
    : { head: got.toString('latin1', 0, end + 4), rest: got.subarray(end + 4), requests };
}

for (const [name, request, expect] of CORPUS) {
  test(`${typeof expect === 'number' ? expect : 'status' in expect ? expect.status : 'forwarded'}: ${name}`, async () => {
    const refused = typeof expect === 'number' || 'status' in expect;
    for (const mode of MODES) {
      const { res, client, connectionsBefore } = await run(mode, refused ? request + AFTER : request);
      try {
        if (refused)
          assert.ok(
            !backend.received().includes('/after'),
            `${mode}: the request after the case was forwarded`,
          );
        if (typeof expect === 'number') {
          assert.equal(res?.status, expect, `${mode}: status`);
          assert.equal(res.headers.connection, 'close', `${mode}: connection: close`);
          assert.equal(await client.closed(), true, `${mode}: closed, with nothing after the answer`);
          await settle();
          const { head, rest } = forwarded(mode);
          assert.equal(
            head + rest.toString('latin1'),
            '',
            `${mode}: nothing of the case reaches the backend`,
          );
          assert.equal(backend.connections, connectionsBefore, `${mode}: no new backend connection`);
        } else if ('status' in expect) {
          assert.equal(res?.status, expect.status, `${mode}: status (no response had started)`);
          assert.equal(res.headers.connection, 'close', `${mode}: connection: close`);
          assert.equal(await client.closed(), true, `${mode}: closed, with nothing after the answer`);
          await settle();
          const { head, rest, requests } = forwarded(mode);
          assert.equal(requests, 0, `${mode}: the backend never saw the case complete`);
          if (head !== '') assert.ok(head.startsWith('POST /c HTTP/1.1\r\n'), head);
          const body = rest.toString('latin1');
          assert.ok(
            expect.validBody.startsWith(body),
            `${mode}: the backend got body bytes past the break: ${JSON.stringify(body.slice(0, 200))}`,
          );
        } else {
          assert.equal(res?.status, 200, `${mode}: forwarded and answered by the backend`);
          const { head, rest, requests } = forwarded(mode);
          assert.equal(requests, 1, `${mode}: one request at the backend`);
          assert.equal(rest.toString('latin1'), expect.body, `${mode}: the body forwarded`);
          const lower = head.toLowerCase();
          for (const line of expect.headHas ?? [])
            assert.ok(lower.includes(`${line}\r\n`), `${mode}: ${line} in ${head}`);
          // The proxy writes its own framing: at most one of the two, never both.
          assert.ok((lower.match(/\r\n(content-length|transfer-encoding):/g) ?? []).length <= 1, head);
        }
      } finally {
        client.destroy();
      }
    }
  });
}

test('a request that is refused is never followed by the next one on the same connection', async () => {
  backend.reset();
  const client = await RawClient.connect(proxy.port);
  client.write(
    `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\n${H}\r\n`,
  );
  const res = await client.readResponse();
  assert.equal(res?.status, 400);
  assert.equal(await client.closed(), true);
  await settle();
  assert.equal(backend.received().length, 0);
  client.destroy();
});

test('a head trickled in byte by byte is refused at the first bad byte, and nothing is forwarded', async () => {
  backend.reset();
  const client = await RawClient.connect(proxy.port);
  const text = `GET / HTTP/1.1\r\n${H}X: a\nY: b\r\n\r\n`;
  const bad = text.indexOf('\n', text.indexOf('X: a'));
  for (let i = 0; i <= bad; i++) {
    client.write(text[i]!);
    await new Promise<void>((resolve) => client.socket.write('', () => resolve()));
  }
  const res = await client.readResponse();
  assert.equal(res?.status, 400);
  assert.equal(await client.closed(), true);
  await settle();
  assert.equal(backend.received().length, 0);
  client.destroy();
});
