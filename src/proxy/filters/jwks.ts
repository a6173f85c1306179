// An issuer's public keys (JWKS): inline, from a file, or fetched from jwksUri and cached as its
// Cache-Control says, refreshed in the background, fetched again (rate-limited) when a token names
// a key id the set lacks, and kept as the last good set while the endpoint is down.

import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { JwtIssuerConfig } from './config.js';
import { parseJwks } from './jwks-document.js';
import type { FilterStats } from './stats.js';

/** Cache lifetime bounds and the default when the endpoint sends no max-age. */
const MIN_TTL_MS = 60_000;
const MAX_TTL_MS = 24 * 3600_000;
const DEFAULT_TTL_MS = 5 * 60_000;
/** Retry after a failed fetch; and the least time between two fetches for an unknown key id. */
const RETRY_MS = 30_000;
export const UNKNOWN_KID_INTERVAL_MS = 30_000;
/** A JWKS document larger than this is refused. */
const MAX_JWKS_BYTES = 512 * 1024;

export interface JwksState {
  issuer: string;
  source: 'jwksUri' | 'jwks' | 'jwksFile';
  uri?: string;
  keys: { kid: string | null; kty: string; alg: string | null }[];
  fetchedAt: string | null;
  nextRefreshAt: string | null;
  lastError: string | null;
}

export class Jwks {
  readonly issuer: string;
  readonly #cfg: JwtIssuerConfig;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #stats: FilterStats;
  #set: JSONWebKeySet | undefined;
  #getKey: JWTVerifyGetKey | undefined;
  #kids: JwksState['keys'] = [];
  #fetchedAt = 0;
  #nextAt = 0;
  #lastError: string | null = null;
  #timer: TimerHandle | undefined;
  #inflight: Promise<void> | undefined;
  #lastUnknownKid = -Infinity;
  #closed = false;

  constructor(cfg: JwtIssuerConfig, deps: { clock: Clock; logger: Logger; stats: FilterStats }) {
    this.issuer = cfg.issuer;
    this.#cfg = cfg;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#stats = deps.stats;
  }

  /** Same config, same keys: a reload keeps the instance (and its fetched set). */
  static key(cfg: JwtIssuerConfig): string {
    return JSON.stringify([cfg.jwksUri, cfg.jwks, cfg.jwksFile, cfg.timeout]);
  }

  /** Loads the keys: inline and file sets must load; a first fetch that fails is retried in the background. */
  async start(): Promise<void> {
    const c = this.#cfg;
    if (c.jwks !== undefined) this.#use(parseJwks(c.jwks, 'jwks'));
    else if (c.jwksFile !== undefined) this.#use(parseJwks(await readFile(c.jwksFile, 'utf8'), c.jwksFile));
    else await this.#fetch('start');
  }

  get ready(): boolean {
    return this.#getKey !== undefined;
  }

  /** The key for a token's header; a key id not in the set triggers one refetch, at most every 30 s. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.#getKey === undefined) {
      if (this.#cfg.jwksUri !== undefined) await this.#refetchForUnknownKid();
      if (this.#getKey === undefined) throw new JwksUnavailable();
    }
    try {
      return await this.#getKey(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.#cfg.jwksUri === undefined) throw err;
      if (!(await this.#refetchForUnknownKid())) throw err;
      return this.#getKey(header, token);
    }
  };

  state(): JwksState {
    const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
    const c = this.#cfg;
    return {
      issuer: this.issuer,
      source: c.jwksUri !== undefined ? 'jwksUri' : c.jwks !== undefined ? 'jwks' : 'jwksFile',
      ...(c.jwksUri !== undefined ? { uri: c.jwksUri } : {}),
      keys: this.#kids,
      fetchedAt: iso(this.#fetchedAt),
      nextRefreshAt: iso(this.#nextAt),
      lastError: this.#lastError,
    };
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
  }

  /** Whether a fetch was made (false when the last one for an unknown key id was too recent). */
  async #refetchForUnknownKid(): Promise<boolean> {
    const now = this.#clock.now();
    if (this.#inflight) {
      await this.#inflight;
      return true;
    }
    if (now - this.#lastUnknownKid < UNKNOWN_KID_INTERVAL_MS) return false;
    this.#lastUnknownKid = now;
    await this.#fetch('unknown_kid');
    return true;
  }

  #fetch(why: string): Promise<void> {
    this.#inflight ??= this.#doFetch(why).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #doFetch(why: string): Promise<void> {
    const uri = this.#cfg.jwksUri!;
    let ttl = RETRY_MS;
    try {
      const res = await fetch(uri, {
        signal: AbortSignal.timeout(this.#cfg.timeout),
        headers: { accept: 'application/jwk-set+json, application/json' },
        redirect: 'error',
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const len = Number(res.headers.get('content-length') ?? 0);
      if (len > MAX_JWKS_BYTES) throw new Error(`JWKS of ${len} bytes is too large`);
      const text = await res.text();
      if (text.length > MAX_JWKS_BYTES) throw new Error('JWKS is too large');
      this.#use(parseJwks(text, uri));
      this.#fetchedAt = this.#clock.now();
      this.#lastError = null;
      ttl = cacheTtl(res.headers.get('cache-control'));
      this.#stats.jwks.with({ issuer: this.issuer, result: 'ok', why }).value++;
    } catch (err) {
      const reason =
        err instanceof Error ? (err.name === 'TimeoutError' ? 'timed out' : err.message) : String(err);
      this.#lastError = reason;
      this.#stats.jwks.with({ issuer: this.issuer, result: 'error', why }).value++;
      this.#logger.warn(
        { issuer: this.issuer, jwksUri: uri, err: reason, keptKeys: this.#kids.length },
        this.#set ? 'JWKS fetch failed; the last good keys stay in use' : 'JWKS fetch failed; no keys yet',
      );
    }
    if (this.#closed) return;
    this.#timer?.cancel();
    this.#nextAt = this.#clock.now() + ttl;
    this.#timer = this.#clock.setTimeout(() => void this.#fetch('refresh'), ttl);
  }

  #use(set: JSONWebKeySet): void {
    this.#set = set;
    this.#getKey = createLocalJWKSet(set);
    this.#kids = set.keys.map((k) => ({ kid: k.kid ?? null, kty: String(k.kty), alg: k.alg ?? null }));
  }
}

export class JwksUnavailable extends Error {
  constructor() {
    super('no keys: the JWKS endpoint has not answered yet');
  }
}

/** max-age from Cache-Control, within [1m, 24h]; 5m without one, 1m for no-cache/no-store. */
export function cacheTtl(header: string | null): number {
  if (header === null) return DEFAULT_TTL_MS;
  const h = header.toLowerCase();
  if (h.includes('no-store') || h.includes('no-cache')) return MIN_TTL_MS;
  const m = /(?:^|[,\s])max-age=(\d+)/.exec(h);
  if (!m) return DEFAULT_TTL_MS;
  return Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, Number(m[1]) * 1000));
}
