// Serializes the heads the proxy writes: the request to the upstream and the response to the
// client. Hop-by-hop headers (RFC 9110 §7.6.1, and every header the Connection field names but
// Host) are dropped; framing headers are written by the proxy itself, never copied.

import { CLIENT_CERT_HEADER } from '../peer.js';
import type { CompiledRoute } from '../router.js';
import type { RequestHead, ResponseHead } from './head-parser.js';

/**
 * Dropped in both directions; the proxy writes its own framing and connection headers.
 * HTTP2-Settings belongs to an h2c upgrade, which is never forwarded, named in Connection or not.
 */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'content-length',
]);

export const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

export interface ForwardContext {
  clientIp: string;
  proto: 'http' | 'https';
  trustForwarded: boolean;
  /** Generated request id to add, or '' when the client sent one (or ids are off). */
  addRequestId: string;
  /** The Upgrade value to forward with Connection: upgrade (the protocols allowed), or ''. */
  upgrade: string;
  /** X-Forwarded-Client-Cert to send (mutual TLS, when asked for), or ''. */
  xfcc: string;
}

export function serializeRequest(
  req: RequestHead,
  route: CompiledRoute,
  path: string,
  ctx: ForwardContext,
): string {
  let h = `${req.method} ${path} HTTP/1.1\r\n`;
  const lower = req.lower;
  const conn = req.connection;
  let xff = '';
  let xfp = '';
  let xfh = '';
  let hasHost = false;
  for (let i = 0; i < lower.length; i++) {
    const l = lower[i]!;
    if (HOP_BY_HOP.has(l) || route.requestDrop.has(l) || l === CLIENT_CERT_HEADER) continue;
    if (FORWARDED.has(l)) {
      if (ctx.trustForwarded) {
        const v = req.values[i]!;
        if (l === 'x-forwarded-for') xff = xff === '' ? v : `${xff}, ${v}`;
        else if (l === 'x-forwarded-proto') xfp ||= v;
        else xfh ||= v;
      }
      continue;
    }
    if (l === 'host') {
      // Never dropped through Connection: routing used this Host, so the upstream must see it too.
      if (route.hostRewrite !== undefined) continue;
      hasHost = true;
    } else if (conn.length > 0 && l !== 'x-request-id' && isNamedByConnection(conn, l)) continue;
    // (X-Request-Id is not droppable either: the proxy logs and echoes the id the client sent.)
    h += `${req.names[i]}: ${req.values[i]}\r\n`;
  }
  if (route.hostRewrite !== undefined) h += `host: ${route.hostRewrite}\r\n`;
  else if (!hasHost) h += 'host: localhost\r\n'; // an HTTP/1.0 client may omit Host; HTTP/1.1 needs one
  h += `x-forwarded-for: ${xff === '' ? ctx.clientIp : `${xff}, ${ctx.clientIp}`}\r\n`;
  h += `x-forwarded-proto: ${xfp || ctx.proto}\r\n`;
  if (xfh !== '' || req.host !== '') h += `x-forwarded-host: ${xfh || req.host}\r\n`;
  if (ctx.addRequestId !== '') h += `x-request-id: ${ctx.addRequestId}\r\n`;
  if (ctx.xfcc !== '') h += `x-forwarded-client-cert: ${ctx.xfcc}\r\n`;
  if (ctx.upgrade !== '') h += `connection: upgrade\r\nupgrade: ${ctx.upgrade}\r\n`;
  if (req.chunked) h += 'transfer-encoding: chunked\r\n';
  else if (req.contentLength !== -1) h += `content-length: ${req.contentLength}\r\n`;
  return `${h}${route.requestAdd}\r\n`;
}

export interface ResponseFraming {
  /** Write transfer-encoding: chunked (the body is forwarded in chunked form). */
  chunked: boolean;
  close: boolean;
  /** The client is HTTP/1.0 and keeps the connection. */
  keepAlive10: boolean;
  /** Echo this request id unless the response has one. */
  requestId: string;
  upgrade: boolean;
}

export function serializeResponse(
  res: ResponseHead,
  route: CompiledRoute | undefined,
  f: ResponseFraming,
): string {
  let h = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
  const lower = res.lower;
  const conn = res.connection;
  let hasId = false;
  for (let i = 0; i < lower.length; i++) {
    const l = lower[i]!;
    if (l === 'content-length') {
      if (!f.chunked) h += `${res.names[i]}: ${res.values[i]}\r\n`;
      continue;
    }
    if (HOP_BY_HOP.has(l) || (route !== undefined && route.responseDrop.has(l))) continue;
    if (conn.length > 0 && isNamedByConnection(conn, l)) continue;
    if (l === 'x-request-id') hasId = true;
    h += `${res.names[i]}: ${res.values[i]}\r\n`;
  }
  if (f.requestId !== '' && !hasId) h += `x-request-id: ${f.requestId}\r\n`;
  if (f.chunked) h += 'transfer-encoding: chunked\r\n';
  if (f.upgrade) h += `connection: upgrade\r\nupgrade: ${res.upgrade}\r\n`;
  else if (f.close) h += 'connection: close\r\n';
  else if (f.keepAlive10) h += 'connection: keep-alive\r\n';
  if (route !== undefined) h += route.responseAdd;
  return `${h}\r\n`;
}

/** A response the proxy writes itself (errors, direct responses, the readiness gate). */
export function serializeLocal(
  status: number,
  body: Buffer | string,
  contentType: string,
  opts: {
    close: boolean;
    requestId: string;
    extra?: string;
    route?: CompiledRoute | undefined;
    head?: boolean;
  },
): string {
  const len = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  let h = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\ncontent-type: ${contentType}\r\ncontent-length: ${len}\r\n`;
  if (opts.requestId !== '') h += `x-request-id: ${opts.requestId}\r\n`;
  if (opts.extra) h += opts.extra;
  if (opts.close) h += 'connection: close\r\n';
  if (opts.route) h += opts.route.responseAdd;
  return `${h}\r\n`;
}

function isNamedByConnection(tokens: string[], lower: string): boolean {
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === lower) return true;
  return false;
}

export const REASONS: Record<number, string> = {
  100: 'Continue',
  101: 'Switching Protocols',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  417: 'Expectation Failed',
  421: 'Misdirected Request',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};
