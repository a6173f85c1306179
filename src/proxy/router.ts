// Routes compiled once at config load: each request is matched by a plain loop over prepared
// conditions (no closures or allocations per request). The first route that matches wins.

import type { RetriesConfig, RouteConfig } from './config.js';
import type { TransformConfig } from './transform/config.js';

export interface HeaderCondition {
  lower: string;
  exact: string | undefined;
  re: RegExp | undefined;
  present: boolean;
}

export interface QueryCondition {
  name: string;
  exact: string | undefined;
  re: RegExp | undefined;
  present: boolean;
}

/** Fault injection of a route: a delay and an abort, each on a share of requests (0..1). */
export interface CompiledFault {
  delayMs: number;
  delayShare: number;
  abortStatus: number;
  abortShare: number;
}

export interface DirectResponse {
  status: number;
  body: Buffer;
  contentType: string;
}

export interface CompiledRoute {
  name: string;
  index: number;
  /** 0 any path, 1 prefix, 2 exact, 3 regex. */
  pathKind: 0 | 1 | 2 | 3;
  pathValue: string;
  pathRe: RegExp | undefined;
  methods: Set<string> | undefined;
  /** Exact host, lower-case; or a wildcard's suffix (".example.com") when hostWildcard. */
  host: string | undefined;
  hostWildcard: boolean;
  headers: HeaderCondition[];
  query: QueryCondition[];
  /** `app` or an upstream name; undefined with a direct response. */
  upstream: string | undefined;
  rewritePrefix: string | undefined;
  direct: DirectResponse | undefined;
  /** Pre-serialized "name: value\r\n" lines added to the request, and names removed or replaced (lower-case). */
  requestAdd: string;
  requestDrop: Set<string>;
  responseAdd: string;
  responseDrop: Set<string>;
  /** The same additions as [lower-case name, value] pairs, for HTTP/2. */
  requestAddPairs: [string, string][];
  responseAddPairs: [string, string][];
  /** Rewrite Host to this (outbound: the service's name), or undefined to keep the client's. */
  hostRewrite: string | undefined;
  /** Upgrade protocols that may be tunnelled, lower-case. */
  upgrades: Set<string>;
  /** The route's own retries and whole-exchange timeout (ms), else its upstream's are used. */
  retries: RetriesConfig | undefined;
  timeoutMs: number | undefined;
  /** The upstream's subset the request goes to, if any. */
  subset: string | undefined;
  /** Weighted destinations: each a copy of the route with its upstream, subset and header edits. */
  split: CompiledRoute[] | undefined;
  splitCumulative: number[] | undefined;
  fault: CompiledFault | undefined;
  /** Mirroring: the upstream copies go to and the share of requests copied (0..1). */
  mirror: { upstream: string; share: number } | undefined;
  /** The API adapter's settings; compiled by the proxy's build (by route index), not here. */
  transform: TransformConfig | undefined;
}

export function compileRoutes(
  routes: RouteConfig[],
  hostOf?: (upstream: string) => string | undefined,
): CompiledRoute[] {
  return routes.map((r, index) =>
    compileRoute(r, index, hostOf && r.upstream !== undefined ? hostOf(r.upstream) : undefined, hostOf),
  );
}

export function compileRoute(
  r: RouteConfig,
  index: number,
  hostRewrite?: string,
  hostOf?: (upstream: string) => string | undefined,
): CompiledRoute {
  const m = r.match;
  const pathKind = m.prefix !== undefined ? 1 : m.exact !== undefined ? 2 : m.regex !== undefined ? 3 : 0;
  let host = m.host?.toLowerCase();
  let hostWildcard = false;
  if (host?.startsWith('*.')) {
    host = host.slice(1);
    hostWildcard = true;
  }
  const base: CompiledRoute = {
    name: r.name ?? `route-${index}`,
    index,
    pathKind,
    pathValue: m.prefix ?? m.exact ?? '',
    pathRe: m.regex !== undefined ? new RegExp(`^(?:${m.regex})$`) : undefined,
    methods: m.methods ? new Set(m.methods.map((x) => x.toUpperCase())) : undefined,
    host,
    hostWildcard,
    headers: m.headers.map((h) => ({
      lower: h.name.toLowerCase(),
      exact: h.exact,
      re: h.regex !== undefined ? new RegExp(h.regex) : undefined,
      present: h.present ?? true,
    })),
    upstream: r.directResponse || r.destinations ? undefined : (r.upstream ?? 'app'),
    rewritePrefix: r.rewritePrefix,
    direct: r.directResponse
      ? {
          status: r.directResponse.status,
          body: Buffer.from(r.directResponse.body),
          contentType: r.directResponse.contentType,
        }
      : undefined,
    requestAdd: serializeHeaders(r.requestHeaders.add),
    requestDrop: dropSet(r.requestHeaders),
    responseAdd: serializeHeaders(r.responseHeaders.add),
    responseDrop: dropSet(r.responseHeaders),
    requestAddPairs: headerPairs(r.requestHeaders.add),
    responseAddPairs: headerPairs(r.responseHeaders.add),
    hostRewrite,
    upgrades: new Set(r.upgradeProtocols.map((p) => p.toLowerCase())),
    query: (m.query ?? []).map((q) => ({
      name: q.name,
      exact: q.exact,
      re: q.regex !== undefined ? new RegExp(q.regex) : undefined,
      present: q.present ?? true,
    })),
    retries: r.retries,
    timeoutMs: r.timeout,
    transform: r.transform,
    subset: undefined,
    split: undefined,
    splitCumulative: undefined,
    mirror:
      r.mirror !== undefined ? { upstream: r.mirror.upstream, share: r.mirror.percent / 100 } : undefined,
    fault:
      r.fault !== undefined
        ? {
            delayMs: r.fault.delay?.fixed ?? 0,
            delayShare: (r.fault.delay?.percent ?? 0) / 100,
            abortStatus: r.fault.abort?.status ?? 0,
            abortShare: (r.fault.abort?.percent ?? 0) / 100,
          }
        : undefined,
  };
  if (r.destinations !== undefined) {
    let sum = 0;
    base.splitCumulative = r.destinations.map((d) => (sum += d.weight));
    base.split = r.destinations.map((d) => {
      const add = { ...r.requestHeaders.add, ...d.requestHeaders.add };
      const radd = { ...r.responseHeaders.add, ...d.responseHeaders.add };
      const req = { add, remove: [...r.requestHeaders.remove, ...d.requestHeaders.remove] };
      const res = { add: radd, remove: [...r.responseHeaders.remove, ...d.responseHeaders.remove] };
      return {
        ...base,
        upstream: d.upstream,
        subset: d.subset,
        requestAdd: serializeHeaders(req.add),
        requestDrop: dropSet(req),
        responseAdd: serializeHeaders(res.add),
        responseDrop: dropSet(res),
        requestAddPairs: headerPairs(req.add),
        responseAddPairs: headerPairs(res.add),
        hostRewrite: hostOf?.(d.upstream),
        split: undefined,
        splitCumulative: undefined,
      };
    });
  }
  return base;
}

/** The destination a request on a route with weighted destinations goes to (the route itself otherwise). */
export function pickDestination(r: CompiledRoute, random: () => number): CompiledRoute {
  const split = r.split;
  if (split === undefined) return r;
  const cum = r.splitCumulative!;
  const x = random() * cum[cum.length - 1]!;
  for (let i = 0; i < cum.length; i++) if (x < cum[i]!) return split[i]!;
  return split[split.length - 1]!;
}

/** Whether the query string ('' or '?a=1&b') meets every condition. */
function queryMatches(conds: QueryCondition[], query: string): boolean {
  const params = new URLSearchParams(query);
  for (let i = 0; i < conds.length; i++) {
    const c = conds[i]!;
    const v = params.get(c.name);
    if (v === null) {
      if (c.present || c.exact !== undefined || c.re !== undefined) return false;
      continue;
    }
    if (c.exact === undefined && c.re === undefined && !c.present) return false;
    if (c.exact !== undefined && v !== c.exact) return false;
    if (c.re !== undefined && !c.re.test(v)) return false;
  }
  return true;
}

function serializeHeaders(add: Record<string, string>): string {
  let s = '';
  for (const [k, v] of Object.entries(add)) s += `${k}: ${v}\r\n`;
  return s;
}

function headerPairs(add: Record<string, string>): [string, string][] {
  return Object.entries(add).map(([k, v]) => [k.toLowerCase(), v]);
}

function dropSet(edits: { add: Record<string, string>; remove: string[] }): Set<string> {
  return new Set([...edits.remove, ...Object.keys(edits.add)].map((n) => n.toLowerCase()));
}

/** Host without port, lower-case; handles [v6]:port. */
export function hostOnly(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return host.slice(0, end + 1).toLowerCase();
  }
  const colon = host.indexOf(':');
  return (colon === -1 ? host : host.slice(0, colon)).toLowerCase();
}

/**
 * The first route that matches, or undefined. `host` is the Host header without port, lower-case;
 * `lower`/`values` are the request's header names (lower-case) and values.
 */
export function matchRoute(
  routes: CompiledRoute[],
  method: string,
  path: string,
  host: string,
  lower: string[],
  values: string[],
  query = '',
): CompiledRoute | undefined {
  outer: for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    switch (r.pathKind) {
      case 1: {
        const pre = r.pathValue;
        if (
          !path.startsWith(pre) ||
          (path.length !== pre.length && !pre.endsWith('/') && path.charCodeAt(pre.length) !== 0x2f)
        )
          continue;
        break;
      }
      case 2:
        if (path !== r.pathValue) continue;
        break;
      case 3:
        if (!r.pathRe!.test(path)) continue;
        break;
    }
    if (r.methods && !r.methods.has(method)) continue;
    if (r.host !== undefined) {
      if (r.hostWildcard) {
        if (!host.endsWith(r.host) || host.indexOf('.') !== host.length - r.host.length) continue;
      } else if (host !== r.host) continue;
    }
    for (let h = 0; h < r.headers.length; h++) {
      const c = r.headers[h]!;
      const at = lower.indexOf(c.lower);
      if (at === -1) {
        if (c.present || c.exact !== undefined || c.re !== undefined) continue outer;
        continue;
      }
      if (c.exact === undefined && c.re === undefined && !c.present) continue outer;
      const v = values[at]!;
      if (c.exact !== undefined && v !== c.exact) continue outer;
      if (c.re !== undefined && !c.re.test(v)) continue outer;
    }
    if (r.query.length > 0 && !queryMatches(r.query, query)) continue;
    return r;
  }
  return undefined;
}

/** The path to forward: the matched prefix replaced by rewritePrefix, if the route says so. */
export function rewritePath(r: CompiledRoute, path: string): string {
  if (r.rewritePrefix === undefined) return path;
  const rest = path.slice(r.pathValue.length);
  if (r.rewritePrefix.endsWith('/') && rest.startsWith('/')) return r.rewritePrefix + rest.slice(1);
  if (!r.rewritePrefix.endsWith('/') && rest !== '' && !rest.startsWith('/'))
    return `${r.rewritePrefix}/${rest}`;
  return r.rewritePrefix + rest;
}
