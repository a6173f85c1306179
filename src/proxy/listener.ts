// One listening socket of the proxy: plain, TLS or mutual TLS, HTTP (HTTP/1.1 and HTTP/2) or TCP. It owns its
// connections, so it can switch them to a new config on reload and drain them on shutdown.

import net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { listenOn } from '../lib/address.js';
import type { Clock } from '../lib/clock.js';
import type { Registry } from '../metrics/index.js';
import type { ListenerConfig, MtlsMode } from './config.js';
import type { H2Handler } from './http2/index.js';
import { type Http1Context, ServerConnection } from './http1/server-connection.js';
import type { PeerIdentity } from './peer.js';
import { type TcpContext, forwardTcp } from './tcp-forwarder.js';
import { CertStore, tlsParameters } from './tls/index.js';
import type { MutualTlsServer } from './tls/mutual.js';

export interface ListenerParts {
  http: Http1Context | undefined;
  tcp: TcpContext | undefined;
  h2: H2Handler | undefined;
}

/** What a mutual-TLS listener needs beyond its config. */
export interface MutualTlsDeps {
  section: string;
  forwardClientCert: boolean;
  metrics: Registry;
  clock: Clock;
  /** The runtime's shared services, where the workload identity's hub is. */
  services: Map<string, unknown>;
}

export class ProxyListener {
  readonly name: string;
  readonly config: ListenerConfig & { mtlsMode?: MtlsMode };
  #server: net.Server | undefined;
  #parts: ListenerParts;
  #certs: CertStore | undefined;
  #mtls: MutualTlsServer | undefined;
  #mutualDeps: MutualTlsDeps | undefined;
  #logger: Logger;
  #maxConnections: number;
  /** HTTP/2 handlers replaced by a reload, kept until their last session closes. */
  #retiredH2 = new Set<H2Handler>();

  constructor(
    name: string,
    config: ListenerConfig & { mtlsMode?: MtlsMode },
    parts: ListenerParts,
    opts: { logger: Logger; maxConnections: number; mutual?: MutualTlsDeps },
  ) {
    this.name = name;
    this.config = config;
    this.#mutualDeps = opts.mutual;
    this.#parts = parts;
    this.#logger = opts.logger;
    this.#maxConnections = opts.maxConnections;
  }

  get address(): net.AddressInfo | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const mtlsMode = cfg.mtlsMode ?? 'DISABLE';
    if (mtlsMode !== 'DISABLE') {
      this.#server = await this.#mutualServer(mtlsMode);
    } else if (cfg.tls) {
      const alpn = cfg.mode === 'tcp' ? [] : cfg.http2 ? ['h2', 'http/1.1'] : ['http/1.1'];
      this.#certs = await CertStore.load(
        {
          certificates: cfg.tls.certificates,
          ...tlsParameters(cfg.tls),
          clientCertificate: cfg.tls.clientCertificate,
          alpn,
        },
        { logger: this.#logger },
      );
      const { createServer } = await import('node:tls');
      const server = createServer({ ...this.#certs.serverOptions(), allowHalfOpen: true, noDelay: true });
      server.on('secureConnection', (s: tls.TLSSocket) => {
        // No renegotiation (TLS 1.2 and below; 1.3 has none): a client that starts a new
        // handshake on this connection loses the connection (see #onTlsError).
        s.disableRenegotiation();
        s.on('error', (err: NodeJS.ErrnoException) => this.#onTlsError(s, err));
        this.#accept(s, s.alpnProtocol === 'h2');
      });
      // Handshake failures (wrong SNI, bad client certificate, scanners) are the client's problem.
      server.on('tlsClientError', (err) =>
        this.#logger.debug({ listener: this.name, err: err.message }, 'TLS handshake failed'),
      );
      this.#certs.watch(server);
      this.#server = server;
    } else {
      this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.#accept(s, false));
    }
    this.#server.maxConnections = this.#maxConnections;
    const server = this.#server;
    await listenOn(server, cfg.address, 'PILLION_ERR_PROXY_LISTEN', `listener ${this.name}`);
    server.on('error', (err) =>
      this.#logger.error({ listener: this.name, err: err.message }, 'listener error'),
    );
  }

  /** STRICT: the TLS server itself; PERMISSIVE: a TCP server that sniffs each connection's first byte. */
  async #mutualServer(mode: 'STRICT' | 'PERMISSIVE'): Promise<net.Server> {
    const deps = this.#mutualDeps;
    if (deps === undefined) throw new Error(`listener ${this.name}: mutual TLS without its dependencies`);
    const [{ MutualTlsServer }, { identityHub }] = await Promise.all([
      import('./tls/mutual.js'),
      import('../identity/index.js'),
    ]);
    const cfg = this.config;
    const mtls = new MutualTlsServer(identityHub(deps.services), {
      section: deps.section,
      listener: this.name,
      mode,
      alpn: cfg.mode === 'tcp' ? [] : cfg.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      forwardClientCert: deps.forwardClientCert,
      logger: this.#logger,
      metrics: deps.metrics,
      clock: deps.clock,
      accept: (socket, h2, peer) => {
        if (peer !== undefined) {
          const s = socket as tls.TLSSocket;
          s.on('error', (err: NodeJS.ErrnoException) => this.#onTlsError(s, err));
        }
        this.#accept(socket, h2, peer);
      },
    });
    this.#mtls = mtls;
    if (mode === 'STRICT') return mtls.server;
    return net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => mtls.sniff(s));
  }

  /** Applies reloaded routes, upstreams and limits; open connections use them for their next request. */
  setParts(parts: ListenerParts): void {
    const old = this.#parts;
    this.#parts = parts;
    if (old.http && parts.http) for (const c of [...old.http.connections]) c.setContext(parts.http);
    // Pairs keep their old context (and upstream) until they close; sharing the set keeps them
    // counted and reachable by drain and close.
    if (old.tcp && parts.tcp) parts.tcp.sockets = old.tcp.sockets;
    // Sessions stay with the handler that accepted them; GOAWAY moves their clients to new
    // connections, which the new handler takes. Until the old sessions end they still count.
    if (old.h2 && old.h2 !== parts.h2) {
      old.h2.drain();
      if (old.h2.sessions > 0) this.#retiredH2.add(old.h2);
    }
    this.#pruneRetired();
  }

  /** Stops accepting, asks every connection to finish its exchange and close. */
  drain(): void {
    this.#server?.close();
    const p = this.#parts;
    if (p.http) {
      p.http.draining = true;
      for (const c of [...p.http.connections]) c.drain();
    }
    p.h2?.drain();
    for (const h of this.#retiredH2) h.drain();
    if (p.tcp) for (const s of p.tcp.sockets) s.end();
  }

  /** Open client connections, of every protocol. */
  get openConnections(): number {
    const p = this.#parts;
    this.#pruneRetired();
    let retired = 0;
    for (const h of this.#retiredH2) retired += h.sessions;
    return (p.http?.connections.size ?? 0) + (p.h2?.sessions ?? 0) + retired + (p.tcp?.sockets.size ?? 0);
  }

  /** Closes everything now. */
  close(): void {
    this.#server?.close();
    this.#certs?.close();
    this.#mtls?.close();
    const p = this.#parts;
    if (p.http) for (const c of [...p.http.connections]) c.socket.destroy();
    p.h2?.close();
    for (const h of this.#retiredH2) h.close();
    this.#retiredH2.clear();
    if (p.tcp) for (const s of [...p.tcp.sockets]) s.destroy();
  }

  tick(now: number): void {
    const http = this.#parts.http;
    if (http) for (const c of http.connections) c.tick(now);
  }

  /**
   * An error on a TLS connection after its handshake. A client asking to renegotiate is seen as
   * its new handshake starts, and the connection closed before that handshake can go on: a
   * renegotiation would cost the proxy a handshake at the client's will, and could change the
   * client certificate under a connection already authorized.
   */
  #onTlsError(socket: tls.TLSSocket, err: NodeJS.ErrnoException): void {
    if (err.code !== 'ERR_TLS_RENEGOTIATION_DISABLED') return;
    socket.destroy();
    (this.#parts.http?.stats ?? this.#parts.tcp?.stats)?.refused('tls_renegotiation');
  }

  /** Forgets replaced HTTP/2 handlers whose sessions have all closed. */
  #pruneRetired(): void {
    for (const h of this.#retiredH2) if (h.sessions === 0) this.#retiredH2.delete(h);
  }

  #accept(socket: net.Socket, h2: boolean, peer?: PeerIdentity): void {
    const p = this.#parts;
    if (p.tcp) forwardTcp(socket, p.tcp);
    else if (h2 && p.h2) p.h2.accept(socket, undefined, peer);
    else if (p.http) new ServerConnection(socket, p.http, peer);
    else socket.destroy();
  }
}
