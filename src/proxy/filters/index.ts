// The inbound proxy's request filters, built at config load: JWT authentication, then local rate
// limits, then authorization (CUSTOM, DENY, ALLOW), one chain per listener and route. The proxy
// imports this file only when one of them is configured, so an inbound without them never loads
// jose or any of this code.

import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import { LogLimiter } from '../../lib/log-limiter.js';
import type { Registry } from '../../metrics/index.js';
import { AuthzFilter } from './authz.js';
import type { SecuritySettings } from './settings.js';
import { ExtAuthzClient } from './ext-authz.js';
import { Jwks, type JwksState } from './jwks.js';
import { type CachedToken, JwtFilter } from './jwt.js';
import { Limiter, RateLimitFilter } from './rate-limit.js';
import { FilterStats } from './stats.js';
import { FilterChain, type RequestFilter } from './types.js';

export { FilterChain, newFilterRequest, type Denial, type FilterRequest, type Verdict } from './types.js';

export interface FilterDeps {
  clock: Clock;
  logger: Logger;
  metrics: Registry;
}

export interface FiltersState {
  jwt: { issuers: JwksState[]; cachedTokens: number } | null;
  authorization: { name: string; action: string; dryRun: boolean; rules: number; provider: string | null }[];
  providers: string[];
  rateLimits: {
    name: string;
    maxTokens: number;
    tokensPerFill: number;
    fillIntervalMs: number;
    key: string;
    keys: number;
  }[];
}

export class RequestFilters {
  readonly #s: SecuritySettings;
  readonly #deps: FilterDeps;
  readonly #stats: FilterStats;
  readonly #limiter: LogLimiter;
  readonly #jwks = new Map<string, Jwks>();
  readonly #jwksKeys = new Map<string, string>();
  readonly #tokens: Map<string, CachedToken>;
  readonly #providers = new Map<string, ExtAuthzClient>();
  readonly #providerKeys = new Map<string, string>();
  readonly #limits = new Map<string, Limiter>();
  readonly #chains = new Map<string, FilterChain | undefined>();

  private constructor(s: SecuritySettings, deps: FilterDeps, prev: RequestFilters | undefined) {
    this.#s = s;
    this.#deps = deps;
    this.#stats = new FilterStats(deps.metrics);
    this.#limiter = prev !== undefined ? prev.#limiter : new LogLimiter(deps.clock);
    // Verified tokens stay cached across a reload only when the issuers are the same.
    const sameIssuers = prev !== undefined && JSON.stringify(prev.#s.jwt) === JSON.stringify(s.jwt);
    this.#tokens = sameIssuers ? prev.#tokens : JwtFilter.newCache();
  }

  /** Builds the filters; keys, buckets and check clients whose settings did not change are taken over from `prev`. */
  static async build(s: SecuritySettings, deps: FilterDeps, prev?: RequestFilters): Promise<RequestFilters> {
    const f = new RequestFilters(s, deps, prev);
    const made: Jwks[] = [];
    try {
      for (const i of s.jwt?.issuers ?? []) {
        if (f.#jwks.has(i.issuer)) continue;
        const key = Jwks.key(i);
        const old =
          prev !== undefined && prev.#jwksKeys.get(i.issuer) === key ? prev.#jwks.get(i.issuer) : undefined;
        const j = old ?? new Jwks(i, { clock: deps.clock, logger: deps.logger, stats: f.#stats });
        if (!old) made.push(j);
        f.#jwks.set(i.issuer, j);
        f.#jwksKeys.set(i.issuer, key);
      }
      await Promise.all(made.map((j) => j.start()));
    } catch (err) {
      for (const j of made) j.close();
      throw err;
    }
    for (const [name, cfg] of Object.entries(s.authorization?.providers ?? {})) {
      const key = JSON.stringify(cfg);
      const old =
        prev !== undefined && prev.#providerKeys.get(name) === key ? prev.#providers.get(name) : undefined;
      f.#providers.set(name, old ?? new ExtAuthzClient(name, cfg));
      f.#providerKeys.set(name, key);
    }
    for (const r of s.rateLimits) {
      const old = prev !== undefined ? prev.#limits.get(r.name) : undefined;
      f.#limits.set(
        r.name,
        old && Limiter.key(old.cfg) === Limiter.key(r) ? old : new Limiter(r, deps.clock, f.#stats),
      );
    }
    return f;
  }

  /** The chain of one listener and route (built once, then shared by its connections), or undefined when empty. */
  chain(listener: string, route: string): FilterChain | undefined {
    const k = `${listener}\u0000${route}`;
    if (this.#chains.has(k)) return this.#chains.get(k);
    const filters: RequestFilter[] = [];
    const d = { logger: this.#deps.logger, limiter: this.#limiter, stats: this.#stats, listener };
    if (this.#s.jwt)
      filters.push(
        new JwtFilter(this.#s.jwt, this.#jwks, { ...d, clock: this.#deps.clock, cache: this.#tokens }),
      );
    for (const r of this.#s.rateLimits) {
      if (r.listeners !== undefined && !r.listeners.includes(listener)) continue;
      if (r.routes !== undefined && !r.routes.includes(route)) continue;
      filters.push(new RateLimitFilter(this.#limits.get(r.name)!, this.#stats, { ...d, route }));
    }
    if (this.#s.authorization && this.#s.authorization.policies.length > 0)
      filters.push(new AuthzFilter(this.#s.authorization, this.#providers, d));
    const chain = filters.length > 0 ? new FilterChain(filters) : undefined;
    this.#chains.set(k, chain);
    return chain;
  }

  /** What is degraded, for /readyz: issuers whose keys could not be fetched yet. */
  degraded(): string | undefined {
    const missing = [...this.#jwks.values()].filter((j) => !j.ready).map((j) => j.issuer);
    return missing.length > 0
      ? `no JWKS yet for ${missing.join(', ')} (tokens of these issuers get 401)`
      : undefined;
  }

  state(): FiltersState {
    const s = this.#s;
    return {
      jwt: s.jwt
        ? { issuers: [...this.#jwks.values()].map((j) => j.state()), cachedTokens: this.#tokens.size }
        : null,
      authorization: (s.authorization?.policies ?? []).map((p) => ({
        name: p.name,
        action: p.action,
        dryRun: p.dryRun,
        rules: p.rules.length,
        provider: p.provider ?? null,
      })),
      providers: Object.keys(s.authorization?.providers ?? {}),
      rateLimits: s.rateLimits.map((r) => ({
        name: r.name,
        maxTokens: r.maxTokens,
        tokensPerFill: r.tokensPerFill,
        fillIntervalMs: r.fillInterval,
        key: r.key.by === 'header' || r.key.by === 'claim' ? `${r.key.by}:${r.key.name}` : r.key.by,
        keys: this.#limits.get(r.name)?.keys ?? 0,
      })),
    };
  }

  /** Releases what `next` did not take over (all of it without `next`). */
  close(next?: RequestFilters): void {
    for (const [name, j] of this.#jwks) if (next === undefined || next.#jwks.get(name) !== j) j.close();
    for (const [name, p] of this.#providers)
      if (next === undefined || next.#providers.get(name) !== p) p.close();
  }
}
