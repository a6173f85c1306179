// The proxy's metrics, on the plain-number families of metrics/families.ts: the data path looks
// a series up once per route and listener, not once per request.

import {
  CounterFamily,
  family,
  GaugeFamily,
  HistogramFamily,
  type Registry,
  type Series,
  type HistogramSeries,
} from '../metrics/index.js';
import type { RateLimitedLog } from '../lib/rate-limited-log.js';

export { observe } from '../metrics/index.js';

export const DURATION_BOUNDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Methods get their own label value; everything else is "other" (bounds cardinality). */
/** A switch, not an object lookup: keyed loads on strings go megamorphic on the hot path. */
function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'POST':
      return 1;
    case 'PUT':
      return 2;
    case 'DELETE':
      return 3;
    case 'PATCH':
      return 4;
    case 'HEAD':
      return 5;
    case 'OPTIONS':
      return 6;
    default:
      return 7;
  }
}
const METHOD_NAMES = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'other'];

/**
 * Why the proxy refused a request, removed part of one, or ended a client connection, beyond the
 * status counted in pillion_proxy_requests_total: the `reason` label of pillion_proxy_refusals_total.
 */
export const REFUSAL_REASONS = [
  /** An HTTP/2 request or trailer with a field name or value HTTP does not allow (400, or reset). */
  'h2_malformed_field',
  /** A request on an HTTP/2 connection whose header blocks could no longer be read (reset). */
  'h2_uncheckable',
  /** An HTTP/2 connection ended with a GOAWAY carrying an error code (a protocol error, Rapid Reset...). */
  'h2_protocol_error',
  /** A client's HTTP/2 header block went past 4 × http2.maxHeaderListSize: connection closed. */
  'h2_header_block_too_large',
  /** h2c removed from a request's Upgrade header (never tunnelled). */
  'upgrade_h2c',
  /** Another protocol the route does not allow removed from a request's Upgrade header. */
  'upgrade_not_allowed',
  /** An encoded slash or backslash in a path, with pathWithEscapedSlashes: reject (400). */
  'escaped_slash',
  /** The same with unescape-and-redirect: redirected (307) to the decoded path. */
  'escaped_slash_redirect',
  /** An encoded NUL (%00) in a path (400). */
  'nul_in_path',
  /** A TLS client started to renegotiate: its connection was closed. */
  'tls_renegotiation',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

/** The series of one route on one listener, resolved at config load. */
export class RouteStats {
  #requests: CounterFamily;
  #labels: Record<string, string>;
  #byMethodClass: (Series | undefined)[] = new Array(METHOD_NAMES.length * CLASSES.length);
  readonly duration: HistogramSeries;

  constructor(stats: ProxyStats, listener: string, route: string) {
    this.#labels = { section: stats.section, listener, route };
    this.#requests = stats.requests;
    this.duration = stats.duration.with(this.#labels);
  }

  count(method: string, status: number): void {
    const m = methodIndex(method);
    const c = status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : 4;
    const i = m * 5 + c;
    let s = this.#byMethodClass[i];
    if (s === undefined) {
      s = this.#requests.with({ ...this.#labels, method: METHOD_NAMES[m]!, code_class: CLASSES[c]! });
      this.#byMethodClass[i] = s;
    }
    s.value++;
  }
}

/** Every proxy metric of one section (inbound or outbound). */
export class ProxyStats {
  readonly section: string;
  readonly requests: CounterFamily;
  readonly duration: HistogramFamily;
  readonly bytes: CounterFamily;
  readonly connections: GaugeFamily;
  readonly activeRequests: GaugeFamily;
  readonly upstreamErrors: CounterFamily;
  readonly refusals: CounterFamily;
  readonly healthChecks: CounterFamily;
  readonly retries: CounterFamily;
  readonly endpointsFileErrors: CounterFamily;
  readonly upstreamTime: HistogramFamily;
  readonly mirrors: CounterFamily;
  /** Upstream failures are logged here, at most one line per upstream and kind a minute. */
  readonly errorLog: RateLimitedLog | undefined;

  constructor(registry: Registry, section: string, errorLog?: RateLimitedLog) {
    this.section = section;
    this.errorLog = errorLog;
    this.requests = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_requests_total',
          'Requests answered, by listener, route, method and status class.',
        ),
    );
    this.duration = family(
      registry,
      () =>
        new HistogramFamily(
          'pillion_proxy_request_duration_seconds',
          'Time from the first byte of the request head to the last byte of the response.',
          DURATION_BOUNDS,
        ),
    );
    this.bytes = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_bytes_total',
          'Bytes received from and sent to clients, by direction.',
        ),
    );
    this.connections = family(
      registry,
      () => new GaugeFamily('pillion_proxy_active_connections', 'Client connections open, by listener.'),
    );
    this.activeRequests = family(
      registry,
      () => new GaugeFamily('pillion_proxy_active_requests', 'Requests in progress, by listener.'),
    );
    this.upstreamErrors = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_upstream_errors_total',
          'Upstream failures by kind: connect_refused, connect_timeout, no_endpoint, overflow, response_timeout, reset, protocol.',
        ),
    );
    this.refusals = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_refusals_total',
          `Requests refused or cut down, and client connections ended, by listener and reason: ${REFUSAL_REASONS.join(', ')}.`,
        ),
    );
    this.healthChecks = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_health_checks_total',
          'Health-check requests (from probers) left out of the access log, by listener.',
        ),
    );
    this.retries = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_retries_total',
          `Failed tries on routes with retries, by upstream and outcome: ${RETRY_OUTCOMES.join(', ')}.`,
        ),
    );
    this.upstreamTime = family(
      registry,
      () =>
        new HistogramFamily(
          'pillion_upstream_response_time_seconds',
          'Time from a request leaving for the upstream to its response head, by upstream (the last try of a retried request).',
          DURATION_BOUNDS,
        ),
    );
    this.mirrors = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_mirror_total',
          'Copies of requests for mirroring upstreams, by upstream and outcome: sent, failed (no endpoint, an error or a timeout; never seen by the client), skipped_body (a request with a body is not copied), overflow (64 copies in flight already).',
        ),
    );
    this.endpointsFileErrors = family(
      registry,
      () =>
        new CounterFamily(
          'pillion_proxy_endpoints_file_errors_total',
          "Versions of an upstream's endpointsFile that could not be read or did not validate (the last good list was kept), by upstream.",
        ),
    );
  }
}

/** What became of a failed try on a route with retries: the `outcome` of pillion_proxy_retries_total. */
export const RETRY_OUTCOMES = [
  /** Tried again. */
  'retried',
  /** Not retried: the upstream's retry budget was spent; the failure went to the client. */
  'budget_exhausted',
  /** Not retried: it was the last try allowed. */
  'attempts_exhausted',
  /** Not retried: the request body was larger than retries.maxBodySize, so it was not kept. */
  'body_too_large',
  /** Not retried: pool.maxRetries requests were being retried already. */
  'retry_overflow',
  /** Not retried: the failure is not one of retryOn. */
  'not_retriable',
  /** Not retried: the request came over HTTP/2 or asked for a protocol upgrade, which are sent once. */
  'not_retried_protocol',
] as const;
export type RetryOutcome = (typeof RETRY_OUTCOMES)[number];

/** The series of one listener, resolved at start. */
export class ListenerStats {
  readonly bytesIn: Series;
  readonly bytesOut: Series;
  readonly connections: Series;
  readonly active: Series;
  readonly stats: ProxyStats;
  readonly listener: string;
  #routes = new Map<string, RouteStats>();
  /** One series per reason, made up front so that every reason shows, at 0, from the start. */
  #refusals: Series[];

  constructor(stats: ProxyStats, listener: string) {
    this.stats = stats;
    this.listener = listener;
    const l = { section: stats.section, listener };
    this.bytesIn = stats.bytes.with({ ...l, direction: 'in' });
    this.bytesOut = stats.bytes.with({ ...l, direction: 'out' });
    this.connections = stats.connections.with(l);
    this.active = stats.activeRequests.with(l);
    this.#refusals = REFUSAL_REASONS.map((reason) => stats.refusals.with({ ...l, reason }));
  }

  refused(reason: RefusalReason): void {
    this.#refusals[REFUSAL_REASONS.indexOf(reason)]!.value++;
  }

  route(name: string): RouteStats {
    let r = this.#routes.get(name);
    if (!r) {
      r = new RouteStats(this.stats, this.listener, name);
      this.#routes.set(name, r);
    }
    return r;
  }

  retry(upstream: string, outcome: RetryOutcome): void {
    this.stats.retries.with({ section: this.stats.section, upstream, outcome }).value++;
  }

  upstreamError(upstream: string, kind: string, reason?: string): void {
    const st = this.stats;
    st.upstreamErrors.with({ section: st.section, upstream, kind }).value++;
    st.errorLog?.log(
      'warn',
      `${upstream}\u0000${kind}`,
      {
        section: st.section,
        listener: this.listener,
        upstream,
        kind,
        ...(reason !== undefined ? { reason } : {}),
      },
      'upstream failure',
    );
  }
}
