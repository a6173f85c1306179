// One client connection speaking HTTP/1.1: reads heads with the strict parser, routes, and moves
// bodies between the client and a pooled upstream connection as raw slices (no re-chunking, no
// copies), with backpressure both ways. One exchange at a time; pipelined requests wait in the
// buffer until the previous response is complete. All per-exchange state lives in fields that
// are reset, not in new objects or closures.

import { randomUUID } from 'node:crypto';
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { unmapIPv4 } from '../../lib/address.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { ErrorCode } from '../../lib/errors.js';
import { peerPrincipal } from '../../identity/principal.js';
import type { AccessLog } from '../access-log.js';
import { type Denial, type FilterChain, type FilterRequest, newFilterRequest } from '../filters/types.js';
import type { HeadersConfig, LimitsConfig, TimeoutsConfig } from '../config.js';
import type { PeerIdentity } from '../peer.js';
import { normalizeTarget, PathError } from '../path.js';
import { type CompiledRoute, hostOnly, matchRoute, pickDestination, rewritePath } from '../router.js';
import type { ListenerStats, RouteStats } from '../stats.js';
import { observe } from '../stats.js';
import type { ConnectFailure, ConnectionOwner, PoolUser, UpstreamConnection } from '../upstream/h1-pool.js';
import type { Endpoint } from '../upstream/endpoints.js';
import type { Mirror } from '../mirror.js';
import { F_CONNECT, F_RESET, F_RESPONSE, F_TIMEOUT, type RouteResilience } from '../upstream/resilience.js';
import type { RequestView, RouteTransform, TransformFailure } from '../transform/index.js';
import { HASH_NONE, hashKeyOf, type Upstream } from '../upstream/upstream.js';
import { ChunkedReader } from './chunked.js';
import { HeadError, parseRequestHead, type RequestHead, type ResponseHead } from './head-parser.js';
import { ResponseHeadReader } from './response-head-reader.js';
import { HOP_BY_HOP, REASONS, serializeLocal, serializeRequest, serializeResponse } from './serialize.js';
// Types only: HTTP/2's code comes with an upstream that speaks it (upstream.h2).
import type { Exchange, Shared } from '../http2/exchange.js';
import type { H2Leg } from '../http2/h2-leg.js';
import type { Http1Client, Http1ClientOwner } from '../http2/http1-client.js';
import { allowedUpgrade, upgradeOffered } from './upgrade.js';

/** What every connection of one listener shares; built once per config. */
export interface Http1Context {
  listener: string;
  secure: boolean;
  routes: CompiledRoute[];
  /** Whether any route matches on Host (else the Host is not lower-cased for routing). */
  routesUseHost: boolean;
  routeStats: RouteStats[];
  noRouteStats: RouteStats;
  /** The request filters (JWT, rate limits, authorization) of each route, by route index; undefined when none is configured. */
  filters: (FilterChain | undefined)[] | undefined;
  upstreams: Map<string, Upstream>;
  /** Retries and the whole-exchange timeout of each route, by route index; undefined when no route has either. */
  resilience: (RouteResilience | undefined)[] | undefined;
  /** The API adapter's transformation of each route, by route index; undefined when no route has one. */
  transforms: (RouteTransform | undefined)[] | undefined;
  /** For the back-off between tries. */
  clock: Clock;
  /** Sends copies of requests on routes that mirror; undefined when none does. */
  mirror: Mirror | undefined;
  limits: LimitsConfig;
  timeouts: TimeoutsConfig;
  headers: HeadersConfig;
  /** pathWithEscapedSlashes as one of the ESCAPED_SLASHES_* numbers of path.ts. */
  escapedSlashes: number;
  readinessGate: boolean;
  appHealthy: () => boolean;
  draining: boolean;
  stats: ListenerStats;
  accessLog: AccessLog | undefined;
  /** Hands a connection that opened with the HTTP/2 preface to the HTTP/2 server; undefined disables h2c. */
  h2c: ((socket: net.Socket, head: Buffer) => void) | undefined;
  /** Open connections, for drain, reload and the deadline ticker. */
  connections: Set<ServerConnection>;
}

const ST_HEAD = 0;
const ST_CONNECTING = 1;
const ST_EXCHANGE = 2;
const ST_TUNNEL = 3;
const ST_CLOSED = 4;
/** A transformed route's request body is being read whole, or its transformation is running. */
const ST_BUFFER = 5;

const B_NONE = 0;
const B_LENGTH = 1;
const B_CHUNKED = 2;
const B_CLOSE = 3;

const P_UPSTREAM = 1; // waiting for an upstream connection
const P_BACKPRESSURE = 2; // the upstream socket's buffer is full
const P_PIPELINED = 4; // a whole request is buffered behind the current one

const D_NONE = 0;
const D_IDLE = 1;
const D_HEAD = 2;
const D_RESPONSE = 3;

/** Bodies up to this size that arrive with their head are copied into the head's write. */
const MERGE_LIMIT = 16 * 1024;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');
/** Pipelined bytes held while a response is pending; more pauses reading, which bounds memory. */
const MAX_BUFFERED = 256 * 1024;

export class ServerConnection implements ConnectionOwner, PoolUser, Http1ClientOwner {
  readonly socket: net.Socket;
  /** The peer mutual TLS verified, for the connection's life; undefined on other connections. */
  readonly peer: PeerIdentity | undefined;
  #c: Http1Context;
  #remote: string;
  #clientIp: string;
  #state = ST_HEAD;
  #pending: Buffer | undefined;
  #paused = 0;
  #deadline = 0;
  #deadlineKind = D_NONE;
  #requestDeadline = 0;
  #requests = 0;
  #clientEnded = false;

  // --- the current exchange --------------------------------------------------------------------
  #req: RequestHead | undefined;
  #route: CompiledRoute | undefined;
  #routeStats: RouteStats | undefined;
  #upstream: Upstream | undefined;
  #up: UpstreamConnection | undefined;
  #upHead = '';
  #path = '';
  #requestId = '';
  #addRequestId = '';
  /** The Upgrade value forwarded ('' when the request was not an upgrade, or none was allowed). */
  #upgrade = '';
  #closeAfter = false;
  #reqKind = B_NONE;
  #reqLeft = 0;
  #reqChunks: ChunkedReader | undefined;
  #reqDone = false;
  #res: ResponseHead | undefined;
  #resReader = new ResponseHeadReader();
  #resKind = B_NONE;
  #resLeft = 0;
  #resChunks: ChunkedReader | undefined;
  #dechunk = false;
  /** The response head, and payload de-chunked with it, until the chunks that came with it have all been read (see #sendResponseHead). */
  #pendingHead = '';
  #held: Buffer[] | undefined;
  /** A 100 Continue went to the client. */
  #continued = false;
  // --- the API adapter (routes with a transform only) ---
  #xf: RouteTransform | undefined;
  #xfView: RequestView | undefined;
  /** The request body read so far (while buffering it), then the transformed body to send. */
  #xfReq: Buffer[] | undefined;
  #xfReqBytes = 0;
  #xfBody: Buffer | undefined;
  /** The response body read so far, while it is buffered for the transformation. */
  #xfRes: Buffer[] | undefined;
  #xfResBytes = 0;
  /** The response body went over the route's limit. */
  #xfOver = false;
  #t0 = 0;
  #tUp = 0;
  #upTime = -1;
  #bytesIn = 0;
  #bytesOut = 0;
  #status = 0;
  #flags = '';
  #error: ErrorCode | undefined;
  #retried = false;
  #upEndpoint: Endpoint | undefined;
  #upReused = false;
  /** The endpoint whose in-flight count this exchange holds. */
  #activeEp: Endpoint | undefined;
  /** The upstream whose in-flight count (and retries-in-progress count) this exchange holds. */
  #inflightUp: Upstream | undefined;
  #retryingUp: Upstream | undefined;
  /** The balancer's hash key ('' when the upstream does not hash). */
  #hash = '';
  // --- retries (routes with retries or a timeout only) ---
  #resil: RouteResilience | undefined;
  /** Tries made so far (1 on the first). */
  #tries = 0;
  /** The upstream request head without its final CRLF, for x-pillion-attempt-count. */
  #upHeadBase = '';
  /** The request body forwarded so far, kept while it is small enough to send again. */
  #kept: Buffer[] | undefined;
  #keptBytes = 0;
  /** What each failed try got (UF, UC, UT, or a status), for the access log. */
  #tryFlags = '';
  /** The tries ran out on a retriable failure: URX in the response flags. */
  #urx = false;
  #retryTimer: TimerHandle | undefined;
  /** A fault delay holding the request (routes with fault injection only). */
  #faultTimer: TimerHandle | undefined;
  #delayed = false;
  /** When the current try's per-try timeout ends (ms since the epoch; 0 none). */
  #tryDeadline = 0;
  /** What the filters saw and decided, for this exchange. */
  #filterReq: FilterRequest | undefined;
  /** The mTLS peer principal: computed on the first request that needs it (null until then). */
  #principal: string | undefined | null = null;
  /** The listener's port as this connection reached it (-1 until asked: each read is a getsockname). */
  #port = -1;
  /** Bytes moved since the last tick; the tick turns it into #ioAt (no clock read per chunk). */
  #io = false;
  #ioAt = 0;
  /** The current request, when it went to an HTTP/2 upstream: the exchange drives it from there. */
  #bridge: Http1Client | undefined;
  /** What the HTTP/2 exchanges of this connection share (made on the first, per context). */
  #h2Shared: Shared | undefined;

  constructor(socket: net.Socket, ctx: Http1Context, peer?: PeerIdentity) {
    this.socket = socket;
    this.peer = peer;
    this.#c = ctx;
    this.#clientIp = unmapIPv4(socket.remoteAddress ?? '');
    this.#remote = `${this.#clientIp}:${socket.remotePort ?? 0}`;
    socket.setNoDelay(true);
    socket.on('data', (b: Buffer) => this.#onData(b));
    socket.on('drain', () => this.#onClientDrain());
    socket.on('end', () => this.#onClientEnd());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#onClientClose());
    ctx.connections.add(this);
    ctx.stats.connections.value++;
    this.#setDeadline(D_IDLE, ctx.timeouts.idle);
  }

  /** Switches to a new context (config reload); the current exchange finishes on the old routes. */
  setContext(ctx: Http1Context): void {
    this.#c.connections.delete(this);
    this.#c.stats.connections.value--;
    this.#c = ctx;
    ctx.connections.add(this);
    ctx.stats.connections.value++;
  }

  /** Drain: close now if idle, else after the current response (which says Connection: close). */
  drain(): void {
    if (this.#state === ST_HEAD && this.#pending === undefined) this.#close();
    else {
      this.#closeAfter = true;
      if (this.#bridge !== undefined) this.#bridge.closeAfter = true;
    }
  }

  /** Checks deadlines; called by the listener's ticker. */
  tick(now: number): void {
    if (this.#bridge !== undefined) {
      this.#bridge.tick(now);
      return;
    }
    // Stream idle: while body bytes are expected in either direction, none moving for the idle
    // timeout ends the exchange (a stalled client or upstream would otherwise hold both sockets).
    if (
      (this.#state === ST_EXCHANGE && (this.#res !== undefined || !this.#reqDone)) ||
      (this.#state === ST_BUFFER && !this.#reqDone)
    ) {
      if (this.#io) {
        this.#io = false;
        this.#ioAt = now;
      } else if (this.#c.timeouts.idle > 0 && now - this.#ioAt >= this.#c.timeouts.idle) {
        if (this.#res === undefined)
          this.#reject(408, 'request body stalled', 'PILLION_ERR_PROXY_BAD_REQUEST');
        else if (this.#xfRes !== undefined) {
          // A transformed response whose body stopped coming: nothing of it has gone out yet.
          this.#error = 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT';
          this.#xfRes = undefined;
          this.#local(504, 'upstream response body stalled\n', 'SI');
        } else {
          this.#flags = 'SI';
          this.#error = 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT';
          this.#abort();
        }
        return;
      }
    }
    if (this.#deadlineKind !== D_NONE && now >= this.#deadline) {
      const kind = this.#deadlineKind;
      this.#deadlineKind = D_NONE;
      if (kind === D_IDLE) this.#close();
      else if (kind === D_HEAD)
        this.#reject(408, 'request head not received in time', 'PILLION_ERR_PROXY_BAD_REQUEST');
      else if (kind === D_RESPONSE) this.#upstreamTimeout();
    }
    if (this.#tryDeadline !== 0 && now >= this.#tryDeadline) {
      this.#tryDeadline = 0;
      if ((this.#state === ST_CONNECTING || this.#state === ST_EXCHANGE) && this.#res === undefined) {
        if (this.#state === ST_EXCHANGE) {
          this.#outlier(0);
          // A try that timed out took at least this long: the latency average must see it.
          const u = this.#upstream!;
          if (u.observesLatency) u.observe(this.#upEndpoint!, performance.now() - this.#tUp);
        }
        if (this.#retryDecision(F_TIMEOUT, 'UT')) {
          this.#c.stats.upstreamError(this.#upstream!.name, 'per_try_timeout');
          this.#dropTry();
          this.#scheduleRetry();
        } else this.#upstreamTimeout();
        return;
      }
    }
    if (this.#requestDeadline !== 0 && now >= this.#requestDeadline) {
      this.#requestDeadline = 0;
      if (this.#state === ST_BUFFER && !this.#reqDone)
        this.#reject(408, 'request not received in time', 'PILLION_ERR_PROXY_BAD_REQUEST');
      else if (this.#state === ST_CONNECTING || this.#state === ST_EXCHANGE) {
        if (this.#res === undefined) {
          if (this.#reqDone) this.#upstreamTimeout();
          else this.#reject(408, 'request not received in time', 'PILLION_ERR_PROXY_BAD_REQUEST');
        } else if (this.#xfRes !== undefined) {
          this.#error = 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT';
          this.#xfRes = undefined;
          this.#local(504, 'upstream response timeout\n', 'UT');
        } else {
          this.#flags = 'UT';
          this.#abort();
        }
      }
    }
  }

  // --- client side -------------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    this.#io = true;
    switch (this.#state) {
      case ST_HEAD:
        if (this.#pending === undefined) {
          this.#readHead(chunk, 0);
        } else {
          const scanFrom = this.#pending.length;
          const buf = Buffer.concat([this.#pending, chunk]);
          this.#pending = undefined;
          this.#readHead(buf, scanFrom);
        }
        return;
      case ST_CONNECTING:
        this.#hold(chunk);
        return;
      case ST_EXCHANGE:
      case ST_BUFFER:
        if (!this.#reqDone) this.#forwardBody(chunk, 0);
        else this.#hold(chunk);
        return;
      case ST_TUNNEL:
        this.#bytesIn += chunk.length;
        if (this.#up && !this.#up.socket.write(chunk)) this.#pause(P_BACKPRESSURE);
        return;
    }
  }

  /** Keeps bytes that arrived ahead of their turn; pauses reading when too many are held. */
  #hold(chunk: Buffer): void {
    this.#pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    if (this.#pending.length > MAX_BUFFERED || this.#state === ST_EXCHANGE || this.#state === ST_BUFFER)
      this.#pause(P_PIPELINED);
  }

  #readHead(buf: Buffer, scanFrom: number): void {
    if (this.#requests === 0 && this.#c.h2c !== undefined && startsWithPreface(buf)) {
      if (buf.length < PREFACE.length) {
        this.#pending = buf;
        return;
      }
      this.#handOffH2(buf);
      return;
    }
    if (this.#deadlineKind !== D_HEAD) {
      this.#t0 = performance.now();
      this.#setDeadline(D_HEAD, this.#c.timeouts.requestHead);
    }
    const r = parseRequestHead(buf, 0, buf.length, this.#c.limits, scanFrom);
    if (r === undefined) {
      this.#pending = buf;
      return;
    }
    if (r instanceof HeadError) {
      this.#bytesIn = buf.length;
      this.#reject(r.status, r.reason, 'PILLION_ERR_PROXY_BAD_REQUEST');
      return;
    }
    this.#startExchange(r, buf);
  }

  #startExchange(req: RequestHead, buf: Buffer): void {
    const c = this.#c;
    this.#requests++;
    this.#req = req;
    this.#io = true;
    this.#bytesIn = req.size;
    this.#deadlineKind = D_NONE;
    c.stats.active.value++;
    if (c.timeouts.request > 0) this.#requestDeadline = Date.now() + c.timeouts.request;
    if (!req.keepAlive || c.draining || this.#clientEnded) this.#closeAfter = true;
    const rest = req.size < buf.length ? buf.subarray(req.size) : undefined;
    this.#pending = rest;

    // Request id: the client's, else a new one.
    const idAt = req.lower.indexOf('x-request-id');
    if (idAt !== -1) this.#requestId = req.values[idAt]!;
    else if (c.headers.requestId) this.#requestId = this.#addRequestId = randomUUID();

    if (req.chunked) {
      this.#reqKind = B_CHUNKED;
      this.#reqChunks = new ChunkedReader(c.limits.maxHeadSize);
    } else if (req.contentLength > 0) {
      this.#reqKind = B_LENGTH;
      this.#reqLeft = req.contentLength;
    } else {
      this.#reqKind = B_NONE;
    }
    this.#reqDone = this.#reqKind === B_NONE;

    const norm = normalizeTarget(req.target, c.escapedSlashes);
    if (norm instanceof PathError) {
      if (norm.refusal !== undefined) c.stats.refused(norm.refusal);
      this.#reject(400, norm.reason, 'PILLION_ERR_PROXY_BAD_REQUEST');
      return;
    }
    if (norm.redirect) {
      // pathWithEscapedSlashes: unescape-and-redirect. 307 keeps the method and the body.
      c.stats.refused('escaped_slash_redirect');
      this.#routeStats = c.noRouteStats;
      this.#local(307, '', '', 'text/plain; charset=utf-8', `location: ${norm.path}${norm.query}\r\n`);
      return;
    }
    // Lower-casing the Host costs an allocation per request; only host conditions need it.
    const host = c.routesUseHost ? hostOnly(req.host) : '';
    const route = matchRoute(c.routes, req.method, norm.path, host, req.lower, req.values, norm.query);
    if (route === undefined) {
      this.#routeStats = c.noRouteStats;
      this.#local(404, 'no route matches this request\n', 'NR');
      return;
    }
    this.#route = route;
    this.#routeStats = c.routeStats[route.index];
    const chain = c.filters?.[route.index];
    if (chain !== undefined) {
      const fr = newFilterRequest(
        req.method,
        norm.path,
        norm.query,
        req.host,
        req.lower,
        req.values,
        this.#clientIp,
        this.#localPort(),
        this.#peerPrincipal(),
        (this.socket as TLSSocket).servername || '',
        c.headers.trustForwarded,
      );
      this.#filterReq = fr;
      const v = chain.run(fr);
      if (v instanceof Promise) {
        // An asynchronous step (a signature check, an ext_authz call): the exchange waits as it
        // would for an upstream connection, with the request's deadlines running.
        this.#state = ST_CONNECTING;
        this.#pause(P_UPSTREAM);
        v.then(
          (d) => {
            if (this.#req !== req) return; // ended meanwhile (deadline, client gone)
            if (d !== undefined) this.#denied(d);
            else this.#forward(req, route, norm.path, norm.query, fr);
          },
          () => {
            if (this.#req === req) this.#local(500, 'request filter failed\n', 'LR');
          },
        );
        return;
      }
      if (v !== undefined) {
        this.#denied(v);
        return;
      }
    }
    this.#forward(req, route, norm.path, norm.query, this.#filterReq);
  }

  /** The rest of #startExchange, once the filters passed the request. */
  #forward(
    req: RequestHead,
    route: CompiledRoute,
    path: string,
    query: string,
    fr: FilterRequest | undefined,
  ): void {
    const c = this.#c;
    if (fr !== undefined) applyEdits(req, fr);
    if (route.direct !== undefined) {
      this.#local(route.direct.status, route.direct.body, '', route.direct.contentType);
      return;
    }
    if (route.fault !== undefined && this.#fault(req, route, path, query)) return;
    if (route.split !== undefined) {
      route = pickDestination(route, Math.random);
      this.#route = route;
    }
    const m = route.mirror;
    if (m !== undefined && c.mirror !== undefined && Math.random() < m.share)
      c.mirror.send(
        m.upstream,
        req.method,
        rewritePath(route, path) + query,
        req.host,
        req.lower,
        req.values,
        this.#reqKind !== B_NONE,
      );
    if (c.limits.maxBodySize > 0 && req.contentLength > c.limits.maxBodySize) {
      this.#local(413, 'request body too large\n', 'LR');
      return;
    }
    // A reload while the filters waited can have taken the route's upstream away.
    const upstream = c.upstreams.get(route.upstream!);
    if (upstream === undefined) {
      this.#local(503, 'the upstream was removed by a reload\n', 'NR');
      return;
    }
    if (route.upstream === 'app' && c.readinessGate && !c.appHealthy()) {
      this.#local(503, 'the app is not ready yet\n', 'UH', 'text/plain; charset=utf-8', 'retry-after: 1\r\n');
      return;
    }
    if (upstream.protocol === 'h2') {
      this.#toH2(req, route, upstream, path, query, fr);
      return;
    }
    if (upstream.maxRequests > 0 && upstream.inflight >= upstream.maxRequests) {
      c.stats.upstreamError(upstream.name, 'overflow');
      this.#local(503, 'too many requests to the upstream\n', 'UO');
      return;
    }
    const xf = c.transforms?.[route.index];
    if (xf !== undefined) {
      this.#xf = xf;
      this.#xfView = xf.view(req.method, path, query, req.lower, req.values);
      if (xf.request) {
        this.#bufferRequest(req, route, path, query, upstream, xf);
        return;
      }
    }
    this.#connect(req, route, path, query, upstream);
  }

  /** Sends the request to the upstream: takes a connection from its pool (the rest of #forward). */
  #connect(req: RequestHead, route: CompiledRoute, path: string, query: string, upstream: Upstream): void {
    const c = this.#c;
    upstream.inflight++;
    this.#inflightUp = upstream;
    this.#upstream = upstream;
    if (upstream.hashOn !== HASH_NONE)
      this.#hash = hashKeyOf(upstream, req.lower, req.values, this.#clientIp);
    const rz = c.resilience?.[route.index];
    if (rz !== undefined) this.#startResilient(rz, upstream, req);
    this.#path = rewritePath(route, path) + query;
    // Only the route's protocols are offered upstream; a request left with none is plain HTTP/1.1.
    this.#upgrade =
      req.upgrade !== '' && req.connection.includes('upgrade')
        ? allowedUpgrade(req.upgrade, route.upgrades, c.stats)
        : '';
    this.#upHead = serializeRequest(req, route, this.#path, {
      clientIp: this.#clientIp,
      proto: c.secure || this.peer !== undefined ? 'https' : 'http',
      xfcc: this.peer?.xfcc ?? '',
      trustForwarded: c.headers.trustForwarded,
      addRequestId: this.#addRequestId,
      upgrade: this.#upgrade,
    });
    if (this.#tries > 0) {
      this.#upHeadBase = this.#upHead.slice(0, -2);
      this.#upHead = `${this.#upHeadBase}x-pillion-attempt-count: 1\r\n\r\n`;
      const perTry = this.#resil!.retry!.perTryTimeoutMs;
      if (perTry > 0) this.#tryDeadline = Date.now() + perTry;
    }
    this.#state = ST_CONNECTING;
    upstream.pool.acquire(this, this.#hash, undefined, route.subset);
    // An idle pooled connection is handed over synchronously; only a connect in progress needs
    // the client's reading held (pausing and resuming a socket costs a tick per request).
    if (this.#state === ST_CONNECTING) this.#pause(P_UPSTREAM);
  }

  /** A transformed route: reads the whole request body (up to the route's limit) before forwarding. */
  #bufferRequest(
    req: RequestHead,
    route: CompiledRoute,
    path: string,
    query: string,
    upstream: Upstream,
    xf: RouteTransform,
  ): void {
    if (req.contentLength > xf.maxBodyBytes) {
      this.#xfFailed(xf.tooLarge('request'));
      return;
    }
    this.#state = ST_BUFFER;
    this.#xfReq = [];
    // Nothing of the body has been read yet: a chunked one is read through a reader that hands
    // over its payload, without the chunk framing.
    if (this.#reqKind === B_CHUNKED)
      this.#reqChunks = new ChunkedReader(this.#c.limits.maxHeadSize, this.#collectRequest);
    this.#xfConnect = () => this.#connect(req, route, path, query, upstream);
    if (req.expectContinue && this.#reqKind !== B_NONE) {
      // The body is read here, not by the upstream: the proxy says go on itself.
      this.#continued = true;
      this.#bytesOut += 25;
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      const at = req.lower.indexOf('expect');
      if (at !== -1) {
        req.lower.splice(at, 1);
        req.names.splice(at, 1);
        req.values.splice(at, 1);
      }
    }
    if (this.#reqKind === B_NONE) {
      this.#transformRequest();
      return;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) this.#forwardBody(pending, 0);
  }

  #xfConnect: (() => void) | undefined;

  #collectRequest = (buf: Buffer, start: number, end: number): void => {
    if (end <= start || this.#xfReq === undefined) return;
    this.#xfReqBytes += end - start;
    // Past the limit nothing more is kept; #forwardBody answers 413 once the reader returns.
    if (this.#xfReqBytes <= this.#xf!.maxBodyBytes) this.#xfReq.push(buf.subarray(start, end));
  };

  /** The request body is whole: runs the request side of the transformation, then forwards. */
  #transformRequest(): void {
    const xf = this.#xf!;
    const req = this.#req!;
    const parts = this.#xfReq!;
    const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    this.#xfReq = undefined;
    this.#pause(P_UPSTREAM);
    xf.onRequest(this.#xfView!, req.lower, req.values, body).then(
      (out) => {
        if (this.#req !== req || this.#state !== ST_BUFFER) return; // ended meanwhile
        if ('failed' in out) {
          this.#xfFailed(out);
          return;
        }
        const n = out.headers.length;
        const names = new Array<string>(n);
        const values = new Array<string>(n);
        for (let i = 0; i < n; i++) {
          names[i] = out.headers[i]![0];
          values[i] = out.headers[i]![1];
        }
        req.names = names;
        req.lower = names.slice();
        req.values = values;
        req.chunked = false;
        req.contentLength = out.body.length;
        this.#xfBody = out.body;
        const go = this.#xfConnect!;
        this.#xfConnect = undefined;
        this.#state = ST_CONNECTING;
        this.#unpause(P_UPSTREAM);
        go();
      },
      () => {
        if (this.#req === req) this.#local(500, 'request transform failed\n', 'LR');
      },
    );
  }

  /** A transformation refused or failed: its status and coded JSON body go to the client. */
  #xfFailed(f: TransformFailure): void {
    this.#error = f.code;
    if (this.#xfRes !== undefined) this.#xfRes = undefined;
    this.#local(f.status, f.body, 'LR', 'application/json');
  }

  /**
   * A request for an HTTP/2 upstream goes on as an HTTP/2 exchange over the upstream's session
   * pool, with its retries and accounting; this connection feeds it the request body and serves
   * the next request once it is over.
   */
  #toH2(
    req: RequestHead,
    route: CompiledRoute,
    upstream: Upstream,
    path: string,
    query: string,
    fr: FilterRequest | undefined,
  ): void {
    const c = this.#c;
    // The exchange counts and records the request from here.
    c.stats.active.value--;
    this.#deadlineKind = D_NONE;
    this.#requestDeadline = 0;
    this.#state = ST_EXCHANGE;
    let trailers = false;
    const lower: string[] = [];
    const values: string[] = [];
    for (let i = 0; i < req.lower.length; i++) {
      const l = req.lower[i]!;
      const v = req.values[i]!;
      if (l === 'te') trailers ||= /(^|[\s,])trailers(\s*(;|,|$))/i.test(v);
      if (HOP_BY_HOP.has(l) || l === 'expect' || req.connection.includes(l)) continue;
      lower.push(l);
      values.push(v);
    }
    // HTTP/2 allows both: the body's length, and TE: trailers (which gRPC servers ask for).
    if (req.contentLength >= 0) {
      lower.push('content-length');
      values.push(String(req.contentLength));
    }
    if (trailers) {
      lower.push('te');
      values.push('trailers');
    }
    const h2 = upstream.h2!;
    const client = new h2.Http1Client(
      this.socket,
      this,
      {
        head: req.method === 'HEAD',
        http10: req.minor === 0,
        closeAfter: this.#closeAfter,
        trailers,
        expectContinue: req.expectContinue && req.minor === 1,
      },
      this.#clientIp,
      this.#remote,
      this.peer,
    );
    this.#bridge = client;
    if (this.#reqKind === B_CHUNKED)
      // HTTP/2 frames the body itself: the exchange gets the chunks' data, not their framing.
      this.#reqChunks = new ChunkedReader(c.limits.maxHeadSize, (b, s, e) => {
        if (!client.push(b.subarray(s, e))) this.#pause(P_BACKPRESSURE);
      });
    let shared = this.#h2Shared;
    if (shared === undefined || shared.c !== c) {
      shared = this.#h2Shared = { c, active: new Set(), maxHeaderListSize: 0, makeLeg: h2Leg };
    }
    const x = new h2.Exchange(client, shared, client);
    client.exchange = x;
    x.protocol = req.minor === 1 ? 'HTTP/1.1' : 'HTTP/1.0';
    x.method = req.method;
    x.target = req.target;
    x.authority = req.host;
    x.lower = lower;
    x.values = values;
    x.contentLength = req.contentLength;
    x.requestId = this.#requestId;
    x.addRequestId = this.#addRequestId;
    x.reqDone = x.noBody = this.#reqKind === B_NONE;
    x.startRouted(route, upstream, path, query, fr);
    this.#unpause(P_UPSTREAM);
    const pending = this.#pending;
    if (pending !== undefined && !this.#reqDone && this.#bridge === client) {
      this.#pending = undefined;
      this.#forwardBody(pending, 0);
    }
  }

  holdBody(paused: boolean): void {
    if (this.#bridge === undefined) return;
    if (paused) this.#pause(P_BACKPRESSURE);
    else this.#unpause(P_BACKPRESSURE);
  }

  bridgeDone(clean: boolean, closeAfter: boolean): void {
    if (this.#bridge === undefined) return;
    this.#bridge = undefined;
    if (this.#state === ST_CLOSED) return;
    if (!clean) {
      // A response cut short: only a closed connection tells the client.
      this.#resetExchange();
      this.#state = ST_CLOSED;
      this.socket.destroy();
      return;
    }
    if (closeAfter || !this.#reqDone) this.#closeAfter = true;
    this.#next();
  }

  /** A route with retries or a timeout: its deadline, the budget's deposit, and a place to keep the body. */
  #startResilient(rz: RouteResilience, upstream: Upstream, req: RequestHead): void {
    this.#resil = rz;
    if (rz.timeoutMs > 0) {
      const at = Date.now() + rz.timeoutMs;
      if (this.#requestDeadline === 0 || at < this.#requestDeadline) this.#requestDeadline = at;
    }
    if (rz.retry === undefined) return;
    this.#tries = 1;
    upstream.retryBudget?.deposit();
    if (this.#reqKind !== B_NONE) this.#kept = [];
    // The count is the proxy's to say; a client's own would contradict it.
    const at = req.lower.indexOf('x-pillion-attempt-count');
    if (at !== -1) {
      req.lower.splice(at, 1);
      req.names.splice(at, 1);
      req.values.splice(at, 1);
    }
  }

  /**
   * A try failed before anything of its response reached the client: whether to try again (the
   * route's retryOn, tries left, the body kept, the upstream's budget). Counts the outcome and
   * records the try's flag.
   */
  #retryDecision(kind: number, flag: string): boolean {
    const p = this.#resil?.retry;
    if (p === undefined) return false;
    const up = this.#upstream!;
    const first = this.#retryingUp === undefined;
    const bodyLost = this.#reqKind !== B_NONE && this.#kept === undefined;
    const outcome = p.decide(up, kind, this.#tries, first, bodyLost, this.#upgrade !== '', this.#c.stats);
    this.#tryFlags = this.#tryFlags === '' ? flag : `${this.#tryFlags},${flag}`;
    if (outcome === 'attempts_exhausted' && this.#tries > 1) this.#urx = true;
    if (outcome !== 'retried') return false;
    if (first) this.#retryingUp = up;
    return true;
  }

  /** Lets go of the failed try's connection (closed: what it was doing is unknown). */
  #dropTry(): void {
    const up = this.#up;
    this.#up = undefined;
    if (up !== undefined) {
      up.owner = undefined;
      up.socket.destroy();
    }
    if (this.#state === ST_CONNECTING) this.#upstream!.pool.cancel(this);
  }

  /** Waits the back-off, then asks for a connection for the next try. */
  #scheduleRetry(): void {
    this.#endTry();
    this.#state = ST_CONNECTING;
    this.#pause(P_UPSTREAM);
    if (this.#deadlineKind === D_RESPONSE) this.#deadlineKind = D_NONE;
    this.#tryDeadline = 0;
    this.#res = undefined;
    this.#resReader.reset();
    this.#retryTimer = this.#c.clock.setTimeout(this.#retryNow, this.#resil!.retry!.backoffMs(this.#tries));
  }

  #retryNow = (): void => {
    this.#retryTimer = undefined;
    const up = this.#upstream;
    if (this.#state !== ST_CONNECTING || up === undefined || this.#resil === undefined) return;
    this.#tries++;
    this.#upHead = `${this.#upHeadBase}x-pillion-attempt-count: ${this.#tries}\r\n\r\n`;
    const perTry = this.#resil.retry!.perTryTimeoutMs;
    if (perTry > 0) this.#tryDeadline = Date.now() + perTry;
    up.pool.acquire(this, this.#hash, this.#upEndpoint, this.#route?.subset);
  };

  /**
   * Fault injection: holds the request for the delay (then forwards it), or answers it with the
   * abort status; true when it did either.
   */
  #fault(req: RequestHead, route: CompiledRoute, path: string, query: string): boolean {
    const f = route.fault!;
    if (!this.#delayed && f.delayShare > 0 && Math.random() < f.delayShare) {
      this.#delayed = true;
      this.#flags = 'DI';
      this.#state = ST_CONNECTING;
      this.#pause(P_UPSTREAM);
      this.#faultTimer = this.#c.clock.setTimeout(() => {
        this.#faultTimer = undefined;
        if (this.#req === req && this.#state === ST_CONNECTING)
          this.#forward(req, route, path, query, undefined);
      }, f.delayMs);
      return true;
    }
    if (f.abortShare > 0 && Math.random() < f.abortShare) {
      this.#state = ST_EXCHANGE;
      this.#local(f.abortStatus, 'fault filter abort\n', 'FI');
      return true;
    }
    return false;
  }

  /** Tells outlier detection how the try's endpoint answered (0: no response at all). */
  #outlier(status: number): void {
    const o = this.#upstream?.outlier;
    if (o !== undefined && this.#upEndpoint !== undefined) o.report(this.#upEndpoint, status);
  }

  /** The try's endpoint has one request fewer in flight. */
  #endTry(): void {
    const ep = this.#activeEp;
    if (ep !== undefined) {
      ep.state.active--;
      this.#activeEp = undefined;
    }
  }

  /** A response the route retries on: its connection is let go (kept when its body is all here) and the next try scheduled. */
  #retryResponse(r: ResponseHead, buf: Buffer, start: number): boolean {
    if (!this.#retryDecision(F_RESPONSE, String(r.status))) return false;
    this.#outlier(r.status);
    const u = this.#upstream!;
    if (u.observesLatency) u.observe(this.#upEndpoint!, performance.now() - this.#tUp);
    const up = this.#up!;
    this.#up = undefined;
    const rest = buf.length - start;
    const noBody = this.#req!.method === 'HEAD' || r.status === 204 || r.status === 304;
    const whole = noBody ? rest === 0 : !r.chunked && r.contentLength >= 0 && rest === r.contentLength;
    this.#upstream!.pool.release(up, whole && r.keepAlive && this.#reqDone);
    this.#scheduleRetry();
    return true;
  }

  #denied(d: Denial): void {
    let extra = '';
    let type = 'text/plain; charset=utf-8';
    for (const [n, v] of d.headers) {
      if (n === 'content-type') type = v;
      else extra += `${n}: ${v}\r\n`;
    }
    this.#local(d.status, d.body, d.flag, type, extra);
  }

  #localPort(): number {
    if (this.#port === -1) this.#port = this.socket.localPort ?? 0;
    return this.#port;
  }

  #peerPrincipal(): string | undefined {
    if (this.#principal === null)
      this.#principal = (this.socket as TLSSocket).encrypted
        ? peerPrincipal(this.socket as TLSSocket)
        : undefined;
    return this.#principal;
  }

  #onClientDrain(): void {
    if (this.#up !== undefined && this.#up.socket.isPaused()) this.#up.socket.resume();
    else this.#bridge?.emit('drain');
  }

  #onClientEnd(): void {
    this.#clientEnded = true;
    switch (this.#state) {
      case ST_HEAD:
        if (this.#pending === undefined) this.#close();
        else this.#reject(400, 'the connection ended inside a request head', 'PILLION_ERR_PROXY_BAD_REQUEST');
        return;
      case ST_TUNNEL:
        this.#up?.socket.end();
        return;
      case ST_EXCHANGE:
      case ST_BUFFER:
        // A body that can no longer complete: without this the exchange would wait forever.
        if (!this.#reqDone && this.#pending === undefined)
          this.#badBody('the connection ended inside the request body');
        else {
          this.#closeAfter = true;
          if (this.#bridge !== undefined) this.#bridge.closeAfter = true;
        }
        return;
      default:
        this.#closeAfter = true;
    }
  }

  #onClientClose(): void {
    const wasActive =
      this.#state === ST_CONNECTING ||
      this.#state === ST_EXCHANGE ||
      this.#state === ST_TUNNEL ||
      this.#state === ST_BUFFER;
    const state = this.#state;
    this.#state = ST_CLOSED;
    this.#deadlineKind = D_NONE;
    this.#requestDeadline = 0;
    this.#c.connections.delete(this);
    this.#c.stats.connections.value--;
    const bridge = this.#bridge;
    if (bridge !== undefined) {
      // The exchange records itself.
      this.#bridge = undefined;
      bridge.clientGone();
      return;
    }
    if (state === ST_CONNECTING) this.#upstream?.pool.cancel(this);
    if (this.#retryTimer !== undefined) {
      this.#retryTimer.cancel();
      this.#retryTimer = undefined;
    }
    this.#faultTimer?.cancel();
    if (this.#up !== undefined) {
      const up = this.#up;
      this.#up = undefined;
      up.owner = undefined;
      up.socket.destroy();
    }
    if (wasActive) {
      if (this.#flags === '' && state !== ST_TUNNEL) this.#flags = 'DC';
      this.#record();
    }
  }

  // --- request body ------------------------------------------------------------------------------

  #forwardBody(buf: Buffer, start: number): void {
    const end = buf.length;
    let used: number;
    let done: boolean;
    if (this.#reqKind === B_LENGTH) {
      const n = Math.min(this.#reqLeft, end - start);
      used = start + n;
      this.#reqLeft -= n;
      done = this.#reqLeft === 0;
    } else {
      const chunks = this.#reqChunks!;
      used = chunks.feed(buf, start, end);
      if (used === -1) {
        this.#badBody(chunks.error!);
        return;
      }
      done = chunks.done;
    }
    const n = used - start;
    this.#bytesIn += n;
    const max = this.#c.limits.maxBodySize;
    if (max > 0 && this.#reqKind === B_CHUNKED && this.#reqChunks!.payloadBytes > max) {
      this.#badBody('request body too large', 413);
      return;
    }
    if (this.#xfReq !== undefined) {
      // A chunked body's payload was collected by the reader (#collectRequest); a sized one is the slice.
      if (n > 0 && this.#reqKind === B_LENGTH) {
        this.#xfReqBytes += n;
        this.#xfReq.push(start === 0 && used === end ? buf : buf.subarray(start, used));
      }
      if (this.#xfReqBytes > this.#xf!.maxBodyBytes) {
        this.#xfReq = undefined;
        this.#xfFailed(this.#xf!.tooLarge('request'));
        return;
      }
      if (done) {
        this.#reqDone = true;
        if (used < end) this.#hold(buf.subarray(used));
        this.#transformRequest();
      } else if (this.#clientEnded) this.#badBody('the connection ended inside the request body');
      return;
    }
    if (this.#kept !== undefined && n > 0) {
      this.#keptBytes += n;
      if (this.#keptBytes > this.#resil!.retry!.maxBodyBytes) this.#kept = undefined;
      else this.#kept.push(start === 0 && used === end ? buf : buf.subarray(start, used));
    }
    if (n > 0) {
      const b = start === 0 && used === end ? buf : buf.subarray(start, used);
      const bridge = this.#bridge;
      if (bridge === undefined) {
        if (!this.#up!.socket.write(b)) this.#pause(P_BACKPRESSURE);
      } else if (this.#reqKind === B_LENGTH && !bridge.push(b)) this.#pause(P_BACKPRESSURE);
      // (A chunked body reaches the bridge de-chunked, from its reader's sink.)
    }
    if (done) {
      this.#reqDone = true;
      if (used < end) this.#hold(buf.subarray(used));
      if (this.#bridge !== undefined) this.#bridge.pushEnd();
      else if (this.#res === undefined) this.#setDeadline(D_RESPONSE, this.#c.timeouts.upstreamResponse);
    } else if (this.#clientEnded) {
      this.#badBody('the connection ended inside the request body');
    }
  }

  /** The request body broke its framing after the head went upstream: the exchange cannot go on. */
  #badBody(reason: string, status: 400 | 413 = 400): void {
    if (this.#bridge !== undefined) {
      this.#closeAfter = true;
      this.#bridge.badBody(reason, status);
      return;
    }
    if (this.#up !== undefined) {
      const up = this.#up;
      this.#up = undefined;
      up.owner = undefined;
      up.socket.destroy();
    }
    this.#closeAfter = true;
    if (this.#res === undefined) this.#reject(status, reason, 'PILLION_ERR_PROXY_BAD_REQUEST');
    else {
      this.#flags = 'LR';
      this.#error = 'PILLION_ERR_PROXY_BAD_REQUEST';
      this.#abort();
    }
  }

  // --- upstream side -----------------------------------------------------------------------------

  onUpstreamConnection(conn: UpstreamConnection): void {
    if (this.#state !== ST_CONNECTING) {
      this.#upstream?.pool.release(conn, true);
      return;
    }
    this.#up = conn;
    const ep = conn.endpoint;
    this.#upEndpoint = ep;
    ep.state.active++;
    ep.state.requests++;
    this.#activeEp = ep;
    this.#upReused = conn.uses > 0;
    conn.owner = this;
    this.#state = ST_EXCHANGE;
    this.#tUp = performance.now();
    const s = conn.socket;
    const pending = this.#pending;
    this.#pending = undefined;
    const kept = this.#tries > 1 ? this.#kept : undefined;
    if (this.#xfBody !== undefined) {
      // A transformed request: its head and its whole new body, on every try.
      s.cork();
      s.write(this.#upHead, 'latin1');
      if (this.#xfBody.length > 0) s.write(this.#xfBody);
      s.uncork();
      if (pending !== undefined) this.#hold(pending);
    } else if (kept !== undefined && kept.length > 0) {
      // A retry: the head, the body kept from the earlier tries, then what has arrived since.
      s.cork();
      s.write(this.#upHead, 'latin1');
      const n = kept.length;
      for (let i = 0; i < n; i++) s.write(kept[i]!);
      if (pending !== undefined) {
        if (this.#reqDone) this.#hold(pending);
        else this.#forwardBody(pending, 0);
      }
      s.uncork();
    } else if (pending === undefined || this.#reqDone) {
      s.write(this.#upHead, 'latin1');
      if (pending !== undefined) this.#hold(pending);
    } else {
      // Head and the body bytes that came with it leave in one writev.
      s.cork();
      s.write(this.#upHead, 'latin1');
      this.#forwardBody(pending, 0);
      s.uncork();
    }
    if (this.#state !== ST_EXCHANGE) return;
    if (this.#reqDone) this.#setDeadline(D_RESPONSE, this.#c.timeouts.upstreamResponse);
    this.#unpause(P_UPSTREAM);
  }

  onUpstreamConnectError(kind: ConnectFailure, err: Error | undefined, ep: Endpoint | undefined): void {
    if (this.#state !== ST_CONNECTING) return;
    this.#upEndpoint = ep;
    const name = this.#upstream!.name;
    if (kind === 'timeout' || kind === 'refused') this.#outlier(0);
    if ((kind === 'timeout' || kind === 'refused') && this.#retryDecision(F_CONNECT, 'UF')) {
      this.#c.stats.upstreamError(name, kind === 'timeout' ? 'connect_timeout' : 'connect_refused');
      this.#scheduleRetry();
      return;
    }
    this.#error = 'PILLION_ERR_PROXY_UPSTREAM_CONNECT';
    switch (kind) {
      case 'timeout':
        this.#c.stats.upstreamError(name, 'connect_timeout');
        this.#local(504, 'upstream connect timeout\n', 'UF');
        break;
      case 'refused':
        this.#c.stats.upstreamError(name, 'connect_refused');
        this.#local(502, `upstream connect error: ${err?.message ?? 'refused'}\n`, 'UF');
        break;
      case 'no-endpoint':
        this.#c.stats.upstreamError(name, 'no_endpoint');
        this.#local(503, 'no upstream endpoint is available\n', 'UH');
        break;
      case 'overflow':
        this.#c.stats.upstreamError(name, 'overflow');
        this.#local(503, 'too many requests waiting for an upstream connection\n', 'UO');
        break;
    }
  }

  onUpstreamDrain(): void {
    this.#unpause(P_BACKPRESSURE);
  }

  onUpstreamData(chunk: Buffer): void {
    this.#io = true;
    if (this.#state === ST_TUNNEL) {
      this.#bytesOut += chunk.length;
      if (!this.socket.write(chunk)) this.#up!.socket.pause();
      return;
    }
    if (this.#state !== ST_EXCHANGE) return;
    if (this.#res === undefined) this.#readResponseHead(chunk);
    else this.#forwardResponse(chunk, 0);
  }

  #readResponseHead(chunk: Buffer): void {
    const reader = this.#resReader;
    reader.feed(chunk);
    for (;;) {
      const r = reader.next();
      if (r === undefined) return;
      if (r instanceof HeadError) {
        this.#upstreamProtocolError(`upstream sent an invalid response head: ${r.reason}`);
        return;
      }
      const buf = reader.buffer;
      const start = reader.offset;
      if (r.status === 101) {
        if (this.#upgrade === '') {
          this.#upstreamProtocolError('upstream switched protocols without an upgrade request');
          return;
        }
        if (!upgradeOffered(this.#upgrade, r.upgrade)) {
          this.#upstreamProtocolError('upstream switched to a protocol the request did not offer');
          return;
        }
        this.#startTunnel(r, buf, start);
        return;
      }
      if (r.status < 200) {
        // Interim responses (100 Continue, 103 Early Hints) go to an HTTP/1.1 client as they are;
        // a 100 once (the reader bounds how many come in all).
        if (this.#req!.minor === 1 && !(r.status === 100 && this.#continued)) {
          if (r.status === 100) this.#continued = true;
          const h = serializeResponse(r, undefined, {
            chunked: false,
            close: false,
            keepAlive10: false,
            requestId: '',
            upgrade: false,
          });
          this.#bytesOut += h.length;
          this.socket.write(h, 'latin1');
        }
        continue;
      }
      if (this.#resil?.retry?.onResponse(r.status, r.lower, r.values) && this.#retryResponse(r, buf, start))
        return;
      this.#sendResponseHead(r, buf, start);
      return;
    }
  }

  /** Writes the response head, with as much of the body as came with it in the same write. */
  #sendResponseHead(res: ResponseHead, buf: Buffer, start: number): void {
    const req = this.#req!;
    this.#res = res;
    this.#status = res.status;
    this.#upTime = performance.now() - this.#tUp;
    this.#tryDeadline = 0;
    if (this.#deadlineKind === D_RESPONSE) this.#deadlineKind = D_NONE;
    const up = this.#upstream!;
    if (up.observesLatency) up.observe(this.#upEndpoint!, this.#upTime);
    if (up.outlier !== undefined) up.outlier.report(this.#upEndpoint!, res.status);
    const noBody = req.method === 'HEAD' || res.status === 204 || res.status === 304;
    if (!noBody && this.#xf !== undefined && this.#xf.response) {
      this.#bufferResponse(res, buf, start, this.#xf);
      return;
    }
    if (noBody) this.#resKind = B_NONE;
    else if (res.chunked) {
      this.#resKind = B_CHUNKED;
      this.#dechunk = req.minor === 0;
      this.#resChunks = new ChunkedReader(64 * 1024, this.#dechunk ? this.#writePayload : undefined);
    } else if (res.contentLength !== -1) {
      this.#resKind = res.contentLength > 0 ? B_LENGTH : B_NONE;
      this.#resLeft = res.contentLength;
    } else this.#resKind = B_CLOSE;
    // The connection cannot carry another request when the response has no length (it ends at
    // close), when an HTTP/1.0 client gets a de-chunked body, or when the request is still arriving.
    if (this.#resKind === B_CLOSE || this.#dechunk || !this.#reqDone) this.#closeAfter = true;
    const h = serializeResponse(res, this.#route, {
      chunked: this.#resKind === B_CHUNKED && !this.#dechunk,
      close: this.#closeAfter,
      keepAlive10: req.minor === 0,
      requestId: this.#c.headers.requestId ? this.#requestId : '',
      upgrade: false,
    });
    const avail = buf.length - start;
    if (this.#resKind === B_CHUNKED && avail > 0) {
      // The chunks that came with the head are read before the head goes out: an upstream whose
      // framing is broken from its first bytes gets the client a 502, not a cut-off 200.
      this.#pendingHead = h;
      const s = this.socket;
      s.cork();
      this.#forwardResponse(buf, start);
      this.#flushHead();
      s.uncork();
      return;
    }
    this.#bytesOut += h.length;
    if (this.#resKind === B_NONE) {
      this.socket.write(h, 'latin1');
      // Bytes after a bodiless response are not ours to forward: the connection is not reused.
      this.#responseDone(avail === 0);
      return;
    }
    if (this.#resKind === B_LENGTH && avail > 0 && avail <= MERGE_LIMIT) {
      // The common small response: head and body leave in one write (no cork, no writev).
      const n = Math.min(avail, this.#resLeft);
      const hl = h.length;
      const out = Buffer.allocUnsafe(hl + n);
      out.write(h, 0, hl, 'latin1');
      buf.copy(out, hl, start, start + n);
      this.#resLeft -= n;
      this.#bytesOut += n;
      if (!this.socket.write(out)) this.#up?.socket.pause();
      if (this.#resLeft === 0) this.#responseDone(start + n === buf.length);
      return;
    }
    const s = this.socket;
    s.cork();
    s.write(h, 'latin1');
    if (avail > 0) this.#forwardResponse(buf, start);
    s.uncork();
  }

  /** A transformed route's response: its body is read whole (up to the limit), never streamed. */
  #bufferResponse(res: ResponseHead, buf: Buffer, start: number, xf: RouteTransform): void {
    if (res.contentLength > xf.maxBodyBytes) {
      this.#xfFailed(xf.tooLarge('response'));
      return;
    }
    this.#xfRes = [];
    if (res.chunked) {
      this.#resKind = B_CHUNKED;
      this.#dechunk = true;
      this.#resChunks = new ChunkedReader(64 * 1024, this.#collectPayload);
    } else if (res.contentLength !== -1) {
      this.#resKind = res.contentLength > 0 ? B_LENGTH : B_NONE;
      this.#resLeft = res.contentLength;
    } else this.#resKind = B_CLOSE;
    if (!this.#reqDone) this.#closeAfter = true;
    if (this.#resKind === B_NONE) this.#responseDone(buf.length === start);
    else if (buf.length > start) this.#forwardResponse(buf, start);
  }

  #collectPayload = (buf: Buffer, start: number, end: number): void => {
    if (end > start) this.#xfCollect(buf.subarray(start, end));
  };

  #xfCollect(b: Buffer): void {
    if (this.#xfRes === undefined || this.#xfOver) return;
    this.#xfResBytes += b.length;
    if (this.#xfResBytes > this.#xf!.maxBodyBytes) this.#xfOver = true;
    else this.#xfRes.push(b);
  }

  /** The response body is whole: runs the response side of the transformation and answers. */
  #transformResponse(): void {
    const xf = this.#xf!;
    const req = this.#req!;
    const res = this.#res!;
    const parts = this.#xfRes!;
    this.#xfRes = undefined;
    const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    xf.onResponse(this.#xfView!, res.status, res.lower, res.values, body).then(
      (out) => {
        if (this.#req !== req || this.#state !== ST_EXCHANGE) return; // ended meanwhile
        if ('failed' in out) {
          this.#xfFailed(out);
          return;
        }
        const n = out.headers.length;
        const names = new Array<string>(n + 1);
        const values = new Array<string>(n + 1);
        for (let i = 0; i < n; i++) {
          names[i] = out.headers[i]![0];
          values[i] = out.headers[i]![1];
        }
        names[n] = 'content-length';
        values[n] = String(out.body.length);
        const head = serializeResponse(
          {
            ...res,
            status: out.status,
            reason: out.status === res.status ? res.reason : (REASONS[out.status] ?? 'Unknown'),
            names,
            lower: names,
            values,
            contentLength: out.body.length,
            chunked: false,
            connection: [],
            upgrade: '',
          },
          this.#route,
          {
            chunked: false,
            close: this.#closeAfter,
            keepAlive10: req.minor === 0,
            requestId: this.#c.headers.requestId ? this.#requestId : '',
            upgrade: false,
          },
        );
        this.#status = out.status;
        this.#bytesOut += head.length + out.body.length;
        const s = this.socket;
        s.cork();
        s.write(head, 'latin1');
        if (out.body.length > 0) s.write(out.body);
        s.uncork();
        this.#finish();
      },
      () => {
        if (this.#req === req) this.#local(500, 'response transform failed\n', 'LR');
      },
    );
  }

  #writePayload = (buf: Buffer, start: number, end: number): void => {
    if (end <= start) return;
    if (this.#pendingHead !== '') (this.#held ??= []).push(buf.subarray(start, end));
    else if (!this.socket.write(buf.subarray(start, end))) this.#up?.socket.pause();
  };

  /** Writes the response head held back while the first chunks were read, and their payload. */
  #flushHead(): void {
    const h = this.#pendingHead;
    if (h === '' || this.#state !== ST_EXCHANGE) return;
    this.#pendingHead = '';
    this.#bytesOut += h.length;
    this.socket.write(h, 'latin1');
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) for (const b of held) if (!this.socket.write(b)) this.#up?.socket.pause();
  }

  #forwardResponse(buf: Buffer, start: number): void {
    const end = buf.length;
    let used: number;
    let done = false;
    switch (this.#resKind) {
      case B_LENGTH: {
        const n = Math.min(this.#resLeft, end - start);
        used = start + n;
        this.#resLeft -= n;
        done = this.#resLeft === 0;
        break;
      }
      case B_CHUNKED: {
        used = this.#resChunks!.feed(buf, start, end);
        if (used === -1) {
          this.#upstreamProtocolError(`upstream sent invalid chunked framing: ${this.#resChunks!.error}`);
          return;
        }
        done = this.#resChunks!.done;
        this.#flushHead();
        break;
      }
      default:
        used = end;
    }
    if (this.#xfRes !== undefined) {
      if (used > start && !this.#dechunk)
        this.#xfCollect(start === 0 && used === end ? buf : buf.subarray(start, used));
      if (this.#xfOver) this.#xfFailed(this.#xf!.tooLarge('response'));
      else if (done) this.#responseDone(used === end);
      return;
    }
    this.#bytesOut += used - start;
    if (used > start && !this.#dechunk) {
      if (!this.socket.write(start === 0 && used === end ? buf : buf.subarray(start, used)))
        this.#up?.socket.pause();
    }
    if (done) this.#responseDone(used === end);
  }

  #responseDone(clean: boolean): void {
    const up = this.#up;
    this.#up = undefined;
    if (up !== undefined) {
      this.#upstream!.pool.release(up, clean && this.#res!.keepAlive && this.#reqDone);
    }
    // A response complete before its request body: the rest of the body cannot be told from a
    // next request, so the connection closes after this response.
    if (!this.#reqDone) this.#closeAfter = true;
    if (this.#xfRes !== undefined) this.#transformResponse();
    else this.#finish();
  }

  onUpstreamClose(_err: Error | undefined): void {
    this.#up = undefined;
    if (this.#state === ST_TUNNEL) {
      this.socket.end();
      return;
    }
    if (this.#state !== ST_EXCHANGE) return;
    if (this.#res === undefined) {
      // A reused keep-alive connection the upstream closed just as the request went out: send the
      // request again on a fresh connection, once, if nothing of a body was lost.
      if (this.#upReused && !this.#retried && this.#reqKind === B_NONE && !this.#resReader.holding) {
        this.#retried = true;
        this.#state = ST_CONNECTING;
        this.#endTry();
        this.#upstream!.pool.acquire(this, this.#hash, undefined, this.#route?.subset);
        return;
      }
      this.#c.stats.upstreamError(this.#upstream!.name, 'reset');
      this.#outlier(0);
      if (this.#retryDecision(F_RESET, 'UC')) {
        this.#scheduleRetry();
        return;
      }
      this.#error = 'PILLION_ERR_PROXY_UPSTREAM_PROTOCOL';
      this.#local(502, 'upstream closed the connection before responding\n', 'UC');
      return;
    }
    if (this.#resKind === B_CLOSE) {
      this.#responseDone(false);
      return;
    }
    this.#c.stats.upstreamError(this.#upstream!.name, 'reset');
    this.#flags = 'UC';
    this.#error = 'PILLION_ERR_PROXY_UPSTREAM_PROTOCOL';
    this.#abort();
  }

  #upstreamProtocolError(reason: string): void {
    this.#c.stats.upstreamError(this.#upstream!.name, 'protocol');
    this.#error = 'PILLION_ERR_PROXY_UPSTREAM_PROTOCOL';
    const up = this.#up;
    this.#up = undefined;
    if (up !== undefined) {
      up.owner = undefined;
      up.socket.destroy();
    }
    // Nothing of the response has reached the client yet: it can still be told so.
    if (this.#res === undefined || this.#pendingHead !== '') {
      this.#pendingHead = '';
      this.#held = undefined;
      this.#local(502, `${reason}\n`, 'UPE');
    } else {
      this.#flags = 'UPE';
      this.#abort();
    }
  }

  #upstreamTimeout(): void {
    if (this.#upstream) this.#c.stats.upstreamError(this.#upstream.name, 'response_timeout');
    if (this.#up !== undefined) this.#outlier(0);
    this.#error = 'PILLION_ERR_PROXY_UPSTREAM_TIMEOUT';
    const up = this.#up;
    this.#up = undefined;
    if (up !== undefined) {
      up.owner = undefined;
      up.socket.destroy();
    }
    if (this.#state === ST_CONNECTING) this.#upstream?.pool.cancel(this);
    if (this.#retryTimer !== undefined) {
      this.#retryTimer.cancel();
      this.#retryTimer = undefined;
    }
    if (!this.#reqDone) this.#closeAfter = true;
    this.#state = ST_EXCHANGE;
    this.#local(504, 'upstream response timeout\n', 'UT');
  }

  #startTunnel(res: ResponseHead, buf: Buffer, start: number): void {
    this.#res = res;
    this.#status = 101;
    this.#upTime = performance.now() - this.#tUp;
    this.#deadlineKind = D_NONE;
    this.#requestDeadline = 0;
    this.#state = ST_TUNNEL;
    const h = serializeResponse(res, this.#route, {
      chunked: false,
      close: false,
      keepAlive10: false,
      requestId: '',
      upgrade: true,
    });
    this.#bytesOut += h.length;
    this.socket.write(h, 'latin1');
    if (start < buf.length) this.socket.write(buf.subarray(start));
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) this.#up!.socket.write(pending);
    this.#paused = 0;
    this.socket.resume();
  }

  // --- ending an exchange --------------------------------------------------------------------------

  /** A response the proxy writes itself; the exchange ends with it. */
  #local(
    status: number,
    body: Buffer | string,
    flags: string,
    contentType = 'text/plain; charset=utf-8',
    extra = '',
  ): void {
    if (this.#state === ST_CLOSED) return;
    this.#status = status;
    if (flags !== '') this.#flags = flags;
    // Body bytes the client has not sent yet cannot be told from the next request: close after.
    if (!this.#reqDone) this.#closeAfter = true;
    const head = serializeLocal(status, body, contentType, {
      close: this.#closeAfter,
      requestId: this.#c.headers.requestId ? this.#requestId : '',
      extra,
      route: this.#route,
    });
    const s = this.socket;
    s.cork();
    s.write(head, 'latin1');
    const bodyLen = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    if (this.#req?.method !== 'HEAD' && bodyLen > 0) s.write(body);
    s.uncork();
    this.#bytesOut += head.length + (this.#req?.method !== 'HEAD' ? bodyLen : 0);
    if (this.#up !== undefined) {
      const up = this.#up;
      this.#up = undefined;
      up.owner = undefined;
      up.socket.destroy();
    }
    this.#finish();
  }

  /** A bad request: answered with status, connection closed (the stream position is unknown). */
  #reject(status: number, reason: string, code: ErrorCode): void {
    this.#closeAfter = true;
    this.#reqDone = false;
    this.#error = code;
    if (this.#req === undefined) this.#c.stats.active.value++; // #finish counts it down
    this.#routeStats ??= this.#c.noRouteStats;
    this.#state = ST_EXCHANGE;
    this.#local(status, `${reason}\n`, 'LR');
  }

  /** The exchange ended badly mid-response: close both sides (the client sees a truncated body). */
  #abort(): void {
    const up = this.#up;
    this.#up = undefined;
    if (up !== undefined) {
      up.owner = undefined;
      up.socket.destroy();
    }
    this.#record();
    this.#resetExchange();
    this.#state = ST_CLOSED;
    this.socket.destroy();
  }

  #finish(): void {
    this.#record();
    this.#next();
  }

  /** The exchange is over and recorded: serve the next request, or close. */
  #next(): void {
    const close = this.#closeAfter;
    this.#resetExchange();
    if (close) {
      this.#close();
      return;
    }
    this.#state = ST_HEAD;
    this.#setDeadline(D_IDLE, this.#c.timeouts.idle);
    this.#paused = 0;
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      // Serve the next pipelined request on a later turn, so a long pipeline cannot grow the stack.
      setImmediate(() => {
        if (this.#state === ST_HEAD) this.#readHead(pending, 0);
        if (this.#paused === 0 && this.#state !== ST_CLOSED) this.socket.resume();
      });
      return;
    }
    this.socket.resume();
  }

  #record(): void {
    const c = this.#c;
    this.#endTry();
    if (this.#inflightUp !== undefined) {
      this.#inflightUp.inflight--;
      this.#inflightUp = undefined;
    }
    if (this.#retryingUp !== undefined) {
      this.#retryingUp.retrying--;
      this.#retryingUp = undefined;
    }
    if (this.#req === undefined && this.#status === 0) return;
    c.stats.active.value--;
    const u = this.#upstream;
    if (u !== undefined && this.#status !== 0) {
      const st = this.#status;
      u.responses[st >= 100 && st < 600 ? ((st / 100) | 0) - 1 : 4]!++;
      if (this.#upTime >= 0 && u.latency !== undefined)
        observe(u.latency, c.stats.stats.upstreamTime.bounds, this.#upTime / 1000);
    }
    const now = performance.now();
    const seconds = (now - this.#t0) / 1000;
    const rs = this.#routeStats ?? c.noRouteStats;
    const method = this.#req?.method ?? '-';
    rs.count(method, this.#status);
    observe(rs.duration, c.stats.stats.duration.bounds, seconds);
    c.stats.bytesIn.value += this.#bytesIn;
    c.stats.bytesOut.value += this.#bytesOut;
    const log = c.accessLog;
    if (log !== undefined) {
      const req = this.#req;
      const xff = req ? req.lower.indexOf('x-forwarded-for') : -1;
      const ua = req ? req.lower.indexOf('user-agent') : -1;
      log.write({
        start_time: Date.now() - (now - this.#t0),
        method,
        path: req ? req.target : '-',
        protocol: req ? (req.minor === 1 ? 'HTTP/1.1' : 'HTTP/1.0') : '-',
        response_code: this.#status,
        response_flags: this.#urx
          ? this.#flags === ''
            ? 'URX'
            : `${this.#flags},URX`
          : this.#flags === ''
            ? '-'
            : this.#flags,
        bytes_received: this.#bytesIn,
        bytes_sent: this.#bytesOut,
        duration: now - this.#t0,
        upstream_service_time: this.#upTime >= 0 ? this.#upTime : null,
        upstream_host: this.#upEndpoint?.key ?? null,
        x_forwarded_for: xff !== -1 ? req!.values[xff]! : null,
        user_agent: ua !== -1 ? req!.values[ua]! : null,
        request_id: this.#requestId === '' ? null : this.#requestId,
        authority: req && req.host !== '' ? req.host : null,
        downstream_remote_address: this.#remote,
        listener: c.listener,
        route: this.#route?.name ?? null,
        downstream_peer_principal: this.peer?.principal,
        ...(this.#error !== undefined ? { error: this.#error } : {}),
        ...(this.#filterReq !== undefined && this.#filterReq.details !== ''
          ? { response_code_details: this.#filterReq.details }
          : {}),
        ...(this.#tries > 0 ? { upstream_attempts: this.#tries, attempt_flags: this.#tryFlags } : {}),
      });
    }
  }

  #resetExchange(): void {
    this.#req = undefined;
    this.#route = undefined;
    this.#routeStats = undefined;
    this.#upstream = undefined;
    this.#upHead = '';
    this.#path = '';
    this.#requestId = '';
    this.#addRequestId = '';
    this.#upgrade = '';
    this.#reqKind = B_NONE;
    this.#reqLeft = 0;
    this.#reqChunks = undefined;
    this.#reqDone = false;
    this.#res = undefined;
    this.#resReader.reset();
    this.#resKind = B_NONE;
    this.#resLeft = 0;
    this.#resChunks = undefined;
    this.#dechunk = false;
    this.#pendingHead = '';
    this.#held = undefined;
    this.#continued = false;
    this.#upTime = -1;
    this.#bytesIn = 0;
    this.#bytesOut = 0;
    this.#status = 0;
    this.#flags = '';
    this.#error = undefined;
    this.#retried = false;
    this.#upEndpoint = undefined;
    this.#hash = '';
    if (this.#delayed) {
      this.#delayed = false;
      this.#faultTimer?.cancel();
      this.#faultTimer = undefined;
    }
    if (this.#resil !== undefined) {
      this.#resil = undefined;
      this.#tries = 0;
      this.#upHeadBase = '';
      this.#kept = undefined;
      this.#keptBytes = 0;
      this.#tryFlags = '';
      this.#urx = false;
      this.#tryDeadline = 0;
      if (this.#retryTimer !== undefined) {
        this.#retryTimer.cancel();
        this.#retryTimer = undefined;
      }
    }
    if (this.#xf !== undefined) {
      this.#xf = undefined;
      this.#xfView = undefined;
      this.#xfReq = undefined;
      this.#xfReqBytes = 0;
      this.#xfBody = undefined;
      this.#xfRes = undefined;
      this.#xfResBytes = 0;
      this.#xfOver = false;
    }
    this.#filterReq = undefined;
    this.#requestDeadline = 0;
    this.#deadlineKind = D_NONE;
  }

  #close(): void {
    if (this.#state === ST_CLOSED) return;
    this.#state = ST_CLOSED;
    this.#deadlineKind = D_NONE;
    this.socket.end();
    // A client that never reads could hold the socket open; bound the wait for its FIN.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  #setDeadline(kind: number, ms: number): void {
    if (ms <= 0) {
      this.#deadlineKind = D_NONE;
      return;
    }
    this.#deadlineKind = kind;
    this.#deadline = Date.now() + ms;
  }

  #pause(reason: number): void {
    if (this.#paused === 0) this.socket.pause();
    this.#paused |= reason;
  }

  #unpause(reason: number): void {
    if ((this.#paused & reason) === 0) return;
    this.#paused &= ~reason;
    if (this.#paused === 0) this.socket.resume();
  }

  #handOffH2(buf: Buffer): void {
    this.#state = ST_CLOSED;
    this.#deadlineKind = D_NONE;
    this.#c.connections.delete(this);
    this.#c.stats.connections.value--;
    const s = this.socket;
    s.removeAllListeners('data');
    s.removeAllListeners('drain');
    s.removeAllListeners('end');
    s.removeAllListeners('error');
    s.removeAllListeners('close');
    s.pause();
    this.#c.h2c!(s, buf);
  }
}

/** Removes the headers the filters dropped and adds theirs, in the parsed head the request is serialized from. */
function applyEdits(req: RequestHead, fr: FilterRequest): void {
  const drop = fr.dropHeaders;
  if (drop.length > 0) {
    for (let i = req.lower.length - 1; i >= 0; i--) {
      if (drop.includes(req.lower[i]!)) {
        req.lower.splice(i, 1);
        req.names.splice(i, 1);
        req.values.splice(i, 1);
      }
    }
  }
  for (const [n, v] of fr.addHeaders) {
    req.lower.push(n);
    req.names.push(n);
    req.values.push(v);
  }
}

function h2Leg(x: Exchange, upstream: Upstream): H2Leg {
  return new upstream.h2!.H2Leg(x, upstream);
}

function startsWithPreface(buf: Buffer): boolean {
  const n = Math.min(buf.length, PREFACE.length);
  for (let i = 0; i < n; i++) if (buf[i] !== PREFACE[i]) return false;
  return true;
}
