// The request filter contract: what the HTTP/1.1 and HTTP/2 engines hand a filter, and what a
// filter answers. Filters are composed into one chain per listener and route at config load; the
// engines run the chain after routing and before forwarding.

/** A request as filters see it. Filters may add to `addHeaders`/`dropHeaders` and set the auth fields. */
export interface FilterRequest {
  method: string;
  /** Normalized path, without the query. */
  path: string;
  /** The query with its '?', or ''. */
  query: string;
  /** Host or :authority as sent. */
  host: string;
  /** Header names (lower-case) and values, as received. */
  lower: readonly string[];
  values: readonly string[];
  /** The connection's peer address. */
  clientIp: string;
  /** The listener's local port. */
  port: number;
  /** The verified mTLS peer principal, or undefined. */
  peerPrincipal: string | undefined;
  /** TLS SNI, or ''. */
  sni: string;
  trustForwarded: boolean;
  // --- set by filters ---
  /** Verified JWT claims, when a valid token came. */
  claims: Record<string, unknown> | undefined;
  /** `<iss>/<sub>` of the verified token. */
  requestPrincipal: string | undefined;
  /** Header names (lower-case) removed before forwarding. */
  dropHeaders: string[];
  /** Headers added before forwarding. */
  addHeaders: [string, string][];
  /** What the filters decided, for the access log (`response_code_details`); never a token. */
  details: string;
}

/** A request refused by a filter: the response the proxy writes. */
export interface Denial {
  status: number;
  body: string;
  /** Extra response headers, lower-case names. */
  headers: [string, string][];
  /** Envoy-style response flag for the access log: UAEX (ext_authz), RL (rate limit), '' otherwise. */
  flag: string;
}

export type Verdict = Denial | undefined;

export interface RequestFilter {
  run(req: FilterRequest): Verdict | Promise<Verdict>;
}

/** The filters of one listener and route, in order. */
export class FilterChain {
  readonly filters: readonly RequestFilter[];
  constructor(filters: readonly RequestFilter[]) {
    this.filters = filters;
  }

  /** Runs the filters in order; synchronous until one of them needs to wait. */
  run(req: FilterRequest): Verdict | Promise<Verdict> {
    return this.#from(0, req);
  }

  #from(start: number, req: FilterRequest): Verdict | Promise<Verdict> {
    const fs = this.filters;
    for (let i = start; i < fs.length; i++) {
      const v = fs[i]!.run(req);
      if (v instanceof Promise) return v.then((d) => (d !== undefined ? d : this.#from(i + 1, req)));
      if (v !== undefined) return v;
    }
    return undefined;
  }
}

/** The request fields every engine fills the same way. */
export function newFilterRequest(
  method: string,
  path: string,
  query: string,
  host: string,
  lower: readonly string[],
  values: readonly string[],
  clientIp: string,
  port: number,
  peerPrincipal: string | undefined,
  sni: string,
  trustForwarded: boolean,
): FilterRequest {
  return {
    method,
    path,
    query,
    host,
    lower,
    values,
    clientIp,
    port,
    peerPrincipal,
    sni,
    trustForwarded,
    claims: undefined,
    requestPrincipal: undefined,
    dropHeaders: [],
    addHeaders: [],
    details: '',
  };
}

/** The value of a header (the first, lower-case name), or undefined. */
export function headerOf(req: FilterRequest, lower: string): string | undefined {
  const i = req.lower.indexOf(lower);
  return i === -1 ? undefined : req.values[i];
}
