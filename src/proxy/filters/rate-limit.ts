// Local rate limits as token buckets (Envoy's local_ratelimit): maxTokens, refilled by
// tokensPerFill every fillInterval, refilled lazily from the injected clock when a request comes
// (no timers). One bucket, or one per key (client address, principal, header, JWT claim) in a
// table bounded by maxKeys, least recently used out. Over the limit: 429 with Retry-After and the
// RateLimit-Limit/-Remaining/-Reset headers.

import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import type { LogLimiter } from '../../lib/log-limiter.js';
import type { Series } from '../../metrics/index.js';
import type { RateLimitConfig } from './config.js';
import type { FilterStats } from './stats.js';
import { type Denial, type FilterRequest, headerOf, type RequestFilter, type Verdict } from './types.js';

interface Bucket {
  tokens: number;
  /** When tokens were last refilled (a whole number of intervals after the previous refill). */
  at: number;
}

/** The buckets of one limit, shared by every listener and route it applies to. */
export class Limiter {
  readonly cfg: RateLimitConfig;
  readonly #clock: Clock;
  readonly #one: Bucket;
  readonly #table = new Map<string, Bucket>();
  readonly #evicted: Series;

  constructor(cfg: RateLimitConfig, clock: Clock, stats: FilterStats) {
    this.cfg = cfg;
    this.#clock = clock;
    this.#one = { tokens: cfg.maxTokens, at: clock.now() };
    this.#evicted = stats.evicted.with({ limit: cfg.name });
  }

  /** Same settings: a reload keeps the buckets as they are. */
  static key(cfg: RateLimitConfig): string {
    return JSON.stringify([cfg.key, cfg.maxTokens, cfg.tokensPerFill, cfg.fillInterval, cfg.maxKeys]);
  }

  get keys(): number {
    return this.#table.size;
  }

  /** Takes a token; returns -1 when allowed, else ms until the next token. `out[0]` gets the tokens left. */
  take(key: string | undefined, out: number[]): number {
    const now = this.#clock.now();
    const b = key === undefined ? this.#one : this.#bucket(key, now);
    const c = this.cfg;
    const intervals = Math.floor((now - b.at) / c.fillInterval);
    if (intervals > 0) {
      b.tokens = Math.min(c.maxTokens, b.tokens + intervals * c.tokensPerFill);
      b.at += intervals * c.fillInterval;
    }
    if (b.tokens >= c.maxTokens) b.at = now;
    if (b.tokens >= 1) {
      b.tokens--;
      out[0] = b.tokens;
      return -1;
    }
    out[0] = 0;
    return b.at + c.fillInterval - now;
  }

  /** ms until the bucket holding `left` tokens is full again. */
  untilFull(left: number, nextMs: number): number {
    const c = this.cfg;
    const missing = c.maxTokens - left;
    if (missing <= 0) return 0;
    return nextMs + (Math.ceil(missing / c.tokensPerFill) - 1) * c.fillInterval;
  }

  #bucket(key: string, now: number): Bucket {
    let b = this.#table.get(key);
    if (b !== undefined) {
      this.#table.delete(key);
      this.#table.set(key, b);
      return b;
    }
    if (this.#table.size >= this.cfg.maxKeys) {
      this.#table.delete(this.#table.keys().next().value!);
      this.#evicted.value++;
    }
    b = { tokens: this.cfg.maxTokens, at: now };
    this.#table.set(key, b);
    return b;
  }
}

/** One limit on one listener and route: its own series, the limit's buckets. */
export class RateLimitFilter implements RequestFilter {
  readonly #limiter: Limiter;
  readonly #allowed: Series;
  readonly #limited: Series;
  readonly #by: RateLimitConfig['key']['by'];
  readonly #name: string;
  readonly #limitHeader: string;
  readonly #out = [0];
  readonly #log: { logger: Logger; limiter: LogLimiter; listener: string; route: string };

  constructor(
    limiter: Limiter,
    stats: FilterStats,
    log: { logger: Logger; limiter: LogLimiter; listener: string; route: string },
  ) {
    const { listener, route } = log;
    this.#log = log;
    this.#limiter = limiter;
    const c = limiter.cfg;
    this.#by = c.key.by;
    this.#name = c.key.name?.toLowerCase() ?? '';
    this.#allowed = stats.rateLimit.with({ listener, route, limit: c.name, result: 'allowed' });
    this.#limited = stats.rateLimit.with({ listener, route, limit: c.name, result: 'limited' });
    // RateLimit-Limit as draft-ietf-httpapi-ratelimit-headers writes a quota and its window.
    this.#limitHeader = `${c.maxTokens}, ${c.maxTokens};w=${Math.max(1, Math.round((c.fillInterval * c.maxTokens) / c.tokensPerFill / 1000))}`;
  }

  run(req: FilterRequest): Verdict {
    const wait = this.#limiter.take(this.#key(req), this.#out);
    if (wait < 0) {
      this.#allowed.value++;
      return undefined;
    }
    this.#limited.value++;
    req.details = `local_rate_limited{${this.#limiter.cfg.name}}`;
    const l = this.#log;
    const skipped = l.limiter.admit(`ratelimit:${this.#limiter.cfg.name}:${l.route}`);
    if (skipped >= 0)
      l.logger.info(
        {
          listener: l.listener,
          route: l.route,
          limit: this.#limiter.cfg.name,
          client: req.clientIp,
          ...(skipped > 0 ? { suppressed: skipped } : {}),
        },
        'rate limited (429)',
      );
    const retry = Math.max(1, Math.ceil(wait / 1000));
    const reset = Math.max(1, Math.ceil(this.#limiter.untilFull(0, wait) / 1000));
    const d: Denial = {
      status: 429,
      body: 'local_rate_limited\n',
      headers: [
        ['retry-after', String(retry)],
        ['ratelimit-limit', this.#limitHeader],
        ['ratelimit-remaining', '0'],
        ['ratelimit-reset', String(reset)],
      ],
      flag: 'RL',
    };
    return d;
  }

  #key(req: FilterRequest): string | undefined {
    switch (this.#by) {
      case 'none':
        return undefined;
      case 'clientAddress':
        return req.clientIp;
      case 'principal':
        return req.requestPrincipal ?? req.peerPrincipal;
      case 'header':
        return headerOf(req, this.#name);
      case 'claim': {
        const v = req.claims?.[this.#name];
        return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
      }
    }
  }
}
