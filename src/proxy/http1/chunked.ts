// A streaming, strict reader of chunked transfer coding (RFC 9112 §7.1). The proxy forwards the
// bytes unchanged; this only finds where the message ends and refuses framing that two parsers
// could read differently (oversized sizes, loose whitespace, bare CR/LF, long or malformed
// extensions, framing fields in trailers). When a payload sink is given, the data bytes are also
// handed over without framing (de-chunking).

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

// chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ), read byte by byte. The BWS that
// RFC 9112 §7.1.1 tolerates around ";" and "=" is refused, as llhttp does: no sender needs it and
// whitespace is where parsers start to disagree. obs-text inside quoted strings is refused too.
const X_NAME0 = 0; // after ';': the first byte of a name
const X_NAME = 1; // in a name: more of it, '=', ';' or CR
const X_VALUE0 = 2; // after '=': a token or a quoted string starts
const X_TOKEN = 3; // in a token value: more of it, ';' or CR
const X_QUOTED = 4; // in a quoted string
const X_ESCAPE = 5; // after a backslash in a quoted string
const X_QUOTED_END = 6; // after the closing quote: ';' or CR

const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const EQUALS = 0x3d;
const COLON = 0x3a;

/** Framing fields have no place in trailers (RFC 9110 §6.5.1); some recipients merge trailers into the head. */
const FORBIDDEN_TRAILERS = ['content-length', 'transfer-encoding'].map((n) => Buffer.from(n, 'latin1'));

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
  #extState = X_NAME0;
  #maxTrailer: number;
  #sink: PayloadSink | undefined;
  #trailerLineStart = true;
  /** Length of the trailer name read so far, and which forbidden names it still matches (bits). */
  #nameLen = 0;
  #nameMatch = 0;

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
            this.#extState = X_NAME0;
            p++;
          } else {
            return this.#fail('malformed chunk size');
          }
          break;
        }
        case S_EXT: {
          const next = extStep(this.#extState, buf[p]!);
          if (next === X_FAIL) return this.#fail('malformed chunk extension');
          if (next === X_END) this.state = S_SIZE_LF;
          else if (++this.#ext > MAX_EXT_BYTES) return this.#fail('chunk extension too long');
          else this.#extState = next;
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
            this.#nameLen = 0;
            this.#nameMatch = (1 << FORBIDDEN_TRAILERS.length) - 1;
          }
          break;
        }
        case S_TRAILER: {
          // name ":" OWS value CRLF, checked byte by byte; the fields are forwarded as they are.
          const c = buf[p]!;
          if (++this.trailerBytes > this.#maxTrailer) return this.#fail('trailers too large');
          if (this.#trailerLineStart) {
            if (c === COLON) {
              if (this.#forbiddenTrailer()) return this.#fail('framing field in trailers');
              this.#trailerLineStart = false;
            } else if (TOKEN[c] !== 1) return this.#fail('malformed trailer field name');
            else this.#matchName(c);
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

  #matchName(c: number): void {
    const lower = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
    const i = this.#nameLen++;
    for (let k = 0; k < FORBIDDEN_TRAILERS.length; k++)
      if (FORBIDDEN_TRAILERS[k]![i] !== lower) this.#nameMatch &= ~(1 << k);
  }

  #forbiddenTrailer(): boolean {
    for (let k = 0; k < FORBIDDEN_TRAILERS.length; k++)
      if ((this.#nameMatch & (1 << k)) !== 0 && FORBIDDEN_TRAILERS[k]!.length === this.#nameLen) return true;
    return false;
  }

  #fail(reason: string): number {
    this.error = reason;
    return -1;
  }
}

const X_END = -1;
const X_FAIL = -2;

/** The extension state after byte c: X_END at the CR that ends the line, X_FAIL on a grammar error. */
function extStep(state: number, c: number): number {
  switch (state) {
    case X_NAME0:
      return TOKEN[c] === 1 ? X_NAME : X_FAIL;
    case X_NAME:
      if (TOKEN[c] === 1) return X_NAME;
      return c === EQUALS ? X_VALUE0 : c === SEMI ? X_NAME0 : c === CR ? X_END : X_FAIL;
    case X_VALUE0:
      return TOKEN[c] === 1 ? X_TOKEN : c === DQUOTE ? X_QUOTED : X_FAIL;
    case X_TOKEN:
      if (TOKEN[c] === 1) return X_TOKEN;
      return c === SEMI ? X_NAME0 : c === CR ? X_END : X_FAIL;
    case X_QUOTED:
      // qdtext: HTAB, SP, VCHAR except '"' and '\'.
      if (c === DQUOTE) return X_QUOTED_END;
      if (c === BACKSLASH) return X_ESCAPE;
      return c === 0x09 || (c >= 0x20 && c < 0x7f) ? X_QUOTED : X_FAIL;
    case X_ESCAPE:
      return c === 0x09 || (c >= 0x20 && c < 0x7f) ? X_QUOTED : X_FAIL;
    default: // X_QUOTED_END
      return c === SEMI ? X_NAME0 : c === CR ? X_END : X_FAIL;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
