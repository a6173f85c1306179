// HTTP/2 sessions to upstreams that speak it (gRPC): one per upstream endpoint, shared by every
// stream sent there, made on first use and made again once it closes, fails or is told to go away.

import http2, { type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { type Endpoint, mutualTlsOptions } from '../upstream/endpoints.js';
import type { Upstream } from '../upstream/upstream.js';

export type SessionFailure = 'refused' | 'timeout';

/** One session and what became of its connection attempt. */
export class UpstreamSession {
  readonly session: ClientHttp2Session;
  readonly endpoint: Endpoint;
  connected = false;
  /** Set when the session failed before it connected. */
  failure: SessionFailure | undefined;
  error: Error | undefined;
  /** Streams open on it, and when the last one closed (0 while one is open). */
  streams = 0;
  idleSince = 0;

  constructor(session: ClientHttp2Session, endpoint: Endpoint) {
    this.session = session;
    this.endpoint = endpoint;
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed && this.failure === undefined;
  }

  streamOpened(): void {
    this.streams++;
    this.idleSince = 0;
  }

  streamClosed(): void {
    if (--this.streams === 0) this.idleSince = Date.now();
  }
}

export interface SessionCacheOptions {
  connectTimeoutMs: number;
  /** A session with no streams for this long is closed. */
  idleTimeoutMs: number;
  logger: Logger;
}

export class ClientSessions {
  #opts: SessionCacheOptions;
  #byKey = new Map<string, UpstreamSession>();
  #closed = false;
  /**
   * Closes sessions idle for idleTimeoutMs. Not node's session timeout: its timer is not cleared
   * when a session is destroyed, and keeps every session an upstream closed in memory until it fires.
   */
  #sweep: NodeJS.Timeout;

  constructor(opts: SessionCacheOptions) {
    this.#opts = opts;
    this.#sweep = setInterval(() => this.#closeIdle(), Math.min(1000, Math.max(10, opts.idleTimeoutMs / 2)));
    this.#sweep.unref();
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The session to this endpoint, connecting one when there is none that can take streams. */
  get(upstream: Upstream, ep: Endpoint): UpstreamSession {
    const key = `${upstream.name}|${ep.key}`;
    const existing = this.#byKey.get(key);
    if (existing !== undefined && existing.usable) return existing;
    const s = this.#connect(upstream, ep, key);
    this.#byKey.set(key, s);
    return s;
  }

  /**
   * Closes every session, for good: gracefully (open streams finish) or at once. Sessions belong
   * to their upstream, so they outlive a reload that keeps it and close with it when it goes.
   */
  closeAll(graceful: boolean): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const s of [...this.#byKey.values()]) {
      if (graceful) s.session.close();
      else s.session.destroy();
    }
    this.#byKey.clear();
  }

  #connect(upstream: Upstream, ep: Endpoint, key: string): UpstreamSession {
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
    const forget = () => {
      if (this.#byKey.get(key) === s) this.#byKey.delete(key);
    };
    const timer = setTimeout(() => {
      if (s.connected) return;
      s.failure = 'timeout';
      forget();
      session.destroy();
    }, this.#opts.connectTimeoutMs);
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      s.connected = true;
    });
    session.on('error', (err) => {
      if (!s.connected && s.failure === undefined) {
        s.failure = 'refused';
        s.error = err;
      }
      forget();
      this.#opts.logger.debug(
        { upstream: upstream.name, endpoint: ep.key, err: err.message },
        'upstream HTTP/2 session failed',
      );
    });
    session.on('goaway', forget);
    session.on('close', () => {
      clearTimeout(timer);
      forget();
    });
    // Cached sessions alone must not keep the process alive; the client sockets they serve do.
    session.unref();
    if (this.#closed) session.destroy();
    return s;
  }

  #closeIdle(): void {
    const cutoff = Date.now() - this.#opts.idleTimeoutMs;
    for (const [key, s] of this.#byKey) {
      if (s.streams === 0 && s.idleSince !== 0 && s.idleSince <= cutoff) {
        this.#byKey.delete(key);
        s.session.close();
      }
    }
  }
}
