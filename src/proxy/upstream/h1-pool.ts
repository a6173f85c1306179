// A keep-alive pool of raw HTTP/1.1 connections to one upstream's endpoints. Callers are called
// back (no promise per request); a connection's socket handlers are attached once, at connect,
// and forward to whichever exchange owns the connection at the time. Bounded: connections per
// endpoint, idle connections kept, and requests waiting for a connection.

import net from 'node:net';
import { connectEndpoint, type Endpoint, type EndpointTls, type Endpoints } from './endpoints.js';

/** The exchange using a connection; gets its socket's events while it holds it. */
export interface ConnectionOwner {
  onUpstreamData(buf: Buffer): void;
  onUpstreamDrain(): void;
  /** The connection ended or failed; err is set on a socket error. */
  onUpstreamClose(err: Error | undefined): void;
}

export type ConnectFailure = 'refused' | 'timeout' | 'no-endpoint' | 'overflow';

export interface PoolUser {
  onUpstreamConnection(conn: UpstreamConnection): void;
  onUpstreamConnectError(kind: ConnectFailure, err: Error | undefined, endpoint: Endpoint | undefined): void;
}

/** What a pool holds: connections open or opening, the idle ones among them, requests waiting. */
export interface PoolOccupancy {
  open: number;
  idle: number;
  waiting: number;
}

export interface PoolOptions {
  maxConnections: number;
  maxIdle: number;
  idleTimeoutMs: number;
  maxPending: number;
  /** A connection is closed after this many requests; 0 no limit. */
  maxRequestsPerConnection: number;
  connectTimeoutMs: number;
  tls?: EndpointTls & { alpn?: string[] };
}

export class UpstreamConnection {
  readonly socket: net.Socket;
  readonly endpoint: Endpoint;
  owner: ConnectionOwner | undefined;
  /** Requests sent on this connection before the current one. */
  uses = 0;
  idleSince = 0;
  closed = false;
  #pool: H1Pool;

  constructor(socket: net.Socket, endpoint: Endpoint, pool: H1Pool) {
    this.socket = socket;
    this.endpoint = endpoint;
    this.#pool = pool;
    socket.on('data', (buf: Buffer) => {
      if (this.owner) this.owner.onUpstreamData(buf);
      else socket.destroy(); // bytes on an idle connection: the upstream is confused; never reuse it
    });
    socket.on('drain', () => this.owner?.onUpstreamDrain());
    socket.on('error', (err) => this.#closed(err));
    socket.on('end', () => socket.destroy());
    socket.on('close', () => this.#closed(undefined));
  }

  #closed(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    const owner = this.owner;
    this.owner = undefined;
    this.#pool.forget(this);
    owner?.onUpstreamClose(err);
  }
}

interface EndpointState {
  active: number;
  idle: UpstreamConnection[];
}

/** Chooses the endpoint for a connection (the upstream's balancer). */
export interface EndpointPicker {
  pick(hash: string, avoid: Endpoint | undefined, subset?: string): Endpoint | undefined;
}

export class H1Pool {
  readonly endpoints: Endpoints;
  #picker: EndpointPicker;
  #opts: PoolOptions;
  #state = new Map<string, EndpointState>();
  #waiting: PoolUser[] = [];
  /** Connects in progress, by the user they are for. */
  #connecting = new Map<PoolUser, { user: PoolUser | undefined }>();
  #sweep: NodeJS.Timeout;
  #closed = false;

  constructor(endpoints: Endpoints, opts: PoolOptions, picker: EndpointPicker) {
    this.endpoints = endpoints;
    this.#picker = picker;
    this.#opts = opts;
    this.#sweep = setInterval(() => this.#closeStale(), Math.min(1000, Math.max(10, opts.idleTimeoutMs / 2)));
    this.#sweep.unref();
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get occupancy(): PoolOccupancy {
    let open = 0;
    let idle = 0;
    for (const st of this.#state.values()) {
      open += st.active;
      idle += st.idle.length;
    }
    return { open, idle, waiting: this.#waiting.length };
  }

  /** A connection for `user`, to the endpoint the balancer picks for `hash`, avoiding `avoid` where it can. */
  acquire(user: PoolUser, hash = '', avoid?: Endpoint, subset?: string): void {
    const ep = this.#closed ? undefined : this.#picker.pick(hash, avoid, subset);
    if (!ep) {
      user.onUpstreamConnectError('no-endpoint', undefined, undefined);
      return;
    }
    const st = this.#stateOf(ep.key);
    let conn = st.idle.pop();
    while (conn && conn.closed) conn = st.idle.pop();
    if (conn) {
      conn.uses++;
      user.onUpstreamConnection(conn);
      return;
    }
    if (st.active < this.#opts.maxConnections) {
      this.#connect(ep, st, user);
      return;
    }
    if (this.#waiting.length >= this.#opts.maxPending) {
      user.onUpstreamConnectError('overflow', undefined, ep);
      return;
    }
    this.#waiting.push(user);
  }

  /** Stops waiting for a connection (the client went away, or its request timed out). */
  cancel(user: PoolUser): void {
    const i = this.#waiting.indexOf(user);
    if (i !== -1) this.#waiting.splice(i, 1);
    // A connect it started goes on for the pool, but must not call the user back: by then the
    // user may be waiting for a connection for its next request, which that outcome is not for.
    const pending = this.#connecting.get(user);
    if (pending !== undefined) {
      pending.user = undefined;
      this.#connecting.delete(user);
    }
  }

  /** Returns a connection after a complete exchange; reusable=false closes it. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    conn.owner = undefined;
    if (conn.closed) return;
    const max = this.#opts.maxRequestsPerConnection;
    if (!reusable || this.#closed || (max > 0 && conn.uses + 1 >= max)) {
      conn.socket.destroy();
      return;
    }
    // The last owner may have paused reading for its client's backpressure; a paused idle socket
    // would neither see the upstream close it nor deliver the next owner's response.
    if (conn.socket.isPaused()) conn.socket.resume();
    const next = this.#waiting.shift();
    if (next) {
      conn.uses++;
      next.onUpstreamConnection(conn);
      return;
    }
    const st = this.#stateOf(conn.endpoint.key);
    if (st.idle.length >= this.#opts.maxIdle) {
      conn.socket.destroy();
      return;
    }
    conn.idleSince = Date.now();
    st.idle.push(conn);
  }

  /** Called by a connection when it closes. */
  forget(conn: UpstreamConnection): void {
    const st = this.#state.get(conn.endpoint.key);
    if (!st) return;
    st.active--;
    const i = st.idle.indexOf(conn);
    if (i !== -1) st.idle.splice(i, 1);
    // A slot opened: serve a waiting request.
    const next = this.#waiting.shift();
    if (next) this.acquire(next);
  }

  /**
   * Lets the pool go (its upstream was replaced or removed by a reload, or the proxy stops).
   * Requests waiting for a connection are answered now, as no endpoint is left: nothing else would
   * call them back before the exchanges holding the connections end, which may be never. So is
   * every later acquire. Connects in progress finish for their users; connections in use are
   * closed when they are released.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const st of this.#state.values()) for (const c of st.idle.splice(0)) c.socket.destroy();
    this.endpoints.close();
    for (const user of this.#waiting.splice(0))
      user.onUpstreamConnectError('no-endpoint', undefined, undefined);
  }

  #stateOf(key: string): EndpointState {
    let st = this.#state.get(key);
    if (!st) {
      st = { active: 0, idle: [] };
      this.#state.set(key, st);
    }
    return st;
  }

  #connect(ep: Endpoint, st: EndpointState, user: PoolUser): void {
    st.active++;
    const t = this.#opts.tls;
    const socket = connectEndpoint(ep, t, t?.alpn ?? ['http/1.1']);
    let settled = false;
    const pending = { user: user as PoolUser | undefined };
    this.#connecting.set(user, pending);
    const timer = setTimeout(() => fail('timeout', undefined), this.#opts.connectTimeoutMs);
    timer.unref();
    const fail = (kind: ConnectFailure, err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      st.active--;
      if (pending.user !== undefined) {
        if (this.#connecting.get(user) === pending) this.#connecting.delete(user);
        pending.user.onUpstreamConnectError(kind, err, ep);
      }
      const next = this.#waiting.shift();
      if (next) this.acquire(next);
    };
    socket.once('error', (err) => fail('refused', err));
    socket.once(t ? 'secureConnect' : 'connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('error');
      const conn = new UpstreamConnection(socket, ep, this);
      if (pending.user !== undefined) {
        if (this.#connecting.get(user) === pending) this.#connecting.delete(user);
        pending.user.onUpstreamConnection(conn);
      } else this.release(conn, true);
    });
  }

  #closeStale(): void {
    const cutoff = Date.now() - this.#opts.idleTimeoutMs;
    for (const st of this.#state.values()) {
      for (let i = st.idle.length - 1; i >= 0; i--) {
        const c = st.idle[i]!;
        if (c.idleSince <= cutoff) {
          st.idle.splice(i, 1);
          c.socket.destroy();
        }
      }
    }
  }
}
