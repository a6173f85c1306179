// One HTTP/2 stream from a client: its checks, routing and gates (as the HTTP/1.1 engine applies
// them), the responses the proxy writes itself, deadlines, and the stats and access log record.
// Forwarding is left to an upstream leg (HTTP/1.1 or HTTP/2) that drives the stream through the
// small set of methods below.

import { randomUUID } from 'node:crypto';
import http2, {
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { PeerIdentity } from '../peer.js';
import type { TimerHandle } from '../../lib/clock.js';
import type { ErrorCode } from '../../lib/errors.js';
import type { TLSSocket } from 'node:tls';
import { peerPrincipal } from '../../identity/principal.js';
import { type Denial, type FilterRequest, newFilterRequest } from '../filters/types.js';
import type { Http1Context } from '../http1/server-connection.js';
import { normalizeTarget, PathError } from '../path.js';
import { type CompiledRoute, hostOnly, matchRoute, pickDestination, rewritePath } from '../router.js';
import { observe, type RouteStats } from '../stats.js';
import type { Endpoint } from '../upstream/endpoints.js';
import type { ConnectFailure } from '../upstream/h1-pool.js';
import {
  F_CONNECT,
  F_REFUSED,
  F_RESET,
  F_RESPONSE,
  F_TIMEOUT,
  type RouteResilience,
} from '../upstream/resilience.js';
import { HASH_NONE, hashKeyOf, type Upstream } from '../upstream/upstream.js';
import type { RequestView, RouteTransform, TransformFailure } from '../transform/index.js';
import { KNOWN_METHODS, validHost, validPath, validValue } from './headers.js';
import { resetStream } from './reset-stream.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * The client's side of an exchange: an HTTP/2 server stream, or an HTTP/1.1 client connection
 * forwarded to an HTTP/2 upstream (http1-client.ts), which frames the same calls as HTTP/1.1.
 */
export type ClientStream = Pick<
  ServerHttp2Stream,
  | 'id'
  | 'headersSent'
  | 'endAfterHeaders'
  | 'session'
  | 'closed'
  | 'destroyed'
  | 'writableEnded'
  | 'respond'
  | 'additionalHeaders'
  | 'close'
  | 'sendTrailers'
> & {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer | string): unknown;
};

/** The upstream side of an exchange. */
export interface UpstreamLeg {
  /** Gets a connection or stream and sends the request head. */
  start(): void;
  /** A piece of the request body. */
  clientData(chunk: Buffer): void;
  /** The request body is complete; its trailers, if any, are in `clientTrailers`. */
  clientEnd(): void;
  /** The client stream can take more response data. */
  clientDrain(): void;
  /** Stops now: the client went away, a deadline passed, or the proxy answered itself. */
  abort(): void;
}

/** What the exchanges of one handler share. */
export interface Shared {
  readonly c: Http1Context;
  readonly active: Set<Exchange>;
  readonly maxHeaderListSize: number;
  makeLeg(x: Exchange, upstream: Upstream): UpstreamLeg;
}

/** The client session an exchange belongs to. */
export interface Peer {
  readonly clientIp: string;
  /** Who mutual TLS verified at the other end, if it did. */
  readonly identity: PeerIdentity | undefined;
  readonly remote: string;
  readonly closing: boolean;
  /** nghttp2 ended the connection for a protocol error the client made. */
  readonly protocolError: boolean;
  /** The connection's header blocks can no longer be read, so no new request can be checked. */
  readonly uncheckable: boolean;
  /** Whether the stream's header block or trailers held a field nghttp2 dropped (asked once). */
  malformed(stream: number): boolean;
  /** Called when the client reset a stream before its response was complete (Rapid Reset). */
  clientReset(): void;
}

export class Exchange {
  readonly stream: ClientStream;
  readonly c: Http1Context;
  /** The client's protocol, for the access log. */
  protocol = 'HTTP/2';
  #shared: Shared;
  #peer: Peer;
  #leg: UpstreamLeg | undefined;

  // --- the request -----------------------------------------------------------------------------
  method = '-';
  /** :path as the client sent it. */
  target = '';
  authority = '';
  /** The path to forward: normalized, rewritten, with the query. */
  path = '';
  /** Regular fields, in order: lower-case names and their values (a `host` is added if absent). */
  lower: string[] = [];
  values: string[] = [];
  contentLength = -1;
  requestId = '';
  /** A generated request id to add upstream, or ''. */
  addRequestId = '';
  route: CompiledRoute | undefined;
  upstream: Upstream | undefined;
  /** The balancer's hash key ('' when the upstream does not hash). */
  hash = '';
  clientTrailers: IncomingHttpHeaders | undefined;
  /** The request body is complete (or there is none). */
  reqDone = false;
  /** The request had no body at all (END_STREAM on its HEADERS). */
  noBody = false;

  // --- progress --------------------------------------------------------------------------------
  #routeStats: RouteStats | undefined;
  #reading = false;
  #trailersExpected = false;
  #trailers: OutgoingHttpHeaders | undefined;
  #resEnded = false;
  #localReset = false;
  #closed = false;
  /** A fault delay was applied. */
  #delayed = false;
  #responseDeadline = 0;
  #requestDeadline = 0;
  /** Bytes moved since the last tick; the tick turns it into #ioAt (no clock read per chunk). */
  #io = false;
  #ioAt = 0;

  // --- accounting ------------------------------------------------------------------------------
  #t0 = performance.now();
  tUp = 0;
  upTime = -1;
  bytesIn = 0;
  bytesOut = 0;
  status = 0;
  flags = '';
  error: ErrorCode | undefined;
  endpoint: Endpoint | undefined;
  #filterReq: FilterRequest | undefined;
  /** The endpoint whose in-flight count the current try holds, and the upstream whose count the exchange holds. */
  #activeEp: Endpoint | undefined;
  #inflightUp: Upstream | undefined;
  /** The try's response head came (or the try ended): its endpoint has been told how it went. */
  #answered = false;

  // --- retries and the route timeout (routes with either only) -----------------------------------
  #resil: RouteResilience | undefined;
  /** Tries made so far (1 on the first); 0 on a route without retries. */
  tries = 0;
  /** The request body read so far, kept while it is small enough to send again. */
  #kept: Buffer[] | undefined;
  #keptBytes = 0;
  /** What each failed try got (UF, UC, UR, UT or a status), for the access log. */
  #tryFlags = '';
  /** The tries ran out on a retriable failure: URX in the response flags. */
  #urx = false;
  #retryTimer: TimerHandle | undefined;
  #retryingUp: Upstream | undefined;
  /** When the current try's per-try timeout ends (ms since the epoch; 0 none). */
  #tryDeadline = 0;

  // --- the API adapter (routes with a transform only) ---
  #xf: RouteTransform | undefined;
  #xfView: RequestView | undefined;
  /** The request body read so far, while it is buffered for the transformation. */
  #xfReq: Buffer[] | undefined;
  #xfReqBytes = 0;
  /** The transformed request body, handed to the leg when it asks for the body. */
  #xfBody: Buffer | undefined;
  /** The upstream's response head and body, while the body is buffered. */
  #xfHead: OutgoingHttpHeaders | undefined;
  #xfRes: Buffer[] | undefined;
  #xfResBytes = 0;

  constructor(stream: ClientStream, shared: Shared, peer: Peer) {
    this.stream = stream;
    this.c = shared.c;
    this.#shared = shared;
    this.#peer = peer;
    stream.on('close', this.#onClose);
    // Errors end in 'close', where they are accounted for.
    stream.on('error', noop);
    stream.on('drain', this.#onDrain);
    stream.on('wantTrailers', this.#onWantTrailers);
  }

  get responseStarted(): boolean {
    return this.stream.headersSent;
  }

  get clientIp(): string {
    return this.#peer.clientIp;
  }

  get peerIdentity(): PeerIdentity | undefined {
    return this.#peer.identity;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Checks, routes and gates the request, then answers it or hands it to an upstream leg. */
  start(rawHeaders: readonly string[]): void {
    const c = this.c;
    c.stats.active.value++;
    this.#shared.active.add(this);
    if (c.timeouts.request > 0) this.#requestDeadline = Date.now() + c.timeouts.request;
    this.reqDone = this.noBody = this.stream.endAfterHeaders;

    let method = '';
    let host = '';
    let hosts = 0;
    let bad = '';
    // RFC 7541 §4.1 sizes. Node applies SETTINGS_MAX_HEADER_LIST_SIZE only once the client has
    // acknowledged it, so a request sent before that is measured here.
    let listSize = 0;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      const value = rawHeaders[i + 1]!;
      listSize += name.length + value.length + 32;
      if (name.charCodeAt(0) === 0x3a) {
        if (name === ':method') method = value;
        else if (name === ':path') this.target = value;
        else if (name === ':authority') this.authority = value;
        continue;
      }
      if (!validValue(value)) bad = 'control character in a header value';
      switch (name) {
        case 'host':
          hosts++;
          host = value;
          break;
        case 'content-length':
          if (
            !/^\d{1,15}$/.test(value) ||
            (this.contentLength !== -1 && this.contentLength !== Number(value))
          )
            bad = 'invalid Content-Length';
          this.contentLength = Number(value);
          break;
        case 'x-request-id':
          if (this.requestId === '') this.requestId = value;
          break;
      }
      this.lower.push(name);
      this.values.push(value);
    }
    if (method !== '') this.method = method;
    const peer = this.#peer;
    // (After the fields are read, so the access log has the method and path.)
    if (peer.uncheckable) {
      // Its fields could have lost one that nghttp2 dropped: refused, and safe to retry elsewhere.
      c.stats.refused('h2_uncheckable');
      this.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
      this.#routeStats = c.noRouteStats;
      this.resetClient(NGHTTP2_REFUSED_STREAM, 'LR');
      return;
    }
    if (peer.malformed(this.stream.id ?? 0)) {
      // RFC 9113 §8.2.1: malformed. nghttp2 left the field out; forwarding the rest would be
      // forwarding a different request than the client sent.
      c.stats.refused('h2_malformed_field');
      return this.#reject('a header field name or value holds a character HTTP/2 does not allow');
    }
    if (listSize > this.#shared.maxHeaderListSize) {
      this.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
      this.#routeStats = c.noRouteStats;
      this.local(431, 'request header list too large\n', 'LR');
      return;
    }
    if (bad !== '') return this.#reject(bad);
    if (method === 'CONNECT') return this.#reject('CONNECT is not proxied');
    if (!KNOWN_METHODS.has(method)) return this.#reject(`unknown method ${method.slice(0, 20)}`);
    if (!validPath(this.target))
      return this.#reject('only origin-form paths ("/path") are accepted, without "#" or "\\"');
    if (hosts > 1) return this.#reject('repeated Host header');
    if (this.authority === '') this.authority = host;
    else if (hosts === 1 && host !== this.authority) return this.#reject('Host differs from :authority');
    if (this.authority === '') return this.#reject('missing :authority');
    if (!validHost(this.authority)) return this.#reject('invalid :authority');
    if (hosts === 0) {
      this.lower.push('host');
      this.values.push(this.authority);
    }
    if (this.requestId === '' && c.headers.requestId) this.requestId = this.addRequestId = randomUUID();

    const norm = normalizeTarget(this.target, c.escapedSlashes);
    if (norm instanceof PathError) {
      if (norm.refusal !== undefined) c.stats.refused(norm.refusal);
      return this.#reject(norm.reason);
    }
    if (norm.redirect) {
      // gRPC clients do not follow redirects: they get 400 (INTERNAL), as from Envoy.
      const ct = this.lower.indexOf('content-type');
      if (ct !== -1 && this.values[ct]!.startsWith('application/grpc')) {
        c.stats.refused('escaped_slash');
        return this.#reject('an encoded slash (%2F or %5C) in the path');
      }
      c.stats.refused('escaped_slash_redirect');
      this.#routeStats = c.noRouteStats;
      this.local(307, '', '', undefined, 'location', norm.path + norm.query);
      return;
    }
    const route = matchRoute(
      c.routes,
      this.method,
      norm.path,
      hostOnly(this.authority),
      this.lower,
      this.values,
      norm.query,
    );
    if (route === undefined) {
      this.#routeStats = c.noRouteStats;
      this.local(404, 'no route matches this request\n', 'NR');
      return;
    }
    this.route = route;
    this.#routeStats = c.routeStats[route.index];
    const chain = c.filters?.[route.index];
    if (chain !== undefined) {
      const socket = this.stream.session?.socket as TLSSocket | undefined;
      const fr = newFilterRequest(
        this.method,
        norm.path,
        norm.query,
        this.authority,
        this.lower,
        this.values,
        peer.clientIp,
        socket?.localPort ?? 0,
        socket?.encrypted ? principalOf(socket) : undefined,
        socket?.servername || '',
        c.headers.trustForwarded,
      );
      this.#filterReq = fr;
      const v = chain.run(fr);
      if (v instanceof Promise) {
        v.then(
          (d) => {
            if (this.#closed || this.#resEnded) return;
            if (d !== undefined) this.#denied(d);
            else this.#forward(route, norm.path, norm.query, fr);
          },
          () => this.local(500, 'request filter failed\n', 'LR'),
        );
        return;
      }
      if (v !== undefined) return this.#denied(v);
    }
    this.#forward(route, norm.path, norm.query, this.#filterReq);
  }

  #forward(route: CompiledRoute, path: string, query: string, fr: FilterRequest | undefined): void {
    const c = this.c;
    if (fr !== undefined) {
      const drop = fr.dropHeaders;
      if (drop.length > 0)
        for (let i = this.lower.length - 1; i >= 0; i--)
          if (drop.includes(this.lower[i]!)) {
            this.lower.splice(i, 1);
            this.values.splice(i, 1);
          }
      for (const [n, v] of fr.addHeaders) {
        this.lower.push(n);
        this.values.push(v);
      }
    }
    if (route.direct !== undefined) {
      this.local(route.direct.status, route.direct.body, '', route.direct.contentType);
      return;
    }
    const f = route.fault;
    if (f !== undefined) {
      if (!this.#delayed && f.delayShare > 0 && Math.random() < f.delayShare) {
        // Fault injection: hold the request, then go on (the abort may still apply).
        this.#delayed = true;
        c.clock.setTimeout(() => {
          if (!this.#closed && !this.#resEnded) this.#forward(route, path, query, undefined);
        }, f.delayMs);
        return;
      }
      if (f.abortShare > 0 && Math.random() < f.abortShare) {
        this.local(f.abortStatus, 'fault filter abort\n', 'FI');
        return;
      }
    }
    if (route.split !== undefined) {
      route = pickDestination(route, Math.random);
      this.route = route;
    }
    const m = route.mirror;
    if (m !== undefined && c.mirror !== undefined && Math.random() < m.share)
      c.mirror.send(
        m.upstream,
        this.method,
        rewritePath(route, path) + query,
        this.authority,
        this.lower,
        this.values,
        !this.noBody,
      );
    const max = c.limits.maxBodySize;
    if (max > 0 && this.contentLength > max) {
      this.local(413, 'request body too large\n', 'LR');
      return;
    }
    const upstream = c.upstreams.get(route.upstream!)!;
    if (route.upstream === 'app' && c.readinessGate && !c.appHealthy()) {
      this.local(503, 'the app is not ready yet\n', 'UH', undefined, 'retry-after', '1');
      return;
    }
    this.#toUpstream(route, upstream, path, query);
  }

  /**
   * An HTTP/1.1 request the HTTP/1.1 engine has checked, routed, filtered and gated (faults,
   * splits, mirrors, limits) for an HTTP/2 upstream: from here it goes as an HTTP/2 client's
   * request would, with the same retries, pool and accounting. `lower`/`values` are its fields
   * without hop-by-hop ones.
   */
  startRouted(
    route: CompiledRoute,
    upstream: Upstream,
    path: string,
    query: string,
    fr: FilterRequest | undefined,
  ): void {
    const c = this.c;
    c.stats.active.value++;
    this.#shared.active.add(this);
    if (c.timeouts.request > 0) this.#requestDeadline = Date.now() + c.timeouts.request;
    this.route = route;
    this.#routeStats = c.routeStats[route.index];
    this.#filterReq = fr;
    this.#toUpstream(route, upstream, path, query);
  }

  #toUpstream(route: CompiledRoute, upstream: Upstream, path: string, query: string): void {
    const c = this.c;
    if (upstream.maxRequests > 0 && upstream.inflight >= upstream.maxRequests) {
      c.stats.upstreamError(upstream.name, 'overflow');
      this.local(503, 'too many requests to the upstream\n', 'UO');
      return;
    }
    upstream.inflight++;
    this.#inflightUp = upstream;
    this.upstream = upstream;
    if (upstream.hashOn !== HASH_NONE)
      this.hash = hashKeyOf(upstream, this.lower, this.values, this.clientIp);
    this.path = rewritePath(route, path) + query;
    const rz = c.resilience?.[route.index];
    if (rz !== undefined) this.#startResilient(rz, upstream);
    const xf = c.transforms?.[route.index];
    if (xf !== undefined) {
      this.#xf = xf;
      this.#xfView = xf.view(this.method, path, query, this.lower, this.values);
      if (xf.request) {
        this.#bufferRequest(xf);
        return;
      }
    }
    this.#startTry();
  }

  /** A route with retries or a timeout: its deadline, the budget's deposit, and a place to keep the body. */
  #startResilient(rz: RouteResilience, upstream: Upstream): void {
    this.#resil = rz;
    if (rz.timeoutMs > 0) {
      const at = Date.now() + rz.timeoutMs;
      if (this.#requestDeadline === 0 || at < this.#requestDeadline) this.#requestDeadline = at;
    }
    if (rz.retry === undefined) return;
    this.tries = 1;
    upstream.retryBudget?.deposit();
    if (!this.noBody) this.#kept = [];
    // The count is the proxy's to say; a client's own would contradict it.
    const at = this.lower.indexOf('x-pillion-attempt-count');
    if (at !== -1) {
      this.lower.splice(at, 1);
      this.values.splice(at, 1);
    }
  }

  #startTry(): void {
    const perTry = this.#resil?.retry?.perTryTimeoutMs ?? 0;
    if (perTry > 0) this.#tryDeadline = Date.now() + perTry;
    this.#answered = false;
    this.#leg = this.#shared.makeLeg(this, this.upstream!);
    this.#leg.start();
  }

  /** The endpoint a retry should avoid: the one the failed try went to. */
  get avoid(): Endpoint | undefined {
    return this.tries > 1 ? this.endpoint : undefined;
  }

  /** The leg sends the try to this endpoint: one more request in flight there. */
  tryStarted(ep: Endpoint): void {
    this.endpoint = ep;
    const st = ep.state;
    st.active++;
    st.requests++;
    this.#activeEp = ep;
    this.tUp = performance.now();
  }

  /** The try's endpoint has one request fewer in flight. */
  #endTry(): void {
    const ep = this.#activeEp;
    if (ep !== undefined) {
      ep.state.active--;
      this.#activeEp = undefined;
    }
  }

  /**
   * Tells the try's endpoint how it went, once per try: the status (0: no response at all) to
   * outlier detection, and the time it took to the latency average.
   */
  #report(status: number): void {
    if (this.#answered) return;
    this.#answered = true;
    const ep = this.#activeEp;
    const u = this.upstream;
    if (ep === undefined || u === undefined) return;
    if (u.outlier !== undefined) u.outlier.report(ep, status);
    if (u.observesLatency) u.observe(ep, performance.now() - this.tUp);
  }

  /**
   * The response head of a try, before it is forwarded: true when the route retries on it. The
   * leg then lets go of its stream or connection and calls retry().
   */
  retryOnResponse(status: number, lower: string[], values: string[]): boolean {
    const p = this.#resil?.retry;
    if (p === undefined || !p.onResponse(status, lower, values)) return false;
    if (!this.#retryDecision(F_RESPONSE, String(status))) return false;
    this.#report(status);
    return true;
  }

  /** Sends the request again after the back-off (the current leg has let go of its try). */
  retry(): void {
    this.#scheduleRetry();
  }

  /**
   * A try failed before anything of its response reached the client: whether to try again (the
   * route's retryOn, tries left, the body kept, the upstream's budget). Counts the outcome and
   * records the try's flag.
   */
  #retryDecision(kind: number, flag: string): boolean {
    const p = this.#resil?.retry;
    if (p === undefined || this.#closed || this.#resEnded || this.responseStarted) return false;
    const up = this.upstream!;
    const first = this.#retryingUp === undefined;
    const bodyLost = !this.noBody && this.#kept === undefined;
    const outcome = p.decide(up, kind, this.tries, first, bodyLost, false, this.c.stats);
    this.#tryFlags = this.#tryFlags === '' ? flag : `${this.#tryFlags},${flag}`;
    if (outcome === 'attempts_exhausted' && this.tries > 1) this.#urx = true;
    if (outcome !== 'retried') return false;
    if (first) this.#retryingUp = up;
    return true;
  }

  /** Lets go of the failed try and waits the back-off; the client's body is held meanwhile. */
  #scheduleRetry(): void {
    const leg = this.#leg;
    this.#leg = undefined;
    leg?.abort();
    this.#endTry();
    this.#responseDeadline = 0;
    this.#tryDeadline = 0;
    if (this.#reading && !this.reqDone) this.stream.pause();
    this.#retryTimer = this.c.clock.setTimeout(this.#retryNow, this.#resil!.retry!.backoffMs(this.tries));
  }

  #retryNow = (): void => {
    this.#retryTimer = undefined;
    if (this.#closed || this.#resEnded || this.upstream === undefined) return;
    if (!this.noBody && this.#kept === undefined) {
      // Body bytes that came during the back-off went past what is kept: nothing whole to send.
      this.c.stats.retry(this.upstream.name, 'body_too_large');
      this.error = 'PILLION_ERR_PROXY_UPSTREAM_PROTOCOL';
      this.local(502, 'the request body grew too large to send again\n', 'URX');
      return;
    }
    this.tries++;
    this.#startTry();
  };

  #cancelRetry(): void {
    if (this.#retryTimer !== undefined) {
      this.#retryTimer.cancel();
      this.#retryTimer = undefined;
    }
  }

  /** A transformed route: the whole request body is read (up to the limit) before the leg starts. */
  #bufferRequest(xf: RouteTransform): void {
    if (this.contentLength > xf.maxBodyBytes) return this.#xfFailed(xf.tooLarge('request'));
    this.#xfReq = [];
    if (this.noBody) this.#transformRequest();
    else {
      this.readBody();
      this.resumeClient();
    }
  }

  #transformRequest(): void {
    const xf = this.#xf!;
    const parts = this.#xfReq!;
    this.#xfReq = undefined;
    const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    xf.onRequest(this.#xfView!, this.lower, this.values, body).then(
      (out) => {
        if (this.#closed || this.#resEnded) return;
        if ('failed' in out) return this.#xfFailed(out);
        const lower: string[] = [];
        const values: string[] = [];
        for (const [n, v] of out.headers) {
          lower.push(n);
          values.push(v);
        }
        lower.push('content-length');
        values.push(String(out.body.length));
        this.lower = lower;
        this.values = values;
        this.contentLength = out.body.length;
        this.noBody = out.body.length === 0;
        // The leg asks for the body (readBody) once it has somewhere to send it.
        this.reqDone = this.noBody;
        this.#xfBody = this.noBody ? undefined : out.body;
        this.#startTry();
      },
      () => this.local(500, 'request transform failed\n', 'LR'),
    );
  }

  /** A transformation refused or failed: its status and coded JSON body go to the client. */
  #xfFailed(f: TransformFailure): void {
    this.error = f.code;
    this.#xfRes = undefined;
    this.#xfHead = undefined;
    this.local(f.status, f.body, 'LR', 'application/json');
  }

  /** The response body is whole: runs the response side of the transformation and answers. */
  #transformResponse(): void {
    const xf = this.#xf!;
    const head = this.#xfHead!;
    const parts = this.#xfRes!;
    this.#xfRes = undefined;
    const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const lower: string[] = [];
    const values: string[] = [];
    for (const name of Object.keys(head)) {
      if (name.charCodeAt(0) === 0x3a) continue;
      const v = head[name];
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) {
        lower.push(name);
        values.push(String(one));
      }
    }
    const status = Number(head[':status']);
    xf.onResponse(this.#xfView!, status, lower, values, body).then(
      (out) => {
        if (this.#closed || this.#resEnded) return;
        if ('failed' in out) return this.#xfFailed(out);
        // Done with the adapter: what follows is the proxy's own answer, not to be caught again.
        this.#xf = undefined;
        this.#xfHead = undefined;
        const h: OutgoingHttpHeaders = { ':status': out.status };
        for (const [n, v] of out.headers) {
          const had = h[n];
          h[n] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [String(had), v];
        }
        h['content-length'] = out.body.length;
        const empty = out.body.length === 0;
        if (!this.respond(h, empty, false)) return;
        if (!empty) {
          this.write(out.body);
          this.endResponse(undefined);
        }
      },
      () => this.local(500, 'response transform failed\n', 'LR'),
    );
  }

  #denied(d: Denial): void {
    let type = 'text/plain; charset=utf-8';
    const more: [string, string][] = [];
    for (const h of d.headers) {
      if (h[0] === 'content-type') type = h[1];
      else more.push(h);
    }
    this.local(d.status, d.body, d.flag, type, undefined, undefined, more);
  }

  /** Checks deadlines; called by the handler's ticker. */
  tick(now: number): void {
    // Stream idle, as on HTTP/1.1: while a body is moving in either direction, nothing moving for
    // timeouts.idle ends the exchange, so a stalled client cannot hold an upstream connection.
    const buffering = this.#xfRes !== undefined;
    if (
      !this.#closed &&
      !this.#resEnded &&
      (this.responseStarted || buffering || (this.#reading && !this.reqDone))
    ) {
      if (this.#io) {
        this.#io = false;
        this.#ioAt = now;
      } else if (this.c.timeouts.idle > 0 && now - this.#ioAt >= this.c.timeouts.idle) {
        if (buffering) {
          // A transformed response whose body stopped coming: nothing of it has gone out yet.
          this.error = 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT';
          this.#xfRes = undefined;
          this.local(504, 'upstream response body stalled\n', 'SI');
        } else if (this.responseStarted)
          this.resetClient(NGHTTP2_CANCEL, 'SI', 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT');
        else {
          this.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
          this.local(408, 'request body stalled\n', 'LR');
        }
        return;
      }
    }
    if (this.#responseDeadline !== 0 && now >= this.#responseDeadline) {
      this.#responseDeadline = 0;
      this.upstreamTimeout();
    }
    if (this.#tryDeadline !== 0 && now >= this.#tryDeadline) {
      this.#tryDeadline = 0;
      if (!this.#closed && !this.#resEnded && !this.responseStarted && this.#leg !== undefined) {
        this.#report(0);
        if (this.#retryDecision(F_TIMEOUT, 'UT')) {
          this.c.stats.upstreamError(this.upstream!.name, 'per_try_timeout');
          this.#scheduleRetry();
        } else this.upstreamTimeout();
        return;
      }
    }
    if (this.#requestDeadline !== 0 && now >= this.#requestDeadline) {
      this.#requestDeadline = 0;
      if (this.#closed || this.#resEnded) return;
      if (this.responseStarted) {
        this.resetClient(NGHTTP2_CANCEL, 'UT');
      } else if (this.reqDone) {
        this.upstreamTimeout();
      } else {
        this.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
        this.local(408, 'request not received in time\n', 'LR');
      }
    }
  }

  // --- for the upstream legs ---------------------------------------------------------------------

  /**
   * The leg has sent the request head: the body follows (on a retry, first what was kept of it),
   * or, when it is all sent, the response deadline starts.
   */
  legReady(): void {
    const leg = this.#leg;
    if (leg === undefined) return;
    const kept = this.tries > 1 ? this.#kept : undefined;
    if (kept !== undefined && !this.noBody) {
      for (let i = 0; i < kept.length; i++) leg.clientData(kept[i]!);
      if (this.reqDone) {
        leg.clientEnd();
        return;
      }
    } else if (this.reqDone) {
      this.armResponseDeadline();
      return;
    }
    this.readBody();
    this.resumeClient();
  }

  /** Starts passing the request body to the leg (it is held, flow-controlled, until then). */
  readBody(): void {
    const xfBody = this.#xfBody;
    if (xfBody !== undefined) {
      // A transformed request: the leg gets the new body at once, and a retry sends it again.
      this.#xfBody = undefined;
      this.reqDone = true;
      const kept = this.#kept;
      if (kept !== undefined) {
        this.#keptBytes += xfBody.length;
        if (this.#keptBytes > this.#resil!.retry!.maxBodyBytes) this.#kept = undefined;
        else kept.push(xfBody);
      }
      this.#leg?.clientData(xfBody);
      this.#leg?.clientEnd();
      return;
    }
    if (this.#reading || this.reqDone) return;
    this.#reading = true;
    this.#io = true;
    const s = this.stream;
    s.on('data', this.#onData);
    s.on('end', this.#onEnd);
    s.on('trailers', this.#onTrailers);
  }

  pauseClient(): void {
    this.stream.pause();
  }

  resumeClient(): void {
    // Only once the body is being read: resuming earlier would discard it.
    if (this.#reading && !this.#closed) this.stream.resume();
  }

  /** The request is with the upstream: its response head is now due. */
  armResponseDeadline(): void {
    const ms = this.c.timeouts.upstreamResponse;
    if (ms > 0 && !this.responseStarted && !this.#closed) this.#responseDeadline = Date.now() + ms;
  }

  /** An interim (1xx) response. */
  interim(headers: OutgoingHttpHeaders): void {
    if (this.#closed || this.responseStarted) return;
    try {
      this.stream.additionalHeaders(headers);
    } catch {
      // A client that went away; the close event accounts for it.
    }
  }

  /**
   * Sends the response head (completing it with the request id and the route's edits). Returns
   * false when the head could not be sent: the leg then treats the response as invalid.
   */
  respond(headers: OutgoingHttpHeaders, endStream: boolean, trailers: boolean): boolean {
    if (this.#closed) return false;
    const xf = this.#xf;
    if (xf !== undefined && xf.response && this.#xfHead === undefined && this.#transformsResponse(headers)) {
      // A transformed route: the head waits for the whole body.
      this.upTime = performance.now() - this.tUp;
      this.#responseDeadline = 0;
      this.#io = true;
      const len = Number(headers['content-length'] ?? -1);
      if (len > xf.maxBodyBytes) {
        this.#xfFailed(xf.tooLarge('response'));
        return true;
      }
      this.#xfHead = headers;
      this.#xfRes = [];
      if (endStream) this.#transformResponse();
      return true;
    }
    const c = this.c;
    if (c.headers.requestId && this.requestId !== '' && headers['x-request-id'] === undefined)
      headers['x-request-id'] = this.requestId;
    if (this.route !== undefined) {
      const add = this.route.responseAddPairs;
      for (let i = 0; i < add.length; i++) headers[add[i]![0]] = add[i]![1];
    }
    this.upTime = performance.now() - this.tUp;
    this.#io = true;
    this.#tryDeadline = 0;
    const status = Number(headers[':status']);
    this.#report(status);
    if (!this.#respondRaw(headers, endStream, trailers && !endStream)) return false;
    this.status = status;
    return true;
  }

  /** Whether this response is buffered and transformed: not for HEAD, 204 and 304, which have no body. */
  #transformsResponse(headers: OutgoingHttpHeaders): boolean {
    const status = Number(headers[':status']);
    return this.method !== 'HEAD' && status !== 204 && status !== 304;
  }

  /** A piece of the response body; false when the client's window is full (wait for clientDrain). */
  write(chunk: Buffer): boolean {
    if (this.#closed) return true;
    const parts = this.#xfRes;
    if (parts !== undefined) {
      this.#io = true;
      this.#xfResBytes += chunk.length;
      if (this.#xfResBytes > this.#xf!.maxBodyBytes) this.#xfFailed(this.#xf!.tooLarge('response'));
      else parts.push(chunk);
      return true;
    }
    this.bytesOut += chunk.length;
    this.#io = true;
    return this.stream.write(chunk);
  }

  /** The response is complete; trailers go in a trailing HEADERS frame when the head said so. */
  endResponse(trailers: OutgoingHttpHeaders | undefined): void {
    if (this.#closed || this.#resEnded) return;
    if (this.#xfRes !== undefined) {
      // (Trailers of a transformed response are dropped: its body is a new one.)
      this.#transformResponse();
      return;
    }
    this.#resEnded = true;
    this.#requestDeadline = 0;
    if (this.#trailersExpected) {
      this.#trailers = trailers;
      this.stream.end();
    } else {
      this.stream.end();
      this.#stopUpload();
    }
  }

  /** Closes the client stream with an HTTP/2 error code (a response already begun cannot be replaced). */
  resetClient(code: number, flags: string, error?: ErrorCode): void {
    if (this.#closed) return;
    const leg = this.#leg;
    this.#leg = undefined;
    leg?.abort();
    if (flags !== '' && this.flags === '') this.flags = flags;
    if (error !== undefined) this.error ??= error;
    this.#localReset = true;
    this.#responseDeadline = 0;
    this.#requestDeadline = 0;
    this.#tryDeadline = 0;
    this.#cancelRetry();
    resetStream(this.stream, code);
  }

  /** The leg could not reach the upstream. */
  connectFailed(kind: ConnectFailure, err: Error | undefined, ep: Endpoint | undefined): void {
    if (ep !== undefined) this.endpoint = ep;
    const name = this.upstream!.name;
    const stats = this.c.stats;
    if (kind === 'timeout' || kind === 'refused') {
      const o = this.upstream!.outlier;
      if (o !== undefined && ep !== undefined && this.#activeEp === undefined) o.report(ep, 0);
      else this.#report(0);
      if (this.#retryDecision(F_CONNECT, 'UF')) {
        stats.upstreamError(name, kind === 'timeout' ? 'connect_timeout' : 'connect_refused');
        this.#scheduleRetry();
        return;
      }
    }
    this.error = 'PILLION_ERR_PROXY_UPSTREAM_CONNECT';
    switch (kind) {
      case 'timeout':
        stats.upstreamError(name, 'connect_timeout');
        this.local(504, 'upstream connect timeout\n', 'UF');
        break;
      case 'refused':
        stats.upstreamError(name, 'connect_refused');
        this.local(502, `upstream connect error: ${err?.message ?? 'refused'}\n`, 'UF');
        break;
      case 'no-endpoint':
        stats.upstreamError(name, 'no_endpoint');
        this.local(503, 'no upstream endpoint is available\n', 'UH');
        break;
      case 'overflow':
        stats.upstreamError(name, 'overflow');
        this.local(503, 'too many requests waiting for an upstream connection\n', 'UO');
        break;
    }
  }

  /** The upstream broke the protocol (or reset) before or during the response. */
  upstreamFailed(
    kind: 'protocol' | 'reset',
    reason: string,
    flags: string,
    code = NGHTTP2_INTERNAL_ERROR,
  ): void {
    if (this.#closed || this.#resEnded) return;
    this.c.stats.upstreamError(this.upstream!.name, kind, reason);
    if (!this.responseStarted) {
      this.#report(0);
      if (
        kind === 'reset' &&
        this.#retryDecision(code === NGHTTP2_REFUSED_STREAM ? F_REFUSED : F_RESET, flags)
      ) {
        this.#scheduleRetry();
        return;
      }
    }
    this.error = 'PILLION_ERR_PROXY_UPSTREAM_PROTOCOL';
    if (this.responseStarted) this.resetClient(code, flags);
    else this.local(502, `${reason}\n`, flags);
  }

  upstreamTimeout(): void {
    if (this.#closed || this.#resEnded) return;
    if (this.#leg !== undefined) this.#report(0);
    if (this.upstream !== undefined) this.c.stats.upstreamError(this.upstream.name, 'response_timeout');
    this.error = 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT';
    this.local(504, 'upstream response timeout\n', 'UT');
  }

  /** A response the proxy writes itself; the exchange ends with it. */
  local(
    status: number,
    body: Buffer | string,
    flags: string,
    contentType = 'text/plain; charset=utf-8',
    extraName?: string,
    extraValue?: string,
    more?: [string, string][],
  ): void {
    if (this.#closed || this.#resEnded) return;
    const leg = this.#leg;
    this.#leg = undefined;
    leg?.abort();
    this.#responseDeadline = 0;
    this.#tryDeadline = 0;
    this.#cancelRetry();
    if (flags !== '') this.flags = flags;
    if (this.responseStarted) {
      this.resetClient(NGHTTP2_INTERNAL_ERROR, flags);
      return;
    }
    const len = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const h: OutgoingHttpHeaders = { ':status': status, 'content-type': contentType, 'content-length': len };
    if (this.c.headers.requestId && this.requestId !== '') h['x-request-id'] = this.requestId;
    if (extraName !== undefined) h[extraName] = extraValue;
    if (more !== undefined) for (const [n, v] of more) h[n] = v;
    if (this.route !== undefined) {
      const add = this.route.responseAddPairs;
      for (let i = 0; i < add.length; i++) h[add[i]![0]] = add[i]![1];
    }
    const empty = this.method === 'HEAD' || len === 0;
    if (!this.#respondRaw(h, empty, false)) return;
    this.status = status;
    if (empty) return;
    this.bytesOut += len;
    this.#resEnded = true;
    this.stream.end(body);
    this.#stopUpload();
  }

  // --- client stream events ------------------------------------------------------------------------

  #reject(reason: string): void {
    this.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
    this.#routeStats = this.c.noRouteStats;
    this.local(400, `${reason}\n`, 'LR');
  }

  #respondRaw(h: OutgoingHttpHeaders, endStream: boolean, trailers: boolean): boolean {
    try {
      this.stream.respond(h, { endStream, waitForTrailers: trailers });
    } catch {
      return false;
    }
    this.#responseDeadline = 0;
    this.#trailersExpected = trailers;
    if (endStream) {
      this.#resEnded = true;
      this.#requestDeadline = 0;
      this.#stopUpload();
    }
    return true;
  }

  /**
   * The response is complete while the request body is still arriving: ask the client to stop
   * sending without error (RFC 9113 §8.1). Node sends the RST_STREAM after the response's last
   * frame. A body never read is dealt with by node itself.
   */
  #stopUpload(): void {
    if (this.#reading && !this.reqDone && !this.#closed) {
      this.#localReset = true;
      this.stream.close(NGHTTP2_NO_ERROR);
    }
  }

  #onData = (chunk: Buffer): void => {
    const leg = this.#leg;
    // Discarded when the exchange is over (kept while a retry waits its back-off, or while the
    // body is buffered for a transformation).
    if ((leg === undefined && this.#retryTimer === undefined && this.#xfReq === undefined) || this.#resEnded)
      return;
    this.bytesIn += chunk.length;
    this.#io = true;
    if (this.contentLength !== -1 && this.bytesIn > this.contentLength) {
      this.#badBody('request body longer than its Content-Length', 400);
      return;
    }
    const max = this.c.limits.maxBodySize;
    if (max > 0 && this.bytesIn > max) {
      this.#badBody('request body too large', 413);
      return;
    }
    const parts = this.#xfReq;
    if (parts !== undefined) {
      this.#xfReqBytes += chunk.length;
      if (this.#xfReqBytes > this.#xf!.maxBodyBytes) this.#xfFailed(this.#xf!.tooLarge('request'));
      else parts.push(chunk);
      return;
    }
    const kept = this.#kept;
    if (kept !== undefined) {
      this.#keptBytes += chunk.length;
      if (this.#keptBytes > this.#resil!.retry!.maxBodyBytes) this.#kept = undefined;
      else kept.push(chunk);
    }
    leg?.clientData(chunk);
  };

  #onEnd = (): void => {
    this.reqDone = true;
    if (
      (this.#leg === undefined && this.#retryTimer === undefined && this.#xfReq === undefined) ||
      this.#resEnded
    )
      return;
    if (this.contentLength !== -1 && this.bytesIn !== this.contentLength) {
      this.#badBody('request body shorter than its Content-Length', 400);
      return;
    }
    if (this.#xfReq !== undefined) this.#transformRequest();
    else this.#leg?.clientEnd();
  };

  #onTrailers = (trailers: IncomingHttpHeaders): void => {
    if (this.#peer.malformed(this.stream.id ?? 0)) {
      this.c.stats.refused('h2_malformed_field');
      this.#badBody('a trailer field name or value holds a character HTTP/2 does not allow', 400);
      return;
    }
    this.clientTrailers = trailers;
  };

  #badBody(reason: string, status: 400 | 413): void {
    this.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
    if (this.responseStarted) this.resetClient(http2.constants.NGHTTP2_PROTOCOL_ERROR, 'LR');
    else this.local(status, `${reason}\n`, 'LR');
  }

  #onDrain = (): void => {
    this.#leg?.clientDrain();
  };

  #onWantTrailers = (): void => {
    const t = this.#trailers;
    this.#trailers = undefined;
    try {
      this.stream.sendTrailers(t ?? {});
    } catch {
      this.#localReset = true;
      resetStream(this.stream, NGHTTP2_INTERNAL_ERROR);
      return;
    }
    this.#stopUpload();
  };

  #onClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#shared.active.delete(this);
    this.#responseDeadline = 0;
    this.#requestDeadline = 0;
    this.#tryDeadline = 0;
    this.#cancelRetry();
    const peer = this.#peer;
    // A mark left by trailers that came after the exchange ended.
    peer.malformed(this.stream.id ?? 0);
    if (!this.#resEnded && !this.#localReset) {
      // The client reset the stream, or its connection went, before the response was complete.
      if (!peer.closing) {
        peer.clientReset();
        if (this.flags === '') this.flags = 'DR';
      } else {
        if (this.flags === '') this.flags = 'DC';
        if (peer.protocolError) this.error ??= 'PILLION_ERR_PROXY_HTTP2_PROTOCOL';
      }
    }
    const leg = this.#leg;
    this.#leg = undefined;
    leg?.abort();
    this.#record();
  };

  #record(): void {
    const c = this.c;
    c.stats.active.value--;
    this.#endTry();
    if (this.#retryingUp !== undefined) {
      this.#retryingUp.retrying--;
      this.#retryingUp = undefined;
    }
    const u = this.#inflightUp;
    if (u !== undefined) {
      u.inflight--;
      this.#inflightUp = undefined;
      const st = this.status;
      if (st !== 0) {
        u.responses[st >= 100 && st < 600 ? ((st / 100) | 0) - 1 : 4]!++;
        if (this.upTime >= 0 && u.latency !== undefined)
          observe(u.latency, c.stats.stats.upstreamTime.bounds, this.upTime / 1000);
      }
    }
    const now = performance.now();
    const rs = this.#routeStats ?? c.noRouteStats;
    rs.count(this.method, this.status);
    observe(rs.duration, c.stats.stats.duration.bounds, (now - this.#t0) / 1000);
    c.stats.bytesIn.value += this.bytesIn;
    c.stats.bytesOut.value += this.bytesOut;
    const log = c.accessLog;
    if (log === undefined) return;
    const xff = this.lower.indexOf('x-forwarded-for');
    const ua = this.lower.indexOf('user-agent');
    log.write({
      start_time: Date.now() - (now - this.#t0),
      method: this.method,
      path: this.target === '' ? '-' : this.target,
      protocol: this.protocol,
      response_code: this.status,
      response_flags: this.#urx
        ? this.flags === ''
          ? 'URX'
          : `${this.flags},URX`
        : this.flags === ''
          ? '-'
          : this.flags,
      bytes_received: this.bytesIn,
      bytes_sent: this.bytesOut,
      duration: now - this.#t0,
      upstream_service_time: this.upTime >= 0 ? this.upTime : null,
      upstream_host: this.endpoint?.key ?? null,
      x_forwarded_for: xff !== -1 ? this.values[xff]! : null,
      user_agent: ua !== -1 ? this.values[ua]! : null,
      request_id: this.requestId === '' ? null : this.requestId,
      authority: this.authority === '' ? null : this.authority,
      downstream_remote_address: this.#peer.remote,
      listener: c.listener,
      route: this.route?.name ?? null,
      downstream_peer_principal: this.#peer.identity?.principal,
      ...(this.error !== undefined ? { error: this.error } : {}),
      ...(this.#filterReq !== undefined && this.#filterReq.details !== ''
        ? { response_code_details: this.#filterReq.details }
        : {}),
      ...(this.tries > 0 ? { upstream_attempts: this.tries, attempt_flags: this.#tryFlags } : {}),
    });
  }
}

function noop(): void {}

/** A session's peer principal, read once per TLS connection. */
const principals = new WeakMap<TLSSocket, string | undefined>();
function principalOf(socket: TLSSocket): string | undefined {
  if (principals.has(socket)) return principals.get(socket);
  const p = peerPrincipal(socket);
  principals.set(socket, p);
  return p;
}
