// Gathers an upstream's response head across reads, and yields the heads it holds in order:
// interim ones (100, 103) and then the final one. Shared by the HTTP/1.1 engine and the HTTP/2
// leg that talks HTTP/1.1 to an upstream.

import { HeadError, parseResponseHead, type ResponseHead } from './head-parser.js';

const RESPONSE_LIMITS = { maxHeadSize: 64 * 1024, maxHeaders: 500 };

/**
 * Interim (1xx) responses taken before the final one. A server sends one 100 Continue and perhaps
 * a 103 or two; one that keeps sending them would keep the proxy relaying them for good.
 */
export const MAX_INTERIM_RESPONSES = 8;
const TOO_MANY_INTERIM = new HeadError(400, `more than ${MAX_INTERIM_RESPONSES} interim (1xx) responses`);

export class ResponseHeadReader {
  #pending: Buffer | undefined;
  #buf: Buffer | undefined;
  #start = 0;
  #scanFrom = 0;
  #interims = 0;

  /** Bytes of a head that is not complete yet are held (the keep-alive retry checks this). */
  get holding(): boolean {
    return this.#pending !== undefined;
  }

  /** The buffer of the last feed and where the bytes after the last head begin (body bytes). */
  get buffer(): Buffer {
    return this.#buf!;
  }

  get offset(): number {
    return this.#start;
  }

  feed(chunk: Buffer): void {
    if (this.#pending === undefined) {
      this.#buf = chunk;
      this.#scanFrom = 0;
    } else {
      this.#scanFrom = this.#pending.length;
      this.#buf = Buffer.concat([this.#pending, chunk]);
      this.#pending = undefined;
    }
    this.#start = 0;
  }

  /** The next head in what was fed, a HeadError, or undefined when more bytes are needed. */
  next(): ResponseHead | HeadError | undefined {
    const buf = this.#buf!;
    const r = parseResponseHead(
      buf,
      this.#start,
      buf.length,
      RESPONSE_LIMITS,
      Math.max(this.#start, this.#scanFrom),
    );
    if (r === undefined) {
      if (this.#start < buf.length) this.#pending = this.#start === 0 ? buf : buf.subarray(this.#start);
      return undefined;
    }
    if (r instanceof HeadError) return r;
    this.#start += r.size;
    if (r.status < 200 && ++this.#interims > MAX_INTERIM_RESPONSES) return TOO_MANY_INTERIM;
    return r;
  }

  reset(): void {
    this.#pending = undefined;
    this.#buf = undefined;
    this.#start = 0;
    this.#interims = 0;
  }
}
