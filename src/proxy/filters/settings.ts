// What the inbound proxy passes its request filters: the three sections, as validated.

import type { AuthorizationConfig, JwtConfig, RateLimitConfig } from './config.js';

export interface SecuritySettings {
  jwt: JwtConfig | undefined;
  authorization: AuthorizationConfig | undefined;
  rateLimits: RateLimitConfig[];
}

/** Whether any filter is configured (else the filter code is never loaded). */
export function hasFilters(s: SecuritySettings | undefined): s is SecuritySettings {
  return s !== undefined && (s.jwt !== undefined || s.authorization !== undefined || s.rateLimits.length > 0);
}
