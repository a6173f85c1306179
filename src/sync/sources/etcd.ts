// The `etcd` source: a key or a prefix on etcd v3, through etcd's JSON gateway (`/v3/kv/range`,
// `/v3/watch`, `/v3/auth/authenticate`). It reads once, then watches from the next revision; every
// event carries its revision, and after a disconnect the watch resumes from the last one applied,
// so no change is missed and none is applied twice. When that revision has been compacted away,
// the source reads everything again and watches from there. A light request every `staleAfter / 3`
// proves the server is still there while nothing changes.

import type { IncomingMessage } from 'node:http';
import type { TimerHandle } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import type { EtcdSourceConfig } from '../config.js';
import { HttpClient, readSecretFile, statusError } from './http-client.js';
import { ONLY, Retry, type Source, type SourceHost, sourceError } from './source.js';

interface KeyValue {
  key?: string;
  value?: string;
  mod_revision?: string;
}

interface WatchMessage {
  result?: {
    header?: { revision?: string };
    created?: boolean;
    canceled?: boolean;
    compact_revision?: string;
    cancel_reason?: string;
    events?: { type?: string; kv?: KeyValue }[];
  };
  error?: { message?: string; http_code?: number };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The end of the range of every key starting with prefix (etcd's GetPrefixRangeEnd). */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

export class EtcdSource implements Source {
  readonly #cfg: EtcdSourceConfig;
  readonly #host: SourceHost;
  readonly #what: string;
  readonly #client: HttpClient;
  readonly #retry: Retry;
  readonly #values = new Map<string, string>();
  #endpoint = 0;
  /** The revision every value in #values is current to; 0 before the first read. */
  #revision = 0;
  #loaded = false;
  #token: string | undefined;
  #abort = new AbortController();
  #stream: IncomingMessage | undefined;
  #ping: TimerHandle | undefined;
  #stopped = false;

  constructor(name: string, cfg: EtcdSourceConfig, host: SourceHost) {
    this.#cfg = cfg;
    this.#host = host;
    this.#what = `etcd source ${name}`;
    this.#client = new HttpClient(this.#what, cfg.tls);
    this.#retry = new Retry(cfg.backoff, host.random);
  }

  /** The revision the source's values are current to (tests). */
  get revision(): number {
    return this.#revision;
  }

  start(): void {
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#ping?.cancel();
    this.#abort.abort();
    this.#stream?.destroy();
    this.#client.close();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (!this.#loaded) await this.#load();
        this.#schedulePing();
        await this.#watch();
      } catch (err) {
        if (this.#stopped) return;
        const e = sourceError(this.#what, err);
        if (e.code === 'PILLION_ERR_SYNC_SOURCE_AUTH') this.#token = undefined;
        this.#host.fail(e);
        this.#endpoint = (this.#endpoint + 1) % this.#cfg.endpoints.length;
        await this.#sleep(this.#retry.next());
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#host.clock.setTimeout(resolve, ms));
  }

  #url(path: string): string {
    return `${this.#cfg.endpoints[this.#endpoint]!.replace(/\/+$/, '')}${path}`;
  }

  #range(): { key: string; range_end?: string } {
    return this.#cfg.prefix
      ? { key: b64(this.#cfg.key), range_end: b64(prefixRangeEnd(this.#cfg.key)) }
      : { key: b64(this.#cfg.key) };
  }

  async #headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.#cfg.username === undefined) return headers;
    if (this.#token === undefined) {
      const password = readSecretFile(this.#cfg.passwordFile!, this.#what);
      const res = await this.#client.request(this.#url('/v3/auth/authenticate'), {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: this.#cfg.username, password }),
        timeoutMs: this.#cfg.timeout,
        signal: this.#abort.signal,
      });
      if (res.status !== 200)
        throw statusError(
          `${this.#what}: authenticate as ${this.#cfg.username}`,
          res.status === 400 ? 401 : res.status,
        );
      this.#token = (JSON.parse(res.body.toString('utf8')) as { token?: string }).token;
    }
    return { ...headers, authorization: this.#token ?? '' };
  }

  async #post(path: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await this.#client.request(this.#url(path), {
      method: 'POST',
      headers: await this.#headers(),
      body: JSON.stringify(body),
      timeoutMs: this.#cfg.timeout,
      signal: this.#abort.signal,
    });
    if (res.status !== 200) throw etcdError(this.#what, res.status, res.body);
    return JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
  }

  /** Reads every value of the key or prefix, and the revision they are current to. */
  async #load(): Promise<void> {
    const r = (await this.#post('/v3/kv/range', this.#range())) as {
      header?: { revision?: string };
      kvs?: KeyValue[];
    };
    this.#values.clear();
    for (const kv of r.kvs ?? []) this.#values.set(this.#name(unb64(kv.key)), unb64(kv.value));
    this.#revision = Number(r.header?.revision ?? 0);
    this.#loaded = true;
    this.#retry.reset();
    this.#publish();
  }

  #name(key: string): string {
    return this.#cfg.prefix ? key.slice(this.#cfg.key.length) : ONLY;
  }

  #publish(): void {
    this.#host.update(new Map(this.#values), String(this.#revision));
  }

  /** Watches from the revision after the last applied; resolves when the stream ends. */
  async #watch(): Promise<void> {
    const res = await this.#client.open(this.#url('/v3/watch'), {
      method: 'POST',
      headers: await this.#headers(),
      body: JSON.stringify({
        create_request: { ...this.#range(), start_revision: String(this.#revision + 1) },
      }),
      timeoutMs: this.#cfg.timeout,
      signal: this.#abort.signal,
    });
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw etcdError(this.#what, res.statusCode ?? 0, Buffer.concat(chunks));
    }
    this.#stream = res;
    let buffered = '';
    try {
      for await (const chunk of res) {
        buffered += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line !== '' && this.#message(JSON.parse(line) as WatchMessage) === 'again') {
            res.destroy();
            return;
          }
        }
      }
    } catch (err) {
      if (this.#stopped) return;
      throw new PillionError(
        'PILLION_ERR_SYNC_SOURCE',
        `${this.#what}: the watch broke: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    } finally {
      this.#stream = undefined;
    }
    if (!this.#stopped) throw new PillionError('PILLION_ERR_SYNC_SOURCE', `${this.#what}: the watch ended`);
  }

  /** Applies one watch message; 'again' when the watch must be set up anew (compaction). */
  #message(m: WatchMessage): 'again' | undefined {
    if (m.error) {
      throw etcdError(this.#what, m.error.http_code ?? 500, Buffer.from(m.error.message ?? ''));
    }
    const r = m.result;
    if (!r) return undefined;
    if (r.compact_revision !== undefined && Number(r.compact_revision) > 0) {
      // The revision to resume from was compacted: read everything again, then watch from there.
      this.#host.logger.info(
        { source: this.#what, from: this.#revision + 1, compacted: Number(r.compact_revision) },
        'etcd: the watch revision was compacted; reading the values again',
      );
      this.#loaded = false;
      return 'again';
    }
    if (r.canceled)
      throw new PillionError(
        'PILLION_ERR_SYNC_SOURCE',
        `${this.#what}: the watch was cancelled${r.cancel_reason ? `: ${r.cancel_reason}` : ''}`,
      );
    if (r.created) {
      this.#retry.reset();
      this.#host.contact(String(this.#revision));
      return undefined;
    }
    const changes = new Map<string, string | undefined>();
    for (const ev of r.events ?? []) {
      const rev = Number(ev.kv?.mod_revision ?? 0);
      if (rev <= this.#revision) continue; // applied already (never twice)
      const name = this.#name(unb64(ev.kv?.key));
      const value = ev.type === 'DELETE' ? undefined : unb64(ev.kv?.value);
      if (value === undefined) this.#values.delete(name);
      else this.#values.set(name, value);
      changes.set(name, value);
      // Only events move the revision: a response's header may be ahead of events still to come.
      this.#revision = rev;
    }
    if (changes.size > 0) this.#host.patch(changes, String(this.#revision));
    else this.#host.contact(String(this.#revision));
    return undefined;
  }

  /** Proves the server is there while nothing changes (the watch stream says nothing then). */
  #schedulePing(): void {
    this.#ping?.cancel();
    const every = Math.max(1000, Math.floor(this.#cfg.staleAfter / 3));
    this.#ping = this.#host.clock.setTimeout(() => {
      if (this.#stopped) return;
      this.#post('/v3/kv/range', { ...this.#range(), count_only: true })
        .then(
          () => this.#host.contact(String(this.#revision)),
          (err: unknown) => this.#host.fail(sourceError(this.#what, err)),
        )
        .finally(() => this.#schedulePing());
    }, every);
  }
}

/** An error answer of the gateway: its status and etcd's own message (which never carries a value). */
function etcdError(what: string, status: number, body: Buffer): PillionError {
  let detail: string | undefined;
  try {
    const j = JSON.parse(body.toString('utf8')) as { error?: string; message?: string };
    detail = j.message ?? j.error;
  } catch {
    detail = undefined;
  }
  const auth = /permission denied|invalid auth token|user name|authentication failed/i.test(detail ?? '');
  return statusError(what, auth && status < 401 ? 401 : status, detail?.slice(0, 200));
}
