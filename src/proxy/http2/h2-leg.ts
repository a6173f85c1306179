// An HTTP/2 stream forwarded to an HTTP/2 upstream (gRPC) as a stream on the endpoint's shared
// session: fields, body and trailers pass as they are (minus connection-specific fields and the
// route's edits), a trailers-only response stays one HEADERS frame, flow control holds both ways,
// and a reset on either side resets the other.

import http2, {
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { CLIENT_CERT_HEADER } from '../peer.js';
import { MAX_INTERIM_RESPONSES } from '../http1/response-head-reader.js';
import type { Upstream } from '../upstream/upstream.js';
import type { Endpoint } from '../upstream/endpoints.js';
import {
  OVERFLOW,
  QUEUED,
  type SessionFailure,
  type SessionUser,
  type UpstreamSession,
} from './client-sessions.js';
import type { Exchange, UpstreamLeg } from './exchange.js';
import { CONNECTION_SPECIFIC, FORWARDED } from './headers.js';
import { resetStream } from './reset-stream.js';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export class H2Leg implements UpstreamLeg, SessionUser {
  #x: Exchange;
  #upstream: Upstream;
  #us: UpstreamSession | undefined;
  #req: ClientHttp2Stream | undefined;
  #trailers: OutgoingHttpHeaders | undefined;
  /** The upstream's response is complete. */
  #ended = false;
  /** Nothing more to do: finished, failed or aborted. */
  #done = false;
  /** Waiting for a stream on a session (all are full). */
  #queued = false;
  #error: Error | undefined;
  /** Interim (1xx) responses seen, and whether a 100 Continue went to the client (once only). */
  #interims = 0;
  #continued = false;

  constructor(x: Exchange, upstream: Upstream) {
    this.#x = x;
    this.#upstream = upstream;
  }

  start(): void {
    const x = this.#x;
    const upstream = this.#upstream;
    // A closed upstream (replaced or removed by a reload) answers as its HTTP/1.1 pool does.
    const ep = upstream.closed ? undefined : upstream.pick(x.hash, x.avoid, x.route?.subset);
    if (ep === undefined) {
      this.#done = true;
      x.connectFailed('no-endpoint', undefined, undefined);
      return;
    }
    x.endpoint = ep;
    const got = upstream.sessions!.acquire(ep, this);
    if (got === OVERFLOW) {
      this.#done = true;
      x.connectFailed('overflow', undefined, ep);
      return;
    }
    if (got === QUEUED) {
      this.#queued = true;
      return;
    }
    this.#open(got);
  }

  onSession(us: UpstreamSession): void {
    this.#queued = false;
    if (!this.#done) this.#open(us);
  }

  onSessionFailed(failure: SessionFailure | 'closed', err: Error | undefined, ep: Endpoint): void {
    this.#queued = false;
    if (this.#done) return;
    this.#done = true;
    this.#x.connectFailed(failure === 'closed' ? 'no-endpoint' : failure, err, ep);
  }

  /** Opens the stream on a session to the try's endpoint and sends the request head. */
  #open(us: UpstreamSession): void {
    const x = this.#x;
    const ep = us.endpoint;
    let req: ClientHttp2Stream;
    try {
      req = us.session.request(this.#headers(), { endStream: x.noBody, waitForTrailers: !x.noBody });
    } catch (err) {
      this.#done = true;
      x.connectFailed('refused', err as Error, ep);
      return;
    }
    this.#upstream.sessions!.streamOpened(us);
    this.#us = us;
    this.#req = req;
    x.tryStarted(ep);
    req.on('response', this.#onResponse);
    req.on('headers', this.#onInterim);
    req.on('data', this.#onData);
    req.on('trailers', this.#onTrailers);
    req.on('end', this.#onEnd);
    req.on('close', this.#onClose);
    req.on('drain', this.#onDrain);
    req.on('wantTrailers', this.#onWantTrailers);
    // Errors end in 'close', where the stream's fate is read from its code.
    req.on('error', this.#onError);
    x.legReady();
  }

  clientData(chunk: Buffer): void {
    if (this.#done || this.#req === undefined) return;
    if (!this.#req.write(chunk)) this.#x.pauseClient();
  }

  clientEnd(): void {
    if (this.#done || this.#req === undefined) return;
    this.#req.end();
    if (!this.#x.responseStarted) this.#x.armResponseDeadline();
  }

  clientDrain(): void {
    const req = this.#req;
    if (req !== undefined && req.isPaused()) req.resume();
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#queued) {
      this.#queued = false;
      this.#upstream.sessions!.cancel(this);
    }
    const req = this.#req;
    if (req !== undefined) resetStream(req, NGHTTP2_CANCEL);
  }

  #onError = (err: Error): void => {
    this.#error = err;
  };

  #onDrain = (): void => {
    this.#x.resumeClient();
  };

  #onWantTrailers = (): void => {
    const req = this.#req!;
    const t = this.#x.clientTrailers;
    const out: OutgoingHttpHeaders = {};
    if (t !== undefined) copyFields(t, out, undefined);
    try {
      req.sendTrailers(out);
    } catch {
      resetStream(req, NGHTTP2_INTERNAL_ERROR);
    }
  };

  #onInterim = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void => {
    const status = headers[':status'] ?? 0;
    if (this.#done || status >= 200) return;
    if (++this.#interims > MAX_INTERIM_RESPONSES) {
      this.abort();
      this.#x.upstreamFailed(
        'protocol',
        `upstream sent more than ${MAX_INTERIM_RESPONSES} interim (1xx) responses`,
        'UPE',
      );
      return;
    }
    if (status === 103 || (status === 100 && !this.#continued && this.#x.lower.includes('expect'))) {
      if (status === 100) this.#continued = true;
      const h: OutgoingHttpHeaders = { ':status': status };
      copyFields(headers, h, undefined);
      this.#x.interim(h);
    }
  };

  #onResponse = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number): void => {
    if (this.#done) return;
    const x = this.#x;
    if (x.tries > 0 && this.#retried(headers)) return;
    const h: OutgoingHttpHeaders = { ':status': headers[':status'] };
    copyFields(headers, h, x.route!.responseDrop);
    // A response that is one HEADERS frame (gRPC's trailers-only) stays one.
    const end = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    if (!x.respond(h, end, !end)) {
      this.abort();
      x.upstreamFailed('protocol', 'upstream response head cannot be sent to the client', 'UPE');
      return;
    }
    if (end) this.#ended = true;
  };

  /** Whether the route retries on this response; the stream is then cancelled and the next try scheduled. */
  #retried(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): boolean {
    const lower: string[] = [];
    const values: string[] = [];
    for (const name of Object.keys(headers)) {
      if (name.charCodeAt(0) === 0x3a) continue;
      const v = headers[name];
      if (v === undefined) continue;
      lower.push(name);
      values.push(Array.isArray(v) ? v.join(', ') : String(v));
    }
    if (!this.#x.retryOnResponse(headers[':status'] ?? 0, lower, values)) return false;
    this.abort();
    this.#x.retry();
    return true;
  }

  #onData = (chunk: Buffer): void => {
    if (this.#done || this.#ended) return;
    if (!this.#x.write(chunk)) this.#req!.pause();
  };

  #onTrailers = (trailers: IncomingHttpHeaders): void => {
    const out: OutgoingHttpHeaders = {};
    copyFields(trailers, out, undefined);
    this.#trailers = out;
  };

  #onEnd = (): void => {
    if (this.#done || this.#ended) return;
    // Node ends the readable side also when the stream was reset or its session died (code
    // CANCEL): that is a truncated body, which 'close' turns into a reset of the client's stream.
    const req = this.#req!;
    if (req.destroyed || req.rstCode !== NGHTTP2_NO_ERROR) return;
    this.#ended = true;
    this.#x.endResponse(this.#trailers);
  };

  #onClose = (): void => {
    const us = this.#us!;
    this.#upstream.sessions!.streamClosed(us);
    if (this.#done) return;
    this.#done = true;
    if (this.#ended) return;
    const x = this.#x;
    const code = this.#req!.rstCode;
    if (!x.responseStarted) {
      // A session that never connected fails its streams before it reports its own error.
      if (us.failure !== undefined || !us.connected)
        x.connectFailed(us.failure ?? 'refused', us.error ?? this.#error, us.endpoint);
      else x.upstreamFailed('reset', `upstream reset the stream (HTTP/2 error ${code})`, 'UR', code);
      return;
    }
    // Mid-response: the client's stream ends the same way the upstream's did; a session that
    // went away is a closed connection (UC, as on HTTP/1.1), never a clean end.
    const gone = us.session.destroyed || us.session.closed;
    x.upstreamFailed(
      'reset',
      gone ? 'upstream connection closed mid-response' : 'upstream reset the stream mid-response',
      gone ? 'UC' : 'UR',
      gone || code === NGHTTP2_NO_ERROR || code === undefined ? NGHTTP2_INTERNAL_ERROR : code,
    );
  };

  #headers(): OutgoingHttpHeaders {
    const x = this.#x;
    const route = x.route!;
    const c = x.c;
    const h: OutgoingHttpHeaders = {
      ':method': x.method,
      ':path': x.path,
      ':scheme': this.#upstream.tls !== undefined ? 'https' : 'http',
      ':authority': route.hostRewrite ?? x.authority,
    };
    let xff = '';
    let xfp = '';
    let xfh = '';
    const lower = x.lower;
    for (let i = 0; i < lower.length; i++) {
      const l = lower[i]!;
      if (CONNECTION_SPECIFIC.has(l) || l === 'host' || route.requestDrop.has(l) || l === CLIENT_CERT_HEADER)
        continue;
      const v = x.values[i]!;
      if (l === 'te') {
        // The one TE value HTTP/2 allows, and the one gRPC needs.
        if (v.trim().toLowerCase() === 'trailers') h.te = 'trailers';
        continue;
      }
      if (FORWARDED.has(l)) {
        if (c.headers.trustForwarded) {
          if (l === 'x-forwarded-for') xff = xff === '' ? v : `${xff}, ${v}`;
          else if (l === 'x-forwarded-proto') xfp ||= v;
          else xfh ||= v;
        }
        continue;
      }
      const prev = h[l];
      h[l] = prev === undefined ? v : `${String(prev)}${l === 'cookie' ? '; ' : ', '}${v}`;
    }
    h['x-forwarded-for'] = xff === '' ? x.clientIp : `${xff}, ${x.clientIp}`;
    const peer = x.peerIdentity;
    h['x-forwarded-proto'] = xfp || (c.secure || peer !== undefined ? 'https' : 'http');
    h['x-forwarded-host'] = xfh || x.authority;
    if (x.addRequestId !== '') h['x-request-id'] = x.addRequestId;
    if (x.tries > 0) h['x-pillion-attempt-count'] = String(x.tries);
    if (peer !== undefined && peer.xfcc !== '') h['x-forwarded-client-cert'] = peer.xfcc;
    const add = route.requestAddPairs;
    for (let i = 0; i < add.length; i++) h[add[i]![0]] = add[i]![1];
    return h;
  }
}

/** Copies regular fields, leaving out pseudo-headers, connection-specific fields, `te` and `drop`. */
function copyFields(from: IncomingHttpHeaders, to: OutgoingHttpHeaders, drop: Set<string> | undefined): void {
  for (const name of Object.keys(from)) {
    if (name.charCodeAt(0) === 0x3a || CONNECTION_SPECIFIC.has(name) || name === 'te') continue;
    if (drop !== undefined && drop.has(name)) continue;
    const v = from[name];
    if (v !== undefined) to[name] = v;
  }
}
