#!/usr/bin/env node
// `npm run demo:token -- [--sub alice] [--roles admin,ops] [--ttl 3600]`: prints a token signed by
// the demo issuer, whose public key the demo sidecar trusts (pillion.yaml, inbound.jwt). The
// private key beside this script is for the demo only: anyone who has this repository can mint
// tokens with it, so never trust it outside the demo.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { importJWK, SignJWT } from 'jose';

export const DEMO_ISSUER = 'https://issuer.pillion.demo';

export async function mintDemoToken({ sub = 'alice', roles = 'viewer', ttl = 3600, now = Date.now() } = {}) {
  const jwk = JSON.parse(readFileSync(new URL('demo-issuer.key.json', import.meta.url), 'utf8'));
  const key = await importJWK(jwk, 'ES256');
  const iat = Math.floor(now / 1000);
  return new SignJWT({
    roles: String(roles)
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean),
  })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setAudience('orders')
    .setSubject(String(sub))
    .setIssuedAt(iat)
    .setExpirationTime(iat + Number(ttl))
    .sign(key);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { sub: { type: 'string' }, roles: { type: 'string' }, ttl: { type: 'string' } },
  });
  process.stdout.write(`${await mintDemoToken({ sub: values.sub, roles: values.roles, ttl: values.ttl })}\n`);
}
