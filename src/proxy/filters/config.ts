// Schemas of the inbound proxy's request filters: JWT authentication (Istio's RequestAuthentication),
// authorization (AuthorizationPolicy) and local rate limits. Istio's resources are translated into
// these same shapes (src/policies), so there is one validated model whichever way a user writes it.

import { isIP } from 'node:net';
import { z } from 'zod';
import { addPillionIssue, address, duration, httpPath } from '../../config/index.js';
import { parseJwks } from './jwks-document.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerName = () => z.string().regex(TOKEN, 'not a valid header name');

/** Signature algorithms a JWKS key may verify. HMAC and `none` are never allowed: JWKS keys are public. */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

const jwtIssuerSchema = z
  .strictObject({
    issuer: z.string().min(1).describe('The `iss` claim tokens of this issuer carry.'),
    jwksUri: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'Where the issuer publishes its keys (JWKS). Fetched at start, cached as its Cache-Control says (between 1m and 24h, 5m without one), refreshed in the background, fetched again (at most once every 30s) when a token names a key id not in the set; while the endpoint is down the last good set is kept.',
      ),
    jwks: z
      .string()
      .min(1)
      .optional()
      .describe('The issuer’s public keys inline, as a JWKS JSON document (Istio’s `jwks`).'),
    jwksFile: z.string().min(1).optional().describe('A file holding the JWKS JSON document; read at load.'),
    audiences: z
      .array(z.string().min(1))
      .default([])
      .describe('The token’s `aud` must name one of these; empty accepts any audience.'),
    algorithms: z
      .array(z.enum(JWT_ALGORITHMS))
      .min(1)
      .default([...JWT_ALGORITHMS])
      .describe('Signature algorithms accepted. `none` and HMAC (HS256...) are never accepted.'),
    clockSkew: duration({ max: '10m' })
      .prefault('60s')
      .describe('Leeway when checking `exp` and `nbf` against the clock.'),
    fromHeaders: z
      .array(
        z.strictObject({
          name: headerName().describe('Header name.'),
          prefix: z.string().default('').describe('Text before the token, e.g. "Bearer ".'),
        }),
      )
      .optional()
      .describe('Headers the token is read from; default `Authorization: Bearer <token>`.'),
    fromParams: z.array(z.string().min(1)).default([]).describe('Query parameters the token is read from.'),
    fromCookies: z.array(z.string().min(1)).default([]).describe('Cookies the token is read from.'),
    forwardOriginalToken: z
      .boolean()
      .default(false)
      .describe('Keep the header that carried the token when forwarding; by default it is removed.'),
    outputClaimToHeaders: z
      .array(
        z.strictObject({
          header: headerName().describe('Header to set on the forwarded request.'),
          claim: z
            .string()
            .min(1)
            .describe(
              'Claim to copy; a nested claim by its path (`realm.roles`). Arrays are joined with commas.',
            ),
        }),
      )
      .default([])
      .describe(
        'Claims copied into request headers. A header of these names sent by the client is always removed first, token or not.',
      ),
    timeout: duration({ min: '100ms', max: '1m' }).prefault('5s').describe('Time for one JWKS fetch.'),
  })
  .superRefine((i, ctx) => {
    const sources =
      Number(i.jwksUri !== undefined) + Number(i.jwks !== undefined) + Number(i.jwksFile !== undefined);
    if (sources !== 1)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'an issuer needs its keys from exactly one of jwksUri, jwks or jwksFile',
      );
    if (i.jwks !== undefined) {
      try {
        parseJwks(i.jwks, 'jwks');
      } catch (err) {
        addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', (err as Error).message, undefined, ['jwks']);
      }
    }
  })
  .describe('One token issuer.');

export const jwtSchema = z
  .strictObject({
    issuers: z.array(jwtIssuerSchema).min(1).describe('Issuers whose tokens are accepted.'),
    maxTokenSize: z
      .number()
      .int()
      .min(256)
      .max(65536)
      .default(8192)
      .describe('A longer token is refused (401) before it is decoded.'),
    cacheSize: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(10000)
      .describe(
        'Verified tokens remembered until their `exp` (least recently used first out), so a repeated token costs a lookup; 0 turns the cache off.',
      ),
  })
  .describe(
    'JWT authentication (Istio RequestAuthentication semantics): a request without a token passes (authorization decides); one with an invalid token gets 401.',
  );

/** Values matched as Istio matches them: exact, `prefix*`, `*suffix`, or `*` (present). */
const matchValues = z.array(z.string()).optional();

/** IPs or CIDRs (`10.0.0.0/8`, `::1`), checked at load. */
const ipBlocks = () =>
  z.array(
    z.string().superRefine((v, ctx) => {
      if (ipBlockProblem(v) !== undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `"${v}" ${ipBlockProblem(v)}`,
          'e.g. 10.0.0.0/8, 192.168.1.7, fd00::/8',
        );
    }),
  );

export function ipBlockProblem(v: string): string | undefined {
  const [ip, bits, more] = v.split('/');
  const family = isIP(ip ?? '');
  if (family === 0 || more !== undefined) return 'is not an IP address or CIDR block';
  if (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)))
    return 'has a prefix length out of range';
  return undefined;
}

const sourceSchema = z
  .strictObject({
    principals: matchValues.describe('Peer principals (mTLS), e.g. cluster.local/ns/prod/sa/orders.'),
    notPrincipals: matchValues.describe('Peer principals that do not match.'),
    requestPrincipals: matchValues.describe('Request principals from the JWT, `<iss>/<sub>`.'),
    notRequestPrincipals: matchValues.describe('Request principals that do not match.'),
    namespaces: matchValues.describe('Namespaces of the peer principal.'),
    notNamespaces: matchValues.describe('Namespaces that do not match.'),
    ipBlocks: ipBlocks().optional().describe('The connection’s source address: IPs or CIDRs.'),
    notIpBlocks: ipBlocks().optional().describe('Source addresses that do not match.'),
    remoteIpBlocks: ipBlocks()
      .optional()
      .describe(
        'The original client address: the first X-Forwarded-For entry when headers.trustForwarded, else the connection’s.',
      ),
    notRemoteIpBlocks: ipBlocks().optional().describe('Original client addresses that do not match.'),
  })
  .describe('Who sent the request; every field given must match.');

const operationSchema = z
  .strictObject({
    hosts: matchValues.describe('Host / :authority (case-insensitive, port ignored unless given).'),
    notHosts: matchValues.describe('Hosts that do not match.'),
    ports: z
      .array(z.string().regex(/^\d{1,5}$/))
      .optional()
      .describe('The listener’s port.'),
    notPorts: z
      .array(z.string().regex(/^\d{1,5}$/))
      .optional()
      .describe('Ports that do not match.'),
    methods: matchValues.describe('Methods, e.g. [GET, POST].'),
    notMethods: matchValues.describe('Methods that do not match.'),
    paths: matchValues.describe(
      'Paths after normalization (`/a/../b`, `//b`, `/%62` are all `/b`), without the query: exact, `/prefix/*`, `*/suffix`, `*`.',
    ),
    notPaths: matchValues.describe('Paths that do not match.'),
  })
  .describe('What the request asks for; every field given must match.');

export const WHEN_KEYS =
  'request.headers[<name>], request.auth.claims[<claim>][<nested>...], request.auth.principal, request.auth.audiences, request.auth.presenter, source.ip, remote.ip, source.principal, source.namespace, destination.port, connection.sni';

const ruleSchema = z
  .strictObject({
    from: z
      .array(z.strictObject({ source: sourceSchema }))
      .optional()
      .describe('Sources; the rule matches when any of them matches.'),
    to: z
      .array(z.strictObject({ operation: operationSchema }))
      .optional()
      .describe('Operations; the rule matches when any of them matches.'),
    when: z
      .array(
        z
          .strictObject({
            key: z
              .string()
              .min(1)
              .superRefine((k, ctx) => {
                const r = parseWhenKey(k);
                if (typeof r === 'string') addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', r);
              })
              .describe(`The attribute: ${WHEN_KEYS}.`),
            values: matchValues.describe('Matches when the attribute matches any of these.'),
            notValues: matchValues.describe('Matches when the attribute matches none of these.'),
          })
          .superRefine(checkIpValues),
      )
      .optional()
      .describe('Conditions; all must hold.'),
  })
  .describe('A rule matches when its from, to and when all match (a missing one matches anything).');

export const policySchema = z
  .strictObject({
    name: z.string().min(1).describe('Name in metrics, logs and the admin API.'),
    action: z
      .enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'])
      .default('ALLOW')
      .describe(
        'ALLOW: once any ALLOW policy applies, a request must match one; DENY: a match is refused (403); AUDIT: a match is logged; CUSTOM: a match is sent to the ext_authz provider.',
      ),
    provider: z.string().optional().describe('CUSTOM: the name of the provider under `providers`.'),
    dryRun: z
      .boolean()
      .default(false)
      .describe('Evaluate and count, log what would be denied, never deny (Istio’s istio.io/dry-run).'),
    rules: z
      .array(ruleSchema)
      .default([])
      .describe(
        'Rules; the policy matches a request when any rule does. An ALLOW policy with none allows nothing.',
      ),
  })
  .superRefine((p, ctx) => {
    if (p.action === 'CUSTOM' && p.provider === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'a CUSTOM policy names its provider',
        undefined,
        ['provider'],
      );
    if (p.action !== 'CUSTOM' && p.provider !== undefined)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'only a CUSTOM policy has a provider', undefined, [
        'provider',
      ]);
  });

const providerSchema = z
  .strictObject({
    address: address().describe('host:port of the check service (HTTP/1.1).'),
    pathPrefix: httpPath()
      .default('')
      .describe('Prepended to the request’s path in the check request (Envoy ext_authz path_prefix).'),
    timeout: duration({ min: '1ms', max: '1m' })
      .prefault('600ms')
      .describe('Time for one check; a late one is an error.'),
    failOpen: z
      .boolean()
      .default(false)
      .describe('Let requests through when the check service errs or is late.'),
    statusOnError: z
      .number()
      .int()
      .min(400)
      .max(599)
      .default(403)
      .describe('Status sent when the check service errs or is late (and failOpen is false).'),
    includeRequestHeadersInCheck: z
      .array(headerName())
      .default([])
      .describe('Request headers sent to the check service (with Host, method and path); none by default.'),
    headersToUpstreamOnAllow: z
      .array(headerName())
      .default([])
      .describe('Headers of an allowing (2xx) answer added to the forwarded request.'),
    headersToDownstreamOnDeny: z
      .array(headerName())
      .default([])
      .describe('Headers of a denying answer passed to the client with its status and body.'),
  })
  .describe('An external authorization service with Envoy ext_authz’s HTTP semantics.');

export const authorizationSchema = z
  .strictObject({
    policies: z
      .array(policySchema)
      .default([])
      .describe('Policies, evaluated CUSTOM, then DENY, then ALLOW.'),
    providers: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/i), providerSchema)
      .default({})
      .describe('ext_authz check services CUSTOM policies name.'),
  })
  .superRefine((a, ctx) => {
    a.policies.forEach((p, i) => {
      if (p.provider !== undefined && !Object.hasOwn(a.providers, p.provider))
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `policy ${p.name} names provider "${p.provider}", which is not defined`,
          `defined: ${Object.keys(a.providers).join(', ') || 'none'}`,
          ['policies', i, 'provider'],
        );
    });
  })
  .describe('Authorization (Istio AuthorizationPolicy semantics).');

export const rateLimitSchema = z
  .strictObject({
    name: z.string().min(1).describe('Name in metrics and logs.'),
    routes: z.array(z.string()).optional().describe('Route names it applies to; default every route.'),
    listeners: z
      .array(z.string())
      .optional()
      .describe('Listener names it applies to; default every listener.'),
    key: z
      .strictObject({
        by: z
          .enum(['none', 'clientAddress', 'principal', 'header', 'claim'])
          .default('none')
          .describe(
            'none: one bucket for all; clientAddress: per connection address; principal: per JWT request principal, else peer principal; header: per value of `name`; claim: per value of JWT claim `name`. A request without the key shares one bucket.',
          ),
        name: z.string().optional().describe('The header or claim name, for by: header or claim.'),
      })
      .prefault({})
      .describe('What gets a bucket of its own.'),
    maxTokens: z.number().int().min(1).max(1_000_000).describe('Bucket size: the largest burst.'),
    tokensPerFill: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1)
      .describe('Tokens added every fillInterval.'),
    fillInterval: duration({ min: '1ms', max: '24h' }).describe('How often tokensPerFill are added.'),
    maxKeys: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(10000)
      .describe('Buckets kept at most; the least recently used is dropped (and counted) for a new key.'),
  })
  .superRefine((r, ctx) => {
    if ((r.key.by === 'header' || r.key.by === 'claim') && r.key.name === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        `key.by: ${r.key.by} needs key.name`,
        undefined,
        ['key', 'name'],
      );
  })
  .describe('A local token bucket: over it, 429 with Retry-After and RateLimit-* headers.');

export type JwtConfig = z.output<typeof jwtSchema>;
export type JwtIssuerConfig = z.output<typeof jwtIssuerSchema>;
export type AuthorizationConfig = z.output<typeof authorizationSchema>;
export type PolicyConfig = z.output<typeof policySchema>;
export type RuleConfig = z.output<typeof ruleSchema>;
export type ProviderConfig = z.output<typeof providerSchema>;
export type RateLimitConfig = z.output<typeof rateLimitSchema>;

/** source.ip and remote.ip conditions hold IPs or CIDR blocks. */
export function checkIpValues(
  w: { key: string; values?: string[] | undefined; notValues?: string[] | undefined },
  ctx: z.RefinementCtx,
): void {
  if (w.key !== 'source.ip' && w.key !== 'remote.ip') return;
  for (const list of ['values', 'notValues'] as const)
    w[list]?.forEach((v, i) => {
      const p = ipBlockProblem(v);
      if (p !== undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `"${v}" ${p}`,
          `${w.key} takes IPs or CIDR blocks`,
          [list, i],
        );
    });
}

/** An attribute a `when` condition reads. */
export type WhenKey =
  | { kind: 'header'; name: string }
  | { kind: 'claim'; path: string[] }
  | {
      kind:
        | 'source.ip'
        | 'remote.ip'
        | 'source.principal'
        | 'source.namespace'
        | 'request.auth.principal'
        | 'request.auth.audiences'
        | 'request.auth.presenter'
        | 'destination.port'
        | 'connection.sni';
    };

const PLAIN_KEYS = new Set([
  'source.ip',
  'remote.ip',
  'source.principal',
  'source.namespace',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.port',
  'connection.sni',
]);

/** Reads a `when` key as Istio writes it, or says why it cannot be read. */
export function parseWhenKey(key: string): WhenKey | string {
  if (PLAIN_KEYS.has(key)) return { kind: key } as WhenKey;
  const header = /^request\.headers\[([^\]]+)\]$/.exec(key);
  if (header) {
    if (!TOKEN.test(header[1]!)) return `"${header[1]}" is not a header name`;
    return { kind: 'header', name: header[1]!.toLowerCase() };
  }
  if (key.startsWith('request.auth.claims[')) {
    const m = /^request\.auth\.claims((?:\[[^\][]+\])+)$/.exec(key);
    if (!m) return 'claims are written request.auth.claims[name] or request.auth.claims[outer][inner]';
    return { kind: 'claim', path: m[1]!.slice(1, -1).split('][') };
  }
  return `"${key}" is not a condition key Pillion supports; supported: ${WHEN_KEYS}`;
}
