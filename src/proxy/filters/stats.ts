// Metrics of the request filters: JWT outcomes, JWKS fetches, authorization decisions and rate-limit
// outcomes. Series on the accepting path are resolved once at build; refusals look theirs up.

import { CounterFamily, family, type Registry, type Series } from '../../metrics/index.js';

export class FilterStats {
  readonly jwt: CounterFamily;
  readonly jwks: CounterFamily;
  readonly authz: CounterFamily;
  readonly rateLimit: CounterFamily;
  readonly evicted: CounterFamily;

  constructor(registry: Registry) {
    this.jwt = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_jwt_requests_total',
          'Requests seen by JWT authentication, by issuer and result (valid, no_token, invalid) and the reason an invalid token was refused.',
        ),
    );
    this.jwks = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_jwks_fetches_total',
          'JWKS fetches by issuer and result (ok, error) and why they were made (start, refresh, unknown_kid).',
        ),
    );
    this.authz = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_authz_decisions_total',
          'Authorization decisions by policy, action, rule (its index, or "-" when none matched) and decision (allow, deny, audit, dry_run_deny, error).',
        ),
    );
    this.rateLimit = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_ratelimit_requests_total',
          'Requests seen by a local rate limit, by listener, route, limit and result (allowed, limited).',
        ),
    );
    this.evicted = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_ratelimit_keys_evicted_total',
          'Buckets dropped from a rate limit’s key table to make room for a new key (maxKeys reached).',
        ),
    );
  }

  jwtResult(listener: string, issuer: string, result: string, reason: string): Series {
    return this.jwt.with({ listener, issuer, result, reason });
  }
}
