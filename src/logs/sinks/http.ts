// Generic HTTP sink driver: a batch as NDJSON or a JSON array to any endpoint; 2xx is stored,
// 408/429/5xx and network errors are retried, other statuses are permanent.

import type { HttpSinkConfig } from '../config.js';
import type { LogEvent, SendOutcome, SinkDriver } from '../types.js';
import {
  basicAuth,
  type DriverDeps,
  encodeJsonArray,
  encodeNdjson,
  HttpDelivery,
  splitUrl,
  withUnencodable,
} from './http-delivery.js';

export function createHttpDriver(cfg: HttpSinkConfig, deps: DriverDeps = {}): SinkDriver {
  return new HttpDriver(cfg, deps);
}

class HttpDriver implements SinkDriver {
  #http: HttpDelivery;
  #path: string;
  #json: boolean;

  constructor(cfg: HttpSinkConfig, deps: DriverDeps) {
    const url = splitUrl(cfg.url);
    const headers: Record<string, string> = {};
    if (url.user !== undefined) headers.authorization = basicAuth(url.user, url.password);
    let contentType = cfg.encoding === 'json' ? 'application/json' : 'application/x-ndjson';
    for (const [name, value] of Object.entries(cfg.headers)) {
      // The configured content type wins over the one the encoding implies.
      if (name.toLowerCase() === 'content-type') contentType = value;
      else headers[name] = value;
    }
    this.#http = new HttpDelivery({
      url,
      method: cfg.method,
      contentType,
      compression: cfg.compression,
      timeoutMs: cfg.retry.timeout,
      headers,
      clock: deps.clock,
    });
    this.#path = this.#http.path('');
    this.#json = cfg.encoding === 'json';
  }

  async send(events: LogEvent[], signal: AbortSignal): Promise<SendOutcome> {
    const batch = this.#json ? encodeJsonArray(events) : encodeNdjson(events);
    if (batch.sent.length === 0) return withUnencodable({ kind: 'ok' }, batch.unencodable);
    const reply = await this.#http.send(this.#path, batch.body, signal);
    if (reply.kind === 'failed') return reply;
    if (reply.status >= 200 && reply.status < 300) return withUnencodable({ kind: 'ok' }, batch.unencodable);
    return this.#http.classify(reply);
  }

  async close(): Promise<void> {
    await this.#http.close();
  }
}
