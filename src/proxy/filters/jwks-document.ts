// A JWKS document read as public keys only: kept apart from jwks.ts so the config schema and
// `pillion validate` can check one without loading jose.

import type { JSONWebKeySet } from 'jose';

/** Parses a JWKS; symmetric (`oct`) keys are refused: a public key set must not hold an HMAC secret. */
export function parseJwks(text: string, where: string): JSONWebKeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`${where}: not JSON`);
  }
  const keys = (doc as { keys?: unknown }).keys;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(keys))
    throw new Error(`${where}: a JWKS is an object with a "keys" array`);
  const usable = keys.filter(
    (k): k is JSONWebKeySet['keys'][number] =>
      typeof k === 'object' &&
      k !== null &&
      typeof (k as { kty?: unknown }).kty === 'string' &&
      (k as { kty: string }).kty !== 'oct',
  );
  if (usable.length === 0) throw new Error(`${where}: no public keys (symmetric "oct" keys are never used)`);
  // Private parts are never kept (a JWKS published by mistake with them must not spread further).
  return {
    keys: usable.map((k) => {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k as Record<string, unknown>;
      return pub as JSONWebKeySet['keys'][number];
    }),
  };
}
