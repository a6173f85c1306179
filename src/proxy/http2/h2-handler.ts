// The HTTP/2 side of an HTTP listener: one node:http2 server (never listening itself) is handed
// the connections that negotiated h2 by ALPN or opened with the h2c preface, each through a
// FrameGuard. It bounds what a client may do (concurrent streams, header list size, invalid
// frames, refused streams, and resets per second against Rapid Reset), ends every session whose
// connection nghttp2 gave up on, keeps the idle clock, and turns each stream into an Exchange.

import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { PeerIdentity } from '../peer.js';
import { unmapIPv4 } from '../../lib/address.js';
import type { Http2Config } from '../config.js';
import type { Http1Context } from '../http1/server-connection.js';
import type { Upstream } from '../upstream/upstream.js';
import { Exchange, type Peer, type Shared, type UpstreamLeg } from './exchange.js';
import { FrameGuard, type GuardFault, type GuardOwner } from './frame-guard.js';
import { H1Leg } from './h1-leg.js';
import { H2Leg } from './h2-leg.js';
import type { H2Handler } from './types.js';

const { NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/**
 * How long a destroyed session may wait for its socket to finish (its last frames flushed, the
 * client's FIN) before the socket is destroyed: a client that neither reads nor closes would
 * otherwise hold it for good.
 */
const CLOSE_GRACE_MS = 5000;

/** Malformed frames, and streams refused for exceeding the stream limit, a session may send. */
const MAX_INVALID_FRAMES = 100;
const MAX_REJECTED_STREAMS = 100;
/**
 * Flow-control windows: what a client may send before the proxy has passed it on. The per-stream
 * window lets one upload run at more than 64 KiB per round trip; the connection window bounds
 * what one session can have buffered across all its streams.
 */
const STREAM_WINDOW = 256 * 1024;
const CONNECTION_WINDOW = 1024 * 1024;

export function createH2Handler(http: Http1Context, cfg: Http2Config, logger: Logger): H2Handler {
  return new Http2Handler(http, cfg, logger);
}

/** One client connection. */
class ClientSession implements Peer, GuardOwner {
  readonly session: ServerHttp2Session;
  readonly guard: FrameGuard;
  readonly clientIp: string;
  readonly remote: string;
  readonly identity: PeerIdentity | undefined;
  open = 0;
  /** nghttp2 ended the connection for a protocol error the client made. */
  protocolError = false;
  #handler: Http2Handler;
  #windowStart = 0;
  #resets = 0;
  /** When bytes last moved (read from the guard at each tick), and when the session was destroyed. */
  #ioAt = 0;
  #destroyedAt = 0;

  constructor(
    handler: Http2Handler,
    session: ServerHttp2Session,
    guard: FrameGuard,
    identity: PeerIdentity | undefined,
  ) {
    this.#handler = handler;
    this.identity = identity;
    this.session = session;
    this.guard = guard;
    const sock = guard.socket;
    this.clientIp = unmapIPv4(sock.remoteAddress ?? '');
    this.remote = `${this.clientIp}:${sock.remotePort ?? 0}`;
  }

  get closing(): boolean {
    return this.session.destroyed;
  }

  get uncheckable(): boolean {
    return this.guard.blind;
  }

  malformed(stream: number): boolean {
    return this.guard.takeMalformed(stream);
  }

  clientReset(): void {
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#resets = 0;
    }
    if (++this.#resets > this.#handler.maxResetsPerSecond && !this.session.destroyed)
      this.#handler.calm(this, this.#resets);
  }

  guardFault(fault: GuardFault, code: number): void {
    this.#handler.fault(this, fault, code);
  }

  /**
   * The idle clock, instead of node's session timeout: node's timer is not cleared when a session
   * is destroyed, and holds the whole session in memory until it fires.
   */
  tick(now: number, idleMs: number): void {
    if (this.session.destroyed) {
      if (this.#destroyedAt === 0) this.#destroyedAt = now;
      else if (now - this.#destroyedAt >= CLOSE_GRACE_MS) this.guard.socket.destroy();
      return;
    }
    if (this.guard.active) {
      this.guard.active = false;
      this.#ioAt = now;
      return;
    }
    // With streams open, each exchange keeps its own deadlines (stream idle among them).
    if (idleMs > 0 && this.open === 0 && this.#ioAt !== 0 && now - this.#ioAt >= idleMs) this.session.close();
  }
}

class Http2Handler implements H2Handler, Shared {
  readonly c: Http1Context;
  readonly active = new Set<Exchange>();
  readonly maxResetsPerSecond: number;
  readonly maxHeaderListSize: number;
  #logger: Logger;
  #server: http2.Http2Server;
  #sessions = new Map<ServerHttp2Session, ClientSession>();
  /** The guard of the connection being handed to the server (its 'session' event is synchronous). */
  #accepting: FrameGuard | undefined;
  #acceptingPeer: PeerIdentity | undefined;
  #ticker: NodeJS.Timeout | undefined;
  readonly #tickEvery: number;
  #draining = false;
  #closed = false;

  constructor(http: Http1Context, cfg: Http2Config, logger: Logger) {
    this.c = http;
    this.#logger = logger;
    this.maxResetsPerSecond = cfg.maxResetsPerSecond;
    this.maxHeaderListSize = cfg.maxHeaderListSize;
    this.#server = http2.createServer({
      settings: {
        maxConcurrentStreams: cfg.maxConcurrentStreams,
        maxHeaderListSize: cfg.maxHeaderListSize,
        enablePush: false,
        initialWindowSize: STREAM_WINDOW,
      },
      // Pseudo-headers count as pairs too.
      maxHeaderListPairs: http.limits.maxHeaders + 4,
      maxSessionInvalidFrames: MAX_INVALID_FRAMES,
      maxSessionRejectedStreams: MAX_REJECTED_STREAMS,
      peerMaxConcurrentStreams: 100,
    });
    this.#server.on('session', this.#onSession);
    const t = http.timeouts;
    // Routes' own timeouts and per-try timeouts count too.
    const routeTimeouts = (http.resilience ?? []).flatMap((r) =>
      r ? [r.timeoutMs, r.retry?.perTryTimeoutMs ?? 0] : [],
    );
    const shortest = Math.min(
      ...[t.idle, t.request, t.upstreamResponse, ...routeTimeouts].filter((ms) => ms > 0),
    );
    // Deadlines are checked at a quarter of the shortest one (10 ms..250 ms), as the HTTP/1.1
    // connections are; every 250 ms when none is set, for the sessions' close grace.
    this.#tickEvery = Number.isFinite(shortest) ? Math.max(10, Math.min(250, Math.floor(shortest / 4))) : 250;
  }

  get sessions(): number {
    return this.#sessions.size;
  }

  accept(socket: net.Socket, head?: Buffer, peer?: PeerIdentity): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    // The guard stands in for the socket: node's session then reads and writes through JS, where
    // the proxy can see it. The h2c preface the HTTP/1.1 side read goes first.
    const guard = new FrameGuard(socket, head, this.maxHeaderListSize);
    this.#accepting = guard;
    this.#acceptingPeer = peer;
    try {
      this.#server.emit('connection', guard);
    } finally {
      this.#accepting = undefined;
      this.#acceptingPeer = undefined;
    }
  }

  drain(): void {
    this.#draining = true;
    // close() sends GOAWAY (NO_ERROR): the client opens no new streams, open ones finish, and
    // the session ends when the last one does.
    for (const s of this.#sessions.keys()) s.close();
  }

  close(): void {
    this.#closed = true;
    this.#draining = true;
    for (const cs of [...this.#sessions.values()]) {
      cs.session.destroy();
      cs.guard.socket.destroy();
    }
    this.#stopTicker();
  }

  makeLeg(x: Exchange, upstream: Upstream): UpstreamLeg {
    return upstream.protocol === 'h2' ? new H2Leg(x, upstream) : new H1Leg(x, upstream);
  }

  /** A client resets streams faster than allowed: GOAWAY (ENHANCE_YOUR_CALM) and disconnect. */
  calm(cs: ClientSession, resets: number): void {
    this.#logger.warn(
      {
        code: 'PILLION_ERR_PROXY_BAD_REQUEST',
        listener: this.c.listener,
        remote: cs.remote,
        resets,
      },
      'HTTP/2 client reset streams faster than http2.maxResetsPerSecond; connection closed',
    );
    cs.session.destroy(new Error('too many stream resets'), NGHTTP2_ENHANCE_YOUR_CALM);
  }

  /**
   * The guard saw the connection end: nghttp2 sent GOAWAY with an error code, or the client's header
   * blocks went past what the proxy reads. The session is destroyed, which cancels its streams and
   * with them their upstream exchanges.
   */
  fault(cs: ClientSession, fault: GuardFault, code: number): void {
    const stats = this.c.stats;
    if (fault === 'goaway') {
      // Counted even when the session is already gone: node ends some sessions itself (too many
      // invalid frames), and Rapid Reset's GOAWAY is one of these too. The guard reports once.
      stats.refused('h2_protocol_error');
      if (cs.session.destroyed) return;
      cs.protocolError = true;
      this.#logger.debug(
        {
          code: 'PILLION_ERR_PROXY_HTTP2_PROTOCOL',
          listener: this.c.listener,
          remote: cs.remote,
          h2code: code,
        },
        'HTTP/2 client broke the protocol; connection closed',
      );
      cs.session.destroy();
      return;
    }
    if (cs.session.destroyed) return;
    stats.refused(fault === 'header-block' ? 'h2_header_block_too_large' : 'h2_malformed_field');
    this.#logger.warn(
      { code: 'PILLION_ERR_PROXY_HTTP2_PROTOCOL', listener: this.c.listener, remote: cs.remote, fault },
      fault === 'header-block'
        ? 'HTTP/2 client sent a header block larger than http2.maxHeaderListSize allows; connection closed'
        : 'HTTP/2 client sent too many malformed requests; connection closed',
    );
    cs.session.destroy(new Error(fault), NGHTTP2_ENHANCE_YOUR_CALM);
  }

  #onSession = (session: ServerHttp2Session): void => {
    const guard = this.#accepting;
    if (guard === undefined) {
      // Only connections handed over by accept() reach this server.
      session.destroy();
      return;
    }
    const cs = new ClientSession(this, session, guard, this.#acceptingPeer);
    guard.owner = cs;
    this.#sessions.set(session, cs);
    const c = this.c;
    c.stats.connections.value++;
    session.on('error', (err) => {
      this.#logger.debug(
        { listener: c.listener, remote: cs.remote, err: err.message },
        'HTTP/2 session error',
      );
    });
    session.on('close', () => {
      if (!this.#sessions.delete(session)) return;
      c.stats.connections.value--;
      if (this.#sessions.size === 0) this.#stopTicker();
    });
    // A stream's own session is gone once it is destroyed, which may be before node announces it.
    session.on(
      'stream',
      (stream: ServerHttp2Stream, headers: unknown, flags: number, raw: readonly string[]) =>
        this.#onStream(cs, stream, headers, flags, raw),
    );
    // Whatever else ends it, a session ends when its client's side of the connection does: HTTP/2
    // has no use for half-closed connections, and its streams would otherwise wait for good.
    guard.once('end', () => session.destroy());
    session.setLocalWindowSize(CONNECTION_WINDOW);
    if (this.#ticker === undefined) {
      this.#ticker = setInterval(this.#tick, this.#tickEvery);
      this.#ticker.unref();
    }
    if (this.#draining) session.close();
  };

  #onStream(
    cs: ClientSession,
    stream: ServerHttp2Stream,
    _headers: unknown,
    _flags: number,
    rawHeaders: readonly string[],
  ): void {
    if (stream.destroyed) {
      // Reset by the client before node announced it (both frames came in one read).
      stream.on('error', noop);
      cs.clientReset();
      return;
    }
    cs.open++;
    stream.once('close', () => cs.open--);
    new Exchange(stream, this, cs).start(rawHeaders);
  }

  #tick = (): void => {
    const now = Date.now();
    for (const x of this.active) x.tick(now);
    const idle = this.c.timeouts.idle;
    for (const cs of this.#sessions.values()) cs.tick(now, idle);
  };

  #stopTicker(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }
}

function noop(): void {}
