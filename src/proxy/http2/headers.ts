// Header rules for HTTP/2 exchanges: what may cross between HTTP/2 and HTTP/1.1, and the checks a
// request's fields must pass before they are routed (the HTTP/1.1 parser's own rules).

import type { OutgoingHttpHeaders } from 'node:http2';

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

export { FORWARDED } from '../http1/serialize.js';
export {
  KNOWN_METHODS,
  validFieldValue as validValue,
  validHost,
  validTarget as validPath,
} from '../http1/head-parser.js';

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
