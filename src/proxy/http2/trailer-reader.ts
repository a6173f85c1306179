// A chunked-body reader that also keeps the trailer section, so an HTTP/1.1 upstream's trailers
// can be sent to an HTTP/2 client as a trailing HEADERS frame. The framing rules stay those of
// ChunkedReader; this only works out, from the bytes it counted as trailer, where they lie.

import { ChunkedReader, type PayloadSink } from '../http1/chunked.js';
import { HeadError, parseFields } from '../http1/head-parser.js';

export interface Trailers {
  lower: string[];
  values: string[];
}

const LF = 10;
const MAX_TRAILER_FIELDS = 100;

export class TrailerChunkedReader extends ChunkedReader {
  #parts: Buffer[] | undefined;
  #seen = 0;

  constructor(maxTrailerBytes: number, sink: PayloadSink) {
    super(maxTrailerBytes, sink);
  }

  override feed(buf: Buffer, start: number, end: number): number {
    const before = this.trailerBytes;
    const used = super.feed(buf, start, end);
    if (used === -1) return used;
    const added = this.trailerBytes - before;
    if (this.#parts !== undefined) {
      // Inside the trailer section since an earlier call: everything read belongs to it.
      if (used > start) this.#parts.push(Buffer.from(buf.subarray(start, used)));
    } else if (added > 0) {
      // The section starts in this call. ChunkedReader counts every trailer byte except the LF
      // ending each line (and the final CRLF), so walk back over that many bytes plus the LFs.
      let p = this.done ? used - 2 : used;
      let counted = 0;
      while (counted < added && p > start) {
        p--;
        if (buf[p] !== LF) counted++;
      }
      this.#parts = [Buffer.from(buf.subarray(p, used))];
    }
    this.#seen = this.trailerBytes;
    return used;
  }

  /** The trailer fields, once done; undefined when there were none or they did not parse. */
  trailers(): Trailers | undefined {
    if (!this.done || this.#parts === undefined || this.#seen === 0) return undefined;
    const buf = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts);
    const out = {
      names: [] as string[],
      lower: [] as string[],
      values: [] as string[],
      contentLength: -1,
      chunked: false,
      connection: [] as string[],
      upgrade: '',
    };
    const err = parseFields(buf, 0, buf.length - 2, MAX_TRAILER_FIELDS, out, false, false);
    if (err instanceof HeadError) return undefined;
    return { lower: out.lower, values: out.values };
  }
}
