// The HTTP/2 sessions of one upstream that speaks it: per endpoint, streams are multiplexed on a
// session up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS, more sessions are opened up to
// pool.maxConnections, and beyond that requests wait (pool.maxPending at most, then 503 UO). A
// session is made on first use and again once one closes, fails or is told to go away; after
// pool.maxRequestsPerConnection streams it takes no more and is closed (GOAWAY) when they end.

import http2, { type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { type Endpoint, mutualTlsOptions } from '../upstream/endpoints.js';
import type { PoolOccupancy } from '../upstream/h1-pool.js';
import type { Upstream } from '../upstream/upstream.js';

export type SessionFailure = 'refused' | 'timeout';

/** Streams a session takes at most, whatever its peer allows (nghttp2 would queue the rest unseen). */
const MAX_STREAMS = 1000;

/** One session and what became of its connection attempt. */
export class UpstreamSession {
  readonly session: ClientHttp2Session;
  readonly endpoint: Endpoint;
  connected = false;
  /** The peer's first SETTINGS came: its stream limit is known. Until then the session takes one stream. */
  settled = false;
  /** Set when the session failed before it connected. */
  failure: SessionFailure | undefined;
  error: Error | undefined;
  /** Streams open on it, streams opened in all, and when the last one closed (0 while one is open). */
  streams = 0;
  opened = 0;
  idleSince = 0;
  /** It has carried maxRequestsPerConnection streams: it takes no more and closes once they end. */
  retiring = false;

  constructor(session: ClientHttp2Session, endpoint: Endpoint) {
    this.session = session;
    this.endpoint = endpoint;
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed && this.failure === undefined && !this.retiring;
  }

  /** Streams it may carry at once: the peer's limit once known (bounded), else one. */
  get limit(): number {
    if (!this.settled) return 1;
    const peer = this.session.remoteSettings?.maxConcurrentStreams ?? 100;
    return Math.max(0, Math.min(peer, MAX_STREAMS));
  }

  get free(): boolean {
    return this.usable && this.streams < this.limit;
  }
}

/** A request waiting for a stream on a session to its endpoint. */
export interface SessionUser {
  /** A session to open the stream on. */
  onSession(s: UpstreamSession): void;
  /** No session will come: the endpoint's failed to connect, or the upstream was closed. */
  onSessionFailed(failure: SessionFailure | 'closed', err: Error | undefined, ep: Endpoint): void;
}

/** The answer of acquire() when the request waits, and when it cannot even wait. */
export const QUEUED = 0;
export const OVERFLOW = 1;

export interface SessionCacheOptions {
  connectTimeoutMs: number;
  /** A session with no streams for this long is closed. */
  idleTimeoutMs: number;
  /** Sessions per endpoint at most. */
  maxConnections: number;
  /** Requests waiting for a stream at most. */
  maxPending: number;
  /** Streams a session carries in all before it is closed; 0 no limit. */
  maxRequestsPerConnection: number;
  logger: Logger;
}

export class ClientSessions {
  #opts: SessionCacheOptions;
  #upstream: Upstream;
  /** Sessions by endpoint key. */
  #byKey = new Map<string, UpstreamSession[]>();
  #waiting: { user: SessionUser; ep: Endpoint }[] = [];
  #closed = false;
  /**
   * Closes sessions idle for idleTimeoutMs. Not node's session timeout: its timer is not cleared
   * when a session is destroyed, and keeps every session an upstream closed in memory until it fires.
   */
  #sweep: NodeJS.Timeout;

  constructor(upstream: Upstream, opts: SessionCacheOptions) {
    this.#upstream = upstream;
    this.#opts = opts;
    this.#sweep = setInterval(() => this.#closeIdle(), Math.min(1000, Math.max(10, opts.idleTimeoutMs / 2)));
    this.#sweep.unref();
  }

  /** Sessions open or opening. */
  get size(): number {
    let n = 0;
    for (const list of this.#byKey.values()) n += list.length;
    return n;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get occupancy(): PoolOccupancy {
    let open = 0;
    let idle = 0;
    for (const list of this.#byKey.values())
      for (const s of list) {
        open++;
        if (s.streams === 0) idle++;
      }
    return { open, idle, waiting: this.#waiting.length };
  }

  /**
   * A session to this endpoint with room for one more stream, connecting one when none has room
   * and fewer than maxConnections are open; else the user waits (QUEUED) or, past maxPending,
   * is refused (OVERFLOW).
   */
  acquire(ep: Endpoint, user: SessionUser): UpstreamSession | typeof QUEUED | typeof OVERFLOW {
    const list = this.#byKey.get(ep.key);
    let connecting = false;
    if (list !== undefined) {
      for (let i = 0; i < list.length; i++) {
        const s = list[i]!;
        if (s.free) return s;
        if (s.usable && !s.settled) connecting = true;
      }
    }
    // A session still waiting for its peer's SETTINGS will most likely take this stream too:
    // wait for it rather than open one session per request of a burst.
    if (!connecting && (list?.length ?? 0) < this.#opts.maxConnections && !this.#closed)
      return this.#connect(ep);
    if (this.#waiting.length >= this.#opts.maxPending) return OVERFLOW;
    this.#waiting.push({ user, ep });
    return QUEUED;
  }

  /** Stops waiting (the exchange ended or moved on). */
  cancel(user: SessionUser): void {
    const i = this.#waiting.findIndex((w) => w.user === user);
    if (i !== -1) this.#waiting.splice(i, 1);
  }

  streamOpened(s: UpstreamSession): void {
    s.streams++;
    s.opened++;
    s.idleSince = 0;
    const max = this.#opts.maxRequestsPerConnection;
    if (max > 0 && s.opened >= max) s.retiring = true;
  }

  streamClosed(s: UpstreamSession): void {
    if (--s.streams === 0) {
      s.idleSince = Date.now();
      // Closed once its last stream has ended: a GOAWAY sent earlier would refuse streams whose
      // HEADERS node has not flushed yet.
      if (s.retiring && !s.session.closed) {
        this.#forget(s);
        s.session.close();
      }
    }
    this.#serve(s.endpoint);
  }

  /**
   * Closes every session, for good: gracefully (open streams finish) or at once. Sessions belong
   * to their upstream, so they outlive a reload that keeps it and close with it when it goes.
   */
  closeAll(graceful: boolean): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const list of [...this.#byKey.values()])
      for (const s of list) {
        if (graceful) s.session.close();
        else s.session.destroy();
      }
    this.#byKey.clear();
    // Nothing will be opened any more: waiting requests fail as a closed upstream's do.
    const waiting = this.#waiting.splice(0);
    for (const w of waiting) w.user.onSessionFailed('closed', undefined, w.ep);
  }

  /** Hands sessions with room to requests waiting for this endpoint, connecting one if none has room. */
  #serve(ep: Endpoint): void {
    if (this.#waiting.length === 0) return;
    for (let i = 0; i < this.#waiting.length;) {
      const w = this.#waiting[i]!;
      if (w.ep !== ep) {
        i++;
        continue;
      }
      const got = this.#room(ep);
      if (got === undefined) return;
      this.#waiting.splice(i, 1);
      w.user.onSession(got);
    }
  }

  /** A session to ep with room now (a new one if allowed), or undefined. */
  #room(ep: Endpoint): UpstreamSession | undefined {
    const list = this.#byKey.get(ep.key);
    let connecting = false;
    if (list !== undefined)
      for (const s of list) {
        if (s.free) return s;
        if (s.usable && !s.settled) connecting = true;
      }
    if (!connecting && (list?.length ?? 0) < this.#opts.maxConnections && !this.#closed)
      return this.#connect(ep);
    return undefined;
  }

  #forget(s: UpstreamSession): void {
    const list = this.#byKey.get(s.endpoint.key);
    if (list === undefined) return;
    const i = list.indexOf(s);
    if (i === -1) return;
    list.splice(i, 1);
    if (list.length === 0) this.#byKey.delete(s.endpoint.key);
  }

  #connect(ep: Endpoint): UpstreamSession {
    const upstream = this.#upstream;
    const t = upstream.tls;
    const host = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip;
    const opts: SecureClientSessionOptions = {
      settings: { enablePush: false },
      peerMaxConcurrentStreams: 100,
    };
    if (t !== undefined) {
      // No SNI for an IP literal (TLS forbids it); the certificate is then checked against the IP.
      opts.servername = t.serverName ?? (isIP(ep.host) ? '' : ep.host);
      if (t.mutual !== undefined) Object.assign(opts, mutualTlsOptions(t.mutual));
      else {
        if (t.ca !== undefined) opts.ca = t.ca;
        opts.rejectUnauthorized = !t.insecureSkipVerify;
      }
      opts.ALPNProtocols = ['h2'];
    }
    const session = http2.connect(`${t ? 'https' : 'http'}://${host}:${ep.port}`, opts);
    const s = new UpstreamSession(session, ep);
    let list = this.#byKey.get(ep.key);
    if (list === undefined) this.#byKey.set(ep.key, (list = []));
    list.push(s);
    const gone = () => {
      this.#forget(s);
      // Requests waiting for this endpoint get another session (or this one's failure).
      if (s.failure !== undefined) this.#failWaiting(s);
      else this.#serve(ep);
    };
    const timer = setTimeout(() => {
      if (s.connected) return;
      s.failure = 'timeout';
      session.destroy();
      gone();
    }, this.#opts.connectTimeoutMs);
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      s.connected = true;
    });
    session.once('remoteSettings', () => {
      s.settled = true;
      this.#serve(ep);
    });
    session.on('error', (err) => {
      if (!s.connected && s.failure === undefined) {
        s.failure = 'refused';
        s.error = err;
      }
      this.#opts.logger.debug(
        { upstream: upstream.name, endpoint: ep.key, err: err.message },
        'upstream HTTP/2 session failed',
      );
    });
    session.on('goaway', () => {
      // No new streams on it; its open ones finish.
      s.retiring = true;
      gone();
    });
    session.on('close', () => {
      clearTimeout(timer);
      if (!s.connected && s.failure === undefined) s.failure = 'refused';
      gone();
    });
    // Cached sessions alone must not keep the process alive; the client sockets they serve do.
    session.unref();
    if (this.#closed) session.destroy();
    return s;
  }

  /** A session to ep failed to connect: the requests waiting for ep fail with it. */
  #failWaiting(s: UpstreamSession): void {
    const ep = s.endpoint;
    for (let i = 0; i < this.#waiting.length;) {
      const w = this.#waiting[i]!;
      if (w.ep !== ep) {
        i++;
        continue;
      }
      this.#waiting.splice(i, 1);
      w.user.onSessionFailed(s.failure ?? 'refused', s.error, ep);
    }
  }

  #closeIdle(): void {
    const cutoff = Date.now() - this.#opts.idleTimeoutMs;
    for (const list of [...this.#byKey.values()])
      for (const s of [...list]) {
        if (s.streams === 0 && s.idleSince !== 0 && s.idleSince <= cutoff) {
          this.#forget(s);
          s.session.close();
        }
      }
  }
}
