// JWT authentication with Istio's RequestAuthentication semantics: a request without a token
// passes (authorization decides); one with a token that does not verify gets 401 with
// `WWW-Authenticate: Bearer error="invalid_token"`. Every cryptographic step is jose's. Verified
// tokens are remembered until their `exp` (bounded, least recently used out), so a repeated token
// costs a map lookup rather than a signature check.

import { decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import type { LogLimiter } from '../../lib/log-limiter.js';
import type { Series } from '../../metrics/index.js';
import type { JwtConfig, JwtIssuerConfig } from './config.js';
import { type Jwks, JwksUnavailable } from './jwks.js';
import type { FilterStats } from './stats.js';
import type { Denial, FilterRequest, RequestFilter, Verdict } from './types.js';

interface Location {
  /** 0 header, 1 query parameter, 2 cookie. */
  kind: 0 | 1 | 2;
  /** Lower-case header name, parameter or cookie name. */
  name: string;
  prefix: string;
}

interface Issuer {
  cfg: JwtIssuerConfig;
  jwks: Jwks;
  locations: Location[];
  /** [lower-case header, claim path] */
  outputs: [string, string[]][];
  skewSec: number;
  valid: Series;
}

interface Cached {
  issuer: Issuer;
  claims: JWTPayload;
  /** ms; the token is no longer taken from the cache after this (exp + skew). */
  until: number;
  /** What a verified token gives a request, made once: `<iss>/<sub>` and the claim headers. */
  principal: string;
  headers: [string, string][];
}

const WWW_AUTHENTICATE: [string, string][] = [['www-authenticate', 'Bearer error="invalid_token"']];

export class JwtFilter implements RequestFilter {
  readonly #issuers: Issuer[];
  readonly #byIss = new Map<string, Issuer>();
  readonly #locations: Location[];
  /** Output header names, lower-case: removed from every request. */
  readonly #spoofable: string[];
  readonly #maxSize: number;
  readonly #cacheSize: number;
  readonly #cache: Map<string, Cached>;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #limiter: LogLimiter;
  readonly #stats: FilterStats;
  readonly #listener: string;
  readonly #noToken: Series;

  constructor(
    cfg: JwtConfig,
    jwks: Map<string, Jwks>,
    deps: {
      clock: Clock;
      logger: Logger;
      limiter: LogLimiter;
      stats: FilterStats;
      listener: string;
      cache: Map<string, Cached>;
    },
  ) {
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#limiter = deps.limiter;
    this.#stats = deps.stats;
    this.#listener = deps.listener;
    this.#maxSize = cfg.maxTokenSize;
    this.#cacheSize = cfg.cacheSize;
    this.#cache = deps.cache;
    this.#noToken = deps.stats.jwtResult(deps.listener, '-', 'no_token', '-');
    this.#issuers = cfg.issuers.map((i) => ({
      cfg: i,
      jwks: jwks.get(i.issuer)!,
      locations: locationsOf(i),
      outputs: i.outputClaimToHeaders.map((o) => [o.header.toLowerCase(), o.claim.split('.')]),
      skewSec: Math.floor(i.clockSkew / 1000),
      valid: deps.stats.jwtResult(deps.listener, i.issuer, 'valid', '-'),
    }));
    for (const i of this.#issuers) if (!this.#byIss.has(i.cfg.issuer)) this.#byIss.set(i.cfg.issuer, i);
    const seen = new Set<string>();
    this.#locations = [];
    for (const i of this.#issuers)
      for (const l of i.locations) {
        const k = `${l.kind}\u0000${l.name}\u0000${l.prefix}`;
        if (!seen.has(k)) {
          seen.add(k);
          this.#locations.push(l);
        }
      }
    this.#spoofable = [...new Set(this.#issuers.flatMap((i) => i.outputs.map((o) => o[0])))];
  }

  /** A new cache for a new set of issuers (a reload with other issuers starts empty). */
  static newCache(): Map<string, Cached> {
    return new Map();
  }

  run(req: FilterRequest): Verdict | Promise<Verdict> {
    // Claim headers come from the token only: a client's own copies go, token or not.
    for (let i = 0; i < this.#spoofable.length; i++) req.dropHeaders.push(this.#spoofable[i]!);
    const found = this.#find(req);
    if (found === undefined) {
      this.#noToken.value++;
      return undefined;
    }
    const [token, loc] = found;
    if (token.length > this.#maxSize)
      return this.#deny(req, undefined, 'token_too_large', 'Jwt is too large');
    const hit = this.#cache.get(token);
    if (hit !== undefined) {
      if (this.#clock.now() < hit.until) {
        // Most recently used last (a re-insert keeps the Map in LRU order); the claims were read
        // into the entry once, when the token was verified.
        this.#cache.delete(token);
        this.#cache.set(token, hit);
        hit.issuer.valid.value++;
        this.#apply(req, hit, loc);
        return undefined;
      }
      this.#cache.delete(token);
    }
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return this.#deny(req, undefined, 'malformed', 'Jwt is not in the form of Header.Payload.Signature');
    }
    const issuer = typeof iss === 'string' ? this.#byIss.get(iss) : undefined;
    if (issuer === undefined)
      return this.#deny(req, undefined, 'unknown_issuer', 'Jwt issuer is not configured');
    if (!issuer.locations.some((l) => sameLocation(l, loc)))
      return this.#deny(req, issuer, 'wrong_location', 'Jwt is not where its issuer’s tokens are read from');
    return this.#verify(req, issuer, token, loc);
  }

  async #verify(req: FilterRequest, issuer: Issuer, token: string, loc: Location): Promise<Verdict> {
    const c = issuer.cfg;
    let claims: JWTPayload;
    try {
      const r = await jwtVerify(token, issuer.jwks.getKey, {
        issuer: c.issuer,
        ...(c.audiences.length > 0 ? { audience: c.audiences } : {}),
        algorithms: c.algorithms,
        clockTolerance: issuer.skewSec,
        currentDate: new Date(this.#clock.now()),
      });
      claims = r.payload;
    } catch (err) {
      const [reason, text] = failure(err);
      return this.#deny(req, issuer, reason, text);
    }
    const headers: [string, string][] = [];
    for (const [header, path] of issuer.outputs) {
      const v = claimText(claims, path);
      if (v !== undefined) headers.push([header, v]);
    }
    const entry: Cached = {
      issuer,
      claims,
      until: typeof claims.exp === 'number' ? (claims.exp + issuer.skewSec) * 1000 : 0,
      principal: `${String(claims.iss)}/${String(claims.sub ?? '')}`,
      headers,
    };
    if (this.#cacheSize > 0 && entry.until > 0) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(token, entry);
    }
    issuer.valid.value++;
    this.#apply(req, entry, loc);
    return undefined;
  }

  #apply(req: FilterRequest, t: Cached, loc: Location): void {
    req.claims = t.claims;
    req.requestPrincipal = t.principal;
    req.details = 'jwt_ok';
    for (let i = 0; i < t.headers.length; i++) req.addHeaders.push(t.headers[i]!);
    if (loc.kind === 0 && !t.issuer.cfg.forwardOriginalToken) req.dropHeaders.push(loc.name);
  }

  #deny(req: FilterRequest, issuer: Issuer | undefined, reason: string, text: string): Denial {
    const iss = issuer?.cfg.issuer ?? '-';
    this.#stats.jwtResult(this.#listener, iss, 'invalid', reason).value++;
    req.details = `jwt_authn_access_denied{${reason}}`;
    const skipped = this.#limiter.admit(`jwt:${iss}:${reason}`);
    if (skipped >= 0)
      this.#logger.info(
        {
          listener: this.#listener,
          issuer: iss,
          reason,
          client: req.clientIp,
          ...(skipped > 0 ? { suppressed: skipped } : {}),
        },
        'JWT refused',
      );
    return { status: 401, body: `${text}\n`, headers: WWW_AUTHENTICATE, flag: '' };
  }

  /** The first token found, with where it was found. */
  #find(req: FilterRequest): [string, Location] | undefined {
    const locs = this.#locations;
    for (let i = 0; i < locs.length; i++) {
      const l = locs[i]!;
      let v: string | undefined;
      if (l.kind === 0) {
        const at = req.lower.indexOf(l.name);
        if (at === -1) continue;
        const raw = req.values[at]!;
        if (l.prefix !== '') {
          if (
            raw.length <= l.prefix.length ||
            raw.slice(0, l.prefix.length).toLowerCase() !== l.prefix.toLowerCase()
          )
            continue;
          v = raw.slice(l.prefix.length).trim();
        } else v = raw.trim();
      } else if (l.kind === 1) {
        v = queryParam(req.query, l.name);
      } else {
        v = cookie(req, l.name);
      }
      if (v !== undefined && v !== '') return [v, l];
    }
    return undefined;
  }
}

function locationsOf(i: JwtIssuerConfig): Location[] {
  const headers =
    i.fromHeaders ??
    (i.fromParams.length === 0 && i.fromCookies.length === 0
      ? [{ name: 'Authorization', prefix: 'Bearer ' }]
      : []);
  return [
    ...headers.map((h): Location => ({ kind: 0, name: h.name.toLowerCase(), prefix: h.prefix })),
    ...i.fromParams.map((p): Location => ({ kind: 1, name: p, prefix: '' })),
    ...i.fromCookies.map((c): Location => ({ kind: 2, name: c, prefix: '' })),
  ];
}

/** Issuers may read tokens from equal locations; the chain keeps one copy of each. */
function sameLocation(a: Location, b: Location): boolean {
  return a.kind === b.kind && a.name === b.name && a.prefix === b.prefix;
}

function queryParam(query: string, name: string): string | undefined {
  if (query.length < 2) return undefined;
  for (const part of query.slice(1).split('&')) {
    const eq = part.indexOf('=');
    const k = eq === -1 ? part : part.slice(0, eq);
    if (k !== name) continue;
    try {
      return decodeURIComponent(eq === -1 ? '' : part.slice(eq + 1));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function cookie(req: FilterRequest, name: string): string | undefined {
  for (let i = 0; i < req.lower.length; i++) {
    if (req.lower[i] !== 'cookie') continue;
    for (const part of req.values[i]!.split(';')) {
      const eq = part.indexOf('=');
      if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** A claim by path as header text: strings as they are, arrays joined with commas, objects as JSON. */
export function claimText(claims: Record<string, unknown>, path: readonly string[]): string | undefined {
  let v: unknown = claims;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  let text: string;
  if (typeof v === 'string') text = v;
  else if (typeof v === 'number' || typeof v === 'boolean') text = String(v);
  else if (Array.isArray(v)) text = v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(',');
  else if (typeof v === 'object' && v !== null) text = JSON.stringify(v);
  else return undefined;
  // A header value cannot carry CR, LF or other controls: such a claim is left out, never forwarded.
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x08\x0a-\x1f\x7f]/.test(text) ? undefined : text.trim();
}

/** jose's error as a metric reason and Envoy's wording. */
function failure(err: unknown): [string, string] {
  if (err instanceof errors.JWTExpired) return ['expired', 'Jwt is expired'];
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return ['not_yet_valid', 'Jwt not yet valid'];
    if (err.claim === 'aud') return ['audience', 'Audiences in Jwt are not allowed'];
    if (err.claim === 'iss') return ['unknown_issuer', 'Jwt issuer is not configured'];
    return ['claim', `Jwt claim ${err.claim} is not valid`];
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return ['algorithm', 'Jwt algorithm is not allowed'];
  if (err instanceof errors.JWKSNoMatchingKey)
    return ['unknown_kid', "Jwks doesn't have key to match kid or alg from Jwt"];
  if (err instanceof errors.JWSSignatureVerificationFailed) return ['signature', 'Jwt verification fails'];
  if (err instanceof JwksUnavailable) return ['jwks_unavailable', 'Jwks remote fetch is failed'];
  if (
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JOSENotSupported
  )
    return ['malformed', 'Jwt is not valid'];
  return ['invalid', 'Jwt verification fails'];
}

export type { Cached as CachedToken };
