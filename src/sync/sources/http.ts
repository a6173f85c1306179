// The `http` source: GETs a URL, with `If-None-Match` so an unchanged value costs a 304 and no
// render; a token from a file (read at every request, so a rotated token is used at once); polled
// at `interval`, or long-polled (RFC 7240 `Prefer: wait`) where the server holds the request until
// the value changes. A failure keeps the last value and retries with this source's back-off.

import { createHash } from 'node:crypto';
import type { HttpSourceConfig } from '../config.js';
import { HttpClient, readSecretFile, statusError } from './http-client.js';
import { ONLY, Poller, Retry, type Source, type SourceHost } from './source.js';

/** A long-poll answer quicker than this is a server that does not hold requests: wait `interval`. */
const HELD = 1000;

export class HttpSource implements Source {
  readonly #cfg: HttpSourceConfig;
  readonly #host: SourceHost;
  readonly #what: string;
  readonly #client: HttpClient;
  readonly #poller: Poller;
  #etag: string | undefined;
  #abort = new AbortController();

  constructor(name: string, cfg: HttpSourceConfig, host: SourceHost) {
    this.#cfg = cfg;
    this.#host = host;
    this.#what = `http source ${name}`;
    this.#client = new HttpClient(this.#what, cfg.tls);
    this.#poller = new Poller(host, new Retry(cfg.backoff, host.random), this.#what, () => this.#once());
  }

  start(): void {
    this.#poller.start();
  }

  stop(): void {
    this.#poller.stop();
    this.#abort.abort();
    this.#client.close();
  }

  /** One request; the delay before the next: none while a long poll is held, else `interval`. */
  async #once(): Promise<number> {
    const began = this.#host.clock.now();
    const changed = await this.#fetch();
    const held = this.#cfg.longPoll !== undefined && (changed || this.#host.clock.now() - began >= HELD);
    return held ? 0 : this.#cfg.interval;
  }

  /** One request; true when a new value came. */
  async #fetch(): Promise<boolean> {
    const headers: Record<string, string> = { accept: '*/*', ...this.#cfg.headers };
    if (this.#cfg.tokenFile !== undefined)
      headers.authorization = `Bearer ${readSecretFile(this.#cfg.tokenFile, this.#what)}`;
    if (this.#etag !== undefined) headers['if-none-match'] = this.#etag;
    let timeoutMs = this.#cfg.timeout;
    if (this.#cfg.longPoll) {
      headers.prefer = `wait=${Math.round(this.#cfg.longPoll.wait / 1000)}`;
      timeoutMs += this.#cfg.longPoll.wait;
    }
    const res = await this.#client.request(this.#cfg.url, { headers, timeoutMs, signal: this.#abort.signal });
    if (res.status === 304) {
      this.#host.contact(this.#etag);
      return false;
    }
    if (res.status !== 200) throw statusError(this.#what, res.status);
    const text = res.body.toString('utf8');
    const etag = res.headers.etag;
    this.#etag = typeof etag === 'string' ? etag : undefined;
    const version = this.#etag ?? createHash('sha256').update(text).digest('hex').slice(0, 12);
    this.#host.update(new Map([[ONLY, text]]), version);
    return true;
  }
}
