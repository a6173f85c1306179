// The http source: the app POSTs JSON (an object or an array of objects) or NDJSON; with
// acknowledgements the answer (200) waits until every sink has the events, so a client that
// retries on anything else never loses one. A full buffer answers 503 before the body is read.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzip } from 'node:zlib';
import { type Address, formatAddress } from '../../lib/address.js';
import { PillionError } from '../../lib/errors.js';
import type { HttpSourceConfig } from '../config.js';
import type { LogEvent, LogSource, SourceContext } from '../types.js';

/** Concurrent client connections; more are refused by the kernel's backlog, not buffered. */
const MAX_CONNECTIONS = 64;

export interface HttpSource extends LogSource {
  /** The address bound (the real port when the config said 0); valid after start(). */
  address(): Address;
}

export function createHttpSource(cfg: HttpSourceConfig, ctx: SourceContext): HttpSource {
  return new HttpSourceImpl(cfg, ctx);
}

const NDJSON_TYPES = new Set([
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/x-jsonlines',
]);

/** A request whose events were handed on and whose answer waits for their acknowledgement. */
interface Waiting {
  res: http.ServerResponse;
  accepted: number;
}

class HttpSourceImpl implements HttpSource {
  readonly #cfg: HttpSourceConfig;
  readonly #ctx: SourceContext;
  #server: http.Server | undefined;
  #bound: Address | undefined;
  readonly #waiting = new Set<Waiting>();
  #stopped = false;

  constructor(cfg: HttpSourceConfig, ctx: SourceContext) {
    this.#cfg = cfg;
    this.#ctx = ctx;
  }

  address(): Address {
    if (!this.#bound) throw new Error('http source not started');
    return this.#bound;
  }

  async start(): Promise<void> {
    const server = http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => this.#request(req, res));
    // A client that sends nothing for this long gives its socket back.
    server.requestTimeout = 60_000;
    server.headersTimeout = 20_000;
    server.keepAliveTimeout = 5_000;
    // Each connection can hold a body of up to maxBodyBytes in memory; cap how many can.
    server.maxConnections = MAX_CONNECTIONS;
    const { listen } = this.#cfg;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listen.host === '' ? undefined : listen.host, port: listen.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw new PillionError(
        'PILLION_ERR_LOGS_LISTEN',
        `http source "${this.#ctx.name}" cannot listen on ${formatAddress(listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    server.on('error', (err) => this.#ctx.logger.warn({ err }, 'http source server error'));
    server.on('clientError', (err, socket) => {
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
      this.#ctx.logger.debug({ err }, 'http source: bad request');
    });
    this.#server = server;
    this.#bound = { host: listen.host, port: (server.address() as AddressInfo).port };
  }

  async stop(): Promise<void> {
    if (this.#stopped || !this.#server) return;
    this.#stopped = true;
    const server = this.#server;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Requests still waiting for acknowledgement are answered now rather than held: their events
    // may still be delivered, so a client that retries may send some twice but loses none.
    for (const w of this.#waiting) {
      if (!w.res.headersSent && !w.res.destroyed)
        reply(w.res, 503, { error: 'shutting down before the events were acknowledged; retry' }, true);
    }
    this.#waiting.clear();
    server.closeIdleConnections();
    // Connections still busy (a body being sent) are not waited for.
    server.closeAllConnections();
    await closed;
  }

  #request(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.on('error', () => {}); // a client that aborts mid-body is not an error of ours
    res.on('error', () => {});
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== this.#cfg.path) return refuse(req, res, 404, `no such path: POST logs to ${this.#cfg.path}`);
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return refuse(req, res, 405, `method ${req.method} not allowed; POST logs to ${this.#cfg.path}`);
    }
    if (this.#stopped) return refuse(req, res, 503, 'shutting down');
    if (!this.#ctx.hasCapacity()) {
      res.setHeader('Retry-After', '1');
      return refuse(req, res, 503, 'buffers are full; retry later');
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'x-gzip')
      return refuse(req, res, 415, `Content-Encoding "${encoding}" is not supported; use gzip or none`);
    const max = this.#cfg.maxBodyBytes;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > max)
      return refuse(req, res, 413, `body of ${declared} bytes exceeds the limit of ${max} bytes`);

    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        done = true;
        refuse(req, res, 413, `body exceeds the limit of ${max} bytes`);
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      const body = Buffer.concat(parts, size);
      if (encoding === 'identity') this.#body(req, res, body, size);
      else
        gunzip(body, { maxOutputLength: max }, (err, out) => {
          if (err) {
            const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
            if (tooBig) refuse(req, res, 413, `body exceeds the limit of ${max} bytes once decompressed`);
            else refuse(req, res, 400, `body is not readable gzip: ${err.message}`);
            return;
          }
          this.#body(req, res, out, size);
        });
    });
  }

  #body(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, wireBytes: number): void {
    if (res.destroyed) return; // the client went away; nothing was handed on
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const stats = this.#ctx.stats;
    stats.bytes.value += wireBytes;
    const errorsBefore = stats.parseErrors.value;
    const events = decode(body.toString('utf8'), NDJSON_TYPES.has(type), stats.parseErrors);
    if (events.length === 0) {
      reply(res, this.#cfg.acknowledgements ? 200 : 202, { accepted: 0 });
      return;
    }
    stats.events.value += events.length;
    const accepted = events.length;
    const rejected = stats.parseErrors.value - errorsBefore;
    if (rejected > 0) this.#ctx.logger.debug({ rejected }, 'http source: records kept raw with parse_error');
    if (!this.#cfg.acknowledgements) {
      this.#ctx.emit({ source: this.#ctx.name, events, bytes: body.length });
      reply(res, 202, { accepted });
      return;
    }
    const waiting: Waiting = { res, accepted };
    this.#waiting.add(waiting);
    res.once('close', () => this.#waiting.delete(waiting));
    // onAck may run inside emit() (every event filtered out), so everything it needs is set first.
    this.#ctx.emit({
      source: this.#ctx.name,
      events,
      // Buffers are charged what the events hold (the decompressed body), not the wire bytes.
      bytes: body.length,
      onAck: () => {
        this.#waiting.delete(waiting);
        if (!res.headersSent && !res.destroyed) reply(res, 200, { accepted });
      },
    });
  }
}

/**
 * The events of a body: NDJSON when the content type says so; otherwise a JSON array or object
 * when the whole body is one, else NDJSON. A line or element that is not an object is kept raw.
 */
function decode(text: string, ndjson: boolean, parseErrors: { value: number }): LogEvent[] {
  if (!ndjson) {
    let i = 0;
    while (i < text.length && isSpace(text.charCodeAt(i))) i++;
    const first = text.charCodeAt(i);
    if (first === 0x5b /* [ */ || first === 0x7b /* { */) {
      let whole: unknown;
      let parsed = false;
      try {
        whole = JSON.parse(text);
        parsed = true;
      } catch {
        // not one JSON value: read it as NDJSON below
      }
      if (parsed) {
        if (!Array.isArray(whole)) return [whole as LogEvent];
        const events: LogEvent[] = new Array(whole.length);
        for (let k = 0; k < whole.length; k++) {
          const el: unknown = whole[k];
          if (isObject(el)) events[k] = el;
          else {
            parseErrors.value++;
            events[k] = {
              message: JSON.stringify(el) ?? String(el),
              parse_error: `element ${k}: not a JSON object`,
            };
          }
        }
        return events;
      }
    }
  }
  const events: LogEvent[] = [];
  let start = 0;
  let line = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    let stop = end;
    if (stop > start && text.charCodeAt(stop - 1) === 0x0d) stop--;
    let a = start;
    while (a < stop && isSpace(text.charCodeAt(a))) a++;
    if (a < stop) {
      const raw = text.slice(start, stop);
      let value: unknown;
      let reason: string | undefined;
      if (text.charCodeAt(a) !== 0x7b) reason = `line ${line}: not a JSON object`;
      else
        try {
          value = JSON.parse(raw);
          if (!isObject(value)) reason = `line ${line}: not a JSON object`;
        } catch (err) {
          reason = `line ${line}: ${(err as Error).message}`;
        }
      if (reason === undefined) events.push(value as LogEvent);
      else {
        parseErrors.value++;
        events.push({ message: raw, parse_error: reason });
      }
    }
    start = end + 1;
  }
  return events;
}

function isObject(v: unknown): v is LogEvent {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function reply(res: http.ServerResponse, status: number, body: object, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (close) res.setHeader('Connection', 'close');
  res.end(text);
}

/** Answers an error; a body not yet read is not read: the connection closes after the answer. */
function refuse(req: http.IncomingMessage, res: http.ServerResponse, status: number, error: string): void {
  const unread = !req.complete;
  reply(res, status, { error }, unread);
  if (unread) {
    // Drain what already arrived so the answer is written, but do not wait for the rest.
    req.resume();
  }
}
