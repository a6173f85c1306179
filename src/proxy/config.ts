// Schemas of the `inbound:` and `outbound:` sections: listeners, routes, upstreams, timeouts,
// limits, TLS and the access log. Both sections share the pieces; only their defaults differ.

import { createSecureContext, getCiphers } from 'node:tls';
import { z } from 'zod';
import { addPillionIssue, address, duration, httpPath, regex, size } from '../config/index.js';
import { didYouMean } from '../lib/did-you-mean.js';
import { authorizationSchema, jwtSchema, rateLimitSchema } from './filters/config.js';
import { transformSchema } from './transform/config.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A header name: an RFC 9110 token. */
function headerName() {
  return z.string().superRefine((v, ctx) => {
    if (!TOKEN.test(v))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `"${v}" is not a valid header name`,
        "header names are letters, digits and !#$%&'*+-.^_`|~",
      );
  });
}

/** A header value: visible ASCII, spaces and tabs, no CR/LF. */
function headerValue() {
  return z.string().superRefine((v, ctx) => {
    if (/[^\t\x20-\x7e]/.test(v) || /^[ \t]|[ \t]$/.test(v))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'header values are printable ASCII without leading or trailing spaces',
      );
  });
}

const headerEdits = z
  .strictObject({
    add: z
      .record(headerName(), headerValue())
      .default({})
      .describe('Headers to set, replacing any of the same name.'),
    remove: z.array(headerName()).default([]).describe('Header names to remove.'),
  })
  .prefault({});

/** OpenSSL's cipher names in this build, lower-case as tls.getCiphers() has them. */
const KNOWN_CIPHERS = getCiphers();

/** A cipher suite by its OpenSSL name (TLS 1.3 ones by their standard names). */
function cipherName() {
  return z.string().superRefine((v, ctx) => {
    if (!KNOWN_CIPHERS.includes(v.toLowerCase())) {
      const near = didYouMean(v.toLowerCase(), KNOWN_CIPHERS);
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `"${v}" is not a cipher suite this build's OpenSSL knows`,
        near !== undefined
          ? `did you mean "${near.toUpperCase()}"?`
          : 'use OpenSSL names, e.g. ECDHE-RSA-AES128-GCM-SHA256 or TLS_AES_128_GCM_SHA256 (`openssl ciphers -v`)',
      );
    }
  });
}

/** A key-exchange group OpenSSL accepts for ECDHE (X25519, prime256v1, secp384r1, ...). */
function curveName() {
  return z.string().superRefine((v, ctx) => {
    try {
      createSecureContext({ ecdhCurve: v });
    } catch {
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `"${v}" is not a key-exchange group this build's OpenSSL knows`,
        'e.g. X25519, prime256v1, secp384r1 (`openssl ecparam -list_curves`)',
      );
    }
  });
}

const tlsSchema = z
  .strictObject({
    certificates: z
      .array(
        z.strictObject({
          cert: z.string().min(1).describe('PEM certificate chain file.'),
          key: z.string().min(1).describe('PEM private key file.'),
          serverNames: z
            .array(z.string().min(1))
            .default([])
            .describe(
              'SNI names this certificate serves (wildcards like *.example.com allowed); by default the names in the certificate.',
            ),
        }),
      )
      .min(1)
      .describe(
        'Certificates, chosen by the SNI name the client sends; the first is used when no name matches. Files that change on disk are picked up for new connections.',
      ),
    profile: z
      .enum(['modern', 'intermediate', 'old'])
      .default('intermediate')
      .describe(
        "Mozilla's server-side TLS configuration. intermediate: TLS 1.2 with ECDHE and AES-GCM or ChaCha20 only, and TLS 1.3. modern: TLS 1.3 only. old: also TLS 1.0 and 1.1, CBC, static-RSA and 3DES suites, for very old clients. Renegotiation is refused in all three.",
      ),
    minVersion: z
      .enum(['TLSv1.2', 'TLSv1.3'])
      .optional()
      .describe(
        "Oldest TLS version accepted; default the profile's (modern TLSv1.3, intermediate TLSv1.2, old TLSv1).",
      ),
    ciphers: z
      .array(cipherName())
      .min(1)
      .max(64)
      .optional()
      .describe(
        "Cipher suites by OpenSSL name, in order of preference, TLS 1.3 ones (TLS_AES_128_GCM_SHA256...) included; replaces the profile's list. Without a TLS 1.3 name, TLS 1.3 keeps all its suites.",
      ),
    ecdhCurves: z
      .array(curveName())
      .min(1)
      .max(16)
      .optional()
      .describe(
        "Key-exchange groups, in order of preference; default the profile's: X25519, prime256v1, secp384r1.",
      ),
    clientCertificate: z
      .strictObject({
        ca: z.string().min(1).describe('PEM bundle of the CAs that sign client certificates.'),
        required: z
          .boolean()
          .default(true)
          .describe(
            'Refuse clients without a valid certificate; when false, an invalid or absent one is only recorded.',
          ),
      })
      .optional()
      .describe('Verify client certificates (mutual TLS).'),
  })
  .superRefine((t, ctx) => {
    if (t.profile === 'modern' && t.minVersion === 'TLSv1.2' && t.ciphers === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'profile modern has no TLS 1.2 cipher suite, so minVersion TLSv1.2 would let no TLS 1.2 client in',
        'use profile: intermediate, or list the TLS 1.2 suites in ciphers',
        ['minVersion'],
      );
  })
  .describe('Terminate TLS on this listener.');

/** Endpoint labels (for subsets), as Kubernetes labels are written. */
const endpointLabels = z
  .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/, 'a label name'), z.string().max(63))
  .default({})
  .describe('Labels of the endpoint (version: v2), for subsets.');

const endpointWeight = z
  .number()
  .int()
  .min(1)
  .max(1000)
  .default(1)
  .describe('Relative share of requests the endpoint gets (weighted round robin, random and hashing).');

/** One endpoint: "host:port", or the address with a weight and labels. */
export const endpointEntrySchema = z
  .preprocess(
    (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : { address: v }),
    z.strictObject({
      address: address().describe('host:port; a DNS name is resolved to all its addresses.'),
      weight: endpointWeight,
      labels: endpointLabels,
    }),
  )
  .transform((e) => ({ ...e.address, weight: e.weight, labels: e.labels }))
  .meta({ description: 'An endpoint: "host:port", or { address, weight, labels }.' });

/** Envoy's retry_on conditions, as Istio's retryOn names them. */
export const RETRY_ON = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-4xx',
  'retriable-status-codes',
  'retriable-headers',
] as const;

const headerMatchSchema = z.strictObject({
  name: headerName().describe('Header name (case-insensitive).'),
  exact: z.string().optional().describe('The value must be exactly this.'),
  regex: regex().optional().describe('The value must match this regular expression.'),
  present: z.boolean().optional().describe('true: the header must be present; false: it must be absent.'),
});

export const retriesSchema = z
  .strictObject({
    attempts: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe("Retries after the first try (Istio's attempts); 0 turns retrying off."),
    perTryTimeout: duration({ max: '24h' })
      .prefault('0s')
      .describe(
        'Time for one try, from asking for a connection to the response head; a try that takes longer is abandoned and retried (reset, 5xx and gateway-error cover it). 0: only the overall timeouts.',
      ),
    retryOn: z
      .unknown()
      .transform((v, ctx): (typeof RETRY_ON)[number][] => {
        const list = typeof v === 'string' ? v.split(',').map((x) => x.trim()) : v;
        if (!Array.isArray(list) || list.length === 0) {
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            'retryOn is a list of conditions, or a comma-separated string of them',
            `e.g. "5xx,reset"; conditions: ${RETRY_ON.join(', ')}`,
          );
          return z.NEVER;
        }
        for (const c of list) {
          if (!(RETRY_ON as readonly unknown[]).includes(c)) {
            const near = typeof c === 'string' ? didYouMean(c, [...RETRY_ON]) : undefined;
            addPillionIssue(
              ctx,
              'PILLION_ERR_CONFIG_BAD_ENUM',
              `${JSON.stringify(c)} is not a retryOn condition`,
              near !== undefined ? `did you mean "${near}"?` : `conditions: ${RETRY_ON.join(', ')}`,
            );
            return z.NEVER;
          }
        }
        return list as (typeof RETRY_ON)[number][];
      })
      .meta({ type: ['string', 'array'] })
      .default(['connect-failure', 'refused-stream', 'retriable-status-codes'])
      .describe(
        "When to retry (a list, or Istio's comma-separated string): 5xx (a 5xx response, a reset, a connect failure or a per-try timeout), gateway-error (502, 503, 504, a connect failure or a per-try timeout), reset (no response: the connection closed or a per-try timeout), connect-failure, refused-stream (HTTP/2's REFUSED_STREAM; an HTTP/1.1 upstream never sends it), retriable-4xx (409), retriable-status-codes (retriableStatusCodes), retriable-headers (a response header matching retriableHeaders). Istio's default: connect-failure, refused-stream and 503.",
      ),
    retriableStatusCodes: z
      .array(z.number().int().min(100).max(599))
      .max(32)
      .default([503])
      .describe('Statuses retried with retriable-status-codes.'),
    retriableHeaders: z
      .array(headerMatchSchema)
      .max(16)
      .default([])
      .describe('Response headers retried on with retriable-headers; any one matching is enough.'),
    backoff: z
      .strictObject({
        base: duration({ min: '1ms', max: '10s' })
          .prefault('25ms')
          .describe("Envoy's base interval: retry n waits a random time up to base × 2^(n-1)."),
        max: duration({ min: '1ms', max: '1m' })
          .prefault('250ms')
          .describe('The most one wait can be (the cap of the full jitter).'),
      })
      .prefault({})
      .describe('Exponential back-off with full jitter between tries.'),
    maxBodySize: size({ max: '16MiB' })
      .prefault('64KiB')
      .describe(
        "A request with a larger body is sent once, never retried (Linkerd's rule): the body is kept in memory only up to this size.",
      ),
  })
  .superRefine((r, ctx) => {
    if (r.backoff.max < r.backoff.base)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'backoff.max is below backoff.base', undefined, [
        'backoff',
        'max',
      ]);
    if (r.retriableHeaders.length > 0 && !r.retryOn.includes('retriable-headers'))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'retriableHeaders are used with retryOn: retriable-headers',
        'add retriable-headers to retryOn',
        ['retriableHeaders'],
      );
  })
  .describe(
    'Retry failed tries on another endpoint where there is one, with back-off, within the retry budget of the upstream. A response already on its way to the client is never retried; each try carries x-pillion-attempt-count.',
  );

const routeTimeout = duration({ max: '24h' }).describe(
  'Time for the whole exchange, tries and back-off included, until the response is complete; 504 (flag UT) when no response has started, else the response is cut off.',
);

export const retryBudgetSchema = z
  .strictObject({
    ratio: z
      .number()
      .min(0)
      .max(10)
      .default(0.2)
      .describe('Retries allowed as a share of the requests of the last `window` (0.2: 20 %).'),
    minRetriesPerSecond: z
      .number()
      .int()
      .min(0)
      .max(100000)
      .default(10)
      .describe('Retries allowed per second whatever the share, so a quiet service can still retry.'),
    window: duration({ min: '1s', max: '1h' })
      .prefault('10s')
      .describe('The period requests and retries are counted over.'),
  })
  .describe(
    'How many retries the upstream takes, across all its routes (Linkerd\'s retry budget): a failure past it goes to the client and is counted (pillion_proxy_retries_total{outcome="budget_exhausted"}).',
  );

const LB_POLICIES = ['round-robin', 'least-request', 'random', 'ring-hash', 'maglev', 'peak-ewma'] as const;

const loadBalancerSchema = z
  .strictObject({
    policy: z
      .enum(LB_POLICIES)
      .default('round-robin')
      .describe(
        "round-robin: in turn, by weight. least-request: of two endpoints drawn at random, the one with fewer requests in flight (power of two choices). random: by weight. ring-hash and maglev: the same endpoint for the same hash key (hashOn), and few keys move when endpoints change. peak-ewma: of two drawn at random, the one with the lower latency (a moving average that jumps up at once on a slow response and decays in `decay`) times its requests in flight (Linkerd's balancer).",
      ),
    hashOn: z
      .strictObject({
        header: headerName().optional().describe('The value of this request header.'),
        cookie: z.string().regex(TOKEN).optional().describe('The value of this cookie.'),
        clientAddress: z.boolean().optional().describe("The client's IP address."),
      })
      .superRefine((h, ctx) => {
        const n =
          Number(h.header !== undefined) + Number(h.cookie !== undefined) + Number(h.clientAddress === true);
        if (n !== 1)
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            'hashOn takes one of header, cookie or clientAddress: true',
          );
      })
      .optional()
      .describe(
        'ring-hash and maglev: what the key is. A request without it (no such header or cookie) goes to a random endpoint.',
      ),
    virtualNodes: z
      .number()
      .int()
      .min(1)
      .max(10000)
      .default(160)
      .describe(
        "ring-hash: points on the ring per unit of an endpoint's weight (160, as ketama). An endpoint's points depend on it alone, so when one goes only its keys move.",
      ),
    decay: duration({ min: '100ms', max: '10m' })
      .prefault('10s')
      .describe('peak-ewma: how fast the latency average forgets (its time constant).'),
  })
  .superRefine((l, ctx) => {
    const hashing = l.policy === 'ring-hash' || l.policy === 'maglev';
    if (hashing && l.hashOn === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        `${l.policy} needs hashOn`,
        'e.g. hashOn: { header: x-user-id }',
        ['policy'],
      );
    if (!hashing && l.hashOn !== undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        `hashOn is used by ring-hash and maglev, not ${l.policy}`,
        'set policy: ring-hash or maglev',
        ['hashOn'],
      );
  })
  .describe('How a request picks an endpoint.');

/** Expected statuses of an HTTP health check: a code (200) or an inclusive range ("200-299"). */
const statusRange = z
  .union([
    z.number().int().min(100).max(599),
    z.string().regex(/^[1-5]\d\d-[1-5]\d\d$/, 'a range like "200-299"'),
  ])
  .transform((v, ctx): [number, number] => {
    if (typeof v === 'number') return [v, v];
    const [lo, hi] = v.split('-').map(Number) as [number, number];
    if (lo > hi)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', `${v}: the range is empty`, `write "${hi}-${lo}"`);
    return [lo, hi];
  });

const healthCheckSchema = z
  .strictObject({
    type: z
      .enum(['http', 'tcp'])
      .default('http')
      .describe(
        'http: a GET of `path` must answer one of `expectedStatuses`; tcp: the endpoint must accept a connection.',
      ),
    path: httpPath()
      .optional()
      .describe(
        'The path an HTTP check GETs (default /); sent with the Host header requests to the upstream carry.',
      ),
    expectedStatuses: z
      .array(statusRange)
      .min(1)
      .max(32)
      .optional()
      .describe(
        'Statuses that pass an HTTP check: codes and ranges ("200-299"); default 200-399 (a kubelet httpGet probe).',
      ),
    interval: duration({ min: '100ms', max: '1h' })
      .prefault('5s')
      .describe('Time between the end of one round of checks and the start of the next.'),
    timeout: duration({ min: '10ms', max: '1m' })
      .prefault('1s')
      .describe('A check that has not passed within this fails (reason timeout).'),
    jitter: duration({ max: '1h' })
      .prefault('0s')
      .describe(
        'A random extra wait of 0..jitter added to each interval, so many sidecars do not check in step.',
      ),
    healthyThreshold: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(2)
      .describe('An unhealthy endpoint returns to balancing after this many passing checks in a row.'),
    unhealthyThreshold: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe('A healthy endpoint leaves balancing after this many failing checks in a row.'),
  })
  .superRefine((h, ctx) => {
    if (h.type === 'tcp')
      for (const k of ['path', 'expectedStatuses'] as const)
        if (h[k] !== undefined)
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            `${k} is for type: http`,
            'remove it, or set type: http',
            [k],
          );
  })
  .transform((h) => ({
    ...h,
    path: h.type === 'http' ? (h.path ?? '/') : undefined,
    expectedStatuses:
      h.type === 'http' ? (h.expectedStatuses ?? [[200, 399] as [number, number]]) : undefined,
  }))
  .describe(
    'Active health checks of every endpoint (HTTP GET or TCP connect), beside the passive outlierDetection: an endpoint that fails unhealthyThreshold checks in a row leaves balancing until it passes healthyThreshold in a row. Endpoints start healthy and are first checked when the upstream starts. With no healthy endpoint left (or fewer than outlierDetection.minHealthPercent), requests go to all of them.',
  );

const upstreamSchema = z
  .strictObject({
    endpoints: z
      .array(endpointEntrySchema)
      .max(10000)
      .default([])
      .describe(
        'Each endpoint: "host:port", or { address, weight, labels }. DNS names are resolved and re-resolved when their TTL ends.',
      ),
    srv: z
      .string()
      .regex(
        /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})?)*$/,
        'a DNS name',
      )
      .optional()
      .describe(
        'A DNS SRV name (_http._tcp.inventory.example): its targets and ports, with the records of the lowest priority as endpoints weighted by their SRV weight; re-resolved as DNS names are.',
      ),
    endpointsFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A YAML file listing endpoints as `endpoints` does, watched: a change applies at once (or at the next dnsRefresh where the file system sends no events). A file that does not parse keeps the last good list, and is logged and counted.',
      ),
    loadBalancer: loadBalancerSchema.optional(),
    retries: retriesSchema
      .optional()
      .describe('Retries of the requests to this upstream whose route sets none (every outbound call).'),
    timeout: routeTimeout
      .optional()
      .describe(
        'The whole-exchange timeout of the requests to this upstream whose route sets none; 504 (UT) when no response has started.',
      ),
    retryBudget: retryBudgetSchema.prefault({}),
    protocol: z
      .enum(['http1', 'h2'])
      .default('http1')
      .describe(
        "http1: HTTP/1.1 with keep-alive; h2: HTTP/2 (gRPC), cleartext or over TLS, with requests from HTTP/1.1 and HTTP/2 clients multiplexed on its sessions (Istio's h2UpgradePolicy: UPGRADE).",
      ),
    tls: z
      .strictObject({
        serverName: z
          .string()
          .optional()
          .describe('SNI and the name the certificate must carry; default the endpoint host.'),
        ca: z
          .string()
          .optional()
          .describe('PEM CA bundle to verify the upstream with; default the system CAs.'),
        insecureSkipVerify: z
          .boolean()
          .default(false)
          .describe(
            'Do not verify the certificate. For tests only: anyone on the path can read the traffic.',
          ),
        mutual: z
          .boolean()
          .default(false)
          .describe(
            "Mutual TLS with the workload certificate of `identity` (Istio's ISTIO_MUTUAL): it is sent as the client certificate, renewed ones for new connections, and the server is verified against the trust bundle (or `ca`) by its SPIFFE ID instead of a host name.",
          ),
        subjectAltNames: z
          .array(z.string().regex(/^spiffe:\/\/[^/]+\/.+$/, 'a SPIFFE ID, spiffe://<trust-domain>/<path>'))
          .max(64)
          .default([])
          .describe(
            'With mutual: the SPIFFE IDs the server may have (DestinationRule subjectAltNames); a server with another is refused (502). Empty: any certificate of the trust bundle.',
          ),
      })
      .superRefine((t, ctx) => {
        if (t.subjectAltNames.length > 0 && !t.mutual)
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            'subjectAltNames is checked with mutual: true',
            'add mutual: true',
            ['subjectAltNames'],
          );
        if (t.mutual && t.insecureSkipVerify)
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            'mutual TLS verifies the server; insecureSkipVerify would undo that',
            undefined,
            ['insecureSkipVerify'],
          );
      })
      .optional()
      .describe('Originate TLS to the upstream.'),
    pool: z
      .strictObject({
        maxConnections: z
          .number()
          .int()
          .min(1)
          .max(100000)
          .default(1024)
          .describe('Connections open to each endpoint at most; further requests wait.'),
        maxIdle: z
          .number()
          .int()
          .min(0)
          .max(100000)
          .default(64)
          .describe('Idle keep-alive connections kept per endpoint.'),
        idleTimeout: duration({ max: '1h' })
          .prefault('30s')
          .describe('An idle pooled connection is closed after this.'),
        maxPending: z
          .number()
          .int()
          .min(0)
          .max(100000)
          .default(1024)
          .describe('Requests waiting for a connection at most; more get 503 (flag UO) at once.'),
        maxRequests: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(0)
          .describe(
            "Requests in flight to the upstream at most (all endpoints, waiting ones included); more get 503 (flag UO) at once. 0: no limit (Istio's http2MaxRequests).",
          ),
        maxRequestsPerConnection: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(0)
          .describe('A connection is closed after this many requests; 0: no limit.'),
        maxRetries: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(0)
          .describe(
            'Requests being retried at once at most; a failure past it goes to the client (counted as retry_overflow). 0: no limit.',
          ),
      })
      .prefault({})
      .describe(
        "The keep-alive connection pool to each endpoint, and the upstream's circuit-breaking limits: what is over a limit is answered 503 with flag UO at once, never queued without bound.",
      ),
    subsets: z
      .record(
        z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'a subset name'),
        z.strictObject({
          labels: z
            .record(z.string().min(1), z.string())
            .describe('Endpoints with all these labels are in the subset.'),
        }),
      )
      .default({})
      .describe(
        "Named groups of the endpoints by their labels (Istio's DestinationRule subsets), for routes' destinations. A subset with no endpoint answers 503 (UH).",
      ),
    healthCheck: healthCheckSchema.optional(),
    outlierDetection: z
      .strictObject({
        consecutive5xxErrors: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(5)
          .describe(
            'Eject an endpoint after this many 5xx responses or local failures (refused or timed-out connects, resets, per-try timeouts) in a row; 0: off.',
          ),
        consecutiveGatewayErrors: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(0)
          .describe('Eject after this many 502, 503, 504 or local failures in a row; 0: off.'),
        consecutiveLocalOriginFailures: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(0)
          .describe('Eject after this many local failures in a row (no response at all); 0: off.'),
        failurePercentageThreshold: z
          .number()
          .min(0)
          .max(100)
          .default(85)
          .describe(
            "Envoy's failure percentage: an endpoint whose share of failed requests (5xx or no response) over the last interval is at least this is ejected, when enforcingFailurePercentage is set.",
          ),
        enforcingFailurePercentage: z
          .number()
          .min(0)
          .max(100)
          .default(0)
          .describe(
            'The chance (percent) that an endpoint over failurePercentageThreshold is ejected; 0 (the default, as in Envoy): failure-percentage ejection off.',
          ),
        failurePercentageMinimumHosts: z
          .number()
          .int()
          .min(1)
          .max(10000)
          .default(5)
          .describe(
            'Failure-percentage ejection runs only when at least this many endpoints had failurePercentageRequestVolume requests in the interval.',
          ),
        failurePercentageRequestVolume: z
          .number()
          .int()
          .min(1)
          .max(1_000_000)
          .default(50)
          .describe(
            'An endpoint with fewer requests than this in the interval is not judged by its failure percentage.',
          ),
        interval: duration({ min: '10ms', max: '1h' })
          .prefault('10s')
          .describe(
            'How often ejected endpoints whose time is up are returned, and the window over which failure percentages are counted.',
          ),
        baseEjectionTime: duration({ min: '10ms', max: '1h' })
          .prefault('30s')
          .describe(
            'An ejection lasts this times the number of times the endpoint was ejected (at most 300 s or this).',
          ),
        maxEjectionPercent: z
          .number()
          .min(0)
          .max(100)
          .default(10)
          .describe('At most this share of the endpoints is ejected at once (at least one).'),
        minHealthPercent: z
          .number()
          .min(0)
          .max(100)
          .default(0)
          .describe(
            "When fewer than this share of the endpoints are not ejected, requests are balanced over all of them (Envoy's panic threshold); with no endpoint left at all, always.",
          ),
      })
      .optional()
      .describe(
        "Passive health checking (Istio's outlierDetection): endpoints that fail in a row are taken out of balancing for a while. The state is kept across reloads that keep the upstream.",
      ),
    dnsRefresh: duration({ min: '1s', max: '1h' })
      .prefault('30s')
      .describe('Re-resolve DNS names at least this often (sooner if the record TTL is shorter).'),
  })
  .superRefine((u, ctx) => {
    if (u.endpoints.length === 0 && u.srv === undefined && u.endpointsFile === undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_MISSING_KEY',
        'an upstream needs endpoints, srv or endpointsFile',
        'e.g. endpoints: [127.0.0.1:8080]',
        ['endpoints'],
      );
  })
  .describe('A named upstream service.');

const routeSchema = z
  .strictObject({
    name: z.string().optional().describe('Name for metrics and logs; default route-<index>.'),
    match: z
      .strictObject({
        prefix: httpPath()
          .optional()
          .describe('Path prefix, matched on whole segments (/api matches /api and /api/x, not /apix).'),
        exact: httpPath().optional().describe('Exact path.'),
        regex: regex().optional().describe('Regular expression the whole path must match.'),
        methods: z.array(z.string().regex(TOKEN)).optional().describe('Methods, e.g. [GET, HEAD].'),
        host: z.string().optional().describe('Host (without port); *.example.com matches one label.'),
        query: z
          .array(
            z.strictObject({
              name: z.string().min(1).describe('Query parameter name (case-sensitive).'),
              exact: z.string().optional().describe('The value must be exactly this.'),
              regex: regex().optional().describe('The value must match this regular expression.'),
              present: z
                .boolean()
                .optional()
                .describe('true: the parameter must be present; false: it must be absent.'),
            }),
          )
          .max(32)
          .default([])
          .describe(
            'Query parameter conditions, on the decoded values; all must hold. With neither exact, regex nor present, the parameter must be present.',
          ),
        headers: z
          .array(
            z.strictObject({
              name: headerName().describe('Header name (case-insensitive).'),
              exact: z.string().optional().describe('The value must be exactly this.'),
              regex: regex().optional().describe('The value must match this regular expression.'),
              present: z
                .boolean()
                .optional()
                .describe('true: the header must be present; false: it must be absent.'),
            }),
          )
          .default([])
          .describe(
            'Header conditions; all must hold. With neither exact, regex nor present, the header must be present.',
          ),
      })
      .prefault({})
      .superRefine((m, ctx) => {
        const n =
          Number(m.prefix !== undefined) + Number(m.exact !== undefined) + Number(m.regex !== undefined);
        if (n > 1)
          addPillionIssue(
            ctx,
            'PILLION_ERR_CONFIG_BAD_VALUE',
            'a route matches the path by one of prefix, exact or regex, not several',
          );
      })
      .describe('Conditions; a route with no conditions matches every request. Routes are tried in order.'),
    upstream: z.string().optional().describe('Upstream to send to: `app`, or a name under upstreams.'),
    rewritePrefix: httpPath().optional().describe('Replace the matched prefix with this before forwarding.'),
    requestHeaders: headerEdits.describe('Headers changed on the request before forwarding.'),
    responseHeaders: headerEdits.describe('Headers changed on the response.'),
    destinations: z
      .array(
        z.strictObject({
          upstream: z.string().describe('An upstream name (or `app` inbound).'),
          subset: z.string().optional().describe("One of the upstream's subsets."),
          weight: z.number().int().min(0).max(1_000_000).default(1).describe('Relative share of requests.'),
          requestHeaders: headerEdits.describe('Headers changed on requests sent to this destination.'),
          responseHeaders: headerEdits.describe('Headers changed on responses from this destination.'),
        }),
      )
      .min(1)
      .max(64)
      .optional()
      .describe(
        "Instead of `upstream`: split requests between destinations by weight (90/10 for a canary), each an upstream and optionally a subset, with its own header edits after the route's.",
      ),
    mirror: z
      .strictObject({
        upstream: z.string().describe('The upstream the copies go to.'),
        percent: z.number().min(0).max(100).default(100).describe('Share of requests copied.'),
      })
      .optional()
      .describe(
        "Send a copy of requests to another upstream (Istio's mirror and mirrorPercentage), fire and forget: its response is dropped and its failures never reach the client; Host gets -shadow appended. Requests with a body are not copied (counted as skipped_body). Counted in pillion_proxy_mirror_total.",
      ),
    fault: z
      .strictObject({
        delay: z
          .strictObject({
            fixed: duration({ min: '1ms', max: '1h' }).describe('How long to hold the request.'),
            percent: z.number().min(0).max(100).default(100).describe('Share of requests delayed.'),
          })
          .optional()
          .describe('Hold requests before forwarding them (flag DI).'),
        abort: z
          .strictObject({
            status: z.number().int().min(200).max(599).describe('Status to answer with.'),
            percent: z.number().min(0).max(100).default(100).describe('Share of requests aborted.'),
          })
          .optional()
          .describe('Answer requests with this status instead of forwarding them (flag FI).'),
      })
      .optional()
      .describe(
        "Fault injection for chaos testing (Istio's HTTPFaultInjection): delays and aborts on a share of the route's requests, after its filters.",
      ),
    timeout: routeTimeout.optional(),
    retries: retriesSchema.optional(),
    upgradeProtocols: z
      .array(
        z
          .string()
          .regex(TOKEN)
          .superRefine((v, ctx) => {
            if (v.toLowerCase() === 'h2c')
              addPillionIssue(
                ctx,
                'PILLION_ERR_CONFIG_BAD_VALUE',
                'h2c is never tunnelled: inside the tunnel a client could reach paths the routes refuse',
                'clients reach HTTP/2 upstreams with HTTP/2 itself (h2c with prior knowledge, or TLS)',
              );
          }),
      )
      .max(16)
      .default(['websocket'])
      .describe(
        'Upgrade protocols (RFC 9110 §7.8) tunnelled to the upstream once it answers 101, case-insensitive. Others are removed from the Upgrade header and the request goes on as plain HTTP/1.1. h2c is never allowed.',
      ),
    directResponse: z
      .strictObject({
        status: z.number().int().min(200).max(599).describe('Status code.'),
        body: z.string().max(65536).default('').describe('Body, up to 64 KiB.'),
        contentType: headerValue().default('text/plain; charset=utf-8').describe('Content-Type of the body.'),
      })
      .optional()
      .describe('Answer at once with this status and body instead of forwarding.'),
    transform: transformSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.rewritePrefix !== undefined && r.match.prefix === undefined)
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'rewritePrefix needs match.prefix', undefined, [
        'rewritePrefix',
      ]);
    if (r.destinations !== undefined && (r.upstream !== undefined || r.directResponse !== undefined))
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'a route sends to `upstream` or splits between `destinations`, not both (nor with a direct response)',
        undefined,
        ['destinations'],
      );
    if (r.destinations !== undefined && r.destinations.every((d) => d.weight === 0))
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', 'every destination has weight 0', undefined, [
        'destinations',
      ]);
    if (r.transform !== undefined && r.directResponse !== undefined)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'a direct response is not forwarded, so it has nothing to transform',
        'put the transform on a route that forwards',
        ['transform'],
      );
    if (r.directResponse && r.upstream)
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_BAD_VALUE',
        'a route either forwards to an upstream or gives a direct response',
        undefined,
        ['directResponse'],
      );
  });

const timeoutsSchema = z
  .strictObject({
    requestHead: duration({ min: '1ms', max: '10m' })
      .prefault('10s')
      .describe('Time to receive the whole request head; 408 after.'),
    idle: duration({ min: '1ms', max: '1h' })
      .prefault('60s')
      .describe(
        'A keep-alive connection with no request in progress is closed after this; and while a body is expected, no bytes moving either way for this long ends the exchange.',
      ),
    request: duration({ max: '24h' })
      .prefault('0s')
      .describe(
        'Time for the whole exchange, from head to last response byte; 0 is none (streams may be long). 408 or 504 after.',
      ),
    upstreamConnect: duration({ min: '1ms', max: '5m' })
      .prefault('5s')
      .describe('Time to connect to an upstream; 504 after.'),
    upstreamResponse: duration({ max: '24h' })
      .prefault('60s')
      .describe('Time from the end of the request to the response head; 504 after. 0 is none.'),
  })
  .prefault({})
  .describe('Timeouts; each one that fires is answered with its status and counted.');

const limitsSchema = z
  .strictObject({
    maxHeadSize: size({ min: '1KiB', max: '1MiB' })
      .prefault('32KiB')
      .describe('Request line and headers together; 431 over.'),
    maxHeaders: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(100)
      .describe('Header fields in a request; 431 over.'),
    maxBodySize: size({ max: '1TiB' }).prefault('0B').describe('Request body; 413 over. 0 is no limit.'),
    maxConnections: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(10000)
      .describe('Client connections per listener; more are closed at once.'),
  })
  .prefault({})
  .describe('Limits on what a client may send.');

const http2Schema = z
  .strictObject({
    maxConcurrentStreams: z
      .number()
      .int()
      .min(1)
      .max(10000)
      .default(100)
      .describe('Streams open at once per connection.'),
    maxResetsPerSecond: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(200)
      .describe('Stream resets a client may cause per second before the connection is closed (Rapid Reset).'),
    maxHeaderListSize: size({ min: '1KiB', max: '1MiB' })
      .prefault('32KiB')
      .describe('Decoded header block size (bounds CONTINUATION frames).'),
  })
  .prefault({})
  .describe('HTTP/2 limits against stream, reset and CONTINUATION floods.');

const accessLogSchema = z
  .strictObject({
    path: z.string().min(1).default('stdout').describe('`stdout`, or a file path.'),
    maxSize: size({ min: '1KiB' })
      .prefault('100MiB')
      .describe('A file is rotated when it reaches this size.'),
    maxFiles: z.number().int().min(1).max(100).default(5).describe('Rotated files kept (file.1 … file.N).'),
    healthChecks: z
      .boolean()
      .default(false)
      .describe(
        'Log health checks too. By default a request from a prober (User-Agent kube-probe/, ELB-HealthChecker/, GoogleHC/, Envoy/HC, Consul Health Check, pillion-health/) is left out and counted in pillion_proxy_health_checks_total instead, as Envoy’s health-check filter does.',
      ),
  })
  .describe('One JSON line per request, with the fields of Envoy’s default access log.');

const headersSchema = z
  .strictObject({
    trustForwarded: z
      .boolean()
      .default(false)
      .describe(
        'Keep X-Forwarded-For/-Proto/-Host from the client and append to them; when false they are replaced, since a client can forge them.',
      ),
    requestId: z
      .boolean()
      .default(true)
      .describe('Generate X-Request-Id when absent, and echo it on the response.'),
  })
  .prefault({})
  .describe('Headers the proxy adds: X-Forwarded-*, X-Request-Id.');

/** Envoy's path_with_escaped_slashes_action; the default differs between inbound and outbound. */
function escapedSlashesSchema(byDefault: 'reject' | 'keep') {
  return z
    .enum(['keep', 'reject', 'unescape-and-redirect', 'unescape-and-forward'])
    .default(byDefault)
    .describe(
      'What to do with encoded slashes (%2F) and backslashes (%5C) in a path: keep them as data; reject the request (400); decode them to "/" and redirect the client there (307; gRPC gets 400); or decode them and forward. Decoded, they take part in dot-segment removal, so routing and the upstream read the same path.',
    );
}

const MTLS_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const;

function mtlsModeSchema() {
  return z
    .enum(MTLS_MODES)
    .describe(
      'STRICT: only TLS with a client certificate chained to the trust bundle of `identity`; PERMISSIVE: that, and plaintext, on the same port (told apart by the first byte); DISABLE: no mutual TLS.',
    );
}

/** Istio's PeerAuthentication, in pillion's words: a mode for the whole inbound, per port, per listener. */
const mtlsSchema = z
  .strictObject({
    mode: mtlsModeSchema().default('DISABLE'),
    portLevel: z
      .record(
        z.string().regex(/^[1-9][0-9]{0,4}$/, 'a port number'),
        z.strictObject({ mode: mtlsModeSchema() }),
      )
      .default({})
      .describe("Modes by the port a listener listens on, over `mode` (PeerAuthentication's portLevelMtls)."),
    forwardClientCert: z
      .boolean()
      .default(false)
      .describe(
        'Send the app X-Forwarded-Client-Cert as Envoy writes it (By, Hash, Subject, URI) for requests over mutual TLS. A client-sent X-Forwarded-Client-Cert is removed whether or not this is set.',
      ),
  })
  .describe(
    "Mutual TLS with the workload certificate of `identity`, with Istio PeerAuthentication's modes. The verified peer's SPIFFE ID (without spiffe://) is its principal, in the access log as downstream_peer_principal.",
  );

function listenerSchema(defaultHttp2: boolean) {
  return z
    .strictObject({
      name: z
        .string()
        .regex(/^[a-z0-9][a-z0-9_-]*$/i)
        .optional()
        .describe('Name for metrics and logs; default listener-<index>.'),
      address: address().describe('Where to listen, host:port.'),
      mode: z
        .enum(['http', 'tcp'])
        .default('http')
        .describe('http: an HTTP proxy; tcp: forward bytes to `upstream`.'),
      upstream: z.string().optional().describe('tcp mode: the upstream to forward to; default the app.'),
      tls: tlsSchema.optional(),
      mtls: z
        .strictObject({ mode: mtlsModeSchema() })
        .optional()
        .describe("This listener's mutual TLS mode, over inbound.mtls and its portLevel."),
      http2: z
        .boolean()
        .default(defaultHttp2)
        .describe('Accept HTTP/2: by ALPN over TLS, and with prior knowledge (h2c) in cleartext.'),
    })
    .superRefine((l, ctx) => {
      if (l.mode === 'http' && l.upstream !== undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          'upstream on a listener is for mode: tcp; HTTP listeners use routes',
          undefined,
          ['upstream'],
        );
    });
}

const common = {
  upstreams: z
    .record(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/i), upstreamSchema)
    .default({})
    .describe('Named upstream services.'),
  timeouts: timeoutsSchema,
  limits: limitsSchema,
  http2: http2Schema,
  headers: headersSchema,
  accessLog: accessLogSchema.optional(),
};

export const inboundSchema = z
  .strictObject({
    listeners: z.array(listenerSchema(true)).min(1).describe('Listeners in front of the app.'),
    routes: z
      .array(routeSchema)
      .prefault([{}])
      .describe(
        'Routes, tried in order; the first that matches wins. By default every request goes to the app.',
      ),
    readinessGate: z
      .boolean()
      .default(true)
      .describe('Until the app is healthy, answer 503 with Retry-After instead of forwarding.'),
    // Reject: a path the proxy and the app could read two ways never reaches the app.
    pathWithEscapedSlashes: escapedSlashesSchema('reject'),
    mtls: mtlsSchema.optional(),
    jwt: jwtSchema.optional(),
    authorization: authorizationSchema.optional(),
    rateLimits: z
      .array(rateLimitSchema)
      .default([])
      .describe(
        'Local rate limits (token buckets), checked after JWT authentication and before authorization.',
      ),
    ...common,
  })
  .superRefine((s, ctx) => {
    checkUpstreamNames(s, ctx, true);
    s.listeners.forEach((l, i) => {
      if (l.tls !== undefined && listenerMtlsMode(s, l) !== 'DISABLE')
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `listener ${i} terminates TLS with its own certificates, and mutual TLS (${listenerMtlsMode(s, l)}) would serve the workload certificate on the same port`,
          "set this listener's mtls.mode (or portLevel for its port) to DISABLE, or remove its tls and let mutual TLS serve it; tls.clientCertificate verifies clients with your own certificates",
          ['listeners', i, l.mtls ? 'mtls' : 'tls'],
        );
    });
    checkFilterNames(s, ctx);
  })
  .describe('The inbound proxy: TLS termination, routing and protection in front of the app.');

export const outboundSchema = z
  .strictObject({
    listener: z
      .strictObject({
        address: address().prefault('127.0.0.1:15001').describe('Where the app sends its calls.'),
        http2: z.boolean().default(true).describe('Accept h2c with prior knowledge.'),
      })
      .prefault({})
      .describe('The listener the app sends its calls to (loopback).'),
    // Keep: the app is the client here, and routing is by upstream name, not by path.
    pathWithEscapedSlashes: escapedSlashesSchema('keep'),
    routes: z
      .array(routeSchema)
      .default([])
      .describe(
        'Routes tried before the ones made for each upstream (by Host and by /<upstream> prefix): header or query matches, splits between destinations and subsets, faults. Match `host: <upstream>` to act on the calls to an upstream.',
      ),
    ...common,
  })
  .superRefine((s, ctx) => {
    checkUpstreamNames(s, ctx, false);
    s.routes.forEach((r, i) => {
      if (r.upstream === undefined && r.destinations === undefined && r.directResponse === undefined)
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_MISSING_KEY',
          'an outbound route names its upstream (or destinations, or a direct response)',
          'e.g. upstream: inventory',
          ['routes', i],
        );
    });
  })
  .describe(
    'The outbound ambassador: the app calls http://127.0.0.1:15001/<upstream>/path, or sends Host: <upstream>, and Pillion reaches the service.',
  );

/** Rate limits name routes and listeners that exist, and each limit has a name of its own. */
function checkFilterNames(
  s: {
    routes: { name?: string | undefined }[];
    listeners: { name?: string | undefined }[];
    rateLimits: { name: string; routes?: string[] | undefined; listeners?: string[] | undefined }[];
    authorization?: { policies: { name: string }[] } | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const routes = s.routes.map((r, i) => r.name ?? `route-${i}`);
  const listeners = s.listeners.map((l, i) => l.name ?? `listener-${i}`);
  const seen = new Set<string>();
  s.rateLimits.forEach((r, i) => {
    if (seen.has(r.name))
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', `a second rate limit named ${r.name}`, undefined, [
        'rateLimits',
        i,
        'name',
      ]);
    seen.add(r.name);
    r.routes?.forEach((n, j) => {
      if (!routes.includes(n))
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `no route is named ${n}`,
          `routes: ${routes.join(', ')}`,
          ['rateLimits', i, 'routes', j],
        );
    });
    r.listeners?.forEach((n, j) => {
      if (!listeners.includes(n))
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `no listener is named ${n}`,
          `listeners: ${listeners.join(', ')}`,
          ['rateLimits', i, 'listeners', j],
        );
    });
  });
  const policies = new Set<string>();
  s.authorization?.policies.forEach((p, i) => {
    if (policies.has(p.name))
      addPillionIssue(ctx, 'PILLION_ERR_CONFIG_BAD_VALUE', `a second policy named ${p.name}`, undefined, [
        'authorization',
        'policies',
        i,
        'name',
      ]);
    policies.add(p.name);
  });
}

function checkUpstreamNames(
  s: {
    upstreams: Record<string, unknown>;
    routes?: {
      upstream?: string;
      destinations?: { upstream: string; subset?: string }[];
      mirror?: { upstream: string };
    }[];
    listeners?: { mode: string; upstream?: string }[];
  },
  ctx: z.RefinementCtx,
  appAllowed: boolean,
): void {
  const known = (name: string) => (appAllowed && name === 'app') || Object.hasOwn(s.upstreams, name);
  const names = [...(appAllowed ? ['app'] : []), ...Object.keys(s.upstreams)];
  const hint = (name: string) => {
    const near = didYouMean(name, names);
    return `${near ? `did you mean "${near}"? ` : ''}defined: ${names.join(', ') || 'none'}`;
  };
  s.routes?.forEach((r, i) => {
    if (r.upstream !== undefined && !known(r.upstream))
      addPillionIssue(
        ctx,
        'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM',
        `route ${i} names upstream "${r.upstream}"`,
        hint(r.upstream),
        ['routes', i, 'upstream'],
      );
    if (r.mirror !== undefined && !known(r.mirror.upstream))
      addPillionIssue(
        ctx,
        'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM',
        `route ${i} mirrors to upstream "${r.mirror.upstream}"`,
        hint(r.mirror.upstream),
        ['routes', i, 'mirror', 'upstream'],
      );
    r.destinations?.forEach((d, j) => {
      if (!known(d.upstream)) {
        addPillionIssue(
          ctx,
          'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM',
          `route ${i} names upstream "${d.upstream}"`,
          hint(d.upstream),
          ['routes', i, 'destinations', j, 'upstream'],
        );
        return;
      }
      const subsets =
        (s.upstreams[d.upstream] as { subsets?: Record<string, unknown> } | undefined)?.subsets ?? {};
      if (d.subset !== undefined && !Object.hasOwn(subsets, d.subset))
        addPillionIssue(
          ctx,
          'PILLION_ERR_CONFIG_BAD_VALUE',
          `upstream ${d.upstream} has no subset "${d.subset}"`,
          `subsets: ${Object.keys(subsets).join(', ') || 'none'}`,
          ['routes', i, 'destinations', j, 'subset'],
        );
    });
  });
  s.listeners?.forEach((l, i) => {
    if (l.upstream !== undefined && !known(l.upstream))
      addPillionIssue(
        ctx,
        'PILLION_ERR_PROXY_UNKNOWN_UPSTREAM',
        `listener ${i} names upstream "${l.upstream}"`,
        hint(l.upstream),
        ['listeners', i, 'upstream'],
      );
  });
}

export type MtlsConfig = z.output<typeof mtlsSchema>;
export type MtlsMode = (typeof MTLS_MODES)[number];

/** A listener's mutual-TLS mode: its own, else its port's, else the inbound's, else DISABLE. */
export function listenerMtlsMode(
  inbound: { mtls?: MtlsConfig | undefined },
  l: { address: { port: number }; mtls?: { mode: MtlsMode } | undefined },
): MtlsMode {
  return (
    l.mtls?.mode ?? inbound.mtls?.portLevel[String(l.address.port)]?.mode ?? inbound.mtls?.mode ?? 'DISABLE'
  );
}

export type InboundConfig = z.output<typeof inboundSchema>;
export type OutboundConfig = z.output<typeof outboundSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type EndpointEntry = z.output<typeof endpointEntrySchema>;
export type LoadBalancerConfig = z.output<typeof loadBalancerSchema>;
export type RetriesConfig = z.output<typeof retriesSchema>;
export type HealthCheckConfig = NonNullable<UpstreamConfig['healthCheck']>;
export type OutlierDetectionConfig = NonNullable<UpstreamConfig['outlierDetection']>;
export type RetryBudgetConfig = z.output<typeof retryBudgetSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type TlsConfig = z.output<typeof tlsSchema>;
export type TimeoutsConfig = z.output<typeof timeoutsSchema>;
export type LimitsConfig = z.output<typeof limitsSchema>;
export type Http2Config = z.output<typeof http2Schema>;
export type AccessLogConfig = z.output<typeof accessLogSchema>;
export type HeadersConfig = z.output<typeof headersSchema>;
export type EscapedSlashesAction = z.output<ReturnType<typeof escapedSlashesSchema>>;
export type ListenerConfig = z.output<ReturnType<typeof listenerSchema>>;
