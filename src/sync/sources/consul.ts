// The `consul` source: Consul KV over its HTTP API with blocking queries. Each request carries the
// last `X-Consul-Index` as `?index=` and a `wait`, so Consul answers when the key (or prefix)
// changes or the wait ends. The index is handled as Consul's documentation on blocking queries
// says: an index that goes backwards (a snapshot restore, a new leader) is reset to 0, so the next
// query is a plain read; an index that is not above 0 is reset to 1 (blocking on 0 would answer at
// once); an answer with the same index is not a change; and queries are spaced by `minInterval`.
// A 404 is a key that is not there (no value, never an empty one); 403 is an auth error.

import { PillionError } from '../../lib/errors.js';
import type { ConsulSourceConfig } from '../config.js';
import { HttpClient, readSecretFile, statusError } from './http-client.js';
import { ONLY, Poller, Retry, type Source, type SourceHost } from './source.js';

interface KvEntry {
  Key: string;
  Value: string | null;
  ModifyIndex?: number;
}

export class ConsulSource implements Source {
  readonly #cfg: ConsulSourceConfig;
  readonly #host: SourceHost;
  readonly #what: string;
  readonly #client: HttpClient;
  readonly #poller: Poller;
  /** The X-Consul-Index of the last answer; 0 before the first (a plain read). */
  #index = 0;
  #abort = new AbortController();

  constructor(name: string, cfg: ConsulSourceConfig, host: SourceHost) {
    this.#cfg = cfg;
    this.#host = host;
    this.#what = `consul source ${name}`;
    this.#client = new HttpClient(this.#what, cfg.tls);
    this.#poller = new Poller(host, new Retry(cfg.backoff, host.random), this.#what, () => this.#once());
  }

  /** The index the next query waits on (tests). */
  get index(): number {
    return this.#index;
  }

  start(): void {
    this.#poller.start();
  }

  stop(): void {
    this.#poller.stop();
    this.#abort.abort();
    this.#client.close();
  }

  /** One blocking query; the next waits what is left of `minInterval`. */
  async #once(): Promise<number> {
    const began = this.#host.clock.now();
    await this.#query();
    return Math.max(0, this.#cfg.minInterval - (this.#host.clock.now() - began));
  }

  async #query(): Promise<void> {
    const url = new URL(`/v1/kv/${this.#cfg.key.replace(/^\/+/, '')}`, this.#cfg.address);
    if (this.#cfg.recurse) url.searchParams.set('recurse', 'true');
    if (this.#cfg.datacenter) url.searchParams.set('dc', this.#cfg.datacenter);
    let timeoutMs = this.#cfg.timeout;
    if (this.#index > 0) {
      url.searchParams.set('index', String(this.#index));
      url.searchParams.set('wait', `${Math.round(this.#cfg.wait / 1000)}s`);
      timeoutMs += this.#cfg.wait + this.#cfg.wait / 16;
    }
    const headers: Record<string, string> = {};
    if (this.#cfg.tokenFile !== undefined)
      headers['x-consul-token'] = readSecretFile(this.#cfg.tokenFile, this.#what);
    const res = await this.#client.request(url, { headers, timeoutMs, signal: this.#abort.signal });
    if (res.status !== 200 && res.status !== 404)
      throw statusError(
        this.#what,
        res.status,
        res.status === 403 ? 'ACL not found or permission denied' : undefined,
      );
    const header = Number(res.headers['x-consul-index']);
    if (!Number.isFinite(header))
      throw new PillionError('PILLION_ERR_SYNC_SOURCE', `${this.#what}: the answer has no X-Consul-Index`);
    const previous = this.#index;
    // Consul's reset rules: backwards is reset to 0 (a plain read next); not above 0 is reset to 1.
    this.#index = header < previous ? 0 : header < 1 ? 1 : header;
    if (header === previous && previous > 0) {
      this.#host.contact(String(header)); // the wait ended, nothing changed
      return;
    }
    const entries = res.status === 404 ? [] : (JSON.parse(res.body.toString('utf8')) as KvEntry[]);
    const values = new Map<string, string>();
    for (const e of entries) {
      if (e.Value === null) continue; // a folder, or a key without a value
      const text = Buffer.from(e.Value, 'base64').toString('utf8');
      if (!this.#cfg.recurse) values.set(ONLY, text);
      else values.set(e.Key.slice(this.#cfg.key.length), text);
    }
    this.#host.update(values, String(header));
  }
}
