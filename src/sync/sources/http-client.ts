// The small HTTP client the sync sources and the HTTP notifier share: node:http(s) with a
// keep-alive agent, TLS from files, a timeout per request, an abort signal, and a bound on the
// size of what it reads. Errors are PillionErrors that never carry a header value or a body.

import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { PillionError } from '../../lib/errors.js';
import type { SyncTlsConfig } from '../config.js';

export interface HttpResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Larger bodies fail the request. */
  maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export class HttpClient {
  readonly #http = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  readonly #https: HttpsAgent;
  readonly #what: string;

  /** `what` names the peer in errors ("etcd source settings"). Throws when a TLS file cannot be read. */
  constructor(what: string, tls?: SyncTlsConfig) {
    this.#what = what;
    let ca: Buffer | undefined;
    let cert: Buffer | undefined;
    let key: Buffer | undefined;
    try {
      ca = tls?.caFile ? readFileSync(tls.caFile) : undefined;
      cert = tls?.certFile ? readFileSync(tls.certFile) : undefined;
      key = tls?.keyFile ? readFileSync(tls.keyFile) : undefined;
    } catch (err) {
      throw new PillionError('PILLION_ERR_TLS_FILE', `${what}: ${(err as Error).message}`);
    }
    this.#https = new HttpsAgent({
      keepAlive: true,
      maxSockets: 4,
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(tls?.serverName ? { servername: tls.serverName } : {}),
    });
  }

  /** Sends a request and reads the whole answer. */
  async request(url: string | URL, opts: RequestOptions): Promise<HttpResponse> {
    const res = await this.open(url, opts);
    const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res) {
        size += (chunk as Buffer).length;
        if (size > max) {
          res.destroy();
          throw new PillionError(
            'PILLION_ERR_SYNC_SOURCE',
            `${this.#what}: the answer is larger than ${max} bytes`,
          );
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof PillionError) throw err;
      throw this.#failure(url, err);
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** Sends a request and resolves with the response once its head arrived (for streams: etcd's watch). */
  open(url: string | URL, opts: RequestOptions): Promise<IncomingMessage> {
    const u = typeof url === 'string' ? new URL(url) : url;
    const tls = u.protocol === 'https:';
    const send = tls ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
      const req = send(u, {
        method: opts.method ?? 'GET',
        headers,
        agent: tls ? this.#https : this.#http,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      // The timeout bounds the wait for the head; a stream's body has its own life.
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)),
        opts.timeoutMs,
      );
      timer.unref();
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(this.#failure(u, err));
      });
      req.end(opts.body);
    });
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }

  #failure(url: string | URL, err: unknown): PillionError {
    const u = typeof url === 'string' ? new URL(url) : url;
    const e = err as NodeJS.ErrnoException;
    const why = e.name === 'AbortError' ? 'aborted' : (e.code ?? e.message);
    // Only the origin: a query string may carry a token.
    return new PillionError('PILLION_ERR_SYNC_SOURCE', `${this.#what}: ${u.origin} ${why}`, { cause: err });
  }
}

/** The error for an HTTP status a source did not expect; 401 and 403 are auth errors. */
export function statusError(what: string, status: number, detail?: string): PillionError {
  const auth = status === 401 || status === 403;
  return new PillionError(
    auth ? 'PILLION_ERR_SYNC_SOURCE_AUTH' : 'PILLION_ERR_SYNC_SOURCE',
    `${what}: HTTP ${status}${auth ? ' (permission denied)' : ''}${detail ? `: ${detail}` : ''}`,
  );
}

/** Reads a secret from a file (a token, a password), trimmed; the error names the file, never its content. */
export function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new PillionError(
      'PILLION_ERR_SYNC_SOURCE_AUTH',
      `${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}
