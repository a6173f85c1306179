// An HTTP/1.1 client's request forwarded to an HTTP/2 upstream (`protocol: h2`, Istio's
// h2UpgradePolicy: UPGRADE). The HTTP/1.1 connection routes the request, then hands it to an
// HTTP/2 exchange (retries, session pool, accounting) that drives this stand-in for a server
// stream: it frames the response as HTTP/1.1 on the client's socket (Content-Length when the
// upstream gave one, else chunked; trailers as chunked trailers to a client that sent TE:
// trailers, else dropped) and feeds the exchange the request body with backpressure both ways.
// A reset, before or after the response began, closes the client's connection: never a clean end.

import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import http2, { type OutgoingHttpHeaders, type ServerStreamResponseOptions } from 'node:http2';
import type net from 'node:net';
import type { PeerIdentity } from '../peer.js';
import type { Exchange, Peer } from './exchange.js';
import { trailerAllowed } from './headers.js';

const { NGHTTP2_NO_ERROR } = http2.constants;

const F_NONE = 0;
const F_LENGTH = 1;
const F_CHUNKED = 2;
const F_CLOSE = 3;

const CRLF = Buffer.from('\r\n');

/** The HTTP/1.1 connection the client came on. */
export interface Http1ClientOwner {
  /** Pauses (true) or resumes reading the client's socket, for the request body's backpressure. */
  holdBody(paused: boolean): void;
  /**
   * The exchange is over and has recorded itself. clean: the response is complete and the
   * connection may serve the next request (closeAfter: but it must close once written).
   */
  bridgeDone(clean: boolean, closeAfter: boolean): void;
}

export interface Http1Request {
  head: boolean;
  /** HTTP/1.0: no chunked responses, the connection closes after the response. */
  http10: boolean;
  /** The response must say Connection: close (the client asked, or the proxy is draining). */
  closeAfter: boolean;
  /** The client sent TE: trailers, so response trailers go to it as chunked trailers. */
  trailers: boolean;
  /** The client sent Expect: 100-continue: it gets 100 Continue when the upstream stream opens. */
  expectContinue: boolean;
}

export class Http1Client extends EventEmitter implements Peer {
  // --- what Exchange reads of a server stream ---
  readonly id = 1;
  readonly endAfterHeaders = false;
  readonly session = undefined;
  headersSent = false;
  closed = false;
  destroyed = false;
  writableEnded = false;

  // --- Peer ---
  readonly clientIp: string;
  readonly identity: PeerIdentity | undefined;
  readonly remote: string;
  /** A client that goes away takes its connection with it (DC, not DR). */
  readonly closing = true;
  readonly protocolError = false;
  readonly uncheckable = false;

  /** The exchange driving this client (set once it is made). */
  exchange: Exchange | undefined;
  /** The response must end the connection (the client's FIN, drain). */
  closeAfter: boolean;

  #socket: net.Socket;
  #owner: Http1ClientOwner;
  #req: Http1Request;
  // request body
  #held: Buffer[] = [];
  #heldEnd = false;
  #flowing = false;
  #continued = false;
  // response
  #framing = F_NONE;
  #left = 0;
  #wantTrailers = false;

  constructor(
    socket: net.Socket,
    owner: Http1ClientOwner,
    req: Http1Request,
    clientIp: string,
    remote: string,
    identity: PeerIdentity | undefined,
  ) {
    super();
    this.#socket = socket;
    this.#owner = owner;
    this.#req = req;
    this.closeAfter = req.closeAfter || req.http10;
    this.clientIp = clientIp;
    this.remote = remote;
    this.identity = identity;
  }

  malformed(): boolean {
    return false;
  }

  clientReset(): void {}

  // --- the request body, from the connection ---------------------------------------------------

  /** A piece of the request body; false when the exchange is not taking it yet (hold reading). */
  push(chunk: Buffer): boolean {
    if (this.closed) return true;
    if (this.#flowing && this.#held.length === 0) {
      this.emit('data', chunk);
      return this.#flowing;
    }
    this.#held.push(chunk);
    return false;
  }

  /** The request body is complete. */
  pushEnd(): void {
    if (this.closed) return;
    if (this.#flowing && this.#held.length === 0) this.emit('end');
    else this.#heldEnd = true;
  }

  pause(): this {
    if (this.#flowing) {
      this.#flowing = false;
      this.#owner.holdBody(true);
    }
    return this;
  }

  resume(): this {
    if (this.closed) return this;
    if (this.#req.expectContinue && !this.#continued && !this.headersSent) {
      // The upstream stream is open and wants the body: the client may send it.
      this.#continued = true;
      this.#socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    }
    this.#flowing = true;
    while (this.#flowing && this.#held.length > 0) this.emit('data', this.#held.shift()!);
    if (!this.#flowing || this.closed) return this;
    if (this.#heldEnd) {
      this.#heldEnd = false;
      this.emit('end');
    } else this.#owner.holdBody(false);
    return this;
  }

  // --- the response, from the exchange -----------------------------------------------------------

  additionalHeaders(headers: OutgoingHttpHeaders): void {
    // 103 Early Hints pass to HTTP/1.1 clients; 100 Continue is the proxy's own (see resume).
    if (this.closed || this.headersSent || this.#req.http10 || Number(headers[':status']) !== 103) return;
    this.#socket.write(`HTTP/1.1 103 Early Hints\r\n${fields(headers)}\r\n`, 'latin1');
  }

  respond(headers: OutgoingHttpHeaders = {}, options?: ServerStreamResponseOptions): void {
    if (this.closed || this.headersSent) throw new Error('response head already sent');
    const status = Number(headers[':status']);
    const endStream = options?.endStream === true;
    this.#wantTrailers = options?.waitForTrailers === true && !endStream;
    let length = -1;
    const cl = headers['content-length'];
    if (cl !== undefined) length = Number(cl);
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n${fields(headers)}`;
    if (this.#req.head || status === 204 || status === 304) this.#framing = F_NONE;
    else if (endStream) {
      this.#framing = F_NONE;
      if (length === -1) head += 'content-length: 0\r\n';
    } else if (length >= 0) {
      this.#framing = length > 0 ? F_LENGTH : F_NONE;
      this.#left = length;
    } else if (this.#req.http10) this.#framing = F_CLOSE;
    else {
      this.#framing = F_CHUNKED;
      head += 'transfer-encoding: chunked\r\n';
    }
    if (this.#framing === F_CLOSE) this.closeAfter = true;
    if (this.closeAfter) head += 'connection: close\r\n';
    this.headersSent = true;
    this.#socket.write(`${head}\r\n`, 'latin1');
    if (endStream) this.#complete('');
  }

  write(chunk: Buffer | string): boolean {
    if (this.closed || this.writableEnded || !this.headersSent) return true;
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const n = b.length;
    // (An empty write must never become a last chunk: a reset writes one first.)
    if (n === 0 || this.#framing === F_NONE) return true;
    const s = this.#socket;
    if (this.#framing === F_CHUNKED) {
      s.cork();
      s.write(`${n.toString(16)}\r\n`, 'latin1');
      s.write(b);
      const ok = s.write(CRLF);
      s.uncork();
      return ok;
    }
    if (this.#framing === F_LENGTH) {
      if (n > this.#left) {
        // More than the upstream's Content-Length: the excess would read as the next response.
        this.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
        return true;
      }
      this.#left -= n;
    }
    return s.write(b);
  }

  end(chunk?: Buffer | string | (() => void)): this {
    if (this.closed || this.writableEnded) return this;
    if (chunk !== undefined && typeof chunk !== 'function') this.write(chunk);
    if (this.closed) return this;
    if (this.#wantTrailers) {
      this.#wantTrailers = false;
      this.emit('wantTrailers');
      return this;
    }
    this.#complete('');
    return this;
  }

  sendTrailers(headers: OutgoingHttpHeaders): void {
    if (this.closed || this.writableEnded) return;
    let t = '';
    if (this.#req.trailers)
      for (const name of Object.keys(headers)) {
        const v = headers[name];
        if (v === undefined || !trailerAllowed(name)) continue;
        for (const one of Array.isArray(v) ? v : [String(v)]) t += `${name}: ${one}\r\n`;
      }
    this.#complete(t);
  }

  /**
   * NO_ERROR after the response: the client's request body is not wanted (the connection closes
   * after the response). Any other code is a reset: the connection closes now.
   */
  close(code: number = NGHTTP2_NO_ERROR): void {
    if (this.closed) return;
    if (code === NGHTTP2_NO_ERROR && this.writableEnded) {
      this.closeAfter = true;
      return;
    }
    this.#over(false);
  }

  /** The client's connection closed or broke. */
  clientGone(): void {
    if (!this.closed) this.#over(false);
  }

  /** Deadlines of the exchange; called by the connection's ticker. */
  tick(now: number): void {
    this.exchange?.tick(now);
  }

  /** The request body broke its framing: 400/413 before the response, a closed connection after. */
  badBody(reason: string, status: 400 | 413): void {
    const x = this.exchange;
    if (x === undefined || this.closed) return;
    this.closeAfter = true;
    x.error = 'PILLION_ERR_PROXY_BAD_REQUEST';
    x.local(status, `${reason}\n`, 'LR');
  }

  #complete(trailers: string): void {
    if (this.#framing === F_CHUNKED) this.#socket.write(`0\r\n${trailers}\r\n`, 'latin1');
    else if (this.#framing === F_LENGTH && this.#left !== 0) {
      // Shorter than its Content-Length: only a closed connection says so.
      this.#over(false);
      return;
    }
    this.writableEnded = true;
    // (A body delimited by the close is complete: the connection ends after it, gracefully.)
    this.#over(true);
  }

  #over(clean: boolean): void {
    this.closed = true;
    if (!clean) this.destroyed = true;
    this.#held.length = 0;
    // After the caller's turn, as node's streams do: the exchange records itself on 'close'.
    process.nextTick(() => {
      this.emit('close');
      this.#owner.bridgeDone(clean, this.closeAfter);
    });
  }
}

/** Response fields as HTTP/1.1 lines (pseudo-headers and framing left out; the exchange has already dropped connection-specific ones). */
function fields(h: OutgoingHttpHeaders): string {
  let s = '';
  for (const name of Object.keys(h)) {
    if (name.charCodeAt(0) === 0x3a || name === 'transfer-encoding' || name === 'connection') continue;
    const v = h[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) s += `${name}: ${one}\r\n`;
    else s += `${name}: ${v}\r\n`;
  }
  return s;
}
