// An HTTP/2 stream forwarded to an HTTP/1.1 upstream over its keep-alive pool: the request head
// is written from the stream's fields, its body sent as it is (with a Content-Length) or chunk
// encoded; the response head is parsed strictly, its body de-chunked into DATA frames and its
// chunked trailers turned into a trailing HEADERS frame. Backpressure holds both ways: a full
// upstream socket pauses the client stream, a full client window pauses the upstream socket.

import type { OutgoingHttpHeaders } from 'node:http2';
import { CLIENT_CERT_HEADER } from '../peer.js';
import { HeadError, type ResponseHead } from '../http1/head-parser.js';
import { ResponseHeadReader } from '../http1/response-head-reader.js';
import { HOP_BY_HOP } from '../http1/serialize.js';
import type { Endpoint } from '../upstream/endpoints.js';
import type { ConnectFailure, ConnectionOwner, PoolUser, UpstreamConnection } from '../upstream/h1-pool.js';
import type { Upstream } from '../upstream/upstream.js';
import type { Exchange, UpstreamLeg } from './exchange.js';
import { addHeader, FORWARDED, trailerAllowed } from './headers.js';
import { TrailerChunkedReader } from './trailer-reader.js';

const MAX_TRAILER_BYTES = 64 * 1024;

const S_CONNECTING = 0;
const S_EXCHANGE = 1;
const S_DONE = 2;

const B_NONE = 0;
const B_LENGTH = 1;
const B_CHUNKED = 2;
const B_CLOSE = 3;

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = '0\r\n';

export class H1Leg implements UpstreamLeg, PoolUser, ConnectionOwner {
  #x: Exchange;
  #upstream: Upstream;
  #state = S_CONNECTING;
  #conn: UpstreamConnection | undefined;
  #head = '';
  #chunkedRequest = false;
  #retried = false;
  #reused = false;
  #resReader = new ResponseHeadReader();
  #res: ResponseHead | undefined;
  #resKind = B_NONE;
  #resLeft = 0;
  #reader: TrailerChunkedReader | undefined;
  #blocked = false;
  /** The response head, and the payload read with it, until the chunks that came with it have all been read. */
  #pendingHead: OutgoingHttpHeaders | undefined;
  #held: Buffer[] | undefined;
  /** A 100 Continue went to the client. */
  #continued = false;

  constructor(x: Exchange, upstream: Upstream) {
    this.#x = x;
    this.#upstream = upstream;
  }

  start(): void {
    this.#head = this.#buildHead();
    this.#upstream.pool.acquire(this, this.#x.hash, this.#x.avoid, this.#x.route?.subset);
  }

  // --- pool callbacks ------------------------------------------------------------------------------

  onUpstreamConnection(conn: UpstreamConnection): void {
    if (this.#state !== S_CONNECTING) {
      this.#upstream.pool.release(conn, true);
      return;
    }
    const x = this.#x;
    this.#conn = conn;
    this.#reused = conn.uses > 0;
    x.tryStarted(conn.endpoint);
    conn.owner = this;
    this.#state = S_EXCHANGE;
    conn.socket.write(this.#head, 'latin1');
    x.legReady();
  }

  onUpstreamConnectError(kind: ConnectFailure, err: Error | undefined, ep: Endpoint | undefined): void {
    if (this.#state !== S_CONNECTING) return;
    this.#state = S_DONE;
    this.#x.connectFailed(kind, err, ep);
  }

  // --- request body --------------------------------------------------------------------------------

  clientData(chunk: Buffer): void {
    const conn = this.#conn;
    if (this.#state !== S_EXCHANGE || conn === undefined || chunk.length === 0) return;
    const s = conn.socket;
    let ok: boolean;
    if (this.#chunkedRequest) {
      s.cork();
      s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      s.write(chunk);
      ok = s.write(CRLF);
      s.uncork();
    } else {
      ok = s.write(chunk);
    }
    if (!ok) this.#x.pauseClient();
  }

  clientEnd(): void {
    const conn = this.#conn;
    if (this.#state !== S_EXCHANGE || conn === undefined) return;
    if (this.#chunkedRequest) conn.socket.write(`${LAST_CHUNK}${this.#requestTrailers()}\r\n`, 'latin1');
    if (this.#res === undefined) this.#x.armResponseDeadline();
  }

  onUpstreamDrain(): void {
    this.#x.resumeClient();
  }

  // --- response --------------------------------------------------------------------------------------

  clientDrain(): void {
    const s = this.#conn?.socket;
    if (s !== undefined && s.isPaused()) s.resume();
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.#state !== S_EXCHANGE) return;
    if (this.#res === undefined) this.#readHead(chunk);
    else this.#forward(chunk, 0);
  }

  onUpstreamClose(_err: Error | undefined): void {
    this.#conn = undefined;
    if (this.#state !== S_EXCHANGE) return;
    const x = this.#x;
    if (this.#res === undefined) {
      // A reused keep-alive connection the upstream closed just as the request went out: send the
      // request again on a fresh connection, once, when no body could have been lost.
      if (this.#reused && !this.#retried && x.noBody && !this.#resReader.holding) {
        this.#retried = true;
        this.#state = S_CONNECTING;
        this.#upstream.pool.acquire(this, x.hash, undefined, x.route?.subset);
        return;
      }
      this.#state = S_DONE;
      x.upstreamFailed('reset', 'upstream closed the connection before responding', 'UC');
      return;
    }
    if (this.#resKind === B_CLOSE) {
      this.#done(false, undefined);
      return;
    }
    this.#state = S_DONE;
    x.upstreamFailed('reset', 'upstream closed the connection mid-response', 'UC');
  }

  abort(): void {
    const state = this.#state;
    this.#state = S_DONE;
    this.#pendingHead = undefined;
    this.#held = undefined;
    if (state === S_CONNECTING) this.#upstream.pool.cancel(this);
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      conn.owner = undefined;
      conn.socket.destroy();
    }
  }

  #readHead(chunk: Buffer): void {
    const reader = this.#resReader;
    reader.feed(chunk);
    for (;;) {
      const r = reader.next();
      if (r === undefined) return;
      if (r instanceof HeadError) {
        this.#protocolError(`upstream sent an invalid response head: ${r.reason}`);
        return;
      }
      const buf = reader.buffer;
      const start = reader.offset;
      if (r.status === 101) {
        this.#protocolError('upstream switched protocols, which HTTP/2 cannot carry');
        return;
      }
      if (r.status < 200) {
        // 100 Continue matters only to a client that asked for it, once; 103 Early Hints pass.
        // The reader bounds how many come in all.
        if (r.status === 103 || (r.status === 100 && !this.#continued && this.#x.lower.includes('expect'))) {
          if (r.status === 100) this.#continued = true;
          this.#x.interim(this.#interimHeaders(r));
        }
        continue;
      }
      const x = this.#x;
      if (x.tries > 0 && x.retryOnResponse(r.status, r.lower, r.values)) {
        this.#letGo(r, buf.length - start);
        x.retry();
        return;
      }
      this.#onHead(r, start < buf.length);
      if (this.#state === S_EXCHANGE && start < buf.length) this.#forward(buf, start);
      return;
    }
  }

  #onHead(res: ResponseHead, bodyFollows: boolean): void {
    const x = this.#x;
    this.#res = res;
    const noBody = x.method === 'HEAD' || res.status === 204 || res.status === 304;
    if (noBody) this.#resKind = B_NONE;
    else if (res.chunked) {
      this.#resKind = B_CHUNKED;
      this.#reader = new TrailerChunkedReader(MAX_TRAILER_BYTES, this.#payload);
    } else if (res.contentLength !== -1) {
      this.#resKind = res.contentLength > 0 ? B_LENGTH : B_NONE;
      this.#resLeft = res.contentLength;
    } else this.#resKind = B_CLOSE;

    const h: OutgoingHttpHeaders = { ':status': res.status };
    const route = x.route!;
    const conn = res.connection;
    for (let i = 0; i < res.lower.length; i++) {
      const l = res.lower[i]!;
      if (l === 'content-length') {
        if (this.#resKind !== B_CHUNKED) h[l] = res.values[i]!;
        continue;
      }
      if (HOP_BY_HOP.has(l) || route.responseDrop.has(l)) continue;
      if (conn.length > 0 && conn.includes(l)) continue;
      addHeader(h, l, res.values[i]!);
    }
    if (this.#resKind === B_CHUNKED && bodyFollows) {
      // The chunks that came with the head are read before the head goes out: an upstream whose
      // framing is broken from its first bytes gets the client a 502, not a reset stream.
      this.#pendingHead = h;
      return;
    }
    if (!x.respond(h, this.#resKind === B_NONE, this.#resKind === B_CHUNKED)) {
      this.#protocolError('upstream response head cannot be sent over HTTP/2');
      return;
    }
    if (this.#resKind === B_NONE) this.#done(true, undefined);
  }

  /** Sends the head held back while the first chunks were read, and their payload; false when it could not be. */
  #flushHead(): boolean {
    const h = this.#pendingHead;
    if (h === undefined) return true;
    this.#pendingHead = undefined;
    if (!this.#x.respond(h, false, true)) {
      this.#protocolError('upstream response head cannot be sent over HTTP/2');
      return false;
    }
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) for (const b of held) if (!this.#x.write(b)) this.#blocked = true;
    return true;
  }

  #payload = (buf: Buffer, start: number, end: number): void => {
    if (end <= start || this.#state !== S_EXCHANGE) return;
    if (this.#pendingHead !== undefined) (this.#held ??= []).push(buf.subarray(start, end));
    else if (!this.#x.write(buf.subarray(start, end))) this.#blocked = true;
  };

  #forward(buf: Buffer, start: number): void {
    const end = buf.length;
    const x = this.#x;
    let used: number;
    let done = false;
    this.#blocked = false;
    switch (this.#resKind) {
      case B_LENGTH: {
        const n = Math.min(this.#resLeft, end - start);
        used = start + n;
        this.#resLeft -= n;
        done = this.#resLeft === 0;
        if (n > 0) this.#payload(buf, start, used);
        break;
      }
      case B_CHUNKED: {
        const reader = this.#reader!;
        used = reader.feed(buf, start, end);
        if (used === -1) {
          this.#protocolError(`upstream sent invalid chunked framing: ${reader.error}`);
          return;
        }
        if (!this.#flushHead()) return;
        done = reader.done;
        break;
      }
      default:
        used = end;
        this.#payload(buf, start, end);
    }
    if (this.#state !== S_EXCHANGE || x.closed) return;
    if (done) {
      this.#done(used === end, this.#resKind === B_CHUNKED ? this.#responseTrailers() : undefined);
      return;
    }
    if (this.#blocked) this.#conn?.socket.pause();
  }

  /** The response is complete: hand the connection back (reusable only when all is in order). */
  #done(clean: boolean, trailers: OutgoingHttpHeaders | undefined): void {
    const x = this.#x;
    this.#state = S_DONE;
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      // Bytes after the response, or a request body still on its way, leave the connection in an
      // unknown state: close it.
      if (conn.socket.isPaused()) conn.socket.resume();
      this.#upstream.pool.release(conn, clean && this.#res!.keepAlive && x.reqDone);
    }
    x.endResponse(trailers);
  }

  /** A response retried on: its connection goes back to the pool when its body is all here, else closes. */
  #letGo(r: ResponseHead, rest: number): void {
    this.#state = S_DONE;
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn === undefined) return;
    const noBody = this.#x.method === 'HEAD' || r.status === 204 || r.status === 304;
    const whole = noBody ? rest === 0 : !r.chunked && r.contentLength >= 0 && rest === r.contentLength;
    this.#upstream.pool.release(conn, whole && r.keepAlive && this.#x.reqDone);
  }

  #protocolError(reason: string): void {
    this.abort();
    this.#x.upstreamFailed('protocol', reason, 'UPE');
  }

  #buildHead(): string {
    const x = this.#x;
    const route = x.route!;
    const c = x.c;
    let h = `${x.method} ${x.path} HTTP/1.1\r\n`;
    let xff = '';
    let xfp = '';
    let xfh = '';
    let cookie = '';
    const lower = x.lower;
    for (let i = 0; i < lower.length; i++) {
      const l = lower[i]!;
      if (HOP_BY_HOP.has(l) || l === 'host' || route.requestDrop.has(l) || l === CLIENT_CERT_HEADER) continue;
      const v = x.values[i]!;
      if (FORWARDED.has(l)) {
        if (c.headers.trustForwarded) {
          if (l === 'x-forwarded-for') xff = xff === '' ? v : `${xff}, ${v}`;
          else if (l === 'x-forwarded-proto') xfp ||= v;
          else xfh ||= v;
        }
        continue;
      }
      // HTTP/2 may split cookies into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
      if (l === 'cookie') {
        cookie = cookie === '' ? v : `${cookie}; ${v}`;
        continue;
      }
      h += `${l}: ${v}\r\n`;
    }
    h += `host: ${route.hostRewrite ?? x.authority}\r\n`;
    if (cookie !== '') h += `cookie: ${cookie}\r\n`;
    const clientIp = x.clientIp;
    h += `x-forwarded-for: ${xff === '' ? clientIp : `${xff}, ${clientIp}`}\r\n`;
    const peer = x.peerIdentity;
    h += `x-forwarded-proto: ${xfp || (c.secure || peer !== undefined ? 'https' : 'http')}\r\n`;
    h += `x-forwarded-host: ${xfh || x.authority}\r\n`;
    if (x.addRequestId !== '') h += `x-request-id: ${x.addRequestId}\r\n`;
    if (x.tries > 0) h += `x-pillion-attempt-count: ${x.tries}\r\n`;
    if (peer !== undefined && peer.xfcc !== '') h += `x-forwarded-client-cert: ${peer.xfcc}\r\n`;
    if (x.contentLength !== -1) h += `content-length: ${x.contentLength}\r\n`;
    else if (!x.noBody) {
      h += 'transfer-encoding: chunked\r\n';
      this.#chunkedRequest = true;
    }
    // The route's additions come last, as the HTTP/1.1 engine writes them (they replace, since
    // their names were dropped above).
    const add = route.requestAddPairs;
    for (let i = 0; i < add.length; i++) h += `${add[i]![0]}: ${add[i]![1]}\r\n`;
    return `${h}\r\n`;
  }

  /** Request trailers (rare over HTTP/1.1) as chunked trailer fields. */
  #requestTrailers(): string {
    const t = this.#x.clientTrailers;
    if (t === undefined) return '';
    let s = '';
    for (const name of Object.keys(t)) {
      if (!trailerAllowed(name)) continue;
      const v = t[name];
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) if (!/[\r\n\0]/.test(one)) s += `${name}: ${one}\r\n`;
    }
    return s;
  }

  #responseTrailers(): OutgoingHttpHeaders | undefined {
    const t = this.#reader?.trailers();
    if (t === undefined) return undefined;
    const out: OutgoingHttpHeaders = {};
    for (let i = 0; i < t.lower.length; i++) {
      const l = t.lower[i]!;
      if (trailerAllowed(l)) addHeader(out, l, t.values[i]!);
    }
    return out;
  }

  #interimHeaders(r: ResponseHead): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = { ':status': r.status };
    for (let i = 0; i < r.lower.length; i++) {
      const l = r.lower[i]!;
      if (!HOP_BY_HOP.has(l)) addHeader(h, l, r.values[i]!);
    }
    return h;
  }
}
