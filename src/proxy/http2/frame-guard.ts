// The transport between an HTTP/2 client connection and node's session. Every byte passes through
// here, in JS, so the proxy sees what node's native session does not tell it:
// - nghttp2 ending the connection itself, with a GOAWAY carrying an error code (padding longer than
//   its frame, a bad frame size, a frame on a closed stream...). Node then stops reading the socket
//   and never closes it: the socket stays in CLOSE-WAIT and the session's streams, with their
//   upstream connections, stay open for good. The GOAWAY is seen going out, and the owner told.
// - header fields nghttp2 drops without a word (HpackInspector): their stream is marked malformed
//   before nghttp2 reads the block.
// - traffic in either direction, for the owner's idle clock.
// Frames are only read, never changed: nghttp2 still judges and answers them.

import type net from 'node:net';
import { Duplex } from 'node:stream';
import { BLOCK_MALFORMED, BLOCK_OK, HpackInspector } from './hpack-inspector.js';

const PREFACE_LENGTH = 24;
const HEADER_LENGTH = 9;
const T_HEADERS = 1;
const T_GOAWAY = 7;
const T_CONTINUATION = 9;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE the proxy advertises (node's default): nghttp2 refuses larger frames. */
const MAX_FRAME_SIZE = 16384;
/** Streams marked malformed whose exchange has not taken the mark yet; more is a client at play. */
const MAX_MARKED = 100;

export type GuardFault =
  /** nghttp2 sent GOAWAY with an error code: RFC 9113 §5.4.1 says the connection must now close. */
  | 'goaway'
  /** A header block larger than any acceptable header list could need. */
  | 'header-block'
  /** Too many malformed requests waiting to be answered. */
  | 'malformed-flood';

export interface GuardOwner {
  /** The connection must end; `code` is the GOAWAY error code nghttp2 sent, for 'goaway'. */
  guardFault(fault: GuardFault, code: number): void;
}

export class FrameGuard extends Duplex {
  readonly socket: net.Socket;
  /** Set by every byte in or out; the owner clears it when it reads its idle clock. */
  active = true;
  /** Told when the connection must end; set once node has made the session. */
  owner: GuardOwner | undefined;
  #inspector = new HpackInspector();
  /** Largest header block (compressed) taken in; see the constructor. */
  #maxBlock: number;

  // --- what the client sends ----------------------------------------------------------------------
  #preface = PREFACE_LENGTH;
  #head = Buffer.allocUnsafe(HEADER_LENGTH);
  #headHave = 0;
  #type = 0;
  #flags = 0;
  #stream = 0;
  /** Payload bytes of the current frame still to come. */
  #left = 0;
  /** The payload of the current HEADERS or CONTINUATION frame when it spans reads. */
  #frame: Buffer | undefined;
  #frameHave = 0;
  /** Fragments of a header block waiting for its CONTINUATION frames, and its stream. */
  #fragments: Buffer[] = [];
  #fragmentBytes = 0;
  #blockStream = 0;
  /** Off once the stream of frames stopped making sense: nghttp2 then ends the connection itself. */
  #reading = true;
  #blind = false;
  #marked = new Set<number>();

  // --- what nghttp2 sends ------------------------------------------------------------------------
  #outHead = Buffer.allocUnsafe(HEADER_LENGTH);
  #outHave = 0;
  #outType = 0;
  #outLeft = 0;
  #goaway = Buffer.allocUnsafe(8);
  #goawayHave = 0;
  #faulted = false;

  /**
   * `head`: bytes already read from the socket (the h2c preface the HTTP/1.1 side saw).
   * `maxHeaderListSize`: the decoded limit; Huffman coding can make a block up to 3.75 times the
   * size of what it decodes to, so a compressed block four times larger is refused outright.
   */
  constructor(socket: net.Socket, head: Buffer | undefined, maxHeaderListSize: number) {
    // Half-open is the session's business: the end of the client's side is passed on as EOF.
    super({ allowHalfOpen: true });
    this.socket = socket;
    this.#maxBlock = 4 * maxHeaderListSize + MAX_FRAME_SIZE;
    socket.on('data', this.#onData);
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    if (head !== undefined && head.length > 0) this.#onData(head);
  }

  /**
   * Whether the stream's header block (or trailers) held a field nghttp2 dropped; the mark is
   * taken, so a stream is answered once.
   */
  takeMalformed(stream: number): boolean {
    return this.#marked.size > 0 && this.#marked.delete(stream);
  }

  /** The header blocks stopped being readable here: fields of later streams cannot be checked. */
  get blind(): boolean {
    return this.#blind;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.active = true;
    this.#scanOut(chunk);
    this.socket.write(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.active = true;
    const s = this.socket;
    s.cork();
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!.chunk;
      this.#scanOut(c);
      if (i === chunks.length - 1) s.write(c, cb);
      else s.write(c);
    }
    s.uncork();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }

  #onData = (chunk: Buffer): void => {
    this.active = true;
    // Read before nghttp2 is given the bytes, so a stream is marked before node announces it.
    if (this.#reading) this.#scanIn(chunk);
    if (!this.push(chunk)) this.socket.pause();
  };

  // --- frames from the client ------------------------------------------------------------------------

  #scanIn(buf: Buffer): void {
    const n = buf.length;
    let p = 0;
    while (p < n && this.#reading) {
      if (this.#preface > 0) {
        const k = Math.min(this.#preface, n - p);
        this.#preface -= k;
        p += k;
        continue;
      }
      if (this.#left === 0) {
        const k = Math.min(HEADER_LENGTH - this.#headHave, n - p);
        buf.copy(this.#head, this.#headHave, p, p + k);
        this.#headHave += k;
        p += k;
        if (this.#headHave < HEADER_LENGTH) return;
        this.#headHave = 0;
        const length = this.#frameHeader();
        if (length === 0 && this.#collecting()) this.#headerPayload(buf, p, p);
        else if (this.#collecting() && n - p >= length) {
          // The whole payload is in this read: no copy.
          this.#headerPayload(buf, p, p + length);
          p += length;
        } else {
          this.#left = length;
          if (this.#collecting()) {
            this.#frame = Buffer.allocUnsafe(length);
            this.#frameHave = 0;
          }
        }
        continue;
      }
      const k = Math.min(this.#left, n - p);
      const frame = this.#frame;
      if (frame !== undefined) {
        buf.copy(frame, this.#frameHave, p, p + k);
        this.#frameHave += k;
      }
      this.#left -= k;
      p += k;
      if (this.#left === 0 && frame !== undefined) {
        this.#frame = undefined;
        this.#headerPayload(frame, 0, frame.length);
      }
    }
  }

  /** Reads the frame header in #head; returns the payload length. */
  #frameHeader(): number {
    const h = this.#head;
    const length = h.readUIntBE(0, 3);
    this.#type = h[3]!;
    this.#flags = h[4]!;
    this.#stream = h.readUInt32BE(5) & 0x7fffffff;
    // A header block must run unbroken to its END_HEADERS (RFC 9113 §6.10).
    if (this.#blockStream !== 0 && this.#type !== T_CONTINUATION) this.#stopReading();
    else if (this.#collecting() && length > MAX_FRAME_SIZE) this.#stopReading();
    return length;
  }

  #collecting(): boolean {
    return this.#reading && (this.#type === T_HEADERS || this.#type === T_CONTINUATION);
  }

  /** The payload of a HEADERS or CONTINUATION frame: buf[start, end). */
  #headerPayload(buf: Buffer, start: number, end: number): void {
    let s = start;
    let e = end;
    if (this.#type === T_HEADERS) {
      if (this.#blockStream !== 0) return this.#stopReading();
      if ((this.#flags & F_PADDED) !== 0) {
        if (e - s < 1) return this.#stopReading();
        e -= buf[s]!;
        s++;
      }
      if ((this.#flags & F_PRIORITY) !== 0) s += 5;
      if (e < s) return this.#stopReading(); // padding longer than the frame: nghttp2's to refuse
      if ((this.#flags & F_END_HEADERS) !== 0) {
        this.#block(this.#stream, buf, s, e);
        return;
      }
      this.#blockStream = this.#stream;
    } else if (this.#blockStream === 0 || this.#stream !== this.#blockStream) {
      return this.#stopReading();
    }
    this.#fragments.push(Buffer.from(buf.subarray(s, e)));
    this.#fragmentBytes += e - s;
    if (this.#fragmentBytes > this.#maxBlock) {
      this.#fragments = [];
      this.#stopReading();
      this.#fault('header-block', 0);
      return;
    }
    if ((this.#flags & F_END_HEADERS) === 0) return;
    const block = Buffer.concat(this.#fragments, this.#fragmentBytes);
    const stream = this.#blockStream;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#blockStream = 0;
    this.#block(stream, block, 0, block.length);
  }

  /** A complete header block for `stream`. */
  #block(stream: number, buf: Buffer, start: number, end: number): void {
    const r = this.#inspector.inspect(buf, start, end);
    if (r === BLOCK_OK) return;
    if (r !== BLOCK_MALFORMED) return this.#stopReading();
    this.#marked.add(stream);
    if (this.#marked.size > MAX_MARKED) this.#fault('malformed-flood', 0);
  }

  /**
   * The frames stopped making sense (nghttp2 ends the connection on the same bytes). The HPACK
   * table can no longer be followed, so no later request can be checked: they are refused.
   */
  #stopReading(): void {
    this.#reading = false;
    this.#blind = true;
    this.#frame = undefined;
    this.#fragments = [];
  }

  // --- frames from nghttp2 -------------------------------------------------------------------------

  #scanOut(buf: Buffer): void {
    if (this.#faulted) return;
    const n = buf.length;
    let p = 0;
    while (p < n) {
      if (this.#outLeft === 0) {
        const k = Math.min(HEADER_LENGTH - this.#outHave, n - p);
        buf.copy(this.#outHead, this.#outHave, p, p + k);
        this.#outHave += k;
        p += k;
        if (this.#outHave < HEADER_LENGTH) return;
        this.#outHave = 0;
        this.#outLeft = this.#outHead.readUIntBE(0, 3);
        this.#outType = this.#outHead[3]!;
        this.#goawayHave = 0;
        continue;
      }
      const k = Math.min(this.#outLeft, n - p);
      if (this.#outType === T_GOAWAY && this.#goawayHave < 8) {
        const take = Math.min(k, 8 - this.#goawayHave);
        buf.copy(this.#goaway, this.#goawayHave, p, p + take);
        this.#goawayHave += take;
        if (this.#goawayHave === 8) {
          const code = this.#goaway.readUInt32BE(4);
          if (code !== 0) {
            this.#fault('goaway', code);
            return;
          }
        }
      }
      this.#outLeft -= k;
      p += k;
    }
  }

  #fault(fault: GuardFault, code: number): void {
    if (this.#faulted) return;
    this.#faulted = true;
    // Not from inside node's write or read: the owner destroys the session.
    process.nextTick(() => this.owner?.guardFault(fault, code));
  }
}
