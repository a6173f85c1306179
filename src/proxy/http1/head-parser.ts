// A strict HTTP/1.1 head parser (RFC 9112) for the proxy's data path. It works on bytes, allocates
// only the strings it returns (names and short values seen before are reused), and refuses
// everything two parsers could read differently: bare CR or LF, obs-fold, whitespace before a
// colon, control bytes, conflicting or repeated framing headers. A refused head is never
// forwarded; the caller answers with the status given here.

import { METHODS } from 'node:http';

export class HeadError {
  constructor(
    readonly status: 400 | 417 | 431 | 501 | 505,
    readonly reason: string,
  ) {}
}

interface Fields {
  names: string[];
  lower: string[];
  values: string[];
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** Lowercased tokens of the Connection header(s). */
  connection: string[];
  upgrade: string;
}

export interface RequestHead extends Fields {
  method: string;
  target: string;
  /** Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: number;
  host: string;
  expectContinue: boolean;
  keepAlive: boolean;
  /** Bytes of the head including its final CRLF. */
  size: number;
}

export interface ResponseHead extends Fields {
  status: number;
  reason: string;
  minor: number;
  keepAlive: boolean;
  size: number;
}

export interface HeadLimits {
  maxHeadSize: number;
  maxHeaders: number;
}

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

function table(pred: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pred(c) ? 1 : 0;
  return t;
}

const TOKEN_CHARS = "!#$%&'*+-.^_`|~";
/** tchar (RFC 9110 §5.6.2). */
export const TOKEN = table(
  (c) =>
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    TOKEN_CHARS.includes(String.fromCharCode(c)),
);
/** field-vchar, SP and HTAB (obs-text allowed as bytes 0x80-0xFF). */
const VALUE = table((c) => c === HTAB || (c >= 0x20 && c !== 0x7f));
/** Request-target bytes: visible ASCII except '#' (no fragments) and '\' (read as '/' by some servers). */
const TARGET = table((c) => c > 0x20 && c < 0x7f && c !== 0x23 && c !== 0x5c);
/**
 * reg-name bytes of a Host (RFC 3986 §3.2.2): unreserved and sub-delims. pct-encoded is left out on
 * purpose: routing compares hosts as written, so "adm%69n.example" must not pass for another name.
 */
const REG_NAME = table(
  (c) =>
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    "-._~!$&'()*+,;=".includes(String.fromCharCode(c)),
);
/** Inside the brackets of an IP literal: IPv6 (and IPv4-mapped) addresses. */
const IP_LITERAL = table(
  (c) =>
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x46) ||
    (c >= 0x61 && c <= 0x66) ||
    c === 0x3a ||
    c === 0x2e,
);

/** Methods proxied (llhttp's list without CONNECT); HTTP/2 requests are held to the same. */
export const KNOWN_METHODS = new Set(METHODS.filter((m) => m !== 'CONNECT'));
const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Parses a request head from buf[start, end). Returns the head, a HeadError, or undefined when
 * more bytes are needed (after checking that what has arrived is not already malformed).
 * scanFrom: where the bytes new since the last call begin, when that call, on the same head,
 * returned undefined; the bytes before it are not searched again.
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HeadLimits,
  scanFrom = start,
): RequestHead | HeadError | undefined {
  let p = start;
  // A client may send a stray CRLF after a body (RFC 9112 §2.2); skip a few.
  for (let i = 0; i < 4 && p + 1 < end && buf[p] === CR && buf[p + 1] === LF; i++) p += 2;
  const headEnd = findHeadEnd(buf, p, scanFrom, end);
  if (headEnd === -1) return incomplete(buf, p, scanFrom, end, limits.maxHeadSize);
  const last = headEnd + 2; // index of the final CRLF
  if (last + 2 - p > limits.maxHeadSize) return new HeadError(431, 'request head too large');

  // request-line = method SP request-target SP HTTP-version CRLF. The whole line is checked for
  // syntax first (400), then for what is not offered: the version (505), the method (501).
  const m0 = p;
  while (p < last && TOKEN[buf[p]!] === 1) p++;
  if (p === m0 || buf[p] !== SP) return new HeadError(400, 'malformed method');
  const m1 = p;
  const t0 = ++p;
  while (p < last && TARGET[buf[p]!] === 1) p++;
  if (p === t0 || buf[p] !== SP) return new HeadError(400, 'malformed request target');
  const t1 = p++;
  // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive, then CRLF with nothing in between.
  if (
    p + 10 > last + 2 ||
    buf[p] !== 0x48 ||
    buf[p + 1] !== 0x54 ||
    buf[p + 2] !== 0x54 ||
    buf[p + 3] !== 0x50 ||
    buf[p + 4] !== 0x2f ||
    !isDigit(buf[p + 5]!) ||
    buf[p + 6] !== 0x2e ||
    !isDigit(buf[p + 7]!)
  )
    return new HeadError(400, 'malformed HTTP version');
  if (buf[p + 8] !== CR || buf[p + 9] !== LF) return new HeadError(400, 'request line must end with CRLF');
  const minorByte = buf[p + 7]!;
  // Only 1.0 and 1.1. A higher 1.x could be read as 1.1 (RFC 9110 §2.5), but llhttp refuses it,
  // and a version two hops could disagree on is not worth forwarding.
  if (buf[p + 5] !== 0x31 || (minorByte !== 0x31 && minorByte !== 0x30))
    return new HeadError(505, 'HTTP version not supported');
  p += 10;
  const method = buf.toString('latin1', m0, m1);
  // A well-formed method the proxy does not implement is 501 (RFC 9110 §9.1); methods are
  // case-sensitive, so "get" is one of those. CONNECT would need a tunnel, which is not offered.
  if (!KNOWN_METHODS.has(method))
    return method === 'CONNECT'
      ? new HeadError(501, 'CONNECT (authority-form) is not proxied')
      : new HeadError(501, `unknown method ${method.slice(0, 20)}`);
  // Origin form only: absolute form ("http://x/") would make the Host header and the target two
  // competing authorities, and "*" has no path to route on.
  if (buf[t0] !== 0x2f)
    return new HeadError(
      400,
      'only origin-form targets ("/path") are accepted, not absolute or authority form',
    );
  const target = buf.toString('latin1', t0, t1);

  const head = {
    method,
    target,
    minor: minorByte - 0x30,
    names: [] as string[],
    lower: [] as string[],
    values: [] as string[],
    contentLength: -1,
    chunked: false,
    connection: [] as string[],
    upgrade: '',
    host: '',
    expectContinue: false,
    keepAlive: true as boolean,
    size: last + 2 - start,
  } satisfies RequestHead;
  const err = parseFields(buf, p, last, limits.maxHeaders, head, true);
  if (err) return err;
  if (head.chunked && head.contentLength !== -1)
    return new HeadError(400, 'both Content-Length and Transfer-Encoding');
  if (head.chunked && head.minor === 0) return new HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
  // Host: exactly one in HTTP/1.1 (RFC 9112 §3.2); parseFields refuses a second.
  let hostCount = 0;
  for (let i = 0; i < head.lower.length; i++) {
    if (head.lower[i] !== 'host') continue;
    if (++hostCount > 1) return new HeadError(400, 'repeated Host header');
    const v = head.values[i]!;
    if (!validHost(v)) return new HeadError(400, 'invalid Host header');
    head.host = v;
  }
  if (hostCount === 0 && head.minor === 1) return new HeadError(400, 'missing Host header');
  head.keepAlive =
    head.minor === 1 ? !head.connection.includes('close') : head.connection.includes('keep-alive');
  return head;
}

/**
 * Parses a response head from buf[start, end); same rules as requests, plus a three-digit status.
 */
export function parseResponseHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HeadLimits,
  scanFrom = start,
): ResponseHead | HeadError | undefined {
  const headEnd = findHeadEnd(buf, start, scanFrom, end);
  if (headEnd === -1) return incomplete(buf, start, scanFrom, end, limits.maxHeadSize);
  const last = headEnd + 2;
  if (last + 2 - start > limits.maxHeadSize) return new HeadError(431, 'response head too large');
  let p = start;
  if (
    buf[p] !== 0x48 ||
    buf[p + 1] !== 0x54 ||
    buf[p + 2] !== 0x54 ||
    buf[p + 3] !== 0x50 ||
    buf[p + 4] !== 0x2f ||
    buf[p + 5] !== 0x31 ||
    buf[p + 6] !== 0x2e ||
    (buf[p + 7] !== 0x31 && buf[p + 7] !== 0x30) ||
    buf[p + 8] !== SP
  )
    return new HeadError(400, 'malformed status line');
  const minor = buf[p + 7]! - 0x30;
  p += 9;
  const d0 = buf[p]! - 0x30;
  const d1 = buf[p + 1]! - 0x30;
  const d2 = buf[p + 2]! - 0x30;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9)
    return new HeadError(400, 'malformed status code');
  const status = d0 * 100 + d1 * 10 + d2;
  p += 3;
  let reason = '';
  if (buf[p] === SP) {
    const r0 = ++p;
    while (p < last && VALUE[buf[p]!] === 1) p++;
    reason = buf.toString('latin1', r0, p);
  }
  if (buf[p] !== CR || buf[p + 1] !== LF) return new HeadError(400, 'malformed status line');
  p += 2;
  const head = {
    status,
    reason,
    minor,
    names: [] as string[],
    lower: [] as string[],
    values: [] as string[],
    contentLength: -1,
    chunked: false,
    connection: [] as string[],
    upgrade: '',
    keepAlive: true as boolean,
    size: last + 2 - start,
  } satisfies ResponseHead;
  const err = parseFields(buf, p, last, limits.maxHeaders, head, false);
  if (err) return err;
  if (head.chunked && head.contentLength !== -1)
    return new HeadError(400, 'both Content-Length and Transfer-Encoding');
  head.keepAlive = minor === 1 ? !head.connection.includes('close') : head.connection.includes('keep-alive');
  return head;
}

/**
 * Parses field lines from buf[p, last) where last is the index of the empty line's CR. Used for
 * heads and for chunked trailers (where framing headers are not interpreted).
 */
export function parseFields(
  buf: Buffer,
  p: number,
  last: number,
  maxHeaders: number,
  out: Fields,
  isRequest: boolean,
  framing = true,
): HeadError | undefined {
  let count = 0;
  while (p < last) {
    const n0 = p;
    let h = 0;
    for (let c = buf[p]!; TOKEN[c] === 1; c = buf[++p]!) h = (Math.imul(h, 31) + c) | 0;
    if (p === n0)
      return buf[p] === SP || buf[p] === HTAB
        ? new HeadError(400, 'obs-fold or whitespace before a header name')
        : new HeadError(400, 'malformed header name');
    if (buf[p] !== COLON)
      return buf[p] === SP || buf[p] === HTAB
        ? new HeadError(400, 'whitespace between header name and colon')
        : new HeadError(400, 'invalid character in header name');
    const n1 = p++;
    while (buf[p] === SP || buf[p] === HTAB) p++;
    const v0 = p;
    let hv = 0;
    for (let c = buf[p]!; VALUE[c] === 1; c = buf[++p]!) hv = (Math.imul(hv, 31) + c) | 0;
    if (buf[p] !== CR || buf[p + 1] !== LF)
      return buf[p] === LF
        ? new HeadError(400, 'bare LF in header line')
        : buf[p] === CR
          ? new HeadError(400, 'bare CR in header value')
          : new HeadError(400, 'control character in header value');
    let v1 = p;
    while (v1 > v0 && (buf[v1 - 1] === SP || buf[v1 - 1] === HTAB)) v1--;
    p += 2;
    if (++count > maxHeaders) return new HeadError(431, 'too many header fields');
    const name = seenNames.get(buf, n0, n1, h);
    const lower = seenNames.lower(name);
    const value = seenValues.get(buf, v0, v1, hv);
    out.names.push(name);
    out.lower.push(lower);
    out.values.push(value);
    if (!framing) continue;
    switch (lower) {
      case 'content-length': {
        // One field, one value of 1 to 15 digits (beyond is no real body and near 2^53): no
        // lists ("1,1"), no signs, no repeats even with equal values (RFC 9112 §6.3 lets a
        // recipient reject them, and a repeat is how two hops come to disagree).
        if (out.contentLength !== -1) return new HeadError(400, 'repeated Content-Length');
        if (tabAfter(buf, v1, p - 2)) return new HeadError(400, 'invalid Content-Length (a tab after it)');
        const n = digitsValue(buf, v0, v1);
        if (n < 0) return new HeadError(400, 'invalid Content-Length');
        out.contentLength = n;
        break;
      }
      case 'transfer-encoding':
        if (out.chunked) return new HeadError(400, 'repeated Transfer-Encoding');
        if (tabAfter(buf, v1, p - 2)) return new HeadError(400, 'invalid Transfer-Encoding (a tab after it)');
        if (value.toLowerCase() !== 'chunked')
          return isRequest
            ? new HeadError(400, `Transfer-Encoding "${value.slice(0, 40)}" is not accepted (only "chunked")`)
            : new HeadError(400, 'response Transfer-Encoding other than "chunked"');
        out.chunked = true;
        break;
      case 'connection':
        for (const tok of value.split(',')) {
          const t = tok.trim().toLowerCase();
          if (t.length > 0) out.connection.push(t);
        }
        break;
      case 'upgrade':
        out.upgrade = value;
        break;
      case 'expect':
        if (isRequest) {
          if (value.toLowerCase() !== '100-continue') return new HeadError(417, 'unsupported Expect');
          (out as RequestHead).expectContinue = true;
        }
        break;
    }
  }
  return undefined;
}

/**
 * Strings seen before, in a direct-mapped table by a hash of their bytes: the same names and
 * many of the same values arrive on every request, and a string found here costs a byte
 * comparison instead of a new string. A slot holds the last string that hashed to it, so the
 * table never grows; strings longer than `maxLength` are not kept.
 */
class SeenStrings {
  readonly #text: (string | undefined)[];
  readonly #lower: (string | undefined)[];
  readonly #mask: number;
  readonly #maxLength: number;
  #slot = 0;

  constructor(slots: number, maxLength: number) {
    this.#text = new Array<string | undefined>(slots).fill(undefined);
    this.#lower = new Array<string | undefined>(slots).fill(undefined);
    this.#mask = slots - 1;
    this.#maxLength = maxLength;
  }

  /** buf[a, b) as latin1, where h is a hash of bytes starting at a. */
  get(buf: Buffer, a: number, b: number, h: number): string {
    const n = b - a;
    if (n > this.#maxLength) return buf.toString('latin1', a, b);
    const slot = (h ^ (h >>> 11) ^ n) & this.#mask;
    this.#slot = slot;
    const hit = this.#text[slot];
    if (hit !== undefined && hit.length === n) {
      let i = 0;
      while (i < n && hit.charCodeAt(i) === buf[a + i]) i++;
      if (i === n) return hit;
    }
    const text = buf.toString('latin1', a, b);
    this.#text[slot] = text;
    this.#lower[slot] = undefined;
    return text;
  }

  /** The lower-case form of `text`, which get() has just returned. */
  lower(text: string): string {
    if (this.#text[this.#slot] !== text) return text.toLowerCase();
    return (this.#lower[this.#slot] ??= text.toLowerCase());
  }
}

const seenNames = new SeenStrings(512, 64);
const seenValues = new SeenStrings(1024, 128);

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * A tab in the whitespace after a framing field's value. RFC 9110 lets it be trimmed, but llhttp
 * (Node's parser, behind many a proxy) refuses both "Content-Length: 4<TAB>" and
 * "Transfer-Encoding: chunked<TAB>": a hop that accepted them would pass on messages the next hop
 * cannot frame. Refused here too; spaces there, and tabs before the value, are fine with both.
 */
function tabAfter(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === HTAB) return true;
  return false;
}

/** The value of 1 to 15 decimal digits in buf[a, b), or -1. */
function digitsValue(buf: Buffer, a: number, b: number): number {
  if (b <= a || b - a > 15) return -1;
  let n = 0;
  for (let i = a; i < b; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/**
 * Index of the CRLFCRLF that ends a head starting at p, or -1 when it is not within buf[p, end).
 * Bytes before scanFrom were searched on an earlier call, so the search resumes 3 bytes before it
 * (a terminator may straddle the old end); a head trickled in byte by byte is scanned once.
 */
function findHeadEnd(buf: Buffer, p: number, scanFrom: number, end: number): number {
  const from = Math.max(p, scanFrom - 3);
  if (end - from < 4) return -1;
  return (end === buf.length ? buf : buf.subarray(0, end)).indexOf(CRLFCRLF, from);
}

/**
 * Host = uri-host [ ":" port ] (RFC 9110 §7.2): a reg-name or IPv4 address, or an IP literal in
 * brackets, then at most one ":" and up to 5 digits. Anything looser ("a:b:c", "a:80x") is a
 * host that the proxy and the app could each read their own way.
 */
export function validHost(v: string): boolean {
  const n = v.length;
  if (n === 0 || n > 255) return false;
  let i = 0;
  if (v.charCodeAt(0) === 0x5b) {
    i = 1;
    while (i < n && IP_LITERAL[v.charCodeAt(i)] === 1) i++;
    if (i === 1 || v.charCodeAt(i) !== 0x5d) return false;
    i++;
  } else {
    while (i < n && REG_NAME[v.charCodeAt(i)] === 1) i++;
    if (i === 0) return false;
  }
  if (i === n) return true;
  if (v.charCodeAt(i) !== COLON || n - i - 1 > 5) return false;
  for (let k = i + 1; k < n; k++) if (!isDigit(v.charCodeAt(k))) return false;
  return true;
}

/** An origin-form target ("/...") of the bytes a request line may carry; for HTTP/2's :path. */
export function validTarget(t: string): boolean {
  if (t.length === 0 || t.charCodeAt(0) !== 0x2f) return false;
  for (let i = 0; i < t.length; i++) if (TARGET[t.charCodeAt(i)] !== 1) return false;
  return true;
}

/** A field value as a head may carry it (no controls but HTAB; obs-text allowed); for HTTP/2. */
export function validFieldValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) if (VALUE[v.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * The head is not complete: refuse early what is already too big or cannot become valid. Only
 * bytes from scanFrom on are new, so a head trickled in byte by byte is scanned once, not again
 * on every arrival.
 */
function incomplete(
  buf: Buffer,
  start: number,
  scanFrom: number,
  end: number,
  maxHeadSize: number,
): HeadError | undefined {
  if (end - start > maxHeadSize) return new HeadError(431, 'head too large');
  for (let i = Math.max(start, scanFrom - 1); i < end; i++) {
    const c = buf[i]!;
    if (c === LF && (i === start || buf[i - 1] !== CR)) return new HeadError(400, 'bare LF');
    if (c === CR && i + 1 < end && buf[i + 1] !== LF) return new HeadError(400, 'bare CR');
    if (c === 0) return new HeadError(400, 'NUL byte in head');
  }
  return undefined;
}
