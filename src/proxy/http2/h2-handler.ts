// The HTTP/2 side of an HTTP listener: one node:http2 server (never listening itself) is handed
// the connections that negotiated h2 by ALPN or opened with the h2c preface. It bounds what a
// client may do (concurrent streams, header list size, invalid frames, refused streams, and
// resets per second against Rapid Reset), and turns each stream into an Exchange.

import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { unmapIPv4 } from '../../lib/address.js';
import type { Http2Config } from '../config.js';
import type { Http1Context } from '../http1/server-connection.js';
import type { Upstream } from '../upstream/upstream.js';
import { Exchange, type Peer, type Shared, type UpstreamLeg } from './exchange.js';
import { H1Leg } from './h1-leg.js';
import { H2Leg } from './h2-leg.js';
import { resetStream } from './reset-stream.js';
import type { H2Handler } from './types.js';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_REFUSED_STREAM } = http2.constants;

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
class ClientSession implements Peer {
  readonly session: ServerHttp2Session;
  readonly clientIp: string;
  readonly remote: string;
  open = 0;
  #handler: Http2Handler;
  #windowStart = 0;
  #resets = 0;

  constructor(handler: Http2Handler, session: ServerHttp2Session) {
    this.#handler = handler;
    this.session = session;
    const sock = session.socket;
    this.clientIp = unmapIPv4(sock.remoteAddress ?? '');
    this.remote = `${this.clientIp}:${sock.remotePort ?? 0}`;
  }

  get closing(): boolean {
    return this.session.destroyed;
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
}

class Http2Handler implements H2Handler, Shared {
  readonly c: Http1Context;
  readonly active = new Set<Exchange>();
  readonly maxResetsPerSecond: number;
  readonly maxHeaderListSize: number;
  #logger: Logger;
  #server: http2.Http2Server;
  #sessions = new Map<ServerHttp2Session, ClientSession>();
  #ticker: NodeJS.Timeout | undefined;
  #tickEvery: number;
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
    this.#server.on('stream', this.#onStream);
    const t = http.timeouts;
    const shortest = Math.min(...[t.request, t.upstreamResponse].filter((ms) => ms > 0));
    // Deadlines are checked at a quarter of the shortest one (10 ms..250 ms), as the HTTP/1.1
    // connections are; none at all when neither timeout is set.
    this.#tickEvery = Number.isFinite(shortest) ? Math.max(10, Math.min(250, Math.floor(shortest / 4))) : 0;
  }

  get sessions(): number {
    return this.#sessions.size;
  }

  accept(socket: Duplex, head?: Buffer): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    // The h2c preface was read by the HTTP/1.1 side; give it back so the session reads it first.
    if (head !== undefined && head.length > 0) socket.unshift(head);
    // Listeners accept half-open connections (for TCP and HTTP/1.1 bodies); HTTP/2 has no use for a
    // half-closed connection, and a session whose client has gone would otherwise stay open.
    socket.on('end', () => socket.end());
    this.#server.emit('connection', socket);
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
    for (const s of [...this.#sessions.keys()]) s.destroy();
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

  #onSession = (session: ServerHttp2Session): void => {
    const cs = new ClientSession(this, session);
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
    session.setLocalWindowSize(CONNECTION_WINDOW);
    session.setTimeout(c.timeouts.idle, () => {
      if (cs.open === 0) session.close();
    });
    if (this.#draining) {
      session.close();
      return;
    }
    if (this.#ticker === undefined && this.#tickEvery > 0) {
      this.#ticker = setInterval(this.#tick, this.#tickEvery);
      this.#ticker.unref();
    }
  };

  #onStream = (
    stream: ServerHttp2Stream,
    _headers: unknown,
    _flags: number,
    rawHeaders: readonly string[],
  ): void => {
    const cs = this.#sessions.get(stream.session as ServerHttp2Session);
    if (cs === undefined) {
      stream.on('error', () => {});
      resetStream(stream, NGHTTP2_REFUSED_STREAM);
      return;
    }
    cs.open++;
    stream.once('close', () => cs.open--);
    new Exchange(stream, this, cs).start(rawHeaders);
  };

  #tick = (): void => {
    const now = Date.now();
    for (const x of this.active) x.tick(now);
  };

  #stopTicker(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }
}
