// Istio's VirtualService and DestinationRule translated into pillion.yaml's own keys: a
// DestinationRule's trafficPolicy and subsets onto the upstream its host names, a VirtualService's
// http routes into outbound routes (matches, weighted destinations, timeout, retries, fault,
// mirror, header edits). A host names a pillion upstream: the upstream of that name, else the one
// named by the host's first label (reviews.default.svc.cluster.local is `reviews`). What Pillion
// cannot do as Istio would is an error at its line:col, never dropped.

import type { ConfigIssue } from '../config/index.js';
import { RETRY_ON } from '../proxy/config.js';
import type { DestinationRuleResource, VirtualServiceResource } from './istio-traffic-schema.js';

type At = (path: (string | number)[], message: string) => ConfigIssue;

export interface UpstreamInfo {
  /** Ports of the upstream's static endpoints (a destination's port must be one of them). */
  ports: number[];
}

/** The upstream a host names, or undefined. */
export function upstreamOf(host: string, upstreams: Record<string, UpstreamInfo>): string | undefined {
  if (Object.hasOwn(upstreams, host)) return host;
  const first = host.split('.')[0]!;
  return Object.hasOwn(upstreams, first) ? first : undefined;
}

const KNOWN_RETRY_ON: ReadonlySet<string> = new Set(RETRY_ON);

/** Istio durations ("10s", "0.5s", "1h") as pillion writes them. */
function duration(v: string): string {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v);
  if (!m) return v;
  const n = Number(m[1]);
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number.isInteger(ms) ? `${ms}ms` : v;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The keys a DestinationRule sets on its upstream. */
export function translateDestinationRule(
  r: DestinationRuleResource,
  upstreams: Record<string, UpstreamInfo>,
  at: At,
  issues: ConfigIssue[],
): { upstream: string; patch: Record<string, unknown> } | undefined {
  const s = r.spec;
  const name = upstreamOf(s.host, upstreams);
  if (name === undefined) {
    issues.push(
      at(
        ['spec', 'host'],
        `host ${s.host} names no upstream (defined: ${Object.keys(upstreams).join(', ') || 'none'})`,
      ),
    );
    return undefined;
  }
  const patch: Record<string, unknown> = {};
  const tp = s.trafficPolicy;
  const lb = tp?.loadBalancer;
  if (lb?.simple !== undefined && lb.consistentHash !== undefined)
    issues.push(
      at(['spec', 'trafficPolicy', 'loadBalancer'], 'a loadBalancer is simple or consistentHash, not both'),
    );
  if (lb?.simple !== undefined) {
    patch.loadBalancer = {
      policy:
        lb.simple === 'LEAST_REQUEST' || lb.simple === 'LEAST_CONN'
          ? 'least-request'
          : lb.simple === 'RANDOM'
            ? 'random'
            : 'round-robin',
    };
  } else if (lb?.consistentHash !== undefined) {
    const h = lb.consistentHash;
    const path = ['spec', 'trafficPolicy', 'loadBalancer', 'consistentHash'];
    if (h.httpCookie?.path !== undefined || h.httpCookie?.ttl !== undefined)
      issues.push(
        at(
          [...path, 'httpCookie'],
          'not supported: a cookie Pillion would generate (path, ttl); hash on an existing cookie by name alone',
        ),
      );
    if (h.ringHash?.minimumRingSize !== undefined)
      issues.push(
        at(
          [...path, 'ringHash', 'minimumRingSize'],
          "not supported: Pillion's ring has loadBalancer.virtualNodes points per unit of weight",
        ),
      );
    const n =
      Number(h.httpHeaderName !== undefined) +
      Number(h.httpCookie !== undefined) +
      Number(h.useSourceIp === true);
    if (n !== 1)
      issues.push(at(path, 'consistentHash takes one of httpHeaderName, httpCookie or useSourceIp'));
    patch.loadBalancer = {
      policy: h.maglev !== undefined ? 'maglev' : 'ring-hash',
      hashOn:
        h.httpHeaderName !== undefined
          ? { header: h.httpHeaderName }
          : h.httpCookie !== undefined
            ? { cookie: h.httpCookie.name }
            : { clientAddress: true },
    };
  }
  const cp = tp?.connectionPool;
  if (cp !== undefined) {
    const pool: Record<string, unknown> = {};
    if (cp.tcp?.maxConnections !== undefined) pool.maxConnections = cp.tcp.maxConnections;
    if (cp.http?.http1MaxPendingRequests !== undefined) pool.maxPending = cp.http.http1MaxPendingRequests;
    if (cp.http?.http2MaxRequests !== undefined) pool.maxRequests = cp.http.http2MaxRequests;
    if (cp.http?.maxRequestsPerConnection !== undefined)
      pool.maxRequestsPerConnection = cp.http.maxRequestsPerConnection;
    if (cp.http?.maxRetries !== undefined) pool.maxRetries = cp.http.maxRetries;
    if (cp.http?.idleTimeout !== undefined) pool.idleTimeout = duration(cp.http.idleTimeout);
    patch.pool = pool;
    if (cp.http?.h2UpgradePolicy === 'UPGRADE') patch.protocol = 'h2';
  }
  const od = tp?.outlierDetection;
  if (od !== undefined) {
    if (od.splitExternalLocalOriginErrors !== undefined)
      issues.push(
        at(
          ['spec', 'trafficPolicy', 'outlierDetection', 'splitExternalLocalOriginErrors'],
          'not supported: Pillion always counts failures without a response both as 5xx and as local-origin failures',
        ),
      );
    patch.outlierDetection = {
      ...(od.consecutive5xxErrors !== undefined ? { consecutive5xxErrors: od.consecutive5xxErrors } : {}),
      ...(od.consecutiveGatewayErrors !== undefined
        ? { consecutiveGatewayErrors: od.consecutiveGatewayErrors }
        : {}),
      ...(od.consecutiveLocalOriginFailures !== undefined
        ? { consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures }
        : {}),
      ...(od.interval !== undefined ? { interval: duration(od.interval) } : {}),
      ...(od.baseEjectionTime !== undefined ? { baseEjectionTime: duration(od.baseEjectionTime) } : {}),
      ...(od.maxEjectionPercent !== undefined ? { maxEjectionPercent: od.maxEjectionPercent } : {}),
      ...(od.minHealthPercent !== undefined ? { minHealthPercent: od.minHealthPercent } : {}),
    };
  }
  const tls = tp?.tls;
  if (tls !== undefined && tls.mode !== 'DISABLE') {
    if (tls.mode === 'MUTUAL')
      issues.push(
        at(
          ['spec', 'trafficPolicy', 'tls', 'mode'],
          "not supported: MUTUAL with certificate files; ISTIO_MUTUAL uses the workload's certificate",
        ),
      );
    patch.tls =
      tls.mode === 'ISTIO_MUTUAL'
        ? { mutual: true, ...(tls.subjectAltNames ? { subjectAltNames: tls.subjectAltNames } : {}) }
        : {
            ...(tls.sni !== undefined ? { serverName: tls.sni } : {}),
            ...(tls.caCertificates !== undefined ? { ca: tls.caCertificates } : {}),
            ...(tls.insecureSkipVerify !== undefined ? { insecureSkipVerify: tls.insecureSkipVerify } : {}),
          };
  }
  if (s.subsets !== undefined)
    patch.subsets = Object.fromEntries(s.subsets.map((x) => [x.name, { labels: x.labels }]));
  return { upstream: name, patch };
}

/** A VirtualService's http routes as outbound routes, in order, for each host it names. */
export function translateVirtualService(
  r: VirtualService,
  upstreams: Record<string, UpstreamInfo>,
  at: At,
  issues: ConfigIssue[],
): Record<string, unknown>[] {
  const s = r.spec;
  const hosts: string[] = [];
  s.hosts.forEach((h, i) => {
    const u = upstreamOf(h, upstreams);
    if (u === undefined)
      issues.push(
        at(
          ['spec', 'hosts', i],
          `host ${h} names no upstream (defined: ${Object.keys(upstreams).join(', ') || 'none'})`,
        ),
      );
    else hosts.push(...new Set([h, u]));
  });
  const out: Record<string, unknown>[] = [];
  const id = `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
  s.http.forEach((route, i) => {
    const here = (p: (string | number)[], m: string) => issues.push(at(['spec', 'http', i, ...p], m));
    const destinations = route.route.flatMap((d, k) => {
      const u = upstreamOf(d.destination.host, upstreams);
      if (u === undefined) {
        here(['route', k, 'destination', 'host'], `host ${d.destination.host} names no upstream`);
        return [];
      }
      const port = d.destination.port?.number;
      if (port !== undefined && !upstreams[u]!.ports.includes(port))
        here(
          ['route', k, 'destination', 'port'],
          `upstream ${u} has no endpoint on port ${port}; its endpoints carry their ports`,
        );
      return [
        {
          upstream: u,
          ...(d.destination.subset !== undefined ? { subset: d.destination.subset } : {}),
          weight: d.weight ?? (route.route.length === 1 ? 1 : 0),
          ...headerEdits(d.headers),
        },
      ];
    });
    const common: Record<string, unknown> = { destinations, ...headerEdits(route.headers) };
    if (route.timeout !== undefined) common.timeout = duration(route.timeout);
    if (route.retries !== undefined) {
      const on: string[] = [];
      const codes: number[] = [];
      for (const c of (route.retries.retryOn ?? '')
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)) {
        if (/^\d{3}$/.test(c)) codes.push(Number(c));
        else if (KNOWN_RETRY_ON.has(c)) on.push(c);
        else
          here(
            ['retries', 'retryOn'],
            `not supported: retryOn "${c}" (gRPC conditions need gRPC retries, not built)`,
          );
      }
      if (codes.length > 0 && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
      common.retries = {
        attempts: route.retries.attempts,
        ...(route.retries.perTryTimeout !== undefined
          ? { perTryTimeout: duration(route.retries.perTryTimeout) }
          : {}),
        ...(on.length > 0 ? { retryOn: on } : {}),
        ...(codes.length > 0 ? { retriableStatusCodes: codes } : {}),
      };
    }
    if (route.fault !== undefined) {
      const f = route.fault;
      common.fault = {
        ...(f.delay
          ? { delay: { fixed: duration(f.delay.fixedDelay), percent: f.delay.percentage?.value ?? 100 } }
          : {}),
        ...(f.abort
          ? { abort: { status: f.abort.httpStatus, percent: f.abort.percentage?.value ?? 100 } }
          : {}),
      };
    }
    if (route.mirror !== undefined) {
      const u = upstreamOf(route.mirror.host, upstreams);
      if (u === undefined) here(['mirror', 'host'], `host ${route.mirror.host} names no upstream`);
      else if (route.mirror.subset !== undefined)
        here(['mirror', 'subset'], 'not supported: a mirror subset');
      else common.mirror = { upstream: u, percent: route.mirrorPercentage?.value ?? 100 };
    }
    const matches = route.match ?? [undefined];
    matches.forEach((m, j) => {
      const match: Record<string, unknown> = {};
      const mp = ['match', j];
      if (m?.uri?.prefix !== undefined) match.prefix = m.uri.prefix;
      if (m?.uri?.exact !== undefined) match.exact = m.uri.exact;
      if (m?.uri?.regex !== undefined) match.regex = m.uri.regex;
      if (m?.method !== undefined) {
        if (m.method.exact !== undefined) match.methods = [m.method.exact];
        else here([...mp, 'method'], 'not supported: a method matched by prefix or regex; use exact');
      }
      if (m?.headers !== undefined)
        match.headers = Object.entries(m.headers).map(([name, v]) => ({
          name,
          ...(v.exact !== undefined ? { exact: v.exact } : { regex: v.regex ?? `^${escapeRe(v.prefix!)}.*` }),
        }));
      if (m?.queryParams !== undefined)
        match.query = Object.entries(m.queryParams).map(([name, v]) => ({
          name,
          ...(v.exact !== undefined ? { exact: v.exact } : { regex: v.regex ?? `^${escapeRe(v.prefix!)}.*` }),
        }));
      const rewrite: Record<string, unknown> = {};
      if (route.rewrite?.uri !== undefined) {
        if (m?.uri?.prefix === undefined)
          here(['rewrite', 'uri'], 'not supported: a uri rewrite without a uri prefix match');
        else rewrite.rewritePrefix = route.rewrite.uri;
      }
      for (const host of hosts)
        out.push({
          name: `${id}/${route.name ?? i}${m?.name !== undefined ? `/${m.name}` : matches.length > 1 ? `/${j}` : ''}`,
          match: { ...match, host },
          ...rewrite,
          ...common,
        });
    });
  });
  return out;
}

type VirtualService = VirtualServiceResource;

function headerEdits(
  h: { request?: Ops | undefined; response?: Ops | undefined } | undefined,
): Record<string, unknown> {
  if (h === undefined) return {};
  const edits = (o: Ops | undefined) =>
    o === undefined ? undefined : { add: { ...o.set, ...o.add }, remove: o.remove ?? [] };
  return {
    ...(h.request ? { requestHeaders: edits(h.request) } : {}),
    ...(h.response ? { responseHeaders: edits(h.response) } : {}),
  };
}

interface Ops {
  set?: Record<string, string> | undefined;
  add?: Record<string, string> | undefined;
  remove?: string[] | undefined;
}
