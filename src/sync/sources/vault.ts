// The `vault` source: a KV v2 secret (read every `kv.interval`; a new `metadata.version` is a
// change) or a dynamic secret with a lease (renewed at `renewFraction` of it, fetched anew when the
// renewal is refused or cannot extend it). The token comes from a file, AppRole or Kubernetes; it
// is renewed at `renewFraction` of its TTL, and obtained again when renewal is refused or a request
// says it is no longer valid. Every timer is on the injected clock. A failure keeps the last values
// (so the last files) and retries with back-off; no token, secret id, JWT or value is ever logged.

import type { TimerHandle } from '../../lib/clock.js';
import { PillionError } from '../../lib/errors.js';
import type { VaultSourceConfig } from '../config.js';
import { HttpClient, type HttpResponse, readSecretFile, statusError } from './http-client.js';
import { Retry, type Source, type SourceHost, sourceError } from './source.js';

interface AuthAnswer {
  auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
  data?: { ttl?: number; renewable?: boolean };
}

interface SecretAnswer {
  lease_id?: string;
  lease_duration?: number;
  renewable?: boolean;
  data?: Record<string, unknown> & { data?: Record<string, unknown>; metadata?: { version?: number } };
}

export class VaultSource implements Source {
  readonly #cfg: VaultSourceConfig;
  readonly #host: SourceHost;
  readonly #what: string;
  readonly #client: HttpClient;
  readonly #retry: Retry;
  #token: string | undefined;
  #tokenTimer: TimerHandle | undefined;
  #timer: TimerHandle | undefined;
  #lease: { id: string; duration: number } | undefined;
  #kvVersion: number | undefined;
  #abort = new AbortController();
  #stopped = false;
  /** How many times the token was renewed and obtained (tests, /sync). */
  readonly counts = { logins: 0, tokenRenewals: 0, leaseRenewals: 0, fetches: 0 };

  constructor(name: string, cfg: VaultSourceConfig, host: SourceHost) {
    this.#cfg = cfg;
    this.#host = host;
    this.#what = `vault source ${name}`;
    this.#client = new HttpClient(this.#what, cfg.tls);
    this.#retry = new Retry(cfg.backoff, host.random);
  }

  start(): void {
    void this.#cycle(() => this.#fetch());
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#tokenTimer?.cancel();
    this.#abort.abort();
    this.#client.close();
  }

  /** Runs a step; on failure reports it and runs the fetch again after this source's back-off. */
  async #cycle(step: () => Promise<void>): Promise<void> {
    if (this.#stopped) return;
    try {
      await step();
      this.#retry.reset();
    } catch (err) {
      if (this.#stopped) return;
      const e = sourceError(this.#what, err);
      this.#host.fail(e);
      this.#lease = undefined;
      this.#schedule(() => this.#fetch(), this.#retry.next());
    }
  }

  #schedule(step: () => Promise<void>, ms: number): void {
    this.#timer?.cancel();
    this.#timer = this.#host.clock.setTimeout(() => void this.#cycle(step), ms);
  }

  // --- requests ---------------------------------------------------------------------------------

  async #call(method: string, path: string, body?: unknown, token = true): Promise<HttpResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token && this.#token !== undefined) headers['x-vault-token'] = this.#token;
    if (this.#cfg.namespace) headers['x-vault-namespace'] = this.#cfg.namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return this.#client.request(new URL(`/v1/${path.replace(/^\/+/, '')}`, this.#cfg.address), {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      timeoutMs: this.#cfg.timeout,
      signal: this.#abort.signal,
    });
  }

  #error(what: string, res: HttpResponse): PillionError {
    let detail: string | undefined;
    try {
      const errors = (JSON.parse(res.body.toString('utf8')) as { errors?: unknown[] }).errors;
      // Vault's error texts name what failed ("permission denied", "invalid role ID"), never a secret.
      detail = errors?.map(String).join('; ').slice(0, 200) || undefined;
    } catch {
      detail = undefined;
    }
    return statusError(`${this.#what}: ${what}`, res.status, detail);
  }

  /** A request with the token; one that Vault refuses (403) is tried once more with a new token. */
  async #authed(method: string, path: string, body?: unknown): Promise<HttpResponse> {
    if (this.#token === undefined) await this.#login();
    let res = await this.#call(method, path, body);
    if (res.status === 403) {
      this.#token = undefined;
      await this.#login();
      res = await this.#call(method, path, body);
    }
    return res;
  }

  // --- the token ----------------------------------------------------------------------------------

  async #login(): Promise<void> {
    const a = this.#cfg.auth;
    let ttl: number;
    let renewable: boolean;
    if (a.method === 'token') {
      this.#token = readSecretFile(a.tokenFile, this.#what);
      const res = await this.#call('GET', 'auth/token/lookup-self');
      if (res.status !== 200) throw this.#error('token lookup', res);
      const d = (JSON.parse(res.body.toString('utf8')) as AuthAnswer).data ?? {};
      ttl = d.ttl ?? 0;
      renewable = d.renewable ?? false;
    } else {
      const body =
        a.method === 'approle'
          ? {
              role_id: a.roleId ?? readSecretFile(a.roleIdFile!, this.#what),
              ...(a.secretIdFile ? { secret_id: readSecretFile(a.secretIdFile, this.#what) } : {}),
            }
          : { role: a.role, jwt: readSecretFile(a.jwtFile, this.#what) };
      const res = await this.#call('POST', `auth/${a.mount}/login`, body, false);
      if (res.status !== 200) throw this.#error(`${a.method} login`, res);
      const auth = (JSON.parse(res.body.toString('utf8')) as AuthAnswer).auth ?? {};
      if (!auth.client_token)
        throw new PillionError('PILLION_ERR_SYNC_SOURCE_AUTH', `${this.#what}: the login gave no token`);
      this.#token = auth.client_token;
      ttl = auth.lease_duration ?? 0;
      renewable = auth.renewable ?? false;
    }
    this.counts.logins++;
    this.#scheduleTokenRenewal(ttl, renewable);
  }

  /** Renews at renewFraction of the TTL; a token that cannot be renewed is obtained again then. */
  #scheduleTokenRenewal(ttl: number, renewable: boolean): void {
    this.#tokenTimer?.cancel();
    if (ttl <= 0) return; // a token without expiry (root, or a periodic one read back as 0)
    this.#tokenTimer = this.#host.clock.setTimeout(
      () => void this.#renewToken(renewable),
      ttl * 1000 * this.#cfg.renewFraction,
    );
  }

  async #renewToken(renewable: boolean): Promise<void> {
    if (this.#stopped) return;
    try {
      if (renewable) {
        const res = await this.#call('POST', 'auth/token/renew-self', {});
        if (res.status === 200) {
          const auth = (JSON.parse(res.body.toString('utf8')) as AuthAnswer).auth ?? {};
          this.counts.tokenRenewals++;
          this.#scheduleTokenRenewal(auth.lease_duration ?? 0, auth.renewable ?? false);
          return;
        }
        this.#host.logger.warn(
          { code: 'PILLION_ERR_SYNC_SOURCE_AUTH', source: this.#what, status: res.status },
          'vault: token renewal refused; logging in again',
        );
      }
      this.#token = undefined;
      await this.#login();
    } catch (err) {
      if (this.#stopped) return;
      this.#token = undefined;
      this.#host.fail(err as PillionError);
      // The next fetch logs in again, on this source's back-off.
      this.#schedule(() => this.#fetch(), this.#retry.next());
    }
  }

  // --- the secret ---------------------------------------------------------------------------------

  async #fetch(): Promise<void> {
    if (this.#cfg.kv) {
      const kv = this.#cfg.kv;
      const res = await this.#authed('GET', `${kv.mount}/data/${kv.path}`);
      if (res.status !== 200) throw this.#error(`read ${kv.mount}/data/${kv.path}`, res);
      const d = (JSON.parse(res.body.toString('utf8')) as SecretAnswer).data;
      const version = d?.metadata?.version ?? 0;
      this.counts.fetches++;
      if (version === this.#kvVersion) this.#host.contact(String(version));
      else {
        this.#kvVersion = version;
        this.#host.update(new Map(Object.entries(d?.data ?? {})), String(version), true);
      }
      this.#schedule(() => this.#fetch(), kv.interval);
      return;
    }
    const sec = this.#cfg.secret!;
    const res = await this.#authed(sec.method, sec.path, sec.method === 'GET' ? undefined : (sec.body ?? {}));
    if (res.status !== 200) throw this.#error(`${sec.method} ${sec.path}`, res);
    const a = JSON.parse(res.body.toString('utf8')) as SecretAnswer;
    this.counts.fetches++;
    this.#lease = a.lease_id ? { id: a.lease_id, duration: a.lease_duration ?? 0 } : undefined;
    this.#host.update(
      new Map(Object.entries(a.data ?? {})),
      a.lease_id ? `lease ${this.counts.fetches}` : 'static',
      true,
    );
    const duration = a.lease_duration ?? 0;
    if (duration > 0)
      this.#schedule(
        () => (a.renewable ? this.#renewLease(duration) : this.#fetch()),
        duration * 1000 * this.#cfg.renewFraction,
      );
  }

  /** Renews the lease; refused, or not extended as asked (its max TTL is near): a new secret instead. */
  async #renewLease(increment: number): Promise<void> {
    const lease = this.#lease;
    if (!lease) return this.#fetch();
    const res = await this.#authed('PUT', 'sys/leases/renew', { lease_id: lease.id, increment });
    if (res.status !== 200) {
      this.#host.logger.warn(
        { code: 'PILLION_ERR_SYNC_SOURCE_AUTH', source: this.#what, status: res.status },
        'vault: lease renewal refused; fetching a new secret',
      );
      return this.#fetch();
    }
    const a = JSON.parse(res.body.toString('utf8')) as SecretAnswer;
    const duration = a.lease_duration ?? 0;
    this.counts.leaseRenewals++;
    this.#host.contact(`lease ${this.counts.fetches}`);
    if (duration < increment) {
      // The lease ends at its max TTL: fetch a new secret before it does.
      this.#schedule(() => this.#fetch(), duration * 1000 * this.#cfg.renewFraction);
      return;
    }
    this.#schedule(() => this.#renewLease(increment), duration * 1000 * this.#cfg.renewFraction);
  }
}
