// A streaming, strict reader of chunked transfer coding (RFC 9112 §7.1). The proxy forwards the
// bytes unchanged; this only finds where the message ends and refuses framing that two parsers
// could read differently (oversized sizes, loose whitespace, bare CR/LF, long extensions). When a
// payload sink is given, the data bytes are also handed over without framing (de-chunking).

import { TOKEN } from './head-parser.js';

const CR = 13;
const LF = 10;
const SEMI = 59;

const S_SIZE = 0;
const S_EXT = 1;
const S_SIZE_LF = 2;
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_TRAILER_START = 6;
const S_TRAILER = 7;
const S_TRAILER_LF = 8;
const S_END_LF = 9;
const S_DONE = 10;

/** 12 hex digits: 256 TiB, far beyond any body and far from losing precision. */
const MAX_SIZE_DIGITS = 12;
/** Extensions of one chunk (CVE-2024-22019 used unbounded ones to exhaust memory and CPU). */
const MAX_EXT_BYTES = 256;

/** Chunk-extension bytes: token characters, '=', '"' and the quoted-string characters (no controls). */
const EXT = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) EXT[c] = 1;
EXT[0x20] = 1;
EXT[0x09] = 1;

export type PayloadSink = (buf: Buffer, start: number, end: number) => void;

export class ChunkedReader {
  state = S_SIZE;
  /** Set when the reader refused the framing. */
  error: string | undefined;
  /** Payload bytes seen (without framing). */
  payloadBytes = 0;
  /** Trailer field lines, raw, when any (without the final CRLF). */
  trailerBytes = 0;
  #remaining = 0;
  #digits = 0;
  #ext = 0;
  #extSawToken = false;
  #maxTrailer: number;
  #sink: PayloadSink | undefined;
  #trailerLineStart = true;

  constructor(maxTrailerBytes: number, sink?: PayloadSink) {
    this.#maxTrailer = maxTrailerBytes;
    this.#sink = sink;
  }

  get done(): boolean {
    return this.state === S_DONE;
  }

  /**
   * Reads buf[start, end). Returns the index after the last byte that belongs to this message
   * (end, or less when the message ended inside the buffer), or -1 with `error` set.
   */
  feed(buf: Buffer, start: number, end: number): number {
    let p = start;
    while (p < end) {
      switch (this.state) {
        case S_SIZE: {
          const c = buf[p]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) return this.#fail('chunk size too large');
            this.#remaining = this.#remaining * 16 + v;
            p++;
          } else if (this.#digits === 0) {
            return this.#fail('malformed chunk size');
          } else if (c === CR) {
            this.state = S_SIZE_LF;
            p++;
          } else if (c === SEMI) {
            this.state = S_EXT;
            this.#ext = 0;
            this.#extSawToken = false;
            p++;
          } else {
            return this.#fail('malformed chunk size');
          }
          break;
        }
        case S_EXT: {
          const c = buf[p]!;
          if (c === CR) {
            if (!this.#extSawToken) return this.#fail('empty chunk extension');
            this.state = S_SIZE_LF;
          } else {
            if (EXT[c] !== 1) return this.#fail('invalid character in chunk extension');
            if (++this.#ext > MAX_EXT_BYTES) return this.#fail('chunk extension too long');
            if (TOKEN[c] === 1) this.#extSawToken = true;
          }
          p++;
          break;
        }
        case S_SIZE_LF: {
          if (buf[p] !== LF) return this.#fail('chunk size line must end with CRLF');
          p++;
          this.#digits = 0;
          if (this.#remaining === 0) {
            this.state = S_TRAILER_START;
            this.#trailerLineStart = true;
          } else {
            this.state = S_DATA;
          }
          break;
        }
        case S_DATA: {
          const n = Math.min(end - p, this.#remaining);
          if (this.#sink) this.#sink(buf, p, p + n);
          this.payloadBytes += n;
          this.#remaining -= n;
          p += n;
          if (this.#remaining === 0) this.state = S_DATA_CR;
          break;
        }
        case S_DATA_CR:
          if (buf[p] !== CR) return this.#fail('chunk data longer than its size');
          this.state = S_DATA_LF;
          p++;
          break;
        case S_DATA_LF:
          if (buf[p] !== LF) return this.#fail('chunk data must end with CRLF');
          this.state = S_SIZE;
          p++;
          break;
        case S_TRAILER_START: {
          // Either the final CRLF or a trailer field line.
          if (buf[p] === CR) {
            this.state = S_END_LF;
            p++;
          } else {
            if (TOKEN[buf[p]!] !== 1) return this.#fail('malformed trailer field');
            this.state = S_TRAILER;
            this.#trailerLineStart = true;
          }
          break;
        }
        case S_TRAILER: {
          // name ":" OWS value CRLF, checked byte by byte; the fields are forwarded as they are.
          const c = buf[p]!;
          if (++this.trailerBytes > this.#maxTrailer) return this.#fail('trailers too large');
          if (this.#trailerLineStart) {
            if (c === 58) this.#trailerLineStart = false;
            else if (TOKEN[c] !== 1) return this.#fail('malformed trailer field name');
          } else if (c === CR) {
            this.state = S_TRAILER_LF;
          } else if (c !== 0x09 && (c < 0x20 || c === 0x7f)) {
            return this.#fail('control character in trailer');
          }
          p++;
          break;
        }
        case S_TRAILER_LF:
          if (buf[p] !== LF) return this.#fail('bare CR in trailer');
          this.state = S_TRAILER_START;
          p++;
          break;
        case S_END_LF:
          if (buf[p] !== LF) return this.#fail('chunked body must end with CRLF');
          this.state = S_DONE;
          return p + 1;
        case S_DONE:
          return p;
      }
    }
    return p;
  }

  #fail(reason: string): number {
    this.error = reason;
    return -1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
