// For the filter tests: a token issuer with its own keys, and a JWKS endpoint on 127.0.0.1:0 that
// can rotate its keys, go down, and count the fetches it answered.

import http from 'node:http';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { listen } from '../test-support.js';

export const ISSUER = 'https://issuer.test';

export interface TestKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
  alg: string;
}

export async function makeKey(kid: string, alg = 'RS256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, privateKey, jwk, alg };
}

/** A signed token; `nowSec` is the issuer's clock (iat), claims may override anything. */
export function sign(
  key: TestKey,
  nowSec: number,
  claims: JWTPayload = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT({
    iss: ISSUER,
    sub: 'user-1',
    aud: 'orders',
    iat: nowSec,
    exp: nowSec + 3600,
    ...claims,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

export function jwksOf(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

export class JwksServer {
  readonly server: http.Server;
  port = 0;
  keys: TestKey[];
  fetches = 0;
  down = false;
  cacheControl = 'max-age=300';

  private constructor(keys: TestKey[]) {
    this.keys = keys;
    this.server = http.createServer((req, res) => {
      if (this.down) {
        res.writeHead(503).end('down');
        return;
      }
      this.fetches++;
      const body = jwksOf(...this.keys);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': this.cacheControl });
      res.end(body);
    });
  }

  static async start(keys: TestKey[]): Promise<JwksServer> {
    const s = new JwksServer(keys);
    s.port = await listen(s.server);
    return s;
  }

  get uri(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
