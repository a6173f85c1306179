// What the HTTP sink drivers share: one keep-alive connection pool (a node:http Agent) per sink,
// request bodies (NDJSON or a JSON array, gzip), and turning a reply or a network error into a
// SendOutcome.

import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { type Clock, systemClock } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import type { LogEvent, SendOutcome } from '../types.js';
import { encodeEventStrict } from './encode.js';

const gzipAsync = promisify(gzip);

/** Injected into every HTTP driver; the attempt timeout runs on this clock. */
export interface DriverDeps {
  clock?: Clock;
}

export type FailedOutcome = Extract<SendOutcome, { kind: 'failed' }>;

/** A response that arrived (any status); what a driver classifies. */
export interface Reply {
  kind: 'reply';
  status: number;
  /** The body as text, cut at the read limit (see `truncated`); secrets already redacted. */
  body: string;
  truncated: boolean;
  /** The Retry-After header when it is well formed (seconds or an HTTP date). */
  retryAfter: string | undefined;
}

/** A sink URL split into what the pool and the requests need; credentials never stay in it. */
export interface SinkUrl {
  origin: string;
  /** The URL's path as written ('/' at least). */
  pathname: string;
  /** The URL's path without a trailing slash ('' for the root). */
  basePath: string;
  /** The URL's query without '?' ('' when none); kept on every request. */
  baseQuery: string;
  user: string | undefined;
  password: string | undefined;
}

export function splitUrl(raw: string): SinkUrl {
  const url = new URL(raw);
  const basePath = url.pathname.replace(/\/+$/, '');
  return {
    origin: url.origin,
    pathname: url.pathname === '' ? '/' : url.pathname,
    basePath,
    baseQuery: url.search.slice(1),
    user: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
  };
}

export function basicAuth(user: string, password: string | undefined): string {
  return `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}`;
}

export interface DeliveryOptions {
  url: SinkUrl;
  method?: 'POST' | 'PUT';
  contentType: string;
  compression: 'gzip' | 'none';
  /** One attempt fails after this long; the runner may abort sooner through its signal. */
  timeoutMs: number;
  /** Fixed request headers (auth, tenant, user headers); every value is treated as a secret. */
  headers?: Record<string, string>;
  /** Other values that must never appear in a reason (passwords, keys). */
  secrets?: (string | undefined)[];
  /** At most this many connections to the origin. */
  connections?: number;
  clock?: Clock;
}

/** Error replies are read this far for the reason; the rest is drained so the connection is reused. */
const ERROR_BODY_LIMIT = 8 * 1024;
/** A reply longer than this is not drained: the connection is dropped instead. */
const DRAIN_LIMIT = 1024 * 1024;
/** Reasons carry at most this much of a reply's text. */
const DETAIL_CHARS = 500;
const REDACTED = '[REDACTED]';
/** Headers a sink config must not set: the HTTP client and the driver own them. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'content-encoding',
  'expect',
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const RETRY_AFTER = /^[\w ,:+-]{1,64}$/;

/** An idle pooled connection is closed after this long (sooner when the server's Keep-Alive says so). */
const IDLE_TIMEOUT_MS = 30_000;
/** Connection errors that mean a pooled connection was closed by the server just as it was reused. */
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE']);

/**
 * Sends bodies to one origin over keep-alive connections and reports what happened, never throwing.
 *
 * The client is Node's own (node:http with a keep-alive Agent): a sink sends one batch at a time,
 * which needs no more, and undici with its WebAssembly HTTP parser added ~15 MB to the process.
 */
export class HttpDelivery {
  readonly url: SinkUrl;
  #agent: http.Agent;
  #request: typeof http.request;
  #host: string;
  #port: number;
  #closed = false;
  #method: 'POST' | 'PUT';
  #headers: Record<string, string>;
  #gzip: boolean;
  #timeoutMs: number;
  #clock: Clock;
  #secrets: string[];

  constructor(opts: DeliveryOptions) {
    this.url = opts.url;
    this.#method = opts.method ?? 'POST';
    this.#gzip = opts.compression === 'gzip';
    this.#timeoutMs = opts.timeoutMs;
    this.#clock = opts.clock ?? systemClock;
    const headers: Record<string, string> = { 'content-type': opts.contentType };
    const secrets: string[] = [];
    for (const [name, value] of Object.entries(opts.headers ?? {})) {
      const lower = name.toLowerCase();
      // The message names the header, never its value: values are secrets.
      if (!TOKEN.test(name) || RESERVED_HEADERS.has(lower))
        throw new PillionError('PILLION_ERR_CONFIG_BAD_VALUE', `header "${name}" cannot be set on a sink`);
      if (/[\0\r\n]/.test(value))
        throw new PillionError(
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `the value of header "${name}" holds a line break or NUL`,
        );
      headers[lower] = value;
      secrets.push(value, value.trim());
      // "Basic dXNlcjpwYXNz" and "Bearer x" are secrets as a whole and in their credential part.
      const space = value.indexOf(' ');
      if (space > 0) secrets.push(value.slice(space + 1).trim());
      if (/^basic /i.test(value)) {
        const decoded = Buffer.from(value.slice(6).trim(), 'base64').toString('utf8');
        const password = decoded.slice(decoded.indexOf(':') + 1);
        if (decoded.includes(':') && password !== '') secrets.push(decoded, password);
      }
    }
    if (this.#gzip) headers['content-encoding'] = 'gzip';
    this.#headers = headers;
    for (const s of opts.secrets ?? []) if (s !== undefined) secrets.push(s);
    if (opts.url.password !== undefined) secrets.push(opts.url.password);
    // Longest first, so a secret that contains another is replaced whole.
    this.#secrets = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
    const origin = new URL(opts.url.origin);
    const secure = origin.protocol === 'https:';
    const agentOptions: http.AgentOptions = {
      keepAlive: true,
      maxSockets: opts.connections ?? 4,
      maxFreeSockets: opts.connections ?? 4,
      // Also what makes the Agent honour a server's "Keep-Alive: timeout=N" (closing a second early).
      timeout: IDLE_TIMEOUT_MS,
      scheduling: 'lifo',
    };
    this.#agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.#request = secure ? https.request : http.request;
    this.#host = origin.hostname.replace(/^\[(.*)\]$/, '$1');
    this.#port = origin.port === '' ? (secure ? 443 : 80) : Number(origin.port);
  }

  /**
   * One request; its promise settles with the response head. A pooled connection that the server
   * closed just as it was reused (a reset before any reply) is retried once on a new connection,
   * as a keep-alive race and not a failure of the sink.
   */
  #exchange(path: string, body: string | Buffer, signal: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const attempt = (retried: boolean) => {
        if (this.#closed) return reject(new Error('the sink is closed'));
        let replied = false;
        const req = this.#request(
          {
            agent: this.#agent,
            host: this.#host,
            port: this.#port,
            method: this.#method,
            path,
            headers: { ...this.#headers, 'content-length': Buffer.byteLength(body) },
            signal,
          },
          (res) => {
            replied = true;
            resolve(res);
          },
        );
        req.on('error', (err: NodeJS.ErrnoException) => {
          const stale = req.reusedSocket && !replied && STALE_CONNECTION.has(err.code ?? '');
          if (stale && !retried && !signal.aborted) attempt(true);
          else reject(err);
        });
        req.end(body);
      };
      attempt(false);
    });
  }

  /** The request path for `path` under the URL's path ('' is the URL's path itself), keeping its query. */
  path(path: string, query = ''): string {
    const q = [this.url.baseQuery, query].filter((s) => s !== '').join('&');
    const p = path === '' ? this.url.pathname : `${this.url.basePath}${path}`;
    return `${p}${q === '' ? '' : `?${q}`}`;
  }

  /**
   * Sends one body and returns the reply, or a retryable failure for network errors, timeouts
   * and aborts. A 2xx body is read up to `okBodyLimit` bytes (0: discarded); error bodies are
   * read a little for the reason.
   */
  async send(
    path: string,
    payload: string | Buffer,
    signal: AbortSignal,
    okBodyLimit = 0,
  ): Promise<Reply | FailedOutcome> {
    if (signal.aborted) return failed(true, 'aborted before sending');
    const ac = new AbortController();
    let timedOut = false;
    const timer = this.#clock.setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.#timeoutMs);
    const onAbort = () => ac.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const body = this.#gzip ? await gzipAsync(payload) : payload;
      if (ac.signal.aborted) throw new Error('aborted');
      const res = await this.#exchange(path, body, ac.signal);
      const status = res.statusCode ?? 0;
      const limit = status >= 200 && status < 300 ? okBodyLimit : ERROR_BODY_LIMIT;
      const text = await readBody(res, limit);
      const ra = res.headers['retry-after'];
      const retryAfter = typeof ra === 'string' && RETRY_AFTER.test(ra) ? ra : undefined;
      return {
        kind: 'reply',
        status,
        body: this.redact(text.text),
        truncated: text.truncated,
        retryAfter,
      };
    } catch (err) {
      if (timedOut) return failed(true, `timed out after ${this.#timeoutMs} ms`);
      if (signal.aborted) return failed(true, 'aborted');
      return failed(true, `network error: ${this.redact(describeError(err))}`);
    } finally {
      timer.cancel();
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The generic classification: 408, 429 and 5xx are retried, other statuses are permanent. */
  classify(reply: Reply, detail = detailOf(reply.body)): FailedOutcome {
    return classifyStatus(reply.status, detail, reply.retryAfter);
  }

  /** Replaces every configured secret in a text (reasons, error messages). */
  redact(text: string): string {
    for (const s of this.#secrets) if (text.includes(s)) text = text.split(s).join(REDACTED);
    return text;
  }

  async close(): Promise<void> {
    // The runner has settled its sends before closing; anything still in flight is abandoned.
    this.#closed = true;
    this.#agent.destroy();
  }
}

function failed(retry: boolean, reason: string, status?: number): FailedOutcome {
  return status === undefined ? { kind: 'failed', retry, reason } : { kind: 'failed', retry, reason, status };
}

/** 2xx is not a failure and is not passed here; 408, 429 and 5xx are worth retrying, the rest is not. */
export function classifyStatus(status: number, detail: string, retryAfter?: string): FailedOutcome {
  const retry = status === 408 || status === 429 || status >= 500;
  let reason = `HTTP ${status}`;
  if (retryAfter !== undefined) reason += ` (Retry-After: ${retryAfter})`;
  if (detail !== '') reason += `: ${detail}`;
  return failed(retry, reason, status);
}

/** A reply body made fit for a reason: one line, bounded. */
export function detailOf(body: string): string {
  // eslint-disable-next-line no-control-regex
  const oneLine = body.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  return oneLine.length > DETAIL_CHARS ? `${oneLine.slice(0, DETAIL_CHARS)}…` : oneLine;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let message = err.message;
  // Happy-eyeballs connects report an AggregateError with an empty message.
  if (message === '' && err instanceof AggregateError && err.errors[0] instanceof Error)
    message = err.errors[0].message;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && !message.includes(code)) message = `${code}: ${message}`;
  return message === '' ? err.name : message;
}

/**
 * Reads a reply's body up to `limit` bytes (0: none) and drains the rest, so the connection is
 * reused; past the drain limit the connection is not worth saving and leaving the loop destroys it.
 */
async function readBody(body: IncomingMessage, limit: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let seen = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (kept < limit) {
      const take = Math.min(chunk.length, limit - kept);
      chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      kept += take;
    }
    if (seen > Math.max(limit, DRAIN_LIMIT)) break;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: seen > kept };
}

/**
 * A batch encoded: the events that made it into the body, and those JSON could not encode. The
 * body is bytes, not a string: it lives as long as the request, and a string of a megabyte that
 * outlives a young-generation collection is promoted and stays in the heap until a full one.
 */
export interface EncodedBatch {
  body: Buffer;
  /** The events in the body, in body order (the input array itself when none were left out). */
  sent: LogEvent[];
  unencodable: { event: LogEvent; reason: string }[];
}

/** One JSON document per line, each after `prefix` (Elasticsearch's action line), newline-terminated. */
export function encodeNdjson(events: LogEvent[], prefix = ''): EncodedBatch {
  return encode(events, prefix, '\n', '', '\n');
}

/** A JSON array of the events. */
export function encodeJsonArray(events: LogEvent[]): EncodedBatch {
  return encode(events, '', ',', '[', ']');
}

function encode(events: LogEvent[], prefix: string, sep: string, open: string, close: string): EncodedBatch {
  const parts = new Array<string>(events.length);
  let sent = events;
  let n = 0;
  const unencodable: EncodedBatch['unencodable'] = [];
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    const line = encodeEventStrict(event);
    if (line === undefined) {
      if (sent === events) sent = events.slice(0, i);
      unencodable.push({ event, reason: 'the event cannot be encoded as JSON (a BigInt or a cycle)' });
      continue;
    }
    if (sent !== events) sent.push(event);
    parts[n++] = prefix === '' ? line : prefix + line;
  }
  parts.length = n;
  // An NDJSON body of no lines is empty, not a lone newline.
  if (n === 0) return { body: Buffer.from(open === '' ? '' : open + close), sent, unencodable };
  return { body: Buffer.from(open + parts.join(sep) + close), sent, unencodable };
}

/** JSON text of an event, or undefined when JSON cannot encode it (the event is dead-lettered). */
export { encodeEventStrict as stringify };

/** Adds the events left out of the body to an outcome: dead letters once the rest is stored. */
export function withUnencodable(outcome: SendOutcome, unencodable: EncodedBatch['unencodable']): SendOutcome {
  if (unencodable.length === 0 || outcome.kind === 'failed') return outcome;
  if (outcome.kind === 'ok') return { kind: 'partial', retry: [], reject: unencodable };
  return { kind: 'partial', retry: outcome.retry, reject: outcome.reject.concat(unencodable) };
}
