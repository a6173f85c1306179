// Header rules for HTTP/2 exchanges: what may cross between HTTP/2 and HTTP/1.1, the checks a
// request's fields must pass before they are routed, and route header edits in name/value form.

import { METHODS } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { CompiledRoute } from '../router.js';

/**
 * Connection-specific fields (RFC 9113 §8.2.2): meaningless in HTTP/2 and never forwarded in
 * either direction. `te` is handled apart (only "trailers" may pass to an HTTP/2 upstream).
 */
export const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Fields that may not appear in trailers: framing, routing and control data. */
const NOT_IN_TRAILERS = new Set([
  ...CONNECTION_SPECIFIC,
  'te',
  'content-length',
  'content-type',
  'content-encoding',
  'host',
  'trailer',
  'authorization',
  'cache-control',
  'expect',
  'max-forwards',
  'pragma',
  'range',
  'set-cookie',
]);

export const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

export const KNOWN_METHODS = new Set(METHODS.filter((m) => m !== 'CONNECT'));

function table(pred: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pred(c) ? 1 : 0;
  return t;
}

/** Request-target bytes, as the HTTP/1.1 parser accepts them: no '#', no '\', no controls. */
const TARGET = table((c) => c > 0x20 && c < 0x7f && c !== 0x23 && c !== 0x5c);
const HOST = table(
  (c) =>
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    "-._~!$&'()*+,;=%:[]".includes(String.fromCharCode(c)),
);
/** field-vchar, SP and HTAB, obs-text allowed (what the HTTP/1.1 parser accepts). */
const VALUE = table((c) => c === 0x09 || (c >= 0x20 && c !== 0x7f));

/** An origin-form :path ("/..."), with the bytes an HTTP/1.1 request line may carry. */
export function validPath(p: string): boolean {
  if (p.length === 0 || p.charCodeAt(0) !== 0x2f) return false;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c > 0xff || TARGET[c] !== 1) return false;
  }
  return true;
}

export function validHost(v: string): boolean {
  if (v.length === 0 || v.length > 255) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff || HOST[c] !== 1) return false;
  }
  return true;
}

export function validValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c > 0xff || VALUE[c] !== 1) return false;
  }
  return true;
}

/** A trailer field the proxy may pass on. */
export function trailerAllowed(lower: string): boolean {
  return lower.charCodeAt(0) !== 0x3a && !NOT_IN_TRAILERS.has(lower);
}

/** Adds a field, turning repeated names into arrays (set-cookie stays separate lines). */
export function addHeader(out: OutgoingHttpHeaders, name: string, value: string): void {
  const prev = out[name];
  if (prev === undefined) out[name] = value;
  else if (Array.isArray(prev)) prev.push(value);
  else out[name] = [String(prev), value];
}

// Route edits are compiled to "name: value\r\n" text for HTTP/1.1; HTTP/2 needs pairs. They are
// split once per compiled route (routes are rebuilt on reload, so the cache follows them).
const requestPairs = new WeakMap<CompiledRoute, [string, string][]>();
const responsePairs = new WeakMap<CompiledRoute, [string, string][]>();

export function requestAddPairs(route: CompiledRoute): [string, string][] {
  let p = requestPairs.get(route);
  if (p === undefined) {
    p = splitLines(route.requestAdd);
    requestPairs.set(route, p);
  }
  return p;
}

export function responseAddPairs(route: CompiledRoute): [string, string][] {
  let p = responsePairs.get(route);
  if (p === undefined) {
    p = splitLines(route.responseAdd);
    responsePairs.set(route, p);
  }
  return p;
}

function splitLines(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return out;
}
